/* qdq.c - quantization simulation -> QDQ ONNX graph (see qdq.h). */
#include "qdq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_save.h"

/* ---- the graph being built ---- */

typedef struct builder {
    const qd_graph *g;   /* the sim's graph */
    qd_graph *o;         /* the QDQ graph */
    int capv, capn;
    qd_err *e;
} builder;

static int oom(builder *B)
{
    return qd_errf(B->e, QD_EFAIL, "out of memory");
}

static int node_named(const qd_graph *g, const char *s)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, s) == 0)
            return 1;
    return 0;
}

/* malloc'd "<base><suffix>", or with "_2", "_3"... until no value or node
 * of the QDQ graph, and no node of the sim's graph (copied later), has it. */
static char *fresh(builder *B, const char *base, const char *suffix)
{
    size_t n = strlen(base) + strlen(suffix) + 24;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "%s%s", base, suffix);
    for (int k = 2; qd_graph_find_value(B->o, s) >= 0 || node_named(B->o, s) || node_named(B->g, s); k++)
        snprintf(s, n, "%s%s_%d", base, suffix, k);
    return s;
}

/* Append a value named name (taken over; NULL = out of memory) with
 * constant t (taken over, may be NULL); returns its index or -1. */
static int add_value(builder *B, char *name, qd_tensor *t)
{
    qd_graph *o = B->o;
    if (name && o->nvalues == B->capv) {
        int nc = 2 * B->capv + 16;
        qd_value *nv = realloc(o->values, (size_t)nc * sizeof *nv);
        if (nv) {
            o->values = nv;
            B->capv = nc;
        }
    }
    if (!name || o->nvalues == B->capv) {
        free(name);
        if (t) {
            qd_tensor_free(t);
            free(t);
        }
        oom(B);
        return -1;
    }
    qd_value *v = &o->values[o->nvalues];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->init = t;
    v->producer = -1;
    v->ndim = t ? t->ndim : -1;
    v->dtype = t ? t->dtype : QD_UNDEF;
    if (t)
        memcpy(v->dims, t->shape, sizeof v->dims);
    return o->nvalues++;
}

/* A new constant "<base><suffix>" of dtype and shape (n elements, rank 0 or
 * 1); its data pointer goes to *data. Returns the value index or -1. */
static int add_const(builder *B, const char *base, const char *suffix, qd_dtype dt, int ndim, int64_t n, void **data)
{
    qd_tensor *t = calloc(1, sizeof *t);
    if (!t || qd_tensor_resize(t, dt, ndim, &n, B->e)) {
        free(t);
        oom(B);
        return -1;
    }
    *data = t->data;
    return add_value(B, fresh(B, base, suffix), t);
}

/* Append a node of nin inputs and nout outputs (all -1); returns its index
 * or -1. name is taken over. */
static int add_node(builder *B, char *name, const char *op_type, int nin, int nout)
{
    qd_graph *o = B->o;
    if (o->nnodes == B->capn) {
        int nc = 2 * B->capn + 16;
        qd_node *nn = realloc(o->nodes, (size_t)nc * sizeof *nn);
        if (!nn) {
            free(name);
            oom(B);
            return -1;
        }
        o->nodes = nn;
        B->capn = nc;
    }
    qd_node *n = &o->nodes[o->nnodes];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->op_type = strdup(op_type);
    n->opset = o->opset;
    n->nin = nin;
    n->nout = nout;
    n->in = malloc((size_t)(nin + 1) * sizeof *n->in);
    n->out = malloc((size_t)(nout + 1) * sizeof *n->out);
    o->nnodes++; /* owned by o from here */
    if (!name || !n->op_type || !n->in || !n->out) {
        oom(B);
        return -1;
    }
    for (int j = 0; j < nin; j++)
        n->in[j] = -1;
    for (int j = 0; j < nout; j++)
        n->out[j] = -1;
    return o->nnodes - 1;
}

static int attr_copy(qd_attr *d, const qd_attr *a)
{
    memset(d, 0, sizeof *d);
    d->type = a->type;
    d->f = a->f;
    d->i = a->i;
    d->n = a->n;
    if (!(d->name = strdup(a->name)))
        return -1;
    if (a->s && !(d->s = strdup(a->s)))
        return -1;
    if (a->floats) {
        if (!(d->floats = malloc((size_t)(a->n + 1) * sizeof *d->floats)))
            return -1;
        memcpy(d->floats, a->floats, (size_t)a->n * sizeof *d->floats);
    }
    if (a->ints) {
        if (!(d->ints = malloc((size_t)(a->n + 1) * sizeof *d->ints)))
            return -1;
        memcpy(d->ints, a->ints, (size_t)a->n * sizeof *d->ints);
    }
    if (a->strings) {
        if (!(d->strings = calloc((size_t)a->n + 1, sizeof *d->strings)))
            return -1;
        for (int i = 0; i < a->n; i++)
            if (!(d->strings[i] = strdup(a->strings[i])))
                return -1;
    }
    if (a->t) {
        qd_err e = {0};
        if (!(d->t = calloc(1, sizeof *d->t)) || qd_tensor_copy(d->t, a->t, &e))
            return -1;
    }
    return 0;
}

