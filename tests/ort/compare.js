#!/usr/bin/env node
// compare.js - compares two float32 NPY files (a test output against a reference).
//   node tests/ort/compare.js GOT.npy REF.npy [--rtol R]
// Prints one line: "maxdiff=<max|got-ref|> maxref=<max|ref|> ratio=<maxdiff/maxref>".
// With --rtol exits 0 when maxdiff <= R * maxref, else 3. Shape mismatch or
// NaN/Inf in either file: a message and exit 3. Unreadable files: exit 2.
'use strict';
const npy = require('./npy');

const args = process.argv.slice(2);
let rtol = null;
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rtol') rtol = Number(args[++i]);
    else pos.push(args[i]);
}
if (pos.length !== 2 || (rtol !== null && !(rtol >= 0))) {
    process.stderr.write('usage: node tests/ort/compare.js GOT.npy REF.npy [--rtol R]\n');
    process.exit(2);
}
let a, b;
try { a = npy.read(pos[0]); b = npy.read(pos[1]); }
catch (e) { process.stderr.write(`compare: ${e.message}\n`); process.exit(2); }
if (a.shape.join(',') !== b.shape.join(',')) {
    console.log(`shape mismatch: got [${a.shape}] want [${b.shape}]`);
    process.exit(3);
}
let maxdiff = 0, maxref = 0, bad = 0;
for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i], y = b.data[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) { bad++; continue; }
    const d = Math.abs(x - y);
    if (d > maxdiff) maxdiff = d;
    if (Math.abs(y) > maxref) maxref = Math.abs(y);
}
const ratio = maxref > 0 ? maxdiff / maxref : (maxdiff > 0 ? Infinity : 0);
const fmt = v => v.toExponential(3).replace(/e([+-])(\d)$/, 'e$10$2'); // 1.234e-05
console.log(`maxdiff=${fmt(maxdiff)} maxref=${fmt(maxref)} ratio=${fmt(ratio)}` +
    (bad ? ` nonfinite=${bad}` : ''));
if (bad) process.exit(3);
if (rtol !== null && !(maxdiff <= rtol * maxref)) process.exit(3);
