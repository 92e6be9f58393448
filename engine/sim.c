/* sim.c - quantizer placement, calibration and fake-quant inference. */
#include "sim.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"

enum { MODE_RUN, MODE_OBSERVE };

/* A Conv/ConvTranspose/Gemm bias that may be held as int32 (sim.h). */
typedef struct bias_link {
    int node, value, wq;   /* reader, bias value, the weight's quantizer */
    int on, n;             /* int32 now; scales in use */
    float *scale;          /* room for the weight's channel count */
} bias_link;

struct qd_sim {
    qd_graph *g;
    qd_exec *x;
    int nq, capq;
    qd_quantizer *q;
    int *qof;              /* value -> quantizer index, -1 */
    qd_tensor **orig;      /* value -> original FP32 weight of a param quantizer, or NULL */
    qd_tensor *inq;        /* one quantized copy per graph input */
    qd_tensor *inview;     /* what the executor is given: views of inputs or of inq */
    int mode;
    int weights_dirty;     /* encodings changed since the weights (and biases) were written */
    int some_dirty;        /* only the quantizers marked in qdirty changed (enable toggles) */
    unsigned char *qdirty; /* per quantizer */
    int float_bias;
    int fp32;              /* qd_sim_set_fp32: quantizers bypassed, FP32 weights */
    int nbias;
    bias_link *bias;
    int bn_folded, act_fused;
    const unsigned char *cap_want; /* qd_sim_capture */
    qd_tensor *cap_store;
};

/* Ops that only move or select data: their output is on the input's grid
 * (or on no grid at all for shape arithmetic), so they get no output
 * quantizer unless the config asks for one by op type. */
static const char *const data_movement[] = {
    "Identity", "Dropout",   "Reshape",   "Flatten",      "Transpose",    "Squeeze", "Unsqueeze",
    "MaxPool",  "Split",     "Slice",     "Gather",       "Expand",       "Tile",    "DepthToSpace",
    "SpaceToDepth", "Shape", "Size",      "ConstantOfShape", "Cast",      "Pad",
};

static int is_data_movement(const char *op)
{
    for (size_t i = 0; i < sizeof data_movement / sizeof *data_movement; i++)
        if (strcmp(op, data_movement[i]) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- dtypes */

/* Element type of every value, from declarations and op rules, so that only
 * float tensors get quantizers. */
static qd_dtype *infer_dtypes(const qd_graph *g)
{
    qd_dtype *t = calloc((size_t)g->nvalues + 1, sizeof *t);
    if (!t)
        return NULL;
    for (int v = 0; v < g->nvalues; v++)
        t[v] = g->values[v].init ? g->values[v].init->dtype : g->values[v].dtype;
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        const char *op = n->op_type;
        qd_dtype d = n->nin > 0 && n->in[0] >= 0 ? t[n->in[0]] : QD_F32;
        if (!strcmp(op, "Shape") || !strcmp(op, "Size") || !strcmp(op, "NonZero") || !strcmp(op, "ArgMax") ||
            !strcmp(op, "ArgMin"))
            d = QD_I64;
        else if (!strcmp(op, "Cast"))
            d = (qd_dtype)qd_attr_int(n, "to", QD_F32);
        else if (!strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") || !strcmp(op, "Not") ||
                 !strcmp(op, "And") || !strcmp(op, "Or") || !strcmp(op, "Xor") || !strcmp(op, "LessOrEqual") ||
                 !strcmp(op, "GreaterOrEqual") || !strcmp(op, "IsNaN") || !strcmp(op, "IsInf"))
            d = QD_BOOL;
        else if (!strcmp(op, "Where") && n->nin > 1 && n->in[1] >= 0)
            d = t[n->in[1]];
        else if (!strcmp(op, "ConstantOfShape")) {
            const qd_attr *a = qd_attr_find(n, "value");
            d = a && a->t ? a->t->dtype : QD_F32;
        }
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0 && g->values[n->out[j]].dtype == QD_UNDEF)
                t[n->out[j]] = d;
    }
    return t;
}

/* ------------------------------------------------------------ placement */

static int add_quantizer(qd_sim *s, qd_qkind kind, int v, int node, qd_err *e)
{
    if (s->qof[v] >= 0)
        return s->qof[v];
    if (s->nq == s->capq) {
        int cap = s->capq ? 2 * s->capq : 32;
        qd_quantizer *nq = realloc(s->q, (size_t)cap * sizeof *nq);
        if (!nq)
            return qd_errf(e, QD_EFAIL, "out of memory"), -1;
        s->q = nq;
        s->capq = cap;
    }
    qd_quantizer *q = &s->q[s->nq];
    memset(q, 0, sizeof *q);
    q->name = strdup(s->g->values[v].name);
    if (!q->name)
        return qd_errf(e, QD_EFAIL, "out of memory"), -1;
    q->kind = kind;
    q->value = v;
    q->node = node;
    q->axis = -1;
    q->nch = 1;
    s->qof[v] = s->nq;
    return s->nq++;
}

static int tri(int v, int def) { return v >= 0 ? v : def; }