/* Copy node n of the sim's graph (inputs and outputs as they are). */
static int copy_node(builder *B, const qd_node *n)
{
    int k = add_node(B, strdup(n->name), n->op_type, n->nin, n->nout);
    if (k < 0)
        return -1;
    qd_node *d = &B->o->nodes[k];
    memcpy(d->in, n->in, (size_t)n->nin * sizeof *d->in);
    memcpy(d->out, n->out, (size_t)n->nout * sizeof *d->out);
    d->opset = n->opset;
    d->fused_clip = n->fused_clip;
    d->clip_lo = n->clip_lo;
    d->clip_hi = n->clip_hi;
    if (n->nattr) {
        if (!(d->attrs = calloc((size_t)n->nattr, sizeof *d->attrs)))
            return oom(B), -1;
        for (int a = 0; a < n->nattr; a++) {
            d->nattr++;
            if (attr_copy(&d->attrs[a], &n->attrs[a]))
                return oom(B), -1;
        }
    }
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0)
            B->o->values[n->out[j]].producer = k;
    return k;
}

/* ---- quantizers ---- */


/* Grid integers of an encoding: [offset, offset + steps]. */
static int grid_steps(const qd_encoding *en)
{
    return (int)(nearbyint(en->max / en->scale) - en->offset);
}

static int is_signed_sym(const qd_encoding *en)
{
    return en->symmetric && (en->offset == -128 || en->offset == -127);
}

/* Input slot through which node n reads value v, or -1. */
static int slot_of(const qd_node *n, int v)
{
    for (int j = 0; j < n->nin; j++)
        if (n->in[j] == v)
            return j;
    return -1;
}

/* Is param quantizer q on a bias (input 2 of its node)? */
static int is_bias(const qd_graph *g, const qd_quantizer *q)
{
    return q->node >= 0 && q->node < g->nnodes && slot_of(&g->nodes[q->node], q->value) == 2;
}

static const char *kind_name(const qd_quantizer *q)
{
    return q->kind == QD_QK_INPUT ? "input" : q->kind == QD_QK_ACT ? "activation" : "weight";
}

/* What an enabled quantizer can be exported as; QD_EINPUT when it cannot. */
static int check_quantizer(const qd_graph *g, const qd_quantizer *q, qd_err *e)
{
    if (!q->nenc || !q->enc)
        return qd_errf(e, QD_EINPUT, "quantizer '%s' has no encodings (calibrate or import encodings first)", q->name);
    int bias = q->kind == QD_QK_PARAM && is_bias(g, q);
    for (int c = 0; c < q->nenc; c++) {
        const qd_encoding *en = &q->enc[c];
        if (en->bits != 8 && !bias)
            return qd_errf(e, QD_EINPUT,
                           "%s quantizer '%s' is %d-bit: QDQ export expresses 8-bit grids only (int8/uint8); "
                           "set it to 8 bits or disable it",
                           kind_name(q), q->name, en->bits);
        if (q->kind != QD_QK_PARAM && grid_steps(en) != 255)
            return qd_errf(e, QD_EINPUT,
                           "%s quantizer '%s' has a strict symmetric grid [%d, %d], which QuantizeLinear cannot "
                           "express (int8 is [-128, 127])",
                           kind_name(q), q->name, en->offset, en->offset + grid_steps(en));
    }
    if (g->opset < 10)
        return qd_errf(e, QD_EINPUT, "QDQ export needs opset >= 10 (QuantizeLinear); the model has opset %d",
                       g->opset);
    if (q->nenc > 1 && g->opset < 13)
        return qd_errf(e, QD_EINPUT,
                       "quantizer '%s' is per-channel, which DequantizeLinear supports from opset 13; the model has "
                       "opset %d",
                       q->name, g->opset);
    return QD_OK;
}

/* Q -> DQ on value v of the QDQ graph for encoding en; returns the
 * dequantized value's index or -1. */
