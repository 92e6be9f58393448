/* test_terr.c - the per-tensor error table on LeNet: a row per active
 * quantizer, weights near ideal rounding noise, local metrics against an
 * independent computation (qd_fake_quant_ref), error growing along the
 * model, bypassed quantizers dropped, 4-bit against 8-bit weights, the
 * edge cases of the metrics (all-zero images), stopping and bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "harness.h"
#include "npy.h"
#include "qjson.h"
#include "terr.h"

#define MODEL "models/lenet.onnx"
#define CAL_IMAGES 64
#define EVAL_IMAGES (TH_LIGHT ? 32 : 64)
#define BATCH 24 /* not a divisor of EVAL_IMAGES: a short last batch */


static qd_sim *make_sim(int wbits, int abits, int per_channel)
{
    return th_sim(MODEL, (qd_sim_opts){.act_bits = abits, .param_bits = wbits, .range = QD_RANGE_MINMAX,
                                       .per_channel = per_channel, .nthreads = 1});
}

/* A sim calibrated on CAL_IMAGES training images. */
static qd_sim *calibrated(int wbits, int abits, int per_channel)
{
    qd_err e = {0};
    qd_sim *s = make_sim(wbits, abits, per_channel);
    qd_dataset *cal = th_data("fashion-mnist:train", CAL_IMAGES, 1);
    if (s && (!cal || qd_sim_calibrate(s, cal, 32, NULL, NULL, &e))) {
        fprintf(stderr, "calibrate: %s\n", e.msg);
        qd_sim_free(s);
        s = NULL;
    }
    qd_data_free(cal);
    return s;
}

static int terr(qd_sim *s, qd_dataset *d, qd_terr *t, qd_err *e)
{
    qd_eval_opts o = {.batch = BATCH};
    return qd_terr_compute(s, d, &o, t, e);
}

static const qd_terr_row *row_of(const qd_terr *t, int q)
{
    for (int r = 0; r < t->n; r++)
        if (t->rows[r].q == q)
            return &t->rows[r];
    return NULL;
}

/* The last activation quantizer (LeNet: the logits). */
static const qd_terr_row *last_act(const qd_terr *t)
{
    for (int r = t->n - 1; r >= 0; r--)
        if (t->rows[r].kind == QD_QK_ACT)
            return &t->rows[r];
    return NULL;
}

/* ------------------------------------------------------------ reference */

/* Metrics of x against xq computed directly, with channel c of
 * outer x nch x inner on enc[c]. */
typedef struct ref {
    double sqnr, mse, cosine, max_abs, rmse_scale, clip;
} ref;

static ref ref_metrics(const float *x, const float *xq, size_t outer, size_t nch, size_t inner,
                       const qd_encoding *enc)
{
    double sx = 0, sq = 0, sxq = 0, se = 0, ses = 0, mx = 0, clip = 0, n = (double)(outer * nch * inner);
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < nch; c++)
            for (size_t i = 0; i < inner; i++) {
                size_t k = (o * nch + c) * inner + i;
                double d = (double)xq[k] - x[k];
                sx += (double)x[k] * x[k];
                sq += (double)xq[k] * xq[k];
                sxq += (double)x[k] * xq[k];
                se += d * d;
                ses += (d / enc[c].scale) * (d / enc[c].scale);
                mx = fmax(mx, fabs(d));
                clip += x[k] < enc[c].min - enc[c].scale / 2 || x[k] > enc[c].max + enc[c].scale / 2;
            }
    return (ref){10 * log10(sx / se), se / n, sxq / sqrt(sx * sq), mx, sqrt(ses / n), clip / n};
}

static void check_ref(const qd_terr_metrics *m, const ref *r, const char *what)
{
    char b[96];
    snprintf(b, sizeof b, "%s sqnr", what);
    near(m->sqnr_db, r->sqnr, 0, 1e-6, b);
    snprintf(b, sizeof b, "%s mse", what);
    near(m->mse, r->mse, 0, 1e-6, b);
    snprintf(b, sizeof b, "%s cosine", what);
    near(m->cosine, r->cosine, 0, 1e-6, b);
    snprintf(b, sizeof b, "%s max_abs", what);
    near(m->max_abs, r->max_abs, 0, 1e-6, b);
    snprintf(b, sizeof b, "%s rmse/scale", what);
    near(m->rmse_scale, r->rmse_scale, 0, 1e-6, b);
    snprintf(b, sizeof b, "%s clip", what);
    near(m->clip_frac, r->clip, 1e-12, 0, b);
}

