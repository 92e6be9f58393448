#!/usr/bin/env bash
# t_bundle.sh - `qdb export bundle` end to end on a LeNet session:
#   - qdb export bundle SESSION --out DIR (parent made): every file there and
#     non-empty; both encodings formats parse (1.0.0 with its version,
#     0.6.1 with activation_encodings/param_encodings) and equal what
#     `qdb export encodings` writes for the same options; the built-in config
#     byte for byte; the manifest's sha256s match sha256sum and list every
#     file; report.json and plots (with gnuplot); the QDQ model run by ONNX
#     Runtime agrees with qdb (when tests/ort is installed); --json;
#   - qdb do SESSION export bundle: journaled (show --json), same encodings;
#   - conv1 at 4 bits: bitwidth 4 in both formats; no model_qdq.onnx, with a
#     warning and the reason in the manifest;
#   - refusals, exit 2 and one line: an existing bundle (files byte-identical
#     after), --out under a file, in /proc, a file, missing --out, unknown
#     options; --force replaces the bundle and leaves other files alone;
#   - Ctrl-C during the report leaves an old bundle byte-identical; kill -9
#     leaves only a staging directory, which the next bundle removes;
#   - replay --check re-runs the journaled bundles into its --out.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

L=models/lenet.onnx
S=$tmp/s.json
T=2
# sums DIR: sha256 of every file under DIR, by name
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
last() { "$QDB" do $S show --json >$tmp/show.json && jget $tmp/show.json "JSON.stringify(j.journal[j.journal.length-1]$1)"; }
BUNDLE="encodings_0.6.1.json encodings_1.0.0.json model_qdq.onnx quantsim_config.json session.json manifest.json"

# ---- the session ----
run "load" do $S load $L --data fashion-mnist --limit 200
run "set calib" do $S set calib 200
run "eval --quant w8a8" do $S eval --quant w8a8 --threads $T
cp $S $tmp/s0.json

# ---- qdb export bundle, with the report ----
D=$tmp/new/parent/D
run "export bundle" export bundle $S --out $D --threads $T --json
cp $tmp/out $tmp/b.json
check "stderr: the summary line" grep -qxF "qdb export: wrote bundle $D (7 files)" $tmp/err
for f in $BUNDLE report/report.json; do check "bundle: $f non-empty" test -s $D/$f; done
check "bundle: nothing else at the top (no staging left)" test "$(ls -A $D | LC_ALL=C sort | tr '\n' ' ')" = "encodings_0.6.1.json encodings_1.0.0.json manifest.json model_qdq.onnx quantsim_config.json report session.json "
check "--json: out, files, counts, report numbers" js $tmp/b.json "j.out=='$D' && j.files.length==7 && j.files.includes('report') && j.enabled>0 && j.int32_biases>0 && j.qdq===true && j.report===true && j.fp32>0.5 && j.quantized.accuracy>0.5"
check "export bundle does not touch the session" cmp -s $S $tmp/s0.json
check "0.6.1: activation and param encodings" js $D/encodings_0.6.1.json "typeof j.activation_encodings=='object' && Object.keys(j.param_encodings).length>0 && j.param_encodings['1.conv1.weight'][0].bitwidth==8"
check "1.0.0: its version, lists" js $D/encodings_1.0.0.json "j.version=='1.0.0' && Array.isArray(j.activation_encodings) && j.param_encodings.some(p=>p.name=='1.conv1.weight' && p.bw==8)"
"$QDB" export encodings $L --quant w8a8 --calib 200 --seed 0 -o $tmp/e.json 2>/dev/null
check "encodings = qdb export encodings with the session's options" cmp -s $tmp/e.json $D/encodings_0.6.1.json
check "quantsim_config.json = the built-in default" cmp -s sessions/configs/default.json $D/quantsim_config.json
check "session.json = the session" cmp -s $S $D/session.json
M=$D/manifest.json
check "manifest: version, session, model sha256" js $M "j.qdb_version.length>0 && j.session=='$S' && j.model.sha256=='$(sha256sum $L | cut -d' ' -f1)'"
check "manifest: data and quantization" js $M "j.data.spec=='fashion-mnist' && j.data.images==200 && j.data.sha256==JSON.parse(require('fs').readFileSync('$S')).data.sha256 && j.quantization=='--quant=w8a8 --calib=200' && j.qdq.written===true && j.report.options=='--target=w8a8 --calib=200' && j.report.not_applied===null"
jget $M "j.files.map(f=>f.sha256+'  '+f.name).join('\n')" >$tmp/m.sum
check "manifest: every sha256 matches sha256sum" bash -c "cd $D && sha256sum -c --quiet $tmp/m.sum"
check "manifest: sizes" js $M "j.files.every(f=>require('fs').statSync('$D/'+f.name).size==f.bytes)"
check "manifest: lists every file but itself" test "$(jget $M "j.files.map(f=>f.name).join('\n')")" = "$(cd $D && find . -type f ! -name manifest.json | sed 's|^\./||' | LC_ALL=C sort)"
check "report: for the session's target" js $D/report/report.json "j.target=='W8A8' && j.images==200 && j.sanity.ok===true"
if command -v gnuplot >/dev/null; then
    check "report: plots (PNG and SVG)" bash -c "ls $D/report/plots/*.png && ls $D/report/plots/*.svg" >/dev/null
