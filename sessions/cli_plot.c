/* cli_plot.c - qdb plot: one of viz/'s plots (weight ranges of a layer,
 * their spread along the network, per-quantizer sensitivity, bit-width
 * sweeps and the W x A grid, an activation's histogram with the ranges each
 * method picks, SQNR along depth) measured on a model, or read from a
 * qdb debug report; and the plots qdb debug --report DIR writes into
 * DIR/plots/ from that same report (cli_plot.h). */
#include "cli_plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "cle.h"
#include "cliutil.h"
#include "fuse.h"
#include "perq.h"
#include "qeval.h"
#include "terr.h"
#include "util.h"
#include "viz/viz.h"

static const char plot_help[] =
    "usage: qdb plot KIND MODEL [options] -o FILE.png|FILE.svg|FILE.pdf\n"
    "       qdb plot KIND --report DIR [options] -o FILE   (sensitivity, sweep, grid, sqnr)\n"
    "       qdb plot KIND MODEL [options] --term           (or -o -: into the terminal)\n"
    "Draws one plot with gnuplot. The script FILE.gp and its data FILE.dat are written\n"
    "beside FILE (run `gnuplot FILE.gp` in FILE's directory to draw it again); when\n"
    "gnuplot is missing or fails they are still written and qdb exits 3.\n"
    "kinds:\n"
    "  ranges       per-output-channel weight ranges (min..max, mean) of one layer,\n"
    "               batch norms folded, before and after CLE side by side\n"
    "  spread       relative weight range of every Conv/Gemm (largest channel max|W| over\n"
    "               the smallest), before and after CLE, outliers marked\n"
    "  sensitivity  per-quantizer analysis at --target: enable-one and disable-one,\n"
    "               most harmful first (needs --data)\n"
    "  sweep        the metric against weight bits (activations float) and against\n"
    "               activation bits (weights float), with the FP32 line (needs --data)\n"
    "  grid         W x A heatmap of the metric (needs --data)\n"
    "  hist         histogram of one activation's calibration values, the range each\n"
    "               method picks (the one in use first) and, at <= 6 bits, its grid\n"
    "  sqnr         local and propagated SQNR of every quantized tensor (needs --data)\n"
    "output:\n"
    "  -o FILE            .png, .svg or .pdf\n"
    "  -o - | --term      into the terminal: sixel when it answers that it can, else text\n"
    "  --sixel | --text   force one; text is coloured unless NO_COLOR is set or stdout is\n"
    "                     not a terminal\n"
    "  --size WxH         pixels for files and sixel (default 960x540), characters for text\n"
    "                     (default the terminal's size)\n"
    "  --json             print {plot, output, script, data, layer} on stdout\n"
    "what to plot:\n"
    "  --layer NAME       ranges: a Conv/Gemm node or its weight (or a unique part of the\n"
    "                     name); default the layer with the largest spread.\n"
    "                     hist: an activation or input quantizer (tensor or producing node,\n"
    "                     or a unique part); default the lowest local SQNR on --data, or\n"
    "                     without --data the first activation quantizer\n"
    "  --no-cle           ranges, spread: before CLE only\n"
    "  --outlier X        spread: mark and name layers above X (default 10)\n"
    "  --top N            sensitivity: the N most harmful quantizers (default 30)\n"
    "  --bits LIST        sweep: bit-widths (default 16,8,6,5,4,3,2)\n"
    "  --grid LIST        grid: bit-widths of both axes (default 16,8,6,4)\n"
    "  --report DIR       sensitivity, sweep, grid, sqnr: read DIR/report.json of\n"
    "                     qdb debug --report DIR instead of measuring; sweep then draws the\n"
    "                     grid's row at the widest activations and column at the widest weights\n"
    "measuring:\n"
    "  --data SPEC        evaluation set (as for qdb eval); --limit N (default 500, 0 = all)\n"
    "                     --seed S\n"
    "  --target wNaM      sensitivity, hist, sqnr: the quantization (default w8a8)\n"
    "  --batch B --threads T\n"
    "  --range R --calib N --calib-data SPEC --per-channel --config FILE --set '...'\n"
    "  --overrides FILE --bias B --cle --bias-correct M --adaround\n"
    "                     the quantization measured (as for qdb eval)\n"
    "The metric is top-1 with labels, else the top-1 agreement with FP32.\n";

enum { K_RANGES, K_SPREAD, K_SENS, K_SWEEP, K_GRID, K_HIST, K_SQNR, K__N };
static const char *const kind_names[K__N] = {"ranges", "spread", "sensitivity", "sweep", "grid", "hist", "sqnr"};
#define KB(k) (1u << (k))
#define K_DATA (KB(K_SENS) | KB(K_SWEEP) | KB(K_GRID) | KB(K_SQNR)) /* need --data, or --report */
#define K_SIM (K_DATA | KB(K_HIST))                                  /* build simulations */
#define K_WTS (KB(K_RANGES) | KB(K_SPREAD))                          /* FP32 weights only */
#define K_ALL ((1u << K__N) - 1)

/* ------------------------------------------------------------ plots */

/* One plot: the viz struct and the storage it points into. Never copied
 * by value (the viz struct points into it). */
typedef struct plot {
    int kind;
    char what[256];        /* the layer or tensor drawn; "" for the whole model */
    char title[512];
    char metric[32];
    char label[2][64];
    int nnames;
    char **names;          /* owned */
    double *num;           /* owned */
    int *ints;             /* owned */
    qv_curve curves[2];
    union {
        qv_ranges_plot ranges;
        qv_spread_plot spread;
        qv_sens_plot sens;
        qv_sweep_plot sweep;
        qv_grid_plot grid;
        qv_hist_plot hist;
        qv_sqnr_plot sqnr;
    } v;
} plot;

static int plot_alloc(plot *p, int nnames, size_t nnum, size_t nints, qd_err *e)
{
    p->names = calloc((size_t)nnames + 1, sizeof *p->names);
    p->num = calloc(nnum + 1, sizeof *p->num);
    p->ints = calloc(nints + 1, sizeof *p->ints);
    if (!p->names || !p->num || !p->ints)
        return qd_errf(e, QD_EFAIL, "out of memory");
    p->nnames = nnames;
    return QD_OK;
}

static int plot_name(plot *p, int i, const char *s, qd_err *e)
{
    if (!(p->names[i] = strdup(s)))
        return qd_errf(e, QD_EFAIL, "out of memory");
    return QD_OK;
}

static const char *const *plot_names(const plot *p) { return (const char *const *)p->names; }

static void plot_free(plot *p)
{
    for (int i = 0; p->names && i < p->nnames; i++)
        free(p->names[i]);
    free(p->names);
    free(p->num);
    free(p->ints);
    memset(p, 0, sizeof *p);
}

static int draw(const plot *p, qv_target *t, qd_err *e)
{
    switch (p->kind) {
    case K_RANGES: return qv_plot_ranges(&p->v.ranges, t, e);
    case K_SPREAD: return qv_plot_spread(&p->v.spread, t, e);
    case K_SENS: return qv_plot_sensitivity(&p->v.sens, t, e);
    case K_SWEEP: return qv_plot_sweep(&p->v.sweep, t, e);
    case K_GRID: return qv_plot_grid(&p->v.grid, t, e);
    case K_HIST: return qv_plot_hist(&p->v.hist, t, e);
    case K_SQNR: return qv_plot_sqnr(&p->v.sqnr, t, e);
    }
    return qd_errf(e, QD_EFAIL, "no such plot");
}

/* Sensitivity rows, one per quantizer; en_sqnr breaks ties (may be NULL). */
typedef struct sens_in {
    int n;
    const char *const *names;
    const double *en, *en_sqnr, *dis;
    double fp32, quant;
    const char *metric;
} sens_in;

/* Enable-one metric, lowest first (NaN last); then its output SQNR. */
static int by_harm(const void *a, const void *b, void *ctx)
{
    const sens_in *s = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    double x = s->en[i], y = s->en[j];
    if (isnan(x) != isnan(y))
        return isnan(x) ? 1 : -1;
    if (x != y && !isnan(x))
        return x < y ? -1 : 1;
    double sx = s->en_sqnr ? s->en_sqnr[i] : 0, sy = s->en_sqnr ? s->en_sqnr[j] : 0;
    if (sx != sy && !isnan(sx) && !isnan(sy))
        return sx < sy ? -1 : 1;
    return i - j;
}

