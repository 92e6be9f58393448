#!/usr/bin/env node
// run.js - ONNX Runtime (onnxruntime-node, CPU) reference runner, the twin of `qdb run`.
//   node tests/ort/run.js MODEL.onnx IN.npy OUT.npy [--threads N] [--repeat R]
//        [--warmup W] [--output-name NAME] [--json]
// Feeds the float32 NPY to the model's first input, writes the first output (or
// NAME) as float32 NPY. --json prints {"output":..., "shape":[...], "ms":[...]}
// with the wall time of each of the R timed session.run calls (after W warm-ups).
// Exit codes: 0 ok, 1 failure while running, 2 bad usage or input.
'use strict';
const path = require('path');
const npy = require('./npy');

function usage(msg) {
    if (msg) process.stderr.write(`run.js: ${msg}\n`);
    process.stderr.write('usage: node tests/ort/run.js MODEL.onnx IN.npy OUT.npy [--threads N] ' +
        '[--repeat R] [--warmup W] [--output-name NAME] [--json]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const o = {threads: 1, repeat: 1, warmup: 0, json: false, outputName: null, pos: []};
    const int = (v, name, min) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) usage(`${name} wants an integer >= ${min}, got '${v}'`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
        if (a === '--threads') o.threads = int(val(), a, 1);
        else if (a === '--repeat') o.repeat = int(val(), a, 1);
        else if (a === '--warmup') o.warmup = int(val(), a, 0);
        else if (a === '--output-name') o.outputName = val();
        else if (a === '--json') o.json = true;
        else if (a === '-h' || a === '--help') usage();
        else if (a.startsWith('--')) usage(`unknown option ${a}`);
        else o.pos.push(a);
    }
    if (o.pos.length !== 3) usage('want MODEL.onnx IN.npy OUT.npy');
    return o;
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const [model, inFile, outFile] = o.pos;
    let ort;
    try {
        ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
    } catch (e) {
        process.stderr.write(`run.js: cannot load onnxruntime-node (run 'make deps'): ${e.message}\n`);
        process.exit(1);
    }
    let x;
    try { x = npy.read(inFile); } catch (e) { process.stderr.write(`run.js: ${e.message}\n`); process.exit(2); }

    let sess;
    try {
        sess = await ort.InferenceSession.create(model, {
            executionProviders: ['cpu'],
            intraOpNumThreads: o.threads,
            interOpNumThreads: 1,
            executionMode: 'sequential',
            graphOptimizationLevel: 'all',
        });
    } catch (e) {
        process.stderr.write(`run.js: cannot load ${model}: ${e.message}\n`);
        process.exit(2);
    }
    const outName = o.outputName || sess.outputNames[0];
    if (!sess.outputNames.includes(outName)) {
        process.stderr.write(`run.js: model has no output '${outName}' (outputs: ${sess.outputNames.join(', ')})\n`);
        process.exit(2);
    }
    const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape)};
    const ms = [];
    let y;
    try {
        for (let i = 0; i < o.warmup + o.repeat; i++) {
            const t0 = process.hrtime.bigint();
            const r = await sess.run(feeds, [outName]);
            const t1 = process.hrtime.bigint();
            if (i >= o.warmup) ms.push(Number(t1 - t0) / 1e6);
            y = r[outName];
        }
    } catch (e) {
        process.stderr.write(`run.js: inference failed: ${e.message}\n`);
        process.exit(1);
    }
    if (y.type !== 'float32') {
        process.stderr.write(`run.js: output '${outName}' is ${y.type}, not float32\n`);
        process.exit(1);
    }
    const shape = y.dims.map(Number);
    npy.write(outFile, shape, y.data);
    if (o.json) {
        process.stdout.write(JSON.stringify({output: outName, shape, ms: ms.map(v => +v.toFixed(4))}) + '\n');
    }
    if (sess.release) await sess.release();
}

main().catch(e => { process.stderr.write(`run.js: ${e.stack || e}\n`); process.exit(1); });
