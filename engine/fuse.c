/* fuse.c - graph rewrites: BatchNormalization folded into the Conv/Gemm
 * before it (or forward into the one after it), and Relu/Clip after a Conv
 * run as its epilogue. */
#include "fuse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const qd_tensor *const_f32(const qd_graph *g, const qd_node *n, int i, int64_t numel)
{
    const qd_tensor *t = qd_node_const_input(g, n, i);
    return t && t->dtype == QD_F32 && qd_tensor_numel(t) == numel ? t : NULL;
}

/* Append a constant value holding a copy-free new tensor; returns its index. */
static int add_const(qd_graph *g, const char *name, qd_tensor *t)
{
    qd_value *nv = realloc(g->values, ((size_t)g->nvalues + 1) * sizeof *nv);
    if (!nv)
        return -1;
    g->values = nv;
    qd_value *v = &g->values[g->nvalues];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name)
        return -1;
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    memcpy(v->dims, t->shape, sizeof v->dims);
    v->init = t;
    v->producer = -1;
    return g->nvalues++;
}

/* Make n's output the output of `next` and mark `next` for removal. */
static void absorb(qd_graph *g, qd_node *n, qd_node *next, unsigned char *dead, int next_idx, int n_idx)
{
    int old = n->out[0], nv = next->out[0];
    n->out[0] = nv;
    g->values[nv].producer = n_idx;
    g->values[old].producer = -1; /* now unused */
    dead[next_idx] = 1;
}

/* A BatchNormalization in inference form with constant F32 parameters of
 * c channels: its scale a = gamma / sqrt(var + eps) and shift
 * beta - mean * a, in double. Returns 0 when b is not such a node. */
static int bn_affine(const qd_graph *g, const qd_node *b, int64_t c, double *a, double *sh)
{
    if (b->nin != 5 || b->nout < 1 || qd_attr_int(b, "spatial", 1) != 1 || qd_attr_int(b, "training_mode", 0))
        return 0;
    for (int j = 1; j < b->nout; j++)
        if (b->out[j] >= 0)
            return 0;
    const qd_tensor *gam = const_f32(g, b, 1, c), *bet = const_f32(g, b, 2, c), *mean = const_f32(g, b, 3, c),
                    *var = const_f32(g, b, 4, c);
    if (!gam || !bet || !mean || !var)
        return 0;
    double eps = qd_attr_float(b, "epsilon", 1e-5f);
    const float *G = gam->data, *Be = bet->data, *M = mean->data, *V = var->data;
    for (int64_t o = 0; o < c; o++) {
        a[o] = G[o] / sqrt((double)V[o] + eps);
        sh[o] = Be[o] - M[o] * a[o];
    }
    return 1;
}

/* Weight layout of a Conv or Gemm node as (channels along the output axis):
 * out-channel count, and for W element k its output channel. Gemm folds only
 * when alpha = beta = 1 and the weight is 2-D. Returns 0 when unsupported. */
static int weight_layout(const qd_graph *g, const qd_node *c, int64_t *co, int *gemm_t)
{
    const qd_tensor *w = qd_node_const_input(g, c, 1);
    if (!w || w->dtype != QD_F32)
        return 0;
    if (strcmp(c->op_type, "Conv") == 0) {
        if (w->ndim < 3)
            return 0;
        *co = w->shape[0];
        *gemm_t = -1;
        return 1;
    }
    if (strcmp(c->op_type, "Gemm") != 0 || w->ndim != 2 || qd_attr_float(c, "alpha", 1.0f) != 1.0f ||
        qd_attr_float(c, "beta", 1.0f) != 1.0f || qd_attr_int(c, "transA", 0))
        return 0;
    *gemm_t = (int)qd_attr_int(c, "transB", 0);
    *co = *gemm_t ? w->shape[0] : w->shape[1];
    return 1;
}

/* Give node c (Conv/Gemm) a zero bias input of co channels if it has none;
 * returns -1 (error in e), 0 when an existing bias is unusable, 1 when done. */
static int zero_bias(qd_graph *g, int ci, int64_t co, qd_err *e);

static int ensure_bias(qd_graph *g, int ci, int64_t co, const int *uses, qd_err *e)
{
    qd_node *c = &g->nodes[ci];
    if (qd_node_has_input(c, 2)) {
        const qd_tensor *bias = const_f32(g, c, 2, co);
        return bias && uses[c->in[2]] == 1 && bias->ndim == 1;
    }
    return zero_bias(g, ci, co, e);
}

