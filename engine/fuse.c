/* fuse.c - graph rewrites for fast FP32 execution: BatchNormalization folded
 * into the Conv before it, and Relu/Clip after a Conv run as its epilogue. */
#include "fuse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* uses[v]: how many node inputs and graph outputs read value v */
static int *count_uses(const qd_graph *g)
{
    int *uses = calloc((size_t)g->nvalues + 1, sizeof *uses);
    if (!uses)
        return NULL;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            if (g->nodes[i].in[j] >= 0)
                uses[g->nodes[i].in[j]]++;
    for (int i = 0; i < g->noutputs; i++)
        uses[g->outputs[i]]++;
    return uses;
}

/* The single consumer of value v, or -1 when it has none or several or is a
 * graph output. */
static int sole_consumer(const qd_graph *g, const int *uses, int v)
{
    if (uses[v] != 1)
        return -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            if (g->nodes[i].in[j] == v)
                return i;
    return -1; /* a graph output */
}

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

/* Fold BN (node b) into Conv (node c): W' = W * a, B' = (B - mean) * a + beta
 * with a = gamma / sqrt(var + eps), per output channel, computed in double. */
static int fold_bn(qd_graph *g, int ci, int bi, const int *uses, unsigned char *dead, qd_err *e)
{
    qd_node *c = &g->nodes[ci], *b = &g->nodes[bi];
    const qd_tensor *w = qd_node_const_input(g, c, 1);
    if (!w || w->dtype != QD_F32 || w->ndim < 3 || uses[c->in[1]] != 1)
        return 0;
    int64_t co = w->shape[0], per = qd_tensor_numel(w) / (co ? co : 1);
    int has_b = qd_node_has_input(c, 2);
    const qd_tensor *bias = has_b ? const_f32(g, c, 2, co) : NULL;
    if (has_b && (!bias || uses[c->in[2]] != 1))
        return 0;
    if (b->nin != 5 || b->nout < 1 || qd_attr_int(b, "spatial", 1) != 1 || qd_attr_int(b, "training_mode", 0))
        return 0;
    for (int j = 1; j < b->nout; j++)
        if (b->out[j] >= 0)
            return 0;
    const qd_tensor *gam = const_f32(g, b, 1, co), *bet = const_f32(g, b, 2, co), *mean = const_f32(g, b, 3, co),
                    *var = const_f32(g, b, 4, co);
    if (!gam || !bet || !mean || !var)
        return 0;
    double eps = qd_attr_float(b, "epsilon", 1e-5f);
    qd_tensor *nb = NULL;
    if (!has_b) {
        nb = calloc(1, sizeof *nb);
        if (!nb || qd_tensor_resize(nb, QD_F32, 1, &co, e)) {
            free(nb);
            return qd_errf(e, QD_EFAIL, "out of memory");
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
            return qd_errf(e, QD_EFAIL, "out of memory");
        }
        c->in[2] = v;
        c->nin = 3;
        bias = nb;
    }
    float *W = (float *)g->values[c->in[1]].init->data, *B = (float *)g->values[c->in[2]].init->data;
    const float *G = gam->data, *Be = bet->data, *M = mean->data, *V = var->data;
    for (int64_t o = 0; o < co; o++) {
        double a = G[o] / sqrt((double)V[o] + eps);
        for (int64_t k = 0; k < per; k++)
            W[o * per + k] = (float)(W[o * per + k] * a);
        B[o] = (float)(((double)B[o] - M[o]) * a + Be[o]);
    }
    absorb(g, c, b, dead, bi, ci);
    return 1;
}

/* Fuse Relu, or Clip with constant bounds, after a Conv into its clamp. */
static int fuse_clip(qd_graph *g, int ci, int ri)
{
    qd_node *c = &g->nodes[ci], *r = &g->nodes[ri];
    float lo = -INFINITY, hi = INFINITY;
    if (strcmp(r->op_type, "Relu") == 0) {
        lo = 0.0f;
    } else if (r->opset < 11) {
        lo = qd_attr_float(r, "min", -INFINITY);
        hi = qd_attr_float(r, "max", INFINITY);
    } else {
        for (int j = 1; j < 3 && j < r->nin; j++) {
            if (!qd_node_has_input(r, j))
                continue;
            const qd_tensor *t = qd_node_const_input(g, r, j);
            if (!t || t->dtype != QD_F32 || qd_tensor_numel(t) != 1)
                return 0;
            *(j == 1 ? &lo : &hi) = *(const float *)t->data;
        }
    }
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

int qd_graph_fuse(qd_graph *g, qd_fuse_stats *st, qd_err *e)
{
    qd_fuse_stats local = {0};
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    unsigned char *dead = calloc((size_t)g->nnodes + 1, 1);
    int *uses = count_uses(g);
    int rc = QD_OK;
    if (!dead || !uses) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < g->nnodes; i++) {
        qd_node *c = &g->nodes[i];
        if (dead[i] || strcmp(c->op_type, "Conv") != 0 || c->nout != 1)
            continue;
        for (;;) { /* Conv [BN] [Relu|Clip]... */
            int k = sole_consumer(g, uses, c->out[0]);
            if (k < 0 || dead[k] || g->nodes[k].in[0] != c->out[0])
                break;
            const char *op = g->nodes[k].op_type;
            int done = 0;
            if (strcmp(op, "BatchNormalization") == 0 && !c->fused_clip) {
                done = fold_bn(g, i, k, uses, dead, e);
                if (done < 0 || e->code) {
                    rc = e->code;
                    goto out;
                }
                st->bn_folded += done;
            } else if (strcmp(op, "Relu") == 0 || strcmp(op, "Clip") == 0) {
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
