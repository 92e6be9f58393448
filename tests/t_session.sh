#!/usr/bin/env bash
# t_session.sh - sessions end to end (qdb do, open, replay):
#   - a scripted multi-step session on LeNet: the journal, the state it
#     folds to, undo, failed commands leaving the file alone;
#   - round trip: save -> open -> save is byte-identical;
#   - replay --check passes; a tampered result or state is found (exit 4,
#     naming the entry and the key); --json;
#   - a changed model or missing data: exit 2 naming it, --force goes on;
#   - malformed session files: exit 2, one line with the JSON path;
#   - kill -9 at random moments, 60 times: the session always reads back;
#   - a second qdb on a locked session is refused.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

L=models/lenet.onnx
S=$tmp/s.json
entries() { jget "$1" 'j.journal.length'; }

# ---- a scripted session ----
run "load" do $S load $L --data fashion-mnist --limit 200 --seed 3
check "load: the session file exists" test -s $S
check "load: model and data recorded" js $S 'j.qdb_session==1 && j.model.sha256.length==64 && j.data.images==200 && j.data.seed==3 && j.quantization===null'
check "load: sha256 of the model" test "$(jget $S 'j.model.sha256')" = "$(sha256sum $L | cut -d' ' -f1)"
run "set calib" do $S set calib 200
run "eval --quant" do $S eval --quant w8a8 --threads 2
check "eval: one line with the accuracy" grep -q '^\[3\] eval --quant w8a8 --threads 2: accuracy 0\.' $tmp/out
check "eval: quantization options stick" js $S 'j.quantization.quant=="w8a8" && j.quantization.calib==200 && j.journal[2].changes_state'
check "eval: result recorded" js $S 'j.journal[2].result.accuracy>0.5 && j.journal[2].result.images==200 && j.journal[2].result.sqnr_db>10'
run "set bits" do $S set bits '*conv1*' 4
check "set: override and match count" js $S 'j.overrides[0]=="*conv1* bits=4" && j.journal[3].result.matched==1'
run "eval at w4 conv1" do $S eval --json
check "eval --json: the command's own JSON" js $tmp/out 'j.accuracy>0.5 && j.sim.quant=="w8a8"'
run "cle" do $S cle
check "cle: pairs and spreads recorded" js $S 'j.transforms[0].name=="cle" && j.journal[5].result.pairs>=1 && j.journal[5].result.worst_spread_after<j.journal[5].result.worst_spread_before'
run "set off" do $S set off @inputs
n0=$(entries $S)
run "undo" do $S undo
check "undo: the entry is marked and the override gone" js $S "j.journal[$((n0 - 1))].undone===true && j.overrides.length==1 && j.journal.length==$((n0 + 1))"
run "bias-correct analytic" do $S bias-correct analytic
run "eval after fixes" do $S eval --threads 2
run "export encodings" do $S export encodings -o $tmp/enc.json --format 1.0.0
check "export: the file and its fingerprint" js $S "j.journal[j.journal.length-1].result.enabled>0 && j.journal[j.journal.length-1].result.file_sha256=='$(sha256sum $tmp/enc.json | cut -d' ' -f1)'"
bad "export qdq of a 4-bit weight" "QDQ export expresses 8-bit grids only" do $S export qdq -o $tmp/m.onnx
check "a failed export writes nothing" test ! -e $tmp/m.onnx
run "set bits back" do $S set bits '*conv1*' 8
run "export qdq" do $S export qdq -o $tmp/m.onnx
check "export qdq: a model" test -s $tmp/m.onnx
run "debug" do $S debug --steps sanity,perq --threads 2
check "debug: target from the session, results flattened" js $S '(r => r.target=="W8A8" && r["sanity.ok"]===true && r.fp32>0.5)(j.journal[j.journal.length-1].result)'
run "show" do $S show
check "show: state and journal" grep -q 'quantization: --quant=w8a8' $tmp/out
run "plot (not journaled)" do $S plot ranges -o $tmp/r.svg
n1=$(entries $S)
check "state and journal" js $S "j.journal.length==$n1 && j.transforms.map(t=>t.name).join()=='cle,bias_correction' && j.overrides.join()=='*conv1* bits=4,*conv1* bits=8'"

