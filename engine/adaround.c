/* adaround.c - AdaRound: learned up/down rounding of Conv/Gemm weights,
 * layer by layer (see adaround.h for the method).
 *
 * Per layer: one FP32 pass (shared by the next layers while their outputs
 * fit in TARGET_BYTES) keeps f(W x_fp + b) at the sampled output positions;
 * one simulated pass keeps the im2col columns of x_q at the same positions;
 * then `iterations` Adam steps. A step splits the output channels over the
 * threads; each thread runs, for its channels, the forward sgemm on the
 * batch's rows, the output error, the weight-gradient sgemm and the
 * element-wise update (gradient through h and the clamp, regularizer, Adam,
 * next soft weights). OpenBLAS runs single-threaded inside.
 *
 * Defaults (adaround.h): AIMET runs 10000 iterations at lr 0.001 on batches
 * of 32 whole images, hours on a CPU. Here 500 iterations at lr 0.01 on 256
 * sampled output positions: Adam moves a parameter by about lr per step, so
 * lr x iterations (how far V can travel; it starts within |V| <= 2.4) stays
 * at AIMET's half. On the bundled models at W4A8 per tensor, more did not
 * help: ShuffleNetV2 top-1 (2000 test images) 0.8735 at 500 iterations,
 * 0.8710 at 1000, 0.8780 at 2000, 0.8750 at 250 (lr 0.02), nearest 0.7125.
 *
 * Measured with the defaults, 2 threads, W4A8, top-1 on the 10000 test
 * images, nearest -> AdaRound (wall seconds on a VM shared with other jobs,
 * load 2 to 6, so 1.5 to 3 times an idle machine's):
 *                   per tensor                per channel         FP32
 *   ResNet-18       0.8942 -> 0.8973  191 s   0.8938 -> 0.8985  241 s   0.8979
 *   MobileNetV2     0.1000 -> 0.1000  160 s   0.8523 -> 0.8733  144 s   0.8759
 *   ShuffleNetV2    0.7144 -> 0.8716  167 s   0.8737 -> 0.8809  118 s   0.8818
 * (MobileNetV2's depthwise weights per tensor at 4 bits are beyond rounding:
 * equalize first.) About a third of the time is the simulated passes. */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC 12 at -O2 vectorizes only loops that need no scalar epilogue; the
 * element-wise step is worth the full vectorizer. Without trapping math the
 * selects of the step's loops can be if-converted (nothing here reads the
 * floating-point exception flags). */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
#endif

#include "adaround.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastmath.h"
#include "kernels_conv.h"
#include "ops.h"
#include "pool.h"
#include "util.h"

#define ZETA 1.1f
#define GAMMA (-0.1f)
#define MAX_ROWS 16384                    /* output positions kept per layer */
#define POOL_BYTES ((size_t)256 << 20)    /* x_q columns kept per layer */
#define TARGET_BYTES ((size_t)256 << 20)  /* FP32 outputs kept by one FP32 pass */
#define RUN_BATCH 64                      /* images per forward run */
#define EVAL_ROWS 1024                    /* rows per product when measuring a loss */
#define DIRECT_MAX 64                     /* grouped convs with cog * k up to this skip sgemm */
#define ADAM_B1 0.9f
#define ADAM_B2 0.999f
#define ADAM_EPS 1e-8f

/* "no loop-carried dependency" (as op_math.c) */
#if defined(__GNUC__) && !defined(__clang__)
#define QD_IVDEP _Pragma("GCC ivdep")
#else
#define QD_IVDEP
#endif

/* One weight to round; geometry from a probe run, data from the passes. */
typedef struct layer {
    int q, node, wv, bv;      /* weight quantizer, node, weight and bias values (bv -1: no bias) */
    int conv;                 /* Conv, else Gemm */
    int64_t co;               /* outputs per position (channels) */
    int64_t group, cog;       /* groups, outputs per group */
    int64_t k;                /* inputs per output: ci/group * kh * kw, or Gemm's K */
    int64_t ktot;             /* columns per row: group * k */
    int64_t ci, h, w, ow, kh, kw, sh, sw, dh, dw, pt, pl; /* Conv, NCHW (1-D: h = kh = 1) */
    int transb;               /* Gemm */
    float alpha, beta;        /* Gemm (Conv: 1, 1) */
    float lo, hi;             /* activation after the layer: clamp to [lo, hi] */
    int64_t npos;             /* output positions (rows) per image */
    int64_t rpi;              /* rows kept per image */
    int64_t images;           /* images the rows come from */
    int64_t rows;             /* images * rpi */
    float *target;            /* rows x co: f(W x_fp + b) */
    float *cols;              /* rows x ktot: x_q as the layer reads it */
} layer;

/* Everything one qd_adaround call holds. */
typedef struct ar {
    qd_sim *s;
    qd_dataset *d;
    qd_adaround_opts o;
    int nl;
    layer *l;
    int64_t images;
    int64_t maxpos;           /* largest npos (scratch for position picking) */
    int64_t *perm;            /* maxpos */
    qd_pool *pool;
    qd_tensor xb;             /* a batch of images */
} ar;

/* ------------------------------------------------------------ small math */

/* logf for normal positive x, branch-free (Cephes logf: x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1). */
static inline float fast_logf(float x)
{
    int32_t ix = f_bits(x);
    float e = (float)(((ix >> 23) & 0xff) - 127);
    float m = bits_f((ix & 0x007fffff) | 0x3f800000); /* [1, 2) */
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1.0f : e;
    float f = m - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += e * -2.12194440e-4f;
    y += -0.5f * z;
    return f + y + e * 0.693359375f;
}

/* sqrtf without libm's errno branch (which keeps loops scalar): reciprocal
 * square root by the bit trick and two Newton steps (relative error 5e-6); 0 for
 * x <= 1e-36 (Adam's second moment: only its order of magnitude matters). */
