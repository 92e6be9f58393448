#!/usr/bin/env bash
# t_plot.sh - `qdb plot` and the plots of `qdb debug --report`, end to end:
#   - every kind on LeNet into a PNG of the --size asked (IHDR), one SVG and
#     one PDF; the script and data beside each, and `gnuplot x.gp` run by
#     hand from another directory draws the same PNG again;
#   - ranges of a depthwise layer of MobileNetV2: the data file shows CLE
#     shrinking the spread of its channel ranges;
#   - text in the terminal: the --size asked, no escape sequences with NO_COLOR;
#   - qdb debug --report DIR writes DIR/plots/*.png and *.svg, and qdb plot
#     --report DIR draws sensitivity, grid, sweep and sqnr from that report;
#   - no gnuplot: exit 3 naming the script and data (both written); debug
#     still exits 0 with its report;
#   - bad input: exit 2, one line naming what is wrong.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
command -v gnuplot >/dev/null || { echo "FAIL gnuplot is not installed (make deps)"; fail=1; finish; }

L=models/lenet.onnx
data="--data fashion-mnist --limit 150 --calib 150 --threads 2"

# png_size FILE: "W H" from the PNG's IHDR chunk
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3*256+$4, $7*256+$8}'; }
is_png() { [ "$(od -An -tx1 -N8 "$1" | tr -d ' ')" = 89504e470d0a1a0a ]; }
# plotted NAME: the plot, its script and its data exist
plotted() { test -s "$1" && test -s "${1%.*}.gp" && test -s "${1%.*}.dat"; }

