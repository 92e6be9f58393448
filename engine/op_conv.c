/* op_conv.c - Conv, ConvTranspose, Gemm, MatMul (float32, NCHW, 1-D and 2-D
 * spatial). Attribute parsing, shape inference and dispatch; the kernels are
 * in kernels_conv.c. */
#include "ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_conv.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int need_f32(const char *op, const char *what, const qd_tensor *t, qd_err *e)
{
    if (t->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "%s supports float32 only, %s is %s", op, what,
                       qd_dtype_name(t->dtype));
    return QD_OK;
}

static int check_arity(const qd_node *n, int minin, int maxin, qd_err *e)
{
    if (n->nin < minin || n->nin > maxin)
        return qd_errf(e, QD_EINPUT, "%s takes %d to %d inputs, got %d", n->op_type, minin, maxin, n->nin);
    for (int i = 0; i < minin; i++)
        if (!qd_node_has_input(n, i))
            return qd_errf(e, QD_EINPUT, "%s input %d is required", n->op_type, i);
    if (n->nout != 1)
        return qd_errf(e, QD_EINPUT, "%s has 1 output, got %d", n->op_type, n->nout);
    return QD_OK;
}

/* Optional input i: NULL when omitted (run/infer go by the tensors only). */
static const qd_tensor *opt_in(const qd_node *n, qd_tensor *const *in, int i)
{
    return i < n->nin ? in[i] : NULL;
}

/* An attribute, when present, must have the expected type. */
static int attr_type_ok(const qd_node *n, const char *name, qd_attr_type t, qd_err *e)
{
    const qd_attr *a = qd_attr_find(n, name);
    if (a && a->type != t)
        return qd_errf(e, QD_EINPUT, "attribute %s has the wrong type", name);
    return QD_OK;
}

/* ---- Conv / ConvTranspose attributes ---- */

typedef enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } pad_mode;

typedef struct conv_attrs {
    int transpose;
    int rank;              /* spatial rank the attributes imply, 0 when none say */
    pad_mode autopad;
    int64_t group;
    int nk, ns, nd, np, nop, nos; /* counts of the given lists, 0 when absent */
    int64_t kernel[2], strides[2], dil[2], pads[4], outpad[2], outshape[4];
} conv_attrs;

/* ints attribute `name` into out[max]; a longer list means a rank qdb does
 * not support (per = values per spatial axis). */
static int get_list(const qd_node *n, const char *name, int per, int64_t *out, int *count,
                    int64_t minval, qd_err *e)
{
    const int64_t *v;
    int rc = attr_type_ok(n, name, QD_ATTR_INTS, e);
    if (rc)
        return rc;
    int c = qd_attr_ints(n, name, &v);
    if (c % per)
        return qd_errf(e, QD_EINPUT, "%s has %d values, expected a multiple of %d", name, c, per);
    if (c > 2 * per)
        return qd_errf(e, QD_EINPUT, "%d-D convolution is not supported (%s has %d values)", c / per,
                       name, c);
    for (int i = 0; i < c; i++) {
        if (v[i] < minval)
            return qd_errf(e, QD_EINPUT, "%s[%d] = %lld, must be >= %lld", name, i, (long long)v[i],
                           (long long)minval);
        out[i] = v[i];
    }
    *count = c / per;
    return QD_OK;
}

/* The spatial rank all given lists agree on (0 when none is given). */
static int attrs_rank(conv_attrs *a, qd_err *e)
{
    const int counts[] = {a->nk, a->ns, a->nd, a->np, a->nop};
    const char *names[] = {"kernel_shape", "strides", "dilations", "pads", "output_padding"};
    a->rank = 0;
    for (int i = 0; i < 5; i++) {
        if (!counts[i])
            continue;
        if (a->rank && a->rank != counts[i])
            return qd_errf(e, QD_EINPUT, "%s is for %d-D but another attribute is for %d-D", names[i],
                           counts[i], a->rank);
        a->rank = counts[i];
    }
    return QD_OK;
}