/* The top quantizers of s by harm. */
static int plot_sens(plot *p, const sens_in *s, int top, qd_err *e)
{
    int *o = malloc(sizeof *o * ((size_t)s->n + 1));
    if (!o)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (int i = 0; i < s->n; i++)
        o[i] = i;
    qsort_r(o, (size_t)s->n, sizeof *o, by_harm, (void *)s);
    int n = s->n < top ? s->n : top, rc = plot_alloc(p, n, 2 * (size_t)n, 0, e);
    for (int k = 0; !rc && k < n; k++) {
        rc = plot_name(p, k, s->names[o[k]], e);
        p->num[k] = s->en[o[k]];
        p->num[n + k] = s->dis[o[k]];
    }
    free(o);
    if (rc)
        return rc;
    p->kind = K_SENS;
    snprintf(p->metric, sizeof p->metric, "%s", s->metric);
    p->v.sens = (qv_sens_plot){.n = n, .names = plot_names(p), .enable_one = p->num, .disable_one = p->num + n,
                               .fp32 = s->fp32, .quantized = s->quant, .metric = p->metric};
    return QD_OK;
}

static int plot_grid(plot *p, int nw, const int *wb, int na, const int *ab, const double *val, const char *metric,
                     qd_err *e)
{
    int rc = plot_alloc(p, 0, (size_t)nw * (size_t)na, (size_t)(nw + na), e);
    if (rc)
        return rc;
    memcpy(p->ints, wb, sizeof *wb * (size_t)nw);
    memcpy(p->ints + nw, ab, sizeof *ab * (size_t)na);
    memcpy(p->num, val, sizeof *val * (size_t)nw * (size_t)na);
    p->kind = K_GRID;
    snprintf(p->metric, sizeof p->metric, "%s", metric);
    p->v.grid = (qv_grid_plot){.nw = nw, .na = na, .wbits = p->ints, .abits = p->ints + nw, .value = p->num,
                               .metric = p->metric};
    return QD_OK;
}

/* Two curves: the metric against weight bits (x0, y0) and activation bits (x1, y1). */
static int plot_sweep(plot *p, const char *title, int n0, const int *x0, const double *y0, const char *l0, int n1,
                      const int *x1, const double *y1, const char *l1, double fp32, const char *metric, qd_err *e)
{
    int rc = plot_alloc(p, 0, 2 * (size_t)(n0 + n1), 0, e);
    if (rc)
        return rc;
    double *d = p->num;
    for (int i = 0; i < n0; i++)
        d[i] = x0[i], d[n0 + i] = y0[i];
    d += 2 * n0;
    for (int i = 0; i < n1; i++)
        d[i] = x1[i], d[n1 + i] = y1[i];
    p->kind = K_SWEEP;
    snprintf(p->title, sizeof p->title, "%s", title);
    snprintf(p->metric, sizeof p->metric, "%s", metric);
    snprintf(p->label[0], sizeof p->label[0], "%s", l0);
    snprintf(p->label[1], sizeof p->label[1], "%s", l1);
    p->curves[0] = (qv_curve){.title = p->label[0], .n = n0, .x = p->num, .y = p->num + n0};
    p->curves[1] = (qv_curve){.title = p->label[1], .n = n1, .x = d, .y = d + n1};
    p->v.sweep = (qv_sweep_plot){.title = p->title, .xlabel = "bits", .ylabel = p->metric, .ncurves = 2,
                                 .curves = p->curves, .fp32 = fp32};
    return QD_OK;
}

static int plot_sqnr(plot *p, int n, const char *const *names, const double *local, const double *prop, qd_err *e)
{
    int rc = plot_alloc(p, n, 2 * (size_t)n, 0, e);
    for (int i = 0; !rc && i < n; i++) {
        rc = plot_name(p, i, names[i], e);
        p->num[i] = local[i];
        p->num[n + i] = prop[i];
    }
    if (rc)
        return rc;
    p->kind = K_SQNR;
    p->v.sqnr = (qv_sqnr_plot){.n = n, .names = plot_names(p), .local = p->num, .prop = p->num + n};
    return QD_OK;
}

/* ------------------------------------------------------------ names */

/* Levenshtein distance, case-insensitive, of the first 127 characters. */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strnlen(a, 127), lb = (int)strnlen(b, 127), row[128];
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], ca = a[i - 1], cb = b[j - 1];
            ca += ca >= 'A' && ca <= 'Z' ? 32 : 0;
            cb += cb >= 'A' && cb <= 'Z' ? 32 : 0;
            int best = diag + (ca != cb);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Index of want among names[] or alt[] (alt and its entries may be NULL):
 * an exact match, else the only name containing want. Otherwise -1 with e
 * naming what was asked, in where, and the candidates that come close. */
static int pick(const char *what, const char *want, int n, const char *const *names, const char *const *alt,
                const char *where, qd_err *e)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], want) || (alt && alt[i] && !strcmp(alt[i], want)))
            return i;
    int found = -1, nfound = 0;
    char list[320] = "";
    size_t at = 0;
    for (int i = 0; i < n; i++)
        if (strstr(names[i], want) || (alt && alt[i] && strstr(alt[i], want))) {
            found = i;
            if (nfound++ < 5 && at < sizeof list)
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", nfound > 1 ? ", " : "", names[i]);
        }
    if (nfound == 1)
        return found;
    if (nfound > 1) {
        qd_errf(e, QD_EINPUT, "qdb plot: --layer '%s' matches %d %ss in %s: %s%s (give more of the name)", want,
                nfound, what, where, list, nfound > 5 ? ", ..." : "");
        return -1;
    }
    int best[3] = {-1, -1, -1}, bd[3] = {0};
    for (int i = 0; i < n; i++) {
        int d = edit_distance(want, names[i]);
        if (alt && alt[i]) {
            int d2 = edit_distance(want, alt[i]);
            d = d2 < d ? d2 : d;
        }
        for (int k = 0; k < 3; k++)
            if (best[k] < 0 || d < bd[k]) {
                for (int m = 2; m > k; m--)
                    best[m] = best[m - 1], bd[m] = bd[m - 1];
                best[k] = i, bd[k] = d;
                break;
            }
    }
    at = 0;
    for (int k = 0; k < 3 && best[k] >= 0 && at < sizeof list; k++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", names[best[k]]);
    if (!n)
        qd_errf(e, QD_EINPUT, "qdb plot: --layer '%s': %s has no %s", want, where, what);
    else
        qd_errf(e, QD_EINPUT, "qdb plot: --layer '%s': no such %s in %s (closest: %s)", want, what, where, list);
    return -1;
}

/* ------------------------------------------------------------ weights: ranges, spread */

/* The model's Conv/Gemm layers with constant FP32 weights, as qd_cle finds
 * them: g0 has its batch norms folded (before CLE), g1 is equalized. */
typedef struct wts {
    qd_graph *g0, *g1;
    qd_cle_report cle;
    int *node0;            /* per layer: its node in g0, -1 if absent */
    const char **wname;    /* per layer: its weight's name in g0 (borrowed), or NULL */
    const char **lname;    /* per layer: cle.layers[i].name (borrowed) */
} wts;

static void wts_free(wts *w)
{
    qd_graph_free(w->g0);
    qd_graph_free(w->g1);
    qd_cle_report_free(&w->cle);
    free(w->node0);
    free(w->wname);
    free(w->lname);
    memset(w, 0, sizeof *w);
}

static int wts_load(const char *model, wts *w, qd_err *e)
{
    memset(w, 0, sizeof *w);
    int rc;
    if (!(w->g0 = qd_graph_load(model, e)) || !(w->g1 = qd_graph_load(model, e)))
        return e->code;
    if ((rc = qd_graph_fuse_ex(w->g0, QD_FUSE_BN, NULL, NULL, e)) || (rc = qd_cle(w->g1, NULL, &w->cle, e)))
        return qd_err_prefix(e, "%s", model), rc;
    int n = w->cle.nlayers;
    w->node0 = malloc(sizeof *w->node0 * ((size_t)n + 1));
    w->wname = calloc((size_t)n + 1, sizeof *w->wname);
    w->lname = calloc((size_t)n + 1, sizeof *w->lname);
    if (!w->node0 || !w->wname || !w->lname)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (int i = 0; i < n; i++) {
        w->lname[i] = w->cle.layers[i].name;
        w->node0[i] = -1;
        for (int k = 0; k < w->g0->nnodes && w->node0[i] < 0; k++)
            if (!strcmp(w->g0->nodes[k].name, w->cle.layers[i].name))
                w->node0[i] = k;
        if (w->node0[i] >= 0 && qd_node_has_input(&w->g0->nodes[w->node0[i]], 1))
            w->wname[i] = w->g0->values[w->g0->nodes[w->node0[i]].in[1]].name;
    }
    return QD_OK;
}

/* Min, max and mean of each output channel of node ni's constant weight
 * (Conv: W (co, ci/group, k...); Gemm: W (co, ci) with transB, else (ci, co))
 * into mn, mx, mean (co each). Returns co, or -1 when the node has none. */