static inline float fast_sqrtf(float x)
{
    float xc = x > 1e-36f ? x : 1e-36f;
    float r = bits_f(0x5f375a86 - (f_bits(xc) >> 1));
    r = r * (1.5f - 0.5f * xc * r * r);
    r = r * (1.5f - 0.5f * xc * r * r);
    return x > 1e-36f ? xc * r : 0.0f;
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + fast_expf(-v)); }

/* h and dh/dv from sigmoid(v) */
static inline float hrect(float sg)
{
    float h = sg * (ZETA - GAMMA) + GAMMA;
    h = h > 0.0f ? h : 0.0f;
    return h < 1.0f ? h : 1.0f;
}
static inline float dhrect(float sg)
{
    float h = sg * (ZETA - GAMMA) + GAMMA, d = (ZETA - GAMMA) * sg * (1.0f - sg);
    d = h > 0 ? d : 0.0f; /* two selects, not &&: the loops stay vectorizable */
    return h < 1 ? d : 0.0f;
}

void qd_adaround_h(const float *v, float *h, float *dh, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float sg = sigmoidf(v[i]);
        h[i] = hrect(sg);
        if (dh)
            dh[i] = dhrect(sg);
    }
}

/* splitmix64 (as qd_data_limit) */
static uint64_t rng_next(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t rng_below(uint64_t *st, int64_t m) { return (int64_t)(rng_next(st) % (uint64_t)m); }

/* ------------------------------------------------------------ options */

void qd_adaround_defaults(qd_adaround_opts *o)
{
    *o = (qd_adaround_opts){.iterations = 500, .images = 1024, .batch = 256, .reg_weight = 0.01,
                            .beta_start = 20, .beta_end = 2, .warm_start = 0.2, .lr = 0.01, .seed = 1,
                            .nthreads = 1};
}

static int check_opts(const qd_adaround_opts *o, qd_err *e)
{
    if (o->iterations < 1)
        return qd_errf(e, QD_EINPUT, "AdaRound iterations = %d, must be >= 1", o->iterations);
    if (o->images < 1)
        return qd_errf(e, QD_EINPUT, "AdaRound images = %lld, must be >= 1", (long long)o->images);
    if (o->batch < 1)
        return qd_errf(e, QD_EINPUT, "AdaRound batch = %d, must be >= 1", o->batch);
    if (!(o->reg_weight >= 0) || !isfinite(o->reg_weight))
        return qd_errf(e, QD_EINPUT, "AdaRound reg_weight = %g, must be finite and >= 0", o->reg_weight);
    if (!(o->beta_start >= 1) || !(o->beta_end >= 1) || !isfinite(o->beta_start) || !isfinite(o->beta_end))
        return qd_errf(e, QD_EINPUT, "AdaRound beta %g -> %g: both must be finite and >= 1", o->beta_start,
                       o->beta_end);
    if (!(o->warm_start >= 0 && o->warm_start < 1))
        return qd_errf(e, QD_EINPUT, "AdaRound warm_start = %g, must be in [0, 1)", o->warm_start);
    if (!(o->lr > 0) || !isfinite(o->lr))
        return qd_errf(e, QD_EINPUT, "AdaRound lr = %g, must be finite and > 0", o->lr);
    if (o->nthreads < 1 || o->nthreads > 64)
        return qd_errf(e, QD_EINPUT, "AdaRound nthreads = %d, must be in 1..64", o->nthreads);
    return QD_OK;
}

/* ------------------------------------------------------------ layers */


/* The eligible weights, in node order. */
static int find_layers(ar *a, int *skipped, qd_err *e)
{
    qd_sim *s = a->s;
    const qd_graph *g = qd_sim_graph(s);
    int *uses = qd_graph_count_uses(g);
    a->l = calloc((size_t)g->nnodes + 1, sizeof *a->l);
    if (!uses || !a->l) {
        free(uses);
        return qd_errf(e, QD_EFAIL, "out of memory");
    }
    *skipped = 0;
    for (int qi = 0; qi < qd_sim_count(s); qi++) {
        const qd_quantizer *q = qd_sim_get(s, qi);
        if (q->kind != QD_QK_PARAM || !qd_quantizer_active(q) || q->node < 0)
            continue;
        const qd_node *n = &g->nodes[q->node];
        if (!qd_node_has_input(n, 1) || n->in[1] != q->value)
            continue; /* a bias quantizer */
        int conv = !strcmp(n->op_type, "Conv"), gemm = !strcmp(n->op_type, "Gemm");
        const qd_tensor *w = qd_sim_fp32(s, q->value), *b = NULL;
        int64_t co = !w || w->ndim < 2 ? 0 : conv || qd_attr_int(n, "transB", 0) ? w->shape[0] : w->shape[1];
        if (qd_node_has_input(n, 2)) {
            b = qd_sim_fp32(s, n->in[2]);
            b = b ? b : g->values[n->in[2]].init;
        }
        int bias_ok = !qd_node_has_input(n, 2) ||
                      (b && b->dtype == QD_F32 && (qd_tensor_numel(b) == co || qd_tensor_numel(b) == 1));
        if ((!conv && !gemm) || !w || w->dtype != QD_F32 || uses[q->value] != 1 || !bias_ok ||
            (gemm && (qd_attr_int(n, "transA", 0) || w->ndim != 2))) {
            (*skipped)++;
            continue;
        }
        layer *l = &a->l[a->nl++];
        l->q = qi;
        l->node = q->node;
        l->wv = q->value;
        l->bv = qd_node_has_input(n, 2) ? n->in[2] : -1;
        l->conv = conv;
        l->alpha = gemm ? qd_attr_float(n, "alpha", 1.0f) : 1.0f;
        l->beta = gemm ? qd_attr_float(n, "beta", 1.0f) : 1.0f;
        l->transb = gemm && qd_attr_int(n, "transB", 0);
        l->lo = n->fused_clip ? n->clip_lo : -INFINITY;
        l->hi = n->fused_clip ? n->clip_hi : INFINITY;
        int c = qd_graph_sole_consumer(g, uses, n->out[0]);
        float lo, hi;
        if (c >= 0 && g->nodes[c].nin > 0 && g->nodes[c].in[0] == n->out[0] &&
            qd_act_bounds(g, &g->nodes[c], &lo, &hi)) {
            l->lo = lo > l->lo ? lo : l->lo;
            l->hi = hi < l->hi ? hi : l->hi;
        }
    }
    /* quantizers are placed in node order, but keep that explicit */
    for (int i = 1; i < a->nl; i++)
        for (int j = i; j > 0 && a->l[j - 1].node > a->l[j].node; j--) {
            layer t = a->l[j];
            a->l[j] = a->l[j - 1];
            a->l[j - 1] = t;
        }
    free(uses);
    return QD_OK;
}

static const char *node_name(const ar *a, const layer *l) { return qd_sim_graph(a->s)->nodes[l->node].name; }

/* Geometry of a Conv from its tensors after a run of one image. */
static int conv_geometry(const qd_node *n, const qd_tensor *x, const qd_tensor *w, const qd_tensor *y, layer *l,
                         qd_err *e)
{
    int r = x->ndim - 2;
    if (r < 1 || r > 2 || w->ndim != x->ndim || y->ndim != x->ndim)
        return qd_errf(e, QD_EINPUT, "%s: only 1-D and 2-D convolutions", n->name);
    l->group = qd_attr_int(n, "group", 1);
    l->ci = x->shape[1];
    l->h = r == 2 ? x->shape[2] : 1;
    l->w = x->shape[x->ndim - 1];
    l->co = w->shape[0];
    l->kh = r == 2 ? w->shape[2] : 1;
    l->kw = w->shape[w->ndim - 1];
    int64_t oh = r == 2 ? y->shape[2] : 1;
    l->ow = y->shape[y->ndim - 1];
    if (l->group < 1 || l->ci % l->group || l->co % l->group || w->shape[1] * l->group != l->ci ||
        y->shape[1] != l->co)
        return qd_errf(e, QD_EINPUT, "%s: weight and tensors do not agree", n->name);
    const int64_t *st, *di, *pa;
    int ns = qd_attr_ints(n, "strides", &st), nd = qd_attr_ints(n, "dilations", &di);
    int np = qd_attr_ints(n, "pads", &pa);
    const char *ap = qd_attr_str(n, "auto_pad", "NOTSET");
    int64_t in[2] = {l->h, l->w}, ks[2] = {l->kh, l->kw}, out[2] = {oh, l->ow};
    int64_t S[2] = {1, 1}, D[2] = {1, 1}, P[2] = {0, 0};
    for (int ax = 2 - r; ax < 2; ax++) {
        int i = ax - (2 - r);
        S[ax] = ns == r ? st[i] : 1;
        D[ax] = nd == r ? di[i] : 1;
        int64_t dk = D[ax] * (ks[ax] - 1) + 1;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t total = (out[ax] - 1) * S[ax] + dk - in[ax];
            total = total > 0 ? total : 0;
            P[ax] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
        } else if (strcmp(ap, "VALID") && np == 2 * r) {
            P[ax] = pa[i];
        }
    }
    l->sh = S[0], l->sw = S[1], l->dh = D[0], l->dw = D[1], l->pt = P[0], l->pl = P[1];
    l->cog = l->co / l->group;
    l->k = (l->ci / l->group) * l->kh * l->kw;
    l->ktot = l->group * l->k;
    l->npos = oh * l->ow;
    return QD_OK;
}