/* A role's flag in one params list; -1 when the list does not set it. */
static int role_flag(const qd_qcfg_param *p, int n, const char *role, int sym)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].name, role)) {
            int v = sym ? p[i].is_symmetric : p[i].is_quantized;
            if (v >= 0)
                return v;
        }
    return -1;
}

/* Param role setting: op entry, then the "params" section, then defaults. */
static int param_flag(const qd_qcfg *c, const qd_qcfg_op *op, const char *role, int sym)
{
    int v = op ? role_flag(op->params, op->nparams, role, sym) : -1;
    if (v < 0)
        v = role_flag(c->params, c->nparams, role, sym);
    return v >= 0 ? v : sym ? c->params_symmetric : c->params_quantized;
}

/* Mark in inner[] the nodes whose output lies inside a supergroup chain
 * (every op of the chain but the last). */
static void mark_supergroups(const qd_graph *g, const qd_qcfg *c, const int *uses, unsigned char *inner)
{
    for (int k = 0; k < c->ngroups; k++) {
        const qd_qcfg_group *sg = &c->groups[k];
        if (sg->n < 2)
            continue;
        for (int i = 0; i < g->nnodes; i++) {
            int cur = i, ok = 1;
            for (int j = 0; j < sg->n && ok; j++) {
                const qd_node *n = &g->nodes[cur];
                if (strcmp(n->op_type, sg->ops[j]) != 0 || n->nout < 1) {
                    ok = 0;
                    break;
                }
                if (j + 1 < sg->n && (cur = qd_graph_sole_consumer(g, uses, n->out[0])) < 0)
                    ok = 0;
            }
            if (!ok)
                continue;
            cur = i;
            for (int j = 0; j + 1 < sg->n; j++) {
                inner[cur] = 1;
                cur = qd_graph_sole_consumer(g, uses, g->nodes[cur].out[0]);
            }
        }
    }
}

/* Output-channel axis of a param of node n (input slot), -1 when per-channel
 * makes no sense. */
static int param_axis(const qd_node *n, int slot, const qd_tensor *w)
{
    if (slot != 1 || w->ndim < 1)
        return -1;
    if (!strcmp(n->op_type, "Conv"))
        return w->ndim >= 3 ? 0 : -1;
    if (!strcmp(n->op_type, "ConvTranspose"))
        return w->ndim >= 3 && qd_attr_int(n, "group", 1) == 1 ? 1 : -1;
    if (!strcmp(n->op_type, "Gemm"))
        return w->ndim == 2 ? (qd_attr_int(n, "transB", 0) ? 0 : 1) : -1;
    if (!strcmp(n->op_type, "MatMul"))
        return w->ndim >= 2 ? w->ndim - 1 : -1;
    return -1;
}

static void default_settings(qd_quantizer *q, const qd_sim_opts *o, int bits, int sym, const qd_qcfg *c)
{
    q->set.enabled = 1;
    q->set.scheme.bits = bits;
    q->set.scheme.symmetric = sym;
    q->set.scheme.unsigned_symmetric = c->unsigned_symmetric;
    q->set.scheme.strict_symmetric = c->strict_symmetric;
    q->set.range = o->range;
    q->set.pct = o->pct > 0 ? o->pct : 99.99;
}

static int place(qd_sim *s, const qd_sim_opts *o, qd_err *e)
{
    qd_graph *g = s->g;
    const qd_qcfg *c = o->cfg;
    int rc = QD_OK;
    qd_dtype *dt = infer_dtypes(g);
    unsigned char *inner = calloc((size_t)g->nnodes + 1, 1);
    int *uses = qd_graph_count_uses(g);
    if (!dt || !inner || !uses) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    mark_supergroups(g, c, uses, inner);
    /* model inputs */
    for (int i = 0; i < g->ninputs && c->input_quantized; i++) {
        int v = g->inputs[i];
        if (dt[v] != QD_F32)
            continue;
        int k = add_quantizer(s, QD_QK_INPUT, v, -1, e);
        if (k < 0)
            goto fail;
        default_settings(&s->q[k], o, o->act_bits, c->ops_symmetric, c);
    }
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        const qd_qcfg_op *op = qd_qcfg_find_op(c, n->op_type);
        int act_sym = op ? tri(op->is_symmetric, c->ops_symmetric) : c->ops_symmetric;
        /* inputs of this op, when the config asks */
        int in_q = op ? tri(op->is_input_quantized, c->ops_input_quantized) : c->ops_input_quantized;
        for (int j = 0; in_q && j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0 || g->values[v].init || dt[v] != QD_F32)
                continue;
            int k = add_quantizer(s, g->values[v].producer < 0 ? QD_QK_INPUT : QD_QK_ACT, v,
                                  g->values[v].producer, e);
            if (k < 0)
                goto fail;
            if (!s->q[k].set.scheme.bits)
                default_settings(&s->q[k], o, o->act_bits, act_sym, c);
        }
        /* params */
        static const char *const roles[] = {"weight", "bias"};
        int has_params = !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvTranspose") ||
                         !strcmp(n->op_type, "Gemm") || !strcmp(n->op_type, "MatMul");
        for (int r = 0; has_params && r < 2; r++) {
            int slot = r + 1;
            if (!qd_node_has_input(n, slot))
                continue;
            int v = n->in[slot];
            const qd_tensor *w = g->values[v].init;
            if (!w || w->dtype != QD_F32 || !param_flag(c, op, roles[r], 0))
                continue;
            if (s->qof[v] >= 0)
                continue; /* shared weight: quantized once */
            int k = add_quantizer(s, QD_QK_PARAM, v, i, e);
            if (k < 0)
                goto fail;
            qd_quantizer *q = &s->q[k];
            default_settings(q, o, o->param_bits, param_flag(c, op, roles[r], 1), c);
            q->axis = param_axis(n, slot, w);
            q->nch = q->axis >= 0 ? w->shape[q->axis] : 1;
            int pc = op ? tri(op->per_channel, c->per_channel) : c->per_channel;
            if (o->per_channel >= 0)
                pc = o->per_channel;
            q->set.per_channel = pc && q->axis >= 0;
            s->orig[v] = calloc(1, sizeof(qd_tensor));
            if (!s->orig[v] || qd_tensor_copy(s->orig[v], w, e)) {
                rc = qd_errf(e, QD_EFAIL, "out of memory");
                goto out;
            }
        }
        /* outputs */
        int out_q = op && op->is_output_quantized >= 0 ? op->is_output_quantized
                                                        : !is_data_movement(n->op_type) && c->ops_output_quantized;
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0 || dt[v] != QD_F32)
                continue;
            int is_out = 0;
            for (int k = 0; k < g->noutputs; k++)
                is_out |= g->outputs[k] == v;
            if (!((out_q && !inner[i]) || (is_out && c->output_quantized)))
                continue;
            int k = add_quantizer(s, QD_QK_ACT, v, i, e);
            if (k < 0)
                goto fail;
            if (!s->q[k].set.scheme.bits)
                default_settings(&s->q[k], o, o->act_bits, act_sym, c);
        }
    }
    goto out;
