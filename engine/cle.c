/* cle.c - cross-layer equalization: chains of Conv/Gemm layers through
 * positively homogeneous activations, per-channel scales that equalize their
 * weight ranges, and high-bias absorption (see cle.h). */
#include "cle.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "ops.h"

#define CONVERGED 1e-5   /* a pass whose largest |ln s| is below this ends the loop */
#define NEGLIGIBLE 1e-6  /* |ln s| below this: the channel is left alone */
#define DEFAULT_ITER 100

/* What the activation between two layers allows. */
enum { ACT_NONE, ACT_RELU, ACT_OTHER };

/* A Conv or Gemm with a constant FP32 weight W, addressed by output channel
 * o, input slot j (0 .. ci_per) and kernel tap t (0 .. ksz); see w_at, w_ch. */
typedef struct layer {
    int node;
    int w;                  /* weight value */
    int64_t co, cin;        /* output and input channels */
    int64_t ci_per, ksz;    /* input channels per group, taps per kernel */
    int64_t groups;
    int gemm_t;             /* -1 Conv W (co, ci_per, k...); Gemm transB: 1 W (co, cin), 0 W (cin, co) */
    int dw;                 /* depthwise Conv */
    int usable;             /* can be equalized at all; else why says why not */
    int prev, next;         /* linked layers (indices), -1 for none */
    int act;                /* ACT_* between this layer and next */
    int clip6;              /* Clip(0, 6) node between this layer and next, -1 for none */
    int fused6;             /* this layer's own fused clamp is [0, 6] */
    char why[400];          /* why no next layer, or why not usable */
} layer;

/* Index in W of output channel o, input slot j, tap t. */
static inline int64_t w_at(const layer *L, int64_t o, int64_t j, int64_t t)
{
    if (L->gemm_t < 0)
        return (o * L->ci_per + j) * L->ksz + t;
    return L->gemm_t ? o * L->cin + j : j * L->co + o;
}

/* Input channel that slot j of output channel o reads. */
static inline int64_t w_ch(const layer *L, int64_t o, int64_t j)
{
    return L->gemm_t < 0 ? o / (L->co / L->groups) * L->ci_per + j : j;
}

static float *w_data(qd_graph *g, const layer *L)
{
    return g->values[L->w].init->data;
}

static float *b_data(qd_graph *g, const layer *L)
{
    const qd_node *n = &g->nodes[L->node];
    return qd_node_has_input(n, 2) ? g->values[n->in[2]].init->data : NULL;
}

/* BN statistics of L's output (beta = s[c], |gamma| = s[co + c]) or NULL. */
static float *bn_stats(qd_graph *g, const layer *L)
{
    qd_node *n = &g->nodes[L->node];
    return n->bn_mean && n->bn_nch == L->co ? n->bn_mean : NULL;
}

static int is_op(const qd_node *n, const char *op)
{
    return strcmp(n->op_type, op) == 0;
}

/* Fill L for node ni when it is a Conv or Gemm with a constant FP32 weight;
 * returns 0 for other nodes. A layer that cannot be equalized gets
 * usable = 0 and the reason in why. */