/* ------------------------------------------------------------ tests */

static void test_lenet(void)
{
    qd_err e = {0};
    qd_sim *s = calibrated(8, 8, -1);
    qd_dataset *d = th_data("fashion-mnist", EVAL_IMAGES, 2), *cal = th_data("fashion-mnist:train", CAL_IMAGES, 1);
    ok(s && d && cal, "lenet sim, data");
    if (!s || !d || !cal)
        goto out;
    /* the sim's output before, to check it is left simulating */
    qd_tensor x = {0}, y0 = {0};
    ok(qd_data_batch(d, 0, 4, &x, NULL, &e) == 0 && qd_sim_run(s, &x, 1, &e) == 0 &&
           qd_tensor_copy(&y0, qd_sim_output(s, 0), &e) == 0,
       "run before: %s", e.msg);

    qd_terr t;
    ok(terr(s, d, &t, &e) == 0, "terr: %s", e.msg);
    ok(t.images == EVAL_IMAGES && !t.stopped && t.seconds >= 0, "%lld images", (long long)t.images);
    int active = 0, acts = 0;
    for (int i = 0; i < qd_sim_count(s); i++)
        active += qd_quantizer_active(qd_sim_get(s, i));
    ok(t.n == active && active == 13, "a row per active quantizer: %d rows, %d active", t.n, active);
    for (int r = 0; r < t.n; r++) {
        const qd_terr_row *w = &t.rows[r];
        const qd_quantizer *q = qd_sim_get(s, w->q);
        ok(q && q->kind == w->kind && (r == 0 || w->q > t.rows[r - 1].q), "row %d: quantizer %d in order", r, w->q);
        if (!q)
            continue;
        const qd_terr_metrics *l = &w->local, *p = &w->prop;
        ok(l->n > 0 && l->n == p->n, "%s: %lld elements local, %lld propagated", q->name, (long long)l->n,
           (long long)p->n);
        ok(l->cosine > 0.99 && l->cosine <= 1 && p->cosine > 0.9 && p->cosine <= 1, "%s: cosine %g / %g", q->name,
           l->cosine, p->cosine);
        const qd_encoding *en = &q->enc[0];
        ok(l->mse >= 0 && l->max_abs >= sqrt(l->mse) &&
               (l->clip_frac > 0 || l->max_abs <= en->scale * 0.5 + 1e-6 * fmax(fabs(en->min), fabs(en->max))),
           "%s: max |e| %g within half a step %g (when nothing clipped)", q->name, l->max_abs, en->scale);
        if (w->kind == QD_QK_INPUT) {
            ok(!memcmp(l, p, sizeof *l), "%s: input: local == propagated", q->name);
            ok(l->n == (int64_t)EVAL_IMAGES * 28 * 28, "%s: every pixel", q->name);
        } else if (w->kind == QD_QK_PARAM) {
            const qd_tensor *wt = qd_sim_fp32(s, q->value);
            ok(!memcmp(l, p, sizeof *l), "%s: param: local == propagated", q->name);
            ok(wt && l->n == qd_tensor_numel(wt), "%s: once over the weight", q->name);
            ok(l->rmse_scale >= 0.2 && l->rmse_scale <= 0.35, "%s: rmse/scale %g near 1/sqrt(12)", q->name,
               l->rmse_scale);
            ok(l->sqnr_db > 30, "%s: 8-bit weight SQNR %g dB", q->name, l->sqnr_db);
            ok(l->clip_frac == 0, "%s: minmax weights: nothing clipped (%g)", q->name, l->clip_frac);
        } else {
            acts++;
            ok(l->n % EVAL_IMAGES == 0, "%s: whole images", q->name);
            const qd_node *pn = &qd_sim_graph(s)->nodes[q->node];
            if (pn->fused_clip || !strcmp(pn->op_type, "Relu"))
                /* rounding noise, lowered by the exact zeros a Relu makes */
                ok(l->clip_frac > 0 || (l->rmse_scale >= 0.15 && l->rmse_scale <= 0.35), "%s: after Relu: rmse/scale %g",
                   q->name, l->rmse_scale);
            else if (!strcmp(pn->op_type, "Sub") || !strcmp(pn->op_type, "Div"))
                /* the normalized 8-bit pixels lie close to the grid */
                ok(l->rmse_scale < 0.15, "%s: normalized pixels: rmse/scale %g", q->name, l->rmse_scale);
            ok(l->clip_frac < 0.01, "%s: minmax: little clipped on other images (%g)", q->name, l->clip_frac);
            ok((l->clip_frac > 0) == (l->max_abs > en->scale / 2), "%s: clipped iff an error over half a step",
               q->name);
            ok(p->sqnr_db <= l->sqnr_db + 0.5, "%s: propagated SQNR %g <= local %g", q->name, p->sqnr_db,
               l->sqnr_db);
            ok(p->clip_frac == l->clip_frac, "%s: clip_frac of the FP32 tensor in both", q->name);
        }
    }
    ok(acts == 7, "7 activation rows, got %d", acts);
    const qd_terr_row *lr = last_act(&t);
    ok(lr && lr->prop.sqnr_db < lr->local.sqnr_db - 3, "logits: propagated %g dB well below local %g dB",
       lr ? lr->prop.sqnr_db : NAN, lr ? lr->local.sqnr_db : NAN);
    printf("lenet 8/8, %lld images: %.3f s\n", (long long)t.images, t.seconds);
    for (int r = 0; r < t.n; r++) {
        const qd_terr_row *w = &t.rows[r];
        printf("  %-22s %d  local %6.2f dB rmse/s %.3f clip %.4f | prop %6.2f dB cos %.5f\n",
               qd_sim_get(s, w->q)->name, w->kind, w->local.sqnr_db, w->local.rmse_scale, w->local.clip_frac,
               w->prop.sqnr_db, w->prop.cosine);
    }

    /* left simulating, encodings untouched */
    ok(qd_sim_run(s, &x, 1, &e) == 0 && y0.data &&
           !memcmp(qd_sim_output(s, 0)->data, y0.data, qd_tensor_nbytes(&y0)),
       "the sim computes as before: %s", e.msg);

    /* on its own calibration images a minmax activation clips nothing
     * beyond rounding (calibration saw quantized weights: allow a trace) */
    qd_terr tc;
    ok(terr(s, cal, &tc, &e) == 0, "terr on calibration images: %s", e.msg);
    for (int r = 0; r < tc.n; r++)
        if (tc.rows[r].kind != QD_QK_PARAM)
            ok(tc.rows[r].local.clip_frac < 1e-3, "%s: clip_frac %g on calibration images",
               qd_sim_get(s, tc.rows[r].q)->name, tc.rows[r].local.clip_frac);
    /* the logits (no Relu, nothing clipped): close to ideal rounding noise */
    lr = last_act(&tc);
    ok(lr && lr->local.rmse_scale > 0.26 && lr->local.rmse_scale < 0.31, "logits on calibration images: rmse/scale %g",
       lr ? lr->local.rmse_scale : NAN);
    qd_terr_free(&tc);
    qd_terr_free(&t);
    qd_tensor_free(&x);
    qd_tensor_free(&y0);
out:
    qd_data_free(d);
    qd_data_free(cal);
    qd_sim_free(s);
}