/* Give node ci a new zero FP32 bias of co channels as input 2: 1, or -1
 * (out of memory, in e). */
static int zero_bias(qd_graph *g, int ci, int64_t co, qd_err *e)
{
    qd_node *c = &g->nodes[ci];
    qd_tensor *nb = calloc(1, sizeof *nb);
    if (!nb || qd_tensor_resize(nb, QD_F32, 1, &co, e)) {
        free(nb);
        qd_errf(e, QD_EFAIL, "out of memory");
        return -1;
    }
    memset(nb->data, 0, (size_t)co * sizeof(float));
    char name[600];
    snprintf(name, sizeof name, "%s.folded_bias", c->name);
    int *in = realloc(c->in, 3 * sizeof *in);
    int v = in ? add_const(g, name, nb) : -1;
    if (in)
        c->in = in;
    if (v < 0) {
        qd_tensor_free(nb);
        free(nb);
        qd_errf(e, QD_EFAIL, "out of memory");
        return -1;
    }
    c->in[2] = v;
    c->nin = 3;
    return 1;
}

int qd_graph_add_bias(qd_graph *g, int ni, qd_err *e)
{
    qd_node *n = &g->nodes[ni];
    if (qd_node_has_input(n, 2))
        return 0;
    const qd_tensor *w = qd_node_has_input(n, 1) ? g->values[n->in[1]].init : NULL;
    if (w && w->dtype != QD_F32)
        return 0;
    int64_t co = -1;
    if (w && !strcmp(n->op_type, "Conv") && w->ndim >= 3)
        co = w->shape[0];
    else if (w && !strcmp(n->op_type, "ConvTranspose") && w->ndim >= 3)
        co = w->shape[1] * qd_attr_int(n, "group", 1);
    else if (w && !strcmp(n->op_type, "Gemm") && w->ndim == 2 && !qd_attr_int(n, "transA", 0))
        co = qd_attr_int(n, "transB", 0) ? w->shape[0] : w->shape[1];
    return co > 0 ? zero_bias(g, ni, co, e) : 0;
}

/* The shared start of both folds: BN b's per-channel scale and shift over
 * nch channels into a fresh *ab (a = *ab, shift = *ab + nch), and a bias on
 * node ci (co channels). Returns 1 when the fold can go ahead (caller frees
 * *ab), 0 when it cannot, -1 on error (in e). */
static int bn_prepare(qd_graph *g, const qd_node *b, int ci, int64_t nch, int64_t co, const int *uses, double **ab,
                      qd_err *e)
{
    double *a = malloc((size_t)nch * 2 * sizeof *a);
    if (!a)
        return qd_errf(e, QD_EFAIL, "out of memory"), -1;
    int r = bn_affine(g, b, nch, a, a + nch) ? ensure_bias(g, ci, co, uses, e) : 0;
    if (r <= 0) {
        free(a);
        return r;
    }
    *ab = a;
    return 1;
}

/* Fold BN (node b) into the Conv/Gemm c before it: W' = W * a per output
 * channel, B' = B * a + shift (see bn_affine). */
static int fold_bn(qd_graph *g, int ci, int bi, const int *uses, unsigned char *dead, qd_err *e)
{
    qd_node *c = &g->nodes[ci], *b = &g->nodes[bi];
    int64_t co;
    int gt;
    if (!weight_layout(g, c, &co, &gt) || uses[c->in[1]] != 1 || co <= 0)
        return 0;
    const qd_tensor *w = qd_node_const_input(g, c, 1);
    int64_t per = qd_tensor_numel(w) / co;
    double *a;
    int r = bn_prepare(g, b, ci, co, co, uses, &a, e);
    if (r <= 0)
        return r;
    float *W = (float *)g->values[c->in[1]].init->data, *B = (float *)g->values[c->in[2]].init->data;
    for (int64_t k = 0; k < co * per; k++) {
        int64_t o = gt == 0 ? k % co : k / per; /* Gemm without transB: W is K x N */
        W[k] = (float)(W[k] * a[o]);
    }
    for (int64_t o = 0; o < co; o++)
        B[o] = (float)((double)B[o] * a[o] + a[co + o]);
    free(a);
    /* the BN's output statistics: mean beta, std |gamma| per channel */
    const qd_tensor *gam = const_f32(g, b, 1, co), *bet = const_f32(g, b, 2, co);
    float *st = malloc((size_t)co * 2 * sizeof *st);
    if (!st)
        return qd_errf(e, QD_EFAIL, "out of memory"), -1;
    for (int64_t o = 0; o < co; o++) {
        st[o] = ((const float *)bet->data)[o];
        st[co + o] = fabsf(((const float *)gam->data)[o]);
    }
    free(c->bn_mean);
    c->bn_mean = st;
    c->bn_nch = co;
    absorb(g, c, b, dead, bi, ci);
    return 1;
}