fi
check "no file names the staging directory" bash -c "! grep -rq 'bundle\.tmp' $D"

# the QDQ model in ONNX Runtime, against qdb with the bundle's encodings
if [ -d tests/ort/node_modules/onnxruntime-node ]; then
    Q=tests/ort/qdq.js
    node $Q images 200 $tmp/x.npy
    nact=$(jget $D/encodings_0.6.1.json "Object.keys(j.activation_encodings).length")
    node $Q ops $D/model_qdq.onnx >$tmp/ops.json
    check "QDQ: one QuantizeLinear per activation encoding ($nact)" js $tmp/ops.json "j.ops.QuantizeLinear==$nact"
    node $Q run $D/model_qdq.onnx $tmp/x.npy $tmp/ort.npy --threads $T --opt disabled >/dev/null 2>$tmp/err
    check "QDQ: runs in ONNX Runtime ($(tail -1 $tmp/err))" test -s $tmp/ort.npy
    "$QDB" run $L --quant w8a8 --encodings $D/encodings_0.6.1.json --input $tmp/x.npy --output $tmp/qdb.npy >/dev/null 2>&1
    node $Q agree $tmp/qdb.npy $tmp/ort.npy >$tmp/agree.json
    check "QDQ: ORT agrees with qdb ($(cat $tmp/agree.json))" js $tmp/agree.json "j.images==200 && j.agree>=0.99"
else
    echo "note: tests/ort not installed (make deps): the QDQ model is not run"
fi

# ---- qdb do SESSION export bundle: journaled ----
D1=$tmp/D1
run "do export bundle" do $S export bundle --out $D1 --no-report
check "do: one line with the results" grep -q '^\[4\] export bundle --out .*: files 6, enabled [0-9]*, int32_biases [0-9]*, qdq true, report false' $tmp/out
e=$(last '')
r=$(last .result)
check "do: journaled" grep -q '"argv":\["export","bundle","--out"' <<<"$e"
check "do: results, no paths ($r)" bash -c "grep -q '\"files\":6' <<<'$r' && ! grep -q '$tmp' <<<'$r'"
check "do: same encodings as export bundle" cmp -s $D/encodings_1.0.0.json $D1/encodings_1.0.0.json
check "do: no report/" test ! -e $D1/report
check "do: manifest says no report" js $D1/manifest.json "j.report===null && j.files.length==5"

# ---- conv1 at 4 bits: no QDQ model ----
run "set bits" do $S set bits '*conv1*' 4
D2=$tmp/D2
run "do export bundle at 4 bits" do $S export bundle --out $D2 --no-report
check "4 bits: a one-line warning names the quantizer" grep -q "warning: no model_qdq.onnx: .*conv1.weight' is 4-bit" $tmp/err
check "4 bits: 0.6.1 bitwidth 4" js $D2/encodings_0.6.1.json "j.param_encodings['1.conv1.weight'][0].bitwidth==4"
check "4 bits: 1.0.0 bw 4" js $D2/encodings_1.0.0.json "j.param_encodings.find(p=>p.name=='1.conv1.weight').bw==4"
check "4 bits: no model_qdq.onnx" test ! -e $D2/model_qdq.onnx
check "4 bits: the manifest says why" js $D2/manifest.json "j.qdq.written===false && /4-bit/.test(j.qdq.reason) && j.quantization==\"--quant=w8a8 --calib=200 --set '*conv1* bits=4'\""
check "4 bits: recorded" grep -q '"qdq":false' <<<"$(last .result)"
# the report sees the session's overrides; CLE it does not apply (it tries it)
S3=$tmp/s3.json
cp $S $S3
run "cle on a copy" do $S3 cle
run "bundle with the report, 4 bits and CLE" export bundle $S3 --out $tmp/D3 --threads $T
check "report: options with the override, CLE not applied" js $tmp/D3/manifest.json "j.report.options==\"--target=w8a8 --calib=200 --set '*conv1* bits=4'\" && j.report.not_applied=='--cle'"
check "report: conv1's weight at 4 bits in it" js $tmp/D3/report/report.json "j.per_quantizer.quantizers.find(q=>q.name=='1.conv1.weight').bits==4"