static int64_t channel_stats(const qd_graph *g, int ni, int64_t want, double *mn, double *mx, double *mean)
{
    const qd_node *n = &g->nodes[ni];
    const qd_tensor *w = qd_node_const_input(g, n, 1);
    if (!w || w->ndim < 2)
        return -1;
    /* output channels: axis 0, or 1 for a Gemm's K x N weight */
    int gemm = !strcmp(n->op_type, "Gemm"), axis = gemm && !qd_attr_int(n, "transB", 0) ? 1 : 0;
    if (w->shape[axis] != want || want <= 0)
        return -1;
    return qd_tensor_channel_stats(w, axis, mn, mx, mean);
}

/* The per-channel ranges of layer li, before and (unless no_cle) after CLE. */
static int plot_ranges(plot *p, const wts *w, int li, int no_cle, qd_err *e)
{
    const qd_cle_layer *L = &w->cle.layers[li];
    int64_t c = L->nch;
    int rc = plot_alloc(p, 0, 6 * (size_t)c, 0, e);
    if (rc)
        return rc;
    double *b = p->num, *a = p->num + 3 * c;
    if (w->node0[li] < 0 || channel_stats(w->g0, w->node0[li], c, b, b + c, b + 2 * c) != c ||
        (!no_cle && channel_stats(w->g1, L->node, c, a, a + c, a + 2 * c) != c))
        return qd_errf(e, QD_EFAIL, "%s: layer %s: cannot read its weights", w->g0->path, L->name);
    p->kind = K_RANGES;
    snprintf(p->what, sizeof p->what, "%s", L->name);
    if (no_cle)
        snprintf(p->title, sizeof p->title, "%s%s, spread %.3g", L->name, L->depthwise ? " (depthwise)" : "",
                 L->spread_before);
    else
        snprintf(p->title, sizeof p->title, "%s%s, spread %.3g -> %.3g", L->name,
                 L->depthwise ? " (depthwise)" : "", L->spread_before, L->spread_after);
    p->v.ranges = (qv_ranges_plot){.layer = p->title, .before = {(int)c, b, b + c, b + 2 * c}};
    if (!no_cle)
        p->v.ranges.after = (qv_channels){(int)c, a, a + c, a + 2 * c};
    return QD_OK;
}

/* Spread of every layer, before and (unless no_cle) after CLE; 0 (all
 * channels zero) is not drawn. */
static int plot_spread(plot *p, const wts *w, int no_cle, double outlier, qd_err *e)
{
    int n = w->cle.nlayers, rc = plot_alloc(p, n, 2 * (size_t)n, 0, e);
    for (int i = 0; !rc && i < n; i++) {
        const qd_cle_layer *L = &w->cle.layers[i];
        rc = plot_name(p, i, L->name, e);
        p->num[i] = L->spread_before > 0 ? L->spread_before : NAN;
        p->num[n + i] = L->spread_after > 0 ? L->spread_after : NAN;
    }
    if (rc)
        return rc;
    p->kind = K_SPREAD;
    p->v.spread = (qv_spread_plot){.n = n, .layers = plot_names(p), .before = p->num,
                                   .after = no_cle ? NULL : p->num + n, .outlier = outlier};
    return QD_OK;
}

/* Layer index of the largest spread before CLE. */
static int widest_spread(const wts *w)
{
    int best = 0;
    for (int i = 1; i < w->cle.nlayers; i++)
        if (w->cle.layers[i].spread_before > w->cle.layers[best].spread_before)
            best = i;
    return best;
}

/* ------------------------------------------------------------ debug reports */

/* What the plots use of a qdb debug report.json. */
typedef struct dreport {
    char metric[16];       /* "top-1" or "agreement" */
    double fp32, quant;
    int has_perq, nq;
    char **qname;
    int *qparam;           /* a weight (or bias) quantizer */
    double *en, *ensq, *dis;
    int has_grid, ncell;
    int *cw, *ca;
    double *cv;
    int has_tensors, nt;
    char **tname;
    double *tloc, *tprop;
} dreport;

static void dreport_free(dreport *r)
{
    for (int i = 0; r->qname && i < r->nq; i++)
        free(r->qname[i]);
    for (int i = 0; r->tname && i < r->nt; i++)
        free(r->tname[i]);
    free(r->qname);
    free(r->qparam);
    free(r->en);
    free(r->ensq);
    free(r->dis);
    free(r->cw);
    free(r->ca);
    free(r->cv);
    free(r->tname);
    free(r->tloc);
    free(r->tprop);
    memset(r, 0, sizeof *r);
}

/* o[key] as a number (null: NAN); an error naming file, where and key otherwise. */
static int jget_num(const cJSON *o, const char *key, double *v, const char *file, const char *where, qd_err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(x))
        *v = x->valuedouble;
    else if (cJSON_IsNull(x))
        *v = NAN;
    else
        return qd_errf(e, QD_EINPUT, "%s: %s%s%s: %s", file, where, *where ? "." : "", key,
                       x ? "expected a number" : "missing");
    return QD_OK;
}

static int jget_str(const cJSON *o, const char *key, char **v, const char *file, const char *where, qd_err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(x))
        return qd_errf(e, QD_EINPUT, "%s: %s%s%s: %s", file, where, *where ? "." : "", key,
                       x ? "expected a string" : "missing");
    if (!(*v = strdup(x->valuestring)))
        return qd_errf(e, QD_EFAIL, "out of memory");
    return QD_OK;
}

/* An array at o[key] (absent: NULL, n = 0); QD_EINPUT when it is something else. */
static int jget_arr(const cJSON *o, const char *key, const cJSON **a, int *n, const char *file, const char *where,
                    qd_err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    *a = NULL;
    *n = 0;
    if (!x)
        return QD_OK;
    if (!cJSON_IsArray(x))
        return qd_errf(e, QD_EINPUT, "%s: %s%s%s: expected an array", file, where, *where ? "." : "", key);
    *a = x;
    *n = cJSON_GetArraySize(x);
    if (*n > 1000000)
        return qd_errf(e, QD_EINPUT, "%s: %s%s%s: too long", file, where, *where ? "." : "", key);
    return QD_OK;
}

/* A measurement's metric: its accuracy or agreement. */
static int jget_meas(const cJSON *m, const dreport *r, double *v, const char *file, const char *where, qd_err *e)
{
    if (!cJSON_IsObject(m))
        return qd_errf(e, QD_EINPUT, "%s: %s: expected an object", file, where);
    return jget_num(m, strcmp(r->metric, "top-1") ? "agreement" : "accuracy", v, file, where, e);
}