# debug analyses the session's quantization: its overrides hold, also
# under another --target (on a copy: the replay below counts entries)
S2=$tmp/s2.json
cp $S $S2
run "set bits for debug" do $S2 set bits /1/Relu_output_0 6
run "debug with an override" do $S2 debug --steps perq --threads 2 --json
check "debug: the session's override holds" js $tmp/out 'j.target=="W8A8" && j.per_quantizer.quantizers.find(q=>q.name=="/1/Relu_output_0").bits==6'
run "debug --target with an override" do $S2 debug --target w4a8 --steps perq --threads 2 --json
check "debug --target: the override holds, the rest at the target" js $tmp/out 'j.target=="W4A8" && (q => q("/1/Relu_output_0").bits==6 && q("1.conv2.weight").bits==4 && q("/1/Relu_1_output_0").bits==8)(n => j.per_quantizer.quantizers.find(q=>q.name==n))'
run "replay --check of the copy" replay $S2 --check
check "replay --check: the debug entries agree" grep -q "every result within tolerance" $tmp/out

# failures leave the file as it was
cp $S $tmp/before.json
bad "unknown pattern" "no quantizer matches" do $S set bits nosuch 4
bad "unknown command" "unknown command" do $S frob
bad "bad bit-width" "w1a8" do $S eval --quant w1a8
bad "set without value" "help set" do $S set quant
run "load u" do $tmp/u.json load $L --data fashion-mnist --limit 10
bad "undo of load" "nothing to undo since load" do $tmp/u.json undo
check "failures did not touch the session" cmp -s $S $tmp/before.json
bad "no session" "no such session" do $tmp/none.json eval
check "no session: nothing made" test ! -e $tmp/none.json
bad "session in a file" "cannot" do $S/x.json load $L --data fashion-mnist

# ---- round trip ----
run "save a copy" do $S save -o $tmp/copy.json
check "save -> open -> save: identical" cmp -s $S $tmp/copy.json
run "open" open $S --json
check "open --json prints the session file" cmp -s $S $tmp/out
bad "save over a file" "exists" do $S save -o $tmp/copy.json

# ---- replay ----
run "replay --check" replay $S --check
check "replay: every entry, within tolerance" grep -q "replay: $n1 entries replayed, every result within tolerance" $tmp/out
check "replay: wrote nothing beside the session" test ! -e $tmp/enc.json.tmp
run "replay --json --save" replay $S --check --json --save $tmp/replayed.json
check "replay --json" js $tmp/out "j.replayed==$n1 && j.divergence===null && j.entries.length==$n1"
check "replay --save: same state and results" js $tmp/replayed.json "j.journal.length==$n1 && j.overrides.length==2 && j.journal[2].result.accuracy==$(jget $S 'j.journal[2].result.accuracy')"
# a recorded result that the model does not give
node -e "const f='$S',fs=require('fs');const j=JSON.parse(fs.readFileSync(f));j.journal[4].result.accuracy+=0.05;fs.writeFileSync('$tmp/t1.json',JSON.stringify(j))"
"$QDB" replay $tmp/t1.json --check >$tmp/out 2>$tmp/err; rc=$?
check "tampered result: exit 4 (got $rc)" test $rc -eq 4
check "tampered result: names entry 5 and accuracy" grep -q 'DIVERGED at entry 5 (eval): accuracy recorded' $tmp/out
"$QDB" replay $tmp/t1.json --check --json >$tmp/out 2>$tmp/err
check "tampered result --json" js $tmp/out 'j.divergence.entry==5 && j.divergence.key=="accuracy" && Math.abs(j.divergence.recorded-j.divergence.now-0.05)<1e-9'
run "tampered result, no --check" replay $tmp/t1.json
"$QDB" replay $tmp/t1.json --check --tol 0.06 >$tmp/out 2>$tmp/err
check "a wider --tol accepts it" test $? -eq 0
# a state that the journal does not give
node -e "const f='$S',fs=require('fs');const j=JSON.parse(fs.readFileSync(f));j.quantization.quant='w4a8';fs.writeFileSync('$tmp/t2.json',JSON.stringify(j))"
"$QDB" replay $tmp/t2.json --check >$tmp/out 2>$tmp/err; rc=$?
check "tampered state: exit 4 (got $rc)" test $rc -eq 4
check "tampered state: said" grep -q 'replayed state differs' $tmp/out

