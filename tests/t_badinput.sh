#!/usr/bin/env bash
# t_badinput.sh - the CLI on bad models, bad inputs and bad flags: each must
# exit with the documented code (2 = bad input) and one stderr line naming
# the file and the reason, print nothing on stdout, and never crash.
# Fixtures: tests/data/bad/ (from tests/models/make_bad.py). Env: QDB (./qdb).
set -u
cd "$(dirname "$0")/.."
QDB=${QDB:-./qdb}
D=tests/data/bad
T=$(mktemp -d "${TMPDIR:-/tmp}/qdb-badinput.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

if [ ! -x "$QDB" ]; then
    echo "FAIL: no qdb binary at $QDB (set QDB)"
    echo "0 passed, 1 failed"
    exit 1
fi

# expect DESC RC LINES PATTERNS -- COMMAND...
#   RC     allowed exit codes, e.g. "2" or "1|2"
#   LINES  "1": exactly one stderr line; "+": at least one; "0": none
#   PATTERNS  ';'-separated extended regexes that must all occur in stderr
#             (case-insensitive); "" for none. All but the first are matched
#             with the words of $STRIP (file paths) removed from stderr.
# stdout must be empty unless RC is 0. Sets $rc, $T/out, $T/err.
expect() {
    local desc=$1 want=$2 lines=$3 pats=$4
    shift 5
    "$@" >"$T/out" 2>"$T/err" </dev/null
    rc=$?
    local why=""
    if [ "$rc" -ge 128 ]; then
        why="crashed (exit $rc)"
    elif ! [[ "$rc" =~ ^($want)$ ]]; then
        why="exit $rc, want $want"
    fi
    local n
    n=$(wc -l <"$T/err")
    # a last line without newline counts too
    [ -s "$T/err" ] && [ "$(tail -c1 "$T/err" | od -An -c | tr -d ' ')" != '\n' ] && n=$((n + 1))
    case $lines in
    1) [ "$n" -eq 1 ] || why="${why:+$why; }$n stderr lines, want 1" ;;
    +) [ "$n" -ge 1 ] || why="${why:+$why; }no message on stderr" ;;
    0) [ "$n" -eq 0 ] || why="${why:+$why; }unexpected stderr" ;;
    esac
    if [ "$want" != 0 ] && [ -s "$T/out" ]; then
        why="${why:+$why; }stdout not empty"
    fi
    # The first pattern may name the file; the others are matched with the
    # paths in $STRIP removed (so "unsupported_op.onnx" does not count as
    # saying "unsupported").
    local msg
    msg=$(<"$T/err")
    local s
    for s in ${STRIP:-}; do msg=${msg//"$s"/}; done
    local IFS=';' first=1
    for p in $pats; do
        if [ $first = 1 ]; then
            grep -Eqi -- "$p" "$T/err" || why="${why:+$why; }stderr lacks /$p/"
        else
            grep -Eqi -- "$p" <<<"$msg" || why="${why:+$why; }stderr lacks /$p/ (besides the path)"
        fi
        first=0
    done
    unset IFS
    if [ -z "$why" ]; then
        pass=$((pass + 1))
        echo "ok   $desc"
    else
        fail=$((fail + 1))
        echo "FAIL $desc: $why"
        echo "     \$ ${*}"
        sed 's/^/     stderr: /' "$T/err" | head -5
        sed 's/^/     stdout: /' "$T/out" | head -3
    fi
}

# check DESC CONDITION... : a plain assertion.
check() {
    local desc=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
        echo "ok   $desc"
    else
        fail=$((fail + 1))
        echo "FAIL $desc"
    fi
}

OUT=$T/out.npy
GOOD=$D/good.onnx
IN=$D/good_in.npy

# --- bad models: info and run -------------------------------------------
# file  patterns (all must match; the file name is added)
bad_models=(
    "truncated.onnx|truncat|parse|protobuf|decode|invalid|corrupt"
    "corrupt.onnx|parse|protobuf|decode|invalid|corrupt|not an onnx"
    "empty.onnx|empty|parse|no graph|invalid|0 bytes"
    "unsupported_op.onnx|unsupported|not supported;LSTM;lstm_1"
    "bad_dtype.onnx|unsupported|not supported;float16|f16"
    "external_data.onnx|external"
    "missing_init.onnx|conv\.weight;missing|undefined|unknown|not found|no such|neither|not produced"
    "cyclic.onnx|cycle|cyclic|loop|topolog"
    "unknown_tensor.onnx|ghost;missing|undefined|unknown|not found|no such|neither|not produced"
    "opset_too_new.onnx|opset;18"
    "unnamed_output.onnx|Reshape;first output has no name"  # found by fuzz_load: segfaulted
)
for entry in "${bad_models[@]}"; do
    f=${entry%%|*}
    pats=${entry#*|}
    STRIP="$D/$f"
    expect "info $f" 2 1 "${f//./\\.};$pats" -- "$QDB" info "$D/$f"
    rm -f "$OUT"
    expect "run $f" 2 1 "${f//./\\.};$pats" -- "$QDB" run "$D/$f" --input "$IN" --output "$OUT"
    check "run $f leaves no output file" test ! -e "$OUT"
done
STRIP=""

expect "info nonexistent model" 2 1 "nosuch\.onnx;no such|not found|cannot open|can't open|does not exist" \
    -- "$QDB" info "$T/nosuch.onnx"
expect "run nonexistent model" 2 1 "nosuch\.onnx;no such|not found|cannot open|can't open|does not exist" \
    -- "$QDB" run "$T/nosuch.onnx" --input "$IN" --output "$OUT"
STRIP=$D
expect "info on a directory" 2 1 "$D;directory|not a regular file|not a file" -- "$QDB" info "$D"
STRIP=""

# --- the good model ----------------------------------------------------
expect "info good.onnx" 0 0 "" -- "$QDB" info "$GOOD"
check "info good.onnx prints something" test -s "$T/out"
check "info names the ops" grep -q "Conv" "$T/out"
expect "info --json good.onnx" 0 0 "" -- "$QDB" info "$GOOD" --json
if [ -x /usr/bin/python3 ]; then
    check "info --json is valid JSON" /usr/bin/python3 -c '
import json, sys
try:
    json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(str(e))' "$T/out"
fi
rm -f "$OUT"
expect "run good.onnx" 0 any "" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT"
check "run good.onnx writes the output" test -s "$OUT"
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    check "run good.onnx output matches the numpy reference" /usr/bin/python3 -c '
import sys, numpy as np
try:
    a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
except Exception as e:
    sys.exit(str(e))
sys.exit(0 if a.dtype == b.dtype and a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5) else 1)' \
        "$OUT" "$D/good_out.npy"