fail:
    rc = e->code ? e->code : QD_EFAIL;
out:
    free(dt);
    free(inner);
    free(uses);
    return rc;
}

/* ------------------------------------------------------------ lifecycle */

static int hook(void *user, const qd_graph *g, int node, qd_tensor **outs);

/* Re-point quantizers at node indices after a rewrite renumbered nodes. */
static void renumber(qd_sim *s)
{
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (q->kind == QD_QK_ACT) {
            q->node = s->g->values[q->value].producer;
        } else if (q->kind == QD_QK_PARAM) {
            for (int n = 0; n < s->g->nnodes; n++)
                for (int j = 0; j < s->g->nodes[n].nin; j++)
                    if (s->g->nodes[n].in[j] == q->value) {
                        q->node = n;
                        n = s->g->nnodes;
                        break;
                    }
        }
    }
}

/* Link every bias that can be held as int32: FP32, unquantized, read once,
 * by a Conv/ConvTranspose/Gemm (alpha = beta = 1) whose weight is quantized. */
static int find_biases(qd_sim *s, qd_err *e)
{
    const qd_graph *g = s->g;
    int *uses = qd_graph_count_uses(g);
    s->bias = calloc((size_t)g->nnodes + 1, sizeof *s->bias);
    if (!uses || !s->bias) {
        free(uses);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    int rc = QD_OK;
    for (int i = 0; i < g->nnodes && !rc; i++) {
        const qd_node *n = &g->nodes[i];
        int gemm = !strcmp(n->op_type, "Gemm");
        if (!(gemm || !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvTranspose")) ||
            !qd_node_has_input(n, 1) || !qd_node_has_input(n, 2))
            continue;
        if (gemm && (qd_attr_float(n, "alpha", 1.0f) != 1.0f || qd_attr_float(n, "beta", 1.0f) != 1.0f))
            continue;
        int bv = n->in[2], wq = s->qof[n->in[1]];
        const qd_tensor *b = g->values[bv].init;
        if (!b || b->dtype != QD_F32 || s->qof[bv] >= 0 || uses[bv] != 1 || wq < 0 || s->q[wq].kind != QD_QK_PARAM)
            continue;
        bias_link *l = &s->bias[s->nbias];
        l->node = i, l->value = bv, l->wq = wq;
        l->scale = malloc((size_t)s->q[wq].nch * sizeof *l->scale);
        s->orig[bv] = calloc(1, sizeof(qd_tensor));
        if (!l->scale || !s->orig[bv] || qd_tensor_copy(s->orig[bv], b, e)) {
            free(l->scale);
            rc = qd_errf(e, QD_EFAIL, "out of memory");
            break;
        }
        s->nbias++;
    }
    free(uses);
    return rc;
}

qd_sim *qd_sim_new(qd_graph *g, const qd_sim_opts *o, qd_err *e)
{
    qd_sim *s = calloc(1, sizeof *s);
    if (!s) {
        qd_graph_free(g);
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    s->g = g;
    qd_sim_opts opts = *o;
    if (!opts.act_bits)
        opts.act_bits = 8;
    if (!opts.param_bits)
        opts.param_bits = 8;
    if (opts.nthreads < 1)
        opts.nthreads = 1;
    for (int b = 0; b < 2; b++) {
        int bits = b ? opts.param_bits : opts.act_bits;
        if ((bits < QD_BITS_MIN || bits > QD_BITS_MAX) && bits != QD_BITS_FLOAT) {
            qd_errf(e, QD_EINPUT, "%s bit-width %d is out of range (%d..%d, or %d for float)",
                    b ? "weight" : "activation", bits, QD_BITS_MIN, QD_BITS_MAX, QD_BITS_FLOAT);
            goto fail;
        }
    }
    if (!opts.cfg) {
        qd_errf(e, QD_EINPUT, "no quantsim config");
        goto fail;
    }
    qd_fuse_stats fs;
    if (qd_graph_fuse_ex(g, QD_FUSE_BN, NULL, &fs, e))
        goto fail;
    s->bn_folded = fs.bn_folded;
    /* every Conv/Gemm gets a bias, so that bias correction has one to correct */
    for (int i = 0; i < g->nnodes; i++)
        if (qd_graph_add_bias(g, i, e) < 0)
            goto fail;
    s->qof = malloc(((size_t)g->nvalues + 1) * sizeof *s->qof);
    s->orig = calloc((size_t)g->nvalues + 1, sizeof *s->orig);
    s->inq = calloc((size_t)g->ninputs + 1, sizeof *s->inq);
    s->inview = calloc((size_t)g->ninputs + 1, sizeof *s->inview);
    if (!s->qof || !s->orig || !s->inq || !s->inview) {
        qd_errf(e, QD_EFAIL, "out of memory");
        goto fail;
    }
    for (int v = 0; v < g->nvalues; v++)
        s->qof[v] = -1;
    if (place(s, &opts, e))
        goto fail;
    /* Relu/Clip into their Conv where no quantizer sits between them */
    unsigned char *keep = calloc((size_t)g->nvalues + 1, 1);
    if (!keep) {
        qd_errf(e, QD_EFAIL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nq; i++)
        keep[s->q[i].value] = 1;
    int nv0 = g->nvalues;
    int rc = qd_graph_fuse_ex(g, QD_FUSE_ACT, keep, &fs, e);
    free(keep);
    if (rc)
        goto fail;
    s->act_fused = fs.act_fused;
    if (g->nvalues != nv0) { /* fusion adds no values; the maps are sized for nv0 */
        qd_errf(e, QD_EFAIL, "internal: fusion added values");
        goto fail;
    }
    renumber(s);
    s->float_bias = opts.float_bias;
    if (!(s->qdirty = calloc((size_t)s->nq + 1, 1))) {
        qd_errf(e, QD_EFAIL, "out of memory");
        goto fail;
    }
    if (find_biases(s, e))
        goto fail;
    s->x = qd_exec_new(g, opts.nthreads, e);
    if (!s->x)
        goto fail;
    qd_exec_set_hook(s->x, hook, s);
    return s;
fail:
    qd_sim_free(s);
    return NULL;
}

void qd_sim_free(qd_sim *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nq; i++) {
        free(s->q[i].name);
        free(s->q[i].enc);
        qd_stats_free(s->q[i].stats);
    }
    free(s->q);
    for (int i = 0; i < s->nbias; i++)
        free(s->bias[i].scale);
    free(s->bias);
    if (s->orig)
        for (int v = 0; v < s->g->nvalues; v++)
            if (s->orig[v]) {
                qd_tensor_free(s->orig[v]);
                free(s->orig[v]);
            }
    free(s->orig);
    if (s->inq)
        for (int i = 0; i < s->g->ninputs; i++)
            qd_tensor_free(&s->inq[i]);
    free(s->inq);
    free(s->inview);
    free(s->qof);
    free(s->qdirty);
    qd_exec_free(s->x);
    qd_graph_free(s->g);
    free(s);
}

const qd_graph *qd_sim_graph(const qd_sim *s) { return s->g; }
int qd_sim_count(const qd_sim *s) { return s->nq; }
qd_quantizer *qd_sim_get(qd_sim *s, int i) { return i >= 0 && i < s->nq ? &s->q[i] : NULL; }
qd_exec *qd_sim_exec(qd_sim *s) { return s->x; }

int qd_sim_find(const qd_sim *s, const char *name)
{
    int v = qd_graph_find_value(s->g, name);
    return v >= 0 ? s->qof[v] : -1;
}

void qd_sim_get_counts(const qd_sim *s, qd_sim_counts *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < s->nq; i++) {
        const qd_quantizer *q = &s->q[i];
        *(q->kind == QD_QK_INPUT ? &c->inputs : q->kind == QD_QK_ACT ? &c->acts : &c->params) += 1;
        c->enabled += qd_quantizer_active(q);
    }
    for (int i = 0; i < s->nbias; i++)
        c->int32_biases += s->bias[i].on;
    c->bn_folded = s->bn_folded;
    c->act_fused = s->act_fused;
}

/* ------------------------------------------------------------ encodings */


static int want_channels(const qd_quantizer *q) { return q->set.per_channel && q->axis >= 0 ? (int)q->nch : 1; }

static int ensure_enc(qd_quantizer *q, int n, qd_err *e)
{
    qd_encoding *ne = realloc(q->enc, (size_t)n * sizeof *ne);
    if (!ne)
        return qd_errf(e, QD_EFAIL, "out of memory");
    q->enc = ne;
    return QD_OK;
}

/* outer x nch x inner of a param along its axis */
static void layout(const qd_tensor *t, int axis, size_t *outer, size_t *nch, size_t *inner)
{
    *outer = *inner = *nch = 1;
    for (int d = 0; d < t->ndim; d++) {
        size_t k = (size_t)t->shape[d];
        if (axis < 0 || d < axis)
            *outer *= k;
        else if (d == axis)
            *nch = k;
        else
            *inner *= k;
    }
    if (axis < 0) {
        *inner = *outer;
        *outer = 1;
    }
}

static int param_encodings(qd_sim *s, qd_quantizer *q, qd_err *e)
{
    int n = want_channels(q);
    if (ensure_enc(q, n, e))
        return e->code;
    if (q->set.fixed) {
        for (int c = 0; c < n; c++)
            q->enc[c] = qd_quant_encoding(q->set.fmin, q->set.fmax, &q->set.scheme);
    } else {
        const qd_tensor *w = s->orig[q->value];
        size_t outer, nch, inner;
        layout(w, n > 1 ? q->axis : -1, &outer, &nch, &inner);
        if (qd_calib_tensor(w->data, outer, nch, inner, q->set.range, q->set.pct, &q->set.scheme, q->enc, e))
            return qd_err_prefix(e, "%s", q->name), e->code;
    }
    q->nenc = n;
    return QD_OK;
}

static int act_encodings(qd_quantizer *q, qd_err *e)
{
    if (ensure_enc(q, 1, e))
        return e->code;
    if (q->set.fixed) {
        q->enc[0] = qd_quant_encoding(q->set.fmin, q->set.fmax, &q->set.scheme);
    } else {
        if (!q->stats || !qd_stats_count(q->stats)) {
            q->nenc = 0;
            return QD_OK; /* not calibrated yet */
        }
        if (q->set.range != QD_RANGE_MINMAX && !qd_stats_has_hist(q->stats))
            return qd_errf(e, QD_EINPUT, "%s: range %s needs a histogram: calibrate again", q->name,
                           qd_range_name(q->set.range));
        if (qd_stats_encoding(q->stats, q->set.range, q->set.pct, &q->set.scheme, &q->enc[0], e))
            return qd_err_prefix(e, "%s", q->name), e->code;
    }
    q->nenc = 1;
    return QD_OK;
}

/* Encoding of the quantizer whose grid value v is on: v's own, or, through
 * data-movement ops, that of what they read; NULL when v is not on an
 * enabled grid. */
static const qd_encoding *grid_of(const qd_sim *s, int v)
{
    const qd_graph *g = s->g;
    for (int hops = 0; v >= 0 && hops <= g->nnodes; hops++) {
        int qi = s->qof[v];
        if (qi >= 0) {
            const qd_quantizer *q = &s->q[qi];
            return q->kind != QD_QK_PARAM && qd_quantizer_active(q) && q->nenc ? &q->enc[0] : NULL;
        }
        int p = g->values[v].producer;
        if (p < 0 || g->nodes[p].nin < 1 || !is_data_movement(g->nodes[p].op_type))
            return NULL;
        v = g->nodes[p].in[0];
    }
    return NULL;
}

/* Biases as int32 at s_in * s_w[c] where both grids exist and int is set
 * (else the FP32 originals). */
static void apply_biases(qd_sim *s, int int_bias)
{
    for (int i = 0; i < s->nbias; i++) {
        bias_link *l = &s->bias[i];
        const qd_tensor *b = s->orig[l->value];
        float *dst = s->g->values[l->value].init->data;
        const qd_quantizer *w = &s->q[l->wq];
        size_t nb = (size_t)qd_tensor_numel(b);
        const qd_encoding *in = NULL;
        if (int_bias && !s->float_bias && qd_quantizer_active(w) && w->nenc && (w->nenc == 1 || (size_t)w->nenc == nb))
            in = grid_of(s, s->g->nodes[l->node].in[0]);
        if (in && in->bits > QD_INT32_BIAS_MAX_ACT_BITS)
            in = NULL;
        l->on = in != NULL;
        if (!l->on) {
            memcpy(dst, b->data, nb * sizeof *dst);
            continue;
        }
        l->n = w->nenc;
        for (int c = 0; c < l->n; c++)
            l->scale[c] = (float)in->scale * (float)w->enc[c].scale;
        const float *x = b->data;
        for (size_t k = 0; k < nb; k++) {
            float sc = l->scale[l->n > 1 ? k : 0];
            dst[k] = (float)qd_quant_bias(x[k], sc) * sc;
        }
    }
}

int qd_sim_bias_count(const qd_sim *s) { return s->nbias; }

int qd_sim_bias_find(const qd_sim *s, int node)
{
    for (int i = 0; i < s->nbias; i++)
        if (s->bias[i].node == node)
            return i;
    return -1;
}

qd_tensor *qd_sim_fp32(qd_sim *s, int v) { return v >= 0 && v < s->g->nvalues ? s->orig[v] : NULL; }

void qd_sim_params_changed(qd_sim *s) { s->weights_dirty = 1; }

void qd_sim_bias_get(const qd_sim *s, int i, qd_sim_bias *b)
{
    const bias_link *l = &s->bias[i];
    b->value = l->value;
    b->node = l->node;
    b->on = l->on;
    b->n = l->on ? l->n : 0;
    b->scale = l->on ? l->scale : NULL;
}

/* Write fake-quantized weights (or the originals for bypassed params), and
 * the biases that go with them: every weight, or after enable toggles only
 * those toggled. */
static void apply_weights(qd_sim *s, int int_bias)
{
    int all = s->weights_dirty || !s->some_dirty;
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (q->kind != QD_QK_PARAM || (!all && !s->qdirty[i]))
            continue;
        const qd_tensor *w = s->orig[q->value];
        qd_tensor *dst = s->g->values[q->value].init;
        if (!qd_quantizer_active(q) || !q->nenc || s->fp32) {
            memcpy(dst->data, w->data, qd_tensor_nbytes(w));
            continue;
        }
        size_t outer, nch, inner;
        layout(w, q->nenc > 1 ? q->axis : -1, &outer, &nch, &inner);
        if (q->nenc > 1)
            qd_fake_quant_channels(w->data, dst->data, outer, nch, inner, q->enc);
        else
            qd_fake_quant(w->data, dst->data, qd_tensor_numel(w), &q->enc[0]);
    }
    apply_biases(s, int_bias && !s->fp32);
    s->weights_dirty = 0;
    s->some_dirty = 0;
    memset(s->qdirty, 0, (size_t)s->nq);
}

int qd_sim_update(qd_sim *s, qd_err *e)
{
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (!qd_quantizer_active(q) || q->frozen)
            continue;
        if (q->kind == QD_QK_PARAM ? param_encodings(s, q, e) : act_encodings(q, e))
            return e->code;
    }
    apply_weights(s, 1);
    return QD_OK;
}