static int gemm_geometry(const qd_node *n, const qd_tensor *x, const qd_tensor *w, const qd_tensor *y, layer *l,
                         qd_err *e)
{
    if (x->ndim != 2 || y->ndim != 2)
        return qd_errf(e, QD_EINPUT, "%s: Gemm on %d-D input", n->name, x->ndim);
    l->group = 1;
    l->k = l->transb ? w->shape[1] : w->shape[0];
    l->co = l->transb ? w->shape[0] : w->shape[1];
    l->cog = l->co;
    l->ktot = l->k;
    l->npos = x->shape[0]; /* rows of A per image (the probe runs one image) */
    if (x->shape[1] != l->k || y->shape[1] != l->co || y->shape[0] != x->shape[0])
        return qd_errf(e, QD_EINPUT, "%s: weight and tensors do not agree", n->name);
    return QD_OK;
}

/* Run one image and size every layer: geometry, rows per image. */
static int probe(ar *a, qd_err *e)
{
    qd_sim *s = a->s;
    const qd_graph *g = qd_sim_graph(s);
    qd_exec *x = qd_sim_exec(s);
    qd_sim_set_fp32(s, 1);
    if (qd_data_batch(a->d, 0, 1, &a->xb, NULL, e) || qd_sim_run(s, &a->xb, 1, e))
        return e->code;
    for (int i = 0; i < a->nl; i++) {
        layer *l = &a->l[i];
        const qd_node *n = &g->nodes[l->node];
        const qd_tensor *xi = qd_exec_value(x, n->in[0]), *yo = qd_exec_value(x, n->out[0]);
        const qd_tensor *w = qd_sim_fp32(s, l->wv);
        if (!xi || !yo || xi->dtype != QD_F32 || yo->dtype != QD_F32)
            return qd_errf(e, QD_EINPUT, "%s: input or output is not float32", n->name);
        if (xi->ndim < 1 || xi->shape[0] != 1)
            return qd_errf(e, QD_EINPUT, "%s: input's first dimension is not the batch", n->name);
        int rc = l->conv ? conv_geometry(n, xi, w, yo, l, e) : gemm_geometry(n, xi, w, yo, l, e);
        if (rc)
            return rc;
        if (l->npos < 1)
            return qd_errf(e, QD_EINPUT, "%s: empty output", n->name);
        if (l->ktot > INT_MAX / 2 || l->co > INT_MAX / 2)
            return qd_errf(e, QD_EINPUT, "%s: too large for sgemm", n->name);
        int64_t cap = (int64_t)(POOL_BYTES / sizeof(float) / (size_t)l->ktot);
        cap = cap < MAX_ROWS ? cap : MAX_ROWS;
        cap = cap > 1 ? cap : 1;
        l->rpi = cap / a->images;
        l->rpi = l->rpi < l->npos ? l->rpi : l->npos;
        l->rpi = l->rpi > 1 ? l->rpi : 1;
        l->images = a->images * l->rpi <= cap ? a->images : cap; /* rpi is 1 when it is cap */
        l->rows = l->images * l->rpi;
        a->maxpos = l->npos > a->maxpos ? l->npos : a->maxpos;
    }
    a->perm = malloc(((size_t)a->maxpos + 1) * sizeof *a->perm);
    return a->perm ? QD_OK : qd_errf(e, QD_EFAIL, "out of memory");
}