/* Fold BN (node b) forward into the Conv/Gemm c that is its sole consumer:
 * c(a * x + s) = c'(x) with W' = W * a per input channel and
 * B' = B + sum over W of W * s. Valid only where c sees no padding (padded
 * zeros would not be shifted). */
static int fold_bn_forward(qd_graph *g, int bi, int ci, const int *uses, unsigned char *dead, qd_err *e)
{
    qd_node *c = &g->nodes[ci], *b = &g->nodes[bi];
    int64_t co;
    int gt;
    if (c->in[0] != b->out[0] || !weight_layout(g, c, &co, &gt) || uses[c->in[1]] != 1 || co <= 0)
        return 0;
    const qd_tensor *w = qd_node_const_input(g, c, 1);
    int64_t ci_per, groups = 1, ksz = 1, cin;
    if (gt < 0) {
        const int64_t *pads;
        int np = qd_attr_ints(c, "pads", &pads);
        for (int j = 0; j < np; j++)
            if (pads[j])
                return 0;
        const char *ap = qd_attr_str(c, "auto_pad", "NOTSET");
        if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
            return 0;
        groups = qd_attr_int(c, "group", 1);
        ci_per = w->shape[1];
        for (int d = 2; d < w->ndim; d++)
            ksz *= w->shape[d];
        cin = ci_per * groups;
        if (groups <= 0 || co % groups)
            return 0;
    } else {
        cin = gt ? w->shape[1] : w->shape[0];
        ci_per = cin;
    }
    double *a;
    int r = bn_prepare(g, b, ci, cin, co, uses, &a, e);
    if (r <= 0)
        return r;
    float *W = (float *)g->values[c->in[1]].init->data, *B = (float *)g->values[c->in[2]].init->data;
    for (int64_t o = 0; o < co; o++) {
        double acc = 0;
        for (int64_t j = 0; j < ci_per; j++) {
            int64_t ch = gt < 0 ? (o / (co / groups)) * ci_per + j : j;
            for (int64_t t = 0; t < ksz; t++) {
                int64_t k = gt < 0 ? (o * ci_per + j) * ksz + t : gt ? o * cin + j : j * co + o;
                acc += (double)W[k] * a[cin + ch];
                W[k] = (float)(W[k] * a[ch]);
            }
        }
        B[o] = (float)((double)B[o] + acc);
    }
    free(a);
    c->in[0] = b->in[0];
    dead[bi] = 1;
    g->values[b->out[0]].producer = -1;
    return 1;
}

/* Fuse Relu, or Clip with constant bounds, after a Conv into its clamp. */
static int fuse_clip(qd_graph *g, int ci, int ri)
{
    qd_node *c = &g->nodes[ci], *r = &g->nodes[ri];
    float lo, hi;
    if (!qd_act_bounds(g, r, &lo, &hi))
        return 0;
    if (r->nin < 1 || r->nout != 1 || (c->fused_clip && (lo > c->clip_hi || hi < c->clip_lo)))
        return 0;
    if (c->fused_clip) { /* clamps compose by intersection */
        lo = lo > c->clip_lo ? lo : c->clip_lo;
        hi = hi < c->clip_hi ? hi : c->clip_hi;
    }
    c->fused_clip = 1;
    c->clip_lo = lo;
    c->clip_hi = hi;
    return 1;
}

