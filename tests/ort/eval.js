#!/usr/bin/env node
// eval.js - ONNX Runtime twin of `qdb eval` on Fashion-MNIST (for make bench):
//   node tests/ort/eval.js MODEL.onnx [--split test|train] [--batch B] [--threads N]
// Prints {"accuracy", "images", "images_per_s", "seconds"}: the wall time covers
// session.run over the whole split in batches (the pixels are decoded first).
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

const DIR = '/usr/share/datasets/fashion-mnist';

function idx(path) {
    const b = zlib.gunzipSync(fs.readFileSync(path));
    const nd = b[3], dims = [];
    for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
    return {dims, data: b.subarray(4 + 4 * nd)};
}

async function main() {
    const a = process.argv.slice(2);
    const o = {split: 'test', batch: 64, threads: 1, model: null};
    for (let i = 0; i < a.length; i++) {
        if (a[i] === '--split') o.split = a[++i];
        else if (a[i] === '--batch') o.batch = Number(a[++i]);
        else if (a[i] === '--threads') o.threads = Number(a[++i]);
        else if (!o.model && !a[i].startsWith('--')) o.model = a[i];
        else { process.stderr.write(`eval.js: bad argument ${a[i]}\n`); process.exit(2); }
    }
    if (!o.model) { process.stderr.write('usage: node tests/ort/eval.js MODEL.onnx [--batch B] [--threads N]\n'); process.exit(2); }
    const pre = o.split === 'train' ? 'train' : 't10k';
    const im = idx(`${DIR}/${pre}-images-idx3-ubyte.gz`), lb = idx(`${DIR}/${pre}-labels-idx1-ubyte.gz`);
    const [n, h, w] = im.dims;
    const px = new Float32Array(n * h * w);
    for (let i = 0; i < px.length; i++) px[i] = im.data[i] / 255;
    const s = await ort.InferenceSession.create(o.model, {intraOpNumThreads: o.threads, interOpNumThreads: 1,
        graphOptimizationLevel: 'all', executionMode: 'sequential'});
    let correct = 0;
    const t0 = process.hrtime.bigint();
    for (let start = 0; start < n; start += o.batch) {
        const m = Math.min(o.batch, n - start);
        const x = new ort.Tensor('float32', px.subarray(start * h * w, (start + m) * h * w), [m, 1, h, w]);
        const out = await s.run({[s.inputNames[0]]: x});
        const y = out[s.outputNames[0]], c = y.dims[1];
        for (let i = 0; i < m; i++) {
            let best = 0;
            for (let k = 1; k < c; k++) if (y.data[i * c + k] > y.data[i * c + best]) best = k;
            correct += best === lb.data[start + i];
        }
    }
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({accuracy: correct / n, images: n, images_per_s: n / sec, seconds: sec}));
}
main().catch(e => { process.stderr.write(`eval.js: ${e.message}\n`); process.exit(1); });
