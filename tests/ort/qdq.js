#!/usr/bin/env node
// qdq.js - helpers of tests/t_qdq.sh (QDQ export run by ONNX Runtime):
//   node tests/ort/qdq.js images N OUT.npy
//        the first N Fashion-MNIST test images as float32 N x 1 x 28 x 28 in [0, 1]
//   node tests/ort/qdq.js run MODEL.onnx IN.npy OUT.npy [--batch B] [--threads T]
//        [--opt all|extended|basic|disabled] [--ops]
//        ONNX Runtime (CPU, graph optimizations --opt, default all) on IN in
//        batches (default 500); writes the first output; prints one JSON line
//        {"input", "output"} and with --ops the op types of the optimized graph
//        ORT ran, "ops": {"QLinearConv": 20, ...}.
//   node tests/ort/qdq.js ops MODEL.onnx
//        the op types of a model file: {"ops": {...}}
//   node tests/ort/qdq.js agree REF.npy GOT.npy [--rows K]
//        (the first K rows of each, when given) prints {"images", "agree" (top-1 agreement, fraction), "sqnr_db"
//        (20 log10 |ref| / |ref - got|, +inf printed as 999)} for N x C logits.
// Exit codes: 0 ok, 1 failure while running, 2 bad usage or input.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const npy = require('./npy');

const DIR = '/usr/share/datasets/fashion-mnist';

function die(code, msg) {
    process.stderr.write(`qdq.js: ${msg}\n`);
    process.exit(code);
}

function images(n, out) {
    const b = zlib.gunzipSync(fs.readFileSync(`${DIR}/t10k-images-idx3-ubyte.gz`));
    if (b.readUInt32BE(0) !== 0x803) die(2, 'test images: bad IDX magic');
    const count = b.readUInt32BE(4), h = b.readUInt32BE(8), w = b.readUInt32BE(12);
    if (!(n >= 1 && n <= count)) die(2, `want 1..${count} images, got ${n}`);
    const px = new Float32Array(n * h * w);
    for (let i = 0; i < px.length; i++) px[i] = b[16 + i] / 255;
    npy.write(out, [n, 1, h, w], px);
}

// Op types of the graph ORT saved after optimization (a protobuf walk:
// ModelProto.graph = 7, GraphProto.node = 1, NodeProto.op_type = 4).
function opTypes(file) {
    const buf = fs.readFileSync(file);
    const varint = (b, p) => {
        let v = 0, m = 1;
        for (;;) {
            const x = b[p.i++];
            v += (x & 0x7f) * m;
            if (x < 0x80) return v;
            m *= 128;
        }
    };
    // calls f(field, start, end) for each length-delimited field of b[s, e)
    const fields = (b, s, e, f) => {
        const p = {i: s};
        while (p.i < e) {
            const key = varint(b, p), wt = key & 7, fn = Math.floor(key / 8);
            if (wt === 0) varint(b, p);
            else if (wt === 1) p.i += 8;
            else if (wt === 5) p.i += 4;
            else if (wt === 2) { const n = varint(b, p); f(fn, p.i, p.i + n); p.i += n; }
            else throw new Error(`wire type ${wt}`);
        }
    };
    const ops = {};
    fields(buf, 0, buf.length, (fn, s, e) => {
        if (fn !== 7) return;
        fields(buf, s, e, (gf, gs, ge) => {
            if (gf !== 1) return;
            fields(buf, gs, ge, (nf, ns, ne) => {
                if (nf === 4) { const t = buf.toString('utf8', ns, ne); ops[t] = (ops[t] || 0) + 1; }
            });
        });
    });
    return ops;
}

