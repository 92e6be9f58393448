#!/usr/bin/env bash
# t_parity.sh - FP32 parity of `qdb run` against ONNX Runtime (onnxruntime-node)
# on torchvision architectures with random weights, at 1x28x28 and 3x224x224.
#
#   bash tests/t_parity.sh                 (from the repo root; `make test` runs it)
# Environment:
#   QDB=./qdb                 the binary under test
#   PARITY_MODELS="a b"       only these models (names: see export_torchvision.py --list)
#   PARITY_SIZES="28 224"     only these input sizes
#   PARITY_THREADS=2          --threads for both runtimes
#   PARITY_RTOL=1e-4          pass when max|qdb-ort| <= RTOL * max|ort|
#   PARITY_TIMEOUT=600        seconds allowed per qdb run
#
# Models and inputs (batch 2) are exported once by tests/models/export_torchvision.py
# (Debian's /usr/bin/python3 with torch) into the git-ignored cache
# tests/out/models/ (re-made by that script when its text changes). Outputs and logs go
# to tests/out/parity/. Prints one line per model and input size, then
# "parity: N passed, N failed"; exits 1 on any failure.
set -u
cd "$(dirname "$0")/.."
QDB=${QDB:-./qdb}
PY=/usr/bin/python3
RTOL=${PARITY_RTOL:-1e-4}
THREADS=${PARITY_THREADS:-2}
TMO=${PARITY_TIMEOUT:-600}
SIZES=${PARITY_SIZES:-28 224}
MDIR=tests/out/models
ODIR=tests/out/parity
EXPORT=tests/models/export_torchvision.py
mkdir -p "$MDIR" "$ODIR"
pass=0; fail=0

finish() { echo "parity: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
fatal() { echo "FAIL: $*"; fail=$((fail + 1)); finish; }

[ -x "$QDB" ] || fatal "no qdb binary at $QDB (build it with make)"
[ -d tests/ort/node_modules/onnxruntime-node ] || fatal "onnxruntime-node missing: run 'make deps'"
$PY -c 'import torch, torchvision, onnx, numpy' 2>/dev/null \
    || fatal "$PY lacks torch/torchvision/onnx/numpy: run 'make deps'"

MODELS=${PARITY_MODELS:-$($PY "$EXPORT" --list 2>/dev/null)}

t0=$(date +%s)
$PY "$EXPORT" --out "$MDIR" --models "$(tr ' ' , <<<"$MODELS")" --sizes "$(tr ' ' , <<<"$SIZES")" \
    --batches 2 2>"$ODIR/export.err"
[ $? -ne 0 ] && sed 's/^/  /' "$ODIR/export.err" | tail -20
echo "exports ready in $(( $(date +%s) - t0 ))s; rtol $RTOL, threads $THREADS, qdb $QDB"

printf '%-20s %-12s %-10s %-10s %-10s %7s  %s\n' model input maxdiff "max|ort|" ratio "qdb s" result
for s in $SIZES; do
    case $s in
        28) in=$MDIR/in_1x28x28_b2.npy; shape=2x1x28x28 ;;
        224) in=$MDIR/in_3x224x224_b2.npy; shape=2x3x224x224 ;;
        *) fatal "unknown size $s" ;;
    esac
    for m in $MODELS; do
        n=${m}_$s; model=$MDIR/$n.onnx
        row() { printf '%-20s %-12s %s\n' "$m" "$shape" "$*"; }
        if [ ! -f "$model" ] || [ ! -f "$in" ]; then
            row "FAIL (export failed: $(grep -m1 "$n" "$ODIR/export.err" || echo 'see export.err'))"
            fail=$((fail + 1)); continue
        fi
        if ! node tests/ort/run.js "$model" "$in" "$ODIR/$n.ort.npy" --threads "$THREADS" \
                >/dev/null 2>"$ODIR/$n.ort.err"; then
            row "FAIL (onnxruntime: $(tail -1 "$ODIR/$n.ort.err"))"
            fail=$((fail + 1)); continue
        fi
        rm -f "$ODIR/$n.qdb.npy"
        q0=$(date +%s%N)
        timeout "$TMO" "$QDB" run "$model" --input "$in" --output "$ODIR/$n.qdb.npy" --threads "$THREADS" \
            >"$ODIR/$n.qdb.out" 2>"$ODIR/$n.qdb.err"
        rc=$?
        qs=$(( ($(date +%s%N) - q0) / 1000000 ))
        qs=$(printf '%d.%02d' $((qs / 1000)) $((qs % 1000 / 10)))
        if [ $rc -ne 0 ]; then
            if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$ODIR/$n.qdb.err"; then
                # Sanitizer report: its headline and the first frame in our sources.
                why="$(grep -m1 -E 'ERROR: |runtime error:' "$ODIR/$n.qdb.err" | sed 's/^==[0-9]*==//; s/ at pc .*//'),$(grep -m1 -oE ' in [a-z_0-9]+ (engine|sessions|viz|tui)/[^ ]+' "$ODIR/$n.qdb.err") (full report: $ODIR/$n.qdb.err)"
            else
                why=$(grep -v '^\s*$' "$ODIR/$n.qdb.err" | tail -3 | tr '\n' ' ')
            fi
            [ $rc -eq 124 ] && why="timed out after ${TMO}s"
            row "FAIL (qdb exit $rc after ${qs}s: ${why:-no message})"
            fail=$((fail + 1)); continue
        fi
        if [ ! -f "$ODIR/$n.qdb.npy" ]; then
            row "FAIL (qdb exit 0 but wrote no $ODIR/$n.qdb.npy)"
            fail=$((fail + 1)); continue
        fi
        cmp=$(node tests/ort/compare.js "$ODIR/$n.qdb.npy" "$ODIR/$n.ort.npy" --rtol "$RTOL" 2>&1)
        crc=$?
        if [[ $cmp =~ maxdiff=([^ ]+)\ maxref=([^ ]+)\ ratio=([^ ]+)(.*) ]]; then
            cols=$(printf '%-10s %-10s %-10s %7s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "$qs")
            extra=${BASH_REMATCH[4]}
        else
            cols=$(printf '%-10s %-10s %-10s %7s' - - - "$qs"); extra=" $cmp"
        fi
        if [ $crc -eq 0 ]; then
            row "$cols  PASS"; pass=$((pass + 1))
        else
            row "$cols  FAIL${extra}"; fail=$((fail + 1))
        fi
    done
done
finish