/* Parse what the plots need of j (a report.json) into r. */
static int dreport_parse(const cJSON *j, const char *file, dreport *r, qd_err *e)
{
    int rc;
    char where[96];
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metric");
    if (!cJSON_IsObject(j) || !cJSON_IsString(m) || !cJSON_GetObjectItemCaseSensitive(j, "fp32"))
        return qd_errf(e, QD_EINPUT, "%s: not a qdb debug report (no \"metric\" and \"fp32\")", file);
    if (strcmp(m->valuestring, "top1") && strcmp(m->valuestring, "agreement"))
        return qd_errf(e, QD_EINPUT, "%s: metric: expected \"top1\" or \"agreement\", got \"%.40s\"", file,
                       m->valuestring);
    snprintf(r->metric, sizeof r->metric, "%s", strcmp(m->valuestring, "top1") ? "agreement" : "top-1");
    if ((rc = jget_num(j, "fp32", &r->fp32, file, "", e)))
        return rc;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quantized");
    r->quant = NAN;
    if (q && !cJSON_IsNull(q) && (rc = jget_meas(q, r, &r->quant, file, "quantized", e)))
        return rc;
    /* per-quantizer analysis */
    const cJSON *pq = cJSON_GetObjectItemCaseSensitive(j, "per_quantizer"), *a;
    if (pq) {
        if ((rc = jget_arr(pq, "quantizers", &a, &r->nq, file, "per_quantizer", e)))
            return rc;
        if (!a)
            return qd_errf(e, QD_EINPUT, "%s: per_quantizer.quantizers: missing", file);
        size_t n = (size_t)r->nq + 1;
        r->qname = calloc(n, sizeof *r->qname);
        r->qparam = calloc(n, sizeof *r->qparam);
        r->en = calloc(n, sizeof *r->en);
        r->ensq = calloc(n, sizeof *r->ensq);
        r->dis = calloc(n, sizeof *r->dis);
        if (!r->qname || !r->qparam || !r->en || !r->ensq || !r->dis)
            return qd_errf(e, QD_EFAIL, "out of memory");
        for (int i = 0; i < r->nq; i++) {
            const cJSON *o = cJSON_GetArrayItem(a, i), *k;
            snprintf(where, sizeof where, "per_quantizer.quantizers[%d]", i);
            if (!cJSON_IsObject(o))
                return qd_errf(e, QD_EINPUT, "%s: %s: expected an object", file, where);
            if ((rc = jget_str(o, "name", &r->qname[i], file, where, e)) ||
                (rc = jget_num(o, "enable_one", &r->en[i], file, where, e)) ||
                (rc = jget_num(o, "enable_one_sqnr_db", &r->ensq[i], file, where, e)) ||
                (rc = jget_num(o, "disable_one", &r->dis[i], file, where, e)))
                return rc;
            k = cJSON_GetObjectItemCaseSensitive(o, "kind");
            r->qparam[i] = cJSON_IsString(k) && !strcmp(k->valuestring, "param");
        }
        r->has_perq = 1;
    }
    /* the W x A grid */
    const cJSON *wa = cJSON_GetObjectItemCaseSensitive(j, "weights_or_activations");
    if (wa) {
        if ((rc = jget_arr(wa, "grid", &a, &r->ncell, file, "weights_or_activations", e)))
            return rc;
        size_t n = (size_t)r->ncell + 1;
        r->cw = calloc(n, sizeof *r->cw);
        r->ca = calloc(n, sizeof *r->ca);
        r->cv = calloc(n, sizeof *r->cv);
        if (!r->cw || !r->ca || !r->cv)
            return qd_errf(e, QD_EFAIL, "out of memory");
        for (int i = 0; i < r->ncell; i++) {
            const cJSON *o = cJSON_GetArrayItem(a, i);
            double wb, ab;
            snprintf(where, sizeof where, "weights_or_activations.grid[%d]", i);
            if ((rc = jget_meas(o, r, &r->cv[i], file, where, e)) ||
                (rc = jget_num(o, "weight_bits", &wb, file, where, e)) ||
                (rc = jget_num(o, "act_bits", &ab, file, where, e)))
                return rc;
            if (!(wb >= QD_BITS_MIN && wb <= QD_BITS_FLOAT && ab >= QD_BITS_MIN && ab <= QD_BITS_FLOAT))
                return qd_errf(e, QD_EINPUT, "%s: %s: bit-widths out of range", file, where);
            r->cw[i] = (int)wb;
            r->ca[i] = (int)ab;
        }
        r->has_grid = r->ncell > 0;
    }
    /* per-tensor errors; a null SQNR is an infinite one (report.json writes
     * non-finite numbers as null; a NaN one, of a tensor never computed, is rare) */
    if ((rc = jget_arr(j, "tensors", &a, &r->nt, file, "", e)))
        return rc;
    if (a) {
        size_t n = (size_t)r->nt + 1;
        r->tname = calloc(n, sizeof *r->tname);
        r->tloc = calloc(n, sizeof *r->tloc);
        r->tprop = calloc(n, sizeof *r->tprop);
        if (!r->tname || !r->tloc || !r->tprop)
            return qd_errf(e, QD_EFAIL, "out of memory");
        for (int i = 0; i < r->nt; i++) {
            const cJSON *o = cJSON_GetArrayItem(a, i);
            const cJSON *lo = cJSON_GetObjectItemCaseSensitive(o, "local"),
                        *pr = cJSON_GetObjectItemCaseSensitive(o, "propagated");
            snprintf(where, sizeof where, "tensors[%d]", i);
            if (!cJSON_IsObject(o) || !cJSON_IsObject(lo) || !cJSON_IsObject(pr))
                return qd_errf(e, QD_EINPUT, "%s: %s: expected an object with local and propagated", file, where);
            if ((rc = jget_str(o, "name", &r->tname[i], file, where, e)) ||
                (rc = jget_num(lo, "sqnr_db", &r->tloc[i], file, where, e)) ||
                (rc = jget_num(pr, "sqnr_db", &r->tprop[i], file, where, e)))
                return rc;
            r->tloc[i] = isnan(r->tloc[i]) ? INFINITY : r->tloc[i];
            r->tprop[i] = isnan(r->tprop[i]) ? INFINITY : r->tprop[i];
        }
        r->has_tensors = 1;
    }
    return QD_OK;
}

/* Read DIR/report.json into r (the cJSON tree is freed here). */
static int dreport_read(const char *dir, dreport *r, qd_err *e)
{
    char file[4096];
    size_t len;
    memset(r, 0, sizeof *r);
    snprintf(file, sizeof file, "%s/report.json", dir);
    char *text = qd_read_file(file, 1u << 30, &len, e);
    if (!text)
        return e->code;
    cJSON *j = cJSON_ParseWithLength(text, len);
    int rc;
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        rc = off >= 0 ? qd_errf(e, QD_EINPUT, "%s: not valid JSON (at byte %ld)", file, off)
                      : qd_errf(e, QD_EINPUT, "%s: not valid JSON", file);
    } else {
        rc = dreport_parse(j, file, r, e);
    }
    cJSON_Delete(j);
    free(text);
    if (rc)
        dreport_free(r);
    return rc;
}

static int report_sens(plot *p, const dreport *r, int top, qd_err *e)
{
    sens_in s = {.n = r->nq, .names = (const char *const *)r->qname, .en = r->en, .en_sqnr = r->ensq,
                 .dis = r->dis, .fp32 = r->fp32, .quant = r->quant, .metric = r->metric};
    return plot_sens(p, &s, top, e);
}

/* Distinct values of v[0..n) in order of appearance into out (at most max). */
static int distinct(const int *v, int n, int *out, int max)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < m && out[k] != v[i])
            k++;
        if (k == m && m < max)
            out[m++] = v[i];
    }
    return m;
}

static int report_grid(plot *p, const dreport *r, qd_err *e)
{
    int wb[16], ab[16], nw = distinct(r->cw, r->ncell, wb, 16), na = distinct(r->ca, r->ncell, ab, 16);
    double val[256];
    for (int i = 0; i < nw * na; i++)
        val[i] = NAN;
    for (int c = 0; c < r->ncell; c++)
        for (int i = 0; i < nw; i++)
            for (int k = 0; k < na; k++)
                if (wb[i] == r->cw[c] && ab[k] == r->ca[c])
                    val[i * na + k] = r->cv[c];
    return plot_grid(p, nw, wb, na, ab, val, r->metric, e);
}

/* The grid's row at the widest activations and its column at the widest weights. */
static int report_sweep(plot *p, const dreport *r, qd_err *e)
{
    int amax = 0, wmax = 0, xw[16], xa[16], nw = 0, na = 0;
    double yw[16], ya[16];
    for (int c = 0; c < r->ncell; c++) {
        amax = r->ca[c] > amax ? r->ca[c] : amax;
        wmax = r->cw[c] > wmax ? r->cw[c] : wmax;
    }
    for (int c = 0; c < r->ncell; c++) {
        if (r->ca[c] == amax && nw < 16)
            xw[nw] = r->cw[c], yw[nw++] = r->cv[c];
        if (r->cw[c] == wmax && na < 16)
            xa[na] = r->ca[c], ya[na++] = r->cv[c];
    }
    char l0[64], l1[64];
    snprintf(l0, sizeof l0, "weights (A%d)", amax);
    snprintf(l1, sizeof l1, "activations (W%d)", wmax);
    char title[96];
    snprintf(title, sizeof title, "%s against bit-width (from the W x A grid)", r->metric);
    return plot_sweep(p, title, nw, xw, yw, l0, na, xa, ya, l1, r->fp32, r->metric, e);
}

static int report_plot(int kind, const char *dir, int top, plot *p, qd_err *e)
{
    dreport r;
    char file[4096];
    int rc = dreport_read(dir, &r, e);
    if (rc)
        return rc;
    snprintf(file, sizeof file, "%s/report.json", dir);
    if (kind == K_SENS)
        rc = r.has_perq ? report_sens(p, &r, top, e)
                        : qd_errf(e, QD_EINPUT, "%s: no per-quantizer analysis (qdb debug step perq)", file);
    else if (kind == K_GRID || kind == K_SWEEP)
        rc = !r.has_grid ? qd_errf(e, QD_EINPUT, "%s: no W x A grid (qdb debug step wa)", file)
             : kind == K_GRID ? report_grid(p, &r, e)
                              : report_sweep(p, &r, e);
    else
        rc = r.has_tensors ? plot_sqnr(p, r.nt, (const char *const *)r.tname, r.tloc, r.tprop, e)
                           : qd_errf(e, QD_EINPUT, "%s: no per-tensor errors (qdb debug step tensors)", file);
    dreport_free(&r);
    return rc;
}