static int add_qdq(builder *B, int v, const qd_encoding *en)
{
    int sgn = is_signed_sym(en);
    qd_dtype zdt = sgn ? QD_I8 : QD_U8;
    const char *base = B->g->values[v].name;
    void *sd, *zd;
    int sv = add_const(B, base, "_scale", QD_F32, 0, 1, &sd);
    if (sv < 0)
        return -1;
    *(float *)sd = (float)en->scale;
    int zv = add_const(B, base, "_zero_point", zdt, 0, 1, &zd);
    if (zv < 0)
        return -1;
    if (sgn)
        *(int8_t *)zd = 0;
    else
        *(uint8_t *)zd = (uint8_t)-en->offset;
    int qv = add_value(B, fresh(B, base, "_quantized"), NULL);
    int dv = qv < 0 ? -1 : add_value(B, fresh(B, base, "_dequantized"), NULL);
    if (dv < 0)
        return -1;
    B->o->values[qv].dtype = zdt;
    B->o->values[dv].dtype = QD_F32;
    int qn = add_node(B, fresh(B, base, "_QuantizeLinear"), "QuantizeLinear", 3, 1);
    if (qn < 0)
        return -1;
    qd_node *n = &B->o->nodes[qn];
    n->in[0] = v, n->in[1] = sv, n->in[2] = zv, n->out[0] = qv;
    B->o->values[qv].producer = qn;
    int dn = add_node(B, fresh(B, base, "_DequantizeLinear"), "DequantizeLinear", 3, 1);
    if (dn < 0)
        return -1;
    n = &B->o->nodes[dn];
    n->in[0] = qv, n->in[1] = sv, n->in[2] = zv, n->out[0] = dv;
    B->o->values[dv].producer = dn;
    return dv;
}

/* outer x nch x inner of tensor t along axis (axis < 0: one channel). */
static void layout(const qd_tensor *t, int axis, size_t *outer, size_t *nch, size_t *inner)
{
    *outer = *inner = *nch = 1;
    for (int d = 0; d < t->ndim; d++) {
        size_t k = (size_t)t->shape[d];
        if (axis < 0 || d > axis)
            *inner *= k;
        else if (d == axis)
            *nch = k;
        else
            *outer *= k;
    }
}

static int add_dq_const(builder *B, int v, qd_tensor *t, int sv, int zv, int axis);

/* The int tensor + DQ for param quantizer q; the DQ writes q's value. */
static int add_param(builder *B, const qd_quantizer *q, const qd_tensor *w)
{
    const qd_graph *g = B->g;
    int n = q->nenc, axis = n > 1 ? q->axis : -1;
    int all_sgn = 1, all8 = 1;
    for (int c = 0; c < n; c++) {
        all_sgn &= is_signed_sym(&q->enc[c]);
        all8 &= q->enc[c].bits == 8;
    }
    /* int8 zp 0; uint8 zp -offset (per channel); a bias of other bit-widths
     * int32 zp 0 holding the grid integers */
    qd_dtype dt = !all8 ? QD_I32 : all_sgn ? QD_I8 : QD_U8;
    const char *base = g->values[q->value].name;
    int rank = n > 1 ? 1 : 0;
    void *sd, *zd;
    int sv = add_const(B, base, "_scale", QD_F32, rank, n, &sd);
    int zv = sv < 0 ? -1 : add_const(B, base, "_zero_point", dt, rank, n, &zd);
    if (zv < 0)
        return -1;
    for (int c = 0; c < n; c++) {
        ((float *)sd)[c] = (float)q->enc[c].scale;
        if (dt == QD_U8)
            ((uint8_t *)zd)[c] = (uint8_t)-q->enc[c].offset;
        else if (dt == QD_I8)
            ((int8_t *)zd)[c] = 0;
        else
            ((int32_t *)zd)[c] = 0;
    }
    qd_tensor *t = calloc(1, sizeof *t);
    if (!t || qd_tensor_resize(t, dt, w->ndim, w->shape, B->e)) {
        free(t);
        return oom(B), -1;
    }
    size_t outer, nch, inner;
    layout(w, axis, &outer, &nch, &inner);
    const float *x = w->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < nch; c++) {
            const qd_encoding *en = &q->enc[n > 1 ? c : 0];
            size_t off = (o * nch + c) * inner;
            for (size_t i = 0; i < inner; i++) {
                int32_t k = qd_quant_int(x[off + i], en); /* q - offset, in [0, steps] */
                if (dt == QD_U8)
                    ((uint8_t *)t->data)[off + i] = (uint8_t)k;
                else if (dt == QD_I8)
                    ((int8_t *)t->data)[off + i] = (int8_t)(k + en->offset);
                else
                    ((int32_t *)t->data)[off + i] = k + en->offset;
            }
        }
    return add_dq_const(B, q->value, t, sv, zv, n > 1 ? axis : -1);
}

