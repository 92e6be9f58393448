#!/usr/bin/env bash
# t_tui.sh - the TUI (qdb tui, qdb open on a terminal) driven through tmux:
#   - every TUI runs in its own directory under $tmp, in a pane of a fixed
#     size on a private tmux server (tmux -L qdbtest$$, killed on exit);
#   - screens are compared with golden screens (tests/golden/tui/NAME.txt)
#     after masking what varies between runs: timings (N ms, N.Ns, ETA),
#     the version, the temporary directory, and the text plot of the detail
#     pane (gnuplot's own output) on wide screens; accuracies on the fixed
#     seed stay in, so a change in what qdb computes fails the test.
#     QDB_UPDATE_GOLDEN=1 writes the goldens from this run instead.
#   - opening, navigating (j/k, arrows, PgUp/PgDn, g/G, Home/End, mouse click
#     and wheel), the filter, sort, toggling a quantizer, its bits (one at a
#     time, and six at once) and per-channel with the metric following, :undo,
#     u and a (apply to all), e (eval), C (CLE), B (bias correction), p (plot);
#   - the flowchart: cancelled with Esc (idle again, said in the log, not
#     journaled; keys that change the session refused meanwhile), with C-c,
#     then a short one filling the SQNR and drop columns;
#   - the help overlay, the command line (Tab completion, history, set, an
#     unknown command and a bad set each one line);
#   - resizing to 80x24, to 70x20 (the too-small message) and back, also
#     while the flowchart runs; a filter matching nothing, and keys then;
#   - w then q (quits at once), q then y, q then c, q then n, q at 70x20, :q!;
#     the session file and the autosave after each; qdb open showing the
#     saved state;
#   - kill -TERM while the flowchart runs: the terminal is given back, exit
#     143, the autosave holds every change; a new qdb tui there is refused
#     while the autosave exists, and qdb open recovers it;
#   - a report left aside by a killed qdb (REPORT.prev) is put back by the
#     next flowchart when REPORT is not whole;
#   - NO_COLOR: no colour escapes (with them otherwise);
#   - qdb tui without a terminal, with a bad flag, a missing model: one
#     line, exit 2.
# Waits poll the screen for a marker (wait_for, wait_idle), never sleep long.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
command -v tmux >/dev/null || { echo "FAIL tmux is not installed"; fail=1; finish; }
QDB=$(realpath "$QDB")
ROOT=$PWD
GOLD=$ROOT/tests/golden/tui
unset TMUX
SOCK=qdbtest$$
# on every way out: the tmux server and its panes (qdb gets SIGHUP), then $tmp
# (and the server's socket file, which tmux leaves behind)
trap 'tmux -L $SOCK kill-server 2>/dev/null; rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
      rm -rf "$tmp" 2>/dev/null || { sleep 0.5; rm -rf "$tmp"; }' EXIT
trap 'exit 130' INT TERM HUP
t_start=$(date +%s%N)

