/* cli_plot.h - the plots of a qdb debug report directory, shared by
 * `qdb debug --report DIR` (which writes them) and `qdb plot --report DIR`
 * (which draws one of them on demand): both read DIR/report.json, so the
 * two always show the same numbers. Internal to the CLI (sessions/cli*.c);
 * the command itself, cli_cmd_plot, is declared in cliutil.h. */
#ifndef QD_CLI_PLOT_H
#define QD_CLI_PLOT_H

#include "err.h"
#include "viz/viz.h" /* QD_EGNUPLOT */

#define CLI_PLOTS_MAX 5

/* The plots rendered into DIR/plots/: NAME.png and NAME.svg each. */
typedef struct cli_plots {
    int n;
    char name[CLI_PLOTS_MAX][32];   /* "sensitivity", "grid", "sqnr", "spread", "ranges" */
    char title[CLI_PLOTS_MAX][160]; /* what it shows, for summary.md */
} cli_plots;

/* Write DIR/plots/ for the report in DIR/report.json: sensitivity (when the
 * per-quantizer analysis ran), grid (the W x A grid), sqnr (per-tensor
 * errors), spread (relative weight range per layer of model, before CLE)
 * and ranges (per-channel weight ranges of the layer whose weight costs
 * most alone at target). Each as NAME.svg and NAME.png, with NAME.gp
 * (rendering the PNG) and NAME.dat. model is the ONNX file the report was
 * made from (spread and ranges read its weights). Every plot is attempted;
 * out (zeroed first) lists those rendered. Returns QD_OK, or the first
 * failure with its reason in e: QD_EGNUPLOT when gnuplot is missing or
 * failed (the scripts and data are written). */
int cli_plot_debug_report(const char *dir, const char *model, cli_plots *out, qd_err *e);

#endif
