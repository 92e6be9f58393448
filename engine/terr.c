/* terr.c - per-tensor local and propagated quantization error (see terr.h). */
#include "terr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Running sums of one comparison of x (FP32) with xq. */
typedef struct acc {
    int64_t n, clipped;
    double sx2, sq2, sxq;    /* sum x^2, sum xq^2, sum x xq */
    double se2;              /* sum e^2, e = xq - x */
    double se2s;             /* sum (e / scale)^2 */
    double max_abs;
} acc;

/* n elements of x against xq, all on encoding enc. */
static void acc_add(acc *a, const float *x, const float *xq, size_t n, const qd_encoding *enc)
{
    double lo = enc->min - enc->scale / 2, hi = enc->max + enc->scale / 2;
    double sx2 = 0, sq2 = 0, sxq = 0, se2 = 0, mx = a->max_abs;
    int64_t clipped = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], w = xq[i], d = w - v;
        sx2 += v * v;
        sq2 += w * w;
        sxq += v * w;
        se2 += d * d;
        mx = fabs(d) > mx ? fabs(d) : mx;
        clipped += v < lo || v > hi;
    }
    a->n += (int64_t)n;
    a->clipped += clipped;
    a->sx2 += sx2;
    a->sq2 += sq2;
    a->sxq += sxq;
    a->se2 += se2;
    a->se2s += se2 / (enc->scale * enc->scale);
    a->max_abs = mx;
}

/* x against fake_quant(x, enc), in chunks through a stack buffer. */
static void acc_quant(acc *a, const float *x, size_t n, const qd_encoding *enc)
{
    float xq[1024];
    for (size_t at = 0; at < n; at += sizeof xq / sizeof *xq) {
        size_t k = n - at < sizeof xq / sizeof *xq ? n - at : sizeof xq / sizeof *xq;
        qd_fake_quant(x + at, xq, k, enc);
        acc_add(a, x + at, xq, k, enc);
    }
}

static qd_terr_metrics finish(const acc *a)
{
    qd_terr_metrics m = {.n = a->n};
    if (!a->n) {
        m.sqnr_db = m.mse = m.cosine = m.max_abs = m.rmse_scale = m.clip_frac = NAN;
        return m;
    }
    double n = (double)a->n;
    m.sqnr_db = a->se2 == 0 ? INFINITY : a->sx2 == 0 ? -INFINITY : 10.0 * log10(a->sx2 / a->se2);
    m.mse = a->se2 / n;
    if (a->sx2 == 0 || a->sq2 == 0)
        m.cosine = a->sx2 == a->sq2 ? 1.0 : 0.0;
    else
        m.cosine = fmax(-1.0, fmin(1.0, a->sxq / (sqrt(a->sx2) * sqrt(a->sq2))));
    m.max_abs = a->max_abs;
    m.rmse_scale = sqrt(a->se2s / n);
    m.clip_frac = (double)a->clipped / n;
    return m;
}

/* A weight with one encoding per channel along axis: outer x nch x inner. */
static void layout(const qd_tensor *t, int axis, size_t *outer, size_t *nch, size_t *inner)
{
    *outer = *nch = *inner = 1;
    for (int d = 0; d < t->ndim; d++)
        *(d < axis ? outer : d == axis ? nch : inner) *= (size_t)t->shape[d];
}

static int param_error(qd_sim *s, const qd_quantizer *q, acc *a, qd_err *e)
{
    const qd_tensor *w = qd_sim_fp32(s, q->value);
    if (!w || w->dtype != QD_F32)
        return QD_OK;
    if (q->nenc <= 1) {
        acc_quant(a, w->data, (size_t)qd_tensor_numel(w), &q->enc[0]);
        return QD_OK;
    }
    size_t outer, nch, inner;
    layout(w, q->axis, &outer, &nch, &inner);
    if (q->axis < 0 || q->axis >= w->ndim || nch != (size_t)q->nenc)
        return qd_errf(e, QD_EINPUT, "quantizer '%s': %d encodings for axis %d of a %dD weight", q->name,
                       q->nenc, q->axis, w->ndim);
    const float *x = w->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < nch; c++)
            acc_quant(a, x + (o * nch + c) * inner, inner, &q->enc[c]);
    return QD_OK;
}

/* The FP32 copy of one quantized activation for the current batch. */
typedef struct copy {
    float *x;
    size_t n, cap;           /* elements held (0: not computed), allocated */
} copy;

static int keep(copy *c, const qd_tensor *t)
{
    c->n = 0;
    if (!t || t->dtype != QD_F32)
        return QD_OK;
    size_t n = (size_t)qd_tensor_numel(t);
    if (n > c->cap) {
        float *nx = realloc(c->x, n * sizeof *nx);
        if (!nx)
            return QD_EFAIL;
        c->x = nx;
        c->cap = n;
    }
    memcpy(c->x, t->data, n * sizeof *c->x);
    c->n = n;
    return QD_OK;
}

