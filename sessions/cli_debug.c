/* cli_debug.c - qdb debug: the PTQ debugging flowchart of the AIMET white
 * paper (fig. 4.5) on a model and data. Every branch is measured, and the
 * report (JSON, CSV tables, a Markdown summary) says what to do next.
 *
 * Steps: 1 FP32 sanity, 2 weights or activations (and a W x A grid), 3 fixes
 * (weight fixes, activation range methods), 4 per-quantizer analysis
 * (engine/perq: cached), 5 per-tensor errors (engine/terr), 6
 * recommendations, 7 mixed-precision fallback. Ctrl-C stops the step under
 * way; the report then holds what was measured. */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_plot.h"
#include "cliutil.h"
#include "fuse.h"
#include "perq.h"
#include "qeval.h"
#include "terr.h"
#include "util.h"

static const char debug_help[] =
    "usage: qdb debug MODEL --data SPEC [--target wNaM] [--report DIR] [--json] [options]\n"
    "Runs the PTQ debugging flowchart (AIMET white paper, fig. 4.5) and says what to do:\n"
    "  1 FP32 sanity: every quantizer bypassed, and all at 32 bits, must give FP32's numbers\n"
    "  2 weights or activations: W at target / A at 32, W at 32 / A at target, and a\n"
    "    W x A grid of bit-widths (--grid, default 16,8,6,4)\n"
    "  3 fixes: weight fixes (--fixes) and activation range methods (--ranges)\n"
    "  4 per-quantizer analysis: each quantizer alone on (enable-one) and alone off\n"
    "    (disable-one), sorted by harm; re-runs only what lies downstream of each\n"
    "  5 per-tensor errors: local (its quantizer alone on FP32 inputs) and propagated\n"
    "  6 recommendations, naming layers and numbers\n"
    "  7 mixed precision: the most harmful quantizers raised to --fallback-bits, one at a\n"
    "    time, until the drop is within --max-drop points (at most --max-raise of them);\n"
    "    when step 4's ranking promises no more gain, disable-one is measured again\n"
    "The metric is top-1 accuracy with labels, else agreement with FP32 top-1.\n"
    "  --data SPEC        evaluation set (as for qdb eval)\n"
    "  --limit N          evaluate on a seeded subset of N images (default 2000; 0 = all)\n"
    "  --seed S           picks the subsets (default 0)\n"
    "  --target wNaM      bit-widths to debug (default w8a8)\n"
    "  --report DIR       write report.json, summary.md, CSV tables and plots (DIR/plots/:\n"
    "                     PNG and SVG, with their gnuplot scripts) into DIR\n"
    "  --json             print the report as JSON on stdout (else the summary)\n"
    "  --grid LIST        bit-widths of the W x A grid (default 16,8,6,4)\n"
    "  --fixes LIST       weight fixes to try, each a '+' list of pc (per-channel), cle, bc\n"
    "                     (empirical bias correction), ada (AdaRound); default pc,cle,bc,cle+bc,ada\n"
    "  --ranges LIST      activation range methods to try (default minmax,sqnr,percentile:99.99,\n"
    "                     percentile:99.9,mse,kl)\n"
    "  --steps LIST       run only these steps (1..7 or sanity,wa,fixes,perq,tensors,mixed)\n"
    "  --max-drop P       accuracy drop the fallback aims for, points (default 1)\n"
    "  --max-raise N      most quantizers the fallback may raise (default 10)\n"
    "  --fallback-bits B  bit-width they are raised to (default 16; 32 bypasses them)\n"
    "  --mem SIZE         cache budget of the per-quantizer analysis (default 2G; K, M, G)\n"
    "  --naive            per-quantizer analysis without the cache (one full run each)\n"
    "  --batch B --threads T\n"
    "  --range R --calib N --calib-data SPEC --per-channel --config FILE --set '...' --bias B\n"
    "                     the quantization being debugged (as for qdb eval)\n";

static volatile sig_atomic_t stop_flag;

static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void cli_debug_stop(void)
{
    stop_flag = 2;
}

/* How the run was stopped, for its one line. */
static const char *stopped_how(void)
{
    return stop_flag == 2 ? "cancelled" : "stopped by Ctrl-C";
}

typedef struct dprog {
    progress bar;
    const char *what;
} dprog;

static int dbg_progress(void *user, int64_t done, int64_t total)
{
    dprog *p = user;
    if (p->bar.tty && cli_progress(&p->bar, done, total) && !stop_flag)
        stop_flag = 2; /* a progress hook (the TUI) asked to stop */
    return stop_flag != 0;
}

/* One evaluated configuration. */
typedef struct meas {
    char label[48];
    int wbits, abits, done;
    qd_qeval_result r;
    double seconds;
} meas;

enum { S_SANITY = 1, S_WA, S_FIXES, S_PERQ, S_TENSORS, S_RECO, S_MIXED, S__N };
static const char *const step_names[S__N] = {"", "sanity", "wa", "fixes", "perq", "tensors", "recommend", "mixed"};

typedef struct mixstep {
    int q;
    double metric;
    int bits_from;
} mixstep;

typedef struct dbg {
    const char *model;
    const char *data;
    qd_qsetup base;
    char target[16];
    int wbits, abits;
    qd_dataset *d;
    qd_logits ref;
    qd_eval_opts eo;
    dprog pr;
    int steps[S__N];       /* asked */
    int ran[S__N];         /* finished */
    int stopped_at;        /* step that was stopped, 0 */
    /* 1 */
    meas bypass, bits32;
    int sanity_ok;
    meas tgt;             /* the target, measured */
    /* 2 */
    meas wonly, aonly;
    int grid[8], ngrid;
    meas cell[8][8];
    /* 3 */
    meas wfix[16], afix[16];
    int nwfix, nafix;
    /* 4 */
    qd_sim *s;
    int nq, *qs, *qbits;   /* measured quantizers and their bits at the target */
    qd_qeval_result *en1, *dis1;
    qd_perq_info ien, idis;
    /* 5 */
    qd_terr terr;
    /* 7 */
    mixstep mix[64];
    int nmix, mix_met, mix_reranks, fallback_bits, max_raise;
    double max_drop;
    /* 6 */
    char *reco[16];
    int nreco;
    /* the report's plots (DIR/plots/), listed in summary.md while it is written */
    cli_plots plots;
    int md_plots;
} dbg;


/* Drop against FP32 in points. */
static double drop(const dbg *g, const qd_qeval_result *r) { return 100.0 * (qd_logits_metric(&g->ref) - qd_qeval_metric(r)); }

static void step_begin(dbg *g, int k, const char *what)
{
    fprintf(stderr, "debug: step %d/7 %s\n", k, what);
    g->pr.bar.t0 = qd_now_ms() / 1e3;
    g->pr.what = what;
}

/* Build and calibrate a sim for wN aM with the fixes asked (CLI_FIX_*) and
 * one more --set (or NULL); NULL with e set. */
static qd_sim *build(dbg *g, int wbits, int abits, unsigned fixes, const char *extra_set, qd_err *e)
{
    qd_qsetup o = g->base;
    char quant[16];
    const char *sets[OPT_MAXVALS + 1];
    snprintf(quant, sizeof quant, "w%da%d", wbits, abits);
    o.quant = quant;
    if (fixes & CLI_FIX_PC)
        o.per_channel = 1;
    o.cle = (fixes & CLI_FIX_CLE) != 0;
    o.bias_correct = fixes & CLI_FIX_BC ? "empirical" : NULL;
    o.adaround = (fixes & CLI_FIX_ADA) != 0;
    if (extra_set) {
        for (int i = 0; i < o.nsets; i++)
            sets[i] = o.sets[i];
        sets[o.nsets++] = extra_set;
        o.sets = sets;
    }
    o.progress = dbg_progress;
    o.user = &g->pr;
    g->pr.bar.t0 = qd_now_ms() / 1e3;
    qd_sim *s = qd_qsetup_build(g->model, &o, NULL, e);
    if (!s && stop_flag)
        qd_errf(e, QD_EINPUT, "stopped");
    return s;
}

