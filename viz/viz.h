/* viz.h - qdb's plots: each plot is a gnuplot script and its data file,
 * written side by side so that a user can open and restyle them, and
 * rendered by gnuplot into PNG, SVG or PDF, or into the terminal (sixel
 * graphics, or text from gnuplot's dumb terminal, with ANSI colour).
 *
 * The inputs are plain tables (names and numbers) that the caller fills
 * from the engine's results; viz knows nothing of graphs or quantizers.
 * Every function returns QD_OK or an error code with a one-line message in
 * e naming the file and the reason. When gnuplot is missing or fails, the
 * script and data are still written and the error says so (QD_EGNUPLOT):
 * the caller reports it and carries on. */
#ifndef QD_VIZ_H
#define QD_VIZ_H

#include <stddef.h>

#include "err.h"

/* gnuplot could not be run, or failed: the script and data were written
 * (also the CLI's exit code) */
#define QD_EGNUPLOT 3

typedef enum qv_fmt {
    QV_PNG,   /* pngcairo */
    QV_SVG,   /* svg */
    QV_PDF,   /* pdfcairo */
    QV_TEXT,  /* dumb terminal, into qv_target.text */
    QV_SIXEL, /* sixelgd, into qv_target.text */
    QV_NONE   /* script and data only */
} qv_fmt;

typedef struct qv_target {
    /* PNG/SVG/PDF/NONE: the output file; the script and data go beside it
     * as the same path with .gp and .dat for its extension. TEXT/SIXEL:
     * NULL (script and data in a temporary directory, removed after), or a
     * path whose .gp/.dat are kept. */
    const char *path;
    qv_fmt fmt;
    int width, height; /* pixels (PNG, SVG, PDF at 72 dpi, SIXEL), default 960x540;
                          characters (TEXT), default 80x24 */
    int color;         /* TEXT: ANSI colours (the caller honours NO_COLOR) */
    char *text;        /* TEXT/SIXEL: what gnuplot printed, malloc'd (caller frees) */
    size_t text_len;
} qv_target;

/* The format a file name asks for: .png .svg .pdf (case-insensitive);
 * -1 otherwise. */
int qv_fmt_from_path(const char *path);
const char *qv_fmt_name(qv_fmt f);

/* The gnuplot command: $QDB_GNUPLOT when set, else "gnuplot". */
const char *qv_gnuplot(void);
/* 1 when the gnuplot command runs and has the terminal f's driver. */
int qv_gnuplot_has(qv_fmt f);

/* 1 when the terminal on fd answers a primary device attributes query
 * with sixel support (attribute 4), within timeout_ms; 0 otherwise or
 * when fd is not a terminal. $QDB_SIXEL=1 or 0 overrides the query. */
int qv_term_sixel(int fd, int timeout_ms);

/* 1. Per-output-channel ranges of one layer's weights: min and max per
 * channel as a bar from min to max, the mean as a tick; with `after`,
 * the same after CLE beside it on the same axis (the white paper's
 * figures 4.2 and 4.3). */
typedef struct qv_channels {
    int n;                        /* channels; 0 = absent */
    const double *min, *max, *mean;
} qv_channels;

typedef struct qv_ranges_plot {
    const char *layer;            /* title */
    qv_channels before, after;    /* after.n == 0: before only */
    const char *before_label, *after_label; /* default "before CLE", "after CLE" */
} qv_ranges_plot;
int qv_plot_ranges(const qv_ranges_plot *p, qv_target *t, qd_err *e);

/* 2. Relative weight range per layer (largest channel range over the
 * smallest) along the network, log scale; layers above `outlier` marked
 * and named. */
typedef struct qv_spread_plot {
    int n;
    const char *const *layers;
    const double *before, *after; /* after may be NULL */
    double outlier;               /* <= 0: 10 */
} qv_spread_plot;
int qv_plot_spread(const qv_spread_plot *p, qv_target *t, qd_err *e);

/* 3. Per-quantizer sensitivity: the metric with only that quantizer on
 * (enable-one) and with only it off (disable-one), one bar pair per
 * quantizer in the order given (the caller sorts by harm), with the FP32
 * and fully quantized levels as lines. Either array may be NULL. */
typedef struct qv_sens_plot {
    int n;
    const char *const *names;
    const double *enable_one, *disable_one;
    double fp32, quantized;       /* NAN: not drawn */
    const char *metric;           /* axis label, e.g. "top-1" */
} qv_sens_plot;
int qv_plot_sensitivity(const qv_sens_plot *p, qv_target *t, qd_err *e);

/* 4a. Bit-width sweep curves: metric against bits, one curve each. */
typedef struct qv_curve {
    const char *title;
    int n;
    const double *x, *y;
} qv_curve;

typedef struct qv_sweep_plot {
    const char *title, *xlabel, *ylabel;
    int ncurves;
    const qv_curve *curves;
    double fp32;                  /* NAN: not drawn */
} qv_sweep_plot;
int qv_plot_sweep(const qv_sweep_plot *p, qv_target *t, qd_err *e);

/* 4b. W x A bit-width heatmap: value[iw * na + ia] for weight bits
 * wbits[iw] and activation bits abits[ia], each cell labelled. */
typedef struct qv_grid_plot {
    int nw, na;
    const int *wbits, *abits;
    const double *value;          /* NAN: cell not measured */
    const char *metric;
} qv_grid_plot;
int qv_plot_grid(const qv_grid_plot *p, qv_target *t, qd_err *e);

/* 5. A tensor's histogram (nbins equal bins over [lo, hi]) with the range
 * each method picks marked as a pair of vertical lines, and, when
 * grid_levels is 2..64, the quantization grid of the first range drawn. */
typedef struct qv_hist_plot {
    const char *tensor;
    int nbins;
    double lo, hi;
    const double *count;
    int nranges;
    const char *const *range_names;
    const double *rmin, *rmax;
    int grid_levels;              /* 2^bits when drawn, else 0 */
    int log_y;                    /* counts on a log scale */
} qv_hist_plot;
int qv_plot_hist(const qv_hist_plot *p, qv_target *t, qd_err *e);

/* 6. SQNR (dB) of every quantized tensor along the depth of the network:
 * local (its quantizer alone) and propagated (the whole quantized model
 * against FP32 there). Infinite values are drawn at the top. */
typedef struct qv_sqnr_plot {
    int n;
    const char *const *names;
    const double *local, *prop;   /* either may be NULL */
} qv_sqnr_plot;
int qv_plot_sqnr(const qv_sqnr_plot *p, qv_target *t, qd_err *e);

#endif
