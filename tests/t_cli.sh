#!/usr/bin/env bash
# t_cli.sh - the CLI's good paths: info (text and JSON), run (NPY out, JSON,
# threads, output names), --version. Bad inputs are t_badinput.sh's.
set -u
QDB=${QDB:-./qdb}
pass=0; fail=0
check() { # what, condition...
    local what=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $what"; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
good=tests/data/bad/good.onnx
fuse=tests/data/fuse.onnx
json() { node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); process.exit(($1) ? 0 : 1)"; }

# info, text: the layer table and totals of good.onnx (Conv 4x1x3x3+4, Gemm 3x4+3)
$QDB info $good >"$tmp/info.txt" 2>"$tmp/err"; rc=$?
check "info exits 0" test $rc -eq 0
check "info lists the Conv layer" grep -qE "conv_1 +Conv +1x4x8x8 +40 +2.30K" "$tmp/info.txt"
check "info totals" grep -q "total: 5 layers, 55 parameters, 2.32K MACs per image" "$tmp/info.txt"
check "info prints nothing on stderr" test ! -s "$tmp/err"

# info --json: one object, layers with shapes, params and MACs
$QDB info $good --json >"$tmp/info.json"
check "info --json parses, 5 layers" json "j.layers.length==5 && j.params==55 && j.macs==2316" <"$tmp/info.json"
check "info --json conv row" json "j.layers[0].op=='Conv' && j.layers[0].macs==2304 && j.layers[0].shape.join('x')=='1x4x8x8'" <"$tmp/info.json"
check "info --json inputs" json "j.inputs[0].dtype=='float32' && j.opset>=9" <"$tmp/info.json"
check "info --shape traces at that shape" bash -c "$QDB info $fuse --shape 3x3x6x5 | grep -q 'traced at 3x3x6x5'"

# run: output NPY equals the numpy reference made with the fixture
$QDB run $good --input tests/data/bad/good_in.npy --output "$tmp/out.npy"; rc=$?
check "run exits 0" test $rc -eq 0
check "run output matches numpy" bash -c "node tests/ort/compare.js $tmp/out.npy tests/data/bad/good_out.npy --rtol 1e-5 >/dev/null"
# threads and fusion do not change results beyond rounding
$QDB run $fuse --input tests/data/fuse_in.npy --output "$tmp/f1.npy" --threads 1 --no-fuse
$QDB run $fuse --input tests/data/fuse_in.npy --output "$tmp/f2.npy" --threads 2
check "run --threads 2 (fused) = --threads 1 --no-fuse" bash -c "node tests/ort/compare.js $tmp/f2.npy $tmp/f1.npy --rtol 1e-5 >/dev/null"
$QDB run $fuse --input tests/data/fuse_in.npy --output "$tmp/d.npy" --output-name d_bn --json >"$tmp/run.json"
check "run --output-name picks d_bn" json "j.output=='d_bn' && j.shape.join('x')=='2x4x6x5' && j.ms.length==1" <"$tmp/run.json"
$QDB run $good --input tests/data/bad/good_in.npy --json --repeat 3 --warmup 1 >"$tmp/rep.json"
check "run --repeat 3 gives 3 timings" json "j.ms.length==3 && j.ms.every(x=>x>0)" <"$tmp/rep.json"
check "run --output overwrites an existing file atomically" bash -c \
    "cp tests/data/bad/good_in.npy $tmp/o.npy && $QDB run $good --input tests/data/bad/good_in.npy --output $tmp/o.npy && node tests/ort/compare.js $tmp/o.npy tests/data/bad/good_out.npy --rtol 1e-5 >/dev/null && ! ls $tmp/o.npy.tmp* 2>/dev/null"
# weights in Constant nodes (Paddle / TensorFlow converters): same numbers as ORT
cw=tests/data/const_weights.onnx
$QDB run $cw --input tests/data/const_weights_in.npy --output "$tmp/cw.npy"
node tests/ort/run.js $cw tests/data/const_weights_in.npy "$tmp/cw_ort.npy" >/dev/null
check "weights in Constant nodes: qdb = ORT" bash -c "node tests/ort/compare.js $tmp/cw.npy $tmp/cw_ort.npy --rtol 1e-5 >/dev/null"
check "weights in Constant nodes: info counts them" bash -c "$QDB info $cw --json | grep -q '\"params\":623'"
check "--version names the BLAS kernels" bash -c "$QDB --version | grep -q 'OpenBLAS kernels: '"
check "--help: usage on stdout, exit 0, lists tui" bash -c "$QDB --help >$tmp/u && grep -q 'usage: qdb COMMAND' $tmp/u && grep -q '^  tui ' $tmp/u"
# no arguments and no terminal: the flowchart on the demo in batch mode
# (QDB_DEMO swaps the bundled MobileNetV2 for LeNet to keep this quick)
QDB_DEMO=models/lenet.onnx $QDB </dev/null >$tmp/demo.out 2>$tmp/demo.err; rc=$?
check "no arguments, no terminal: flowchart summary, exit 0" bash -c "test $rc -eq 0 && grep -q '^## 7. Mixed-precision fallback' $tmp/demo.out && grep -q '^## 1\.' $tmp/demo.out"
check "no arguments, no terminal: says it runs in batch mode" grep -q 'no terminal: running the debugging flowchart on the demo' $tmp/demo.err
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
