/* exec.c - runs a graph node by node: infer shapes from the actual inputs,
 * size the output buffers (kept across runs), run the kernel. */
#include "exec.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct qd_exec {
    const qd_graph *g;
    qd_tensor *vals;      /* one per graph value; constants and inputs borrowed */
    unsigned char *have;  /* vals[v] holds a computed (or bound) tensor */
    qd_ctx ctx;
    qd_node_hook hook;
    void *hook_user;
    size_t max_bytes;     /* per output tensor, 0 = no limit */
    double *node_ms;      /* per node, last run */
    qd_tensor **inbuf, **outbuf; /* per-node pointer arrays, sized for the widest node */
};

qd_exec *qd_exec_new(const qd_graph *g, int nthreads, qd_err *e)
{
    qd_exec *x = calloc(1, sizeof *x);
    if (!x) {
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    x->g = g;
    int widest = 1;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].nin > widest)
            widest = g->nodes[i].nin;
        if (g->nodes[i].nout > widest)
            widest = g->nodes[i].nout;
    }
    x->vals = calloc((size_t)g->nvalues + 1, sizeof *x->vals);
    x->have = calloc((size_t)g->nvalues + 1, 1);
    x->inbuf = calloc((size_t)widest, sizeof *x->inbuf);
    x->node_ms = calloc((size_t)g->nnodes + 1, sizeof *x->node_ms);
    x->outbuf = calloc((size_t)widest, sizeof *x->outbuf);
    if (!x->vals || !x->have || !x->inbuf || !x->outbuf || !x->node_ms)
        goto oom;
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].init) {
            x->vals[v] = *g->values[v].init;
            x->vals[v].cap = 0; /* borrowed */
            x->have[v] = 1;
        }
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > 64)
        nthreads = 64;
    x->ctx.nthreads = nthreads;
    if (nthreads > 1 && !(x->ctx.pool = qd_pool_new(nthreads)))
        goto oom;
    return x;
oom:
    qd_errf(e, QD_EFAIL, "out of memory");
    qd_exec_free(x);
    return NULL;
}

void qd_exec_free(qd_exec *x)
{
    if (!x)
        return;
    for (int v = 0; x->vals && v < x->g->nvalues; v++)
        qd_tensor_free(&x->vals[v]);
    for (int i = 0; i < 64; i++)
        free(x->ctx.scratch[i]);
    qd_pool_free(x->ctx.pool);
    free(x->vals);
    free(x->have);
    free(x->inbuf);
    free(x->outbuf);
    free(x->node_ms);
    free(x);
}

void qd_exec_set_hook(qd_exec *x, qd_node_hook hook, void *user)
{
    x->hook = hook;
    x->hook_user = user;
}

void qd_exec_set_max_bytes(qd_exec *x, size_t max_bytes)
{
    x->max_bytes = max_bytes;
}

double qd_exec_node_ms(const qd_exec *x, int i)
{
    return i >= 0 && i < x->g->nnodes ? x->node_ms[i] : 0;
}

static int check_input(const qd_value *v, const qd_tensor *t, qd_err *e)
{
    char a[128], b[128];
    if (v->dtype != QD_UNDEF && t->dtype != v->dtype)
        return qd_errf(e, QD_EINPUT, "input '%s' must be %s, got %s", v->name,
                       qd_dtype_name(v->dtype), qd_dtype_name(t->dtype));
    if (v->ndim >= 0 && t->ndim != v->ndim)
        return qd_errf(e, QD_EINPUT, "input '%s' must have rank %d (%s), got shape %s", v->name, v->ndim,
                       qd_shape_str(v->ndim, v->dims, a, sizeof a), qd_shape_str(t->ndim, t->shape, b, sizeof b));
    for (int i = 0; v->ndim >= 0 && i < v->ndim; i++)
        if (v->dims[i] >= 0 && v->dims[i] != t->shape[i])
            return qd_errf(e, QD_EINPUT, "input '%s' must have shape %s (-1 = any), got %s", v->name,
                           qd_shape_str(v->ndim, v->dims, a, sizeof a), qd_shape_str(t->ndim, t->shape, b, sizeof b));
    return QD_OK;
}

