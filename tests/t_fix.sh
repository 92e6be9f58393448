#!/usr/bin/env bash
# t_fix.sh - the weight-fix commands end to end on the bundled models:
#   - `qdb cle --keep-relu6 --no-hba` writes a model that ONNX Runtime
#     (onnxruntime-node) runs to the original's outputs within 1e-5 relative
#     on the first 500 Fashion-MNIST test images, for every bundled model;
#   - `qdb cle` with its defaults on MobileNetV2: ReLU6 replaced, the worst
#     per-channel range spread shrinks, the FP32 top-1 moves by at most 1 point,
#     and W8A8 per-tensor accuracy (`eval --quant w8a8 --cle`) gains;
#   - `qdb bias-correct` writes a model that `qdb eval` runs to the accuracy the
#     in-process correction gave; bias correction helps W4A8 ResNet-18;
#   - `qdb adaround` writes a model and encodings that reproduce `eval --adaround`
#     on LeNet at W4A8, no layer worse than nearest rounding;
#   - bad input: exit 2, one line naming what is wrong, no file left.
# Prints the figures, then "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
QJS=tests/ort/qdq.js
T=2

[ -d tests/ort/node_modules/onnxruntime-node ] || { echo "FAIL onnxruntime-node missing: run 'make deps'"; fail=1; finish; }
node $QJS images 500 "$tmp/x.npy"

# CLE without ReLU6 replacement or HBA computes what the model computed
for m in lenet resnet18 mobilenet_v2 shufflenet_v2; do
    $QDB cle models/$m.onnx -o $tmp/$m.cle.onnx --keep-relu6 --no-hba --json >$tmp/$m.cle.json 2>$tmp/err
    check "$m: qdb cle exits 0 ($(head -c 200 $tmp/err))" test -s $tmp/$m.cle.onnx
    check "$m: something equalized, nothing replaced" js $tmp/$m.cle.json "j.pairs+j.triplets>0 && j.relu6_replaced==0"
    node $QJS run models/$m.onnx $tmp/x.npy $tmp/$m.ref.npy --threads $T >/dev/null 2>$tmp/err &&
        node $QJS run $tmp/$m.cle.onnx $tmp/x.npy $tmp/$m.got.npy --threads $T >/dev/null 2>>$tmp/err
    r=$(node tests/ort/compare.js $tmp/$m.ref.npy $tmp/$m.got.npy --rtol 1e-5 2>&1); rc=$?
    echo "$m: CLE (no ReLU6 replaced, no HBA) vs original under ONNX Runtime: $r"
    check "$m: ORT outputs of the equalized model within 1e-5 relative ($r)" test $rc -eq 0
done

# CLE as the white paper uses it, on MobileNetV2
mb=models/mobilenet_v2.onnx
$QDB cle $mb -o $tmp/mb.onnx --data fashion-mnist --limit 1000 --threads $T --json >$tmp/mb.json 2>$tmp/err
check "mobilenet_v2: qdb cle --data exits 0 ($(head -c 200 $tmp/err))" test -s $tmp/mb.onnx
echo "mobilenet_v2 CLE: $(jget $tmp/mb.json "[j.pairs+' pairs', j.triplets+' triplets', j.relu6_replaced+' ReLU6 replaced',
  'worst spread '+Math.max(...j.layers.map(l=>l.spread_before)).toFixed(1)+' -> '+Math.max(...j.layers.map(l=>l.spread_after)).toFixed(1),
  'FP32 top-1 '+j.fp32.accuracy_before+' -> '+j.fp32.accuracy_after].join(', ')")"
check "mobilenet_v2: ReLU6 replaced, triplets equalized" js $tmp/mb.json "j.relu6_replaced>0 && j.triplets>0 && j.converged"
check "mobilenet_v2: worst per-channel spread at least 10x smaller" \
    js $tmp/mb.json "Math.max(...j.layers.map(l=>l.spread_after))*10 <= Math.max(...j.layers.map(l=>l.spread_before))"
check "mobilenet_v2: ranges per layer, one per channel" \
    js $tmp/mb.json "j.layers.every(l=>l.range_before.length==l.channels && l.range_after.length==l.channels)"
check "mobilenet_v2: FP32 top-1 moves by at most 1 point" \
    js $tmp/mb.json "j.fp32.images==1000 && Math.abs(j.fp32.accuracy_after-j.fp32.accuracy_before)<=0.01"
ev="--data fashion-mnist --limit 1000 --calib 500 --threads $T --json"
$QDB eval $mb $ev --quant w8a8 >$tmp/p.json 2>$tmp/err
$QDB eval $mb $ev --quant w8a8 --cle >$tmp/c.json 2>>$tmp/err
$QDB eval $tmp/mb.onnx $ev --quant w8a8 >$tmp/c2.json 2>>$tmp/err
echo "mobilenet_v2 W8A8 per-tensor top-1: plain $(jget $tmp/p.json j.accuracy), --cle $(jget $tmp/c.json j.accuracy), cle'd file $(jget $tmp/c2.json j.accuracy)"
check "mobilenet_v2 W8A8 per-tensor: --cle gains >= 3 points ($(head -c 200 $tmp/err))" \
    node -e "const f=require('fs');const p=JSON.parse(f.readFileSync('$tmp/p.json')),c=JSON.parse(f.readFileSync('$tmp/c.json'));
process.exit(c.accuracy>=p.accuracy+0.03 && c.sim.cle.triplets>0 ? 0 : 1)"
check "mobilenet_v2: eval of the cle'd file = eval --cle" \
    node -e "const f=require('fs');const a=JSON.parse(f.readFileSync('$tmp/c.json')),b=JSON.parse(f.readFileSync('$tmp/c2.json'));