static int conv_parse(const qd_node *n, int transpose, conv_attrs *a, qd_err *e)
{
    memset(a, 0, sizeof *a);
    a->transpose = transpose;
    int rc = attr_type_ok(n, "group", QD_ATTR_INT, e);
    if (rc || (rc = attr_type_ok(n, "auto_pad", QD_ATTR_STRING, e)))
        return rc;
    a->group = qd_attr_int(n, "group", 1);
    if (a->group < 1)
        return qd_errf(e, QD_EINPUT, "group = %lld, must be >= 1", (long long)a->group);
    const char *ap = qd_attr_str(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "NOTSET") || !*ap)
        a->autopad = PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER"))
        a->autopad = PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER"))
        a->autopad = PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID"))
        a->autopad = PAD_VALID;
    else
        return qd_errf(e, QD_EINPUT, "auto_pad '%s' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID", ap);
    rc = get_list(n, "kernel_shape", 1, a->kernel, &a->nk, 1, e);
    if (!rc)
        rc = get_list(n, "strides", 1, a->strides, &a->ns, 1, e);
    if (!rc)
        rc = get_list(n, "dilations", 1, a->dil, &a->nd, 1, e);
    if (!rc)
        rc = get_list(n, "pads", 2, a->pads, &a->np, 0, e);
    if (!rc && transpose)
        rc = get_list(n, "output_padding", 1, a->outpad, &a->nop, 0, e);
    if (!rc && transpose) {
        /* output_shape: spatial dims, or (N, C, spatial...) */
        const int64_t *v;
        rc = attr_type_ok(n, "output_shape", QD_ATTR_INTS, e);
        int c = qd_attr_ints(n, "output_shape", &v);
        if (!rc && c > 4)
            rc = qd_errf(e, QD_EINPUT, "output_shape has %d values; only 1-D and 2-D are supported", c);
        for (int i = 0; !rc && i < c; i++)
            a->outshape[i] = v[i];
        a->nos = c;
    }
    return rc ? rc : attrs_rank(a, e);
}

static void conv_free(void *p) { free(p); }

static int conv_check_common(qd_node *n, const qd_graph *g, int transpose, qd_err *e)
{
    int rc = check_arity(n, 2, 3, e);
    conv_attrs a;
    if (rc || (rc = conv_parse(n, transpose, &a, e)))
        return rc;
    const qd_tensor *w = qd_node_const_input(g, n, 1);
    if (w) {
        if (w->ndim > 4)
            return qd_errf(e, QD_EINPUT, "%d-D convolution is not supported", w->ndim - 2);
        if (w->ndim < 3)
            return qd_errf(e, QD_EINPUT, "W has rank %d, expected 3 or 4", w->ndim);
        if (a.rank && a.rank != w->ndim - 2)
            return qd_errf(e, QD_EINPUT, "attributes are for %d-D but W has rank %d", a.rank, w->ndim);
    }
    conv_attrs *p = malloc(sizeof *p);
    if (!p)
        return qd_errf(e, QD_EFAIL, "out of memory");
    *p = a;
    conv_free(n->priv); /* a second check replaces the first */
    n->priv = p;
    return QD_OK;
}

static int conv_check(qd_node *n, const qd_graph *g, qd_err *e) { return conv_check_common(n, g, 0, e); }
static int convt_check(qd_node *n, const qd_graph *g, qd_err *e) { return conv_check_common(n, g, 1, e); }

/* Parsed attributes: n->priv from check, else parsed into tmp. */
static const conv_attrs *conv_get(const qd_node *n, int transpose, conv_attrs *tmp, qd_err *e)
{
    if (n->priv)
        return n->priv;
    return conv_parse(n, transpose, tmp, e) ? NULL : tmp;
}

