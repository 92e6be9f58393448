/* perq.c - enable-one / disable-one per-quantizer analysis, naive or with a
 * per-batch cache of node outputs (see perq.h). */
#include "perq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PERQ_DEFAULT_MEM ((size_t)2 << 30)

void qd_perq_reach(qd_sim *s, int qi, unsigned char *run)
{
    const qd_graph *g = qd_sim_graph(s);
    const qd_quantizer *q = qd_sim_get(s, qi);
    memset(run, 0, (size_t)g->nnodes);
    if (!q)
        return;
    qd_graph_mark_readers(g, q->value, run);
    qd_graph_mark_downstream(g, run);
}

static size_t outputs_bytes(qd_exec *x, const qd_graph *g, const unsigned char *nodes)
{
    size_t b = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; nodes[i] && j < g->nodes[i].nout; j++) {
            const qd_tensor *t = qd_exec_value(x, g->nodes[i].out[j]);
            b += t ? qd_tensor_nbytes(t) : 0;
        }
    return b;
}

typedef struct perq_run {
    qd_sim *s;
    qd_dataset *d;
    const qd_logits *ref;
    const qd_perq_opts *o;
    const qd_graph *g;
    int on;                /* what a measured quantizer is set to: 1 enable-one, 0 disable-one */
    int64_t total, batch;
    qd_tensor x;
    qd_perq_info *info;
} perq_run;

/* One full evaluation per quantizer. */
static int naive(perq_run *r, const int *qs, int n, qd_qeval_result *res, qd_err *e)
{
    int64_t done = 0, total = r->total * n;
    for (int k = 0; k < n && !r->info->stopped; k++) {
        qd_sim_set_enabled(r->s, qs[k], r->on);
        for (int64_t at = 0; at < r->total; at += r->batch) {
            int64_t nb = r->total - at < r->batch ? r->total - at : r->batch;
            int rc = qd_data_batch(r->d, at, nb, &r->x, NULL, e);
            if (!rc)
                rc = qd_sim_run(r->s, &r->x, 1, e);
            if (!rc)
                rc = qd_qeval_add(&res[k], r->ref, at, r->g, qd_sim_output(r->s, 0), e);
            if (rc) {
                qd_sim_set_enabled(r->s, qs[k], !r->on);
                return rc;
            }
            r->info->nodes_run += r->g->nnodes;
            done += nb;
            if (r->o->progress && r->o->progress(r->o->user, done, total)) {
                r->info->stopped = 1;
                break;
            }
        }
        qd_sim_set_enabled(r->s, qs[k], !r->on);
    }
    int64_t images = r->total;
    for (int k = 0; k < n; k++)
        images = res[k].images < images ? res[k].images : images;
    r->info->images = images;
    return QD_OK;
}

/* Swap value v (when >= 0) with own[v] and the outputs of the nodes in
 * run with alt, between the executor and the caller. */
static int swap_outputs(qd_exec *x, const qd_graph *g, const unsigned char *run, int v, qd_tensor *own,
                        qd_tensor *alt, qd_err *e)
{
    if (v >= 0 && qd_exec_swap(x, v, &own[v], e))
        return e->code;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; run[i] && j < g->nodes[i].nout; j++)
            if (g->nodes[i].out[j] >= 0 && qd_exec_swap(x, g->nodes[i].out[j], &alt[g->nodes[i].out[j]], e))
                return e->code;
    return QD_OK;
}

static int same_bytes(const qd_tensor *a, const qd_tensor *b)
{
    return a && b && a->dtype == b->dtype && qd_tensor_nbytes(a) == qd_tensor_nbytes(b) &&
           !memcmp(a->data, b->data, qd_tensor_nbytes(a));
}

/* Whether quantizer qi (an input or activation, enabled) leaves t as it
 * is: 1 yes, 0 no, < 0 error. */
static int quantizes_to_itself(qd_sim *s, int qi, const qd_tensor *t, qd_tensor *tmp, qd_err *e)
{
    if (qd_sim_quantize(s, qi, t, tmp, e))
        return -e->code;
    return same_bytes(tmp, t);
}

/* Whether every int32 bias is held (or not) as in the base run, whose
 * flags are in on[]: toggling an activation's quantizer moves the biases
 * that take their input grid from it. */
static int biases_as(qd_sim *s, const unsigned char *on)
{
    qd_sim_apply(s);
    for (int i = 0; i < qd_sim_bias_count(s); i++) {
        qd_sim_bias b;
        qd_sim_bias_get(s, i, &b);
        if (b.on != on[i])
            return 0;
    }
    return 1;
}