/* Evaluate s into m; a stop is QD_EINPUT. */
static int eval(dbg *g, qd_sim *s, meas *m, qd_err *e)
{
    double t0 = qd_now_ms();
    qd_eval_opts eo = g->eo;
    eo.progress = dbg_progress;
    eo.user = &g->pr;
    g->pr.bar.t0 = t0 / 1e3;
    int rc = qd_qeval_run(s, g->d, &g->ref, &eo, &m->r, e);
    m->seconds = (qd_now_ms() - t0) / 1e3;
    m->done = !rc && !m->r.stopped;
    if (!rc && m->r.stopped)
        rc = qd_errf(e, QD_EINPUT, "stopped");
    return rc;
}

static int build_eval(dbg *g, meas *m, const char *label, int wbits, int abits, unsigned fixes,
                      const char *extra_set, qd_err *e)
{
    snprintf(m->label, sizeof m->label, "%s", label);
    m->wbits = wbits;
    m->abits = abits;
    double t0 = qd_now_ms();
    qd_sim *s = build(g, wbits, abits, fixes, extra_set, e);
    if (!s)
        return e->code;
    int rc = eval(g, s, m, e);
    qd_sim_free(s);
    m->seconds = (qd_now_ms() - t0) / 1e3;
    return rc;
}

/* ------------------------------------------------------------ steps */

static int step_sanity(dbg *g, qd_err *e)
{
    step_begin(g, 1, "FP32 sanity check");
    int nq = qd_sim_count(g->s);
    unsigned char *en = malloc((size_t)nq + 1);
    if (!en)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (int i = 0; i < nq; i++) {
        en[i] = (unsigned char)qd_sim_get(g->s, i)->set.enabled;
        qd_sim_set_enabled(g->s, i, 0);
    }
    snprintf(g->bypass.label, sizeof g->bypass.label, "all bypassed");
    int rc = eval(g, g->s, &g->bypass, e);
    for (int i = 0; i < nq; i++)
        qd_sim_set_enabled(g->s, i, en[i]);
    free(en);
    if (rc || (rc = build_eval(g, &g->bits32, "all at 32 bits", 32, 32, 0, NULL, e)))
        return rc;
    const qd_qeval_result *a = &g->bypass.r, *b = &g->bits32.r;
    g->sanity_ok = a->agree == a->images && b->agree == b->images && a->top1 == a->fp32_top1 &&
                   b->top1 == b->fp32_top1;
    if (!g->sanity_ok)
        fprintf(stderr, "debug: SIMULATION BUG: with every quantizer off the simulation does not reproduce FP32 "
                        "(agreement %.4f bypassed, %.4f at 32 bits)\n",
                (double)a->agree / (double)(a->images ? a->images : 1),
                (double)b->agree / (double)(b->images ? b->images : 1));
    return QD_OK;
}

static int step_wa(dbg *g, qd_err *e)
{
    step_begin(g, 2, "weights or activations");
    int rc;
    if ((rc = build_eval(g, &g->wonly, "weights only", g->wbits, 32, 0, NULL, e)) ||
        (rc = build_eval(g, &g->aonly, "activations only", 32, g->abits, 0, NULL, e)))
        return rc;
    for (int i = 0; i < g->ngrid; i++)
        for (int j = 0; j < g->ngrid; j++) {
            char l[48];
            snprintf(l, sizeof l, "W%dA%d", g->grid[i], g->grid[j]);
            fprintf(stderr, "debug:   grid %s\n", l);
            if (g->grid[i] == g->wbits && g->grid[j] == g->abits) { /* the target itself */
                g->cell[i][j] = g->tgt;
                snprintf(g->cell[i][j].label, sizeof g->cell[i][j].label, "%s", l);
                continue;
            }
            if ((rc = build_eval(g, &g->cell[i][j], l, g->grid[i], g->grid[j], 0, NULL, e)))
                return rc;
        }
    return QD_OK;
}

/* "pc+cle+bc+ada" order; "none" for 0. */
static const char *fix_label(unsigned f, char *buf, size_t n)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        {CLI_FIX_PC, "pc"}, {CLI_FIX_CLE, "cle"}, {CLI_FIX_BC, "bc"}, {CLI_FIX_ADA, "ada"}};
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((f & names[i].bit) && at < n)
            at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? "+" : "", names[i].name);
    if (!at)
        snprintf(buf, n, "none");
    return buf;
}

static int step_fixes(dbg *g, const unsigned *wf, int nwf, char ranges[][32], int nranges, qd_err *e)
{
    step_begin(g, 3, "fixes");
    int rc;
    for (int i = 0; i < nwf; i++) {
        char l[48];
        fix_label(wf[i], l, sizeof l);
        fprintf(stderr, "debug:   weights: %s\n", l);
        if ((rc = build_eval(g, &g->wfix[i], l, g->wbits, g->abits, wf[i], NULL, e)))
            return rc;
        g->nwfix = i + 1;
    }
    for (int i = 0; i < nranges; i++) {
        char set[64], l[48];
        snprintf(set, sizeof set, "@activations range=%s", ranges[i]);
        snprintf(l, sizeof l, "%s", ranges[i]);
        fprintf(stderr, "debug:   activations: range %s\n", ranges[i]);
        if ((rc = build_eval(g, &g->afix[i], l, g->wbits, g->abits, 0, set, e)))
            return rc;
        g->nafix = i + 1;
    }
    return QD_OK;
}

static int step_perq(dbg *g, size_t mem, int naive, qd_err *e)
{
    step_begin(g, 4, "per-quantizer analysis");
    qd_perq_opts po = {.batch = g->eo.batch, .mem = mem, .naive = naive, .progress = dbg_progress, .user = &g->pr};
    int rc = qd_perq_run(g->s, g->d, &g->ref, QD_PERQ_ENABLE_ONE, g->qs, g->nq, &po, g->en1, &g->ien, e);
    if (rc)
        return rc;
    if (g->ien.stopped)
        return qd_errf(e, QD_EINPUT, "stopped");
    fprintf(stderr, "debug:   enable-one: %d quantizers in %.1f s (%s, %lld of %lld node runs)\n", g->nq,
            g->ien.seconds, g->ien.cached ? "cached" : "recomputed", (long long)g->ien.nodes_run,
            (long long)g->ien.nodes_full);
    g->pr.bar.t0 = qd_now_ms() / 1e3;
    rc = qd_perq_run(g->s, g->d, &g->ref, QD_PERQ_DISABLE_ONE, g->qs, g->nq, &po, g->dis1, &g->idis, e);
    if (rc)
        return rc;
    if (g->idis.stopped)
        return qd_errf(e, QD_EINPUT, "stopped");
    fprintf(stderr, "debug:   disable-one: %d quantizers in %.1f s\n", g->nq, g->idis.seconds);
    return QD_OK;
}

static int step_tensors(dbg *g, qd_err *e)
{
    step_begin(g, 5, "per-tensor errors");
    qd_eval_opts eo = g->eo;
    eo.progress = dbg_progress;
    eo.user = &g->pr;
    int rc = qd_terr_compute(g->s, g->d, &eo, &g->terr, e);
    if (!rc && g->terr.stopped)
        rc = qd_errf(e, QD_EINPUT, "stopped");
    return rc;
}

/* Order of quantizers k (indices into g->qs) by disable-one gain, best first. */
static int by_gain(const void *a, const void *b, void *ctx)
{
    const dbg *g = ctx;
    double ga = qd_qeval_metric(&g->dis1[*(const int *)a]), gb = qd_qeval_metric(&g->dis1[*(const int *)b]);
    if (ga != gb)
        return ga > gb ? -1 : 1;
    double sa = g->dis1[*(const int *)a].sqnr_db, sb = g->dis1[*(const int *)b].sqnr_db;
    return sa > sb ? -1 : sa < sb ? 1 : *(const int *)a - *(const int *)b;
}
static int by_harm(const void *a, const void *b, void *ctx) /* enable-one: lowest metric first */
{
    const dbg *g = ctx;
    double ma = qd_qeval_metric(&g->en1[*(const int *)a]), mb = qd_qeval_metric(&g->en1[*(const int *)b]);
    if (ma != mb)
        return ma < mb ? -1 : 1;
    double sa = g->en1[*(const int *)a].sqnr_db, sb = g->en1[*(const int *)b].sqnr_db;
    return sa < sb ? -1 : sa > sb ? 1 : *(const int *)a - *(const int *)b;
}

