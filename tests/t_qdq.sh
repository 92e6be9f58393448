#!/usr/bin/env bash
# t_qdq.sh - `qdb export qdq` run by ONNX Runtime (onnxruntime-node) against
# qdb's own W8A8 simulation with the same encodings, per bundled model, per-tensor
# and per-channel, on the first 2000 Fashion-MNIST test images:
#   - the encodings are exported once (seeded calibration), then both the QDQ
#     export and `qdb run --quant w8a8 --encodings` use them;
#   - the exported file holds one QuantizeLinear per activation encoding and one
#     DequantizeLinear per activation and weight encoding and per int32 bias (as many
#     as the export reports: each Conv/Gemm bias), input `image`, output `logits`;
#   - ORT with graph optimizations off computes the QDQ graph op by op in float,
#     as the simulation does: on the first QDQ_EXACT_IMAGES (500) images, top-1
#     agreement with qdb >= QDQ_EXACT_AGREE (0.995) and logits SQNR >= 30 dB
#     (what is left is float summation order amplified through the layers);
#   - ORT with all optimizations fuses QDQ groups into integer kernels
#     (QLinearConv...; checked to happen): top-1 agreement >= QDQ_AGREE (0.99).
# Then what QDQ cannot express is refused: exit 2, the tensor and bit-width
# named, no file written. Prints agreement and SQNR (20 log10 |y|/|y - y_ort|,
# y = qdb) per model, then "N passed, N failed".
#   QDQ_MODELS="lenet resnet18"   only these models
#   QDQ_IMAGES=2000  QDQ_EXACT_IMAGES=500  QDQ_THREADS=2
set -u
cd "$(dirname "$0")/.."
N=${QDQ_IMAGES:-2000}
N0=${QDQ_EXACT_IMAGES:-500}
T=${QDQ_THREADS:-2}
AGREE=${QDQ_AGREE:-0.99}
EXACT=${QDQ_EXACT_AGREE:-0.995}
MODELS=${QDQ_MODELS:-lenet resnet18 mobilenet_v2 shufflenet_v2}
. tests/lib.sh
QJS=tests/ort/qdq.js

[ -d tests/ort/node_modules/onnxruntime-node ] || { echo "FAIL onnxruntime-node missing: run 'make deps'"; fail=1; finish; }
[ "$N0" -le "$N" ] || N0=$N
node $QJS images "$N" "$tmp/x.npy" && node $QJS images "$N0" "$tmp/x0.npy"
check "first $N test images as NPY" test -s "$tmp/x.npy" -a -s "$tmp/x0.npy"

