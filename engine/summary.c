/* summary.c - per-layer shapes, parameter counts and MACs. */
#include "summary.h"

#include <stdlib.h>
#include <string.h>

static int64_t dim(const qd_tensor *t, int i)
{
    return t && i < t->ndim ? t->shape[i] : 0;
}

/* MACs of node n in x's last run, from the weight and output shapes (the
 * graph input itself is not kept after a run, so a ConvTranspose fed by
 * it counts 0). */
static int64_t node_macs(const qd_exec *x, const qd_node *n)
{
    const qd_tensor *a = n->nin > 0 ? qd_exec_value(x, n->in[0]) : NULL;
    const qd_tensor *w = n->nin > 1 ? qd_exec_value(x, n->in[1]) : NULL;
    const qd_tensor *y = n->nout > 0 ? qd_exec_value(x, n->out[0]) : NULL;
    if (!w || !y || !w->ndim)
        return 0;
    int64_t k = 1;
    if (strcmp(n->op_type, "Conv") == 0) {
        for (int i = 1; i < w->ndim; i++)
            k *= w->shape[i];
        return qd_tensor_numel(y) * k;
    }
    if (strcmp(n->op_type, "ConvTranspose") == 0 && a) {
        /* each input element scatters into co/group * prod(kernel) outputs */
        for (int i = 1; i < w->ndim; i++)
            k *= w->shape[i];
        return qd_tensor_numel(a) * k;
    }
    if (strcmp(n->op_type, "Gemm") == 0)
        return qd_tensor_numel(y) * (qd_attr_int(n, "transB", 0) ? dim(w, 1) : dim(w, 0));
    if (strcmp(n->op_type, "MatMul") == 0)
        return qd_tensor_numel(y) * (w->ndim == 1 ? w->shape[0] : w->shape[w->ndim - 2]);
    return 0;
}

int qd_summary_compute(const qd_exec *x, const qd_graph *g, qd_summary *s, qd_err *e)
{
    memset(s, 0, sizeof *s);
    s->rows = calloc((size_t)g->nnodes + 1, sizeof *s->rows);
    unsigned char *seen = calloc((size_t)g->nvalues + 1, 1);
    if (!s->rows || !seen) {
        free(seen);
        qd_summary_free(s);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        qd_layer *r = &s->rows[s->n++];
        r->node = i;
        const qd_tensor *y = n->nout > 0 ? qd_exec_value(x, n->out[0]) : NULL;
        if (y) {
            r->ndim = y->ndim;
            memcpy(r->shape, y->shape, sizeof r->shape);
        }
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            const qd_tensor *c = v >= 0 ? g->values[v].init : NULL;
            if (!c || c->dtype != QD_F32)
                continue;
            r->params += qd_tensor_numel(c);
            if (!seen[v]) {
                seen[v] = 1;
                s->params += qd_tensor_numel(c);
            }
        }
        r->macs = node_macs(x, n);
        s->macs += r->macs;
    }
    free(seen);
    return QD_OK;
}

void qd_summary_free(qd_summary *s)
{
    if (!s)
        return;
    free(s->rows);
    memset(s, 0, sizeof *s);
}

int qd_make_inputs(const qd_graph *g, int64_t batch, int ov_ndim, const int64_t *ov_shape,
                   qd_tensor *inputs, qd_err *e)
{
    for (int i = 0; i < g->ninputs; i++) {
        const qd_value *v = &g->values[g->inputs[i]];
        int64_t shape[QD_MAX_DIMS];
        int nd = v->ndim;
        if (i == 0 && ov_ndim > 0) {
            nd = ov_ndim;
            memcpy(shape, ov_shape, (size_t)nd * sizeof *shape);
        } else {
            if (nd < 0)
                return qd_errf(e, QD_EINPUT, "input '%s' has no declared shape; give one with --shape", v->name);
            for (int d = 0; d < nd; d++) {
                shape[d] = v->dims[d];
                if (shape[d] < 0 && d == 0)
                    shape[d] = batch;
                else if (shape[d] < 0)
                    return qd_errf(e, QD_EINPUT, "input '%s' has a dynamic dimension %d; give a shape with --shape", v->name, d);
            }
        }
        qd_dtype dt = v->dtype == QD_UNDEF ? QD_F32 : v->dtype;
        if (qd_tensor_resize(&inputs[i], dt, nd, shape, e))
            return e->code;
        memset(inputs[i].data, 0, qd_tensor_nbytes(&inputs[i]));
    }
    return QD_OK;
}