fi
rm -f "$OUT"
expect "run good.onnx --threads 2" 0 any "" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads 2
rm -f "$OUT"
expect "run --output-name logits" 0 any "" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --output-name logits
check "--output-name logits writes the output" test -s "$OUT"
rm -f "$OUT"
expect "run --output-name nosuch" 2 1 "nosuch" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --output-name nosuch
check "--output-name nosuch leaves no output file" test ! -e "$OUT"

# --- bad inputs ----------------------------------------------------------
for entry in \
    "bad_in_shape.npy|shape|rank|dim" \
    "bad_in_dtype.npy|int32" \
    "truncated.npy|truncat|short|size|bytes|expected|end of file|eof"; do
    f=${entry%%|*}
    pats=${entry#*|}
    rm -f "$OUT"
    STRIP="$D/$f"
    expect "run --input $f" 2 1 "${f//./\\.};$pats" -- "$QDB" run "$GOOD" --input "$D/$f" --output "$OUT"
    check "--input $f leaves no output file" test ! -e "$OUT"
done
STRIP=""
rm -f "$OUT"
expect "run --input nonexistent" 2 1 "nosuch\.npy;no such|not found|cannot open|can't open|does not exist" \
    -- "$QDB" run "$GOOD" --input "$T/nosuch.npy" --output "$OUT"
expect "run --input a model file" 2 1 "good\.onnx" -- "$QDB" run "$GOOD" --input "$GOOD" --output "$OUT"

# --- bad output paths ------------------------------------------------------
expect "run --output in a missing dir" "1|2" 1 "/nonexistent/dir/out\.npy" \
    -- "$QDB" run "$GOOD" --input "$IN" --output /nonexistent/dir/out.npy
check "no partial file in a missing dir" test ! -e /nonexistent/dir/out.npy
mkdir -p "$T/isdir.npy"
expect "run --output is a directory" "1|2" 1 "isdir\.npy" \
    -- "$QDB" run "$GOOD" --input "$IN" --output "$T/isdir.npy"

# --- bad flags ------------------------------------------------------------
expect "no arguments, demo model missing" 2 1 "nonexistent" -- env QDB_DEMO=/nonexistent/demo.onnx "$QDB"
expect "tui without a terminal" 2 1 "needs a terminal" -- "$QDB" tui "$GOOD" --data fashion-mnist
expect "tui without --data" 2 1 "data" -- "$QDB" tui "$GOOD"
expect "tui with a bad flag" 2 1 "frob" -- "$QDB" tui "$GOOD" --data fashion-mnist --frob
expect "tui with a bad quant" 2 1 "w9a99" -- "$QDB" tui "$GOOD" --data fashion-mnist --quant w9a99
expect "unknown command" 2 + "frobnicate" -- "$QDB" frobnicate
expect "run without --input" 2 + "input" -- "$QDB" run "$GOOD" --output "$OUT"
expect "run without --output" 2 + "output" -- "$QDB" run "$GOOD" --input "$IN"
expect "run without a model" 2 + "" -- "$QDB" run
expect "info without a model" 2 + "" -- "$QDB" info
expect "--input without a value" 2 + "input" -- "$QDB" run "$GOOD" --output "$OUT" --input
expect "--threads 0" 2 + "threads" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads 0
expect "--threads abc" 2 + "threads|abc" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads abc
expect "--threads -3" 2 + "threads|-3" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads -3
expect "--threads 4x" 2 + "threads|4x" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads 4x
expect "--threads without a value" 2 + "threads" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --threads
expect "unknown run option" 2 + "--bogus" -- "$QDB" run "$GOOD" --input "$IN" --output "$OUT" --bogus
expect "unknown info option" 2 + "--bogus" -- "$QDB" info "$GOOD" --bogus
check "bad flags wrote no output file" test ! -e "$OUT"

# --- help -------------------------------------------------------------------
expect "qdb --help" 0 0 "" -- "$QDB" --help
check "qdb --help prints usage" grep -qi "usage" "$T/out"
expect "qdb info --help" 0 0 "" -- "$QDB" info --help
check "qdb info --help prints usage" grep -qi "info" "$T/out"
expect "qdb run --help" 0 0 "" -- "$QDB" run --help
check "qdb run --help names --input" grep -q -- "--input" "$T/out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