int qd_sim_set_encodings(qd_sim *s, int qi, const qd_encoding *enc, int n, qd_err *e)
{
    qd_quantizer *q = qd_sim_get(s, qi);
    if (!q)
        return qd_errf(e, QD_EINPUT, "no quantizer %d", qi);
    if (n != 1 && !(q->axis >= 0 && n == q->nch))
        return qd_errf(e, QD_EINPUT, "%s: %d encodings, expected 1%s", q->name, n,
                       q->axis >= 0 ? " or one per channel" : "");
    for (int c = 0; c < n; c++) {
        const char *why = qd_quant_encoding_invalid(&enc[c]);
        if (why)
            return qd_errf(e, QD_EINPUT, "%s: encoding %d: %s", q->name, c, why);
    }
    if (ensure_enc(q, n, e))
        return e->code;
    memcpy(q->enc, enc, (size_t)n * sizeof *enc);
    q->nenc = n;
    q->frozen = 1;
    q->set.enabled = 1;
    q->set.per_channel = n > 1;
    q->set.scheme.bits = enc[0].bits;
    q->set.scheme.symmetric = enc[0].symmetric;
    s->weights_dirty = 1; /* weights, or the int32 biases behind an activation */
    return QD_OK;
}

/* ------------------------------------------------------------ overrides */