static int *ranked(dbg *g, int (*cmp)(const void *, const void *, void *))
{
    int *o = malloc(sizeof *o * (size_t)(g->nq + 1));
    if (!o)
        return NULL;
    for (int k = 0; k < g->nq; k++)
        o[k] = k;
    qsort_r(o, (size_t)g->nq, sizeof *o, cmp, g);
    return o;
}

/* Disable-one gains (points) of the quantizers not raised yet, measured on
 * the sim as it is now; raised ones get -inf. */
static int measure_gains(dbg *g, const unsigned char *raised, double *gain, size_t mem, int naive, qd_err *e)
{
    int n = 0, *qs = malloc(sizeof *qs * (size_t)(g->nq + 1)), *at = malloc(sizeof *at * (size_t)(g->nq + 1));
    qd_qeval_result *res = calloc((size_t)g->nq + 1, sizeof *res);
    int rc = QD_OK;
    if (!qs || !at || !res) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int k = 0; k < g->nq; k++) {
        gain[k] = -INFINITY;
        if (!raised[k] && qd_quantizer_active(qd_sim_get(g->s, g->qs[k]))) {
            at[n] = k;
            qs[n++] = g->qs[k];
        }
    }
    meas base = {0};
    if ((rc = eval(g, g->s, &base, e)))
        goto out;
    qd_perq_opts po = {.batch = g->eo.batch, .mem = mem, .naive = naive, .progress = dbg_progress, .user = &g->pr};
    qd_perq_info info;
    g->pr.bar.t0 = qd_now_ms() / 1e3;
    if ((rc = qd_perq_run(g->s, g->d, &g->ref, QD_PERQ_DISABLE_ONE, qs, n, &po, res, &info, e)))
        goto out;
    if (info.stopped) {
        rc = qd_errf(e, QD_EINPUT, "stopped");
        goto out;
    }
    for (int i = 0; i < n; i++)
        gain[at[i]] = 100.0 * (qd_qeval_metric(&res[i]) - qd_qeval_metric(&base.r));
out:
    free(qs);
    free(at);
    free(res);
    return rc;
}

/* Greedy: raise the quantizer whose bypass recovers the most (step 4's
 * disable-one), then the next while the ranking still promises a gain;
 * when it promises none, measure disable-one again on the configuration
 * reached (the raised quantizers change what the others cost), at most
 * MIX_RERANKS times. */
enum { MIX_RERANKS = 3 };
static int step_mixed(dbg *g, size_t mem, int naive, qd_err *e)
{
    step_begin(g, 7, "mixed-precision fallback");
    double *gain = malloc(sizeof *gain * (size_t)(g->nq + 1));
    unsigned char *raised = calloc((size_t)g->nq + 1, 1);
    if (!gain || !raised) {
        free(gain);
        free(raised);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    for (int k = 0; k < g->nq; k++)
        gain[k] = 100.0 * (qd_qeval_metric(&g->dis1[k]) - qd_qeval_metric(&g->tgt.r));
    int rc = QD_OK;
    g->nmix = 0;
    g->mix_reranks = 0;
    g->mix_met = drop(g, &g->tgt.r) <= g->max_drop;
    while (!g->mix_met && g->nmix < g->max_raise && g->nmix < 64) {
        int best = -1;
        for (int k = 0; k < g->nq; k++)
            if (!raised[k] && gain[k] > 0 && qd_sim_get(g->s, g->qs[k])->set.scheme.bits < g->fallback_bits &&
                (best < 0 || gain[k] > gain[best]))
                best = k;
        if (best < 0) {
            if (g->mix_reranks == MIX_RERANKS)
                break;
            fprintf(stderr, "debug:   no quantizer left that promises a gain: disable-one again\n");
            if ((rc = measure_gains(g, raised, gain, mem, naive, e)))
                break;
            g->mix_reranks++;
            int any = 0;
            for (int k = 0; k < g->nq; k++)
                any |= !raised[k] && gain[k] > 0;
            if (!any)
                break;
            continue;
        }
        qd_quantizer *q = qd_sim_get(g->s, g->qs[best]);
        qd_override ov = {.set = QD_OV_BITS, .bits = g->fallback_bits};
        mixstep *m = &g->mix[g->nmix];
        m->q = g->qs[best];
        m->bits_from = q->set.scheme.bits;
        if (g->fallback_bits == QD_BITS_FLOAT) {
            ov.set = QD_OV_ENABLED;
            ov.enabled = 0;
        }
        raised[best] = 1;
        if ((rc = qd_sim_override(g->s, q->name, &ov, NULL, e)) || (rc = qd_sim_update(g->s, e)))
            break;
        meas me = {0};
        if ((rc = eval(g, g->s, &me, e)))
            break;
        m->metric = qd_qeval_metric(&me.r);
        g->nmix++;
        g->mix_met = 100.0 * (qd_logits_metric(&g->ref) - m->metric) <= g->max_drop;
        fprintf(stderr, "debug:   raised %s to %d bits: %.4f\n", q->name, g->fallback_bits, m->metric);
    }
    free(gain);
    free(raised);
    return rc;
}

/* ------------------------------------------------------------ 6: recommendations */

__attribute__((format(printf, 2, 3))) static void reco(dbg *g, const char *fmt, ...)
{
    if (g->nreco >= (int)(sizeof g->reco / sizeof *g->reco))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g->reco[g->nreco] = strdup(buf);
    if (g->reco[g->nreco])
        g->nreco++;
}

static const qd_terr_row *terr_row(const dbg *g, int qi)
{
    for (int i = 0; i < g->terr.n; i++)
        if (g->terr.rows[i].q == qi)
            return &g->terr.rows[i];
    return NULL;
}

static const char *qname(dbg *g, int qi) { return qd_sim_get(g->s, qi)->name; }

/* "pc+cle" -> "per-channel weights + CLE" */
static const char *fix_words(const char *label, char *buf, size_t n)
{
    static const char *const map[][2] = {{"pc", "per-channel weights"}, {"cle", "CLE"}, {"bc", "bias correction"},
                                         {"ada", "AdaRound"}, {"none", "none"}};
    char tmp[48];
    size_t at = 0;
    snprintf(tmp, sizeof tmp, "%s", label);
    buf[0] = 0;
    for (char *save = NULL, *t = strtok_r(tmp, "+", &save); t && at < n; t = strtok_r(NULL, "+", &save)) {
        const char *w = t;
        for (size_t i = 0; i < sizeof map / sizeof *map; i++)
            if (!strcmp(t, map[i][0]))
                w = map[i][1];
        at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? " + " : "", w);
    }
    return buf;
}

