// npy.js - minimal NPY reader/writer for little-endian float32, C order.
//   const npy = require('./npy');
//   const {shape, data} = npy.read('x.npy');   // data: Float32Array
//   npy.write('y.npy', shape, data);           // writes '<f4', version 1.0
'use strict';
const fs = require('fs');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

function parseHeader(h, file) {
    const descr = /'descr'\s*:\s*'([^']*)'/.exec(h);
    const fort = /'fortran_order'\s*:\s*(True|False)/.exec(h);
    const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(h);
    if (!descr || !fort || !shape) throw new Error(`${file}: bad NPY header: ${h.trim()}`);
    return {
        descr: descr[1],
        fortran: fort[1] === 'True',
        shape: shape[1].split(',').map(s => s.trim()).filter(s => s.length).map(s => {
            const n = Number(s.replace(/L$/, ''));
            if (!Number.isInteger(n) || n < 0) throw new Error(`${file}: bad NPY shape: (${shape[1]})`);
            return n;
        }),
    };
}

function read(file) {
    const buf = fs.readFileSync(file);
    if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${file}: not an NPY file`);
    const major = buf[6];
    let hlen, off;
    if (major === 1) { hlen = buf.readUInt16LE(8); off = 10; }
    else if (major === 2 || major === 3) { hlen = buf.readUInt32LE(8); off = 12; }
    else throw new Error(`${file}: unsupported NPY version ${major}`);
    if (off + hlen > buf.length) throw new Error(`${file}: truncated NPY header`);
    const hdr = parseHeader(buf.toString('latin1', off, off + hlen), file);
    if (hdr.descr !== '<f4') throw new Error(`${file}: dtype ${hdr.descr} is not '<f4' (float32)`);
    if (hdr.fortran) throw new Error(`${file}: Fortran-order arrays are not supported`);
    const n = hdr.shape.reduce((a, b) => a * b, 1);
    const start = off + hlen;
    if (buf.length - start < 4 * n) throw new Error(`${file}: truncated data: want ${4 * n} bytes, have ${buf.length - start}`);
    // Copy into an aligned Float32Array (the Buffer's offset may not be 4-aligned).
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(buf.subarray(start, start + 4 * n));
    return {shape: hdr.shape, data};
}

function write(file, shape, data) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`npy.write: ${data.length} values for shape [${shape}]`);
    const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
    let h = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shp}, }`;
    const total = 10 + h.length + 1;                 // magic+ver+len, header, '\n'
    h += ' '.repeat((64 - (total % 64)) % 64) + '\n'; // pad so data starts 64-aligned
    const head = Buffer.alloc(10);
    MAGIC.copy(head, 0); head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    fs.writeFileSync(file, Buffer.concat([head, Buffer.from(h, 'latin1'),
        Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)]));
}

module.exports = {read, write};
