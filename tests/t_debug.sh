#!/usr/bin/env bash
# t_debug.sh - `qdb debug`, the PTQ debugging flowchart, end to end:
#   - LeNet at W4A4 on 300 images: every step runs, the report (report.json,
#     summary.md, CSV tables) holds consistent numbers: the sanity check
#     passes, the grid's W4A4 cell is the target, the per-quantizer analysis
#     used its cache and ran fewer nodes than the naive way, `--naive` gives
#     the same table, the fallback stops within budget, recommendations name
#     quantizers;
#   - data without labels: the metric is agreement with FP32;
#   - Ctrl-C during a step: exit 1, the report holds the steps before it;
#   - bad input: exit 2, one line naming what is wrong.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

L=models/lenet.onnx
common="--data fashion-mnist --limit 300 --calib 200 --threads 2"
$QDB debug $L $common --target w4a4 --fixes pc,cle,bc --report $tmp/r --json >$tmp/j.json 2>$tmp/err
rc=$?
check "lenet debug exits 0 ($rc: $(tail -c 300 $tmp/err))" test $rc -eq 0
for f in report.json summary.md configurations.csv quantizers.csv tensors.csv mixed.csv; do
    check "report has $f" test -s $tmp/r/$f
done
check "--json on stdout is the report" cmp -s <(jget $tmp/j.json 'JSON.stringify(j.quantized)') <(jget $tmp/r/report.json 'JSON.stringify(j.quantized)')
R=$tmp/r/report.json
check "all steps done" js $R "j.steps_done.join()=='sanity,wa,fixes,perq,tensors,recommend,mixed' && !j.stopped_in"
check "sanity passes: bypassed and 32-bit reproduce FP32" js $R "j.sanity.ok && j.sanity.bypassed.agreement==1 && j.sanity.bits32.accuracy==j.fp32"
check "grid is 4x4 and its W4A4 cell is the target" js $R "j.weights_or_activations.grid.length==16 && j.weights_or_activations.grid.find(c=>c.label=='W4A4').accuracy==j.quantized.accuracy"
check "W16A16 is within half a point of FP32" js $R "Math.abs(j.weights_or_activations.grid[0].accuracy-j.fp32)<=0.005"
check "fixes: 3 weight fixes, 6 range methods" js $R "j.fixes.weights.map(f=>f.label).join()=='pc,cle,bc' && j.fixes.activations.length==6"
check "per-quantizer: cached, fewer node runs than naive" js $R "j.per_quantizer.cached && j.per_quantizer.node_runs < j.per_quantizer.node_runs_naive && j.per_quantizer.quantizers.length>=10"
check "tensors: one row per measured quantizer" js $R "j.tensors.length==j.per_quantizer.quantizers.length"
check "rmse/scale of 4-bit weights near 0.289" js $R "j.tensors.filter(t=>t.kind=='param').every(t=>t.local.rmse_scale>0.2&&t.local.rmse_scale<0.4)"
check "fallback: steps taken until within budget (or none needed)" js $R "j.quantized.drop_points<=1 ? j.mixed_precision.steps.length==0 : j.mixed_precision.met ? j.mixed_precision.steps[j.mixed_precision.steps.length-1].drop_points<=1 : j.mixed_precision.steps.length<=10 && j.mixed_precision.reranked<=3"
check "recommendations name a quantizer" js $R "j.recommendations.length>=4 && j.recommendations.some(r=>j.per_quantizer.quantizers.some(q=>r.includes(q.name)))"
check "summary has every section" bash -c "grep -c '^## ' $tmp/r/summary.md | grep -qx 7"
n=$(jget $R 'j.per_quantizer.quantizers.length')
check "quantizers.csv has a row per quantizer" test "$(($(wc -l <$tmp/r/quantizers.csv) - 1))" -eq "$n"
echo "lenet W4A4: $(jget $R '`FP32 ${j.fp32}, W4A4 ${j.quantized.accuracy}, ${j.per_quantizer.quantizers.length} quantizers, node runs ${j.per_quantizer.node_runs}/${j.per_quantizer.node_runs_naive}`')"

# the cache changes nothing: --naive gives the same per-quantizer table
$QDB debug $L $common --target w4a4 --steps perq --naive --report $tmp/n >/dev/null 2>$tmp/err
check "--naive run exits 0 ($(tail -c 200 $tmp/err))" test -s $tmp/n/quantizers.csv
check "--naive gives the same per-quantizer table ($(diff $tmp/r/quantizers.csv $tmp/n/quantizers.csv | head -3))" cmp -s $tmp/r/quantizers.csv $tmp/n/quantizers.csv
check "--naive ran every node" js $tmp/n/report.json "!j.per_quantizer.cached && j.per_quantizer.node_runs==j.per_quantizer.node_runs_naive"
check "--steps perq ran only that (and the recommendations)" js $tmp/n/report.json "j.steps_done.join()=='perq,recommend'"

# no labels: agreement is the metric
node tests/ort/qdq.js images 120 $tmp/x.npy >/dev/null 2>&1
$QDB debug $L --data npy:$tmp/x.npy --calib 100 --target w4a4 --steps sanity,perq,mixed --json >$tmp/u.json 2>$tmp/err
check "unlabeled data: exit 0 ($(tail -c 200 $tmp/err))" test -s $tmp/u.json
check "unlabeled data: metric is agreement, FP32 scores 1" js $tmp/u.json "j.metric=='agreement' && j.fp32==1 && j.quantized.accuracy===null && j.quantized.agreement<=1"

# Ctrl-C in step 2 keeps step 1
$QDB debug models/resnet18.onnx --data fashion-mnist --limit 256 --calib 64 --threads 2 --report $tmp/c >/dev/null 2>$tmp/cerr &
pid=$!
for i in $(seq 1 600); do grep -q 'step 2/7' $tmp/cerr 2>/dev/null && break; sleep 0.2; done
sleep 1
kill -INT $pid
wait $pid
rc=$?
check "Ctrl-C: exit 1 (got $rc: $(tail -c 200 $tmp/cerr))" test $rc -eq 1
check "Ctrl-C: one line says stopped and where" grep -q 'stopped by Ctrl-C during step 2 (wa)' $tmp/cerr
check "Ctrl-C: report keeps step 1" js $tmp/c/report.json "j.steps_done[0]=='sanity' && j.stopped_in=='wa' && j.sanity.ok"
check "Ctrl-C: summary says so" grep -q 'Stopped during step 2' $tmp/c/summary.md

# bad input
bad "bad target" "--target" debug $L $common --target w99a8
bad "bad step" "unknown step" debug $L $common --steps bogus
bad "bad grid" "--grid" debug $L $common --grid 8,1
bad "bad fix" "unknown fix" debug $L $common --fixes pc,foo
bad "bad range" "--ranges" debug $L $common --ranges minmax,bogus
bad "bad mem" "--mem" debug $L $common --mem lots
bad "bad max-drop" "--max-drop" debug $L $common --max-drop -1
bad "unwritable report" "/proc/qdb" debug $L $common --report /proc/qdb/r
bad "--quant is --target" "--target" debug $L $common --quant w8a8
bad "no data" "--data" debug $L
printf 'not a model' >$tmp/bad.onnx
bad "corrupt model" "$tmp/bad.onnx" debug $tmp/bad.onnx $common
finish