/* One activation row (conv2's output) and one per-channel weight against
 * the same metrics computed here from the sim's tensors. */
static void test_against_reference(void)
{
    qd_err e = {0};
    qd_sim *s = calibrated(8, 8, 1);
    qd_dataset *d = th_data("fashion-mnist", EVAL_IMAGES, 3);
    ok(s && d, "per-channel sim, data");
    if (!s || !d)
        goto out;
    const qd_graph *g = qd_sim_graph(s);
    int qa = -1, qw = -1, conv = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i].op_type, "Conv") && ++conv == 2) {
            qa = qd_sim_find(s, g->values[g->nodes[i].out[0]].name);
            qw = qd_sim_find(s, g->values[g->nodes[i].in[1]].name);
        }
    ok(qa >= 0 && qw >= 0, "conv2 output and weight quantizers");
    qd_terr t;
    qd_eval_opts o = {.batch = EVAL_IMAGES}; /* one batch: the reference below is one run */
    ok(qd_terr_compute(s, d, &o, &t, &e) == 0, "terr: %s", e.msg);
    const qd_terr_row *ra = row_of(&t, qa), *rw = row_of(&t, qw);
    ok(ra && rw && ra->kind == QD_QK_ACT && rw->kind == QD_QK_PARAM, "rows found");
    if (!ra || !rw)
        goto done;
    qd_quantizer *a = qd_sim_get(s, qa), *w = qd_sim_get(s, qw);

    /* activation: FP32 run, quantized here with the reference kernel */
    qd_tensor x = {0}, fx = {0}, xq = {0};
    qd_sim_set_fp32(s, 1);
    int rc = qd_data_batch(d, 0, EVAL_IMAGES, &x, NULL, &e) || qd_sim_run(s, &x, 1, &e) ||
             qd_tensor_copy(&fx, qd_exec_value(qd_sim_exec(s), a->value), &e) || qd_tensor_copy(&xq, &fx, &e);
    qd_sim_set_fp32(s, 0);
    ok(!rc, "FP32 run: %s", e.msg);
    if (!rc) {
        size_t n = (size_t)qd_tensor_numel(&fx);
        qd_fake_quant_ref(fx.data, xq.data, n, &a->enc[0]);
        ok(ra->local.n == (int64_t)n, "local over %zu elements (%lld)", n, (long long)ra->local.n);
        ref r = ref_metrics(fx.data, xq.data, 1, 1, n, a->enc);
        check_ref(&ra->local, &r, "conv2 act local");
        /* a Relu's exact zeros make no error: the rest carry 1/sqrt(12) */
        size_t nz = 0;
        for (size_t i = 0; i < n; i++)
            nz += ((const float *)fx.data)[i] != 0;
        double per_nz = ra->local.rmse_scale * sqrt((double)n / (double)(nz ? nz : 1));
        ok(per_nz > 0.27 && per_nz < 0.31, "conv2 act: rmse/scale %g over the %.0f%% nonzero elements: %g",
           ra->local.rmse_scale, 100.0 * (double)nz / (double)n, per_nz);
        /* propagated: the simulated value of the same images */
        ok(qd_sim_run(s, &x, 1, &e) == 0, "simulated run: %s", e.msg);
        const qd_tensor *sv = qd_exec_value(qd_sim_exec(s), a->value);
        ok(sv && (size_t)qd_tensor_numel(sv) == n, "simulated value");
        if (sv && (size_t)qd_tensor_numel(sv) == n) {
            r = ref_metrics(fx.data, sv->data, 1, 1, n, a->enc);
            check_ref(&ra->prop, &r, "conv2 act propagated");
        }
    }

    /* weight, per output channel */
    const qd_tensor *wf = qd_sim_fp32(s, w->value);
    ok(w->nenc > 1 && w->axis == 0 && wf && w->nenc == wf->shape[0], "per-channel weight: %d encodings", w->nenc);
    if (w->nenc > 1 && wf && w->axis == 0 && !qd_tensor_copy(&xq, wf, &e)) {
        size_t nch = (size_t)w->nenc, inner = (size_t)qd_tensor_numel(wf) / nch;
        for (size_t c = 0; c < nch; c++)
            qd_fake_quant_ref((const float *)wf->data + c * inner, (float *)xq.data + c * inner, inner, &w->enc[c]);
        ref r = ref_metrics(wf->data, xq.data, 1, nch, inner, w->enc);
        check_ref(&rw->local, &r, "conv2 weight per channel");
        ok(rw->local.rmse_scale >= 0.2 && rw->local.rmse_scale <= 0.35, "per-channel rmse/scale %g",
           rw->local.rmse_scale);
    }
    qd_tensor_free(&x);
    qd_tensor_free(&fx);
    qd_tensor_free(&xq);