# ---- tmux helpers ----
tm() { tmux -L $SOCK -f /dev/null "$@"; }
# [IN=DIR] start NAME W H [VAR=VALUE...] -- ARGS...: qdb ARGS in a new tmux
# session NAME of W x H, in DIR (default $tmp/NAME; made, with a copy of
# LeNet); the pane's shell then prints EXIT=<qdb's exit status> and stays.
start() {
    local name=$1 w=$2 h=$3 envs=() dir=${IN:-$tmp/$1}
    shift 3
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    mkdir -p "$dir"
    [ -e "$dir/lenet.onnx" ] || cp "$ROOT/models/lenet.onnx" "$dir/"
    local cmd="env -u NO_COLOR -u COLUMNS -u LINES TERM=screen ${envs[*]} $(printf '%q ' "$QDB" "$@"); echo EXIT=\$?; exec sleep 600"
    SHELL=/bin/sh tm new-session -d -s "$name" -x "$w" -y "$h" -c "$dir" "$cmd"
}
cap() { tm capture-pane -p -t "$1"; }
keys() { local s=$1; shift; tm send-keys -t "$s" "$@"; }
text() { tm send-keys -t "$1" -l "$2"; }
colon() { keys "$1" :; text "$1" "$2"; keys "$1" Enter; }   # a command on the command line
height() { tm display -p -t "$1" '#{pane_height}'; }
width() { tm display -p -t "$1" '#{pane_width}'; }
status() { cap "$1" | sed -n "$(($(height "$1") - 1))p"; }   # the status bar
msgline() { cap "$1" | sed -n "$(height "$1")p"; }           # the message / command line
# the detail pane's header: the selected quantizer
selected() { cap "$1" | grep -m1 -E '^-- ' | sed -E 's/^-- (.*) -+ [0-9]+\/[0-9]+.*$/\1/'; }
metric() { status "$1" | sed -E 's/, [0-9]+ ms\)/)/'; }         # the status bar without its timing
idle_now() { ! status "$1" | grep -qE "$BUSY"; }
pid_of() { ps -o pid= --ppid "$(tm display -p -t "$1" '#{pane_pid}')" | tr -d ' '; }
timeouts=0
declare -A died
shown() { # WHY S: the screen, on stderr (also for waits whose stdout is dropped);
          # once for a qdb that exited
    [ -n "${died[$2]:-}" ] && return
    cap "$2" | grep -qE '^EXIT=[0-9]+$' && died[$2]=1
    { echo "--- $1; screen of $2:"; cap "$2" | sed 's/^/    |/'; } >&2
}
# gone S: qdb left (the pane's shell printed EXIT=)
gone() { cap "$1" | grep -qE '^EXIT=[0-9]+$'; }
# wait_for S PATTERN [SECONDS]: until the screen shows PATTERN (grep -E); gives
# up at once when qdb has exited (unless PATTERN is about that)
wait_for() {
    local s=$1 pat=$2 t=${3:-20} end
    end=$(($(date +%s%N) + t * 1000000000))
    while [ "$(date +%s%N)" -lt $end ]; do
        cap "$s" | grep -qE -- "$pat" && return 0
        if [[ $pat != *EXIT* ]] && gone "$s"; then
            shown "qdb exited while waiting for '$pat'" "$s"
            return 1
        fi
        sleep 0.1
    done
    timeouts=$((timeouts + 1))
    shown "timeout (${t}s) waiting for '$pat'" "$s"
    return 1
}
# wait_gone S PATTERN [SECONDS]: until the screen no longer shows PATTERN
wait_gone() {
    local s=$1 pat=$2 t=${3:-20} end
    end=$(($(date +%s%N) + t * 1000000000))
    while [ "$(date +%s%N)" -lt $end ]; do
        gone "$s" && { shown "qdb exited while waiting for '$pat' to go" "$s"; return 1; }
        cap "$s" | grep -qE -- "$pat" || return 0
        sleep 0.1
    done
    timeouts=$((timeouts + 1))
    shown "timeout (${t}s) waiting for '$pat' to go" "$s"
    return 1
}
# busy: the status bar ends with a progress indicator ("what 1.2s" or "ETA 3s")
BUSY='([0-9]\.[0-9]s|ETA [0-9]+s) *$'
# wait_idle S [SECONDS]: the status bar shows a metric and no progress
# indicator, and the screen holds still for 0.3 s
wait_idle() {
    local s=$1 t=${2:-30} end a b st
    end=$(($(date +%s%N) + t * 1000000000))
    while [ "$(date +%s%N)" -lt $end ]; do
        gone "$s" && { shown "qdb exited while waiting for idle" "$s"; return 1; }
        a=$(cap "$s")
        st=$(status "$s")
        if grep -qE '^ (acc|agreement) [0-9.]+%' <<<"$st" && ! grep -qE "$BUSY" <<<"$st"; then
            sleep 0.3
            b=$(cap "$s")
            [ "$a" = "$b" ] && ! grep -qE "$BUSY" <<<"$(status "$s")" && return 0
        else
            sleep 0.1
        fi
    done
    timeouts=$((timeouts + 1))
    shown "timeout (${t}s) waiting for idle" "$s"
    return 1
}
# norm W: a screen of width W with what varies between runs masked
norm() {
    local esc_tmp
    esc_tmp=$(printf '%s' "$tmp" | sed 's/[.[\*^$/]/\\&/g')
    sed -E -e "s/$esc_tmp/<TMP>/g" \
        -e 's/qdb [0-9]+\.[0-9]+\.[0-9]+/qdb X.Y.Z/g' \
        -e 's/\((live|eval|built), [0-9]+ ms\)/(\1, N ms)/' \
        -e 's/^(live: .*\((full, )?)[0-9]+ ms.*$/\1N ms, ...)/' \
        -e 's/ [0-9]+\.[0-9]s( *)$/ N.Ns\1/' \
        -e 's/\[[# ]{10}\] +[0-9]+% ETA [0-9]+s/[..........] N% ETA Ns/' |
        awk -v w="$1" '/^-- log -/ { d = 0 }
            { if (d && w >= 100) { s = substr($0, 1, 46); sub(/ +$/, "", s); print s } else print }
            /^-- / && !/^-- log -/ { d = 1 }'
}
# golden S NAME: the screen of S, masked, against tests/golden/tui/NAME.txt
golden() {
    local s=$1 name=$2 f=$GOLD/$2.txt got=$tmp/$2.got
    cap "$s" | norm "$(width "$s")" >"$got"
    if [ -n "${QDB_UPDATE_GOLDEN:-}" ]; then
        mkdir -p "$GOLD"
        cp "$got" "$f"
    fi
    if [ -f "$f" ] && cmp -s "$f" "$got"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL golden $name (tests/golden/tui/$name.txt; QDB_UPDATE_GOLDEN=1 rewrites it)"
        [ -f "$f" ] && diff -u "$f" "$got" | sed 's/^/    /' | head -60
    fi
}
# json checks on a session file (js from lib.sh, with a readable name)
sess() { js "$@"; }
has() { cap "$1" | grep -qE -- "$2"; }        # has S PATTERN
hasnt() { ! cap "$1" | grep -qE -- "$2"; }    # hasnt S PATTERN
exited() { wait_for "$1" "^EXIT=$2\$" "${3:-15}"; }
# colours S: the screen has colour escapes (SGR 30-38, 40-48, 90-97, 100-107;
# 39 and 49, the default colours, are what tmux writes when there are none)
colours() { tm capture-pane -e -p -t "$1" | grep -qE $'\e\\[([0-9;]*;)?(3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]'; }
nocolours() { ! colours "$1"; }
reverse() { tm capture-pane -e -p -t "$1" | grep -qE $'\e\\[([0-9;]*;)?7[;m]'; }
# lines S: the non-empty lines of the screen, wrapped lines joined, but EXIT=
lines() { tm capture-pane -p -J -t "$1" | grep -v '^$' | grep -v '^EXIT='; }
# one_line S TEXT: after qdb left, one line on the screen (but EXIT=), with TEXT
one_line() { [ "$(lines "$1" | wc -l)" -eq 1 ] && lines "$1" | grep -qF -- "$2"; }
# row1 S PATTERN: the first row the table shows matches PATTERN
row1() { cap "$1" | sed -n 3p | grep -qE -- "$2"; }
# the screen after qdb left: its exit line and none of the TUI (terminal restored)
restored() { has "$1" '^EXIT=' && hasnt "$1" 'quantizer +op +k bits|\[unsaved\]|^-- log -'; }