# ---- a changed model, missing data ----
cp $L $tmp/model.onnx
M=$tmp/m.json
run "load a copy" do $M load $tmp/model.onnx --data fashion-mnist --limit 100
run "eval the copy" do $M eval --quant w8a8 --calib 100
cp models/shufflenet_v2.onnx $tmp/model.onnx
bad "open: changed model" "changed since it was recorded" open $M
bad "replay: changed model" "the model changed since it was recorded" replay $M --check
run "open --force" open $M --force
run "replay --force" replay $M --force
D=$tmp/data; mkdir -p $D
cp /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz $D/
I=$tmp/i.json
run "load idx data" do $I load $L --data idx:$D/t10k-images-idx3-ubyte.gz,$D/t10k-labels-idx1-ubyte.gz --limit 100
run "eval idx data" do $I eval --quant w8a8
run "show idx session" do $I show
check "other data calibrates on itself" grep -q -- "--calib-data=idx:$D/t10k-images" $tmp/out
rm $D/t10k-labels-idx1-ubyte.gz
bad "open: missing data" "t10k-labels-idx1-ubyte.gz" open $I
bad "replay: missing data" "t10k-labels-idx1-ubyte.gz" replay $I --check

# ---- malformed session files ----
# badfile NAME CONTENT WANT: open, do and replay refuse it with exit 2 and WANT
badfile() {
    printf '%s' "$2" >$tmp/$1.json
    bad "$1: open" "$3" open $tmp/$1.json
    bad "$1: do" "$3" do $tmp/$1.json show
    bad "$1: replay" "$3" replay $tmp/$1.json
}
badfile empty '' 'malformed JSON'
badfile truncated "$(head -c 300 $S)" 'malformed JSON'
badfile array '[]' '$: expected an object'
badfile version '{"qdb_session": 2, "journal": []}' '$.qdb_session: version 2'
badfile noversion '{"journal": []}' '$.qdb_session: expected the session format version'
badfile unknown '{"qdb_session": 1, "journal": [], "colour": 1}' '$.colour: unknown key'
badfile argv '{"qdb_session": 1, "journal": [{"argv": ["eval", 3], "changes_state": false, "seconds": 1, "at": "x"}]}' '$.journal[0].argv[1]: expected a string, got a number'
badfile sha "$(node -e "const j=JSON.parse(require('fs').readFileSync('$S'));j.model.sha256='abc';console.log(JSON.stringify(j))")" '$.model.sha256: expected 64 lowercase hex digits'
badfile limit "$(node -e "const j=JSON.parse(require('fs').readFileSync('$S'));j.data.limit='10';console.log(JSON.stringify(j))")" '$.data.limit: expected an integer, got a string'
badfile result "$(node -e "const j=JSON.parse(require('fs').readFileSync('$S'));j.journal[1].result.x=[1];console.log(JSON.stringify(j))")" '$.journal[1].result.x: expected a number, string, boolean or null'
bad "replay: unknown option" "--frob" replay $S --frob
bad "replay: --tol" "--tol" replay $S --tol abc
bad "replay: --save over a file" "exists" replay $S --save $S

# ---- kill -9 at random moments ----
K=$tmp/k.json
run "kill: load" do $K load $L --data fashion-mnist --limit 100
run "kill: calib" do $K set calib 100
cmds=("set bits *conv1* 4" "eval --quant w8a8" "set bits *conv2* 6" "cle" "eval" "undo")
ok_reads=0 kills=0 prev=$(entries $K)
for ((i = 0; i < 60; i++)); do
    c=${cmds[$((i % ${#cmds[@]}))]}
    $QDB do $K $c >/dev/null 2>&1 &
    pid=$!
    sleep 0.$((RANDOM % 30))
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    if $QDB open $K --json >$tmp/k.out 2>$tmp/k.err && cmp -s $K $tmp/k.out; then
        n=$(entries $K)
        [ "$n" -ge "$prev" ] && ok_reads=$((ok_reads + 1))
        prev=$n
    else
        echo "kill $i ($c): $(cat $tmp/k.err)"
    fi
done
check "kill -9: the session read back every time ($ok_reads/60, $kills killed)" test $ok_reads -eq 60
check "kill -9: some were killed mid-command ($kills)" test $kills -ge 10
run "kill: a command after" do $K set bits '*conv1*' 8
check "kill -9: no temporary files left" bash -c "! ls $K.tmp.* 2>/dev/null | grep -q ."
run "kill: replay --check" replay $K --check

# ---- the lock ----
if command -v flock >/dev/null; then
    flock $S.lock sleep 3 &
    sleep 0.5
    "$QDB" do $S set calib 100 >/dev/null 2>$tmp/err; rc=$?
    check "locked: exit 1 (got $rc)" test $rc -eq 1
    check "locked: says so" grep -q 'another qdb is working on this session' $tmp/err
    wait
fi

finish