static int layer_init(const qd_graph *g, const int *uses, int ni, layer *L)
{
    const qd_node *n = &g->nodes[ni];
    int conv = is_op(n, "Conv");
    const qd_tensor *w = qd_node_const_input(g, n, 1);
    if ((!conv && !is_op(n, "Gemm")) || n->nout < 1 || n->out[0] < 0 || !w || w->dtype != QD_F32 ||
        (conv && w->ndim < 3) || (!conv && w->ndim != 2))
        return 0;
    memset(L, 0, sizeof *L);
    L->node = ni;
    L->w = n->in[1];
    L->prev = L->next = L->clip6 = -1;
    L->groups = 1;
    L->ksz = 1;
    L->usable = 1;
    if (conv) {
        L->gemm_t = -1;
        L->co = w->shape[0];
        L->ci_per = w->shape[1];
        for (int d = 2; d < w->ndim; d++)
            L->ksz *= w->shape[d];
        int64_t grp = qd_attr_int(n, "group", 1);
        if (grp >= 1 && L->co % grp == 0)
            L->groups = grp;
        else
            L->usable = 0, snprintf(L->why, sizeof L->why, "group %lld does not divide %lld output channels",
                                    (long long)grp, (long long)L->co);
        L->cin = L->ci_per * L->groups;
        L->dw = L->groups > 1 && L->ci_per == 1 && L->co == L->groups;
    } else {
        L->gemm_t = qd_attr_int(n, "transB", 0) != 0;
        L->co = L->gemm_t ? w->shape[0] : w->shape[1];
        L->cin = L->gemm_t ? w->shape[1] : w->shape[0];
        L->ci_per = L->cin;
    }
    const qd_tensor *b = qd_node_const_input(g, n, 2);
    if (!L->usable)
        return 1;
    L->usable = 0;
    if (L->co <= 0 || L->cin <= 0)
        snprintf(L->why, sizeof L->why, "empty weight");
    else if (!conv && (qd_attr_float(n, "alpha", 1.0f) != 1.0f || qd_attr_float(n, "beta", 1.0f) != 1.0f ||
                       qd_attr_int(n, "transA", 0)))
        snprintf(L->why, sizeof L->why, "Gemm with alpha or beta other than 1, or transA");
    else if (L->groups > 1 && !L->dw)
        snprintf(L->why, sizeof L->why, "grouped convolution (group %lld, %lld -> %lld channels), neither ordinary nor depthwise",
                 (long long)L->groups, (long long)L->cin, (long long)L->co);
    else if (uses[L->w] != 1)
        snprintf(L->why, sizeof L->why, "weight '%s' is shared with another node", g->values[L->w].name);
    else if (qd_node_has_input(n, 2) &&
             (!b || b->dtype != QD_F32 || qd_tensor_numel(b) != L->co || uses[n->in[2]] != 1))
        snprintf(L->why, sizeof L->why, "bias is not a per-channel float32 constant of its own");
    else
        L->usable = 1;
    return 1;
}

/* A clamp [lo, hi] as an activation: ACT_RELU, ACT_NONE, 6 for ReLU6, -1
 * when positive scaling does not commute with it. */
static int clamp_kind(float lo, float hi)
{
    int nohi = hi >= FLT_MAX;
    if (lo == 0 && nohi)
        return ACT_RELU;
    if (lo <= -FLT_MAX && nohi)
        return ACT_NONE;
    return lo == 0 && hi == 6 ? 6 : -1;
}

/* Node k as an activation: ACT_RELU, ACT_OTHER, 6 (ReLU6), -1 (an activation
 * that does not commute with positive scaling, why set), -2 (not an
 * activation). */
static int act_kind(const qd_graph *g, const qd_node *k, char *why, size_t n)
{
    if (is_op(k, "Relu"))
        return ACT_RELU;
    if (is_op(k, "PRelu") || is_op(k, "LeakyRelu"))
        return ACT_OTHER;
    if (!is_op(k, "Clip"))
        return -2;
    float lo, hi;
    if (!qd_act_bounds(g, k, &lo, &hi)) {
        snprintf(why, n, "followed by Clip '%s' with bounds that are not constants", k->name);
        return -1;
    }
    int kind = clamp_kind(lo, hi);
    if (kind == ACT_NONE)
        return ACT_OTHER; /* an unbounded Clip: commutes, no Relu for HBA */
    if (kind < 0)
        snprintf(why, n, "followed by Clip '%s' (%g, %g), not positively homogeneous", k->name, lo, hi);
    return kind;
}

/* The one node reading value v, or -1 with why saying what "what" is read by. */
static int sole_reader(const qd_graph *g, const int *uses, int v, const char *what, char *why, size_t n)
{
    int k = qd_graph_sole_consumer(g, uses, v);
    if (k >= 0)
        return k;
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v)
            return snprintf(why, n, "%s is a graph output", what), -1;
    if (uses[v] == 0)
        snprintf(why, n, "%s is not read", what);
    else
        snprintf(why, n, "%s has %d readers", what, uses[v]);
    return -1;
}

/* Link layer i to the layer after it, through at most one activation node
 * (and the layer's own fused clamp), or say in why why not. */
