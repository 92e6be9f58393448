# tests/lib.sh - what the t_*.sh scripts share (source it from the top of the
# tree): $QDB (default ./qdb; a missing binary is a failure), a temporary
# directory $tmp removed on exit, pass/fail counting and the summary line,
# JSON checks through node, and the bad-input check.
QDB=${QDB:-./qdb}
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# check WHAT COMMAND...: counts a pass when COMMAND succeeds, else prints FAIL WHAT
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $what"; fi; }
# finish: the summary line, and the exit status
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
# js FILE EXPR: succeeds when the JS expression EXPR holds for j = the JSON in FILE
js() { node -e "const j=JSON.parse(require('fs').readFileSync('$1','utf8'));process.exit(($2)?0:1)"; }
# jget FILE EXPR: prints EXPR of j = the JSON in FILE
jget() { node -e "const j=JSON.parse(require('fs').readFileSync('$1','utf8'));console.log($2)"; }
# run WHAT ARGS...: qdb ARGS exits 0 (stdout in $tmp/out, stderr in $tmp/err; a
# failure shows stderr's end without debug's progress lines)
run() { local what=$1; shift; "$QDB" "$@" >$tmp/out 2>$tmp/err; local rc=$?
        check "$what: exit 0 ($rc: $(grep -v '^debug:' $tmp/err | tail -c 300))" test $rc -eq 0; }
# bad WHAT WANT ARGS...: qdb ARGS exits 2 with one line on stderr containing WANT
bad() {
    local what=$1 want=$2; shift 2
    "$QDB" "$@" >/dev/null 2>"$tmp/err"; local rc=$?
    check "$what: exit 2 (got $rc: $(head -c 200 "$tmp/err"))" test $rc -eq 2
    check "$what: one line naming '$want'" bash -c "test \$(wc -l <'$tmp/err') -eq 1 && grep -qF -- '$want' '$tmp/err'"
}
[ -x "$QDB" ] || { echo "FAIL no qdb binary at $QDB"; fail=1; finish; }