/* ------------------------------------------------------------ measuring */

typedef struct pargs {
    int kind;
    const char *model, *data, *report, *layer;
    long limit, seed, batch, threads, top;
    double outlier;
    int no_cle;
    int wbits, abits;
    int bits[16], nbits;    /* sweep */
    int grid[8], ngrid;     /* grid */
    const opt *q;           /* quantization options */
} pargs;

typedef struct simctx {
    const pargs *pa;
    qd_qsetup base;
    qd_dataset *d;
    qd_logits ref;
    qd_eval_opts eo;
    progress pr;
} simctx;

static void sim_close(simctx *c)
{
    qd_logits_free(&c->ref);
    qd_data_free(c->d);
}

/* The quantization options, and with data the FP32 reference. */
static int sim_open(simctx *c, const pargs *pa, int with_data, qd_err *e)
{
    memset(c, 0, sizeof *c);
    c->pa = pa;
    if (cli_quant_setup("plot", pa->q, pa->data, pa->seed, pa->threads, pa->batch, NULL, &c->base, e))
        return e->code;
    c->pr = (progress){qd_now_ms() / 1e3, cli_progress_on()};
    c->base.progress = c->pr.tty ? cli_progress : NULL;
    c->base.user = &c->pr;
    c->eo = (qd_eval_opts){.batch = pa->batch, .nthreads = (int)pa->threads, .progress = c->base.progress,
                           .user = &c->pr};
    if (!with_data)
        return QD_OK;
    int rc;
    qd_graph *g = qd_graph_load(pa->model, e);
    if (!g)
        return e->code;
    if (!(c->d = qd_data_open(pa->data, NULL, e)) ||
        (pa->limit > 0 && qd_data_limit(c->d, pa->limit, (uint64_t)pa->seed, e)) || qd_graph_fuse(g, NULL, e))
        rc = e->code;
    else if ((rc = qd_logits_compute(g, c->d, &c->eo, &c->ref, e)))
        qd_err_prefix(e, "%s (FP32)", pa->model);
    qd_graph_free(g);
    return rc;
}

static qd_sim *sim_build(simctx *c, int wbits, int abits, qd_err *e)
{
    char quant[16];
    qd_qsetup o = c->base;
    snprintf(quant, sizeof quant, "w%da%d", wbits, abits);
    o.quant = quant;
    if (c->pr.tty)
        fprintf(stderr, "plot: W%dA%d\n", wbits, abits);
    c->pr.t0 = qd_now_ms() / 1e3;
    return qd_qsetup_build(c->pa->model, &o, NULL, e);
}


static const char *metric_name(const simctx *c) { return c->ref.labeled ? "top-1" : "agreement"; }

/* The metric of a fresh sim at wNaM. */
static int measure(simctx *c, int wbits, int abits, double *out, qd_err *e)
{
    qd_sim *s = sim_build(c, wbits, abits, e);
    if (!s)
        return e->code;
    qd_qeval_result r;
    c->pr.t0 = qd_now_ms() / 1e3;
    int rc = qd_qeval_run(s, c->d, &c->ref, &c->eo, &r, e);
    qd_sim_free(s);
    if (rc)
        return qd_err_prefix(e, "%s (W%dA%d)", c->pa->model, wbits, abits), rc;
    *out = qd_qeval_metric(&r);
    return QD_OK;
}

static int measure_sens(simctx *c, plot *p, qd_err *e)
{
    qd_sim *s = sim_build(c, c->pa->wbits, c->pa->abits, e);
    if (!s)
        return e->code;
    int nq = qd_sim_count(s), n = 0, rc;
    int *qs = malloc(sizeof *qs * ((size_t)nq + 1));
    qd_qeval_result *en = calloc((size_t)nq + 1, sizeof *en), *dis = calloc((size_t)nq + 1, sizeof *dis);
    double *num = calloc(3 * (size_t)nq + 1, sizeof *num);
    const char **names = calloc((size_t)nq + 1, sizeof *names);
    if (!qs || !en || !dis || !num || !names) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nq; i++)
        if (qd_quantizer_active(qd_sim_get(s, i)))
            qs[n++] = i;
    if (!n) {
        rc = qd_errf(e, QD_EINPUT, "%s: no active quantizer at W%dA%d", c->pa->model, c->pa->wbits, c->pa->abits);
        goto out;
    }
    qd_perq_opts po = {.batch = c->eo.batch, .progress = c->eo.progress, .user = &c->pr};
    qd_perq_info ien, idis;
    qd_qeval_result base;
    c->pr.t0 = qd_now_ms() / 1e3;
    if ((rc = qd_perq_run(s, c->d, &c->ref, QD_PERQ_ENABLE_ONE, qs, n, &po, en, &ien, e)) ||
        (c->pr.t0 = qd_now_ms() / 1e3,
         rc = qd_perq_run(s, c->d, &c->ref, QD_PERQ_DISABLE_ONE, qs, n, &po, dis, &idis, e)) ||
        (!idis.cached && (rc = qd_qeval_run(s, c->d, &c->ref, &c->eo, &base, e)))) {
        qd_err_prefix(e, "%s (W%dA%d)", c->pa->model, c->pa->wbits, c->pa->abits);
        goto out;
    }
    if (idis.cached)
        base = idis.base;
    for (int k = 0; k < n; k++) {
        names[k] = qd_sim_get(s, qs[k])->name;
        num[k] = qd_qeval_metric(&en[k]);
        num[n + k] = en[k].sqnr_db;
        num[2 * n + k] = qd_qeval_metric(&dis[k]);
    }
    sens_in si = {.n = n, .names = names, .en = num, .en_sqnr = num + n, .dis = num + 2 * n,
                  .fp32 = qd_logits_metric(&c->ref), .quant = qd_qeval_metric(&base), .metric = metric_name(c)};
    rc = plot_sens(p, &si, (int)c->pa->top, e);
out:
    free(qs);
    free(en);
    free(dis);
    free(num);
    free(names);
    qd_sim_free(s);
    return rc;
}

static int measure_sweep(simctx *c, plot *p, qd_err *e)
{
    const pargs *pa = c->pa;
    double yw[16], ya[16];
    int rc;
    for (int i = 0; i < pa->nbits; i++)
        if ((rc = measure(c, pa->bits[i], QD_BITS_FLOAT, &yw[i], e)) ||
            (rc = measure(c, QD_BITS_FLOAT, pa->bits[i], &ya[i], e)))
            return rc;
    char title[512];
    snprintf(title, sizeof title, "%s of %s against bit-width", metric_name(c), pa->model);
    return plot_sweep(p, title, pa->nbits, pa->bits, yw, "weights (A32)", pa->nbits, pa->bits, ya,
                      "activations (W32)", qd_logits_metric(&c->ref), metric_name(c), e);
}

static int measure_grid(simctx *c, plot *p, qd_err *e)
{
    const pargs *pa = c->pa;
    double val[64];
    int rc;
    for (int i = 0; i < pa->ngrid; i++)
        for (int k = 0; k < pa->ngrid; k++)
            if ((rc = measure(c, pa->grid[i], pa->grid[k], &val[i * pa->ngrid + k], e)))
                return rc;
    return plot_grid(p, pa->ngrid, pa->grid, pa->ngrid, pa->grid, val, metric_name(c), e);
}

static int measure_sqnr(simctx *c, plot *p, qd_err *e)
{
    qd_sim *s = sim_build(c, c->pa->wbits, c->pa->abits, e);
    if (!s)
        return e->code;
    qd_terr t = {0};
    c->pr.t0 = qd_now_ms() / 1e3;
    int rc = qd_terr_compute(s, c->d, &c->eo, &t, e);
    const char **names = calloc((size_t)t.n + 1, sizeof *names);
    double *v = calloc(2 * (size_t)t.n + 1, sizeof *v);
    if (!rc && (!names || !v))
        rc = qd_errf(e, QD_EFAIL, "out of memory");
    if (rc)
        qd_err_prefix(e, "%s", c->pa->model);
    for (int i = 0; !rc && i < t.n; i++) {
        names[i] = qd_sim_get(s, t.rows[i].q)->name;
        v[i] = t.rows[i].local.sqnr_db;
        v[t.n + i] = t.rows[i].prop.sqnr_db;
    }
    if (!rc)
        rc = plot_sqnr(p, t.n, names, v, v + t.n, e);
    free(names);
    free(v);
    qd_terr_free(&t);
    qd_sim_free(s);
    return rc;
}

/* An activation or input quantizer with a histogram. */
static int hist_candidate(qd_quantizer *q)
{
    return q->kind != QD_QK_PARAM && qd_quantizer_active(q) && q->nenc >= 1 && q->stats &&
           qd_stats_has_hist(q->stats);
}