TUI=(tui lenet.onnx --data fashion-mnist --limit 200)
ST="acc 91.00% \(live, [0-9]+ ms\)  FP32 91.00%  agree 99.00%  SQNR 35.5 dB"   # W8A8 on these 200 images

# ===================== A: a new session at 80x24 =====================
A=a; DA=$tmp/a
start $A 80 24 -- "${TUI[@]}"
check "A: opens and evaluates" wait_for $A '^ acc [0-9.]+% \(live' 30
wait_idle $A
golden $A open_80x24
check "A: status bar: W8A8 metrics, unsaved" grep -qE "^ $ST  \[unsaved\]" <<<"$(status $A)"
check "A: the autosave exists" test -s $DA/lenet.qdb.json.autosave
check "A: no session file before w" test ! -e $DA/lenet.qdb.json
check "A: autosave: load and set quant" sess $DA/lenet.qdb.json.autosave \
    'j.journal.map(e=>e.argv[0]).join()=="load,set" && j.quantization.quant=="w8a8" && j.data.images==200'
check "A: colours without NO_COLOR" colours $A

# -- navigation
check "A: first row selected" test "$(selected $A)" = image
keys $A j j j
check "A: j j j" wait_for $A '^-- 1\.conv1\.weight -' 5
keys $A k
check "A: k" wait_for $A '^-- /0/Div_output_0 -' 5
keys $A Down Down
check "A: Down Down" wait_for $A '^-- /1/Relu_output_0 -' 5
keys $A Up
check "A: Up" wait_for $A '^-- 1\.conv1\.weight -' 5
keys $A G
check "A: G: the last quantizer" wait_for $A '^-- logits -' 5
wait_idle $A
golden $A nav_end_80x24
check "A: G scrolled the table" hasnt $A '^ image '
keys $A g
check "A: g: the first" wait_for $A '^-- image -' 5
keys $A NPage
check "A: PgDn: a page (6 rows) down" wait_for $A '^-- /1/Relu_1_output_0 -' 5
keys $A PPage
check "A: PgUp" wait_for $A '^-- image -' 5
keys $A End
check "A: End" wait_for $A '^-- logits -' 5
keys $A Home
check "A: Home" wait_for $A '^-- image -' 5
# the mouse (X10 encoding: ESC [ M, then 32 + button, 33 + x, 33 + y): a click
# (press, release) on screen row 5 (0-based; rows start at 2), the 4th row;
# then the wheel down (button 65): 3 rows
text $A $'\e[M &&\e[M#&&'
check "A: mouse click selects the row" wait_for $A '^-- 1\.conv1\.weight -' 5
text $A $'\e[Ma&&'
check "A: wheel down: 3 rows" wait_for $A '^-- /1/Relu_1_output_0 -' 5
keys $A g

# -- filter and sort
keys $A /
text $A conv
check "A: the filter follows the typing" wait_for $A " 4/13 matching 'conv', sorted by graph order" 5
check "A: filter line shown" grep -q '^/conv' <<<"$(msgline $A)"
check "A: filter: op matches too (Relu after Conv)" has $A '^ /1/Relu_output_0 +Conv '
keys $A Enter
check "A: Enter keeps the filter" wait_gone $A '^/conv' 5
check "A: kept" has $A " 4/13 matching 'conv'"
keys $A / C-u Enter
check "A: an empty filter clears it" wait_for $A ' 13/13, sorted by graph order' 5
keys $A /
text $A fc
check "A: filter fc" wait_for $A " 3/13 matching 'fc'" 5
keys $A Escape
check "A: Esc closes the filter line" wait_gone $A '^/fc' 5
# the help says "Enter keeps it": Esc is the way out without keeping it
check "A: Esc does not keep the filter" wait_for $A ' 13/13, sorted by graph order' 3
# a filter that matches nothing: the keys that act on the selection do nothing
keys $A / C-u
text $A zzz
keys $A Enter
check "A: a filter matching nothing" wait_for $A "^-- no quantizer -+ 0/13 matching 'zzz'" 5
keys $A j k G g Space + - s c r a p
check "A: keys on no quantizer: still there" wait_idle $A 5
check "A: keys on no quantizer: nothing journaled" sess $DA/lenet.qdb.json.autosave 'j.journal.length==2'
keys $A / C-u Enter g
wait_for $A ' 13/13, sorted by graph order' 3 >/dev/null
keys $A o g
check "A: o: sorted by name" wait_for $A ' 13/13, sorted by name ' 5
wait_for $A '^-- /0/Div_output_0 -' 5 >/dev/null
check "A: by name: /0/Div first" row1 $A '^ /0/Div_output_0 '
keys $A o o o
check "A: o o o: sorted by bits" wait_for $A ' 13/13, sorted by bits ' 5
keys $A o g
check "A: o: back to graph order" wait_for $A ' 13/13, sorted by graph order ' 5
wait_for $A '^-- image -' 5 >/dev/null
check "A: graph order: image first" row1 $A '^ image '