/* Quantizer groups an override may name, as masks of kinds. */
static const struct {
    const char *name;
    unsigned kinds; /* 1 << qd_qkind */
} groups[] = {
    {"@all", 1u << QD_QK_INPUT | 1u << QD_QK_ACT | 1u << QD_QK_PARAM},
    {"@weights", 1u << QD_QK_PARAM},
    {"@params", 1u << QD_QK_PARAM},
    {"@activations", 1u << QD_QK_INPUT | 1u << QD_QK_ACT},
    {"@acts", 1u << QD_QK_INPUT | 1u << QD_QK_ACT},
    {"@inputs", 1u << QD_QK_INPUT},
};

/* Kinds group pat names, 0 when pat is not a group. */
static unsigned group_kinds(const char *pat)
{
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++)
        if (!strcmp(pat, groups[i].name))
            return groups[i].kinds;
    return 0;
}

static int matches(const qd_quantizer *q, const char *pat, unsigned kinds)
{
    if (kinds)
        return (kinds >> q->kind) & 1u;
    return strcmp(q->name, pat) == 0 || fnmatch(pat, q->name, 0) == 0;
}

int qd_sim_override(qd_sim *s, const char *pat, const qd_override *ov, int *matched, qd_err *e)
{
    unsigned kinds = group_kinds(pat);
    if (pat[0] == '@' && !kinds)
        return qd_errf(e, QD_EINPUT, "unknown quantizer group '%s' (@all, @weights, @activations, @inputs)", pat);
    if ((ov->set & QD_OV_BITS) && (ov->bits < QD_BITS_MIN || ov->bits > QD_BITS_MAX) && ov->bits != QD_BITS_FLOAT)
        return qd_errf(e, QD_EINPUT, "bit-width %d out of range (%d..%d, or 32 for float)", ov->bits, QD_BITS_MIN,
                       QD_BITS_MAX);
    if ((ov->set & QD_OV_FIXED) && !(ov->fmin <= ov->fmax))
        return qd_errf(e, QD_EINPUT, "fixed range [%g, %g] is empty", ov->fmin, ov->fmax);
    int n = 0;
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (!matches(q, pat, kinds))
            continue;
        n++;
        if (ov->set & QD_OV_ENABLED)
            q->set.enabled = ov->enabled;
        if (ov->set & QD_OV_BITS)
            q->set.scheme.bits = ov->bits;
        if (ov->set & QD_OV_SYMMETRIC)
            q->set.scheme.symmetric = ov->symmetric;
        if (ov->set & QD_OV_STRICT)
            q->set.scheme.strict_symmetric = ov->strict;
        if (ov->set & QD_OV_UNSIGNED)
            q->set.scheme.unsigned_symmetric = ov->unsigned_sym;
        if (ov->set & QD_OV_PER_CHANNEL)
            q->set.per_channel = ov->per_channel && q->axis >= 0;
        if (ov->set & QD_OV_RANGE) {
            q->set.range = ov->range;
            q->set.pct = ov->pct;
            q->set.fixed = 0;
        }
        if (ov->set & QD_OV_FIXED) {
            q->set.fixed = 1;
            q->set.fmin = ov->fmin;
            q->set.fmax = ov->fmax;
        }
        if (ov->set & ~(unsigned)QD_OV_ENABLED) { /* the encoding must follow the new settings */
            q->frozen = 0;
            q->nenc = 0;
            s->weights_dirty = 1;
        }
        /* its weight, or the int32 biases behind an activation */
        s->qdirty[i] = 1;
        s->some_dirty = 1;
    }
    if (matched)
        *matched = n;
    if (!n)
        return qd_errf(e, QD_EINPUT, "no quantizer matches '%s'", pat);
    return QD_OK;
}