/* The quantizer for hist: --layer, else the lowest local SQNR on --data,
 * else the first activation quantizer. */
static int hist_pick(simctx *c, qd_sim *s, int *qi, qd_err *e)
{
    const pargs *pa = c->pa;
    int nq = qd_sim_count(s), n = 0, rc = QD_OK;
    int *idx = malloc(sizeof *idx * ((size_t)nq + 1));
    const char **names = calloc((size_t)nq + 1, sizeof *names), **alt = calloc((size_t)nq + 1, sizeof *alt);
    if (!idx || !names || !alt) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    const qd_graph *g = qd_sim_graph(s);
    for (int i = 0; i < nq; i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_PARAM || !qd_quantizer_active(q))
            continue;
        idx[n] = i;
        names[n] = q->name;
        alt[n++] = q->node >= 0 ? g->nodes[q->node].name : NULL;
    }
    *qi = -1;
    if (pa->layer) {
        char where[300];
        snprintf(where, sizeof where, "%s at W%dA%d", pa->model, pa->wbits, pa->abits);
        int k = pick("active activation quantizer", pa->layer, n, names, alt, where, e);
        rc = k < 0 ? e->code : QD_OK;
        if (k >= 0)
            *qi = idx[k];
    } else if (c->d) {
        qd_terr t = {0};
        c->pr.t0 = qd_now_ms() / 1e3;
        if ((rc = qd_terr_compute(s, c->d, &c->eo, &t, e)))
            qd_err_prefix(e, "%s", pa->model);
        double best = INFINITY;
        for (int i = 0; !rc && i < t.n; i++)
            if (hist_candidate(qd_sim_get(s, t.rows[i].q)) && t.rows[i].local.n &&
                (*qi < 0 || t.rows[i].local.sqnr_db < best))
                *qi = t.rows[i].q, best = t.rows[i].local.sqnr_db;
        if (!rc && *qi >= 0)
            fprintf(stderr, "plot: %s has the lowest local SQNR at W%dA%d: %.2f dB\n", qd_sim_get(s, *qi)->name,
                    pa->wbits, pa->abits, best);
        qd_terr_free(&t);
    } else {
        for (int k = 0; k < n && *qi < 0; k++)
            if (qd_sim_get(s, idx[k])->kind == QD_QK_ACT && hist_candidate(qd_sim_get(s, idx[k])))
                *qi = idx[k];
    }
    if (!rc && *qi < 0)
        rc = qd_errf(e, QD_EINPUT, "%s: no activation quantizer with a calibration histogram at W%dA%d", pa->model,
                     pa->wbits, pa->abits);
    if (!rc && !hist_candidate(qd_sim_get(s, *qi)))
        rc = qd_errf(e, QD_EINPUT, "%s: quantizer %s keeps no histogram (its range is minmax, fixed or imported)",
                     pa->model, qd_sim_get(s, *qi)->name);
out:
    free(idx);
    free(names);
    free(alt);
    return rc;
}

static int measure_hist(simctx *c, plot *p, qd_err *e)
{
    const pargs *pa = c->pa;
    qd_sim *s = sim_build(c, pa->wbits, pa->abits, e);
    if (!s)
        return e->code;
    int qi = -1, rc;
    if ((rc = hist_pick(c, s, &qi, e))) {
        qd_sim_free(s);
        return rc;
    }
    qd_quantizer *q = qd_sim_get(s, qi);
    const double *counts;
    double lo, hi;
    int nb = qd_stats_hist(q->stats, &counts, &lo, &hi);
    if (nb <= 0) {
        qd_sim_free(s);
        return qd_errf(e, QD_EINPUT, "%s: %s saw no finite values in calibration", pa->model, q->name);
    }
    static const struct { qd_range_method m; double pct; const char *name; } methods[] = {
        {QD_RANGE_MINMAX, 0, "minmax"}, {QD_RANGE_SQNR, 0, "sqnr"}, {QD_RANGE_PERCENTILE, 99.99, "percentile:99.99"},
        {QD_RANGE_MSE, 0, "mse"}, {QD_RANGE_KL, 0, "kl"}};
    enum { NM = sizeof methods / sizeof *methods };
    if ((rc = plot_alloc(p, NM + 1, (size_t)nb + 2 * (NM + 1), 0, e))) {
        qd_sim_free(s);
        return rc;
    }
    double *rmin = p->num + nb, *rmax = rmin + NM + 1;
    memcpy(p->num, counts, sizeof *counts * (size_t)nb);
    /* the range in use first: its grid is the one drawn */
    char label[64];
    const char *in_use = q->set.fixed ? "fixed" : qd_range_name(q->set.range);
    if (q->set.range == QD_RANGE_PERCENTILE && !q->set.fixed)
        snprintf(label, sizeof label, "percentile:%g (in use)", q->set.pct);
    else
        snprintf(label, sizeof label, "%s (in use)", in_use);
    int nr = 0;
    rc = plot_name(p, nr, label, e);
    rmin[nr] = q->enc[0].min;
    rmax[nr++] = q->enc[0].max;
    for (int k = 0; !rc && k < NM; k++) {
        if (!q->set.fixed && q->set.range == methods[k].m &&
            (methods[k].m != QD_RANGE_PERCENTILE || q->set.pct == methods[k].pct))
            continue;
        qd_encoding enc;
        qd_err me = {0};
        if (qd_stats_encoding(q->stats, methods[k].m, methods[k].pct, &q->set.scheme, &enc, &me))
            continue; /* drawn without it */
        rc = plot_name(p, nr, methods[k].name, e);
        rmin[nr] = enc.min;
        rmax[nr++] = enc.max;
    }
    p->nnames = NM + 1;
    if (!rc) {
        int bits = q->set.scheme.bits;
        p->kind = K_HIST;
        snprintf(p->what, sizeof p->what, "%s", q->name);
        snprintf(p->title, sizeof p->title, "%s at %d bits (calibration, %lld values)", q->name, bits,
                 (long long)qd_stats_count(q->stats));
        p->v.hist = (qv_hist_plot){.tensor = p->title, .nbins = nb, .lo = lo, .hi = hi, .count = p->num,
                                   .nranges = nr, .range_names = plot_names(p), .rmin = rmin, .rmax = rmax,
                                   .grid_levels = bits <= 6 ? 1 << bits : 0, .log_y = 1};
    }
    qd_sim_free(s);
    return rc;
}

static int measure_plot(const pargs *pa, plot *p, qd_err *e)
{
    simctx c;
    int with_data = pa->kind != K_HIST || (pa->data && !pa->layer);
    int rc = sim_open(&c, pa, with_data, e);
    if (!rc) {
        switch (pa->kind) {
        case K_SENS: rc = measure_sens(&c, p, e); break;
        case K_SWEEP: rc = measure_sweep(&c, p, e); break;
        case K_GRID: rc = measure_grid(&c, p, e); break;
        case K_SQNR: rc = measure_sqnr(&c, p, e); break;
        default: rc = measure_hist(&c, p, e); break;
        }
    }
    sim_close(&c);
    return rc;
}

static int weights_plot(const pargs *pa, plot *p, qd_err *e)
{
    wts w;
    int rc = wts_load(pa->model, &w, e);
    if (!rc && !w.cle.nlayers)
        rc = qd_errf(e, QD_EINPUT, "%s: no Conv or Gemm with constant weights", pa->model);
    if (!rc && pa->kind == K_SPREAD) {
        rc = plot_spread(p, &w, pa->no_cle, pa->outlier, e);
    } else if (!rc) {
        int li = pa->layer ? pick("Conv/Gemm layer", pa->layer, w.cle.nlayers, w.lname, w.wname, pa->model, e)
                           : widest_spread(&w);
        rc = li < 0 ? e->code : plot_ranges(p, &w, li, pa->no_cle, e);
    }
    wts_free(&w);
    return rc;
}

/* ------------------------------------------------------------ output */

/* path with its extension replaced by ext (".gp", ".dat"), as viz names them. */
static void beside(const char *path, const char *ext, char *out, size_t n)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t len = dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
    snprintf(out, n, "%.*s%s", (int)len, path, ext);
}

/* QD_EINPUT naming path when its directory is not a writable directory. */
static int check_writable(const char *opt_name, const char *path, qd_err *e)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    struct stat st;
    if (stat(dir, &st))
        return qd_errf(e, QD_EINPUT, "qdb plot: %s %s: cannot write there: %s", opt_name, path, strerror(errno));
    if (!S_ISDIR(st.st_mode) || access(dir, W_OK))
        return qd_errf(e, QD_EINPUT, "qdb plot: %s %s: cannot write there: %s is not a writable directory", opt_name,
                       path, dir);
    return QD_OK;
}