/* Per batch: one base run whose values stay in the executor; per
 * quantizer the nodes it reaches run again into spare buffers swapped in
 * (no copies), and are swapped out again. An activation quantizer's
 * producer does not run again: its value is the base value fake-quantized
 * (enable-one) or the producer's output captured in the base run before
 * its quantizer (disable-one). When the quantizer's tensor comes out
 * bit-identical to the base run's (an 8-bit input of k/255 pixels, say)
 * and no int32 bias moves with it, nothing downstream can change: the base
 * run's output is its result and nothing runs again. */
static int cached(perq_run *r, const int *qs, int n, const unsigned char *reach, qd_qeval_result *res, qd_err *e)
{
    const qd_graph *g = r->g;
    qd_exec *x = qd_sim_exec(r->s);
    qd_tensor *spare = calloc((size_t)g->nvalues + 1, sizeof *spare);
    qd_tensor *pre = calloc((size_t)g->nvalues + 1, sizeof *pre);
    unsigned char *want = calloc((size_t)g->nvalues + 1, 1);
    int64_t *cost = calloc((size_t)n + 1, sizeof *cost);
    unsigned char *bon = calloc((size_t)qd_sim_bias_count(r->s) + 1, 1);
    qd_tensor tmp = {0};
    int rc = QD_OK;
    if (!spare || !pre || !want || !cost || !bon) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int k = 0; k < n; k++) {
        const qd_quantizer *q = qd_sim_get(r->s, qs[k]);
        want[q->value] |= q->kind == QD_QK_ACT && !r->on;
        for (int i = 0; i < g->nnodes; i++)
            cost[k] += reach[(size_t)k * g->nnodes + i];
    }
    for (int64_t at = 0; at < r->total && !rc; at += r->batch) {
        int64_t nb = r->total - at < r->batch ? r->total - at : r->batch;
        qd_sim_capture(r->s, want, pre);
        rc = qd_data_batch(r->d, at, nb, &r->x, NULL, e);
        if (!rc)
            rc = qd_sim_run(r->s, &r->x, 1, e);
        qd_sim_capture(r->s, NULL, NULL);
        if (rc || (rc = qd_qeval_add(&r->info->base, r->ref, at, g, qd_sim_output(r->s, 0), e)))
            break;
        r->info->nodes_run += g->nnodes;
        for (int i = 0; i < qd_sim_bias_count(r->s); i++) {
            qd_sim_bias b;
            qd_sim_bias_get(r->s, i, &b);
            bon[i] = (unsigned char)b.on;
        }
        for (int k = 0; k < n && !rc; k++) {
            const unsigned char *run = reach + (size_t)k * g->nnodes;
            const qd_quantizer *q = qd_sim_get(r->s, qs[k]);
            int v = q->kind == QD_QK_ACT ? q->value : -1;
            int input = q->kind == QD_QK_INPUT && g->ninputs > 0 && q->value == g->inputs[0];
            const qd_tensor *base = v >= 0 ? qd_exec_value(x, v) : NULL;
            qd_tensor *own = r->on ? spare : pre;
            int same = 0;
            if (v >= 0 && !base)
                rc = qd_errf(e, QD_EFAIL, "%s: no value after the base run", q->name);
            else if (input && !r->on) /* still on, as in the base run */
                same = quantizes_to_itself(r->s, qs[k], &r->x, &tmp, e);
            qd_sim_set_enabled(r->s, qs[k], r->on);
            if (!rc && v >= 0 && r->on && !(rc = qd_sim_quantize(r->s, qs[k], base, &spare[v], e)))
                same = same_bytes(&spare[v], base);
            else if (!rc && v >= 0 && !r->on)
                same = same_bytes(&pre[v], base);
            else if (!rc && input && r->on)
                same = quantizes_to_itself(r->s, qs[k], &r->x, &tmp, e);
            if (same < 0)
                rc = -same;
            else if (same && !rc)
                same = biases_as(r->s, bon);
            if (same && !rc) {
                rc = qd_qeval_add(&res[k], r->ref, at, g, qd_sim_output(r->s, 0), e);
                r->info->unchanged++;
            } else if (!rc && !(rc = swap_outputs(x, g, run, v, own, spare, e))) {
                rc = qd_sim_run_some(r->s, &r->x, 1, run, e);
                if (!rc)
                    rc = qd_qeval_add(&res[k], r->ref, at, g, qd_sim_output(r->s, 0), e);
                int rc2 = swap_outputs(x, g, run, v, own, spare, e);
                rc = rc ? rc : rc2;
            }
            qd_sim_set_enabled(r->s, qs[k], !r->on);
            r->info->nodes_run += same > 0 ? 0 : cost[k];
        }
        if (rc)
            break;
        r->info->images = at + nb;
        if (r->o->progress && r->o->progress(r->o->user, (at + nb) * n, r->total * n))
            r->info->stopped = 1;
        if (r->info->stopped)
            break;
    }