# ---- refusals: nothing overwritten, nothing made ----
sums $D2 >$tmp/d2.sum
n0=$(jget $S 'j.journal.length')
bad "existing bundle" "$D2/encodings_0.6.1.json exists (--force overwrites)" export bundle $S --out $D2 --no-report
bad "do: existing bundle" "exists (--force overwrites)" do $S export bundle --out $D2 --no-report
check "existing bundle: files byte-identical" bash -c "diff <(cd $D2 && find . -type f -print0 | sort -z | xargs -0 sha256sum) $tmp/d2.sum"
check "existing bundle: not journaled" test "$(jget $S 'j.journal.length')" = $n0
mkdir $tmp/R1 && echo mine >$tmp/R1/report
bad "an existing report" "$tmp/R1/report exists" export bundle $S --out $tmp/R1 --no-report
check "an existing report: alone in its directory" test "$(ls -A $tmp/R1)" = report
touch $tmp/afile
bad "--out under a file" "$tmp/afile/sub: Not a directory" export bundle $S --out $tmp/afile/sub --no-report
bad "--out a file" "$tmp/afile: not a directory" export bundle $S --out $tmp/afile --no-report
bad "--out in /proc" "/proc/qdb-no-such" export bundle $S --out /proc/qdb-no-such/x --no-report
check "the file is still empty" test ! -s $tmp/afile
bad "missing --out" "--out DIR is required" export bundle $S
bad "do: missing --out" "--out DIR is required" do $S export bundle
bad "no session" "$tmp/none.json" export bundle $tmp/none.json --out $tmp/X
bad "quantization options" "unknown option" do $S export bundle --out $tmp/X --quant w4a8
bad "bad --threads" "--threads" export bundle $S --out $tmp/X --threads 0
check "refusals made nothing" test ! -e $tmp/X
check "refusals were not journaled" test "$(jget $S 'j.journal.length')" = $n0

# ---- --force ----
echo keep >$D2/notes.txt
run "--force" export bundle $S --out $D2 --force --no-report
check "--force: other files left alone" grep -qx keep $D2/notes.txt
jget $D2/manifest.json "j.files.map(f=>f.sha256+'  '+f.name).join('\n')" >$tmp/m2.sum
check "--force: the manifest matches" bash -c "cd $D2 && sha256sum -c --quiet $tmp/m2.sum"
# --force onto the w8a8 bundle with its report: the 4-bit session without a
# report leaves no stale model_qdq.onnx or report/ beside the new manifest
cp -r $D $tmp/Dcopy
run "--force over a report" export bundle $S --out $tmp/Dcopy --force --no-report
check "--force: old report/ and QDQ model gone" test ! -e $tmp/Dcopy/report -a ! -e $tmp/Dcopy/model_qdq.onnx
check "--force: 4-bit encodings now" js $tmp/Dcopy/encodings_0.6.1.json "j.param_encodings['1.conv1.weight'][0].bitwidth==4"

# ---- interrupted: Ctrl-C in the report fails cleanly, kill -9 leaves staging only ----
sums $D >$tmp/d.sum
"$QDB" export bundle $tmp/s0.json --out $D --force --threads $T >/dev/null 2>$tmp/err &
pid=$!
for i in $(seq 1 100); do grep -q '^debug: step' $tmp/err && break; sleep 0.1; done
kill -INT $pid; wait $pid; rc=$?
check "Ctrl-C in the report: exit 1 ($rc)" test $rc -eq 1
check "Ctrl-C: the error names the report and Ctrl-C" bash -c "grep -v '^debug:' $tmp/err | grep -q 'qdb export bundle: report: .*Ctrl-C'"
check "Ctrl-C: the old bundle byte-identical, no staging left" bash -c "diff <(cd $D && find . -type f -print0 | sort -z | xargs -0 sha256sum) $tmp/d.sum && test -z \"\$(ls -A $D | grep bundle.tmp)\""
"$QDB" export bundle $tmp/s0.json --out $tmp/K --threads $T >/dev/null 2>$tmp/err &
pid=$!
for i in $(seq 1 100); do grep -q '^debug: step' $tmp/err && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
check "kill -9: only a staging directory" test "$(ls -A $tmp/K | sed 's/[0-9]*$//')" = ".bundle.tmp."
run "the next bundle" export bundle $tmp/s0.json --out $tmp/K --no-report
check "the next bundle removed the stale staging directory" bash -c "! ls -A $tmp/K | grep -q bundle.tmp && test -s $tmp/K/manifest.json"

# ---- replay ----
sums $D1 >$tmp/d1.sum
sums $D2 >$tmp/d2.sum
run "replay --check" replay $S --check --out $tmp/rp
check "replay: every result within tolerance" grep -q "every result within tolerance" $tmp/out
check "replay: the bundles under its --out" test -s $tmp/rp/D1/manifest.json -a -s $tmp/rp/D2/encodings_0.6.1.json
check "replay: the recorded places untouched" bash -c "diff <(cd $D1 && find . -type f -print0 | sort -z | xargs -0 sha256sum) $tmp/d1.sum && diff <(cd $D2 && find . -type f -print0 | sort -z | xargs -0 sha256sum) $tmp/d2.sum"

finish