void qd_terr_free(qd_terr *t)
{
    if (!t)
        return;
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int qd_terr_compute(qd_sim *s, qd_dataset *d, const qd_eval_opts *o, qd_terr *out, qd_err *e)
{
    qd_eval_opts def = {0};
    if (!o)
        o = &def;
    memset(out, 0, sizeof *out);
    if (qd_sim_check_encodings(s, e))
        return e->code;
    const qd_graph *g = qd_sim_graph(s);
    if (g->ninputs != 1)
        return qd_errf(e, QD_EINPUT, "model takes %d inputs; the error table feeds one image tensor", g->ninputs);
    int nq = qd_sim_count(s), n = 0;
    for (int i = 0; i < nq; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        n += qd_quantizer_active(q) && q->nenc > 0;
    }
    int64_t total = qd_data_count(d), batch = o->batch > 0 ? o->batch : 64;
    acc *loc = calloc((size_t)n + 1, sizeof *loc), *prop = calloc((size_t)n + 1, sizeof *prop);
    copy *fx = calloc((size_t)n + 1, sizeof *fx);
    out->rows = calloc((size_t)n + 1, sizeof *out->rows);
    qd_tensor xb = {0};
    qd_exec *ex = qd_sim_exec(s);
    double t0 = qd_now_ms();
    int rc = QD_OK;
    if (!loc || !prop || !fx || !out->rows) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    out->n = n;
    for (int i = 0, r = 0; i < nq; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (qd_quantizer_active(q) && q->nenc > 0)
            out->rows[r++] = (qd_terr_row){.q = i, .kind = q->kind};
    }
    for (int r = 0; r < n; r++) {
        const qd_quantizer *q = qd_sim_get(s, out->rows[r].q);
        if (q->kind == QD_QK_PARAM && (rc = param_error(s, q, &loc[r], e)))
            goto out;
    }
    for (int64_t at = 0; at < total; at += batch) {
        int64_t nb = total - at < batch ? total - at : batch;
        if ((rc = qd_data_batch(d, at, nb, &xb, NULL, e)))
            goto out;
        qd_sim_set_fp32(s, 1);
        if ((rc = qd_sim_run(s, &xb, 1, e)))
            goto out;
        for (int r = 0; r < n; r++) {
            const qd_quantizer *q = qd_sim_get(s, out->rows[r].q);
            if (q->kind == QD_QK_INPUT && q->value == g->inputs[0] && xb.dtype == QD_F32)
                acc_quant(&loc[r], xb.data, (size_t)qd_tensor_numel(&xb), &q->enc[0]);
            if (q->kind != QD_QK_ACT)
                continue;
            if (keep(&fx[r], qd_exec_value(ex, q->value))) {
                rc = qd_errf(e, QD_EFAIL, "out of memory");
                goto out;
            }
            acc_quant(&loc[r], fx[r].x, fx[r].n, &q->enc[0]);
        }
        qd_sim_set_fp32(s, 0);
        if ((rc = qd_sim_run(s, &xb, 1, e)))
            goto out;
        for (int r = 0; r < n; r++) {
            const qd_quantizer *q = qd_sim_get(s, out->rows[r].q);
            if (q->kind != QD_QK_ACT || !fx[r].n)
                continue;
            const qd_tensor *t = qd_exec_value(ex, q->value);
            if (!t || t->dtype != QD_F32 || (size_t)qd_tensor_numel(t) != fx[r].n) {
                rc = qd_errf(e, QD_EFAIL, "tensor '%s' differs in shape between the FP32 and simulated runs",
                             q->name);
                goto out;
            }
            acc_add(&prop[r], fx[r].x, t->data, fx[r].n, &q->enc[0]);
        }
        out->images += nb;
        if (o->progress && o->progress(o->user, out->images, total)) {
            out->stopped = 1;
            break;
        }
    }
    for (int r = 0; r < n; r++) {
        qd_terr_row *row = &out->rows[r];
        row->local = finish(&loc[r]);
        row->prop = row->kind == QD_QK_ACT ? finish(&prop[r]) : row->local;
    }
    out->seconds = (qd_now_ms() - t0) / 1e3;
out:
    qd_sim_set_fp32(s, 0);
    for (int r = 0; fx && r < n; r++)
        free(fx[r].x);
    free(fx);
    free(loc);
    free(prop);
    qd_tensor_free(&xb);
    if (rc)
        qd_terr_free(out);
    return rc;
}