out:
    qd_sim_capture(r->s, NULL, NULL);
    size_t bytes = 0;
    for (int v = 0; spare && pre && v < g->nvalues; v++) {
        bytes += spare[v].cap + pre[v].cap;
        qd_tensor_free(&spare[v]);
        qd_tensor_free(&pre[v]);
    }
    r->info->cache_bytes = bytes;
    qd_tensor_free(&tmp);
    free(bon);
    free(spare);
    free(pre);
    free(want);
    free(cost);
    return rc;
}

int qd_perq_run(qd_sim *s, qd_dataset *d, const qd_logits *ref, qd_perq_mode mode, const int *qs, int n,
                const qd_perq_opts *o, qd_qeval_result *res, qd_perq_info *info, qd_err *e)
{
    qd_perq_opts def = {0};
    qd_perq_info own;
    if (!o)
        o = &def;
    if (!info)
        info = &own;
    memset(info, 0, sizeof *info);
    memset(res, 0, (size_t)(n > 0 ? n : 0) * sizeof *res);
    if (qd_sim_check_encodings(s, e))
        return e->code;
    for (int k = 0; k < n; k++) {
        const qd_quantizer *q = qd_sim_get(s, qs[k]);
        if (!q)
            return qd_errf(e, QD_EINPUT, "no quantizer %d", qs[k]);
        if (!qd_quantizer_active(q))
            return qd_errf(e, QD_EINPUT, "quantizer '%s' is bypassed; per-quantizer analysis measures active ones",
                           q->name);
    }
    const qd_graph *g = qd_sim_graph(s);
    int nq = qd_sim_count(s);
    unsigned char *en0 = malloc((size_t)nq + 1);
    unsigned char *reach = malloc((size_t)(n > 0 ? n : 1) * (size_t)g->nnodes + 1);
    unsigned char *any = calloc((size_t)g->nnodes + 1, 1);
    perq_run r = {s, d, ref, o, g, mode == QD_PERQ_ENABLE_ONE, 0, o->batch > 0 ? o->batch : 64, {0}, info};
    int rc = QD_OK;
    if (!en0 || !reach || !any) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nq; i++)
        en0[i] = (unsigned char)qd_sim_get(s, i)->set.enabled;
    for (int k = 0; k < n; k++) {
        unsigned char *run = reach + (size_t)k * g->nnodes;
        qd_perq_reach(s, qs[k], run);
        for (int i = 0; i < g->nnodes; i++)
            any[i] |= run[i];
    }
    r.total = ref->n < qd_data_count(d) ? ref->n : qd_data_count(d);
    for (int k = 0; k < n; k++) {
        res[k].labeled = ref->labeled;
        res[k].sqnr_db = INFINITY;
    }
    info->base.labeled = ref->labeled;
    info->base.sqnr_db = INFINITY;
    if (r.on) /* enable-one starts from everything bypassed */
        for (int i = 0; i < nq; i++)
            qd_sim_set_enabled(s, i, 0);
    double t0 = qd_now_ms(), c0 = qd_cpu_ms();
    int use_cache = !o->naive && n > 0 && r.total > 0;
    if (use_cache) { /* the cache's size per image, from a run of one */
        size_t mem = o->mem ? o->mem : PERQ_DEFAULT_MEM;
        if ((rc = qd_data_batch(d, 0, 1, &r.x, NULL, e)) || (rc = qd_sim_run(s, &r.x, 1, e)))
            goto out;
        /* spare buffers for the nodes re-run and for an activation's own
         * value (enable-one: quantized); disable-one captures those too */
        size_t own = 0;
        for (int k = 0; k < n; k++) {
            const qd_quantizer *q = qd_sim_get(s, qs[k]);
            const qd_tensor *t = q->kind == QD_QK_ACT ? qd_exec_value(qd_sim_exec(s), q->value) : NULL;
            own += t ? qd_tensor_nbytes(t) : 0;
            if (t && q->node >= 0)
                any[q->node] = 1;
        }
        size_t per = outputs_bytes(qd_sim_exec(s), g, any) + (r.on ? 0 : own);
        info->image_bytes = per;
        if (per && per * (size_t)r.batch > mem)
            r.batch = (int64_t)(mem / per);
        use_cache = r.batch >= 1;
        if (!use_cache)
            r.batch = o->batch > 0 ? o->batch : 64;
    }
    info->batch = r.batch;
    info->cached = use_cache;
    info->nodes_full = (int64_t)n * ((r.total + r.batch - 1) / r.batch) * g->nnodes;
    rc = use_cache ? cached(&r, qs, n, reach, res, e) : naive(&r, qs, n, res, e);
    info->seconds = (qd_now_ms() - t0) / 1e3;
    info->cpu_seconds = (qd_cpu_ms() - c0) / 1e3;
out:
    if (en0)
        for (int i = 0; i < nq; i++)
            qd_sim_set_enabled(s, i, en0[i]);
    qd_tensor_free(&r.x);
    free(en0);
    free(reach);
    free(any);
    return rc;
}