static void step_reco(dbg *g)
{
    const char *mname = g->ref.labeled ? "top-1" : "agreement";
    double dt = drop(g, &g->tgt.r);
    if (g->ran[S_SANITY] && !g->sanity_ok)
        reco(g, "Simulation bug: with every quantizer off (or at 32 bits) qdb does not reproduce FP32 "
                "(agreement %.4f / %.4f). Nothing else in this report can be trusted; please report it.",
             qd_qeval_metric(&g->bypass.r), qd_qeval_metric(&g->bits32.r));
    if (dt <= g->max_drop)
        reco(g, "%s is within %.2f points of FP32 (%s %.4f vs %.4f): it meets the %.2f-point budget; no fix is "
                "needed.",
             g->target, dt, mname, qd_qeval_metric(&g->tgt.r), qd_logits_metric(&g->ref), g->max_drop);
    else
        reco(g, "%s loses %.2f points of %s against FP32 (%.4f vs %.4f), more than the %.2f-point budget.",
             g->target, dt, mname, qd_qeval_metric(&g->tgt.r), qd_logits_metric(&g->ref), g->max_drop);
    if (g->ran[S_WA]) {
        double dw = drop(g, &g->wonly.r), da = drop(g, &g->aonly.r);
        const char *who = dw < 0.5 * g->max_drop && da < 0.5 * g->max_drop ? "Neither weights nor activations lose much alone"
                          : dw > 1.5 * da + 0.2                            ? "Weights dominate"
                          : da > 1.5 * dw + 0.2                            ? "Activations dominate"
                                                                           : "Weights and activations both matter";
        reco(g, "%s: weights alone at %d bits cost %.2f points, activations alone at %d bits %.2f points.", who,
             g->wbits, dw, g->abits, da);
        /* the cheapest grid cell within budget */
        int bi = -1, bj = -1;
        for (int i = 0; i < g->ngrid; i++)
            for (int j = 0; j < g->ngrid; j++)
                if (g->cell[i][j].done && drop(g, &g->cell[i][j].r) <= g->max_drop &&
                    (bi < 0 || g->grid[i] + g->grid[j] < g->grid[bi] + g->grid[bj]))
                    bi = i, bj = j;
        if (bi >= 0)
            reco(g, "The lowest bit-widths of the grid within budget: W%dA%d (%.2f points).", g->grid[bi],
                 g->grid[bj], drop(g, &g->cell[bi][bj].r));
    }
    if (g->ran[S_FIXES]) {
        int bw = -1, ba = -1;
        for (int i = 0; i < g->nwfix; i++)
            if (bw < 0 || qd_qeval_metric(&g->wfix[i].r) > qd_qeval_metric(&g->wfix[bw].r))
                bw = i;
        for (int i = 0; i < g->nafix; i++)
            if (ba < 0 || qd_qeval_metric(&g->afix[i].r) > qd_qeval_metric(&g->afix[ba].r))
                ba = i;
        if (bw >= 0) {
            char words[96];
            reco(g, "Best weight fix: %s, %+.2f points (%s %.4f).", fix_words(g->wfix[bw].label, words, sizeof words),
                 100.0 * (qd_qeval_metric(&g->wfix[bw].r) - qd_qeval_metric(&g->tgt.r)), mname, qd_qeval_metric(&g->wfix[bw].r));
        }
        if (ba >= 0) {
            const char *worst = NULL;
            const qd_terr_row *wr = NULL;
            for (int i = 0; g->ran[S_TENSORS] && i < g->terr.n; i++) {
                const qd_terr_row *r = &g->terr.rows[i];
                if (r->kind != QD_QK_PARAM && r->local.n && (!wr || r->local.sqnr_db < wr->local.sqnr_db))
                    wr = r, worst = qname(g, r->q); /* the worst activation alone */
            }
            double gain = 100.0 * (qd_qeval_metric(&g->afix[ba].r) - qd_qeval_metric(&g->tgt.r));
            const char *cur = g->base.range ? g->base.range : "sqnr";
            if (gain <= 0 || !strcmp(g->afix[ba].label, cur))
                reco(g, "Activation ranges: no method tried beats %s, the one in use.", cur);
            else if (wr && wr->local.clip_frac > 0)
                reco(g, "Best activation range: %s, %+.2f points; the noisiest activation, %s, clips %.2f%% of its "
                        "values at %d bits (local SQNR %.1f dB).",
                     g->afix[ba].label, 100.0 * (qd_qeval_metric(&g->afix[ba].r) - qd_qeval_metric(&g->tgt.r)), worst,
                     100.0 * wr->local.clip_frac, g->abits, wr->local.sqnr_db);
            else
                reco(g, "Best activation range: %s, %+.2f points.", g->afix[ba].label,
                     100.0 * (qd_qeval_metric(&g->afix[ba].r) - qd_qeval_metric(&g->tgt.r)));
        }
    }
    if (g->ran[S_PERQ] && g->nq) {
        int *gain = ranked(g, by_gain), *harm = ranked(g, by_harm);
        if (gain && harm) {
            char buf[400];
            size_t at = 0;
            for (int k = 0; k < 3 && k < g->nq; k++)
                at += (size_t)snprintf(buf + at, at < sizeof buf ? sizeof buf - at : 0, "%s%s (%+.2f)", k ? ", " : "",
                                       qname(g, g->qs[gain[k]]),
                                       100.0 * (qd_qeval_metric(&g->dis1[gain[k]]) - qd_qeval_metric(&g->tgt.r)));
            reco(g, "Bypassing one quantizer recovers the most at: %s points.", buf);
            const qd_terr_row *r = terr_row(g, g->qs[harm[0]]);
            if (r)
                reco(g, "Alone at target, %s costs the most: %.2f points (its local SQNR %.1f dB, rmse/scale %.3f; "
                        "0.289 is pure rounding).",
                     qname(g, g->qs[harm[0]]), drop(g, &g->en1[harm[0]]), r->local.sqnr_db, r->local.rmse_scale);
            else
                reco(g, "Alone at target, %s costs the most: %.2f points.", qname(g, g->qs[harm[0]]),
                     drop(g, &g->en1[harm[0]]));
        }
        free(gain);
        free(harm);
    }
    if (g->ran[S_MIXED] && g->nmix) {
        double last = g->mix[g->nmix - 1].metric;
        char to[16];
        snprintf(to, sizeof to, g->fallback_bits == QD_BITS_FLOAT ? "float" : "%d bits", g->fallback_bits);
        reco(g, "Mixed precision: raising %d quantizer%s to %s brings %s to %.4f (%.2f points from FP32)%s.",
             g->nmix, g->nmix > 1 ? "s" : "", to, mname, last,
             100.0 * (qd_logits_metric(&g->ref) - last), g->mix_met ? ", within budget" : "; the budget is not met within --max-raise");
    }
}

/* ------------------------------------------------------------ the report */

static cJSON *jnum(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *json_meas(const dbg *g, const meas *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", m->label);
    if (m->wbits)
        cJSON_AddNumberToObject(o, "weight_bits", m->wbits);
    if (m->abits)
        cJSON_AddNumberToObject(o, "act_bits", m->abits);
    double n = m->r.images ? (double)m->r.images : 1;
    cJSON_AddItemToObject(o, "accuracy", m->r.labeled ? jnum(m->r.top1 / n) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "agreement", jnum(m->r.agree / n));
    cJSON_AddItemToObject(o, "sqnr_db", jnum(m->r.sqnr_db));
    cJSON_AddItemToObject(o, "drop_points", jnum(drop(g, &m->r)));
    cJSON_AddNumberToObject(o, "seconds", m->seconds);
    return o;
}

static cJSON *json_metrics(const qd_terr_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "sqnr_db", jnum(m->sqnr_db));
    cJSON_AddItemToObject(o, "mse", jnum(m->mse));
    cJSON_AddItemToObject(o, "cosine", jnum(m->cosine));
    cJSON_AddItemToObject(o, "max_abs", jnum(m->max_abs));
    cJSON_AddItemToObject(o, "rmse_scale", jnum(m->rmse_scale));
    cJSON_AddItemToObject(o, "clip_frac", jnum(m->clip_frac));
    return o;
}

static const char *kind_name(qd_qkind k) { return k == QD_QK_PARAM ? "param" : k == QD_QK_INPUT ? "input" : "activation"; }