process.exit(Math.abs(a.accuracy-b.accuracy)<=0.002 ? 0 : 1)"

# bias correction: the written model reproduces the in-process result
rn=models/resnet18.onnx
$QDB eval $rn $ev --quant w4a8 >$tmp/r0.json 2>$tmp/err
$QDB bias-correct $rn --quant w4a8 --calib 500 --images 256 --threads $T -o $tmp/rbc.onnx --json >$tmp/rbc.json 2>>$tmp/err
$QDB eval $rn $ev --quant w4a8 --bias-correct empirical >$tmp/r1.json 2>>$tmp/err
$QDB eval $tmp/rbc.onnx $ev --quant w4a8 >$tmp/r2.json 2>>$tmp/err
echo "resnet18 W4A8 per-tensor top-1: plain $(jget $tmp/r0.json j.accuracy), --bias-correct $(jget $tmp/r1.json j.accuracy), corrected file $(jget $tmp/r2.json j.accuracy)"
check "resnet18: bias-correct wrote a model and corrected layers ($(head -c 200 $tmp/err))" \
    js $tmp/rbc.json "j.sim.bias_correction.layers>0 && j.layers.length>0"
check "resnet18 W4A8: the corrected file evaluates like the in-process correction (within 1 point)" \
    node -e "const f=require('fs');const a=JSON.parse(f.readFileSync('$tmp/r1.json')),b=JSON.parse(f.readFileSync('$tmp/r2.json'));
process.exit(Math.abs(a.accuracy-b.accuracy)<=0.01 ? 0 : 1)"
check "resnet18 W4A8: bias correction raises output SQNR" \
    node -e "const f=require('fs');const a=JSON.parse(f.readFileSync('$tmp/r0.json')),b=JSON.parse(f.readFileSync('$tmp/r1.json'));
process.exit(b.sqnr_db>a.sqnr_db ? 0 : 1)"

# AdaRound: the written model and encodings reproduce the in-process result
ln=models/lenet.onnx
$QDB eval $ln $ev --quant w4a8 >$tmp/l0.json 2>$tmp/err
$QDB adaround $ln --quant w4a8 --calib 500 --adaround-iters 200 --threads $T -o $tmp/lada.onnx \
    --encodings-out $tmp/lada.enc.json --json >$tmp/lada.json 2>>$tmp/err
$QDB eval $ln $ev --quant w4a8 --adaround --adaround-iters 200 >$tmp/l1.json 2>>$tmp/err
$QDB eval $tmp/lada.onnx $ev --quant w4a8 --encodings $tmp/lada.enc.json >$tmp/l2.json 2>>$tmp/err
echo "lenet W4A8 per-tensor top-1: nearest $(jget $tmp/l0.json j.accuracy), --adaround $(jget $tmp/l1.json j.accuracy), written model + encodings $(jget $tmp/l2.json j.accuracy)"
check "lenet: adaround wrote model and encodings, 5 layers ($(head -c 200 $tmp/err))" \
    js $tmp/lada.json "j.layers.length==5 && j.sim.adaround.layers==5 && j.layers.every(l=>l.mse_adaround<=l.mse_nearest)"
check "lenet W4A8: AdaRound not worse than nearest by more than 0.5 points" \
    node -e "const f=require('fs');const a=JSON.parse(f.readFileSync('$tmp/l0.json')),b=JSON.parse(f.readFileSync('$tmp/l1.json'));
process.exit(b.accuracy>=a.accuracy-0.005 ? 0 : 1)"
check "lenet W4A8: the written model + encodings evaluate like the in-process AdaRound (within 0.5 points)" \
    node -e "const f=require('fs');const a=JSON.parse(f.readFileSync('$tmp/l1.json')),b=JSON.parse(f.readFileSync('$tmp/l2.json'));
process.exit(Math.abs(a.accuracy-b.accuracy)<=0.005 ? 0 : 1)"

# bad input: exit 2, one line naming what is wrong, no file
bad "cle without -o" "-o" cle models/lenet.onnx
bad "cle of a missing model" "nosuch.onnx" cle $tmp/nosuch.onnx -o $tmp/x.onnx
bad "cle to an unwritable path" "$tmp/no/dir/x.onnx" cle models/lenet.onnx -o $tmp/no/dir/x.onnx
bad "bias-correct --mode foo" "foo" bias-correct models/lenet.onnx --mode foo -o $tmp/y.onnx
bad "eval --bias-correct foo" "foo" eval models/lenet.onnx --data fashion-mnist --bias-correct foo
bad "adaround without --encodings-out" "--encodings-out" adaround models/lenet.onnx -o $tmp/z.onnx
bad "eval --adaround-iters 0" "--adaround-iters" eval models/lenet.onnx --data fashion-mnist --adaround-iters 0
bad "bias-correct --images above --calib" "--images 2000" bias-correct models/lenet.onnx --images 2000 -o $tmp/w.onnx
bad "adaround --iterations with --adaround-iters" "not both" adaround models/lenet.onnx --iterations 5 --adaround-iters 5 \
    -o $tmp/v.onnx --encodings-out $tmp/v.json
bad "adaround to an unwritable encodings path" "$tmp/no/e.json" adaround models/lenet.onnx --quant w4a8 --calib 50 \
    --iterations 5 -o $tmp/u.onnx --encodings-out $tmp/no/e.json
check "no files left by the failures (the model without its encodings neither)" \
    bash -c "! ls $tmp/x.onnx $tmp/y.onnx $tmp/z.onnx $tmp/w.onnx $tmp/v.onnx $tmp/u.onnx 2>/dev/null | grep -q ."
finish