static void find_next(const qd_graph *g, const int *uses, layer *Ls, const int *lof, int i, const qd_cle_opts *o)
{
    layer *L = &Ls[i];
    const qd_node *n = &g->nodes[L->node];
    const size_t wn = sizeof L->why;
    int act = ACT_NONE, fused6 = 0, clip6 = -1;
    if (n->fused_clip) {
        int kind = clamp_kind(n->clip_lo, n->clip_hi);
        if (kind == 6 && o->relu6_to_relu)
            kind = ACT_RELU, fused6 = 1;
        if (kind < 0 || kind == 6) {
            snprintf(L->why, wn, "its fused clamp [%g, %g] is not positively homogeneous%s", n->clip_lo, n->clip_hi,
                     kind == 6 ? " (ReLU6; relu6_to_relu is off)" : "");
            return;
        }
        act = kind;
    }
    int v = n->out[0];
    int k = sole_reader(g, uses, v, "its output", L->why, wn);
    if (k < 0)
        return;
    int kind = act_kind(g, &g->nodes[k], L->why, wn);
    if (kind == -1)
        return;
    if (kind != -2) {
        const qd_node *a = &g->nodes[k];
        if (kind == 6 && !o->relu6_to_relu) {
            snprintf(L->why, wn, "followed by ReLU6 (Clip(0, 6) '%s'); relu6_to_relu is off", a->name);
            return;
        }
        if (a->nin < 1 || a->in[0] != v || a->nout < 1 || a->out[0] < 0) {
            snprintf(L->why, wn, "its output is not the data input of %s '%s'", a->op_type, a->name);
            return;
        }
        if (kind == 6)
            clip6 = k, kind = ACT_RELU;
        act = act == ACT_OTHER || kind == ACT_OTHER ? ACT_OTHER : ACT_RELU;
        char what[300];
        snprintf(what, sizeof what, "the output of its %s '%s'", a->op_type, a->name);
        v = a->out[0];
        if ((k = sole_reader(g, uses, v, what, L->why, wn)) < 0)
            return;
    }
    const qd_node *nx = &g->nodes[k];
    int j = lof[k];
    if (j < 0) {
        snprintf(L->why, wn, "followed by %s '%s'", nx->op_type, nx->name);
        return;
    }
    if (nx->in[0] != v) {
        snprintf(L->why, wn, "its output is not the data input of %s '%s'", nx->op_type, nx->name);
        return;
    }
    if (!Ls[j].usable) {
        char tmp[sizeof L->why]; /* Ls[j].why is another layer's, but gcc cannot tell */
        snprintf(tmp, sizeof tmp, "next layer '%s' cannot be equalized: %s", nx->name, Ls[j].why);
        memcpy(L->why, tmp, sizeof tmp);
        return;
    }
    if (Ls[j].cin != L->co) {
        snprintf(L->why, wn, "%lld output channels, next layer '%s' takes %lld", (long long)L->co, nx->name,
                 (long long)Ls[j].cin);
        return;
    }
    L->next = j;
    L->act = act;
    L->clip6 = clip6;
    L->fused6 = fused6;
    Ls[j].prev = i;
}

/* r[o] = max |W| of output channel o. */
static void out_ranges(qd_graph *g, const layer *L, double *r)
{
    const float *W = w_data(g, L);
    for (int64_t o = 0; o < L->co; o++) {
        float m = 0;
        for (int64_t j = 0; j < L->ci_per; j++)
            for (int64_t t = 0; t < L->ksz; t++)
                m = fmaxf(m, fabsf(W[w_at(L, o, j, t)]));
        r[o] = m;
    }
}

/* r[c] = max |W| over the weights reading input channel c. */
static void in_ranges(qd_graph *g, const layer *L, double *r)
{
    const float *W = w_data(g, L);
    for (int64_t c = 0; c < L->cin; c++)
        r[c] = 0;
    for (int64_t o = 0; o < L->co; o++)
        for (int64_t j = 0; j < L->ci_per; j++) {
            int64_t c = w_ch(L, o, j);
            for (int64_t t = 0; t < L->ksz; t++)
                r[c] = fmax(r[c], fabsf(W[w_at(L, o, j, t)]));
        }
}

/* W[o, j, t] *= fo[o] * fi[channel]; bias and BN statistics of o *= fo[o].
 * fo or fi may be NULL (all 1). */
static void scale(qd_graph *g, const layer *L, const double *fo, const double *fi)
{
    float *W = w_data(g, L), *B = b_data(g, L), *st = bn_stats(g, L);
    for (int64_t o = 0; o < L->co; o++) {
        double a = fo ? fo[o] : 1.0;
        for (int64_t j = 0; j < L->ci_per; j++) {
            double f = fi ? a * fi[w_ch(L, o, j)] : a;
            if (f == 1.0)
                continue;
            for (int64_t t = 0; t < L->ksz; t++) {
                int64_t k = w_at(L, o, j, t);
                W[k] = (float)(W[k] * f);
            }
        }
        if (a == 1.0)
            continue;
        if (B)
            B[o] = (float)(B[o] * a);
        if (st) {
            st[o] = (float)(st[o] * a);
            st[L->co + o] = (float)(st[L->co + o] * a);
        }
    }
}