/* One Conv axis: output size and leading pad. dk is the dilated kernel. */
static int conv_axis(const conv_attrs *a, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb,
                     int64_t pe, int64_t *out, int64_t *lead, qd_err *e)
{
    int64_t dk = d * (k - 1) + 1;
    if (a->autopad == PAD_SAME_UPPER || a->autopad == PAD_SAME_LOWER) {
        *out = (in + s - 1) / s;
        int64_t total = max64(0, (*out - 1) * s + dk - in);
        *lead = a->autopad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
        return QD_OK;
    }
    if (a->autopad == PAD_VALID)
        pb = pe = 0;
    if (in + pb + pe < dk)
        return qd_errf(e, QD_EINPUT,
                       "kernel %lld (dilated %lld) is larger than the padded input %lld (%lld + pads %lld, %lld)",
                       (long long)k, (long long)dk, (long long)(in + pb + pe), (long long)in,
                       (long long)pb, (long long)pe);
    *out = (in + pb + pe - dk) / s + 1;
    *lead = pb;
    return QD_OK;
}

/* One ConvTranspose axis, ONNX's rules: explicit output_shape (pads derived,
 * the extra one at the start unless SAME_UPPER), SAME_* (output in*s, the
 * extra pad at the end for SAME_UPPER), VALID, or explicit pads. */
static int convt_axis(const conv_attrs *a, int64_t in, int64_t k, int64_t s, int64_t d, int64_t op,
                      int64_t pb, int64_t pe, int64_t want, int64_t *out, int64_t *lead, qd_err *e)
{
    int64_t full = s * (in - 1) + op + d * (k - 1) + 1;
    if (want >= 0 || a->autopad == PAD_SAME_UPPER || a->autopad == PAD_SAME_LOWER) {
        int64_t target = want >= 0 ? want : in * s;
        int64_t total = max64(0, full - target);
        *lead = a->autopad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
        *out = want >= 0 ? want : full - total;
    } else {
        if (a->autopad == PAD_VALID)
            pb = pe = 0;
        *lead = pb;
        *out = full - pb - pe;
    }
    if (*out <= 0)
        return qd_errf(e, QD_EINPUT, "output size %lld is not positive (input %lld, kernel %lld, stride %lld)",
                       (long long)*out, (long long)in, (long long)k, (long long)s);
    return QD_OK;
}

/* Check X, W, B against each other and the attributes; fill s's batch,
 * channels, input size and kernel. Returns the spatial rank (1 or 2) or -1. */
static int conv_tensors(const qd_node *n, const conv_attrs *a, qd_tensor *const *in, qd_conv_shape *s,
                        qd_err *e)
{
    const qd_tensor *x = in[0], *w = in[1], *b = opt_in(n, in, 2);
    char xs[96], ws[96];
    if (need_f32(n->op_type, "X", x, e) || need_f32(n->op_type, "W", w, e) ||
        (b && need_f32(n->op_type, "B", b, e)))
        return -1;
    qd_shape_str(x->ndim, x->shape, xs, sizeof xs);
    qd_shape_str(w->ndim, w->shape, ws, sizeof ws);
    int r = x->ndim - 2;
    if (r > 2)
        return qd_errf(e, QD_EINPUT, "%d-D convolution is not supported (X is %s)", r, xs), -1;
    if (r < 1)
        return qd_errf(e, QD_EINPUT, "X is %s, expected (N, C, [H,] W)", xs), -1;
    if (w->ndim != x->ndim)
        return qd_errf(e, QD_EINPUT, "W is %s but X is %s: ranks differ", ws, xs), -1;
    if (a->rank && a->rank != r)
        return qd_errf(e, QD_EINPUT, "attributes are for %d-D but X is %s", a->rank, xs), -1;
    int64_t G = a->group, C = x->shape[1];
    *s = (qd_conv_shape){.n = x->shape[0], .ci = C, .group = G, .h = r == 2 ? x->shape[2] : 1,
                         .w = x->shape[x->ndim - 1], .kh = r == 2 ? w->shape[2] : 1,
                         .kw = w->shape[w->ndim - 1], .lo = n->fused_clip ? n->clip_lo : -INFINITY,
                         .hi = n->fused_clip ? n->clip_hi : INFINITY};
    if (C % G)
        return qd_errf(e, QD_EINPUT, "X is %s: %lld channels not divisible by group %lld", xs, (long long)C,
                       (long long)G), -1;
    if (!a->transpose && w->shape[1] * G != C)
        return qd_errf(e, QD_EINPUT, "X is %s but W is %s with group %lld: expects %lld input channels", xs,
                       ws, (long long)G, (long long)(w->shape[1] * G)), -1;
    if (!a->transpose && w->shape[0] % G)
        return qd_errf(e, QD_EINPUT, "W is %s: %lld output channels not divisible by group %lld", ws,
                       (long long)w->shape[0], (long long)G), -1;
    if (a->transpose && w->shape[0] != C)
        return qd_errf(e, QD_EINPUT, "X is %s but W is %s: W's first dim must equal X's channels", xs,
                       ws), -1;
    s->co = a->transpose ? w->shape[1] * G : w->shape[0];
    for (int i = 0; i < a->nk; i++)
        if (a->kernel[i] != w->shape[2 + i])
            return qd_errf(e, QD_EINPUT, "kernel_shape[%d] = %lld but W is %s", i, (long long)a->kernel[i],
                           ws), -1;
    if (s->kh < 1 || s->kw < 1)
        return qd_errf(e, QD_EINPUT, "W is %s: empty kernel", ws), -1;
    if (b && (b->ndim != 1 || b->shape[0] != s->co))
        return qd_errf(e, QD_EINPUT, "B has shape %s, expected (%lld)",
                       qd_shape_str(b->ndim, b->shape, xs, sizeof xs), (long long)s->co), -1;
    return r;
}