static cJSON *json_report(dbg *g)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", g->model);
    cJSON_AddStringToObject(j, "data", qd_data_describe(g->d));
    cJSON_AddNumberToObject(j, "images", (double)g->ref.n);
    cJSON_AddStringToObject(j, "metric", g->ref.labeled ? "top1" : "agreement");
    cJSON_AddStringToObject(j, "target", g->target);
    cJSON_AddItemToObject(j, "fp32", jnum(qd_logits_metric(&g->ref)));
    cJSON_AddItemToObject(j, "quantized", g->tgt.done ? json_meas(g, &g->tgt) : cJSON_CreateNull());
    cJSON *steps = cJSON_AddArrayToObject(j, "steps_done");
    for (int k = 1; k < S__N; k++)
        if (g->ran[k])
            cJSON_AddItemToArray(steps, cJSON_CreateString(step_names[k]));
    if (g->stopped_at)
        cJSON_AddStringToObject(j, "stopped_in", step_names[g->stopped_at]);
    if (g->ran[S_SANITY]) {
        cJSON *s = cJSON_AddObjectToObject(j, "sanity");
        cJSON_AddBoolToObject(s, "ok", g->sanity_ok);
        cJSON_AddItemToObject(s, "bypassed", json_meas(g, &g->bypass));
        cJSON_AddItemToObject(s, "bits32", json_meas(g, &g->bits32));
    }
    if (g->ran[S_WA]) {
        cJSON *s = cJSON_AddObjectToObject(j, "weights_or_activations");
        cJSON_AddItemToObject(s, "weights_only", json_meas(g, &g->wonly));
        cJSON_AddItemToObject(s, "activations_only", json_meas(g, &g->aonly));
        cJSON *grid = cJSON_AddArrayToObject(s, "grid");
        for (int i = 0; i < g->ngrid; i++)
            for (int k = 0; k < g->ngrid; k++)
                cJSON_AddItemToArray(grid, json_meas(g, &g->cell[i][k]));
    }
    if (g->ran[S_FIXES]) {
        cJSON *s = cJSON_AddObjectToObject(j, "fixes");
        cJSON *w = cJSON_AddArrayToObject(s, "weights"), *a = cJSON_AddArrayToObject(s, "activations");
        for (int i = 0; i < g->nwfix; i++)
            cJSON_AddItemToArray(w, json_meas(g, &g->wfix[i]));
        for (int i = 0; i < g->nafix; i++)
            cJSON_AddItemToArray(a, json_meas(g, &g->afix[i]));
    }
    if (g->ran[S_PERQ]) {
        cJSON *s = cJSON_AddObjectToObject(j, "per_quantizer");
        cJSON_AddBoolToObject(s, "cached", g->ien.cached);
        cJSON_AddNumberToObject(s, "enable_one_seconds", g->ien.seconds);
        cJSON_AddNumberToObject(s, "disable_one_seconds", g->idis.seconds);
        cJSON_AddNumberToObject(s, "enable_one_cpu_seconds", g->ien.cpu_seconds);
        cJSON_AddNumberToObject(s, "disable_one_cpu_seconds", g->idis.cpu_seconds);
        cJSON_AddNumberToObject(s, "node_runs", (double)(g->ien.nodes_run + g->idis.nodes_run));
        cJSON_AddNumberToObject(s, "node_runs_naive", (double)(g->ien.nodes_full + g->idis.nodes_full));
        cJSON_AddNumberToObject(s, "unchanged_runs", (double)(g->ien.unchanged + g->idis.unchanged));
        cJSON_AddNumberToObject(s, "cache_bytes", (double)g->ien.cache_bytes);
        cJSON_AddNumberToObject(s, "batch", (double)g->ien.batch);
        cJSON *rows = cJSON_AddArrayToObject(s, "quantizers");
        for (int k = 0; k < g->nq; k++) {
            qd_quantizer *q = qd_sim_get(g->s, g->qs[k]);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", q->name);
            cJSON_AddStringToObject(o, "kind", kind_name(q->kind));
            cJSON_AddNumberToObject(o, "bits", g->qbits[k]);
            cJSON_AddItemToObject(o, "enable_one", jnum(qd_qeval_metric(&g->en1[k])));
            cJSON_AddItemToObject(o, "enable_one_drop", jnum(drop(g, &g->en1[k])));
            cJSON_AddItemToObject(o, "enable_one_sqnr_db", jnum(g->en1[k].sqnr_db));
            cJSON_AddItemToObject(o, "disable_one", jnum(qd_qeval_metric(&g->dis1[k])));
            cJSON_AddItemToObject(o, "disable_one_gain", jnum(100.0 * (qd_qeval_metric(&g->dis1[k]) - qd_qeval_metric(&g->tgt.r))));
            cJSON_AddItemToObject(o, "disable_one_sqnr_db", jnum(g->dis1[k].sqnr_db));
            cJSON_AddItemToArray(rows, o);
        }
    }
    if (g->ran[S_TENSORS]) {
        cJSON *rows = cJSON_AddArrayToObject(j, "tensors");
        for (int i = 0; i < g->terr.n; i++) {
            const qd_terr_row *r = &g->terr.rows[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", qname(g, r->q));
            cJSON_AddStringToObject(o, "kind", kind_name(r->kind));
            cJSON_AddItemToObject(o, "local", json_metrics(&r->local));
            cJSON_AddItemToObject(o, "propagated", json_metrics(&r->prop));
            cJSON_AddItemToArray(rows, o);
        }
    }
    if (g->ran[S_MIXED]) {
        cJSON *s = cJSON_AddObjectToObject(j, "mixed_precision");
        cJSON_AddNumberToObject(s, "max_drop", g->max_drop);
        cJSON_AddNumberToObject(s, "fallback_bits", g->fallback_bits);
        cJSON_AddBoolToObject(s, "met", g->mix_met);
        cJSON_AddNumberToObject(s, "reranked", g->mix_reranks);
        cJSON *st = cJSON_AddArrayToObject(s, "steps");
        for (int k = 0; k < g->nmix; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "quantizer", qname(g, g->mix[k].q));
            cJSON_AddNumberToObject(o, "bits_from", g->mix[k].bits_from);
            cJSON_AddItemToObject(o, "metric", jnum(g->mix[k].metric));
            cJSON_AddItemToObject(o, "drop_points", jnum(100.0 * (qd_logits_metric(&g->ref) - g->mix[k].metric)));
            cJSON_AddItemToArray(st, o);
        }
    }
    cJSON *r = cJSON_AddArrayToObject(j, "recommendations");
    for (int i = 0; i < g->nreco; i++)
        cJSON_AddItemToArray(r, cJSON_CreateString(g->reco[i]));
    return j;
}

static void md_meas_row(FILE *f, const dbg *g, const meas *m)
{
    fprintf(f, "| %s | %.4f | %.4f | %.2f | %+.2f |\n", m->label, qd_qeval_metric(&m->r),
            m->r.images ? (double)m->r.agree / (double)m->r.images : NAN, m->r.sqnr_db, -drop(g, &m->r));
}