/* Integer constant t (taken over) -> DequantizeLinear(scale sv, zero point
 * zv, axis unless < 0) writing value v of the QDQ graph in place of its
 * FP32 initializer. Returns the node or -1. */
static int add_dq_const(builder *B, int v, qd_tensor *t, int sv, int zv, int axis)
{
    const char *base = B->g->values[v].name;
    int64_t shape[QD_MAX_DIMS];
    int ndim = t->ndim;
    memcpy(shape, t->shape, sizeof shape);
    int iv = add_value(B, fresh(B, base, "_quantized"), t);
    if (iv < 0)
        return -1;
    int dn = add_node(B, fresh(B, base, "_DequantizeLinear"), "DequantizeLinear", 3, 1);
    if (dn < 0)
        return -1;
    qd_node *d = &B->o->nodes[dn];
    d->in[0] = iv, d->in[1] = sv, d->in[2] = zv, d->out[0] = v;
    if (axis >= 0) {
        if (!(d->attrs = calloc(1, sizeof *d->attrs)) || !(d->attrs[0].name = strdup("axis")))
            return oom(B), -1;
        d->nattr = 1;
        d->attrs[0].type = QD_ATTR_INT;
        d->attrs[0].i = axis;
    }
    qd_value *o = &B->o->values[v];
    if (o->init) {
        qd_tensor_free(o->init);
        free(o->init);
        o->init = NULL;
    }
    o->producer = dn;
    o->dtype = QD_F32;
    o->ndim = ndim;
    memcpy(o->dims, shape, sizeof o->dims);
    return dn;
}

/* A bias the sim holds as int32 at scales b->scale: the integers as int32
 * initializer and DequantizeLinear (zero point 0; per channel along axis 0
 * when the weight is per channel). */
static int add_bias(builder *B, const qd_sim_bias *b, const qd_tensor *orig)
{
    const char *base = B->g->values[b->value].name;
    int rank = b->n > 1 ? 1 : 0;
    void *sd, *zd;
    int sv = add_const(B, base, "_scale", QD_F32, rank, b->n, &sd);
    int zv = sv < 0 ? -1 : add_const(B, base, "_zero_point", QD_I32, rank, b->n, &zd);
    if (zv < 0)
        return -1;
    memcpy(sd, b->scale, (size_t)b->n * sizeof(float));
    memset(zd, 0, (size_t)b->n * sizeof(int32_t));
    qd_tensor *t = calloc(1, sizeof *t);
    if (!t || qd_tensor_resize(t, QD_I32, orig->ndim, orig->shape, B->e)) {
        free(t);
        return oom(B), -1;
    }
    size_t nb = (size_t)qd_tensor_numel(orig);
    const float *x = orig->data;
    for (size_t k = 0; k < nb; k++)
        ((int32_t *)t->data)[k] = qd_quant_bias(x[k], b->scale[b->n > 1 ? k : 0]);
    return add_dq_const(B, b->value, t, sv, zv, rank ? 0 : -1);
}

/* ---- the whole graph ---- */

/* The QDQ graph's header and a copy of every value of g (constants as
 * views of g's tensors). */
static int copy_values(builder *B)
{
    const qd_graph *g = B->g;
    qd_graph *o = B->o;
    o->opset = g->opset;
    o->ir_version = g->ir_version;
    o->path = strdup(g->path ? g->path : "");
    o->producer = strdup(g->producer ? g->producer : "");
    o->inputs = malloc(((size_t)g->ninputs + 1) * sizeof *o->inputs);
    o->outputs = malloc(((size_t)g->noutputs + 1) * sizeof *o->outputs);
    if (!o->path || !o->producer || !o->inputs || !o->outputs)
        return oom(B);
    memcpy(o->inputs, g->inputs, (size_t)g->ninputs * sizeof *o->inputs);
    memcpy(o->outputs, g->outputs, (size_t)g->noutputs * sizeof *o->outputs);
    o->ninputs = g->ninputs;
    o->noutputs = g->noutputs;
    for (int v = 0; v < g->nvalues; v++) {
        const qd_value *src = &g->values[v];
        qd_tensor *t = NULL;
        if (src->init) {
            if (!(t = malloc(sizeof *t)))
                return oom(B);
            *t = *src->init;
            t->cap = 0; /* a view: the sim owns the data */
        }
        int k = add_value(B, strdup(src->name), t);
        if (k < 0)
            return B->e->code;
        qd_value *d = &o->values[k];
        d->dtype = src->dtype;
        d->ndim = src->ndim;
        memcpy(d->dims, src->dims, sizeof d->dims);
    }
    return QD_OK;
}