# -- toggling a quantizer: the metric follows
keys $A g j j j j j
check "A: on 1.conv2.weight" wait_for $A '^-- 1\.conv2\.weight -' 5
m0=$(metric $A)
for b in 7 6 5 4 3 2; do
    keys $A -
    wait_for $A "set bits 1\.conv2\.weight $b: matched 1" 10 >/dev/null && wait_idle $A >/dev/null
done
check "A: - x6: conv2 weight at 2 bits" has $A '^ 1\.conv2\.weight +Conv +W +2 '
check "A: the metric followed (82% at 2 bits)" grep -qE '^ acc 82\.00% \(live, [0-9]+ ms\)  FP32 91\.00%  agree 84\.00%  SQNR 8\.0 dB' <<<"$(status $A)"
golden $A bits2_80x24
keys $A -
check "A: - at 2 bits: says so" wait_for $A 'bits: already at the bottom \(2\)' 5
# six + at once: each cancels the evaluation before it; the last one counts
keys $A + + + + + +
check "A: + x6 at once: back at 8 bits" wait_for $A '^ 1\.conv2\.weight +Conv +W +8 ' 10
wait_idle $A
check "A: + x6: the metric of W8A8 again" grep -qE "^ $ST" <<<"$(status $A)"
keys $A Space
check "A: space: bypassed" wait_for $A '^ 1\.conv2\.weight +Conv +W +8 +sym tens sqnr +off' 5
check "A: the detail says bypassed" wait_for $A '^ weight of Conv \(bypassed\)' 5
wait_idle $A
check "A: bypass changed the metric" test "$(metric $A)" != "$m0"
check "A: bypass: journaled in the autosave" sess $DA/lenet.qdb.json.autosave \
    'j.journal[j.journal.length-1].argv.join(" ")=="set off 1.conv2.weight" && j.overrides.includes("1.conv2.weight enabled=0")'
colon $A undo
check "A: :undo: on again" wait_for $A '^ 1\.conv2\.weight +Conv +W +8 +sym tens sqnr +on ' 5
wait_idle $A
check "A: :undo: the metric of W8A8 again" grep -qE "^ $ST" <<<"$(status $A)"
check "A: undo journaled" sess $DA/lenet.qdb.json.autosave \
    'j.journal[j.journal.length-1].argv[0]=="undo" && !j.overrides.includes("1.conv2.weight enabled=0")'
keys $A k
wait_for $A '^-- /1/Relu_output_0 -' 5 >/dev/null
keys $A c
check "A: c on an activation: refused with a reason" wait_for $A 'per-channel applies to weights with an output-channel axis' 5
keys $A j c
check "A: c on a weight: per channel" wait_for $A '^ 1\.conv2\.weight +Conv +W +8 +sym chan ' 5
wait_idle $A
check "A: c: one encoding per channel in the detail" has $A 'channels: 32 \(one encoding each\)'
keys $A c
check "A: c again: per tensor" wait_for $A '^ 1\.conv2\.weight +Conv +W +8 +sym tens ' 5
wait_idle $A

# -- the help overlay
keys $A '?'
check "A: ? opens the help" wait_for $A 'qdb keys \(j/k scroll, \? or Esc closes\)' 5
golden $A help_80x24
keys $A j j
check "A: j scrolls the help" wait_gone $A '   j  Down    next quantizer' 5
keys $A Escape
check "A: Esc closes the help" wait_gone $A 'qdb keys \(j/k scroll' 5
keys $A '?'
wait_for $A 'qdb keys' 5 >/dev/null
keys $A '?'
check "A: ? closes it too" wait_gone $A 'qdb keys \(j/k scroll' 5

# -- the command line (at the end of the table, where the fc layers are)
keys $A G
wait_for $A '^-- logits -' 5 >/dev/null
n0=$(jget $DA/lenet.qdb.json.autosave 'j.journal.length')
# (the screen has no trailing spaces: the next word typed shows the one Tab added)
keys $A :
text $A se
keys $A Tab
check "A: Tab completes a command" wait_for $A '^:set$' 5
text $A bit
check "A: Tab added a space after it" wait_for $A '^:set bit$' 5
keys $A Tab
check "A: Tab completes a set key" wait_for $A '^:set bits$' 5
text $A 1.fc
keys $A Tab
check "A: Tab: several names: the log lists them" wait_for $A '^completions: 1\.fc1\.weight 1\.fc2\.weight 1\.fc3\.weight$' 5
check "A: Tab: several names: the line unchanged" has $A '^:set bits 1\.fc$'
text $A 2
keys $A Tab
text $A 3
check "A: Tab completes a quantizer name" wait_for $A '^:set bits 1\.fc2\.weight 3$' 5
keys $A Enter
check "A: :set bits: journaled line in the log" wait_for $A "^\[$((n0 + 1))\] set bits 1\.fc2\.weight 3: matched 1" 5
check "A: :set bits: the table" wait_for $A '^ 1\.fc2\.weight +Gemm +W +3 ' 5
wait_idle $A
check "A: :set bits: in the autosave" sess $DA/lenet.qdb.json.autosave "j.journal.length==$((n0 + 1)) && j.overrides.includes('1.fc2.weight bits=3')"
golden $A cmd_set_80x24
colon $A 'frob x'
check "A: an unknown command: one line in the log" wait_for $A "^frob: unknown command 'frob' \(qdb do SESSION help lists them\)\$" 5
colon $A 'set bits nosuch 4'
check "A: a bad set: on the message line" wait_for $A 'no quantizer matches' 5
check "A: a bad set: one line (the message line)" test "$(msgline $A)" = "no quantizer matches 'nosuch'"
check "A: the failures journaled nothing" sess $DA/lenet.qdb.json.autosave "j.journal.length==$((n0 + 1))"
keys $A :
text $A e
keys $A Tab
check "A: Tab with several commands lists them" wait_for $A '^completions: eval export$' 5
keys $A Escape
check "A: Esc closes the command line" wait_gone $A '^:e' 5
keys $A : Up
check "A: Up: the last command" wait_for $A '^:set bits nosuch 4$' 5
keys $A Up
check "A: Up again: the one before" wait_for $A '^:frob x$' 5
keys $A Up
check "A: Up again" wait_for $A '^:set bits 1\.fc2\.weight 3$' 5
keys $A Down
check "A: Down" wait_for $A '^:frob x$' 5
keys $A C-u
text $A 'set bits 1.fc2.weight 8'
keys $A Enter
check "A: set back to 8" wait_for $A '^ 1\.fc2\.weight +Gemm +W +8 ' 5
wait_idle $A
check "A: W8A8 again" grep -qE "^ $ST" <<<"$(status $A)"