void qd_sim_set_enabled(qd_sim *s, int qi, int on)
{
    if (qi < 0 || qi >= s->nq || s->q[qi].set.enabled == !!on)
        return;
    s->q[qi].set.enabled = !!on;
    s->qdirty[qi] = 1;
    s->some_dirty = 1;
}

/* ------------------------------------------------------------ running */

/* Whether a run fake-quantizes t with q: q active with encodings, t float,
 * the sim not in FP32 mode. */
static int fakes(const qd_sim *s, const qd_quantizer *q, const qd_tensor *t)
{
    return qd_quantizer_active(q) && q->nenc && t->dtype == QD_F32 && !s->fp32;
}

/* In place on t (owned by the executor; a borrowed view is copied first so
 * that the tensor it views is left alone). */
static int quantize_tensor(qd_sim *s, qd_quantizer *q, qd_tensor *t)
{
    if (s->mode == MODE_OBSERVE) {
        if (qd_quantizer_active(q) && t->dtype == QD_F32 && !s->fp32 && q->stats)
            qd_stats_add(q->stats, t->data, (size_t)qd_tensor_numel(t));
        return 0;
    }
    if (!fakes(s, q, t))
        return 0;
    size_t n = (size_t)qd_tensor_numel(t);
    if (!t->cap && t->data) { /* a view: quantize into a buffer of our own, in one pass */
        qd_tensor own = {0};
        qd_err e = {0};
        if (qd_tensor_resize(&own, QD_F32, t->ndim, t->shape, &e))
            return QD_EFAIL;
        qd_fake_quant(t->data, own.data, n, &q->enc[0]);
        *t = own;
        return 0;
    }
    qd_fake_quant(t->data, t->data, n, &q->enc[0]);
    return 0;
}