static void write_md(FILE *f, dbg *g)
{
    const char *mn = g->ref.labeled ? "top-1" : "agreement";
    fprintf(f, "# qdb debug: %s at %s\n\n", g->model, g->target);
    fprintf(f, "Data: %s, %lld images. Metric: %s. FP32: %.4f.", qd_data_describe(g->d), (long long)g->ref.n, mn,
            qd_logits_metric(&g->ref));
    if (g->tgt.done)
        fprintf(f, " %s: %.4f (%+.2f points).", g->target, qd_qeval_metric(&g->tgt.r), -drop(g, &g->tgt.r));
    fprintf(f, "\n\n");
    if (g->stopped_at)
        fprintf(f, "**Stopped during step %d (%s)**: the report holds the steps finished before it.\n\n",
                g->stopped_at, step_names[g->stopped_at]);
    if (g->md_plots && g->plots.n) {
        fprintf(f, "Plots:\n\n");
        for (int i = 0; i < g->plots.n; i++)
            fprintf(f, "- [%s](plots/%s.png) ([SVG](plots/%s.svg))\n", g->plots.title[i], g->plots.name[i],
                    g->plots.name[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "## Recommendations\n\n");
    for (int i = 0; i < g->nreco; i++)
        fprintf(f, "- %s\n", g->reco[i]);
    const char *hdr = "| configuration | %s | agreement | SQNR dB | vs FP32 (points) |\n|---|---|---|---|---|\n";
    if (g->ran[S_SANITY]) {
        fprintf(f, "\n## 1. FP32 sanity check: %s\n\n", g->sanity_ok ? "passed" : "FAILED (simulation bug)");
        fprintf(f, hdr, mn);
        md_meas_row(f, g, &g->bypass);
        md_meas_row(f, g, &g->bits32);
    }
    if (g->ran[S_WA]) {
        fprintf(f, "\n## 2. Weights or activations\n\n");
        fprintf(f, hdr, mn);
        md_meas_row(f, g, &g->wonly);
        md_meas_row(f, g, &g->aonly);
        md_meas_row(f, g, &g->tgt);
        fprintf(f, "\n%s by weight (rows) and activation (columns) bit-width:\n\n| W \\ A |", mn);
        for (int k = 0; k < g->ngrid; k++)
            fprintf(f, " A%d |", g->grid[k]);
        fprintf(f, "\n|---|");
        for (int k = 0; k < g->ngrid; k++)
            fprintf(f, "---|");
        fprintf(f, "\n");
        for (int i = 0; i < g->ngrid; i++) {
            fprintf(f, "| W%d |", g->grid[i]);
            for (int k = 0; k < g->ngrid; k++)
                fprintf(f, " %.4f |", qd_qeval_metric(&g->cell[i][k].r));
            fprintf(f, "\n");
        }
    }
    if (g->ran[S_FIXES]) {
        fprintf(f, "\n## 3. Fixes at %s\n\nWeight quantization:\n\n", g->target);
        fprintf(f, hdr, mn);
        md_meas_row(f, g, &g->tgt);
        for (int i = 0; i < g->nwfix; i++)
            md_meas_row(f, g, &g->wfix[i]);
        fprintf(f, "\nActivation range methods:\n\n");
        fprintf(f, hdr, mn);
        for (int i = 0; i < g->nafix; i++)
            md_meas_row(f, g, &g->afix[i]);
    }
    if (g->ran[S_PERQ]) {
        int *gain = ranked(g, by_gain), *harm = ranked(g, by_harm);
        int show = g->nq < 10 ? g->nq : 10;
        fprintf(f, "\n## 4. Per-quantizer analysis (%d quantizers; %s, %.1f s + %.1f s)\n\n", g->nq,
                g->ien.cached ? "cached" : "recomputed", g->ien.seconds, g->idis.seconds);
        fprintf(f, "Disable-one (this quantizer alone off, the rest at %s), most recovered first:\n\n", g->target);
        fprintf(f, "| quantizer | kind | %s | gain (points) | SQNR dB |\n|---|---|---|---|---|\n", mn);
        for (int k = 0; gain && k < show; k++)
            fprintf(f, "| %s | %s | %.4f | %+.2f | %.2f |\n", qname(g, g->qs[gain[k]]),
                    kind_name(qd_sim_get(g->s, g->qs[gain[k]])->kind), qd_qeval_metric(&g->dis1[gain[k]]),
                    100.0 * (qd_qeval_metric(&g->dis1[gain[k]]) - qd_qeval_metric(&g->tgt.r)), g->dis1[gain[k]].sqnr_db);
        fprintf(f, "\nEnable-one (this quantizer alone on, the rest FP32), most harmful first:\n\n");
        fprintf(f, "| quantizer | kind | %s | drop (points) | SQNR dB |\n|---|---|---|---|---|\n", mn);
        for (int k = 0; harm && k < show; k++)
            fprintf(f, "| %s | %s | %.4f | %.2f | %.2f |\n", qname(g, g->qs[harm[k]]),
                    kind_name(qd_sim_get(g->s, g->qs[harm[k]])->kind), qd_qeval_metric(&g->en1[harm[k]]),
                    drop(g, &g->en1[harm[k]]), g->en1[harm[k]].sqnr_db);
        fprintf(f, "\nAll quantizers: quantizers.csv.\n");
        free(gain);
        free(harm);
    }
    if (g->ran[S_TENSORS]) {
        fprintf(f, "\n## 5. Per-tensor errors (lowest local SQNR first; all in tensors.csv)\n\n");
        fprintf(f, "| tensor | kind | local SQNR dB | rmse/scale | clipped | propagated SQNR dB | cosine |\n"
                   "|---|---|---|---|---|---|---|\n");
        int n = g->terr.n, *o = malloc(sizeof *o * (size_t)(n + 1));
        for (int i = 0; o && i < n; i++)
            o[i] = i;
        for (int i = 1; o && i < n; i++) /* insertion sort by local SQNR */
            for (int k = i; k > 0 && g->terr.rows[o[k]].local.sqnr_db < g->terr.rows[o[k - 1]].local.sqnr_db; k--) {
                int t = o[k];
                o[k] = o[k - 1];
                o[k - 1] = t;
            }
        for (int i = 0; o && i < n && i < 10; i++) {
            const qd_terr_row *r = &g->terr.rows[o[i]];
            fprintf(f, "| %s | %s | %.2f | %.3f | %.3f%% | %.2f | %.5f |\n", qname(g, r->q), kind_name(r->kind),
                    r->local.sqnr_db, r->local.rmse_scale, 100.0 * r->local.clip_frac, r->prop.sqnr_db,
                    r->prop.cosine);
        }
        free(o);
    }
    if (g->ran[S_MIXED]) {
        fprintf(f, "\n## 7. Mixed-precision fallback (budget %.2f points, at most %d raised; disable-one measured "
                   "again %d time%s)\n\n",
                g->max_drop, g->max_raise, g->mix_reranks, g->mix_reranks == 1 ? "" : "s");
        if (!g->nmix)
            fprintf(f, "%s\n", g->mix_met ? "Nothing to raise: the target is within budget." : "Nothing could be raised.");
        for (int k = 0; k < g->nmix; k++)
            fprintf(f, "%d. %s: %d -> %d bits, %s %.4f (%.2f points from FP32)\n", k + 1, qname(g, g->mix[k].q),
                    g->mix[k].bits_from, g->fallback_bits, mn, g->mix[k].metric,
                    100.0 * (qd_logits_metric(&g->ref) - g->mix[k].metric));
        if (g->nmix)
            fprintf(f, "\n%s\n", g->mix_met ? "Budget met." : "Budget not met within --max-raise.");
    }
}

static void csv_meas(FILE *f, const dbg *g, const char *kind, const meas *m)
{
    fprintf(f, "%s,%s,%d,%d,%.6f,%.6f,%.4f,%.4f\n", kind, m->label, m->wbits, m->abits, qd_qeval_metric(&m->r),
            m->r.images ? (double)m->r.agree / (double)m->r.images : NAN, m->r.sqnr_db, -drop(g, &m->r));
}

static void csv_terr(FILE *f, const qd_terr_metrics *m)
{
    fprintf(f, ",%.4f,%.6g,%.8f,%.6g,%.5f,%.6f", m->sqnr_db, m->mse, m->cosine, m->max_abs, m->rmse_scale,
            m->clip_frac);
}

/* Write one report file through a memory stream; a failure names the file. */
static int emit(const char *dir, const char *name, void (*fill)(FILE *, dbg *), dbg *g, qd_err *e)
{
    char path[4096], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return qd_errf(e, QD_EFAIL, "%s: out of memory", path);
    fill(f, g);
    fclose(f);
    int rc = qd_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}

static void fill_tables(FILE *f, dbg *g) /* measured configurations */
{
    fprintf(f, "step,configuration,weight_bits,act_bits,metric,agreement,sqnr_db,vs_fp32_points\n");
    if (g->ran[S_SANITY]) {
        csv_meas(f, g, "sanity", &g->bypass);
        csv_meas(f, g, "sanity", &g->bits32);
    }
    if (g->tgt.done)
        csv_meas(f, g, "target", &g->tgt);
    if (g->ran[S_WA]) {
        csv_meas(f, g, "wa", &g->wonly);
        csv_meas(f, g, "wa", &g->aonly);
        for (int i = 0; i < g->ngrid; i++)
            for (int k = 0; k < g->ngrid; k++)
                csv_meas(f, g, "grid", &g->cell[i][k]);
    }
    for (int i = 0; g->ran[S_FIXES] && i < g->nwfix; i++)
        csv_meas(f, g, "weight_fix", &g->wfix[i]);
    for (int i = 0; g->ran[S_FIXES] && i < g->nafix; i++)
        csv_meas(f, g, "act_range", &g->afix[i]);
}

static void fill_quantizers(FILE *f, dbg *g)
{
    fprintf(f, "quantizer,kind,bits,enable_one,enable_one_drop,enable_one_sqnr_db,disable_one,disable_one_gain,"
               "disable_one_sqnr_db\n");
    for (int k = 0; k < g->nq; k++) {
        qd_quantizer *q = qd_sim_get(g->s, g->qs[k]);
        fprintf(f, "\"%s\",%s,%d,%.6f,%.4f,%.4f,%.6f,%.4f,%.4f\n", q->name, kind_name(q->kind), g->qbits[k],
                qd_qeval_metric(&g->en1[k]), drop(g, &g->en1[k]), g->en1[k].sqnr_db, qd_qeval_metric(&g->dis1[k]),
                100.0 * (qd_qeval_metric(&g->dis1[k]) - qd_qeval_metric(&g->tgt.r)), g->dis1[k].sqnr_db);
    }
}

static void fill_tensors(FILE *f, dbg *g)
{
    fprintf(f, "tensor,kind,local_sqnr_db,local_mse,local_cosine,local_max_abs,local_rmse_scale,local_clip_frac,"
               "prop_sqnr_db,prop_mse,prop_cosine,prop_max_abs,prop_rmse_scale,prop_clip_frac\n");
    for (int i = 0; i < g->terr.n; i++) {
        const qd_terr_row *r = &g->terr.rows[i];
        fprintf(f, "\"%s\",%s", qname(g, r->q), kind_name(r->kind));
        csv_terr(f, &r->local);
        csv_terr(f, &r->prop);
        fprintf(f, "\n");
    }
}

static void fill_mixed(FILE *f, dbg *g)
{
    fprintf(f, "step,quantizer,bits_from,bits_to,metric,vs_fp32_points\n");
    for (int k = 0; k < g->nmix; k++)
        fprintf(f, "%d,\"%s\",%d,%d,%.6f,%.4f\n", k + 1, qname(g, g->mix[k].q), g->mix[k].bits_from, g->fallback_bits,
                g->mix[k].metric, -100.0 * (qd_logits_metric(&g->ref) - g->mix[k].metric));
}

static void fill_json(FILE *f, dbg *g)
{
    cJSON *j = json_report(g);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (s)
        fprintf(f, "%s\n", s);
    free(s);
}

static int write_report(dbg *g, const char *dir, qd_err *e)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        return qd_errf(e, QD_EINPUT, "--report %s: cannot create the directory: %s", dir, strerror(errno));
    int rc;
    if ((rc = emit(dir, "report.json", fill_json, g, e)))
        return rc;
    /* plots from report.json, as qdb plot --report draws them; they never fail the report */
    qd_err pe = {0};
    if (cli_plot_debug_report(dir, g->model, &g->plots, &pe)) {
        if (pe.code == QD_EGNUPLOT)
            fprintf(stderr, "debug: plots not rendered: %s; scripts in %s/plots\n", pe.msg, dir);
        else
            fprintf(stderr, "debug: plots not written: %s\n", pe.msg);
    }
    g->md_plots = 1;
    rc = emit(dir, "summary.md", write_md, g, e);
    g->md_plots = 0;
    if (rc || (rc = emit(dir, "configurations.csv", fill_tables, g, e)))
        return rc;
    if (g->ran[S_PERQ] && (rc = emit(dir, "quantizers.csv", fill_quantizers, g, e)))
        return rc;
    if (g->ran[S_TENSORS] && (rc = emit(dir, "tensors.csv", fill_tensors, g, e)))
        return rc;
    if (g->ran[S_MIXED] && (rc = emit(dir, "mixed.csv", fill_mixed, g, e)))
        return rc;
    return QD_OK;
}

/* ------------------------------------------------------------ the command */

/* Comma list -> items (each at most 31 chars); QD_EINPUT naming opt. */
static int split_list(const char *opt_name, const char *s, char items[][32], int max, int *n, qd_err *e)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (!len || len >= 32 || *n == max)
            return qd_errf(e, QD_EINPUT, "qdb debug: %s: bad list '%s' (comma-separated, at most %d items)", opt_name, s,
                           max);
        memcpy(items[*n], p, len);
        items[(*n)++][len] = 0;
        p += len;
        if (*p == ',' && !*++p)
            return qd_errf(e, QD_EINPUT, "qdb debug: %s: list '%s' ends with a comma", opt_name, s);
    }
    if (!*n)
        return qd_errf(e, QD_EINPUT, "qdb debug: %s is empty", opt_name);
    return QD_OK;
}