/* Whether output channel o's bias and BN statistics stay finite times f. */
static int out_fits(qd_graph *g, const layer *L, int64_t o, double f)
{
    const float *B = b_data(g, L), *st = bn_stats(g, L);
    double m = B ? fabs(B[o]) : 0;
    if (st)
        m = fmax(m, fmax(fabs(st[o]), st[L->co + o]));
    return m * f < FLT_MAX / 2;
}

static int usable_range(double a)
{
    return a > 0 && isfinite(a);
}

/* Equalize pair A -> B; returns the largest |ln s|. buf: 4 * channels. */
static double eq_pair(qd_graph *g, const layer *A, const layer *B, double *buf)
{
    int64_t n = A->co;
    double *r1 = buf, *r2 = buf + n, *fo = buf + 2 * n, *fi = buf + 3 * n, worst = 0;
    out_ranges(g, A, r1);
    in_ranges(g, B, r2);
    for (int64_t i = 0; i < n; i++) {
        double s = 1;
        if (usable_range(r1[i]) && usable_range(r2[i])) {
            s = sqrt(r1[i] / r2[i]);
            if (fabs(log(s)) < NEGLIGIBLE || !out_fits(g, A, i, 1 / s))
                s = 1;
        }
        worst = fmax(worst, fabs(log(s)));
        fo[i] = 1 / s;
        fi[i] = s;
    }
    scale(g, A, fo, NULL);
    scale(g, B, NULL, fi);
    return worst;
}

/* Equalize triplet A -> D (depthwise) -> C; returns the largest |ln s|.
 * buf: 7 * channels. */
static double eq_triplet(qd_graph *g, const layer *A, const layer *D, const layer *C, double *buf)
{
    int64_t n = A->co;
    double *r1 = buf, *rd = buf + n, *r3 = buf + 2 * n, *fa = buf + 3 * n, *fdi = buf + 4 * n, *fdo = buf + 5 * n,
           *fc = buf + 6 * n, worst = 0;
    out_ranges(g, A, r1);
    out_ranges(g, D, rd);
    in_ranges(g, C, r3);
    for (int64_t i = 0; i < n; i++) {
        double s12 = 1, s23 = 1;
        if (usable_range(r1[i]) && usable_range(rd[i]) && usable_range(r3[i])) {
            double c = cbrt(r1[i] * rd[i] * r3[i]);
            s12 = r1[i] / c;
            s23 = c / r3[i];
            if (fmax(fabs(log(s12)), fabs(log(s23))) < NEGLIGIBLE || !out_fits(g, A, i, 1 / s12) ||
                !out_fits(g, D, i, 1 / s23))
                s12 = s23 = 1;
        }
        worst = fmax(worst, fmax(fabs(log(s12)), fabs(log(s23))));
        fa[i] = 1 / s12;
        fdi[i] = s12;
        fdo[i] = 1 / s23;
        fc[i] = s23;
    }
    scale(g, A, fa, NULL);
    scale(g, D, fdo, fdi);
    scale(g, C, NULL, fc);
    return worst;
}

/* High-bias absorption over link A -> Relu -> B (see cle.h); c: A->co
 * doubles of scratch. Adds the channels absorbed to *count. */
static int absorb_bias(qd_graph *g, const layer *A, const layer *B, double *c, int *count, qd_err *e)
{
    float *st = bn_stats(g, A);
    if (A->act != ACT_RELU || !st)
        return QD_OK;
    int any = 0;
    for (int64_t i = 0; i < A->co; i++) {
        c[i] = fmax(0.0, (double)st[i] - 3.0 * st[A->co + i]);
        any += c[i] > 0;
    }
    if (!any)
        return QD_OK;
    if (qd_graph_add_bias(g, A->node, e) < 0 || qd_graph_add_bias(g, B->node, e) < 0)
        return qd_errf(e, QD_EFAIL, "high-bias absorption: no bias for '%s' -> '%s'", g->nodes[A->node].name,
                       g->nodes[B->node].name);
    float *b1 = b_data(g, A), *b2 = b_data(g, B);
    const float *W2 = w_data(g, B);
    for (int64_t i = 0; i < A->co; i++) {
        b1[i] = (float)(b1[i] - c[i]);
        st[i] = (float)(st[i] - c[i]);
    }
    for (int64_t o = 0; o < B->co; o++) {
        double acc = 0;
        for (int64_t j = 0; j < B->ci_per; j++) {
            double cj = c[w_ch(B, o, j)];
            if (cj == 0)
                continue;
            for (int64_t t = 0; t < B->ksz; t++)
                acc += W2[w_at(B, o, j, t)] * cj;
        }
        b2[o] = (float)(b2[o] + acc);
    }
    *count += any;
    return QD_OK;
}