/* Drop a borrowed view left in vals[v] so that resize allocates afresh. */
static void unborrow(qd_tensor *t)
{
    if (!t->cap)
        memset(t, 0, sizeof *t);
}

int qd_exec_run(qd_exec *x, const qd_tensor *inputs, int ninputs, qd_err *e)
{
    return qd_exec_run_some(x, inputs, ninputs, NULL, e);
}

int qd_exec_run_some(qd_exec *x, const qd_tensor *inputs, int ninputs, const unsigned char *run, qd_err *e)
{
    const qd_graph *g = x->g;
    if (ninputs != g->ninputs)
        return qd_errf(e, QD_EINPUT, "model takes %d input(s), got %d", g->ninputs, ninputs);
    for (int i = 0; i < ninputs; i++) {
        int v = g->inputs[i];
        if (check_input(&g->values[v], &inputs[i], e))
            return e->code;
        qd_tensor_free(&x->vals[v]);
        x->vals[v] = inputs[i];
        x->vals[v].cap = 0;
        x->have[v] = 1;
    }
    qd_blas_set_threads(x->ctx.nthreads);
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        if (run && !run[i])
            continue;
        for (int j = 0; j < n->nin; j++)
            x->inbuf[j] = n->in[j] >= 0 ? &x->vals[n->in[j]] : NULL;
        for (int j = 0; j < n->nout; j++) {
            qd_tensor *t = n->out[j] >= 0 ? &x->vals[n->out[j]] : NULL;
            if (t) {
                unborrow(t);
                t->limit = x->max_bytes;
            }
            x->outbuf[j] = t;
        }
        double t0 = qd_now_ms();
        int rc = n->op->infer(n, x->inbuf, x->outbuf, e);
        if (!rc)
            rc = n->op->run(n, x->inbuf, x->outbuf, &x->ctx);
        x->node_ms[i] = qd_now_ms() - t0;
        if (rc) {
            qd_errf(e, rc, "failed");
            qd_err_prefix(e, "node '%s' (%s)", n->name, n->op_type);
            return rc;
        }
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0)
                x->have[n->out[j]] = 1;
        if (x->hook && (rc = x->hook(x->hook_user, g, i, x->outbuf)) != 0)
            return qd_errf(e, rc, "stopped after node '%s'", n->name);
    }
    /* inputs were borrowed for this call only; one that is also a graph
     * output is kept as a copy */
    for (int i = 0; i < ninputs; i++) {
        int v = g->inputs[i], is_out = 0;
        for (int k = 0; k < g->noutputs; k++)
            is_out |= g->outputs[k] == v;
        memset(&x->vals[v], 0, sizeof(qd_tensor));
        x->have[v] = 0;
        if (is_out) {
            if (qd_tensor_copy(&x->vals[v], &inputs[i], e))
                return e->code;
            x->have[v] = 1;
        }
    }
    return QD_OK;
}

const qd_tensor *qd_exec_value(const qd_exec *x, int v)
{
    if (v < 0 || v >= x->g->nvalues || !x->have[v])
        return NULL;
    return &x->vals[v];
}

int qd_exec_swap(qd_exec *x, int v, qd_tensor *t, qd_err *e)
{
    if (v < 0 || v >= x->g->nvalues || x->g->values[v].init || x->g->values[v].producer < 0)
        return qd_errf(e, QD_EINPUT, "value %d is not a node output", v);
    qd_tensor tmp = x->vals[v];
    x->vals[v] = *t;
    *t = tmp;
    x->have[v] = x->vals[v].data != NULL;
    return QD_OK;
}

const qd_tensor *qd_exec_output(const qd_exec *x, int i)
{
    if (i < 0 || i >= x->g->noutputs)
        return NULL;
    return qd_exec_value(x, x->g->outputs[i]);
}