/* ------------------------------------------------------------ data */

/* The rpi output positions of image img kept for layer li, into a->perm[0..rpi). */
static const int64_t *positions(ar *a, int li, int64_t img)
{
    const layer *l = &a->l[li];
    int64_t *p = a->perm;
    for (int64_t i = 0; i < l->npos; i++)
        p[i] = i;
    if (l->rpi >= l->npos)
        return p;
    uint64_t st = a->o.seed ^ 0x9e3779b97f4a7c15ull * (uint64_t)(li + 1) ^ 0xd1b54a32d192ed03ull * (uint64_t)(img + 1);
    for (int64_t i = 0; i < l->rpi; i++) {
        int64_t j = i + rng_below(&st, l->npos - i), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* im2col of one output position: x is one image (ci, h, w); col gets
 * ktot = ci * kh * kw values in W's (ci/group, kh, kw) order per group. */
static void conv_column(const layer *l, const float *x, int64_t pos, float *col)
{
    int64_t oy = pos / l->ow, ox = pos % l->ow;
    for (int64_t c = 0; c < l->ci; c++)
        for (int64_t ky = 0; ky < l->kh; ky++) {
            int64_t iy = oy * l->sh - l->pt + ky * l->dh;
            for (int64_t kx = 0; kx < l->kw; kx++) {
                int64_t ix = ox * l->sw - l->pl + kx * l->dw;
                *col++ = iy >= 0 && iy < l->h && ix >= 0 && ix < l->w ? x[(c * l->h + iy) * l->w + ix] : 0.0f;
            }
        }
}

/* Keep layer li's rows of images [at, at + nb) from the last run: FP32
 * outputs (fp32) or simulated input columns. */
static int keep_rows(ar *a, int li, int64_t at, int64_t nb, int fp32, qd_err *e)
{
    layer *l = &a->l[li];
    const qd_node *n = &qd_sim_graph(a->s)->nodes[l->node];
    qd_exec *x = qd_sim_exec(a->s);
    const qd_tensor *t = qd_exec_value(x, fp32 ? n->out[0] : n->in[0]);
    int64_t per = fp32 ? l->npos * l->co : l->conv ? l->ci * l->h * l->w : l->npos * l->k; /* per image */
    if (!t || t->dtype != QD_F32 || t->ndim < 1 || qd_tensor_numel(t) != nb * per ||
        (l->conv && t->shape[0] != nb))
        return qd_errf(e, QD_EINPUT, "%s: %s changed shape between batches", n->name, fp32 ? "output" : "input");
    const float *v = t->data;
    for (int64_t i = 0; i < nb && at + i < l->images; i++) {
        const int64_t *p = positions(a, li, at + i);
        const float *img = v + i * per;
        for (int64_t j = 0; j < l->rpi; j++) {
            int64_t row = (at + i) * l->rpi + j;
            if (fp32) {
                float *d = l->target + row * l->co;
                for (int64_t c = 0; c < l->co; c++) {
                    float y = l->conv ? img[c * l->npos + p[j]] : img[p[j] * l->co + c];
                    d[c] = y < l->lo ? l->lo : y > l->hi ? l->hi : y;
                }
            } else if (l->conv) {
                conv_column(l, img, p[j], l->cols + row * l->ktot);
            } else {
                memcpy(l->cols + row * l->ktot, img + p[j] * l->k, (size_t)l->k * sizeof(float));
            }
        }
    }
    return QD_OK;
}

/* One pass over the images in FP32 (targets of layers [first, last)) or
 * simulated (columns of layer first only). */
static int gather(ar *a, int first, int last, int fp32, qd_err *e)
{
    int64_t need = 0;
    for (int i = first; i < last; i++)
        need = a->l[i].images > need ? a->l[i].images : need;
    qd_sim_set_fp32(a->s, fp32);
    for (int64_t at = 0; at < need; at += RUN_BATCH) {
        int64_t nb = need - at < RUN_BATCH ? need - at : RUN_BATCH;
        if (qd_data_batch(a->d, at, nb, &a->xb, NULL, e) || qd_sim_run(a->s, &a->xb, 1, e))
            return e->code;
        for (int i = first; i < last; i++)
            if (at < a->l[i].images && keep_rows(a, i, at, nb, fp32, e))
                return e->code;
    }
    qd_sim_set_fp32(a->s, 0);
    return QD_OK;
}

/* ------------------------------------------------------------ products */

/* Output channels [c0, c1) of y (m x co) = alpha * x (m x ktot) @ w^T,
 * w (co x k), per group. Single-threaded (the callers split channels). */
static void forward(const layer *l, const float *x, int64_t m, const float *w, float *y, int64_t c0, int64_t c1)
{
    if (l->group > 1 && l->cog * l->k <= DIRECT_MAX) {
        for (int64_t r = 0; r < m; r++)
            for (int64_t o = c0; o < c1; o++) {
                const float *xr = x + r * l->ktot + (o / l->cog) * l->k, *wo = w + o * l->k;
                float acc = 0;
                for (int64_t t = 0; t < l->k; t++)
                    acc += xr[t] * wo[t];
                y[r * l->co + o] = l->alpha * acc;
            }
        return;
    }
    for (int64_t g = c0 / l->cog; g * l->cog < c1; g++) {
        int64_t a = g * l->cog > c0 ? g * l->cog : c0, b = (g + 1) * l->cog < c1 ? (g + 1) * l->cog : c1;
        qd_sgemm(0, 1, m, b - a, l->k, l->alpha, x + g * l->k, l->ktot, w + a * l->k, l->k, 0.0f, y + a, l->co);
    }
}

/* Rows [c0, c1) of gw (co x k) = alpha * err^T (co x m) @ x (m x ktot), per group. */
static void backward(const layer *l, const float *x, int64_t m, const float *err, float *gw, int64_t c0, int64_t c1)
{
    if (l->group > 1 && l->cog * l->k <= DIRECT_MAX) {
        memset(gw + c0 * l->k, 0, (size_t)((c1 - c0) * l->k) * sizeof *gw);
        for (int64_t r = 0; r < m; r++)
            for (int64_t o = c0; o < c1; o++) {
                float d = l->alpha * err[r * l->co + o];
                const float *xr = x + r * l->ktot + (o / l->cog) * l->k;
                float *go = gw + o * l->k;
                for (int64_t t = 0; t < l->k; t++)
                    go[t] += d * xr[t];
            }
        return;
    }
    for (int64_t g = c0 / l->cog; g * l->cog < c1; g++) {
        int64_t a = g * l->cog > c0 ? g * l->cog : c0, b = (g + 1) * l->cog < c1 ? (g + 1) * l->cog : c1;
        qd_sgemm(1, 0, b - a, l->k, m, l->alpha, err + a, l->co, x + g * l->k, l->ktot, 0.0f, gw + a * l->k, l->k);
    }
}

/* Squared error of f(y + beta b) against t over m rows, channels [c0, c1);
 * err (may be NULL) gets d loss / d y with loss = sum / m (0 where the clamp
 * clamps). */
static double out_error(const layer *l, const float *bias, const float *y, const float *t, int64_t m, float *err,
                        int64_t c0, int64_t c1)
{
    double sum = 0;
    float g = 2.0f / (float)m;
    for (int64_t r = 0; r < m; r++) {
        const float *yr = y + r * l->co, *tr = t + r * l->co;
        float rs = 0;
        for (int64_t c = c0; c < c1; c++) {
            float z = yr[c] + l->beta * bias[c];
            float f = z < l->lo ? l->lo : z > l->hi ? l->hi : z;
            float d = f - tr[c];
            rs += d * d;
            if (err)
                err[r * l->co + c] = z > l->lo && z < l->hi ? g * d : 0.0f;
        }
        sum += rs;
    }
    return sum;
}

/* ------------------------------------------------------------ optimizer */

/* State of one layer's optimization: W as (co x k) rows, each row (output
 * channel) with its grid; a step works on blocks of rows, one per thread. */
typedef struct opt {
    const layer *l;
    int64_t co, k;
    const float *bias;        /* co, FP32 */
    float *wfl;               /* floor(W / s) */
    float *v, *m1, *m2;       /* V and Adam's moments */
    float *sg;                /* sigmoid(V) */
    float *wt;                /* soft weights s clamp(wfl + h(V), lo, hi) (or any weights to measure) */
    float *gw;                /* d loss / d wt */
    float *rs, *rlo, *rhi;    /* per row: scale, grid bounds */
    /* this step */
    const float *x, *t;       /* m rows of columns and targets */
    int64_t m;
    float *y, *err;           /* m x co */
    double *sum;              /* per thread: squared error (measuring) */
    float lr, isb2;           /* lr / (1 - b1^t), 1 / sqrt(1 - b2^t) */
    float lambda, beta;       /* regularizer weight (0 during warm start) and exponent */
} opt;

/* One Adam step on n elements of one row, then their next soft weights and
 * sigmoid(V). The arrays do not overlap (ivdep: restrict on locals is not
 * enough for GCC). */
static void step_span(const opt *o, int64_t off, int64_t n, float s, float lo, float hi)
{
    float *restrict v = o->v + off, *restrict m1 = o->m1 + off, *restrict m2 = o->m2 + off;
    float *restrict wt = o->wt + off, *restrict gw = o->gw + off, *restrict sgv = o->sg + off;
    const float *restrict wfl = o->wfl + off;
    const float lr = o->lr, isb2 = o->isb2, rw = 2.0f * o->lambda * o->beta, bm1 = o->beta - 1.0f;
    /* d loss / d V: through the clamp and h; with the regularizer,
     * d/dh lambda (1 - |2h - 1|^beta) = -2 lambda beta |2h - 1|^(beta - 1) sign(2h - 1) */
    if (rw != 0.0f) {
        QD_IVDEP
        for (int64_t i = 0; i < n; i++) {
            float sg = sgv[i], h = hrect(sg), x = wfl[i] + h;
            float g = gw[i] * s;
            g = x >= lo ? g : 0.0f;
            g = x <= hi ? g : 0.0f;
            float u = 2.0f * h - 1.0f, au = fabsf(u);
            au = au > 1e-30f ? au : 1e-30f;
            g -= rw * copysignf(fast_expf(bm1 * fast_logf(au)), u);
            gw[i] = g * dhrect(sg);
        }
    } else {
        QD_IVDEP
        for (int64_t i = 0; i < n; i++) {
            float sg = sgv[i], x = wfl[i] + hrect(sg);
            float g = gw[i] * s;
            g = x >= lo ? g : 0.0f;
            g = x <= hi ? g : 0.0f;
            gw[i] = g * dhrect(sg);
        }
    }
    QD_IVDEP
    for (int64_t i = 0; i < n; i++) {
        float g = gw[i];
        float a = ADAM_B1 * m1[i] + (1.0f - ADAM_B1) * g;
        float b = ADAM_B2 * m2[i] + (1.0f - ADAM_B2) * g * g;
        m1[i] = a;
        m2[i] = b;
        float nv = v[i] - lr * a / (fast_sqrtf(b) * isb2 + ADAM_EPS);
        v[i] = nv;
        float sg = sigmoidf(nv);
        sgv[i] = sg;
        float q = wfl[i] + hrect(sg);
        q = q < lo ? lo : q > hi ? hi : q;
        wt[i] = s * q;
    }
}

/* One step on rows [c0, c1): outputs, their error, the weight gradient,
 * Adam and the next soft weights. */
static void step_rows(void *arg, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const opt *o = arg;
    forward(o->l, o->x, o->m, o->wt, o->y, c0, c1);
    out_error(o->l, o->bias, o->y, o->t, o->m, o->err, c0, c1);
    backward(o->l, o->x, o->m, o->err, o->gw, c0, c1);
    for (int64_t c = c0; c < c1; c++)
        step_span(o, c * o->k, o->k, o->rs[c], o->rlo[c], o->rhi[c]);
}

/* Squared error of weights wt on rows [c0, c1) of the m rows at x, t. */
static void measure_rows(void *arg, int64_t c0, int64_t c1, int tid)
{
    const opt *o = arg;
    forward(o->l, o->x, o->m, o->wt, o->y, c0, c1);
    o->sum[tid] += out_error(o->l, o->bias, o->y, o->t, o->m, NULL, c0, c1);
}

/* Rows per task: all of them for small products (a pool round trip costs
 * more), else an equal share per thread (keeps each sgemm large). */
static int64_t grain(const opt *o, int nthreads)
{
    if (nthreads < 2 || o->m * o->co * o->k < ((int64_t)1 << 20))
        return o->co;
    return (o->co + nthreads - 1) / nthreads;
}

/* Mean squared error per output element of weights w over all rows. */
static double measure(opt *o, qd_pool *pool, int nthreads, float *w)
{
    const layer *l = o->l;
    double sum[64] = {0}, total = 0;
    float *soft = o->wt;
    o->wt = w;
    o->sum = sum;
    for (int64_t r = 0; r < l->rows; r += EVAL_ROWS) {
        o->m = l->rows - r < EVAL_ROWS ? l->rows - r : EVAL_ROWS;
        o->x = l->cols + r * l->ktot;
        o->t = l->target + r * l->co;
        qd_pool_for(pool, o->co, grain(o, nthreads), measure_rows, o);
    }
    o->wt = soft;
    for (int i = 0; i < 64; i++)
        total += sum[i];
    return total / ((double)l->rows * (double)l->co);
}

/* The grid of row c: scale, and the integer range in units of it (as
 * quant.c's fake quant takes them). */
static void row_grid(const qd_quantizer *q, int64_t c, float *s, float *lo, float *hi)
{
    const qd_encoding *en = &q->enc[q->nenc > 1 ? c : 0];
    *s = (float)en->scale;
    *lo = (float)en->offset;
    *hi = (float)nearbyint(en->max / en->scale);
}

static void opt_free(opt *o)
{
    free(o->wfl);
    free(o->v);
    free(o->sg);
    free(o->m1);
    free(o->m2);
    free(o->wt);
    free(o->gw);
    free(o->rs);
    free(o->y);
    free(o->err);
}

/* Allocate o for layer l with B rows per step, w0 (co x k) the FP32
 * weight: V where h(V) = w0/s - floor(w0/s), the soft weights (= w0 inside
 * the grid) and their sigmoid. */
static int opt_init(opt *o, const layer *l, const qd_quantizer *q, const float *w0, int64_t B)
{
    int64_t co = l->co, k = l->k, nw = co * k, ym = B > EVAL_ROWS ? B : EVAL_ROWS;
    o->l = l;
    o->co = co;
    o->k = k;
    o->wfl = malloc((size_t)nw * sizeof(float));
    o->v = malloc((size_t)nw * sizeof(float));
    o->sg = malloc((size_t)nw * sizeof(float));
    o->m1 = calloc((size_t)nw, sizeof(float));
    o->m2 = calloc((size_t)nw, sizeof(float));
    o->wt = malloc((size_t)nw * sizeof(float));
    o->gw = malloc((size_t)nw * sizeof(float));
    o->rs = malloc((size_t)co * 3 * sizeof(float));
    o->y = malloc((size_t)(ym * co) * sizeof(float));
    o->err = malloc((size_t)(B * co) * sizeof(float));
    if (!o->wfl || !o->v || !o->sg || !o->m1 || !o->m2 || !o->wt || !o->gw || !o->rs || !o->y || !o->err)
        return QD_EFAIL;
    o->rlo = o->rs + co;
    o->rhi = o->rs + 2 * co;
    for (int64_t c = 0; c < co; c++) {
        row_grid(q, c, &o->rs[c], &o->rlo[c], &o->rhi[c]);
        for (int64_t i = c * k; i < (c + 1) * k; i++) {
            float r = w0[i] / o->rs[c], f = floorf(r);
            float p = (r - f - GAMMA) / (ZETA - GAMMA); /* sigmoid(V), in [1/12, 11/12] */
            o->wfl[i] = f;
            o->v[i] = logf(p / (1.0f - p));
            o->sg[i] = sigmoidf(o->v[i]);
            float x = f + hrect(o->sg[i]);
            o->wt[i] = o->rs[c] * (x < o->rlo[c] ? o->rlo[c] : x > o->rhi[c] ? o->rhi[c] : x);
        }
    }
    return QD_OK;
}

/* Copy B rows of l into x and t, walking a permutation of all rows that is
 * reshuffled at each pass (order, *next and the RNG state persist). */
static void next_batch(const layer *l, int64_t B, int64_t *order, int64_t *next, uint64_t *st, float *x, float *t)
{
    for (int64_t j = 0; j < B; j++) {
        if (*next >= l->rows) {
            for (int64_t i = l->rows - 1; i > 0; i--) {
                int64_t r = rng_below(st, i + 1), tmp = order[i];
                order[i] = order[r];
                order[r] = tmp;
            }
            *next = 0;
        }
        int64_t row = order[(*next)++];
        memcpy(x + j * l->ktot, l->cols + row * l->ktot, (size_t)l->ktot * sizeof *x);
        memcpy(t + j * l->co, l->target + row * l->co, (size_t)l->co * sizeof *t);
    }
}

/* W of layer l (its tensor's layout) from or to (co x k) rows. */
static void w_rows(const layer *l, const float *w, float *rows)
{
    if (l->conv || l->transb) {
        memcpy(rows, w, (size_t)(l->co * l->k) * sizeof *rows);
        return;
    }
    for (int64_t c = 0; c < l->co; c++)
        for (int64_t t = 0; t < l->k; t++)
            rows[c * l->k + t] = w[t * l->co + c];
}

static void w_unrows(const layer *l, const float *rows, float *w)
{
    if (l->conv || l->transb) {
        memcpy(w, rows, (size_t)(l->co * l->k) * sizeof *w);
        return;
    }
    for (int64_t c = 0; c < l->co; c++)
        for (int64_t t = 0; t < l->k; t++)
            w[t * l->co + c] = rows[c * l->k + t];
}

/* Learn the rounding of layer li (its rows gathered) and write it back. */
static int round_layer(ar *a, int li, qd_adaround_layer *rep, qd_err *e)
{
    layer *l = &a->l[li];
    qd_quantizer *q = qd_sim_get(a->s, l->q);
    qd_tensor *wsim = qd_sim_fp32(a->s, l->wv);
    const qd_tensor *bt = NULL;
    if (l->bv >= 0) {
        bt = qd_sim_fp32(a->s, l->bv);
        bt = bt ? bt : qd_sim_graph(a->s)->values[l->bv].init;
    }
    if (q->nenc != 1 && q->nenc != l->co)
        return qd_errf(e, QD_EINPUT, "%s: %d encodings for %lld output channels", q->name, q->nenc,
                       (long long)l->co);
    int64_t co = l->co, k = l->k, nw = co * k, B = a->o.batch < l->rows ? a->o.batch : l->rows;
    int nt = a->o.nthreads, rc = QD_OK;
    opt o = {0};
    float *bias = calloc((size_t)co, sizeof *bias); /* FP32; a Gemm's scalar C broadcast */
    float *w0 = malloc((size_t)nw * sizeof *w0), *wn = malloc((size_t)nw * sizeof *wn);
    float *xb = malloc((size_t)(B * l->ktot) * sizeof *xb), *tb = malloc((size_t)(B * co) * sizeof *tb);
    int64_t *order = malloc((size_t)l->rows * sizeof *order);
    if (!bias || !w0 || !wn || !xb || !tb || !order) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int64_t c = 0; bt && c < co; c++)
        bias[c] = ((const float *)bt->data)[qd_tensor_numel(bt) == co ? c : 0];
    w_rows(l, wsim->data, w0);
    if (opt_init(&o, l, q, w0, B)) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    o.bias = bias;
    for (int64_t c = 0; c < co; c++)
        qd_fake_quant(w0 + c * k, wn + c * k, (size_t)k, &q->enc[q->nenc > 1 ? c : 0]);
    qd_blas_set_threads(1); /* the pool splits the products by output channel */
    double loss_near = measure(&o, a->pool, nt, wn);
    /* Adam on V */
    uint64_t st = a->o.seed ^ (0x2545f4914f6cdd1dull * (uint64_t)(li + 1));
    for (int64_t i = 0; i < l->rows; i++)
        order[i] = i;
    int64_t next = l->rows;
    int T = a->o.iterations;
    double warm = a->o.warm_start * T;
    o.m = B;
    for (int it = 0; it < T; it++) {
        o.x = l->cols;
        o.t = l->target;
        if (B < l->rows) {
            next_batch(l, B, order, &next, &st, xb, tb);
            o.x = xb;
            o.t = tb;
        }
        double rel = it < warm ? 0 : (it - warm) / (T - warm);
        o.lambda = it < warm ? 0.0f : (float)a->o.reg_weight;
        o.beta = (float)(a->o.beta_end + 0.5 * (a->o.beta_start - a->o.beta_end) * (1 + cos(rel * M_PI)));
        o.lr = (float)(a->o.lr / (1 - pow(ADAM_B1, it + 1)));
        o.isb2 = (float)(1 / sqrt(1 - pow(ADAM_B2, it + 1)));
        qd_pool_for(a->pool, co, grain(&o, nt), step_rows, &o);
    }
    /* hard rounding: h(V) >= 0.5, i.e. V >= 0, rounds up */
    float *wa = o.gw; /* free now */
    for (int64_t c = 0; c < co; c++)
        for (int64_t i = c * k; i < (c + 1) * k; i++) {
            float x = o.wfl[i] + (o.v[i] >= 0 ? 1.0f : 0.0f);
            wa[i] = o.rs[c] * (x < o.rlo[c] ? o.rlo[c] : x > o.rhi[c] ? o.rhi[c] : x);
        }
    double loss_ada = measure(&o, a->pool, nt, wa);
    rep->kept_nearest = loss_ada > loss_near;
    const float *wfin = rep->kept_nearest ? wn : wa;
    int64_t flipped = 0;
    for (int64_t i = 0; i < nw; i++)
        flipped += wfin[i] != wn[i];
    double pw = 0;
    for (int64_t i = 0; i < l->rows * co; i++)
        pw += (double)l->target[i] * l->target[i];
    rep->target_power = pw / ((double)l->rows * (double)co);
    rep->loss_nearest = loss_near;
    rep->loss_adaround = rep->kept_nearest ? loss_near : loss_ada;
    rep->frac_flipped = (double)flipped / (double)nw;
    /* write back, and freeze the encodings as they are (a copy: the sim
     * reallocates its own) */
    w_unrows(l, wfin, wsim->data);
    qd_encoding *enc = malloc((size_t)q->nenc * sizeof *enc);
    if (!enc) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    memcpy(enc, q->enc, (size_t)q->nenc * sizeof *enc);
    rc = qd_sim_set_encodings(a->s, l->q, enc, q->nenc, e);
    free(enc);
    qd_sim_params_changed(a->s);
out:
    opt_free(&o);
    free(bias);
    free(w0);
    free(wn);
    free(xb);
    free(tb);
    free(order);
    return rc;
}

/* ------------------------------------------------------------ driver */

static void free_layer_data(layer *l)
{
    free(l->target);
    free(l->cols);
    l->target = l->cols = NULL;
}

void qd_adaround_report_free(qd_adaround_report *r)
{
    if (!r)
        return;
    free(r->layers);
    memset(r, 0, sizeof *r);
}

int qd_adaround(qd_sim *s, qd_dataset *d, const qd_adaround_opts *o, qd_adaround_progress cb, void *user,
                qd_adaround_report *r, qd_err *e)
{
    qd_adaround_report dummy;
    if (!r)
        r = &dummy;
    memset(r, 0, sizeof *r);
    ar a = {.s = s, .d = d};
    if (o)
        a.o = *o;
    else
        qd_adaround_defaults(&a.o);
    if (check_opts(&a.o, e))
        return e->code;
    if (qd_sim_check_encodings(s, e))
        return qd_err_prefix(e, "AdaRound needs a calibrated sim"), e->code;
    int64_t count = qd_data_count(d);
    if (count < 1)
        return qd_errf(e, QD_EINPUT, "AdaRound: no images in %s", qd_data_describe(d));
    a.images = a.o.images < count ? a.o.images : count;
    double t0 = qd_now_ms();
    int rc = find_layers(&a, &r->skipped, e);
    if (!rc && a.nl && !(r->layers = calloc((size_t)a.nl, sizeof *r->layers)))
        rc = qd_errf(e, QD_EFAIL, "out of memory");
    if (!rc && a.nl)
        rc = probe(&a, e);
    if (!rc && a.o.nthreads > 1 && !(a.pool = qd_pool_new(a.o.nthreads)))
        rc = qd_errf(e, QD_EFAIL, "out of memory");
    for (int li = 0; !rc && li < a.nl; li++) {
        layer *l = &a.l[li];
        double tl = qd_now_ms();
        if (cb && cb(user, li, a.nl, node_name(&a, l))) {
            rc = qd_errf(e, QD_EINPUT, "stopped before layer %d of %d", li + 1, a.nl);
            break;
        }
        if (!l->target) { /* FP32 outputs of this and the next layers, as many as fit */
            size_t bytes = 0;
            int last = li;
            for (; last < a.nl; last++) {
                size_t b = (size_t)(a.l[last].rows * a.l[last].co) * sizeof(float);
                if (last > li && bytes + b > TARGET_BYTES)
                    break;
                bytes += b;
                if (!(a.l[last].target = malloc(b))) {
                    rc = qd_errf(e, QD_EFAIL, "out of memory");
                    break;
                }
            }
            if (rc || (rc = gather(&a, li, last, 1, e)))
                break;
        }
        if (!(l->cols = malloc((size_t)(l->rows * l->ktot) * sizeof(float)))) {
            rc = qd_errf(e, QD_EFAIL, "out of memory");
            break;
        }
        qd_adaround_layer *rep = &r->layers[li];
        rep->q = l->q;
        rep->node = l->node;
        rep->weights = l->co * l->k;
        rep->rows = l->rows;
        if ((rc = gather(&a, li, li + 1, 0, e)) || (rc = round_layer(&a, li, rep, e)))
            break;
        free_layer_data(l);
        rep->seconds = (qd_now_ms() - tl) / 1e3;
        r->nlayers = li + 1;
    }
    if (rc && a.nl)
        qd_err_prefix(e, "AdaRound");
    qd_sim_set_fp32(s, 0);
    for (int i = 0; i < a.nl; i++)
        free_layer_data(&a.l[i]);
    free(a.l);
    free(a.perm);
    qd_pool_free(a.pool);
    qd_tensor_free(&a.xb);
    r->seconds = (qd_now_ms() - t0) / 1e3;
    if (r == &dummy)
        qd_adaround_report_free(r);
    return rc;
}