static int parse_size(const char *s, size_t *out, qd_err *e)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024.0 * 1024 * 1024, end++;
    if (end == s || *end || errno || !(v > 0) || v * mul > 1e15)
        return qd_errf(e, QD_EINPUT, "qdb debug: --mem must be a size like 512M or 2G, got '%s'", s);
    *out = (size_t)(v * mul);
    return QD_OK;
}

static void dbg_free(dbg *g)
{
    qd_sim_free(g->s);
    qd_logits_free(&g->ref);
    qd_data_free(g->d);
    qd_terr_free(&g->terr);
    free(g->qs);
    free(g->qbits);
    free(g->en1);
    free(g->dis1);
    for (int i = 0; i < g->nreco; i++)
        free(g->reco[i]);
}

int cli_cmd_debug(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--data", .has_arg = 1},      {.name = "--limit", .has_arg = 1},
                  {.name = "--seed", .has_arg = 1},      {.name = "--target", .has_arg = 1},
                  {.name = "--report", .has_arg = 1},    {.name = "--json", .has_arg = 0},
                  {.name = "--grid", .has_arg = 1},      {.name = "--fixes", .has_arg = 1},
                  {.name = "--ranges", .has_arg = 1},    {.name = "--steps", .has_arg = 1},
                  {.name = "--max-drop", .has_arg = 1},  {.name = "--max-raise", .has_arg = 1},
                  {.name = "--fallback-bits", .has_arg = 1}, {.name = "--mem", .has_arg = 1},
                  {.name = "--naive", .has_arg = 0},     {.name = "--batch", .has_arg = 1},
                  {.name = "--threads", .has_arg = 1},   {.name = "--help", .has_arg = 0},
                  {.name = "-h", .has_arg = 0},          {0}};
    enum { DATA, LIMIT, SEED, TARGET, REPORT, JSON, GRID, FIXES, RANGES, STEPS, MAXDROP, MAXRAISE, FBITS, MEM, NAIVE,
           BATCH, THREADS, HELP, H };
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("debug", argc, argv, opts, qopts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(debug_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb debug: give one MODEL (see qdb debug --help)");
    if (!opts[DATA].val)
        return qd_errf(e, QD_EINPUT, "qdb debug: --data SPEC is required (e.g. --data fashion-mnist)");
    if (qopts[Q_QUANT].val || qopts[Q_ENC].val || qopts[Q_CLE].val || qopts[Q_BC].val || qopts[Q_ADA].val ||
        qopts[Q_ADAIT].val || qopts[Q_PT].val)
        return qd_errf(e, QD_EINPUT, "qdb debug: --quant is --target here; --encodings, --per-tensor, --cle, "
                                     "--bias-correct and --adaround are what the flowchart tries itself (see --fixes)");
    static dbg G;
    dbg *g = &G;
    memset(g, 0, sizeof *g);
    g->model = a.pos[0];
    long limit = 2000, seed = 0, batch = 64, threads = 1, max_raise = 10, fbits = 16;
    size_t mem = 0;
    if ((opts[LIMIT].val && cli_parse_int("debug", "--limit", opts[LIMIT].val, 0, 1L << 40, &limit, e)) ||
        (opts[SEED].val && cli_parse_int("debug", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[BATCH].val && cli_parse_int("debug", "--batch", opts[BATCH].val, 1, 65536, &batch, e)) ||
        (opts[THREADS].val && cli_parse_int("debug", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[MAXRAISE].val && cli_parse_int("debug", "--max-raise", opts[MAXRAISE].val, 0, 64, &max_raise, e)) ||
        (opts[FBITS].val && cli_parse_int("debug", "--fallback-bits", opts[FBITS].val, QD_BITS_MIN, QD_BITS_FLOAT, &fbits, e)) ||
        (opts[MEM].val && parse_size(opts[MEM].val, &mem, e)))
        return e->code;
    if (fbits > QD_BITS_MAX && fbits != QD_BITS_FLOAT)
        return qd_errf(e, QD_EINPUT, "qdb debug: --fallback-bits must be %d..%d or 32, got %ld", QD_BITS_MIN,
                       QD_BITS_MAX, fbits);
    g->max_drop = 1.0;
    if (opts[MAXDROP].val) {
        char *end;
        errno = 0;
        g->max_drop = strtod(opts[MAXDROP].val, &end);
        if (end == opts[MAXDROP].val || *end || errno || !(g->max_drop >= 0 && g->max_drop <= 100))
            return qd_errf(e, QD_EINPUT, "qdb debug: --max-drop must be points from 0 to 100, got '%s'",
                           opts[MAXDROP].val);
    }
    g->max_raise = (int)max_raise;
    g->fallback_bits = (int)fbits;
    snprintf(g->target, sizeof g->target, "%s", opts[TARGET].val ? opts[TARGET].val : "w8a8");
    if (qd_qsetup_parse_quant(g->target, &g->wbits, &g->abits, e))
        return qd_err_prefix(e, "qdb debug: --target"), e->code;
    for (char *p = g->target; *p; p++)
        *p = (char)(*p == 'w' ? 'W' : *p == 'a' ? 'A' : *p);
    /* lists */
    char items[16][32];
    int n;
    for (int k = 1; k < S__N; k++)
        g->steps[k] = 1;
    if (opts[STEPS].val) {
        if (split_list("--steps", opts[STEPS].val, items, 16, &n, e))
            return e->code;
        memset(g->steps, 0, sizeof g->steps);
        for (int i = 0; i < n; i++) {
            int k = 0;
            for (int s = 1; s < S__N && !k; s++)
                if (!strcmp(items[i], step_names[s]) || (items[i][0] == '0' + s && !items[i][1]))
                    k = s;
            if (!k)
                return qd_errf(e, QD_EINPUT, "qdb debug: --steps: unknown step '%s' (1..7 or sanity, wa, fixes, perq, "
                                             "tensors, recommend, mixed)", items[i]);
            g->steps[k] = 1;
        }
        if (g->steps[S_MIXED])
            g->steps[S_PERQ] = 1; /* the fallback ranks by disable-one */
        g->steps[S_RECO] = 1;
    }
    g->ngrid = 4;
    memcpy(g->grid, (int[]){16, 8, 6, 4}, sizeof(int) * 4);
    if (opts[GRID].val && cli_parse_bits("debug", "--grid", opts[GRID].val, g->grid, 8, &g->ngrid, e))
        return e->code;
    unsigned wf[16];
    int nwf = 0;
    if (split_list("--fixes", opts[FIXES].val ? opts[FIXES].val : "pc,cle,bc,cle+bc,ada", items, 16, &nwf, e))
        return e->code;
    for (int i = 0; i < nwf; i++)
        if (cli_parse_fix("debug", "--fixes", items[i], 1, &wf[i], e))
            return e->code;
    char ranges[16][32];
    int nranges = 0;
    if (split_list("--ranges", opts[RANGES].val ? opts[RANGES].val : "minmax,sqnr,percentile:99.99,percentile:99.9,mse,kl",
                   ranges, 16, &nranges, e))
        return e->code;
    for (int i = 0; i < nranges; i++) {
        qd_range_method rm;
        if (qd_range_parse(ranges[i], &rm, NULL, e))
            return qd_err_prefix(e, "qdb debug: --ranges"), e->code;
    }
    if (opts[REPORT].val) { /* refuse an unusable place before the work */
        const char *dir = opts[REPORT].val;
        struct stat st;
        if (mkdir(dir, 0777) && errno != EEXIST)
            return qd_errf(e, QD_EINPUT, "qdb debug: --report %s: cannot create the directory: %s", dir, strerror(errno));
        if (stat(dir, &st) || !S_ISDIR(st.st_mode) || access(dir, W_OK))
            return qd_errf(e, QD_EINPUT, "qdb debug: --report %s: not a writable directory", dir);
    }
    if (cli_quant_setup("debug", qopts, opts[DATA].val, seed, threads, batch, NULL, &g->base, e))
        return e->code;

    int rc;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    stop_flag = 0;
    sigaction(SIGINT, &sa, &old);
    g->pr.bar.tty = cli_progress_on();
    g->eo = (qd_eval_opts){.batch = batch, .nthreads = (int)threads};
    qd_graph *gr = qd_graph_load(g->model, e);
    if (!gr) {
        rc = e->code;
        goto out;
    }
    if (!(g->d = qd_data_open(opts[DATA].val, NULL, e)) || (limit > 0 && qd_data_limit(g->d, limit, (uint64_t)seed, e)) ||
        qd_graph_fuse(gr, NULL, e)) {
        qd_graph_free(gr);
        rc = e->code;
        goto out;
    }
    fprintf(stderr, "debug: %s at %s on %lld images of %s\n", g->model, g->target, (long long)qd_data_count(g->d),
            qd_data_describe(g->d));
    qd_eval_opts eo = g->eo;
    eo.progress = dbg_progress;
    eo.user = &g->pr;
    g->pr.bar.t0 = qd_now_ms() / 1e3;
    rc = qd_logits_compute(gr, g->d, &eo, &g->ref, e);
    qd_graph_free(gr);
    if (rc || stop_flag) {
        if (!rc)
            rc = qd_errf(e, QD_EFAIL, "%s before anything was measured", stopped_how());
        qd_err_prefix(e, "%s (FP32)", g->model);
        goto out;
    }
    /* the target, kept for sanity, per-quantizer, tensors and the fallback */
    if (!(g->s = build(g, g->wbits, g->abits, 0, NULL, e)) || (rc = eval(g, g->s, &g->tgt, e))) {
        rc = stop_flag ? qd_errf(e, QD_EFAIL, "%s before anything was measured", stopped_how()) : e->code;
        goto out;
    }
    snprintf(g->tgt.label, sizeof g->tgt.label, "%s", g->target);
    g->tgt.wbits = g->wbits;
    g->tgt.abits = g->abits;
    int nq = qd_sim_count(g->s);
    g->qs = malloc(sizeof *g->qs * (size_t)(nq + 1));
    g->qbits = malloc(sizeof *g->qbits * (size_t)(nq + 1));
    g->en1 = calloc((size_t)nq + 1, sizeof *g->en1);
    g->dis1 = calloc((size_t)nq + 1, sizeof *g->dis1);
    if (!g->qs || !g->qbits || !g->en1 || !g->dis1) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nq; i++)
        if (qd_quantizer_active(qd_sim_get(g->s, i))) {
            g->qbits[g->nq] = qd_sim_get(g->s, i)->set.scheme.bits;
            g->qs[g->nq++] = i;
        }
    for (int k = 1; k < S__N && !rc; k++) {
        if (!g->steps[k] || k == S_RECO)
            continue;
        switch (k) {
        case S_SANITY: rc = step_sanity(g, e); break;
        case S_WA: rc = step_wa(g, e); break;
        case S_FIXES: rc = step_fixes(g, wf, nwf, ranges, nranges, e); break;
        case S_PERQ: rc = step_perq(g, mem, opts[NAIVE].val != NULL, e); break;
        case S_TENSORS: rc = step_tensors(g, e); break;
        case S_MIXED: rc = step_mixed(g, mem, opts[NAIVE].val != NULL, e); break;
        }
        if (rc && stop_flag) {
            g->stopped_at = k;
            break;
        }
        if (!rc)
            g->ran[k] = 1;
    }
    if (rc && !stop_flag)
        goto out;
    step_reco(g);
    g->ran[S_RECO] = 1;
    qd_err we = {0};
    if (opts[REPORT].val && write_report(g, opts[REPORT].val, &we)) {
        *e = we;
        rc = we.code;
        goto out;
    }
    if (opts[JSON].val) {
        cli_print_json(json_report(g));
    } else {
        write_md(stdout, g);
        fflush(stdout);
    }
    if (opts[REPORT].val)
        fprintf(stderr, "debug: report in %s/ (summary.md, report.json, *.csv%s)\n", opts[REPORT].val,
                g->plots.n ? ", plots/" : "");
    memset(e, 0, sizeof *e);
    if (g->stopped_at)
        rc = qd_errf(e, QD_EFAIL, "qdb debug: %s during step %d (%s); the report holds what was measured",
                     stopped_how(), g->stopped_at, step_names[g->stopped_at]);
    else
        rc = QD_OK;
out:
    sigaction(SIGINT, &old, NULL);
    dbg_free(g);
    return rc;
}
