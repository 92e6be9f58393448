/* qeval.c - simulated vs FP32 accuracy, agreement and SQNR. */
#include "qeval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int argmax(const float *row, int c)
{
    int best = 0;
    for (int i = 1; i < c; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

static int check_logits(const qd_graph *g, const qd_tensor *y, int64_t n, qd_err *e)
{
    if (y->dtype != QD_F32 || y->ndim != 2 || y->shape[0] != n) {
        char b[96];
        return qd_errf(e, QD_EINPUT, "model output '%s' is %s; evaluation needs logits N x classes",
                       g->values[g->outputs[0]].name, qd_shape_str(y->ndim, y->shape, b, sizeof b));
    }
    return QD_OK;
}

void qd_logits_free(qd_logits *l)
{
    if (!l)
        return;
    free(l->y);
    free(l->labels);
    memset(l, 0, sizeof *l);
}

int64_t qd_logits_top1(const qd_logits *l)
{
    int64_t n = 0;
    for (int64_t i = 0; i < l->n; i++)
        n += l->labels[i] >= 0 && argmax(l->y + i * l->classes, l->classes) == l->labels[i];
    return n;
}

double qd_logits_metric(const qd_logits *l)
{
    if (!l->labeled)
        return 1.0;
    return l->n ? (double)qd_logits_top1(l) / (double)l->n : NAN;
}

double qd_qeval_metric(const qd_qeval_result *r)
{
    return r->images ? (double)(r->labeled ? r->top1 : r->agree) / (double)r->images : NAN;
}

int qd_logits_compute(const qd_graph *g, qd_dataset *d, const qd_eval_opts *o, qd_logits *out, qd_err *e)
{
    qd_eval_opts def = {0};
    if (!o)
        o = &def;
    memset(out, 0, sizeof *out);
    if (g->ninputs != 1)
        return qd_errf(e, QD_EINPUT, "model takes %d inputs; evaluation feeds one image tensor", g->ninputs);
    int64_t total = qd_data_count(d), batch = o->batch > 0 ? o->batch : 64;
    out->labeled = qd_data_has_labels(d);
    out->labels = malloc(((size_t)total + 1) * sizeof *out->labels);
    qd_exec *ex = qd_exec_new(g, o->nthreads > 0 ? o->nthreads : 1, e);
    qd_tensor x = {0};
    int rc = QD_OK;
    if (!out->labels || !ex) {
        rc = e->code ? e->code : qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    double t0 = qd_now_ms();
    for (int64_t at = 0; at < total; at += batch) {
        int64_t n = total - at < batch ? total - at : batch;
        if ((rc = qd_data_batch(d, at, n, &x, out->labels + at, e)) || (rc = qd_exec_run(ex, &x, 1, e)))
            goto out;
        const qd_tensor *y = qd_exec_output(ex, 0);
        if ((rc = check_logits(g, y, n, e)))
            goto out;
        if (!out->y) {
            out->classes = (int)y->shape[1];
            out->y = malloc(((size_t)total * (size_t)out->classes + 1) * sizeof(float));
            if (!out->y) {
                rc = qd_errf(e, QD_EFAIL, "out of memory");
                goto out;
            }
        } else if (y->shape[1] != out->classes) {
            rc = qd_errf(e, QD_EINPUT, "model output width changed between batches");
            goto out;
        }
        memcpy(out->y + at * out->classes, y->data, (size_t)(n * out->classes) * sizeof(float));
        out->n = at + n;
        if (o->progress && o->progress(o->user, out->n, total))
            break;
    }
    out->seconds = (qd_now_ms() - t0) / 1e3;
out:
    qd_exec_free(ex);
    qd_tensor_free(&x);
    if (rc)
        qd_logits_free(out);
    return rc;
}

int qd_qeval_add(qd_qeval_result *r, const qd_logits *ref, int64_t at, const qd_graph *g, const qd_tensor *y,
                 qd_err *e)
{
    int64_t n = y->ndim == 2 ? y->shape[0] : 0;
    if (check_logits(g, y, n, e))
        return e->code;
    if (y->shape[1] != ref->classes)
        return qd_errf(e, QD_EINPUT, "simulated output has %lld classes, FP32 %d", (long long)y->shape[1],
                       ref->classes);
    if (at < 0 || at + n > ref->n)
        return qd_errf(e, QD_EINPUT, "images %lld..%lld are beyond the FP32 reference's %lld", (long long)at,
                       (long long)(at + n), (long long)ref->n);
    int c = ref->classes;
    r->labeled = ref->labeled;
    for (int64_t i = 0; i < n; i++) {
        const float *yq = (const float *)y->data + i * c, *yf = ref->y + (at + i) * c;
        int pq = argmax(yq, c), pf = argmax(yf, c);
        int64_t lab = ref->labels[at + i];
        r->agree += pq == pf;
        r->top1 += lab >= 0 && pq == lab;
        r->fp32_top1 += lab >= 0 && pf == lab;
        for (int k = 0; k < c; k++) {
            double dv = (double)yf[k] - yq[k];
            r->sig += (double)yf[k] * yf[k];
            r->err += dv * dv;
        }
    }
    r->images += n;
    r->sqnr_db = r->err > 0 ? 10.0 * log10(r->sig / r->err) : INFINITY;
    return QD_OK;
}

int qd_qeval_run(qd_sim *s, qd_dataset *d, const qd_logits *ref, const qd_eval_opts *o, qd_qeval_result *r,
                 qd_err *e)
{
    qd_eval_opts def = {0};
    if (!o)
        o = &def;
    memset(r, 0, sizeof *r);
    int64_t total = ref->n < qd_data_count(d) ? ref->n : qd_data_count(d);
    int64_t batch = o->batch > 0 ? o->batch : 64;
    r->labeled = ref->labeled;
    r->sqnr_db = INFINITY;
    qd_tensor x = {0};
    int rc = QD_OK;
    double t0 = qd_now_ms();
    for (int64_t at = 0; at < total; at += batch) {
        int64_t n = total - at < batch ? total - at : batch;
        if ((rc = qd_data_batch(d, at, n, &x, NULL, e)) || (rc = qd_sim_run(s, &x, 1, e)))
            goto out;
        const qd_tensor *y = qd_sim_output(s, 0);
        if (y->ndim == 2 && y->shape[0] != n) {
            rc = check_logits(qd_sim_graph(s), y, n, e);
            goto out;
        }
        if ((rc = qd_qeval_add(r, ref, at, qd_sim_graph(s), y, e)))
            goto out;
        if (o->progress && o->progress(o->user, r->images, total)) {
            r->stopped = 1;
            break;
        }
    }
    r->seconds = (qd_now_ms() - t0) / 1e3;
out:
    qd_tensor_free(&x);
    return rc;
}