# -- the flowchart: Esc while it runs
n1=$(jget $DA/lenet.qdb.json.autosave 'j.journal.length')
keys $A f
check "A: f: the flowchart runs (progress in the status bar)" wait_for $A ' flowchart .*([0-9]\.[0-9]s|ETA [0-9]+s) *$' 10
check "A: f: its steps in the log" wait_for $A '^debug: step 2/7' 20
keys $A Space
check "A: space while it runs: refused, busy" wait_for $A '^busy with flowchart: Esc cancels it$' 5
keys $A w
check "A: w while it runs: refused, busy" wait_for $A '^busy: save when the work is done \(Esc cancels it\)$' 5
check "A: w while it runs: no session file" test ! -e $DA/lenet.qdb.json
tm resize-window -t $A -x 70 -y 20
check "A: resized while it runs: too small" wait_for $A 'qdb needs at least 80x24 \(this is 70x20\)' 5
tm resize-window -t $A -x 80 -y 24
check "A: resized back while it runs" wait_for $A '^-- log -' 5
keys $A Escape
check "A: Esc: cancelled" wait_for $A '^cancelled' 10
check "A: Esc: idle again" wait_idle $A 10
check "A: Esc: the log says it was cancelled, once" has $A '^qdb debug: cancelled during step'
check "A: Esc: no progress indicator" idle_now $A
check "A: Esc: the metric is still shown" grep -qE "^ $ST" <<<"$(status $A)"
check "A: Esc: the stopped flowchart is not journaled" sess $DA/lenet.qdb.json.autosave "j.journal.length==$n1 && !j.journal.some(e=>e.argv[0]=='debug')"
keys $A k
check "A: Esc: still responsive" wait_for $A '^-- 1\.fc3\.weight -' 3
# a short flowchart: the per-quantizer steps fill the SQNR and drop columns
colon $A 'debug --steps perq,tensors --report lenet.qdb.report'
check "A: debug: the report read" wait_for $A '^flowchart report: lenet\.qdb\.report/summary\.md' 40
wait_idle $A
check "A: debug: SQNR and drop filled" has $A '^ 1\.fc1\.weight +Gemm +W +8 +sym tens sqnr +on +32\.4 +0\.00$'
check "A: debug: every row shown has both" test "$(cap $A | sed -n 3,9p | grep -cE ' [0-9]+\.[0-9] +-?[0-9]+\.[0-9]{2}$')" -eq 7
check "A: debug: journaled" sess $DA/lenet.qdb.json.autosave "j.journal.length==$((n1 + 1)) && j.journal[$n1].argv[0]=='debug' && j.journal[$n1].result.images==200"
check "A: debug: the report" test -s $DA/lenet.qdb.report/report.json
golden $A flowchart_80x24
keys $A o o g
check "A: sort by local SQNR" wait_for $A ' 13/13, sorted by local SQNR ' 5
check "A: by SQNR: the lowest first (fc1 weight, 32.4 dB)" row1 $A '^ 1\.fc1\.weight .* 32\.4 '
keys $A o o o
wait_for $A ' sorted by graph order ' 5 >/dev/null