done:
    qd_terr_free(&t);
out:
    qd_data_free(d);
    qd_sim_free(s);
}

/* A bypassed quantizer has no row; the others keep theirs. */
static void test_bypass(void)
{
    qd_err e = {0};
    qd_sim *s = calibrated(8, 8, -1);
    qd_dataset *d = th_data("fashion-mnist", EVAL_IMAGES / 2, 4);
    ok(s && d, "sim, data");
    if (!s || !d)
        goto out;
    qd_terr t0, t1;
    ok(terr(s, d, &t0, &e) == 0, "terr: %s", e.msg);
    const qd_terr_row *lr = last_act(&t0);
    int q = lr ? lr->q : -1, matched = 0;
    qd_override ov = {.set = QD_OV_ENABLED, .enabled = 0};
    ok(q >= 0 && qd_sim_override(s, qd_sim_get(s, q)->name, &ov, &matched, &e) == 0 && matched == 1,
       "bypass the logits quantizer: %s", e.msg);
    ok(terr(s, d, &t1, &e) == 0, "terr after bypass: %s", e.msg);
    ok(t1.n == t0.n - 1 && !row_of(&t1, q), "its row is gone: %d -> %d rows", t0.n, t1.n);
    /* the rows before it are unchanged */
    for (int r = 0; r < t1.n && r < t0.n; r++)
        if (t0.rows[r].q != q)
            ok(t1.rows[r].q == t0.rows[r].q && !memcmp(&t1.rows[r], &t0.rows[r], sizeof t1.rows[r]),
               "row %d unchanged", r);
    /* and a weight */
    int qw = -1;
    for (int i = 0; i < t1.n && qw < 0; i++)
        if (t1.rows[i].kind == QD_QK_PARAM)
            qw = t1.rows[i].q;
    qd_terr t2 = {0};
    ok(qw >= 0 && qd_sim_override(s, qd_sim_get(s, qw)->name, &ov, NULL, &e) == 0 && terr(s, d, &t2, &e) == 0 &&
           t2.n == t1.n - 1 && !row_of(&t2, qw),
       "bypassed weight: row gone (%s)", e.msg);
    qd_terr_free(&t0);
    qd_terr_free(&t1);
    qd_terr_free(&t2);
out:
    qd_data_free(d);
    qd_sim_free(s);
}