/* Strides, dilations, output size and leading pad of each spatial axis
 * (axis 0 is H, a dummy of size 1 for 1-D; axis 1 is W). */
static int conv_spatial(const conv_attrs *a, int r, qd_conv_shape *s, qd_err *e)
{
    int64_t ins[2] = {s->h, s->w}, ks[2] = {s->kh, s->kw};
    int64_t st[2] = {1, 1}, dil[2] = {1, 1}, outs[2] = {1, 1}, leads[2] = {0, 0};
    if (a->nos && a->nos != r && a->nos != r + 2)
        return qd_errf(e, QD_EINPUT, "output_shape has %d values for %d-D", a->nos, r);
    for (int ax = 2 - r; ax < 2; ax++) {
        int i = ax - (2 - r); /* index into the attribute lists */
        int64_t pb = a->np ? a->pads[i] : 0, pe = a->np ? a->pads[i + r] : 0, rc;
        st[ax] = a->ns ? a->strides[i] : 1;
        dil[ax] = a->nd ? a->dil[i] : 1;
        if (!a->transpose) {
            rc = conv_axis(a, ins[ax], ks[ax], st[ax], dil[ax], pb, pe, &outs[ax], &leads[ax], e);
        } else {
            int64_t op = a->nop ? a->outpad[i] : 0;
            int64_t want = a->nos ? a->outshape[a->nos == r ? i : i + 2] : -1;
            rc = convt_axis(a, ins[ax], ks[ax], st[ax], dil[ax], op, pb, pe, want, &outs[ax], &leads[ax], e);
        }
        if (rc)
            return (int)rc;
    }
    s->sh = st[0], s->dh = dil[0], s->oh = outs[0], s->pt = leads[0];
    s->sw = st[1], s->dw = dil[1], s->ow = outs[1], s->pl = leads[1];
    return QD_OK;
}

/* Validate the inputs against the attributes; fill s (no clamp) and the
 * output shape (rank of X). */
static int conv_geometry(const qd_node *n, const conv_attrs *a, qd_tensor *const *in,
                         qd_conv_shape *s, int64_t *oshape, qd_err *e)
{
    int r = conv_tensors(n, a, in, s, e);
    if (r < 0)
        return e && e->code ? e->code : QD_EINPUT;
    int rc = conv_spatial(a, r, s, e);
    if (rc)
        return rc;
    oshape[0] = s->n;
    oshape[1] = s->co;
    if (r == 2)
        oshape[2] = s->oh;
    oshape[r + 1] = s->ow;
    return QD_OK;
}