# -- resizing
keys $A g
wait_idle $A >/dev/null
before=$(cap $A | norm 80)
tm resize-window -t $A -x 70 -y 20
check "A: 70x20: too small" wait_for $A 'qdb needs at least 80x24 \(this is 70x20\)' 5
golden $A small_70x20
tm resize-window -t $A -x 80 -y 24
check "A: back to 80x24: the full layout" wait_for $A '^-- log -' 5
wait_idle $A
check "A: back to 80x24: the same screen as before" test "$(cap $A | norm 80)" = "$before"
tm resize-window -t $A -x 100 -y 30
check "A: 100x30: the wider layout" wait_for $A '^ quantizer {30,}op ' 5
wait_idle $A
check "A: 100x30: all 13 rows" has $A '^ 1\.fc3\.weight '
golden $A wide_100x30
# f again, cancelled: the complete report of the run before stays
keys $A f
check "A: f again: runs" wait_for $A ' flowchart .*([0-9]\.[0-9]s|ETA [0-9]+s) *$' 10
# in step 2 a cancelled run writes its partial report (no per-quantizer part)
check "A: f again: step 2" wait_for $A '^debug: step 2/7' 40
keys $A Escape
check "A: f again, Esc: the previous report is back" wait_for $A '^the previous report is back in lenet\.qdb\.report$' 20
wait_idle $A >/dev/null
check "A: f again, Esc: the report of the run before, whole" js $DA/lenet.qdb.report/report.json "j.per_quantizer.quantizers.length==13"
check "A: f again, Esc: nothing left aside" test ! -e $DA/lenet.qdb.report.prev
check "A: f again, Esc: the columns kept" has $A '^ 1\.fc1\.weight .* 32\.4 +0\.00 *$'
# too small, q: the screen says "q quits"; with unsaved changes q asks first,
# and the question must be seen
tm resize-window -t $A -x 70 -y 20
wait_for $A 'qdb needs at least 80x24 \(this is 70x20\)' 5 >/dev/null
keys $A q
check "A: 70x20: q with unsaved changes shows its question" wait_for $A 'save lenet\.qdb\.json before quitting' 3
keys $A c
tm resize-window -t $A -x 80 -y 24
wait_for $A '^-- log -' 5 >/dev/null
check "A: 70x20: c cancelled the quit" wait_for $A '^quit cancelled' 3
wait_idle $A >/dev/null

# -- w, then q quits at once
colon $A 'set bits 1.conv2.weight 4'
wait_for $A '^ 1\.conv2\.weight +Conv +W +4 ' 5 >/dev/null
wait_idle $A >/dev/null
keys $A w
check "A: w: saved" wait_for $A '^saved lenet\.qdb\.json \([0-9]+ journal entries\)' 5
check "A: w: no [unsaved] any more" wait_gone $A '\[unsaved\]' 5
check "A: w: the title lost its [+]" hasnt $A 'lenet\.qdb\.json \[\+\]'
check "A: w: the session file" sess $DA/lenet.qdb.json "j.overrides.includes('1.conv2.weight bits=4') && j.journal.some(e=>e.argv[0]=='debug')"
check "A: w: same journal as the autosave" test "$(jget $DA/lenet.qdb.json 'JSON.stringify(j.journal)')" = "$(jget $DA/lenet.qdb.json.autosave 'JSON.stringify(j.journal)')"
keys $A q
check "A: q after w: quits at once, exit 0" exited $A 0
check "A: q: the terminal is given back" restored $A
check "A: q: the autosave is gone" test ! -e $DA/lenet.qdb.json.autosave
cp $DA/lenet.qdb.json $tmp/a_saved.json

# ===================== B: qdb open the saved session =====================
B=b; DB=$tmp/b
mkdir -p $DB; cp $DA/lenet.onnx $DA/lenet.qdb.json $DB/
start $B 80 24 -- open lenet.qdb.json
check "B: qdb open shows the session" wait_for $B '^ acc [0-9.]+% \(live' 30
wait_idle $B
check "B: the saved bits (conv2 weight at 4)" has $B '^ 1\.conv2\.weight +Conv +W +4 +sym tens sqnr +on'
check "B: nothing unsaved" hasnt $B '\[unsaved\]'
golden $B reopen_80x24
keys $B j j j Space
check "B: a change" wait_for $B '^ 1\.conv1\.weight +Conv +W +8 +sym tens sqnr +off' 5
check "B: [unsaved]" wait_for $B '\[unsaved\]' 5
wait_idle $B >/dev/null
keys $B q
check "B: q asks" wait_for $B '^save lenet\.qdb\.json before quitting\? y save and quit, n quit without saving, c' 5
keys $B c
check "B: c: quit cancelled" wait_for $B '^quit cancelled' 5
check "B: c: still running" has $B '^-- log -'
keys $B q
wait_for $B '^save lenet\.qdb\.json before quitting' 5 >/dev/null
keys $B y
check "B: q y: exit 0" exited $B 0
check "B: q y: the terminal is given back" restored $B
check "B: q y: the session has the change" sess $DB/lenet.qdb.json "j.overrides.includes('1.conv1.weight enabled=0') && j.overrides.includes('1.conv2.weight bits=4')"
check "B: q y: the autosave is gone" test ! -e $DB/lenet.qdb.json.autosave

# ===================== U: the u key, a (apply to all) =====================
U=u; DU=$tmp/u
start $U 80 24 -- "${TUI[@]}"
wait_for $U '^ acc [0-9.]+% \(live' 30 >/dev/null
wait_idle $U >/dev/null
keys $U -
check "U: - on image: 7 bits" wait_for $U '^ image +input +I +7 ' 5
wait_idle $U >/dev/null
keys $U a
check "U: a: the same bits for every activation" wait_for $U '^\[4\] set @activations bits=7: matched 8' 5
wait_idle $U >/dev/null
check "U: a: the activations shown at 7 bits (5 of 7 rows)" test "$(cap $U | grep -cE '^ [^ ]+ +[A-Za-z]+ +[AI] +7 ')" -eq 5
check "U: a: the weights untouched" test "$(cap $U | grep -cE '^ [^ ]+ +[A-Za-z]+ +W +8 ')" -eq 2
keys $U f
wait_for $U '^debug: step [0-9]/7' 20 >/dev/null
keys $U C-c
check "U: C-c while the flowchart runs: cancelled" wait_for $U '^cancelled$' 10
check "U: C-c: idle again" wait_idle $U 10
keys $U C-c
check "U: C-c when idle: asks before quitting" wait_for $U '^save lenet\.qdb\.json before quitting' 5
keys $U c
check "U: c: quit cancelled" wait_for $U '^quit cancelled$' 5
keys $U u
check "U: u: undoes a" wait_for $U '^ /0/Sub_output_0 +Sub +A +8 ' 5
if gone $U; then
    echo "    (qdb exited at u: the rest of U is skipped)"