/* About 6 dB per bit: 4-bit weights lose well over 15 dB against 8-bit. */
static void test_bits(void)
{
    qd_err e = {0};
    qd_sim *s8 = calibrated(8, 8, -1), *s4 = calibrated(4, 8, -1);
    qd_dataset *d = th_data("fashion-mnist", 8, 5);
    ok(s8 && s4 && d, "8- and 4-bit sims");
    qd_terr t8 = {0}, t4 = {0};
    if (!s8 || !s4 || !d || terr(s8, d, &t8, &e) || terr(s4, d, &t4, &e)) {
        ok(0, "terr: %s", e.msg);
        goto out;
    }
    ok(t8.n == t4.n, "same rows");
    int nw = 0;
    for (int r = 0; r < t8.n && r < t4.n; r++) {
        if (t8.rows[r].kind != QD_QK_PARAM)
            continue;
        nw++;
        const char *name = qd_sim_get(s8, t8.rows[r].q)->name;
        double d8 = t8.rows[r].local.sqnr_db, d4 = t4.rows[r].local.sqnr_db;
        ok(t4.rows[r].q == t8.rows[r].q && d8 - d4 > 15, "%s: 8-bit %.2f dB, 4-bit %.2f dB", name, d8, d4);
        ok(t4.rows[r].local.mse > 16 * t8.rows[r].local.mse, "%s: 4-bit MSE %g vs 8-bit %g", name,
           t4.rows[r].local.mse, t8.rows[r].local.mse);
    }
    ok(nw == 5, "5 weights compared, got %d", nw);
    /* worse weights: a worse model output */
    const qd_terr_row *l8 = last_act(&t8), *l4 = last_act(&t4);
    ok(l8 && l4 && l4->prop.sqnr_db < l8->prop.sqnr_db, "logits propagated: 4-bit %g dB < 8-bit %g dB",
       l4 ? l4->prop.sqnr_db : NAN, l8 ? l8->prop.sqnr_db : NAN);
out:
    qd_terr_free(&t8);
    qd_terr_free(&t4);
    qd_data_free(d);
    qd_sim_free(s8);
    qd_sim_free(s4);
}