/* "WxH" within [lo, hi] each. */
static int parse_size(const char *s, int wlo, int hlo, int hi, int *w, int *h, const char *unit, qd_err *e)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10), b = 0;
    int ok = end != s && *end == 'x' && !errno;
    if (ok) {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        ok = end != p && !*end && !errno;
    }
    if (!ok || a < wlo || a > hi || b < hlo || b > hi)
        return qd_errf(e, QD_EINPUT, "qdb plot: --size must be WxH in %s (%d..%d x %d..%d), got '%s'", unit, wlo, hi,
                       hlo, hi, s);
    *w = (int)a;
    *h = (int)b;
    return QD_OK;
}

/* Comma list of bit-widths in [lo, hi]. */
/* ------------------------------------------------------------ the command */

int cli_cmd_plot(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "-o", .has_arg = 1},        {.name = "--output", .has_arg = 1},
                  {.name = "--term", .has_arg = 0},    {.name = "--text", .has_arg = 0},
                  {.name = "--sixel", .has_arg = 0},   {.name = "--size", .has_arg = 1},
                  {.name = "--json", .has_arg = 0},    {.name = "--layer", .has_arg = 1},
                  {.name = "--no-cle", .has_arg = 0},  {.name = "--outlier", .has_arg = 1},
                  {.name = "--top", .has_arg = 1},     {.name = "--bits", .has_arg = 1},
                  {.name = "--grid", .has_arg = 1},    {.name = "--report", .has_arg = 1},
                  {.name = "--data", .has_arg = 1},    {.name = "--limit", .has_arg = 1},
                  {.name = "--seed", .has_arg = 1},    {.name = "--target", .has_arg = 1},
                  {.name = "--batch", .has_arg = 1},   {.name = "--threads", .has_arg = 1},
                  {.name = "--help", .has_arg = 0},    {.name = "-h", .has_arg = 0},
                  {0}};
    enum { O, OUTPUT, TERM, TEXT, SIXEL, SIZE, JSON, LAYER, NOCLE, OUTLIER, TOP, BITS, GRID, REPORT, DATA, LIMIT,
           SEED, TARGET, BATCH, THREADS, HELP, H, N_OPTS };
    /* the kinds each option applies to (output options: all) */
    static const unsigned applies[N_OPTS] = {
        [O] = K_ALL, [OUTPUT] = K_ALL, [TERM] = K_ALL, [TEXT] = K_ALL, [SIXEL] = K_ALL, [SIZE] = K_ALL,
        [JSON] = K_ALL, [LAYER] = KB(K_RANGES) | KB(K_HIST), [NOCLE] = K_WTS, [OUTLIER] = KB(K_SPREAD),
        [TOP] = KB(K_SENS), [BITS] = KB(K_SWEEP), [GRID] = KB(K_GRID), [REPORT] = K_DATA, [DATA] = K_SIM,
        [LIMIT] = K_SIM, [SEED] = K_SIM, [TARGET] = KB(K_SENS) | KB(K_HIST) | KB(K_SQNR), [BATCH] = K_SIM,
        [THREADS] = K_SIM, [HELP] = K_ALL, [H] = K_ALL};
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("plot", argc, argv, opts, qopts, 2, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(plot_help, stdout), QD_OK;
    if (a.npos < 1)
        return qd_errf(e, QD_EINPUT, "qdb plot: give a KIND (ranges, spread, sensitivity, sweep, grid, hist, sqnr) "
                                     "and a MODEL (see qdb plot --help)");
    pargs pa = {.kind = -1, .limit = 500, .batch = 64, .threads = 1, .top = 30, .outlier = 10};
    for (int k = 0; k < K__N; k++)
        if (!strcmp(a.pos[0], kind_names[k]))
            pa.kind = k;
    if (pa.kind < 0)
        return qd_errf(e, QD_EINPUT, "qdb plot: unknown kind '%s' (ranges, spread, sensitivity, sweep, grid, hist, "
                                     "sqnr)", a.pos[0]);
    const char *kn = kind_names[pa.kind];
    for (int i = 0; i < N_OPTS; i++)
        if (opts[i].val && !(applies[i] & KB(pa.kind)))
            return qd_errf(e, QD_EINPUT, "qdb plot %s: %s does not apply to this kind (see qdb plot --help)", kn,
                           opts[i].name);
    pa.report = opts[REPORT].val;
    if (qopts[Q_QUANT].val)
        return qd_errf(e, QD_EINPUT, "qdb plot: --quant is --target here");
    if (cli_quant_given(qopts) && !(K_SIM & KB(pa.kind)))
        return qd_errf(e, QD_EINPUT, "qdb plot %s: quantization options do not apply (it reads the FP32 weights)", kn);
    if (pa.report && (cli_quant_given(qopts) || opts[DATA].val || opts[LIMIT].val || opts[SEED].val ||
                      opts[TARGET].val || opts[BATCH].val || opts[THREADS].val))
        return qd_errf(e, QD_EINPUT, "qdb plot %s: --report plots what the report measured: --data, --target and "
                                     "quantization options do not apply", kn);
    if (pa.report ? a.npos != 1 : a.npos != 2)
        return qd_errf(e, QD_EINPUT, pa.report ? "qdb plot %s: --report DIR takes no MODEL"
                                               : "qdb plot %s: give one MODEL (see qdb plot --help)", kn);
    pa.model = pa.report ? NULL : a.pos[1];
    pa.data = opts[DATA].val;
    pa.layer = opts[LAYER].val;
    pa.no_cle = opts[NOCLE].val != NULL;
    pa.q = qopts;
    if ((K_DATA & KB(pa.kind)) && !pa.report && !pa.data)
        return qd_errf(e, QD_EINPUT, "qdb plot %s: --data SPEC is required (or --report DIR of qdb debug)", kn);

    /* output */
    const char *out = opts[O].val ? opts[O].val : opts[OUTPUT].val;
    int term = opts[TERM].val || (out && !strcmp(out, "-"));
    int fmt = -1, width = 0, height = 0;
    if (opts[TERM].val && out && strcmp(out, "-"))
        return qd_errf(e, QD_EINPUT, "qdb plot: -o %s and --term: give one", out);
    if (!out && !term)
        return qd_errf(e, QD_EINPUT, "qdb plot: -o FILE.png|.svg|.pdf is required (or --term / -o - for the terminal)");
    if ((opts[TEXT].val || opts[SIXEL].val) && !term)
        return qd_errf(e, QD_EINPUT, "qdb plot: %s is for the terminal (--term or -o -)",
                       opts[TEXT].val ? "--text" : "--sixel");
    if (opts[TEXT].val && opts[SIXEL].val)
        return qd_errf(e, QD_EINPUT, "qdb plot: --text and --sixel: give one");
    if (opts[JSON].val && term)
        return qd_errf(e, QD_EINPUT, "qdb plot: --json needs -o FILE (the terminal plot goes to stdout)");
    if (!term && (fmt = qv_fmt_from_path(out)) < 0)
        return qd_errf(e, QD_EINPUT, "qdb plot: -o %s: unknown extension (use .png, .svg or .pdf)", out);
    if (!term && check_writable("-o", out, e))
        return e->code;
    int sixel = term && !opts[TEXT].val && (opts[SIXEL].val || qv_term_sixel(STDOUT_FILENO, 200));
    if (term && !sixel) {
        struct winsize ws;
        width = 80, height = 24;
        if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 0 && ws.ws_row > 1)
            width = ws.ws_col, height = ws.ws_row - 1; /* the prompt stays on screen */
    }
    if (opts[SIZE].val &&
        (term && !sixel ? parse_size(opts[SIZE].val, 20, 5, 1000, &width, &height, "characters", e)
                        : parse_size(opts[SIZE].val, 100, 100, 10000, &width, &height, "pixels", e)))
        return e->code;

    /* numbers */
    pa.bits[0] = 16, pa.bits[1] = 8, pa.bits[2] = 6, pa.bits[3] = 5, pa.bits[4] = 4, pa.bits[5] = 3, pa.bits[6] = 2;
    pa.nbits = 7;
    pa.grid[0] = 16, pa.grid[1] = 8, pa.grid[2] = 6, pa.grid[3] = 4;
    pa.ngrid = 4;
    if ((opts[LIMIT].val && cli_parse_int("plot", "--limit", opts[LIMIT].val, 0, 1L << 40, &pa.limit, e)) ||
        (opts[SEED].val && cli_parse_int("plot", "--seed", opts[SEED].val, 0, 1L << 62, &pa.seed, e)) ||
        (opts[BATCH].val && cli_parse_int("plot", "--batch", opts[BATCH].val, 1, 65536, &pa.batch, e)) ||
        (opts[THREADS].val && cli_parse_int("plot", "--threads", opts[THREADS].val, 1, 64, &pa.threads, e)) ||
        (opts[TOP].val && cli_parse_int("plot", "--top", opts[TOP].val, 1, 100000, &pa.top, e)) ||
        (opts[BITS].val &&
         cli_parse_bits("plot", "--bits", opts[BITS].val, pa.bits, 16, &pa.nbits, e)) ||
        (opts[GRID].val &&
         cli_parse_bits("plot", "--grid", opts[GRID].val, pa.grid, 8, &pa.ngrid, e)))
        return e->code;
    if (opts[OUTLIER].val) {
        char *end;
        errno = 0;
        pa.outlier = strtod(opts[OUTLIER].val, &end);
        if (end == opts[OUTLIER].val || *end || errno || !(pa.outlier > 1 && pa.outlier < 1e12))
            return qd_errf(e, QD_EINPUT, "qdb plot: --outlier must be a ratio above 1, got '%s'", opts[OUTLIER].val);
    }
    pa.wbits = pa.abits = 8;
    if (opts[TARGET].val && qd_qsetup_parse_quant(opts[TARGET].val, &pa.wbits, &pa.abits, e))
        return qd_err_prefix(e, "qdb plot: --target"), e->code;
    if (pa.kind == K_HIST && pa.abits == QD_BITS_FLOAT)
        return qd_errf(e, QD_EINPUT, "qdb plot hist: --target %s leaves activations in float: nothing to calibrate",
                       opts[TARGET].val);
    if (pa.kind == K_HIST && qopts[Q_RANGE].val) {
        qd_range_method rm;
        if (!qd_range_parse(qopts[Q_RANGE].val, &rm, NULL, e) && rm == QD_RANGE_MINMAX)
            return qd_errf(e, QD_EINPUT, "qdb plot hist: --range minmax keeps no histogram; use sqnr, percentile, mse "
                                         "or kl (the minmax range is marked anyway)");
    }

    /* the plot */
    plot p = {0};
    int rc = pa.report ? report_plot(pa.kind, pa.report, (int)pa.top, &p, e)
             : (K_WTS & KB(pa.kind)) ? weights_plot(&pa, &p, e)
                                     : measure_plot(&pa, &p, e);
    if (rc)
        goto out;
    qv_target t = {.path = term ? NULL : out, .fmt = term ? (sixel ? QV_SIXEL : QV_TEXT) : (qv_fmt)fmt,
                   .width = width, .height = height};
    const char *nc = getenv("NO_COLOR");
    t.color = term && !sixel && !(nc && *nc) && isatty(STDOUT_FILENO);
    char gp[4096], dat[4096];
    if (!term) {
        beside(out, ".gp", gp, sizeof gp);
        beside(out, ".dat", dat, sizeof dat);
    }
    rc = draw(&p, &t, e);
    if (rc == QD_EGNUPLOT && !term && !strstr(e->msg, dat)) {
        size_t len = strlen(e->msg);
        snprintf(e->msg + len, sizeof e->msg - len, "; wrote %s and %s", gp, dat);
    }
    if (!rc && term) {
        size_t skip = t.text_len && t.text[0] == '\f'; /* gnuplot's form feed would cost a line */
        fwrite(t.text + skip, 1, t.text_len - skip, stdout);
        if (t.text_len && t.text[t.text_len - 1] != '\n')
            fputc('\n', stdout);
        fflush(stdout);
    } else if (!rc) {
        fprintf(stderr, "plot: wrote %s (%s, %s)\n", out, gp, dat);
        if (opts[JSON].val) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "plot", kn);
            cJSON_AddStringToObject(j, "output", out);
            cJSON_AddStringToObject(j, "script", gp);
            cJSON_AddStringToObject(j, "data", dat);
            cJSON_AddItemToObject(j, "layer", p.what[0] ? cJSON_CreateString(p.what) : cJSON_CreateNull());
            rc = cli_print_json(j);
        }
    }
    free(t.text);