static int hook(void *user, const qd_graph *g, int node, qd_tensor **outs)
{
    qd_sim *s = user;
    const qd_node *n = &g->nodes[node];
    for (int j = 0; j < n->nout; j++) {
        int v = n->out[j];
        if (v < 0 || s->qof[v] < 0 || !outs[j])
            continue;
        if (s->cap_store && s->cap_want[v]) {
            qd_err e = {0};
            if (qd_tensor_copy(&s->cap_store[v], outs[j], &e))
                return e.code;
        }
        int rc = quantize_tensor(s, &s->q[s->qof[v]], outs[j]);
        if (rc)
            return rc;
    }
    return 0;
}

static int run(qd_sim *s, const qd_tensor *inputs, int ninputs, const unsigned char *nodes, qd_err *e)
{
    const qd_graph *g = s->g;
    if (ninputs != g->ninputs)
        return qd_errf(e, QD_EINPUT, "model takes %d input(s), got %d", g->ninputs, ninputs);
    for (int i = 0; i < ninputs; i++) {
        s->inview[i] = inputs[i];
        s->inview[i].cap = 0;
        int qi = s->qof[g->inputs[i]];
        if (qi < 0 || !qd_quantizer_active(&s->q[qi]) || inputs[i].dtype != QD_F32 || s->fp32)
            continue;
        size_t n = (size_t)qd_tensor_numel(&inputs[i]);
        if (s->mode == MODE_OBSERVE) {
            if (s->q[qi].stats)
                qd_stats_add(s->q[qi].stats, inputs[i].data, n);
            continue;
        }
        qd_tensor *t = &s->inq[i];
        if (qd_tensor_resize(t, QD_F32, inputs[i].ndim, inputs[i].shape, e))
            return e->code;
        qd_fake_quant(inputs[i].data, t->data, n, &s->q[qi].enc[0]);
        s->inview[i] = *t;
        s->inview[i].cap = 0;
    }
    return qd_exec_run_some(s->x, s->inview, ninputs, nodes, e);
}