/* All-zero images: the input quantizer makes no error (+inf dB, cosine 1). */
static int stop_after_first(void *user, int64_t done, int64_t total)
{
    (void)total;
    *(int64_t *)user = done;
    return 1;
}

static void test_edges(void)
{
    qd_err e = {0};
    qd_sim *s = make_sim(8, 8, -1);
    qd_dataset *d = th_data("fashion-mnist", 16, 6);
    ok(s && d, "sim, data");
    if (!s || !d)
        goto out;
    qd_terr t = {.n = 99};
    ok(qd_terr_compute(s, d, NULL, &t, &e) == QD_EINPUT && strstr(e.msg, "no encodings") && t.n == 0 && !t.rows,
       "uncalibrated: QD_EINPUT (%s)", e.msg);
    e = (qd_err){0};
    ok(qd_sim_calibrate(s, d, 16, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);

    /* stopped after the first batch: rows over those images */
    int64_t seen = 0;
    qd_eval_opts o = {.batch = 5, .progress = stop_after_first, .user = &seen};
    ok(qd_terr_compute(s, d, &o, &t, &e) == 0 && t.stopped && t.images == 5 && seen == 5, "stopped after 5: %s",
       e.msg);
    for (int r = 0; r < t.n; r++)
        if (t.rows[r].kind == QD_QK_INPUT)
            ok(t.rows[r].local.n == 5 * 28 * 28, "input row over 5 images");
    qd_terr_free(&t);
    qd_terr_free(&t); /* twice, and NULL */
    qd_terr_free(NULL);

    /* all-zero images */
    char dir[] = "/tmp/qdb_terr_XXXXXX", path[64];
    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof path, "%s/zeros.npy", dir);
    qd_tensor z = {0};
    int64_t shp[4] = {3, 1, 28, 28};
    qd_dataset *dz = NULL;
    if (!qd_tensor_resize(&z, QD_F32, 4, shp, &e)) {
        memset(z.data, 0, qd_tensor_nbytes(&z));
        char spec[80];
        snprintf(spec, sizeof spec, "npy:%s", path);
        if (!qd_npy_write(path, &z, &e))
            dz = qd_data_open(spec, NULL, &e);
    }
    ok(dz != NULL, "zero images: %s", e.msg);
    if (dz && qd_terr_compute(s, dz, NULL, &t, &e) == 0) {
        const qd_terr_metrics *m = &t.rows[0].local;
        ok(t.rows[0].kind == QD_QK_INPUT && m->n == 3 * 28 * 28, "input row first");
        ok(isinf(m->sqnr_db) && m->sqnr_db > 0 && m->mse == 0 && m->max_abs == 0 && m->cosine == 1 &&
               m->rmse_scale == 0 && m->clip_frac == 0,
           "zero input: +inf dB %g, mse %g, cosine %g", m->sqnr_db, m->mse, m->cosine);
        qd_terr_free(&t);
    } else {
        ok(0, "terr on zeros: %s", e.msg);
    }
    qd_data_free(dz);
    qd_tensor_free(&z);
    unlink(path);
    rmdir(dir);

    /* no images: weights measured, activations have nothing (n = 0, NaN) */
    ok(qd_data_limit(d, 0, 1, &e) == 0 && qd_terr_compute(s, d, NULL, &t, &e) == 0 && t.images == 0,
       "no images: %s", e.msg);
    for (int r = 0; r < t.n; r++) {
        const qd_terr_metrics *m = &t.rows[r].local;
        if (t.rows[r].kind == QD_QK_PARAM)
            ok(m->n > 0 && m->sqnr_db > 30, "weight measured without images");
        else
            ok(m->n == 0 && isnan(m->sqnr_db) && isnan(t.rows[r].prop.mse), "no images: n = 0, NaN");
    }
    qd_terr_free(&t);
out:
    qd_data_free(d);
    qd_sim_free(s);
}

int main(void)
{
    test_lenet();
    test_against_reference();
    test_bypass();
    test_bits();
    test_edges();
    return th_summary();
}