out:
    plot_free(&p);
    return rc;
}

/* ------------------------------------------------------------ qdb debug --report */

/* Render p as DIR/plots/NAME.svg then .png (so that NAME.gp is the PNG's). */
static int render_pair(const plot *p, const char *pdir, const char *name, qd_err *e)
{
    static const char *const ext[2] = {"svg", "png"};
    int first = QD_OK;
    for (int i = 0; i < 2; i++) {
        char path[4096];
        qd_err pe = {0};
        snprintf(path, sizeof path, "%s/%s.%s", pdir, name, ext[i]);
        qv_target t = {.path = path, .fmt = i ? QV_PNG : QV_SVG};
        int rc = draw(p, &t, &pe);
        free(t.text);
        if (rc && !first) {
            first = rc;
            *e = pe;
        }
    }
    return first;
}

int cli_plot_debug_report(const char *dir, const char *model, cli_plots *out, qd_err *e)
{
    enum { P_SENS, P_GRID, P_SQNR, P_SPREAD, P_RANGES, P__N };
    static const char *const names[P__N] = {"sensitivity", "grid", "sqnr", "spread", "ranges"};
    char pdir[4096];
    memset(out, 0, sizeof *out);
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    if (mkdir(pdir, 0777) && errno != EEXIST)
        return qd_errf(e, QD_EINPUT, "%s: cannot create the directory: %s", pdir, strerror(errno));
    dreport r;
    int rc = dreport_read(dir, &r, e);
    if (rc)
        return rc;
    wts w;
    qd_err we = {0}, first = {0};
    int have_w = !wts_load(model, &w, &we);
    if (!have_w)
        first = we;
    for (int k = 0; k < P__N; k++) {
        plot p = {0};
        qd_err pe = {0};
        char title[160] = "";
        int li = -1;
        switch (k) {
        case P_SENS:
            if (!r.has_perq)
                continue;
            rc = report_sens(&p, &r, 30, &pe);
            snprintf(title, sizeof title, "per-quantizer sensitivity (the 30 most harmful alone at target)");
            break;
        case P_GRID:
            if (!r.has_grid)
                continue;
            rc = report_grid(&p, &r, &pe);
            snprintf(title, sizeof title, "%s on the W x A grid", r.metric);
            break;
        case P_SQNR:
            if (!r.has_tensors)
                continue;
            rc = plot_sqnr(&p, r.nt, (const char *const *)r.tname, r.tloc, r.tprop, &pe);
            snprintf(title, sizeof title, "local and propagated SQNR per quantized tensor");
            break;
        case P_SPREAD:
            if (!have_w || !w.cle.nlayers)
                continue;
            rc = plot_spread(&p, &w, 1, 10, &pe);
            snprintf(title, sizeof title, "relative weight range per layer (before CLE)");
            break;
        case P_RANGES: {
            if (!have_w || !r.has_perq)
                continue;
            /* the weight that costs most alone at target and belongs to a layer */
            sens_in s = {.n = r.nq, .names = (const char *const *)r.qname, .en = r.en, .en_sqnr = r.ensq, .dis = r.dis};
            int *o = malloc(sizeof *o * ((size_t)r.nq + 1));
            if (!o) {
                rc = qd_errf(&pe, QD_EFAIL, "out of memory");
                break;
            }
            for (int i = 0; i < r.nq; i++)
                o[i] = i;
            qsort_r(o, (size_t)r.nq, sizeof *o, by_harm, &s);
            for (int i = 0; i < r.nq && li < 0; i++)
                for (int l = 0; r.qparam[o[i]] && l < w.cle.nlayers && li < 0; l++)
                    if (w.wname[l] && !strcmp(w.wname[l], r.qname[o[i]]))
                        li = l;
            free(o);
            if (li < 0)
                continue;
            rc = plot_ranges(&p, &w, li, 1, &pe);
            snprintf(title, sizeof title, "per-channel weight ranges of %s (its weight costs most alone)",
                     w.cle.layers[li].name);
            break;
        }
        }
        if (!rc)
            rc = render_pair(&p, pdir, names[k], &pe);
        plot_free(&p);
        if (rc) {
            if (!first.code)
                first = pe;
            rc = QD_OK;
            continue;
        }
        snprintf(out->name[out->n], sizeof out->name[0], "%s", names[k]);
        snprintf(out->title[out->n++], sizeof out->title[0], "%s", title);
    }
    wts_free(&w);
    dreport_free(&r);
    if (first.code) {
        char *w = first.code == QD_EGNUPLOT ? strstr(first.msg, "; wrote ") : NULL;
        if (w) /* the caller says where the scripts are */
            *w = 0;
        *e = first;
        return first.code;
    }
    return QD_OK;
}