/* Make Clip node k a Relu (its bounds inputs and attributes dropped). */
static int clip_to_relu(qd_graph *g, int k, qd_err *e)
{
    qd_node *n = &g->nodes[k];
    const qd_op *op = qd_op_find("Relu");
    char *t = strdup("Relu");
    if (!op || !t) {
        free(t);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    if (n->priv && n->op && n->op->free_priv)
        n->op->free_priv(n->priv);
    n->priv = NULL;
    free(n->op_type);
    n->op_type = t;
    n->op = op;
    n->nin = 1;
    int m = 0; /* opset < 11: float attributes min and max own only their name */
    for (int a = 0; a < n->nattr; a++) {
        qd_attr *at = &n->attrs[a];
        if (at->type == QD_ATTR_FLOAT && (!strcmp(at->name, "min") || !strcmp(at->name, "max")))
            free(at->name);
        else
            n->attrs[m++] = *at;
    }
    n->nattr = m;
    return op->check ? op->check(n, g, e) : QD_OK;
}

/* max / min non-zero of n ranges; 0 when all are 0. */
static double spread(const float *r, int64_t n)
{
    double hi = 0, lo = INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (r[i] > 0) {
            hi = fmax(hi, r[i]);
            lo = fmin(lo, r[i]);
        }
    return hi > 0 ? hi / lo : 0;
}

static int add_skipped(qd_cle_report *r, const char *node, const char *why, qd_err *e)
{
    size_t len = strlen(node) + strlen(why) + 32;
    char *s = malloc(len), **nl = realloc(r->skipped, ((size_t)r->nskipped + 1) * sizeof *nl);
    if (nl)
        r->skipped = nl;
    if (!s || !nl) {
        free(s);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    snprintf(s, len, "%s: not equalized: %s", node, why);
    r->skipped[r->nskipped++] = s;
    return QD_OK;
}

/* Cut every chain into pairs and triplets (AIMET's cls sets) into r->sets,
 * which has room for one set per layer. */
static void make_sets(const layer *Ls, int nl, qd_cle_report *r)
{
    for (int i = 0; i < nl; i++) {
        if (Ls[i].prev >= 0 || Ls[i].next < 0)
            continue;
        int a = i, b = Ls[i].next;
        while (b >= 0) {
            int c = Ls[b].next;
            qd_cle_set *s = &r->sets[r->nsets++];
            if (Ls[b].dw && c >= 0) {
                *s = (qd_cle_set){3, {a, b, c}};
                r->triplets++;
                a = c;
                b = Ls[c].next;
            } else {
                *s = (qd_cle_set){2, {a, b, -1}};
                r->pairs++;
                a = b;
                b = c;
            }
        }
    }
}

/* Report entries for the nl layers, with their ranges now (before). */
static int report_layers(qd_graph *g, const layer *Ls, int nl, double *buf, qd_cle_report *r, qd_err *e)
{
    r->layers = calloc((size_t)nl + 1, sizeof *r->layers);
    if (!r->layers)
        return qd_errf(e, QD_EFAIL, "out of memory");
    r->nlayers = nl;
    for (int i = 0; i < nl; i++) {
        qd_cle_layer *y = &r->layers[i];
        y->node = Ls[i].node;
        y->nch = Ls[i].co;
        y->depthwise = Ls[i].dw;
        y->equalized = Ls[i].prev >= 0 || Ls[i].next >= 0;
        y->name = strdup(g->nodes[Ls[i].node].name);
        y->range_before = malloc(((size_t)y->nch + 1) * sizeof(float));
        y->range_after = malloc(((size_t)y->nch + 1) * sizeof(float));
        if (!y->name || !y->range_before || !y->range_after)
            return qd_errf(e, QD_EFAIL, "out of memory");
        out_ranges(g, &Ls[i], buf);
        for (int64_t c = 0; c < y->nch; c++)
            y->range_before[c] = (float)buf[c];
        y->spread_before = spread(y->range_before, y->nch);
    }
    return QD_OK;
}

int qd_cle(qd_graph *g, const qd_cle_opts *o, qd_cle_report *r, qd_err *e)
{
    qd_cle_opts opts = o ? *o : QD_CLE_OPTS_DEFAULT;
    int max_iter = opts.max_iter > 0 ? opts.max_iter : DEFAULT_ITER;
    qd_cle_report local;
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    layer *Ls = NULL;
    int *lof = NULL, *uses = NULL, nl = 0, rc = QD_OK;
    double *buf = NULL;
    qd_fuse_stats st;
    if ((rc = qd_graph_fuse_ex(g, QD_FUSE_BN, NULL, &st, e)))
        goto out;
    r->bn_folded = st.bn_folded;
    Ls = calloc((size_t)g->nnodes + 1, sizeof *Ls);
    lof = malloc(((size_t)g->nnodes + 1) * sizeof *lof);
    uses = qd_graph_count_uses(g);
    if (!Ls || !lof || !uses) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    int64_t maxc = 1;
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        lof[i] = -1;
        if (layer_init(g, uses, i, &Ls[nl])) {
            maxc = Ls[nl].co > maxc ? Ls[nl].co : maxc;
            maxc = Ls[nl].cin > maxc ? Ls[nl].cin : maxc;
            lof[i] = nl++;
        } else if ((is_op(n, "Conv") || is_op(n, "Gemm")) &&
                   (rc = add_skipped(r, n->name, "weight is not a constant float32 tensor", e))) {
            goto out;
        }
    }
    for (int i = 0; i < nl; i++)
        if (Ls[i].usable)
            find_next(g, uses, Ls, lof, i, &opts);
    buf = malloc((size_t)maxc * 7 * sizeof *buf);
    r->sets = calloc((size_t)nl + 1, sizeof *r->sets);
    if (!buf || !r->sets) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    make_sets(Ls, nl, r);
    if ((rc = report_layers(g, Ls, nl, buf, r, e)))
        goto out;
    for (int i = 0; i < nl; i++) {
        if (Ls[i].next < 0)
            continue;
        if (Ls[i].clip6 >= 0) {
            if ((rc = clip_to_relu(g, Ls[i].clip6, e)))
                goto out;
            r->relu6_replaced++;
        }
        if (Ls[i].fused6) {
            g->nodes[Ls[i].node].clip_hi = INFINITY;
            r->relu6_replaced++;
        }
    }
    for (int it = 0; it < max_iter && r->nsets > 0 && !r->converged; it++) {
        double worst = 0;
        for (int k = 0; k < r->nsets; k++) {
            const int *l = r->sets[k].layer;
            double w = r->sets[k].n == 3 ? eq_triplet(g, &Ls[l[0]], &Ls[l[1]], &Ls[l[2]], buf)
                                         : eq_pair(g, &Ls[l[0]], &Ls[l[1]], buf);
            worst = fmax(worst, w);
        }
        r->iterations = it + 1;
        r->last_change = worst;
        r->converged = worst < CONVERGED;
    }
    if (r->nsets == 0)
        r->converged = 1;
    for (int i = 0; i < nl && opts.hba; i++)
        if (Ls[i].next >= 0 && (rc = absorb_bias(g, &Ls[i], &Ls[Ls[i].next], buf, &r->hba_absorbed, e)))
            goto out;
    for (int i = 0; i < nl; i++) {
        qd_cle_layer *y = &r->layers[i];
        out_ranges(g, &Ls[i], buf);
        for (int64_t c = 0; c < y->nch; c++)
            y->range_after[c] = (float)buf[c];
        y->spread_after = spread(y->range_after, y->nch);
        if (!y->equalized && (rc = add_skipped(r, y->name, Ls[i].why[0] ? Ls[i].why : "no chain", e)))
            goto out;
    }
out:
    free(Ls);
    free(lof);
    free(uses);
    free(buf);
    if (r == &local)
        qd_cle_report_free(&local);
    return rc;
}

void qd_cle_report_free(qd_cle_report *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nlayers; i++) {
        free(r->layers[i].name);
        free(r->layers[i].range_before);
        free(r->layers[i].range_after);
    }
    free(r->layers);
    free(r->sets);
    for (int i = 0; i < r->nskipped; i++)
        free(r->skipped[i]);
    free(r->skipped);
    memset(r, 0, sizeof *r);
}
