#!/usr/bin/env bash
# t_eval.sh - qdb eval: each bundled model's FP32 accuracy on the 10,000
# Fashion-MNIST test images equals PyTorch's (models/<arch>.json) within 0.05
# points; JSON fields; subsets; data that does not fit the model.
set -u
QDB=${QDB:-./qdb}
. "$(dirname "$0")/lib.sh"

for js in models/*.json; do
    arch=$(basename "$js" .json)
    [ -f "models/$arch.onnx" ] || continue
    $QDB eval "models/$arch.onnx" --data fashion-mnist --threads 2 --json >"$tmp/$arch.json" 2>"$tmp/err"
    check "$arch: eval exits 0 ($(head -c 300 "$tmp/err"))" test $? -eq 0
    q=$(jget "$tmp/$arch.json" "j.accuracy"); p=$(jget "$js" "j.pytorch_test_accuracy")
    n=$(jget "$tmp/$arch.json" "j.images")
    echo "$arch: qdb $q, PyTorch $p, images $n"
    check "$arch: 10000 images" test "$n" = 10000
    check "$arch: |qdb - PyTorch| <= 0.0005 ($q vs $p)" node -e "process.exit(Math.abs($q - $p) <= 0.0005 ? 0 : 1)"
done

lenet=models/lenet.onnx
$QDB eval $lenet --data fashion-mnist --limit 500 --seed 3 --json >"$tmp/a.json"
$QDB eval $lenet --data fashion-mnist --limit 500 --seed 3 --json --batch 7 >"$tmp/b.json"
check "same subset and result for the same seed, any batch size" \
    node -e "const f=require('fs'),a=JSON.parse(f.readFileSync('$tmp/a.json')),b=JSON.parse(f.readFileSync('$tmp/b.json'));process.exit(a.correct==b.correct&&a.images==500&&a.top5>=a.accuracy?0:1)"
check "JSON has accuracy, top5, images, images_per_s" \
    node -e "const j=JSON.parse(require('fs').readFileSync('$tmp/a.json'));process.exit(['accuracy','top5','images','images_per_s'].every(k=>typeof j[k]=='number')?0:1)"
check "text output" bash -c "$QDB eval $lenet --data fashion-mnist --limit 100 | grep -q '^top-1: 0\.[0-9]* ([0-9]*/100)'"

# data that does not fit: 3-channel images into a 1-channel model
node -e "
const f=require('fs');const n=4,c=3,h=28,w=28;const hdr=\"{'descr': '<f4', 'fortran_order': False, 'shape': (\"+[n,c,h,w].join(', ')+\"), }\";
let s=hdr+' '.repeat(63-((10+hdr.length)%64))+'\n';const b=Buffer.alloc(10+s.length+n*c*h*w*4);
b.write('\x93NUMPY','latin1');b[6]=1;b[7]=0;b.writeUInt16LE(s.length,8);b.write(s,10,'latin1');f.writeFileSync('$tmp/rgb.npy',b);"
$QDB eval $lenet --data "npy:$tmp/rgb.npy" >/dev/null 2>"$tmp/err"; rc=$?
check "wrong data shape: exit 2" test $rc -eq 2
check "wrong data shape: names both shapes" grep -q "3x28x28.*1x28x28" "$tmp/err"
check "wrong data shape: one line" test "$(wc -l <"$tmp/err")" -eq 1
$QDB eval $lenet --data nosuch:thing >/dev/null 2>"$tmp/err"; rc=$?
check "unknown data spec: exit 2 with a message" bash -c "test $rc -eq 2 && grep -q nosuch $tmp/err"
$QDB eval $lenet >/dev/null 2>"$tmp/err"; rc=$?
check "missing --data: exit 2" bash -c "test $rc -eq 2 && grep -q -- --data $tmp/err"
$QDB eval $lenet --data fashion-mnist --limit 0 >/dev/null 2>&1; rc=$?
check "--limit 0: exit 2" test $rc -eq 2
finish
