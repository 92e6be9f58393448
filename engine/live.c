/* live.c - live what-if evaluation from per-batch caches of every node
 * output (see live.h). */
#include "live.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define LIVE_DEFAULT_MEM ((size_t)2 << 30)

enum { LIVE_NEW, LIVE_CACHED, LIVE_PLAIN };

/* A quantizer as the last evaluation saw it: every field of its settings
 * and its encodings. */
typedef struct qsnap {
    int enabled, bits, symmetric, unsigned_symmetric, strict_symmetric;
    int per_channel, fixed;
    qd_range_method range;
    double pct, fmin, fmax;
    int nenc, cap;
    qd_encoding *enc;     /* cap entries, nenc used */
} qsnap;

struct qd_live {
    qd_sim *s;
    qd_dataset *d;
    const qd_logits *ref;
    const qd_graph *g;
    int64_t batch, total, nbatch;
    size_t mem;
    int state;            /* LIVE_NEW: not measured yet; LIVE_PLAIN: over budget, no cache */
    int outv;             /* the logits' value */
    qd_tensor *vals;      /* nbatch x nvalues: the node outputs of each batch (other slots unused) */
    qd_tensor *in;        /* nbatch: each batch's input */
    unsigned char *dirty; /* nbatch x nnodes: nodes batch b must run again */
    int nq;
    qsnap *snap;          /* nq: the quantizers as of the last evaluation */
    int have_snap;
    unsigned char *run;   /* nnodes: what this evaluation's changes reach */
    unsigned char *mark;  /* nvalues: values listed (scratch) */
    int *list;            /* nvalues: values swapped for one batch */
    int *changed;         /* nq: indices of the changed quantizers */
    qd_tensor x;          /* a batch's input when there is no cache */
};

/* ---------------------------------------------------------- snapshots */

static int same_f64(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static int same_enc(const qd_encoding *a, const qd_encoding *b)
{
    return same_f64(a->min, b->min) && same_f64(a->max, b->max) && same_f64(a->scale, b->scale) &&
           a->offset == b->offset && a->bits == b->bits && a->symmetric == b->symmetric;
}

/* Field by field (qd_qsettings and qd_qscheme have padding). */
static int same_state(const qsnap *p, const qd_quantizer *q)
{
    const qd_qsettings *s = &q->set;
    if (p->enabled != s->enabled || p->bits != s->scheme.bits || p->symmetric != s->scheme.symmetric ||
        p->unsigned_symmetric != s->scheme.unsigned_symmetric ||
        p->strict_symmetric != s->scheme.strict_symmetric || p->per_channel != s->per_channel ||
        p->fixed != s->fixed || p->range != s->range || !same_f64(p->pct, s->pct) || !same_f64(p->fmin, s->fmin) ||
        !same_f64(p->fmax, s->fmax) || p->nenc != q->nenc)
        return 0;
    for (int c = 0; c < q->nenc; c++)
        if (!same_enc(&p->enc[c], &q->enc[c]))
            return 0;
    return 1;
}

static int take(qsnap *p, const qd_quantizer *q, qd_err *e)
{
    const qd_qsettings *s = &q->set;
    if (q->nenc > p->cap) {
        qd_encoding *ne = realloc(p->enc, (size_t)q->nenc * sizeof *ne);
        if (!ne)
            return qd_errf(e, QD_EFAIL, "out of memory");
        p->enc = ne;
        p->cap = q->nenc;
    }
    p->enabled = s->enabled;
    p->bits = s->scheme.bits;
    p->symmetric = s->scheme.symmetric;
    p->unsigned_symmetric = s->scheme.unsigned_symmetric;
    p->strict_symmetric = s->scheme.strict_symmetric;
    p->per_channel = s->per_channel;
    p->fixed = s->fixed;
    p->range = s->range;
    p->pct = s->pct;
    p->fmin = s->fmin;
    p->fmax = s->fmax;
    p->nenc = q->nenc;
    if (q->nenc > 0)
        memcpy(p->enc, q->enc, (size_t)q->nenc * sizeof *p->enc);
    return QD_OK;
}

/* ---------------------------------------------------------- reach */

/* run[] = the nodes the changed quantizers reach: a param's or input's
 * readers, an activation's producer, and everything downstream of those
 * (nodes are in topological order). */
static void reach(qd_live *L, int nchanged)
{
    const qd_graph *g = L->g;
    memset(L->run, 0, (size_t)g->nnodes);
    for (int k = 0; k < nchanged; k++) {
        const qd_quantizer *q = qd_sim_get(L->s, L->changed[k]);
        int p = g->values[q->value].producer;
        if (p >= 0)
            L->run[p] = 1;
        else
            qd_graph_mark_readers(g, q->value, L->run);
    }
    qd_graph_mark_downstream(g, L->run);
}

/* Compare the quantizers with the snapshot and take a new one; with a
 * cache, every batch gets the nodes the changes reach to run. Returns the
 * count changed (0 without a snapshot: everything is dirty anyway). */
static int changes(qd_live *L, qd_err *e)
{
    int n = 0;
    for (int i = 0; i < L->nq; i++)
        if (L->have_snap && !same_state(&L->snap[i], qd_sim_get(L->s, i)))
            L->changed[n++] = i;
    int nn = L->g->nnodes;
    if (n && L->state != LIVE_PLAIN) {
        reach(L, n);
        for (int64_t b = 0; b < L->nbatch; b++)
            for (int i = 0; i < nn; i++)
                L->dirty[b * nn + i] |= L->run[i];
    }
    L->have_snap = 1;
    for (int i = 0; i < L->nq; i++)
        if (take(&L->snap[i], qd_sim_get(L->s, i), e)) {
            qd_live_invalidate(L); /* a snapshot in part: run everything next time */
            return -1;
        }
    return n;
}

/* ---------------------------------------------------------- batches */

/* Exchange the first n listed values of batch b between the cache and the
 * executor. The list holds node outputs only, which qd_exec_swap always
 * takes. */
static void swap_list(qd_live *L, int64_t b, int n)
{
    qd_exec *x = qd_sim_exec(L->s);
    qd_tensor *vals = L->vals + b * L->g->nvalues;
    qd_err e = {0};
    for (int k = 0; k < n; k++)
        qd_exec_swap(x, L->list[k], &vals[L->list[k]], &e);
}

/* Run batch b's dirty nodes on its cached values; *count gets how many. */
static int run_batch(qd_live *L, int64_t b, int64_t at, int64_t nb, int64_t *count, qd_err *e)
{
    const qd_graph *g = L->g;
    unsigned char *run = L->dirty + b * g->nnodes;
    int n = 0, rc = QD_OK;
    *count = 0;
    for (int i = 0; i < g->nnodes; i++)
        *count += run[i];
    if (!*count)
        return QD_OK;
    if (!L->in[b].data && (rc = qd_data_batch(L->d, at, nb, &L->in[b], NULL, e)))
        return rc;
    /* the outputs of the nodes run and what they read */
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *nd = &g->nodes[i];
        for (int j = 0; run[i] && j < nd->nout + nd->nin; j++) {
            int v = j < nd->nout ? nd->out[j] : nd->in[j - nd->nout];
            if (v >= 0 && g->values[v].producer >= 0 && !L->mark[v]) {
                L->mark[v] = 1;
                L->list[n++] = v;
            }
        }
    }
    for (int k = 0; k < n; k++)
        L->mark[L->list[k]] = 0;
    swap_list(L, b, n);
    rc = qd_sim_run_some(L->s, &L->in[b], 1, run, e);
    swap_list(L, b, n);
    if (!rc)
        memset(run, 0, (size_t)g->nnodes);
    return rc;
}