static int conv_infer_common(const qd_node *n, int transpose, qd_tensor *const *in, qd_tensor **out,
                             qd_err *e)
{
    conv_attrs tmp;
    const conv_attrs *a = conv_get(n, transpose, &tmp, e);
    if (!a)
        return e ? e->code : QD_EINPUT;
    qd_conv_shape s;
    int64_t shape[4];
    int rc = conv_geometry(n, a, in, &s, shape, e);
    return rc ? rc : qd_tensor_resize(out[0], QD_F32, in[0]->ndim, shape, e);
}

static int conv_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    return conv_infer_common(n, 0, in, out, e);
}

static int convt_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    return conv_infer_common(n, 1, in, out, e);
}

static int conv_run_common(const qd_node *n, int transpose, qd_tensor *const *in, qd_tensor **out,
                           qd_ctx *ctx)
{
    conv_attrs tmp;
    const conv_attrs *a = conv_get(n, transpose, &tmp, NULL);
    qd_conv_shape s;
    int64_t shape[4];
    if (!a || conv_geometry(n, a, in, &s, shape, NULL))
        return QD_EINPUT;
    const qd_tensor *bt = opt_in(n, in, 2);
    const float *b = bt ? bt->data : NULL;
    return (transpose ? qd_convt : qd_conv)(&s, in[0]->data, in[1]->data, b, out[0]->data, ctx);
}

static int conv_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    return conv_run_common(n, 0, in, out, ctx);
}

static int convt_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    return conv_run_common(n, 1, in, out, ctx);
}

/* ---- Gemm: Y (M, N) = alpha * op(A) @ op(B) + beta * C ---- */

static int gemm_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    int rc = check_arity(n, n->opset >= 11 ? 2 : 3, 3, e);
    if (!rc)
        rc = attr_type_ok(n, "transA", QD_ATTR_INT, e);
    if (!rc)
        rc = attr_type_ok(n, "transB", QD_ATTR_INT, e);
    if (!rc)
        rc = attr_type_ok(n, "alpha", QD_ATTR_FLOAT, e);
    if (!rc)
        rc = attr_type_ok(n, "beta", QD_ATTR_FLOAT, e);
    return rc;
}

/* M, N, K and C's broadcast layout (rows, cols each 1 or full). */
typedef struct gemm_dims { int64_t m, n, k, crows, ccols; int ta, tb; } gemm_dims;

static int gemm_geometry(const qd_node *n, qd_tensor *const *in, gemm_dims *d, qd_err *e)
{
    const qd_tensor *A = in[0], *B = in[1], *C = opt_in(n, in, 2);
    char as[96], bs[96];
    int rc = need_f32("Gemm", "A", A, e);
    if (!rc)
        rc = need_f32("Gemm", "B", B, e);
    if (!rc && C)
        rc = need_f32("Gemm", "C", C, e);
    if (rc)
        return rc;
    qd_shape_str(A->ndim, A->shape, as, sizeof as);
    qd_shape_str(B->ndim, B->shape, bs, sizeof bs);
    if (A->ndim != 2 || B->ndim != 2)
        return qd_errf(e, QD_EINPUT, "Gemm needs 2-D A and B, got %s and %s", as, bs);
    d->ta = qd_attr_int(n, "transA", 0) != 0;
    d->tb = qd_attr_int(n, "transB", 0) != 0;
    d->m = A->shape[d->ta];
    d->k = A->shape[!d->ta];
    d->n = B->shape[!d->tb];
    if (B->shape[d->tb] != d->k)
        return qd_errf(e, QD_EINPUT, "Gemm inner dimensions differ: A is %s (transA=%d), B is %s (transB=%d)",
                       as, d->ta, bs, d->tb);
    d->crows = d->ccols = 0;
    if (C) {
        int64_t cr = C->ndim == 2 ? C->shape[0] : 1, cc = C->ndim >= 1 ? C->shape[C->ndim - 1] : 1;
        if (C->ndim > 2 || (cr != 1 && cr != d->m) || (cc != 1 && cc != d->n))
            return qd_errf(e, QD_EINPUT, "C of shape %s does not broadcast to %lldx%lld",
                           qd_shape_str(C->ndim, C->shape, as, sizeof as), (long long)d->m, (long long)d->n);
        d->crows = cr;
        d->ccols = cc;
    }
    return QD_OK;
}