static int build(builder *B, qd_sim *s)
{
    const qd_graph *g = B->g;
    qd_graph *o = B->o;
    int nq = qd_sim_count(s);
    for (int i = 0; i < nq; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (qd_quantizer_active(q) && check_quantizer(g, q, B->e))
            return B->e->code;
    }
    if (copy_values(B))
        return B->e->code;
    int nv = g->nvalues;
    int *repl = malloc(((size_t)nv + 1) * sizeof *repl); /* value -> its dequantized value, or -1 */
    const qd_quantizer **qof = calloc((size_t)nv + 1, sizeof *qof);
    int rc = QD_OK;
    if (!repl || !qof) {
        rc = oom(B);
        goto out;
    }
    for (int v = 0; v < nv; v++)
        repl[v] = -1;
    for (int i = 0; i < nq; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (qd_quantizer_active(q))
            qof[q->value] = q;
    }
    /* weights first: they depend on nothing */
    for (int v = 0; v < nv; v++) {
        const qd_quantizer *q = qof[v];
        if (!q || q->kind != QD_QK_PARAM)
            continue;
        const qd_tensor *w = qd_sim_fp32(s, v);
        if (!w || w->dtype != QD_F32) {
            rc = qd_errf(B->e, QD_EFAIL, "internal: weight quantizer '%s' has no FP32 original", q->name);
            goto out;
        }
        if (add_param(B, q, w) < 0)
            goto fail;
    }
    for (int i = 0; i < qd_sim_bias_count(s); i++) {
        qd_sim_bias b;
        qd_sim_bias_get(s, i, &b);
        if (b.on && add_bias(B, &b, qd_sim_fp32(s, b.value)) < 0)
            goto fail;
    }
    for (int i = 0; i < g->ninputs; i++) {
        int v = g->inputs[i];
        if (qof[v] && qof[v]->kind != QD_QK_PARAM && (repl[v] = add_qdq(B, v, &qof[v]->enc[0])) < 0)
            goto fail;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        int k = copy_node(B, n);
        if (k < 0)
            goto fail;
        /* readers of a quantized value read its dequantized twin, made
         * right after the value's producer (nodes are in topological order) */
        qd_node *d = &o->nodes[k];
        for (int j = 0; j < d->nin; j++)
            if (d->in[j] >= 0 && repl[d->in[j]] >= 0)
                d->in[j] = repl[d->in[j]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v >= 0 && qof[v] && qof[v]->kind != QD_QK_PARAM && repl[v] < 0 &&
                (repl[v] = add_qdq(B, v, &qof[v]->enc[0])) < 0)
                goto fail;
        }
    }
    /* graph outputs keep their names: the DQ takes it, the float value is renamed */
    for (int i = 0; i < o->noutputs; i++) {
        int v = o->outputs[i], d = repl[v];
        if (d < 0)
            continue;
        char *fl = fresh(B, g->values[v].name, "_float");
        if (!fl) {
            rc = oom(B);
            goto out;
        }
        free(o->values[d].name);
        o->values[d].name = o->values[v].name;
        o->values[v].name = fl;
        o->values[d].dtype = g->values[v].dtype ? g->values[v].dtype : QD_F32;
        o->values[d].ndim = g->values[v].ndim;
        memcpy(o->values[d].dims, g->values[v].dims, sizeof o->values[d].dims);
        o->outputs[i] = d;
    }
    goto out;
fail:
    rc = B->e->code ? B->e->code : QD_EFAIL;
out:
    free(repl);
    free(qof);
    return rc;
}

qd_graph *qd_qdq_graph(qd_sim *s, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    qd_sim_apply(s); /* int32 biases as of the current encodings */
    builder B = {.g = qd_sim_graph(s), .e = e};
    B.o = calloc(1, sizeof *B.o);
    if (!B.o) {
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    if (build(&B, s)) {
        qd_graph_free(B.o);
        return NULL;
    }
    return B.o;
}

int qd_qdq_export(qd_sim *s, const char *path, qd_err *e)
{
    qd_graph *o = qd_qdq_graph(s, e);
    if (!o)
        return e && e->code ? e->code : QD_EFAIL;
    int rc = qd_graph_save(o, path, e);
    qd_graph_free(o);
    return rc;
}