int qd_sim_check_encodings(const qd_sim *s, qd_err *e)
{
    for (int i = 0; i < s->nq; i++)
        if (qd_quantizer_active(&s->q[i]) && !s->q[i].nenc)
            return qd_errf(e, QD_EINPUT, "quantizer '%s' has no encodings (calibrate or import encodings first)",
                           s->q[i].name);
    return QD_OK;
}

int qd_sim_run(qd_sim *s, const qd_tensor *inputs, int ninputs, qd_err *e)
{
    if (!s->fp32 && qd_sim_check_encodings(s, e))
        return e->code;
    qd_sim_apply(s);
    s->mode = MODE_RUN;
    return run(s, inputs, ninputs, NULL, e);
}

int qd_sim_run_some(qd_sim *s, const qd_tensor *inputs, int ninputs, const unsigned char *nodes, qd_err *e)
{
    if (!s->fp32 && qd_sim_check_encodings(s, e))
        return e->code;
    qd_sim_apply(s);
    s->mode = MODE_RUN;
    return run(s, inputs, ninputs, nodes, e);
}

const qd_tensor *qd_sim_output(const qd_sim *s, int i) { return qd_exec_output(s->x, i); }

void qd_sim_capture(qd_sim *s, const unsigned char *want, qd_tensor *store)
{
    s->cap_want = store ? want : NULL;
    s->cap_store = want ? store : NULL;
}

int qd_sim_quantize(qd_sim *s, int qi, const qd_tensor *src, qd_tensor *dst, qd_err *e)
{
    const qd_quantizer *q = qd_sim_get(s, qi);
    if (!q || q->kind == QD_QK_PARAM)
        return qd_errf(e, QD_EINPUT, "no activation or input quantizer %d", qi);
    if (qd_tensor_resize(dst, src->dtype, src->ndim, src->shape, e))
        return e->code;
    if (fakes(s, q, src))
        qd_fake_quant(src->data, dst->data, (size_t)qd_tensor_numel(src), &q->enc[0]);
    else
        memcpy(dst->data, src->data, qd_tensor_nbytes(src));
    return QD_OK;
}

void qd_sim_set_fp32(qd_sim *s, int on)
{
    if (!!on != s->fp32) {
        s->fp32 = !!on;
        s->weights_dirty = 1;
    }
}

void qd_sim_apply(qd_sim *s)
{
    if (s->weights_dirty || s->some_dirty)
        apply_weights(s, 1);
}

int qd_sim_calibrate(qd_sim *s, qd_dataset *d, int64_t batch, qd_progress_fn progress, void *user, qd_err *e)
{
    if (batch < 1)
        batch = 32;
    if (s->g->ninputs != 1)
        return qd_errf(e, QD_EINPUT, "calibration needs a model with one input, this one has %d", s->g->ninputs);
    /* params first: activations are observed behind quantized weights (and
     * FP32 biases: their int32 grid needs the activation encodings) */
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (q->kind == QD_QK_PARAM && qd_quantizer_active(q) && !q->frozen && param_encodings(s, q, e))
            return e->code;
    }
    apply_weights(s, 0);
    int need = 0;
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (q->kind == QD_QK_PARAM || !qd_quantizer_active(q) || q->frozen || q->set.fixed)
            continue;
        int hist = q->set.range != QD_RANGE_MINMAX;
        if (q->stats && qd_stats_has_hist(q->stats) != hist) {
            qd_stats_free(q->stats);
            q->stats = NULL;
        }
        if (!q->stats && !(q->stats = qd_stats_new(hist)))
            return qd_errf(e, QD_EFAIL, "out of memory");
        qd_stats_reset(q->stats);
        need = 1;
    }
    int64_t total = qd_data_count(d);
    qd_tensor xb = {0};
    int rc = QD_OK;
    s->mode = MODE_OBSERVE;
    for (int64_t at = 0; need && at < total; at += batch) {
        int64_t nb = total - at < batch ? total - at : batch;
        if ((rc = qd_data_batch(d, at, nb, &xb, NULL, e)) || (rc = run(s, &xb, 1, NULL, e)))
            break;
        if (progress && progress(user, at + nb, total)) {
            rc = qd_errf(e, QD_EINPUT, "calibration stopped");
            break;
        }
    }
    s->mode = MODE_RUN;
    qd_tensor_free(&xb);
    if (rc)
        return rc;
    for (int i = 0; i < s->nq; i++) {
        qd_quantizer *q = &s->q[i];
        if (q->kind != QD_QK_PARAM && qd_quantizer_active(q) && !q->frozen && act_encodings(q, e))
            return e->code;
    }
    apply_biases(s, 1);
    return QD_OK;
}