static int gemm_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    gemm_dims d;
    int rc = gemm_geometry(n, in, &d, e);
    int64_t shape[2] = {d.m, d.n};
    return rc ? rc : qd_tensor_resize(out[0], QD_F32, 2, shape, e);
}

static int gemm_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    gemm_dims d;
    if (gemm_geometry(n, in, &d, NULL))
        return QD_EINPUT;
    float alpha = qd_attr_float(n, "alpha", 1.0f), beta = qd_attr_float(n, "beta", 1.0f);
    float *y = out[0]->data;
    if (!d.crows || beta == 0) {
        beta = 0;
    } else { /* Y = C broadcast to (M, N) */
        const float *c = in[2]->data;
        for (int64_t i = 0; i < d.m; i++)
            for (int64_t j = 0; j < d.n; j++)
                y[i * d.n + j] = c[(d.crows == 1 ? 0 : i) * d.ccols + (d.ccols == 1 ? 0 : j)];
    }
    qd_blas_set_threads(qd_blas_threads_for(ctx->nthreads, d.m * d.n * d.k));
    return qd_sgemm(d.ta, d.tb, d.m, d.n, d.k, alpha, in[0]->data, d.ta ? d.m : d.k, in[1]->data,
                    d.tb ? d.k : d.n, beta, y, d.n);
}

/* ---- MatMul: numpy matmul, batch dims broadcast ---- */

static int matmul_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    return check_arity(n, 2, 2, e);
}

/* Batch layout: output batch dims and, per operand, each batch dim's stride
 * in matrices (0 where broadcast). */
typedef struct mm_dims {
    int64_t m, n, k;
    int nb;                               /* batch rank */
    int64_t bshape[QD_MAX_DIMS], astr[QD_MAX_DIMS], bstr[QD_MAX_DIMS];
    int64_t batch;                        /* product of bshape */
    int orank;
    int64_t oshape[QD_MAX_DIMS];
} mm_dims;

/* strides (in matrices) of the rank-r batch dims src (right-aligned in nb) */
static void mm_strides(int r, const int64_t *src, int nb, const int64_t *bshape, int64_t *str)
{
    int64_t acc = 1;
    for (int i = nb - 1; i >= 0; i--) {
        int j = i - (nb - r);
        int64_t dim = j >= 0 ? src[j] : 1;
        str[i] = dim == 1 && bshape[i] != 1 ? 0 : acc;
        acc *= dim;
    }
}