else
    check "U: u: image still at 7" has $U '^ image +input +I +7 '
    check "U: u: journaled" sess $DU/lenet.qdb.json.autosave 'j.journal[j.journal.length-1].argv[0]=="undo" && j.overrides.join()=="image bits=7"'
    keys $U u
    check "U: u again: image at 8" wait_for $U '^ image +input +I +8 ' 5
    check "U: still running" wait_idle $U 10
fi
# :q! quits without asking: a clean quit, so no autosave is left behind (the
# next qdb tui there would be refused, saying the last one did not quit cleanly)
colon $U 'q!'
check "U: :q!: exit 0" exited $U 0
check "U: :q!: the terminal is given back" restored $U
check "U: :q!: no session file" test ! -e $DU/lenet.qdb.json
check "U: :q!: the autosave is removed" test ! -e $DU/lenet.qdb.json.autosave

# ===================== C: e, C, B, p; then q n on a new session =====================
C=c; DC=$tmp/c
start $C 80 24 -- "${TUI[@]}" --seed 0
wait_for $C '^ acc [0-9.]+% \(live' 30 >/dev/null
wait_idle $C >/dev/null
keys $C e
check "C: e: a journaled eval" wait_for $C '^\[3\] eval: accuracy 0\.91, fp32_accuracy 0\.91, agreement 0\.99, sqnr_db 35\.5' 20
check "C: e: the status bar shows it" wait_for $C '^ acc 91\.00% \(eval, [0-9]+ ms\)  FP32 91\.00%  agree 99\.00%  SQNR 35\.5 dB' 5
wait_idle $C >/dev/null
check "C: e: in the autosave" sess $DC/lenet.qdb.json.autosave 'j.journal[2].argv.join()=="eval" && j.journal[2].result.accuracy==0.91 && j.journal[2].result.images==200'
keys $C C
check "C: C: cross-layer equalization journaled" wait_for $C '^\[4\] cle: pairs 2' 20
check "C: C: rebuilt and evaluated" wait_for $C '^live: accuracy [0-9.]+% .*\(full, ' 20
wait_idle $C >/dev/null
keys $C B
check "C: B: bias correction journaled" wait_for $C '^\[5\] bias-correct' 30
wait_idle $C >/dev/null
check "C: C, B: the transforms in the autosave" sess $DC/lenet.qdb.json.autosave 'j.transforms.map(t=>t.name).join()=="cle,bias_correction"'
keys $C j j j p
check "C: p: a PNG of the selected weight's ranges" wait_for $C '^plot: wrote lenet\.qdb\.report\.1\.conv1\.weight\.png' 20
check "C: p: the file" bash -c "od -An -tx1 -N4 $DC/lenet.qdb.report.1.conv1.weight.png | grep -q '89 50 4e 47'"
wait_idle $C >/dev/null
keys $C Space
check "C: a change" wait_for $C '^ 1\.conv1\.weight +Conv +W +8 +sym tens sqnr +off' 5
wait_idle $C >/dev/null
check "C: journaled in the autosave" sess $DC/lenet.qdb.json.autosave "j.overrides.includes('1.conv1.weight enabled=0')"
keys $C q
wait_for $C '^save lenet\.qdb\.json before quitting' 5 >/dev/null
keys $C n
check "C: q n: exit 0" exited $C 0
check "C: q n: the terminal is given back" restored $C
check "C: q n: no session file" test ! -e $DC/lenet.qdb.json
check "C: q n: the autosave is removed" test ! -e $DC/lenet.qdb.json.autosave
check "C: q n: no lock file left" test ! -e $DC/lenet.qdb.json.lock

# ===================== D: kill -TERM, NO_COLOR, the autosave left =====================
D=d; DD=$tmp/d
start $D 80 24 NO_COLOR=1 -- "${TUI[@]}"
wait_for $D '^ acc [0-9.]+% \(live' 30 >/dev/null
wait_idle $D >/dev/null
check "D: NO_COLOR: no colour escapes" nocolours $D
check "D: NO_COLOR: reverse video for the bars" reverse $D
golden $D nocolor_80x24
keys $D Space
wait_for $D '^ image +input +I +8 +asym +- +sqnr +off' 5 >/dev/null
wait_idle $D >/dev/null
colon $D 'set bits 1.fc1.weight 4'
wait_for $D '^\[4\] set bits 1\.fc1\.weight 4: matched 1' 5 >/dev/null
wait_idle $D >/dev/null
keys $D G k -
wait_for $D '^ 1\.fc3\.weight +Gemm +W +7 ' 5 >/dev/null
wait_idle $D >/dev/null
cp -r $DA/lenet.qdb.report $DD/lenet.qdb.report   # a complete report from before
keys $D f
check "D: the flowchart runs" wait_for $D '^debug: step [0-9]/7' 20
qpid=$(pid_of $D)
check "D: qdb's pid ($qpid)" test -n "$qpid"
[ -n "$qpid" ] && kill -TERM $qpid
check "D: kill -TERM: exit 143" exited $D 143 20
check "D: kill -TERM: the terminal is given back" restored $D
check "D: kill -TERM: says where the changes are" has $D '^qdb tui: stopped by signal 15; every change is in lenet\.qdb\.json\.autosave$'
check "D: kill -TERM: one line on stderr (got: $(lines $D | tr '\n' '|'))" one_line $D 'stopped by signal 15'
check "D: kill -TERM: the autosave holds every change" sess $DD/lenet.qdb.json.autosave \
    'j.journal.map(e=>e.argv.join(" ")).slice(2).join("|")=="set off image|set bits 1.fc1.weight 4|set bits 1.fc3.weight 7" && j.overrides.join()=="image enabled=0,1.fc1.weight bits=4,1.fc3.weight bits=7"'