# each kind on LeNet, PNG at its own size
i=0
for spec in "ranges" "spread" "sensitivity $data" "sweep $data --bits 8,4" "grid $data --grid 8,4" \
            "hist --calib 150 --target w8a4" "sqnr $data"; do
    kind=${spec%% *}; opts=${spec#$kind}
    w=$((640 + 16 * i)); h=$((400 + 8 * i)); i=$((i + 1))
    $QDB plot $kind $L $opts -o $tmp/$kind.png --size ${w}x$h --json >$tmp/$kind.json 2>$tmp/err
    rc=$?
    check "$kind: exit 0 ($rc: $(tail -c 300 $tmp/err))" test $rc -eq 0
    check "$kind: PNG, script and data written" plotted $tmp/$kind.png
    check "$kind: a PNG" is_png $tmp/$kind.png
    check "$kind: ${w}x$h as asked (got $(png_size $tmp/$kind.png))" test "$(png_size $tmp/$kind.png)" = "$w $h"
    check "$kind: stderr says what was written" grep -qF "plot: wrote $tmp/$kind.png ($tmp/$kind.gp, $tmp/$kind.dat)" $tmp/err
    check "$kind: --json names plot and files" js $tmp/$kind.json "j.plot=='$kind' && j.output=='$tmp/$kind.png' && j.script=='$tmp/$kind.gp' && j.data=='$tmp/$kind.dat'"
done
check "ranges: --json names the layer (the widest spread: fc1)" js $tmp/ranges.json "j.layer=='/1/fc1/Gemm'"
check "hist: --json names the tensor" js $tmp/hist.json "typeof j.layer=='string' && j.layer.length>0"
check "sensitivity: a row per active quantizer (13)" test "$(grep -vc '^#' $tmp/sensitivity.dat)" -ge 13

# gnuplot on the script by hand, from another directory, draws the same PNG
cp $tmp/ranges.png $tmp/ranges.orig.png
rm $tmp/ranges.png
(cd / && gnuplot "$tmp/ranges.gp") 2>$tmp/err
check "gnuplot ranges.gp (run from /) draws the same PNG ($(head -c 200 $tmp/err))" cmp -s $tmp/ranges.png $tmp/ranges.orig.png
cp $tmp/sweep.png $tmp/sweep.orig.png
(cd $tmp && gnuplot sweep.gp) 2>$tmp/err
check "gnuplot sweep.gp (run beside it) draws the same PNG" cmp -s $tmp/sweep.png $tmp/sweep.orig.png

# SVG and PDF
$QDB plot spread $L -o $tmp/s.svg 2>$tmp/err
check "SVG: written with script and data ($(tail -c 200 $tmp/err))" plotted $tmp/s.svg
check "SVG: an SVG document" grep -q '<svg' $tmp/s.svg
$QDB plot grid $L $data --grid 8,4 -o $tmp/g.pdf 2>$tmp/err
check "PDF: written with script and data ($(tail -c 200 $tmp/err))" plotted $tmp/g.pdf
check "PDF: a PDF document" bash -c "head -c 5 $tmp/g.pdf | grep -q '%PDF-'"

# MobileNetV2: a depthwise layer's channel ranges before and after CLE
dw=/2/features/features.1/conv/conv.0/conv.0.0/Conv
$QDB plot ranges models/mobilenet_v2.onnx --layer $dw -o $tmp/dw.png --json >$tmp/dw.json 2>$tmp/err
check "mobilenet ranges: exit 0 ($(tail -c 200 $tmp/err))" plotted $tmp/dw.png
check "mobilenet ranges: the layer is the depthwise one" js $tmp/dw.json "j.layer=='$dw'"
# spread per block of the data (index 0 before, 1 after): max|W| per channel, largest / smallest non-zero
spreads=$(awk 'BEGIN { blk = 0 } /^$/ { if (prev != "") blk++; prev = ""; next } /^#/ { next }
    { prev = $0; r = ($2 < 0 ? -$2 : $2); if ($3 > r) r = $3; n[blk]++;
      if (r > 0 && (!(blk in lo) || r < lo[blk])) lo[blk] = r; if (r > hi[blk]) hi[blk] = r }
    END { printf "%d %d %.6g %.6g\n", n[0], n[1], hi[0] / lo[0], hi[1] / lo[1] }' $tmp/dw.dat)
read -r n0 n1 s0 s1 <<<"$spreads"
echo "mobilenet $dw: spread $s0 before CLE, $s1 after ($n0 / $n1 channels)"
check "mobilenet ranges: 32 channels before and after" test "$n0 $n1" = "32 32"
check "mobilenet ranges: CLE shrinks the spread ($s0 -> $s1)" awk "BEGIN { exit !($s1 < $s0 / 10) }"
$QDB plot ranges models/mobilenet_v2.onnx --layer $dw --no-cle -o $tmp/dw1.png 2>/dev/null
check "mobilenet ranges --no-cle: one block of data" test "$(grep -c '^$' $tmp/dw1.dat)" -eq 0

# the terminal, as text
$QDB plot spread $L --term --text --size 60x20 >$tmp/t.txt 2>$tmp/err
check "text: exit 0 and printed ($(tail -c 200 $tmp/err))" test -s $tmp/t.txt
check "text: at most 20 lines (got $(wc -l <$tmp/t.txt))" test "$(wc -l <$tmp/t.txt)" -le 20
check "text: at most 60 columns" test "$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' $tmp/t.txt)" -le 60
check "text: not a terminal, no escape sequences" bash -c "! grep -q $'\e' $tmp/t.txt"
$QDB plot ranges $L -o - --text --size 60x20 >$tmp/t2.txt 2>/dev/null
check "text: -o - is the terminal too" test -s $tmp/t2.txt
if command -v script >/dev/null; then
    NO_COLOR=1 script -qec "$QDB plot spread $L --term --text --size 60x20" /dev/null >$tmp/tty.txt 2>&1
    check "text on a terminal with NO_COLOR: printed" grep -q 'before CLE' $tmp/tty.txt
    check "text on a terminal with NO_COLOR: no escape sequences" bash -c "! grep -q $'\e' $tmp/tty.txt"
    env -u NO_COLOR script -qec "$QDB plot spread $L --term --text --size 60x20" /dev/null >$tmp/tty2.txt 2>&1
    check "text on a terminal: coloured" grep -q $'\e\[' $tmp/tty2.txt
fi

# qdb debug --report DIR: plots beside the report, and qdb plot --report from it
$QDB debug $L $data --target w4a4 --steps wa,perq,tensors --grid 8,4 --report $tmp/r >/dev/null 2>$tmp/err
rc=$?
check "debug --report: exit 0 ($rc: $(tail -c 300 $tmp/err))" test $rc -eq 0
for p in sensitivity grid sqnr spread ranges; do
    check "debug --report: plots/$p.png is a PNG" is_png $tmp/r/plots/$p.png
    check "debug --report: plots/$p.svg, .gp, .dat" bash -c "grep -q '<svg' $tmp/r/plots/$p.svg && test -s $tmp/r/plots/$p.gp -a -s $tmp/r/plots/$p.dat"
    check "debug --report: summary.md links plots/$p.png" grep -qF "(plots/$p.png)" $tmp/r/summary.md
done
check "debug --report: the summary keeps its sections" bash -c "grep -c '^## ' $tmp/r/summary.md | grep -qx 4"
for k in sensitivity grid sweep sqnr; do
    $QDB plot $k --report $tmp/r -o $tmp/rep_$k.png 2>$tmp/err
    check "plot $k --report: exit 0 ($(tail -c 200 $tmp/err))" plotted $tmp/rep_$k.png
done
check "plot sensitivity --report: the same data as debug's plot" cmp -s $tmp/rep_sensitivity.dat $tmp/r/plots/sensitivity.dat
check "plot grid --report: the same data as debug's plot" cmp -s $tmp/rep_grid.dat $tmp/r/plots/grid.dat
check "plot sqnr --report: a row per tensor of the report" test "$(grep -vc '^#' $tmp/rep_sqnr.dat)" -eq "$(jget $tmp/r/report.json 'j.tensors.length')"

# no gnuplot
QDB_GNUPLOT=/nonexistent $QDB plot ranges $L -o $tmp/ng.png >/dev/null 2>$tmp/err
rc=$?
check "no gnuplot: exit 3 (got $rc)" test $rc -eq 3
check "no gnuplot: one line naming the script and data ($(cat $tmp/err))" bash -c "test \$(wc -l <$tmp/err) -eq 1 && grep -qF '$tmp/ng.gp' $tmp/err && grep -qF '$tmp/ng.dat' $tmp/err"
check "no gnuplot: script and data written, no PNG" bash -c "test -s $tmp/ng.gp -a -s $tmp/ng.dat -a ! -e $tmp/ng.png"
QDB_GNUPLOT=false $QDB plot ranges $L -o $tmp/nf.png >/dev/null 2>$tmp/err
rc=$?
check "gnuplot fails: exit 3 naming the script ($rc: $(cat $tmp/err))" bash -c "test $rc -eq 3 && grep -qF '$tmp/nf.gp' $tmp/err"
QDB_GNUPLOT=/nonexistent $QDB debug $L $data --steps perq --report $tmp/ng >/dev/null 2>$tmp/err
rc=$?
check "no gnuplot: debug still exits 0 ($rc)" test $rc -eq 0
check "no gnuplot: debug writes its report" js $tmp/ng/report.json "j.steps_done.includes('perq')"
check "no gnuplot: debug warns once, naming the scripts' place" bash -c "grep -c 'plots not rendered' $tmp/err | grep -qx 1 && grep -qF 'scripts in $tmp/ng/plots' $tmp/err"
check "no gnuplot: the scripts are there" test -s $tmp/ng/plots/sensitivity.gp
check "no gnuplot: summary.md lists no plot" bash -c "! grep -q 'plots/' $tmp/ng/summary.md"

# bad input
bad "unknown kind" "unknown kind" plot bogus $L -o $tmp/x.png
bad "unknown layer" "nolayer" plot ranges $L --layer nolayer -o $tmp/x.png
bad "ambiguous layer" "matches" plot ranges $L --layer Gemm -o $tmp/x.png
bad "unknown tensor for hist" "nolayer" plot hist $L --calib 50 --layer nolayer -o $tmp/x.png
bad "bad extension" "x.jpg" plot ranges $L -o $tmp/x.jpg
bad "no output" "-o FILE" plot ranges $L
bad "sensitivity without --data" "--data" plot sensitivity $L -o $tmp/x.png
bad "unwritable output" "/nonexistent/dir/x.png" plot ranges $L -o /nonexistent/dir/x.png
bad "bad --size" "--size" plot ranges $L -o $tmp/x.png --size 12xbig
bad "tiny --size" "--size" plot ranges $L -o $tmp/x.png --size 10x10
bad "option of another kind" "--top" plot ranges $L --top 3 -o $tmp/x.png
bad "--report for ranges" "--report" plot ranges $L --report $tmp/r -o $tmp/x.png
bad "--report with a model" "--report" plot grid $L --report $tmp/r -o $tmp/x.png
bad "--report without report.json" "report.json" plot grid --report $tmp -o $tmp/x.png
mkdir -p $tmp/bad
printf '{"metric": "top1", "fp32": 0.9, "per_quantizer": {"quantizers": [{"na' >$tmp/bad/report.json
bad "corrupt report.json" "$tmp/bad/report.json" plot sensitivity --report $tmp/bad -o $tmp/x.png
printf '{"metric": "top1", "fp32": 0.9, "per_quantizer": {"quantizers": [{"name": 3}]}}' >$tmp/bad/report.json
bad "report.json of the wrong shape" "quantizers[0].name" plot sensitivity --report $tmp/bad -o $tmp/x.png
printf '{"metric": "top1", "fp32": 0.9, "quantized": null}' >$tmp/bad/report.json
bad "report without the step" "no per-tensor errors" plot sqnr --report $tmp/bad -o $tmp/x.png
bad "bad --bits" "--bits" plot sweep $L --data fashion-mnist --bits 8,1 -o $tmp/x.png
bad "hist of minmax" "minmax" plot hist $L --range minmax -o $tmp/x.png
bad "--json in the terminal" "--json" plot ranges $L --term --json
printf 'not a model' >$tmp/bad.onnx
bad "bad model" "$tmp/bad.onnx" plot ranges $tmp/bad.onnx -o $tmp/y.png

finish