static int mm_geometry(qd_tensor *const *in, mm_dims *d, qd_err *e)
{
    const qd_tensor *A = in[0], *B = in[1];
    char as[96], bs[96];
    int rc = need_f32("MatMul", "A", A, e);
    if (!rc)
        rc = need_f32("MatMul", "B", B, e);
    if (rc)
        return rc;
    qd_shape_str(A->ndim, A->shape, as, sizeof as);
    qd_shape_str(B->ndim, B->shape, bs, sizeof bs);
    if (A->ndim < 1 || B->ndim < 1)
        return qd_errf(e, QD_EINPUT, "MatMul needs operands of rank >= 1, got %s and %s", as, bs);
    int ra = A->ndim, rb = B->ndim;
    d->m = ra == 1 ? 1 : A->shape[ra - 2];
    d->k = A->shape[ra - 1];
    d->n = rb == 1 ? 1 : B->shape[rb - 1];
    int64_t kb = rb == 1 ? B->shape[0] : B->shape[rb - 2];
    if (kb != d->k)
        return qd_errf(e, QD_EINPUT, "MatMul inner dimensions differ: A is %s, B is %s", as, bs);
    int bra = ra > 2 ? ra - 2 : 0, brb = rb > 2 ? rb - 2 : 0;
    if (qd_broadcast_shape(bra, A->shape, brb, B->shape, &d->nb, d->bshape, NULL))
        return qd_errf(e, QD_EINPUT, "MatMul batch dims do not broadcast: A is %s, B is %s", as, bs);
    mm_strides(bra, A->shape, d->nb, d->bshape, d->astr);
    mm_strides(brb, B->shape, d->nb, d->bshape, d->bstr);
    d->batch = qd_shape_numel(d->nb, d->bshape);
    d->orank = d->nb;
    memcpy(d->oshape, d->bshape, sizeof(int64_t) * (size_t)d->nb);
    if (ra > 1)
        d->oshape[d->orank++] = d->m;
    if (rb > 1)
        d->oshape[d->orank++] = d->n;
    return QD_OK;
}

static int matmul_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    mm_dims d;
    int rc = mm_geometry(in, &d, e);
    return rc ? rc : qd_tensor_resize(out[0], QD_F32, d.orank, d.oshape, e);
}

typedef struct mm_job {
    const mm_dims *d;
    const float *a, *b;
    float *y;
    atomic_int fail;
} mm_job;

/* batch items: A[ia] (m, k) @ B[ib] (k, n) -> Y[i] (m, n) */
static void mm_items(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    mm_job *j = arg;
    const mm_dims *d = j->d;
    for (int64_t i = begin; i < end; i++) {
        int64_t ia = 0, ib = 0, rem = i;
        for (int ax = d->nb - 1; ax >= 0; ax--) {
            int64_t idx = rem % d->bshape[ax];
            rem /= d->bshape[ax];
            ia += idx * d->astr[ax];
            ib += idx * d->bstr[ax];
        }
        if (qd_sgemm(0, 0, d->m, d->n, d->k, 1.0f, j->a + ia * d->m * d->k, d->k, j->b + ib * d->k * d->n,
                     d->n, 0.0f, j->y + i * d->m * d->n, d->n))
            atomic_store(&j->fail, 1);
    }
}

static int matmul_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    mm_dims d;
    if (mm_geometry(in, &d, NULL))
        return QD_EINPUT;
    const float *a = in[0]->data, *b = in[1]->data;
    float *y = out[0]->data;
    int a_full = 1, b_shared = 1; /* A not broadcast, B the same matrix for all */
    for (int i = 0; i < d.nb; i++) {
        a_full &= d.astr[i] != 0 || d.bshape[i] == 1;
        b_shared &= d.bstr[i] == 0 || d.bshape[i] == 1;
    }
    if (a_full && b_shared) { /* (batch*m, k) @ (k, n) in one call */
        qd_blas_set_threads(qd_blas_threads_for(ctx->nthreads, d.batch * d.m * d.n * d.k));
        return qd_sgemm(0, 0, d.batch * d.m, d.n, d.k, 1.0f, a, d.k, b, d.n, 0.0f, y, d.n);
    }
    mm_job j = {.d = &d, .a = a, .b = b, .y = y};
    atomic_init(&j.fail, 0);
    if (ctx->nthreads > 1 && d.batch >= ctx->nthreads) {
        qd_blas_set_threads(1);
        qd_ctx_for(ctx, d.batch, 1, mm_items, &j);
    } else {
        qd_blas_set_threads(ctx->nthreads);
        mm_items(&j, 0, d.batch, 0);
    }
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

const qd_op qd_ops_conv[] = {
    {"Conv", conv_check, conv_infer, conv_run, conv_free},
    {"ConvTranspose", convt_check, convt_infer, convt_run, conv_free},
    {"Gemm", gemm_check, gemm_infer, gemm_run, NULL},
    {"MatMul", matmul_check, matmul_infer, matmul_run, NULL},
    {0},
};