async function run(model, inFile, outFile, batch, threads, showOps, level) {
    let ort;
    try { ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node')); }
    catch (e) { die(1, `cannot load onnxruntime-node (run 'make deps'): ${e.message}`); }
    let x;
    try { x = npy.read(inFile); } catch (e) { die(2, e.message); }
    const optFile = showOps ? path.join(os.tmpdir(), `qdq-opt-${process.pid}.onnx`) : undefined;
    let sess;
    try {
        sess = await ort.InferenceSession.create(model, {
            executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
            executionMode: 'sequential', graphOptimizationLevel: level,
            ...(optFile ? {optimizedModelFilePath: optFile} : {}),
        });
    } catch (e) { die(2, `cannot load ${model}: ${e.message}`); }
    const n = x.shape[0], per = x.data.length / n, outName = sess.outputNames[0];
    let y = null, ys = null;
    for (let s = 0; s < n; s += batch) {
        const m = Math.min(batch, n - s);
        const t = new ort.Tensor('float32', x.data.subarray(s * per, (s + m) * per), [m, ...x.shape.slice(1)]);
        let r;
        try { r = (await sess.run({[sess.inputNames[0]]: t}, [outName]))[outName]; }
        catch (e) { die(1, `inference failed: ${e.message}`); }
        if (!y) {
            ys = r.dims.map(Number);
            y = new Float32Array(n * (r.data.length / m));
        }
        y.set(r.data, s * (r.data.length / m));
    }
    ys[0] = n;
    npy.write(outFile, ys, y);
    const info = {input: sess.inputNames[0], output: outName};
    if (optFile) {
        info.ops = opTypes(optFile);
        fs.unlinkSync(optFile);
    }
    process.stdout.write(JSON.stringify(info) + '\n');
}

function agree(refFile, gotFile, rows) {
    let a, b;
    try { a = npy.read(refFile); b = npy.read(gotFile); } catch (e) { die(2, e.message); }
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[1])
        die(2, `want two N x C arrays, got [${a.shape}] and [${b.shape}]`);
    if (!rows && a.shape[0] !== b.shape[0]) die(2, `${a.shape[0]} rows vs ${b.shape[0]} (compare the first K with --rows K)`);
    if (rows && (rows > a.shape[0] || rows > b.shape[0])) die(2, `--rows ${rows}: only ${Math.min(a.shape[0], b.shape[0])} rows`);
    const n = rows || a.shape[0], c = a.shape[1];
    let same = 0, num = 0, den = 0;
    const argmax = (d, i) => { let k = 0; for (let j = 1; j < c; j++) if (d[i * c + j] > d[i * c + k]) k = j; return k; };
    for (let i = 0; i < n; i++) {
        same += argmax(a.data, i) === argmax(b.data, i);
        for (let j = 0; j < c; j++) {
            const r = a.data[i * c + j], d = r - b.data[i * c + j];
            num += r * r;
            den += d * d;
        }
    }
    const sqnr = den > 0 ? 10 * Math.log10(num / den) : 999;
    console.log(JSON.stringify({images: n, agree: same / n, sqnr_db: +sqnr.toFixed(2)}));
}

const a = process.argv.slice(2);
const opt = (name, def) => { const i = a.indexOf(name); if (i < 0) return def; const v = a[i + 1]; a.splice(i, 2); return v; };
if (a[0] === 'images' && a.length === 3) images(Number(a[1]), a[2]);
else if (a[0] === 'run') {
    const batch = Number(opt('--batch', 500)), threads = Number(opt('--threads', 1)), level = opt('--opt', 'all');
    const i = a.indexOf('--ops'), showOps = i >= 0;
    if (showOps) a.splice(i, 1);
    if (a.length !== 4 || !(batch >= 1) || !(threads >= 1) || !['all', 'extended', 'basic', 'disabled'].includes(level))
        die(2, 'usage: run MODEL IN.npy OUT.npy [--batch B] [--threads T] [--opt all|extended|basic|disabled] [--ops]');
    run(a[1], a[2], a[3], batch, threads, showOps, level).catch(e => die(1, e.stack || e));
} else if (a[0] === 'agree') {
    const rows = Number(opt('--rows', 0));
    if (a.length !== 3 || !(Number.isInteger(rows) && rows >= 0)) die(2, 'usage: agree REF.npy GOT.npy [--rows K]');
    agree(a[1], a[2], rows);
}
else if (a[0] === 'ops' && a.length === 2) {
    try { console.log(JSON.stringify({ops: opTypes(a[1])})); } catch (e) { die(2, `${a[1]}: ${e.message}`); }
}
else die(2, 'usage: qdq.js images N OUT.npy | run MODEL IN.npy OUT.npy [--batch B] [--threads T] [--opt LEVEL] [--ops] | agree REF.npy GOT.npy [--rows K] | ops MODEL');