int qd_graph_fuse_ex(qd_graph *g, unsigned flags, const unsigned char *keep, qd_fuse_stats *st, qd_err *e)
{
    qd_fuse_stats local = {0};
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    int nvalues0 = g->nvalues;
    unsigned char *dead = calloc((size_t)g->nnodes + 1, 1);
    int *uses = NULL;
    int rc = QD_OK;
    if (!dead) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
#define KEPT(v) (keep && (v) < nvalues0 && keep[v])
    /* Identity of a constant (PyTorch's exporter shares BN parameters that
     * way): readers read the constant itself, so the BN's inputs are constants */
    for (int i = 0; (flags & QD_FUSE_BN) && i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        if (strcmp(n->op_type, "Identity") != 0 || n->nin != 1 || n->nout != 1 || n->in[0] < 0 || n->out[0] < 0 ||
            !g->values[n->in[0]].init || KEPT(n->out[0]))
            continue;
        int out = n->out[0], is_output = 0;
        for (int k = 0; k < g->noutputs; k++)
            is_output |= g->outputs[k] == out;
        if (is_output)
            continue;
        for (int k = 0; k < g->nnodes; k++)
            for (int j = 0; j < g->nodes[k].nin; j++)
                if (g->nodes[k].in[j] == out)
                    g->nodes[k].in[j] = n->in[0];
        g->values[out].producer = -1;
        g->nodes[i].in[0] = -1; /* dead: reads nothing */
        dead[i] = 1;
        st->removed_identity++;
    }
    if (!(uses = qd_graph_count_uses(g))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < g->nnodes; i++) {
        qd_node *c = &g->nodes[i];
        int is_conv = strcmp(c->op_type, "Conv") == 0;
        if (dead[i] || c->nout != 1 || (!is_conv && strcmp(c->op_type, "Gemm") != 0))
            continue;
        for (;;) { /* Conv|Gemm [BN] [Relu|Clip]... */
            if (KEPT(c->out[0]))
                break;
            int k = qd_graph_sole_consumer(g, uses, c->out[0]);
            if (k < 0 || dead[k] || g->nodes[k].in[0] != c->out[0])
                break;
            const char *op = g->nodes[k].op_type;
            int done = 0;
            if (strcmp(op, "BatchNormalization") == 0 && !c->fused_clip && (flags & QD_FUSE_BN)) {
                done = fold_bn(g, i, k, uses, dead, e);
                if (done < 0) {
                    rc = e->code;
                    goto out;
                }
                st->bn_folded += done;
            } else if (is_conv && (flags & QD_FUSE_ACT) && (strcmp(op, "Relu") == 0 || strcmp(op, "Clip") == 0)) {
                if ((done = fuse_clip(g, i, k)) != 0) {
                    absorb(g, c, &g->nodes[k], dead, k, i);
                    st->act_fused++;
                }
            }
            if (!done)
                break;
            c = &g->nodes[i]; /* values may have moved, nodes have not */
        }
    }
    /* BatchNormalizations left (not after a Conv/Gemm): forward into the
     * Conv/Gemm that reads them, where that is valid */
    for (int i = 0; i < g->nnodes && (flags & QD_FUSE_BN); i++) {
        qd_node *b = &g->nodes[i];
        if (dead[i] || strcmp(b->op_type, "BatchNormalization") != 0 || b->nout < 1 || KEPT(b->out[0]))
            continue;
        int k = qd_graph_sole_consumer(g, uses, b->out[0]);
        if (k < 0 || dead[k] || (strcmp(g->nodes[k].op_type, "Conv") && strcmp(g->nodes[k].op_type, "Gemm")))
            continue;
        int done = fold_bn_forward(g, i, k, uses, dead, e);
        if (done < 0) {
            rc = e->code;
            goto out;
        }
        st->bn_folded += done;
    }
#undef KEPT
    /* drop dead nodes, renumber producers */
    int m = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (dead[i]) {
            qd_node_clear(&g->nodes[i]);
            continue;
        }
        g->nodes[m] = g->nodes[i];
        for (int j = 0; j < g->nodes[m].nout; j++)
            if (g->nodes[m].out[j] >= 0)
                g->values[g->nodes[m].out[j]].producer = m;
        m++;
    }
    st->removed = g->nnodes - m;
    g->nnodes = m;
out:
    free(dead);
    free(uses);
    return rc;
}

int qd_graph_fuse(qd_graph *g, qd_fuse_stats *st, qd_err *e)
{
    return qd_graph_fuse_ex(g, QD_FUSE_BN | QD_FUSE_ACT, NULL, st, e);
}