static size_t cache_bytes(const qd_live *L, int64_t nbatch)
{
    size_t bytes = 0;
    for (int64_t b = 0; L->vals && b < nbatch; b++) {
        bytes += L->in[b].cap;
        for (int v = 0; v < L->g->nvalues; v++)
            bytes += L->vals[b * L->g->nvalues + v].cap;
    }
    return bytes;
}

static void drop_cache(qd_live *L)
{
    for (int64_t b = 0; L->vals && b < L->nbatch; b++) {
        qd_tensor_free(&L->in[b]);
        for (int v = 0; v < L->g->nvalues; v++)
            qd_tensor_free(&L->vals[b * L->g->nvalues + v]);
    }
}

/* After the first batch: keep the cache if the whole set fits the budget
 * (the last batch counted as a full one). */
static void measure(qd_live *L)
{
    size_t per = cache_bytes(L, 1);
    size_t nb = (size_t)L->nbatch;
    if (per && (per > L->mem / nb)) {
        drop_cache(L);
        L->state = LIVE_PLAIN;
    } else {
        L->state = LIVE_CACHED;
    }
}

/* ---------------------------------------------------------- API */

qd_live *qd_live_new(qd_sim *s, qd_dataset *d, const qd_logits *ref, const qd_live_opts *o, qd_err *e)
{
    const qd_graph *g = qd_sim_graph(s);
    if (g->ninputs != 1) {
        qd_errf(e, QD_EINPUT, "model takes %d inputs; evaluation feeds one image tensor", g->ninputs);
        return NULL;
    }
    if (g->noutputs < 1 || g->values[g->outputs[0]].producer < 0) {
        qd_errf(e, QD_EINPUT, "model has no output computed by a node");
        return NULL;
    }
    qd_live *L = calloc(1, sizeof *L);
    if (!L) {
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    L->s = s;
    L->d = d;
    L->ref = ref;
    L->g = g;
    L->batch = o && o->batch > 0 ? o->batch : 64;
    L->mem = o && o->mem ? o->mem : LIVE_DEFAULT_MEM;
    L->total = ref->n < qd_data_count(d) ? ref->n : qd_data_count(d);
    L->nbatch = (L->total + L->batch - 1) / L->batch;
    L->outv = g->outputs[0];
    L->nq = qd_sim_count(s);
    size_t nb = (size_t)L->nbatch, nv = (size_t)g->nvalues, nn = (size_t)g->nnodes;
    L->vals = calloc(nb * nv + 1, sizeof *L->vals);
    L->in = calloc(nb + 1, sizeof *L->in);
    L->dirty = malloc(nb * nn + 1);
    L->snap = calloc((size_t)L->nq + 1, sizeof *L->snap);
    L->run = calloc(nn + 1, 1);
    L->mark = calloc(nv + 1, 1);
    L->list = calloc(nv + 1, sizeof *L->list);
    L->changed = calloc((size_t)L->nq + 1, sizeof *L->changed);
    if (!L->vals || !L->in || !L->dirty || !L->snap || !L->run || !L->mark || !L->list ||
        !L->changed) {
        qd_errf(e, QD_EFAIL, "out of memory");
        qd_live_free(L);
        return NULL;
    }
    qd_live_invalidate(L);
    return L;
}

void qd_live_free(qd_live *L)
{
    if (!L)
        return;
    drop_cache(L);
    for (int i = 0; L->snap && i < L->nq; i++)
        free(L->snap[i].enc);
    qd_tensor_free(&L->x);
    free(L->vals);
    free(L->in);
    free(L->dirty);
    free(L->snap);
    free(L->run);
    free(L->mark);
    free(L->list);
    free(L->changed);
    free(L);
}

void qd_live_invalidate(qd_live *L)
{
    memset(L->dirty, 1, (size_t)L->nbatch * (size_t)L->g->nnodes);
    L->have_snap = 0;
}

int64_t qd_live_batches(const qd_live *L) { return L->nbatch; }
int64_t qd_live_batch_size(const qd_live *L) { return L->batch; }

const qd_tensor *qd_live_value(const qd_live *L, int64_t b, int v)
{
    if (L->state != LIVE_CACHED || b < 0 || b >= L->nbatch || v < 0 || v >= L->g->nvalues)
        return NULL;
    int p = L->g->values[v].producer;
    /* dirty sets are closed downstream: a clean producer read clean inputs */
    if (p < 0 || L->dirty[b * L->g->nnodes + p])
        return NULL;
    const qd_tensor *t = &L->vals[b * L->g->nvalues + v];
    return t->data ? t : NULL;
}

int qd_live_eval(qd_live *L, qd_qeval_result *res, qd_live_info *info, qd_progress_fn progress, void *user,
                 qd_err *e)
{
    qd_live_info own;
    if (!info)
        info = &own;
    memset(info, 0, sizeof *info);
    memset(res, 0, sizeof *res);
    res->labeled = L->ref->labeled;
    res->sqnr_db = INFINITY;
    if (qd_sim_check_encodings(L->s, e))
        return e->code;
    double t0 = qd_now_ms();
    const qd_graph *g = L->g;
    int nn = g->nnodes, rc = QD_OK;
    int n = changes(L, e);
    if (n < 0)
        return e->code;
    info->nchanged = n;
    info->nodes_full = L->nbatch * nn;
    info->full = 1;
    for (int64_t b = 0; b < L->nbatch; b++) {
        int64_t at = b * L->batch, nb = L->total - at < L->batch ? L->total - at : L->batch, count = nn;
        const qd_tensor *y;
        if (L->state == LIVE_PLAIN) {
            if ((rc = qd_data_batch(L->d, at, nb, &L->x, NULL, e)) || (rc = qd_sim_run(L->s, &L->x, 1, e)))
                break;
            y = qd_sim_output(L->s, 0);
        } else {
            if ((rc = run_batch(L, b, at, nb, &count, e)))
                break;
            y = &L->vals[b * g->nvalues + L->outv];
        }
        info->nodes_run += count;
        info->full &= count == nn;
        if (y->ndim != 2 || y->shape[0] != nb) {
            char sh[96];
            rc = qd_errf(e, QD_EINPUT, "model output '%s' is %s; evaluation needs logits N x classes",
                         g->values[L->outv].name, qd_shape_str(y->ndim, y->shape, sh, sizeof sh));
            break;
        }
        if ((rc = qd_qeval_add(res, L->ref, at, g, y, e)))
            break;
        if (L->state == LIVE_NEW)
            measure(L);
        if (progress && progress(user, res->images, L->total)) {
            res->stopped = info->stopped = 1;
            break;
        }
    }
    res->seconds = info->seconds = (qd_now_ms() - t0) / 1e3;
    info->cached = L->state != LIVE_PLAIN;
    info->cache_bytes = L->state == LIVE_PLAIN ? 0 : cache_bytes(L, L->nbatch);
    return rc;
}