check "D: kill -TERM: no session file" test ! -e $DD/lenet.qdb.json
check "D: kill -TERM: the report from before kept aside" cmp -s $DA/lenet.qdb.report/report.json $DD/lenet.qdb.report.prev/report.json
cp $DD/lenet.qdb.json.autosave $tmp/d_autosave.json
# a new qdb tui there is refused while the autosave exists
D2=d2
IN=$DD start $D2 80 24 -- "${TUI[@]}"
check "D: autosave left: refused, exit 2" exited $D2 2
check "D: refused: one line naming the autosave" test "$(lines $D2)" = "qdb tui: lenet.qdb.json.autosave: left by a qdb tui that did not quit cleanly: recover it with qdb open lenet.qdb.json.autosave (or remove it)"
check "D: refused: the autosave untouched" cmp -s $DD/lenet.qdb.json.autosave $tmp/d_autosave.json
tm kill-session -t $D2
# qdb open on the autosave recovers the work
IN=$DD start $D2 80 24 -- open lenet.qdb.json.autosave
check "D: qdb open on the autosave" wait_for $D2 '^ acc [0-9.]+% \(live' 30
wait_idle $D2 >/dev/null
check "D: recovered: image bypassed" has $D2 '^ image +input +I +8 +asym +- +sqnr +off'
keys $D2 G
check "D: recovered: fc3 weight at 7 bits" wait_for $D2 '^ 1\.fc3\.weight +Gemm +W +7 ' 5
check "D: recovered: fc1 weight at 4 bits" has $D2 '^ 1\.fc1\.weight +Gemm +W +4 '
keys $D2 q
check "D: recovered: q quits (nothing unsaved)" exited $D2 0
check "D: recovered: the autosave file, as a session, unchanged" cmp -s $DD/lenet.qdb.json.autosave $tmp/d_autosave.json

# ===================== F: a report left aside by a killed qdb =====================
# REPORT.prev whole and REPORT without its report.json (as D left them): the
# next flowchart puts the old one back first; cancelled, it is back again
F=f; DF=$tmp/f
mkdir -p $DF/lenet.qdb.report && cp -r $DA/lenet.qdb.report $DF/lenet.qdb.report.prev
start $F 80 24 -- "${TUI[@]}"
wait_for $F '^ acc [0-9.]+% \(live' 30 >/dev/null
wait_idle $F >/dev/null
keys $F f
check "F: the flowchart runs" wait_for $F '^debug: step 2/7' 40
keys $F Escape
check "F: cancelled: the report from before is back" wait_for $F '^the previous report is back in lenet\.qdb\.report$' 20
check "F: it is the whole one" cmp -s $DA/lenet.qdb.report/report.json $DF/lenet.qdb.report/report.json
check "F: nothing left aside" test ! -e $DF/lenet.qdb.report.prev
wait_idle $F >/dev/null
keys $F q
wait_for $F 'save lenet\.qdb\.json before quitting' 5 >/dev/null
keys $F n
check "F: q, n quits" exited $F 0

# ===================== E: qdb tui that cannot start =====================
cp models/lenet.onnx $tmp/lenet.onnx
cd $tmp
"$QDB" tui lenet.onnx --data fashion-mnist --limit 200 </dev/null >$tmp/out 2>$tmp/err; rc=$?
check "no terminal: exit 2 (got $rc)" test $rc -eq 2
check "no terminal: one line" bash -c "test \$(wc -l <$tmp/err) -eq 1 && grep -q 'needs a terminal' $tmp/err"
check "no terminal: nothing left behind" test -z "$(ls $tmp | grep -E 'qdb\.json')"
cd "$ROOT"
bad "bad flag" "--frob" tui models/lenet.onnx --data fashion-mnist --frob
bad "no --data" "--data SPEC is required" tui models/lenet.onnx
bad "bad --quant" "w1a8" tui models/lenet.onnx --data fashion-mnist --quant w1a8
bad "bad --limit" "--limit" tui models/lenet.onnx --data fashion-mnist --limit x
start e 80 24 -- tui nosuch.onnx --data fashion-mnist --limit 200
check "missing model: exit 2" exited e 2
check "missing model: one line naming it (got: $(lines e | tr '\n' '|'))" one_line e nosuch.onnx
check "missing model: nothing left behind" test -z "$(ls $tmp/e | grep -v '^lenet\.onnx$')"
start e2 80 24 -- tui lenet.onnx --data nosuch-data --limit 200
check "bad data: exit 2" exited e2 2
check "bad data: one line naming it (got: $(lines e2 | tr '\n' '|'))" one_line e2 nosuch-data

ms=$((($(date +%s%N) - t_start) / 1000000))
echo "t_tui: $((ms / 1000)).$((ms % 1000 / 100)) s, $timeouts waits timed out"
finish