printf '%-14s %-11s %8s %8s %10s %8s %8s  %s\n' model weights agree sqnr_db "int ops" agree_f sqnr_f result
echo "(agree, sqnr_db: ORT with integer kernels on $N images; agree_f, sqnr_f: ORT float QDQ on $N0)"
for m in $MODELS; do
    for g in pt pc; do
        pcf=; [ $g = pc ] && pcf=--per-channel
        gran=$([ $g = pc ] && echo per-channel || echo per-tensor)
        b=$tmp/$m.$g
        row() { printf '%-14s %-11s %s\n' "$m" "$gran" "$*"; }
        if ! $QDB export encodings models/$m.onnx --quant w8a8 $pcf --threads $T -o $b.json 2>$b.err; then
            row "FAIL (export encodings: $(tail -1 $b.err))"; fail=$((fail + 1)); continue
        fi
        if ! $QDB export qdq models/$m.onnx --quant w8a8 $pcf --encodings $b.json -o $b.onnx 2>$b.err; then
            row "FAIL (export qdq: $(tail -1 $b.err))"; fail=$((fail + 1)); continue
        fi
        nbias=$(sed -n 's/.*, \([0-9]*\) int32 biases).*/\1/p' $b.err)
        if ! $QDB run models/$m.onnx --quant w8a8 $pcf --encodings $b.json --threads $T \
                --input $tmp/x.npy --output $b.qdb.npy >/dev/null 2>$b.err; then
            row "FAIL (qdb run: $(tail -1 $b.err))"; fail=$((fail + 1)); continue
        fi
        # structure: Q per activation encoding, DQ per activation and weight encoding
        # and per int32 bias (each Conv/Gemm bias; ResNet-18's downsample convs have none)
        node $QJS ops $b.onnx >$b.ops.json
        nact=$(jget $b.json "Object.keys(j.activation_encodings).length")
        npar=$(jget $b.json "Object.keys(j.param_encodings).length")
        check "$m $gran: 1..$npar int32 biases ('${nbias}')" test "${nbias:-0}" -ge 1 -a "${nbias:-0}" -le "$npar"
        check "$m $gran: $nact QuantizeLinear, $nact + $npar + ${nbias:-0} DequantizeLinear" \
            js $b.ops.json "j.ops.QuantizeLinear==$nact && j.ops.DequantizeLinear==$nact+$npar+${nbias:-0}"
        # ORT as written (float QDQ) and with integer kernels
        if ! node $QJS run $b.onnx $tmp/x0.npy $b.ort0.npy --threads $T --opt disabled >$b.run0.json 2>$b.err ||
           ! node $QJS run $b.onnx $tmp/x.npy $b.ort.npy --threads $T --ops >$b.run.json 2>$b.err; then
            row "FAIL (onnxruntime: $(grep -v Serializ $b.err | tail -1))"; fail=$((fail + 1)); continue
        fi
        check "$m $gran: ORT sees input image, output logits" js $b.run0.json "j.input=='image' && j.output=='logits'"
        node $QJS agree $b.qdb.npy $b.ort0.npy --rows $N0 >$b.a0.json
        node $QJS agree $b.qdb.npy $b.ort.npy >$b.a.json
        ints=$(jget $b.run.json "Object.keys(j.ops).filter(k=>/^Q(Linear|Gemm)/.test(k)).reduce((s,k)=>s+j.ops[k],0)")
        a=$(jget $b.a.json "j.agree"); s=$(jget $b.a.json "j.sqnr_db")
        a0=$(jget $b.a0.json "j.agree"); s0=$(jget $b.a0.json "j.sqnr_db")
        ok=1
        js $b.a0.json "j.images==$N0 && j.agree>=$EXACT && j.sqnr_db>=30" || ok=0
        check "$m $gran: ORT float QDQ vs qdb: agreement $a0 >= $EXACT, SQNR $s0 >= 30 dB" test $ok -eq 1
        check "$m $gran: ORT fused QDQ into integer kernels ($ints)" test "$ints" -gt 0
        want=$AGREE
        js $b.a.json "j.images==$N && j.agree>=$want" || ok=0
        check "$m $gran: ORT integer kernels vs qdb: agreement $a >= $want" js $b.a.json "j.agree>=$want"
        row "$(printf '%8s %8s %10s %8s %8s' "$a" "$s" "$ints" "$a0" "$s0")  $([ $ok = 1 ] && echo PASS || echo FAIL)"
    done
done

# refusals: exit 2, one line naming the tensor and its bit-width, no file
lenet=models/lenet.onnx
for q in w4a8 w8a16; do
    $QDB export qdq $lenet --quant $q --calib 50 -o $tmp/r.onnx >/dev/null 2>$tmp/err; rc=$?
    bits=$([ $q = w4a8 ] && echo 4 || echo 16)
    check "--quant $q: exit 2 ($rc)" test $rc -eq 2
    check "--quant $q: names a tensor and '$bits-bit': $(head -c 200 $tmp/err)" grep -q "quantizer '.*' is $bits-bit" $tmp/err
    check "--quant $q: one line" test "$(wc -l <$tmp/err)" -eq 1
    check "--quant $q: no file" test ! -e $tmp/r.onnx
done
# a disabled quantizer has no pair; a 4-bit quantizer that is disabled is no obstacle
$QDB export qdq $lenet --quant w8a8 --calib 50 --set 'logits enabled=0' -o $tmp/d.onnx 2>$tmp/err
check "--set 'logits enabled=0' exports ($(head -c 200 $tmp/err))" test -s $tmp/d.onnx
node $QJS ops $tmp/d.onnx >$tmp/d.ops.json
check "logits disabled: 7 QuantizeLinear, 12 + 5 (int32 biases) DequantizeLinear" js $tmp/d.ops.json "j.ops.QuantizeLinear==7 && j.ops.DequantizeLinear==17"
node $QJS run $tmp/d.onnx $tmp/x0.npy $tmp/d.npy --opt disabled >$tmp/d.run.json 2>/dev/null
check "logits disabled: ORT runs it, output still logits" js $tmp/d.run.json "j.output=='logits'"
$QDB export qdq $lenet --quant w8a8 --calib 50 -o $tmp/no/such/dir/m.onnx >/dev/null 2>$tmp/err; rc=$?
check "unwritable path: exit 2 naming it ($rc: $(head -c 200 $tmp/err))" bash -c "test $rc -eq 2 && grep -q '$tmp/no/such/dir/m.onnx' $tmp/err"
finish
