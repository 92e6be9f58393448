/* op_shape.c - data movement and shape operators. All are dtype-generic:
 * elements are moved as qd_dtype_size() bytes, except Resize's linear mode
 * (float32) and Range (arithmetic). Shape-like inputs (Reshape's shape, Slice's
 * starts, ...) are read from the actual input data in infer(). */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXD QD_MAX_DIMS
#define VIEWD (2 * QD_MAX_DIMS) /* Tile views a rank-r tensor as 2r dims */

/* ---- small helpers ------------------------------------------------------ */

/* Optional input i: NULL when omitted (or beyond the node's input count). */
static const qd_tensor *opt_in(const qd_node *n, qd_tensor *const *in, int i)
{
    return i < n->nin ? in[i] : NULL;
}

static const char *shp(const qd_tensor *t, char *buf, size_t len)
{
    return qd_shape_str(t->ndim, t->shape, buf, len);
}

/* Input/output counts and required inputs, for check(). */
static int check_arity(const qd_node *n, int imin, int imax, int omin, int omax, qd_err *e)
{
    if (n->nin < imin || n->nin > imax)
        return qd_errf(e, QD_EINPUT, "%s-%d takes %d to %d inputs, got %d",
                       n->op_type, n->opset, imin, imax, n->nin);
    if (n->nout < omin || n->nout > omax)
        return qd_errf(e, QD_EINPUT, "%s-%d takes %d to %d outputs, got %d",
                       n->op_type, n->opset, omin, omax, n->nout);
    for (int i = 0; n->in && i < imin; i++)
        if (n->in[i] < 0)
            return qd_errf(e, QD_EINPUT, "%s: input %d is required", n->op_type, i);
    return QD_OK;
}

/* Constant input i of n at load time, or NULL (g may be NULL in unit tests). */
static const qd_tensor *const_in(const qd_graph *g, const qd_node *n, int i)
{
    if (!g || !n->in || i >= n->nin || n->in[i] < 0)
        return NULL;
    return qd_node_const_input(g, n, i);
}

/* Read an integer tensor (int32/int64, scalar or 1-D) of at most max values. */
static int get_ints(const qd_tensor *t, const char *what, int64_t *v, int max, int *cnt, qd_err *e)
{
    if (t->dtype != QD_I64 && t->dtype != QD_I32)
        return qd_errf(e, QD_EINPUT, "%s must be int64 or int32, got %s", what, qd_dtype_name(t->dtype));
    if (t->ndim > 1)
        return qd_errf(e, QD_EINPUT, "%s must be 1-D, got rank %d", what, t->ndim);
    int64_t k = qd_tensor_numel(t);
    if (k > max)
        return qd_errf(e, QD_EINPUT, "%s has %lld values, at most %d allowed", what, (long long)k, max);
    for (int64_t i = 0; i < k; i++)
        v[i] = qd_tensor_get_i64(t, i);
    *cnt = (int)k;
    return QD_OK;
}

/* Axes from the ints attribute `name` (copied into v). */
static int attr_ints_copy(const qd_node *n, const char *name, int64_t *v, int max, int *cnt, qd_err *e)
{
    const int64_t *a;
    int k = qd_attr_ints(n, name, &a);
    if (k > max)
        return qd_errf(e, QD_EINPUT, "%s: attribute %s has %d values, at most %d allowed",
                       n->op_type, name, k, max);
    for (int i = 0; i < k; i++)
        v[i] = a[i];
    *cnt = k;
    return QD_OK;
}

/* Normalize axes against rank; reject out-of-range and repeated axes. */
static int norm_axes(const int64_t *axes, int k, int rank, int *out, const char *op, qd_err *e)
{
    if (k > 0 && rank == 0)
        return qd_errf(e, QD_EINPUT, "%s: axes given for a scalar input", op);
    for (int i = 0; i < k; i++) {
        if (qd_norm_axis(axes[i], rank, &out[i], e))
            return qd_errf(e, QD_EINPUT, "%s: axis %lld is out of range for rank %d",
                           op, (long long)axes[i], rank);
        for (int j = 0; j < i; j++)
            if (out[j] == out[i])
                return qd_errf(e, QD_EINPUT, "%s: axis %d is repeated", op, out[i]);
    }
    return QD_OK;
}

static uint16_t f16_from_f32(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int32_t be = (int32_t)((x >> 23) & 0xff), ex = be - 127 + 15;
    if (be == 0xff)
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (ex >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (ex <= 0) {
        if (ex < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - ex;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)ex << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)h;
}

/* Store v as one element of dtype dt at p (integers truncate and wrap). */
static void put_scalar(void *p, qd_dtype dt, double v)
{
    int64_t iv = 0;
    if (v == v)
        iv = v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
    switch (dt) {
    case QD_F32: { float f = (float)v; memcpy(p, &f, 4); break; }
    case QD_F64: memcpy(p, &v, 8); break;
    case QD_F16: { uint16_t h = f16_from_f32((float)v); memcpy(p, &h, 2); break; }
    case QD_BOOL: *(uint8_t *)p = v != 0; break;
    case QD_U8: case QD_I8: *(uint8_t *)p = (uint8_t)iv; break;
    case QD_U16: case QD_I16: { uint16_t h = (uint16_t)iv; memcpy(p, &h, 2); break; }
    case QD_U32: case QD_I32: { uint32_t w = (uint32_t)iv; memcpy(p, &w, 4); break; }
    case QD_U64: case QD_I64: memcpy(p, &iv, 8); break;
    default: break;
    }
}

/* n copies of the es-byte element at val. */
static void fill_elems(char *dst, const void *val, int64_t n, size_t es)
{
    if (n <= 0)
        return;
    const unsigned char *v = val;
    int same = 1;
    for (size_t i = 1; i < es; i++)
        same &= v[i] == v[0];
    if (same) {
        memset(dst, v[0], (size_t)n * es);
        return;
    }
    memcpy(dst, val, es);
    size_t done = es, total = (size_t)n * es;
    while (done < total) { /* doubling copies */
        size_t k = done < total - done ? done : total - done;
        memcpy(dst + done, dst, k);
        done += k;
    }
}

/* Items per parallel chunk so that each moves roughly 32 KB. */
static int64_t grain_for(size_t bytes_per_item)
{
    size_t g = bytes_per_item ? (size_t)32768 / bytes_per_item : 1;
    return g ? (int64_t)g : 1;
}

/* ---- parallel memcpy ------------------------------------------------------ */

#define MCPY_CHUNK ((size_t)1 << 16)

typedef struct mcpy_job {
    char *d;
    const char *s;
    size_t n;
} mcpy_job;

static void mcpy_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const mcpy_job *j = arg;
    size_t lo = (size_t)b * MCPY_CHUNK, hi = (size_t)end * MCPY_CHUNK;
    if (hi > j->n)
        hi = j->n;
    memcpy(j->d + lo, j->s + lo, hi - lo);
}

static void par_memcpy(qd_ctx *ctx, void *d, const void *s, size_t n)
{
    if (n == 0 || d == s)
        return;
    if (n < ((size_t)1 << 20)) {
        memcpy(d, s, n);
        return;
    }
    mcpy_job j = {d, s, n};
    qd_ctx_for(ctx, (int64_t)((n + MCPY_CHUNK - 1) / MCPY_CHUNK), 4, mcpy_range, &j);
}

/* ---- strided views ---------------------------------------------------------
 * A view describes a dense destination of `shape` whose element (i0, .., ik)
 * comes from src element base + sum(i_d * stride_d) (strides in elements, may
 * be 0 for broadcast or negative for reversed slices). Transpose, Slice,
 * Expand, Tile and DepthToSpace/SpaceToDepth are all one view copy. */

typedef struct view {
    int ndim;
    int64_t shape[VIEWD];
    int64_t stride[VIEWD];
    int64_t base;
} view;

/* C-order element strides of a dense shape. */
static void dense_strides(int ndim, const int64_t *shape, int64_t *st)
{
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= shape[d];
    }
}

/* Drop size-1 dims and merge dims that are contiguous with their inner one. */
static void view_simplify(view *v)
{
    int k = 0;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] == 1)
            continue;
        if (k > 0 && v->stride[k - 1] == v->stride[d] * v->shape[d]) {
            v->shape[k - 1] *= v->shape[d];
            v->stride[k - 1] = v->stride[d];
            continue;
        }
        v->shape[k] = v->shape[d];
        v->stride[k] = v->stride[d];
        k++;
    }
    if (k == 0) {
        v->shape[0] = 1;
        v->stride[0] = 1;
        k = 1;
    }
    v->ndim = k;
}

/* n elements from src with element stride st into dense dst. */
static void copy_run(char *dst, const char *src, int64_t n, int64_t st, size_t es)
{
    if (st == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
#define RUN(T)                                                                  \
    do {                                                                        \
        T *d = (T *)(void *)dst;                                                \
        const T *s = (const T *)(const void *)src;                              \
        for (int64_t i = 0; i < n; i++)                                         \
            d[i] = s[i * st];                                                   \
    } while (0)
    switch (es) {
    case 1: RUN(uint8_t); break;
    case 2: RUN(uint16_t); break;
    case 4: RUN(uint32_t); break;
    case 8: RUN(uint64_t); break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (size_t)i * es, src + (i * st) * (int64_t)es, es);
    }
#undef RUN
}

/* Tile [a0, a1) x [b0, b1) of a dense (A x B) plane from src where (a, b)
 * is at a*1 + b*sb: the inner step of a transpose. */
static void copy_tile(char *dst, const char *src, int64_t B, int64_t sb, int64_t a0, int64_t a1, int64_t b0,
                      int64_t b1, size_t es)
{
#define TILE(TY)                                                                \
    do {                                                                        \
        TY *restrict d = (TY *)(void *)dst;                                     \
        const TY *restrict s = (const TY *)(const void *)src;                   \
        for (int64_t a = a0; a < a1; a++)                                       \
            for (int64_t b = b0; b < b1; b++)                                   \
                d[a * B + b] = s[a + b * sb];                                   \
    } while (0)
    switch (es) {
    case 1: TILE(uint8_t); break;
    case 2: TILE(uint16_t); break;
    case 4: TILE(uint32_t); break;
    case 8: TILE(uint64_t); break;
    default:
        for (int64_t a = a0; a < a1; a++)
            for (int64_t b = b0; b < b1; b++)
                memcpy(dst + (size_t)(a * B + b) * es, src + (a + b * sb) * (int64_t)es, es);
    }
#undef TILE
}

enum { TILE_N = 32 };

typedef struct view_job {
    char *dst;
    const char *src;
    size_t es;
    view v;     /* simplified */
    int nouter; /* dims iterated by the odometer; the rest form one unit */
    int tiled;  /* unit is a 2-D plane (last two dims) copied in tiles */
    int64_t ta, tb; /* tiles per plane along the last two dims (tiled) */
} view_job;

/* Source offset of outer unit r. */
static int64_t view_offset(const view_job *j, int64_t r, int64_t *idx)
{
    int64_t off = j->v.base;
    for (int d = j->nouter - 1; d >= 0; d--) {
        idx[d] = r % j->v.shape[d];
        r /= j->v.shape[d];
        off += idx[d] * j->v.stride[d];
    }
    return off;
}

/* Items are units (runs along the last dim). */
static void view_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const view_job *j = arg;
    const view *v = &j->v;
    int64_t idx[VIEWD];
    int last = v->ndim - 1;
    int64_t unit = v->shape[last];
    int64_t off = view_offset(j, b, idx);
    char *dst = j->dst + (size_t)(b * unit) * j->es;
    for (int64_t r = b; r < end; r++) {
        copy_run(dst, j->src + off * (int64_t)j->es, unit, v->stride[last], j->es);
        dst += (size_t)unit * j->es;
        for (int d = j->nouter - 1; d >= 0; d--) {
            off += v->stride[d];
            if (++idx[d] < v->shape[d])
                break;
            off -= v->stride[d] * v->shape[d];
            idx[d] = 0;
        }
    }
}

/* Items are TILE_N x TILE_N tiles of the planes formed by the last two dims. */
static void view_tiles(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const view_job *j = arg;
    const view *v = &j->v;
    int64_t idx[VIEWD], A = v->shape[v->ndim - 2], B = v->shape[v->ndim - 1], per = j->ta * j->tb;
    for (int64_t it = b; it < end; it++) {
        int64_t plane = it / per, t = it % per, a0 = t / j->tb * TILE_N, b0 = t % j->tb * TILE_N;
        int64_t a1 = a0 + TILE_N < A ? a0 + TILE_N : A, b1 = b0 + TILE_N < B ? b0 + TILE_N : B;
        const char *src = j->src + view_offset(j, plane, idx) * (int64_t)j->es;
        copy_tile(j->dst + (size_t)(plane * A * B) * j->es, src, B, v->stride[v->ndim - 1], a0, a1, b0, b1, j->es);
    }
}

/* Copy view v of src into dense dst (numel of v elements of es bytes). */
static void copy_view(qd_ctx *ctx, void *dst, const void *src, size_t es, const view *v)
{
    view_job j = {dst, src, es, *v, 0, 0, 0, 0};
    for (int d = 0; d < v->ndim; d++)
        if (v->shape[d] == 0)
            return;
    view_simplify(&j.v);
    int last = j.v.ndim - 1;
    /* inner dim strided but the one before it contiguous: tile the pair */
    j.tiled = last >= 1 && j.v.stride[last] != 1 && j.v.stride[last] != 0 &&
              j.v.stride[last - 1] == 1 && j.v.shape[last] >= 8 && j.v.shape[last - 1] >= 8;
    j.nouter = j.tiled ? last - 1 : last;
    int64_t units = 1;
    for (int d = 0; d < j.nouter; d++)
        units *= j.v.shape[d];
    if (j.tiled) {
        j.ta = (j.v.shape[last - 1] + TILE_N - 1) / TILE_N;
        j.tb = (j.v.shape[last] + TILE_N - 1) / TILE_N;
        qd_ctx_for(ctx, units * j.ta * j.tb, grain_for((size_t)(TILE_N * TILE_N) * es), view_tiles, &j);
    } else {
        qd_ctx_for(ctx, units, grain_for((size_t)j.v.shape[last] * es), view_range, &j);
    }
}

/* ---- Identity-like ops: one dense copy ------------------------------------ */

static int copy_run_op(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    par_memcpy(ctx, out[0]->data, in[0]->data, qd_tensor_nbytes(in[0]));
    return QD_OK;
}

static int check_one_one(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    return check_arity(n, 1, 1, 1, 1, e);
}

static int identity_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    return qd_tensor_resize(out[0], in[0]->dtype, in[0]->ndim, in[0]->shape, e);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze --------------------------------- */

static int reshape_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 5)
        return qd_errf(e, QD_EINPUT, "Reshape-%d (shape attribute) is not supported; need opset 5+", n->opset);
    return check_arity(n, 2, 2, 1, 1, e);
}

/* Reshape's output shape: 0 copies the input dim (unless allowzero), one -1
 * is inferred from the element count. */
static int reshape_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t s[MAXD + 1], dims[MAXD];
    int k, neg = -1, zero = 0, rc;
    char b1[96], b2[96];
    if ((rc = get_ints(in[1], "Reshape shape", s, MAXD, &k, e)))
        return rc;
    int allowzero = n->opset >= 14 && qd_attr_int(n, "allowzero", 0) != 0;
    int64_t known = 1;
    for (int i = 0; i < k; i++) {
        int64_t d = s[i];
        if (d == 0 && !allowzero) {
            if (i >= x->ndim)
                return qd_errf(e, QD_EINPUT, "Reshape: shape[%d] = 0 copies input dim %d, but the input %s has rank %d",
                               i, i, shp(x, b1, sizeof b1), x->ndim);
            d = x->shape[i];
        } else if (d == -1) {
            if (neg >= 0)
                return qd_errf(e, QD_EINPUT, "Reshape: shape has more than one -1 (at %d and %d)", neg, i);
            neg = i;
            dims[i] = 1;
            continue;
        } else if (d < -1) {
            return qd_errf(e, QD_EINPUT, "Reshape: shape[%d] = %lld is invalid", i, (long long)d);
        }
        zero |= s[i] == 0;
        dims[i] = d;
        if (d > 0 && known > INT64_MAX / d)
            return qd_errf(e, QD_EINPUT, "Reshape: shape has too many elements");
        known *= d;
    }
    int64_t numel = qd_tensor_numel(x);
    if (neg >= 0) {
        if (allowzero && zero)
            return qd_errf(e, QD_EINPUT, "Reshape: allowzero=1 shape has both 0 and -1");
        if (known == 0 || numel % known)
            return qd_errf(e, QD_EINPUT, "Reshape: cannot infer the -1 dim: %lld elements of %s do not divide by %lld",
                           (long long)numel, shp(x, b1, sizeof b1), (long long)known);
        dims[neg] = numel / known;
        known = numel;
    }
    if (known != numel)
        return qd_errf(e, QD_EINPUT, "Reshape: cannot reshape %s (%lld elements) to %s (%lld elements)",
                       shp(x, b1, sizeof b1), (long long)numel, qd_shape_str(k, dims, b2, sizeof b2),
                       (long long)known);
    return qd_tensor_resize(out[0], x->dtype, k, dims, e);
}

static int flatten_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t axis = qd_attr_int(n, "axis", 1);
    if (axis < -x->ndim || axis > x->ndim)
        return qd_errf(e, QD_EINPUT, "Flatten: axis %lld is out of range for rank %d", (long long)axis, x->ndim);
    if (axis < 0)
        axis += x->ndim;
    int64_t dims[2] = {qd_shape_numel((int)axis, x->shape),
                       qd_shape_numel(x->ndim - (int)axis, x->shape + axis)};
    return qd_tensor_resize(out[0], x->dtype, 2, dims, e);
}

static int squeeze_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    return check_arity(n, 1, n->opset >= 13 ? 2 : 1, 1, 1, e);
}

/* Axes of Squeeze/Unsqueeze: attribute before opset 13, input 1 after. */
static int sq_axes(const qd_node *n, qd_tensor *const *in, int64_t *axes, int *k, int *given, qd_err *e)
{
    if (n->opset < 13) {
        *given = qd_attr_find(n, "axes") != NULL;
        return attr_ints_copy(n, "axes", axes, MAXD, k, e);
    }
    const qd_tensor *a = opt_in(n, in, 1);
    *given = a != NULL && qd_tensor_numel(a) > 0; /* empty axes: as if omitted (ORT) */
    *k = 0;
    return a ? get_ints(a, "axes", axes, MAXD, k, e) : QD_OK;
}

static int squeeze_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t axes[MAXD], dims[MAXD];
    int ax[MAXD], k, given, rc, drop[MAXD] = {0}, r = 0;
    char b[96];
    if ((rc = sq_axes(n, in, axes, &k, &given, e)) || (rc = norm_axes(axes, k, x->ndim, ax, "Squeeze", e)))
        return rc;
    for (int i = 0; i < k; i++) {
        if (x->shape[ax[i]] != 1)
            return qd_errf(e, QD_EINPUT, "Squeeze: axis %d of %s has size %lld, not 1",
                           ax[i], shp(x, b, sizeof b), (long long)x->shape[ax[i]]);
        drop[ax[i]] = 1;
    }
    for (int d = 0; d < x->ndim; d++)
        if (!(given ? drop[d] : x->shape[d] == 1))
            dims[r++] = x->shape[d];
    return qd_tensor_resize(out[0], x->dtype, r, dims, e);
}

static int unsqueeze_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 13 && !qd_attr_find(n, "axes"))
        return qd_errf(e, QD_EINPUT, "Unsqueeze-%d: attribute axes is required", n->opset);
    return n->opset >= 13 ? check_arity(n, 2, 2, 1, 1, e) : check_arity(n, 1, 1, 1, 1, e);
}

static int unsqueeze_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t axes[MAXD], dims[MAXD];
    int ax[MAXD], k, given, rc, ins[MAXD] = {0};
    if ((rc = sq_axes(n, in, axes, &k, &given, e)))
        return rc;
    int r = x->ndim + k;
    if (r > MAXD)
        return qd_errf(e, QD_EINPUT, "Unsqueeze: output rank %d exceeds %d", r, MAXD);
    if ((rc = norm_axes(axes, k, r, ax, "Unsqueeze", e)))
        return rc;
    for (int i = 0; i < k; i++)
        ins[ax[i]] = 1;
    for (int d = 0, s = 0; d < r; d++)
        dims[d] = ins[d] ? 1 : x->shape[s++];
    return qd_tensor_resize(out[0], x->dtype, r, dims, e);
}

/* ---- Shape, Size ----------------------------------------------------------- */

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Shape-15's [start, end) range, clamped to [0, rank]. */
static void shape_range(const qd_node *n, int rank, int64_t *s, int64_t *t)
{
    int64_t a = 0, b = rank;
    if (n->opset >= 15) {
        a = qd_attr_int(n, "start", 0);
        b = qd_attr_int(n, "end", rank);
    }
    a = clamp64(a < 0 ? a + rank : a, 0, rank);
    b = clamp64(b < 0 ? b + rank : b, 0, rank);
    *s = a;
    *t = b > a ? b : a;
}

static int shape_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int64_t s, t;
    shape_range(n, in[0]->ndim, &s, &t);
    int64_t len = t - s;
    return qd_tensor_resize(out[0], QD_I64, 1, &len, e);
}

static int shape_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)ctx;
    int64_t s, t;
    shape_range(n, in[0]->ndim, &s, &t);
    for (int64_t i = s; i < t; i++)
        ((int64_t *)out[0]->data)[i - s] = in[0]->shape[i];
    return QD_OK;
}

static int size_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    (void)in;
    return qd_tensor_resize(out[0], QD_I64, 0, NULL, e);
}

static int size_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    (void)ctx;
    *(int64_t *)out[0]->data = qd_tensor_numel(in[0]);
    return QD_OK;
}

/* ---- Dropout (inference: identity) ------------------------------------------ */

static int dropout_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_arity(n, 1, n->opset >= 12 ? 3 : 1, 1, 2, e);
    if (rc)
        return rc;
    const qd_tensor *tm = const_in(g, n, 2), *ratio = const_in(g, n, 1);
    if (tm && qd_tensor_numel(tm) == 1 && qd_tensor_get_i64(tm, 0) &&
        !(ratio && qd_tensor_numel(ratio) == 1 && qd_tensor_get_f64(ratio, 0) == 0))
        return qd_errf(e, QD_EINPUT, "Dropout with training_mode=true is random; qdb runs inference only");
    return QD_OK;
}

static int dropout_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0], *tm = opt_in(n, in, 2), *ratio = opt_in(n, in, 1);
    if (tm && qd_tensor_numel(tm) >= 1 && qd_tensor_get_i64(tm, 0)) {
        double r = ratio && qd_tensor_numel(ratio) >= 1 ? qd_tensor_get_f64(ratio, 0) : 0.5;
        if (r != 0)
            return qd_errf(e, QD_EINPUT, "Dropout with training_mode=true and ratio %g is random; "
                           "qdb runs inference only", r);
    }
    int rc = qd_tensor_resize(out[0], x->dtype, x->ndim, x->shape, e);
    if (!rc && n->nout > 1 && out[1]) /* mask: bool from opset 10, T before */
        rc = qd_tensor_resize(out[1], n->opset >= 10 ? QD_BOOL : x->dtype, x->ndim, x->shape, e);
    return rc;
}

static int dropout_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    par_memcpy(ctx, out[0]->data, in[0]->data, qd_tensor_nbytes(in[0]));
    if (n->nout > 1 && out[1]) {
        unsigned char one[16];
        put_scalar(one, out[1]->dtype, 1.0);
        fill_elems(out[1]->data, one, qd_tensor_numel(out[1]), qd_dtype_size(out[1]->dtype));
    }
    return QD_OK;
}

/* ---- Constant ---------------------------------------------------------------- */

/* The Constant's value as a borrowed tensor view over attribute storage. */
static int constant_value(const qd_node *n, qd_tensor *t, qd_err *e)
{
    const qd_attr *a = NULL;
    int found = 0;
    static const char *const names[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints", "value_string", "value_strings", "sparse_value"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const qd_attr *x = qd_attr_find(n, names[i]);
        if (x) {
            a = x;
            found++;
        }
    }
    if (found != 1)
        return qd_errf(e, QD_EINPUT, "Constant needs exactly one value attribute, got %d", found);
    memset(t, 0, sizeof *t);
    if (!strcmp(a->name, "value") && a->type == QD_ATTR_TENSOR && a->t) {
        *t = *a->t;
        t->cap = 0;
        if (!qd_dtype_size(t->dtype))
            return qd_errf(e, QD_EINPUT, "Constant of dtype %s is not supported", qd_dtype_name(t->dtype));
        return QD_OK;
    }
    if (!strcmp(a->name, "value_float") && a->type == QD_ATTR_FLOAT) {
        t->dtype = QD_F32;
        t->data = (void *)&a->f;
    } else if (!strcmp(a->name, "value_int") && a->type == QD_ATTR_INT) {
        t->dtype = QD_I64;
        t->data = (void *)&a->i;
    } else if (!strcmp(a->name, "value_floats") && a->type == QD_ATTR_FLOATS) {
        t->dtype = QD_F32;
        t->ndim = 1;
        t->shape[0] = a->n;
        t->data = a->floats;
    } else if (!strcmp(a->name, "value_ints") && a->type == QD_ATTR_INTS) {
        t->dtype = QD_I64;
        t->ndim = 1;
        t->shape[0] = a->n;
        t->data = a->ints;
    } else {
        return qd_errf(e, QD_EINPUT, "Constant attribute %s is not supported", a->name);
    }
    return QD_OK;
}

static int constant_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    qd_tensor t;
    int rc = check_arity(n, 0, 0, 1, 1, e);
    return rc ? rc : constant_value(n, &t, e);
}

static int constant_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)in;
    qd_tensor t;
    int rc = constant_value(n, &t, e);
    return rc ? rc : qd_tensor_resize(out[0], t.dtype, t.ndim, t.shape, e);
}

static int constant_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)in;
    qd_tensor t;
    int rc = constant_value(n, &t, NULL);
    if (rc)
        return rc;
    par_memcpy(ctx, out[0]->data, t.data, qd_tensor_nbytes(&t));
    return QD_OK;
}

/* ---- Concat, Split ----------------------------------------------------------
 * Both view the tensors as (outer, axis * inner) rows: per outer index, each
 * input's row is one memcpy. */

static int concat_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (!qd_attr_find(n, "axis"))
        return qd_errf(e, QD_EINPUT, "Concat: attribute axis is required");
    return check_arity(n, 1, 1 << 20, 1, 1, e);
}

static int concat_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int axis, rc;
    char b1[96], b2[96];
    for (int i = 0; i < n->nin; i++)
        if (!in[i])
            return qd_errf(e, QD_EINPUT, "Concat: input %d is missing", i);
    if (x->ndim == 0)
        return qd_errf(e, QD_EINPUT, "Concat: inputs must have rank >= 1, input 0 is a scalar");
    if ((rc = qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, e)))
        return rc;
    int64_t dims[MAXD];
    memcpy(dims, x->shape, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < n->nin; i++) {
        const qd_tensor *t = in[i];
        if (t->dtype != x->dtype)
            return qd_errf(e, QD_EINPUT, "Concat: input %d is %s, input 0 is %s",
                           i, qd_dtype_name(t->dtype), qd_dtype_name(x->dtype));
        int same = t->ndim == x->ndim;
        for (int d = 0; same && d < x->ndim; d++)
            same = d == axis || t->shape[d] == x->shape[d];
        if (!same)
            return qd_errf(e, QD_EINPUT, "Concat: input %d has shape %s, incompatible with input 0 %s on axis %d",
                           i, shp(t, b1, sizeof b1), shp(x, b2, sizeof b2), axis);
        dims[axis] += t->shape[axis];
    }
    return qd_tensor_resize(out[0], x->dtype, x->ndim, dims, e);
}

/* Rows of `outer` blocks: tensor k's block is rowlen[k] bytes at ptr[k]. */
typedef struct rows_job {
    int k;
    char **ptr;        /* the k split parts (or concat inputs) */
    const size_t *len; /* bytes of one part's block per outer index */
    char *whole;       /* the concatenated tensor */
    size_t wlen;       /* bytes of the whole tensor's block per outer index */
    int split;         /* 1: whole -> parts, 0: parts -> whole */
} rows_job;

static void rows_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const rows_job *j = arg;
    for (int64_t o = b; o < end; o++) {
        char *w = j->whole + (size_t)o * j->wlen;
        for (int k = 0; k < j->k; k++) {
            if (j->ptr[k]) { /* NULL for an omitted Split output */
                char *p = j->ptr[k] + (size_t)o * j->len[k];
                if (j->split)
                    memcpy(p, w, j->len[k]);
                else
                    memcpy(w, p, j->len[k]);
            }
            w += j->len[k];
        }
    }
}

/* outer = prod(shape[:axis]); part k's block = parts[k].shape[axis] * inner * es. */
static int rows_copy(qd_ctx *ctx, const qd_tensor *whole, int axis, qd_tensor *const *parts, int k, int split)
{
    char *ptrbuf[16];
    size_t lenbuf[16];
    char **ptr = k <= 16 ? ptrbuf : malloc((size_t)k * sizeof *ptr);
    size_t *len = k <= 16 ? lenbuf : malloc((size_t)k * sizeof *len);
    if (!ptr || !len) {
        if (k > 16) {
            free(ptr);
            free(len);
        }
        return QD_EFAIL;
    }
    size_t es = qd_dtype_size(whole->dtype);
    int64_t outer = qd_shape_numel(axis, whole->shape);
    int64_t inner = qd_shape_numel(whole->ndim - axis - 1, whole->shape + axis + 1);
    for (int i = 0; i < k; i++) {
        ptr[i] = parts[i] ? parts[i]->data : NULL;
        len[i] = parts[i] ? (size_t)(parts[i]->shape[axis] * inner) * es : 0;
    }
    rows_job j = {k, ptr, len, whole->data, (size_t)(whole->shape[axis] * inner) * es, split};
    if (outer * (int64_t)j.wlen > 0)
        qd_ctx_for(ctx, outer, grain_for(j.wlen), rows_range, &j);
    if (k > 16) {
        free(ptr);
        free(len);
    }
    return QD_OK;
}

static int concat_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    int axis;
    if (qd_norm_axis(qd_attr_int(n, "axis", 0), out[0]->ndim, &axis, NULL))
        return QD_EINPUT;
    return rows_copy(ctx, out[0], axis, in, n->nin, 0);
}

static int split_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset >= 13 && qd_attr_find(n, "split"))
        return qd_errf(e, QD_EINPUT, "Split-%d: split is an input from opset 13, not an attribute", n->opset);
    return check_arity(n, 1, n->opset >= 13 ? 2 : 1, 1, 1 << 20, e);
}

/* Sizes of the parts along axis: attribute (opset < 13), input 1, or equal. */
static int split_sizes(const qd_node *n, qd_tensor *const *in, int axis, int64_t *sz, qd_err *e)
{
    const qd_tensor *x = in[0];
    int k = 0, rc;
    int64_t dim = x->shape[axis];
    const qd_tensor *st = n->opset >= 13 ? opt_in(n, in, 1) : NULL;
    int given = n->opset < 13 ? qd_attr_find(n, "split") != NULL : st != NULL;
    if (given) {
        rc = n->opset < 13 ? attr_ints_copy(n, "split", sz, n->nout, &k, e)
                           : get_ints(st, "Split split", sz, n->nout, &k, e);
        if (rc || k != n->nout)
            return qd_errf(e, QD_EINPUT, "Split: split has %d sizes for %d outputs", k, n->nout);
        int64_t sum = 0;
        for (int i = 0; i < k; i++) {
            if (sz[i] < 0)
                return qd_errf(e, QD_EINPUT, "Split: split[%d] = %lld is negative", i, (long long)sz[i]);
            sum += sz[i];
        }
        if (sum != dim)
            return qd_errf(e, QD_EINPUT, "Split: sizes sum to %lld but axis %d has %lld elements",
                           (long long)sum, axis, (long long)dim);
        return QD_OK;
    }
    if (dim % n->nout)
        return qd_errf(e, QD_EINPUT, "Split: axis %d of size %lld does not split into %d equal parts",
                       axis, (long long)dim, n->nout);
    for (int i = 0; i < n->nout; i++)
        sz[i] = dim / n->nout;
    return QD_OK;
}

static int split_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int axis, rc;
    if (x->ndim == 0)
        return qd_errf(e, QD_EINPUT, "Split: input must have rank >= 1");
    if ((rc = qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, e)))
        return rc;
    int64_t *sz = malloc((size_t)n->nout * sizeof *sz);
    if (!sz)
        return qd_errf(e, QD_EFAIL, "out of memory");
    rc = split_sizes(n, in, axis, sz, e);
    for (int i = 0; !rc && i < n->nout; i++) {
        if (!out[i])
            continue;
        int64_t dims[MAXD];
        memcpy(dims, x->shape, sizeof dims);
        dims[axis] = sz[i];
        rc = qd_tensor_resize(out[i], x->dtype, x->ndim, dims, e);
    }
    free(sz);
    return rc;
}

static int split_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    int axis;
    if (qd_norm_axis(qd_attr_int(n, "axis", 0), in[0]->ndim, &axis, NULL))
        return QD_EINPUT;
    /* an omitted output still occupies its part of the axis: recompute sizes */
    qd_tensor *tmp = NULL;
    qd_tensor **parts = out;
    int omitted = 0;
    for (int i = 0; i < n->nout; i++)
        omitted |= out[i] == NULL;
    if (omitted) {
        int64_t *sz = malloc((size_t)n->nout * sizeof *sz);
        tmp = calloc((size_t)n->nout, sizeof *tmp);
        parts = malloc((size_t)n->nout * sizeof *parts);
        if (!sz || !tmp || !parts || split_sizes(n, in, axis, sz, NULL)) {
            free(sz);
            free(tmp);
            free(parts);
            return QD_EFAIL;
        }
        for (int i = 0; i < n->nout; i++) {
            parts[i] = out[i] ? out[i] : &tmp[i];
            tmp[i].shape[axis] = sz[i]; /* data NULL: skipped by rows_range */
        }
        free(sz);
    }
    int rc = rows_copy(ctx, in[0], axis, parts, n->nout, 1);
    if (omitted) {
        free(tmp);
        free(parts);
    }
    return rc;
}

/* ---- views: Transpose, Slice, Expand, Tile, DepthToSpace, SpaceToDepth ------ */

/* View of a dense tensor of shape inshape (nd dims) permuted by perm. */
static void permute_view(view *v, int nd, const int64_t *inshape, const int *perm)
{
    int64_t st[VIEWD];
    dense_strides(nd, inshape, st);
    v->ndim = nd;
    v->base = 0;
    for (int i = 0; i < nd; i++) {
        v->shape[i] = inshape[perm[i]];
        v->stride[i] = st[perm[i]];
    }
}

static int transpose_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    const int64_t *p;
    int k = qd_attr_ints(n, "perm", &p), seen[MAXD] = {0};
    if (k > MAXD)
        return qd_errf(e, QD_EINPUT, "Transpose: perm has %d entries, at most %d supported", k, MAXD);
    for (int i = 0; i < k; i++) {
        if (p[i] < 0 || p[i] >= k || seen[p[i]]++)
            return qd_errf(e, QD_EINPUT, "Transpose: perm is not a permutation of 0..%d", k - 1);
    }
    return check_arity(n, 1, 1, 1, 1, e);
}

static int transpose_perm(const qd_node *n, int rank, int *perm, qd_err *e)
{
    const int64_t *p;
    int k = qd_attr_ints(n, "perm", &p), seen[MAXD] = {0};
    if (!qd_attr_find(n, "perm")) {
        for (int i = 0; i < rank; i++)
            perm[i] = rank - 1 - i;
        return QD_OK;
    }
    if (k != rank)
        return qd_errf(e, QD_EINPUT, "Transpose: perm has %d entries but the input has rank %d", k, rank);
    for (int i = 0; i < k; i++) {
        if (p[i] < 0 || p[i] >= k || seen[p[i]]++)
            return qd_errf(e, QD_EINPUT, "Transpose: perm is not a permutation of 0..%d", k - 1);
        perm[i] = (int)p[i];
    }
    return QD_OK;
}

static int transpose_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int perm[MAXD], rc;
    int64_t dims[MAXD];
    if ((rc = transpose_perm(n, x->ndim, perm, e)))
        return rc;
    for (int i = 0; i < x->ndim; i++)
        dims[i] = x->shape[perm[i]];
    return qd_tensor_resize(out[0], x->dtype, x->ndim, dims, e);
}

static int transpose_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    int perm[MAXD];
    view v;
    if (transpose_perm(n, x->ndim, perm, NULL))
        return QD_EINPUT;
    permute_view(&v, x->ndim, x->shape, perm);
    copy_view(ctx, out[0]->data, x->data, qd_dtype_size(x->dtype), &v);
    return QD_OK;
}

static int slice_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 10) {
        if (!qd_attr_find(n, "starts") || !qd_attr_find(n, "ends"))
            return qd_errf(e, QD_EINPUT, "Slice-%d: attributes starts and ends are required", n->opset);
        return check_arity(n, 1, 1, 1, 1, e);
    }
    return check_arity(n, 3, 5, 1, 1, e);
}

/* Per-dim start, step and count of a Slice, from attributes (opset < 10) or
 * inputs, clamped exactly as the ONNX spec says. */
typedef struct slice_plan {
    int64_t start[MAXD], step[MAXD], count[MAXD];
} slice_plan;

static int slice_args(const qd_node *n, qd_tensor *const *in, int64_t (*a)[MAXD], int *cnt, qd_err *e)
{
    static const char *const what[4] = {"Slice starts", "Slice ends", "Slice axes", "Slice steps"};
    static const char *const attr[4] = {"starts", "ends", "axes", "steps"};
    int rc;
    for (int i = 0; i < 4; i++) {
        cnt[i] = -1; /* absent */
        if (n->opset < 10) {
            if (i < 3 && qd_attr_find(n, attr[i]) && (rc = attr_ints_copy(n, attr[i], a[i], MAXD, &cnt[i], e)))
                return rc;
        } else {
            const qd_tensor *t = opt_in(n, in, i + 1);
            if (t && (rc = get_ints(t, what[i], a[i], MAXD, &cnt[i], e)))
                return rc;
        }
    }
    if (cnt[0] < 0 || cnt[1] < 0)
        return qd_errf(e, QD_EINPUT, "Slice: starts and ends are required");
    for (int i = 1; i < 4; i++)
        if (cnt[i] >= 0 && cnt[i] != cnt[0])
            return qd_errf(e, QD_EINPUT, "Slice: %s has %d values but starts has %d", attr[i], cnt[i], cnt[0]);
    return QD_OK;
}

static int slice_make_plan(const qd_node *n, qd_tensor *const *in, slice_plan *p, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t a[4][MAXD];
    int cnt[4], ax[MAXD], rc;
    if ((rc = slice_args(n, in, a, cnt, e)))
        return rc;
    int k = cnt[0];
    if (cnt[2] < 0) {
        if (k > x->ndim)
            return qd_errf(e, QD_EINPUT, "Slice: %d starts for an input of rank %d", k, x->ndim);
        for (int i = 0; i < k; i++)
            a[2][i] = i;
    }
    if ((rc = norm_axes(a[2], k, x->ndim, ax, "Slice", e)))
        return rc;
    for (int d = 0; d < x->ndim; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->count[d] = x->shape[d];
    }
    for (int i = 0; i < k; i++) {
        int d = ax[i];
        int64_t dim = x->shape[d], st = cnt[3] >= 0 ? a[3][i] : 1, s = a[0][i], en = a[1][i];
        if (st == 0)
            return qd_errf(e, QD_EINPUT, "Slice: step for axis %d is 0", d);
        if (st < -INT64_MAX)
            st = -INT64_MAX;
        if (s < 0)
            s += dim;
        if (en < 0)
            en += dim;
        int64_t c = 0;
        if (dim == 0) {
            s = 0;
        } else if (st > 0) {
            s = clamp64(s, 0, dim);
            en = clamp64(en, 0, dim);
            c = en > s ? (en - s - 1) / st + 1 : 0;
        } else {
            s = clamp64(s, 0, dim - 1);
            en = clamp64(en, -1, dim - 1);
            c = s > en ? (s - en - 1) / -st + 1 : 0;
        }
        p->start[d] = s;
        p->step[d] = st;
        p->count[d] = c;
    }
    return QD_OK;
}

static int slice_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    slice_plan p;
    int rc = slice_make_plan(n, in, &p, e);
    return rc ? rc : qd_tensor_resize(out[0], in[0]->dtype, in[0]->ndim, p.count, e);
}

static int slice_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    slice_plan p;
    int64_t st[MAXD];
    view v = {.ndim = x->ndim};
    if (slice_make_plan(n, in, &p, NULL))
        return QD_EINPUT;
    dense_strides(x->ndim, x->shape, st);
    for (int d = 0; d < x->ndim; d++) {
        v.shape[d] = p.count[d];
        v.stride[d] = p.count[d] > 1 ? st[d] * p.step[d] : 0; /* a huge step takes one element */
        v.base += st[d] * p.start[d];
    }
    copy_view(ctx, out[0]->data, x->data, qd_dtype_size(x->dtype), &v);
    return QD_OK;
}

static int expand_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 8)
        return qd_errf(e, QD_EINPUT, "Expand needs opset 8+, the model has %d", n->opset);
    return check_arity(n, 2, 2, 1, 1, e);
}

static int expand_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    int64_t s[MAXD], dims[MAXD];
    int k, r, rc;
    char b1[96], b2[96];
    if ((rc = get_ints(in[1], "Expand shape", s, MAXD, &k, e)))
        return rc;
    if (qd_broadcast_shape(in[0]->ndim, in[0]->shape, k, s, &r, dims, NULL))
        return qd_errf(e, QD_EINPUT, "Expand: input %s cannot broadcast to %s",
                       shp(in[0], b1, sizeof b1), qd_shape_str(k, s, b2, sizeof b2));
    return qd_tensor_resize(out[0], in[0]->dtype, r, dims, e);
}

static int expand_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    const qd_tensor *x = in[0], *y = out[0];
    int64_t st[MAXD];
    view v = {.ndim = y->ndim};
    dense_strides(x->ndim, x->shape, st);
    for (int d = 0; d < y->ndim; d++) {
        int xd = d - (y->ndim - x->ndim);
        v.shape[d] = y->shape[d];
        v.stride[d] = xd >= 0 && x->shape[xd] != 1 ? st[xd] : 0;
    }
    copy_view(ctx, y->data, x->data, qd_dtype_size(x->dtype), &v);
    return QD_OK;
}

static int tile_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 6)
        return qd_errf(e, QD_EINPUT, "Tile-%d (with an axis input) is not supported; need opset 6+", n->opset);
    return check_arity(n, 2, 2, 1, 1, e);
}

static int tile_repeats(const qd_tensor *x, const qd_tensor *r, int64_t *rep, qd_err *e)
{
    int k, rc;
    if ((rc = get_ints(r, "Tile repeats", rep, MAXD, &k, e)))
        return rc;
    if (k != x->ndim)
        return qd_errf(e, QD_EINPUT, "Tile: %d repeats for an input of rank %d", k, x->ndim);
    for (int i = 0; i < k; i++)
        if (rep[i] < 0)
            return qd_errf(e, QD_EINPUT, "Tile: repeats[%d] = %lld is negative", i, (long long)rep[i]);
    return QD_OK;
}

static int tile_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    int64_t rep[MAXD], dims[MAXD];
    int rc = tile_repeats(in[0], in[1], rep, e);
    if (rc)
        return rc;
    for (int d = 0; d < in[0]->ndim; d++)
        dims[d] = in[0]->shape[d] * rep[d];
    return qd_tensor_resize(out[0], in[0]->dtype, in[0]->ndim, dims, e);
}

/* Output dim d of size rep*in is the pair (rep, in) in C order: a 2r-dim view. */
static int tile_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    const qd_tensor *x = in[0];
    int64_t rep[MAXD], st[MAXD];
    view v = {.ndim = 2 * x->ndim};
    if (tile_repeats(x, in[1], rep, NULL))
        return QD_EINPUT;
    dense_strides(x->ndim, x->shape, st);
    for (int d = 0; d < x->ndim; d++) {
        v.shape[2 * d] = rep[d];
        v.stride[2 * d] = 0;
        v.shape[2 * d + 1] = x->shape[d];
        v.stride[2 * d + 1] = st[d];
    }
    copy_view(ctx, out[0]->data, x->data, qd_dtype_size(x->dtype), &v);
    return QD_OK;
}

static int d2s_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (qd_attr_int(n, "blocksize", 0) <= 0)
        return qd_errf(e, QD_EINPUT, "%s: attribute blocksize must be positive", n->op_type);
    const char *m = qd_attr_str(n, "mode", "DCR");
    if (strcmp(m, "DCR") && strcmp(m, "CRD"))
        return qd_errf(e, QD_EINPUT, "%s: mode '%s' is not DCR or CRD", n->op_type, m);
    return check_arity(n, 1, 1, 1, 1, e);
}

/* DepthToSpace (d2s=1) or SpaceToDepth: output shape and the 6-D view. */
static int d2s_plan(const qd_node *n, const qd_tensor *x, int d2s, int64_t *dims, view *v, qd_err *e)
{
    char b[96];
    int64_t bs = qd_attr_int(n, "blocksize", 0);
    if (x->ndim != 4)
        return qd_errf(e, QD_EINPUT, "%s: input must be 4-D (NCHW), got %s", n->op_type, shp(x, b, sizeof b));
    if (bs <= 0)
        return qd_errf(e, QD_EINPUT, "%s: blocksize must be positive", n->op_type);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    if (d2s) {
        if (C % (bs * bs))
            return qd_errf(e, QD_EINPUT, "DepthToSpace: channels %lld do not divide by blocksize^2 = %lld",
                           (long long)C, (long long)(bs * bs));
        int64_t c = C / (bs * bs);
        dims[0] = N, dims[1] = c, dims[2] = H * bs, dims[3] = W * bs;
        if (!strcmp(qd_attr_str(n, "mode", "DCR"), "CRD")) {
            static const int perm[6] = {0, 1, 4, 2, 5, 3};
            permute_view(v, 6, (int64_t[]){N, c, bs, bs, H, W}, perm);
        } else {
            static const int perm[6] = {0, 3, 4, 1, 5, 2};
            permute_view(v, 6, (int64_t[]){N, bs, bs, c, H, W}, perm);
        }
    } else {
        if (H % bs || W % bs)
            return qd_errf(e, QD_EINPUT, "SpaceToDepth: H=%lld, W=%lld do not divide by blocksize %lld",
                           (long long)H, (long long)W, (long long)bs);
        static const int perm[6] = {0, 3, 5, 1, 2, 4};
        dims[0] = N, dims[1] = C * bs * bs, dims[2] = H / bs, dims[3] = W / bs;
        permute_view(v, 6, (int64_t[]){N, C, H / bs, bs, W / bs, bs}, perm);
    }
    return QD_OK;
}

static int d2s_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int64_t dims[4];
    view v;
    int rc = d2s_plan(n, in[0], n->op_type[0] == 'D', dims, &v, e);
    return rc ? rc : qd_tensor_resize(out[0], in[0]->dtype, 4, dims, e);
}

static int d2s_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    int64_t dims[4];
    view v;
    if (d2s_plan(n, in[0], n->op_type[0] == 'D', dims, &v, NULL))
        return QD_EINPUT;
    copy_view(ctx, out[0]->data, in[0]->data, qd_dtype_size(in[0]->dtype), &v);
    return QD_OK;
}

/* ---- Gather ------------------------------------------------------------------ */

static int gather_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    return check_arity(n, 2, 2, 1, 1, e);
}

static int gather_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0], *ix = in[1];
    int axis, rc;
    char b[96];
    if (x->ndim == 0)
        return qd_errf(e, QD_EINPUT, "Gather: data must have rank >= 1");
    if ((rc = qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, e)))
        return rc;
    if (ix->dtype != QD_I64 && ix->dtype != QD_I32)
        return qd_errf(e, QD_EINPUT, "Gather: indices must be int64 or int32, got %s", qd_dtype_name(ix->dtype));
    int r = x->ndim - 1 + ix->ndim;
    if (r > MAXD)
        return qd_errf(e, QD_EINPUT, "Gather: output rank %d exceeds %d", r, MAXD);
    int64_t dim = x->shape[axis], ni = qd_tensor_numel(ix), dims[MAXD];
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = qd_tensor_get_i64(ix, i);
        if (v < -dim || v >= dim)
            return qd_errf(e, QD_EINPUT, "Gather: index %lld is out of range for axis %d of %s",
                           (long long)v, axis, shp(x, b, sizeof b));
    }
    int k = 0;
    for (int d = 0; d < axis; d++)
        dims[k++] = x->shape[d];
    for (int d = 0; d < ix->ndim; d++)
        dims[k++] = ix->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        dims[k++] = x->shape[d];
    return qd_tensor_resize(out[0], x->dtype, r, dims, e);
}

typedef struct gather_job {
    char *dst;
    const char *src;
    const qd_tensor *ix;
    int64_t ni, dim;
    size_t blk; /* bytes per gathered block: prod(shape[axis+1:]) * es */
} gather_job;

/* Item t = (outer o, index j): one block copy. */
static void gather_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const gather_job *j = arg;
    for (int64_t t = b; t < end; t++) {
        int64_t o = t / j->ni, v = qd_tensor_get_i64(j->ix, t % j->ni);
        if (v < 0)
            v += j->dim;
        memcpy(j->dst + (size_t)t * j->blk, j->src + (size_t)(o * j->dim + v) * j->blk, j->blk);
    }
}

static int gather_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    int axis;
    if (qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, NULL))
        return QD_EINPUT;
    int64_t outer = qd_shape_numel(axis, x->shape);
    int64_t inner = qd_shape_numel(x->ndim - axis - 1, x->shape + axis + 1);
    gather_job j = {out[0]->data, x->data, in[1], qd_tensor_numel(in[1]), x->shape[axis],
                    (size_t)inner * qd_dtype_size(x->dtype)};
    if (outer * j.ni > 0 && j.blk > 0)
        qd_ctx_for(ctx, outer * j.ni, grain_for(j.blk + 16), gather_range, &j);
    return QD_OK;
}

/* ---- Pad ---------------------------------------------------------------------- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

static int pad_mode(const qd_node *n, qd_err *e)
{
    const char *m = qd_attr_str(n, "mode", "constant");
    if (!strcmp(m, "constant"))
        return PAD_CONSTANT;
    if (!strcmp(m, "reflect"))
        return PAD_REFLECT;
    if (!strcmp(m, "edge"))
        return PAD_EDGE;
    qd_errf(e, QD_EINPUT, "Pad mode '%s' is not supported (constant, reflect, edge are)", m);
    return -1;
}

static int pad_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (pad_mode(n, e) < 0)
        return QD_EINPUT;
    if (n->opset < 11) {
        const int64_t *p;
        int k = qd_attr_ints(n, "pads", &p);
        if (!qd_attr_find(n, "pads") || k % 2)
            return qd_errf(e, QD_EINPUT, "Pad-%d: attribute pads is required with an even count", n->opset);
        return check_arity(n, 1, 1, 1, 1, e);
    }
    return check_arity(n, 2, 3, 1, 1, e);
}

/* Pads (begin..., end...) and the fill value as one element of x's dtype. */
static int pad_args(const qd_node *n, qd_tensor *const *in, int64_t *pads, unsigned char *val, qd_err *e)
{
    const qd_tensor *x = in[0];
    int k, rc;
    char b[96];
    if (n->opset < 11)
        rc = attr_ints_copy(n, "pads", pads, 2 * MAXD, &k, e);
    else
        rc = get_ints(in[1], "Pad pads", pads, 2 * MAXD, &k, e);
    if (rc)
        return rc;
    if (k != 2 * x->ndim)
        return qd_errf(e, QD_EINPUT, "Pad: %d pads for input %s of rank %d (need %d)",
                       k, shp(x, b, sizeof b), x->ndim, 2 * x->ndim);
    const qd_tensor *cv = opt_in(n, in, 2);
    memset(val, 0, 16);
    if (n->opset < 11) {
        put_scalar(val, x->dtype, qd_attr_float(n, "value", 0.0f));
    } else if (cv && qd_tensor_numel(cv) > 0) {
        if (cv->dtype != x->dtype)
            return qd_errf(e, QD_EINPUT, "Pad: constant_value is %s but data is %s",
                           qd_dtype_name(cv->dtype), qd_dtype_name(x->dtype));
        memcpy(val, cv->data, qd_dtype_size(x->dtype));
    }
    return QD_OK;
}

static int pad_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t pads[2 * MAXD], dims[MAXD];
    unsigned char val[16];
    char b[96];
    int mode = pad_mode(n, e), rc, r = x->ndim;
    if (mode < 0)
        return QD_EINPUT;
    if ((rc = pad_args(n, in, pads, val, e)))
        return rc;
    for (int d = 0; d < r; d++) {
        dims[d] = x->shape[d] + pads[d] + pads[r + d];
        if (dims[d] < 0)
            return qd_errf(e, QD_EINPUT, "Pad: pads %lld, %lld on axis %d of %s give a negative size",
                           (long long)pads[d], (long long)pads[r + d], d, shp(x, b, sizeof b));
        if (mode != PAD_CONSTANT && x->shape[d] == 0 && dims[d] > 0)
            return qd_errf(e, QD_EINPUT, "Pad: cannot %s-pad axis %d of %s, it is empty",
                           mode == PAD_EDGE ? "edge" : "reflect", d, shp(x, b, sizeof b));
    }
    return qd_tensor_resize(out[0], x->dtype, r, dims, e);
}

/* Source index on an axis of length len for output index o (begin pad pb),
 * or -1 for the constant fill. Reflect repeats like numpy for large pads. */
static int64_t pad_src(int mode, int64_t o, int64_t pb, int64_t len)
{
    int64_t i = o - pb;
    if (i >= 0 && i < len)
        return i;
    if (mode == PAD_CONSTANT)
        return -1;
    if (mode == PAD_EDGE || len == 1)
        return i < 0 ? 0 : len - 1;
    int64_t period = 2 * (len - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < len ? i : period - i;
}

typedef struct pad_job {
    const qd_tensor *x, *y;
    int mode;
    const int64_t *pads;
    unsigned char val[16];
    size_t es;
} pad_job;

/* One output row (all dims but the last). */
static void pad_row(const pad_job *j, const int64_t *idx, char *dst)
{
    const qd_tensor *x = j->x, *y = j->y;
    int r = x->ndim, last = r - 1;
    int64_t off = 0;
    for (int d = 0; d < last; d++) {
        int64_t s = pad_src(j->mode, idx[d], j->pads[d], x->shape[d]);
        if (s < 0) {
            fill_elems(dst, j->val, y->shape[last], j->es);
            return;
        }
        off = off * x->shape[d] + s;
    }
    int64_t len = x->shape[last], pb = j->pads[last], ol = y->shape[last];
    const char *src = (const char *)x->data + (size_t)(off * len) * j->es;
    int64_t lo = clamp64(pb, 0, ol), hi = clamp64(pb + len, lo, ol);
    if (j->mode == PAD_CONSTANT) {
        fill_elems(dst, j->val, lo, j->es);
        fill_elems(dst + (size_t)hi * j->es, j->val, ol - hi, j->es);
    } else {
        for (int64_t o = 0; o < lo; o++)
            memcpy(dst + (size_t)o * j->es, src + (size_t)pad_src(j->mode, o, pb, len) * j->es, j->es);
        for (int64_t o = hi; o < ol; o++)
            memcpy(dst + (size_t)o * j->es, src + (size_t)pad_src(j->mode, o, pb, len) * j->es, j->es);
    }
    if (hi > lo)
        memcpy(dst + (size_t)lo * j->es, src + (size_t)(lo - pb) * j->es, (size_t)(hi - lo) * j->es);
}

static void pad_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const pad_job *j = arg;
    const qd_tensor *y = j->y;
    int last = y->ndim - 1;
    int64_t idx[MAXD], r = b;
    for (int d = last - 1; d >= 0; d--) {
        idx[d] = r % y->shape[d];
        r /= y->shape[d];
    }
    size_t rowb = (size_t)y->shape[last] * j->es;
    for (int64_t row = b; row < end; row++) {
        pad_row(j, idx, (char *)y->data + (size_t)row * rowb);
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < y->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

static int pad_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    qd_tensor *y = out[0];
    int64_t pads[2 * MAXD];
    pad_job j = {x, y, pad_mode(n, NULL), pads, {0}, qd_dtype_size(x->dtype)};
    if (j.mode < 0 || pad_args(n, in, pads, j.val, NULL))
        return QD_EINPUT;
    if (qd_tensor_numel(y) == 0)
        return QD_OK;
    if (x->ndim == 0) {
        memcpy(y->data, x->data, j.es);
        return QD_OK;
    }
    int64_t rows = qd_shape_numel(y->ndim - 1, y->shape);
    if (qd_tensor_numel(x) == 0) { /* constant mode only (infer checked) */
        fill_elems(y->data, j.val, qd_tensor_numel(y), j.es);
        return QD_OK;
    }
    qd_ctx_for(ctx, rows, grain_for((size_t)y->shape[y->ndim - 1] * j.es), pad_range, &j);
    return QD_OK;
}

/* ---- ConstantOfShape, Range ----------------------------------------------------- */

static int cos_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    const qd_attr *a = qd_attr_find(n, "value");
    if (a && (a->type != QD_ATTR_TENSOR || !a->t || qd_tensor_numel(a->t) != 1 || !qd_dtype_size(a->t->dtype)))
        return qd_errf(e, QD_EINPUT, "ConstantOfShape: value must be a one-element numeric tensor");
    return check_arity(n, 1, 1, 1, 1, e);
}

static int cos_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int64_t dims[MAXD];
    int k, rc;
    if ((rc = get_ints(in[0], "ConstantOfShape shape", dims, MAXD, &k, e)))
        return rc;
    for (int i = 0; i < k; i++)
        if (dims[i] < 0)
            return qd_errf(e, QD_EINPUT, "ConstantOfShape: shape[%d] = %lld is negative", i, (long long)dims[i]);
    const qd_attr *a = qd_attr_find(n, "value");
    return qd_tensor_resize(out[0], a && a->t ? a->t->dtype : QD_F32, k, dims, e);
}

static int cos_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)in;
    (void)ctx;
    const qd_attr *a = qd_attr_find(n, "value");
    unsigned char zero[16] = {0};
    fill_elems(out[0]->data, a && a->t ? a->t->data : zero, qd_tensor_numel(out[0]),
               qd_dtype_size(out[0]->dtype));
    return QD_OK;
}

static int range_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->opset < 11)
        return qd_errf(e, QD_EINPUT, "Range needs opset 11+, the model has %d", n->opset);
    return check_arity(n, 3, 3, 1, 1, e);
}

static int range_count(qd_tensor *const *in, int64_t *cnt, qd_err *e)
{
    qd_dtype t = in[0]->dtype;
    for (int i = 0; i < 3; i++) {
        if (in[i]->dtype != t || qd_tensor_numel(in[i]) != 1)
            return qd_errf(e, QD_EINPUT, "Range: start, limit, delta must be scalars of one dtype");
    }
    if (t != QD_F32 && t != QD_F64 && t != QD_I16 && t != QD_I32 && t != QD_I64)
        return qd_errf(e, QD_EINPUT, "Range: dtype %s is not supported", qd_dtype_name(t));
    double n;
    if (t == QD_F32 || t == QD_F64) {
        double s = qd_tensor_get_f64(in[0], 0), l = qd_tensor_get_f64(in[1], 0), d = qd_tensor_get_f64(in[2], 0);
        if (t == QD_F32)
            n = ceil((double)((float)l - (float)s) / d);
        else
            n = ceil((l - s) / d);
        if (d == 0 || n != n)
            return qd_errf(e, QD_EINPUT, "Range: delta is 0 or the bounds are not finite");
    } else {
        int64_t s = qd_tensor_get_i64(in[0], 0), l = qd_tensor_get_i64(in[1], 0), d = qd_tensor_get_i64(in[2], 0);
        if (d == 0)
            return qd_errf(e, QD_EINPUT, "Range: delta is 0");
        n = ceil(((double)l - (double)s) / (double)d);
    }
    if (n > 1e12)
        return qd_errf(e, QD_EINPUT, "Range: %g elements is too many", n);
    *cnt = n > 0 ? (int64_t)n : 0;
    return QD_OK;
}

static int range_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    (void)n;
    int64_t cnt;
    int rc = range_count(in, &cnt, e);
    return rc ? rc : qd_tensor_resize(out[0], in[0]->dtype, 1, &cnt, e);
}

/* value = start, then value += delta, as ONNX's reference loop and ORT do. */
static int range_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    (void)n;
    (void)ctx;
    int64_t cnt = out[0]->shape[0];
#define RANGE(T)                                                               \
    do {                                                                       \
        T v = *(const T *)in[0]->data, d = *(const T *)in[2]->data;           \
        T *y = out[0]->data;                                                   \
        for (int64_t i = 0; i < cnt; i++) {                                    \
            y[i] = v;                                                          \
            if (i + 1 < cnt)                                                   \
                v = (T)(v + d);                                                \
        }                                                                      \
    } while (0)
    switch (in[0]->dtype) {
    case QD_F32: RANGE(float); break;
    case QD_F64: RANGE(double); break;
    case QD_I16: RANGE(int16_t); break;
    case QD_I32: RANGE(int32_t); break;
    case QD_I64: RANGE(int64_t); break;
    default: return QD_EINPUT;
    }
#undef RANGE
    return QD_OK;
}

/* ---- Resize, Upsample ------------------------------------------------------------
 * Each output index along an axis maps to a source coordinate by the
 * coordinate transformation; nearest picks one index (any dtype), linear
 * blends the two neighbours per axis (float32). Indices clamp to the edge;
 * tf_crop_and_resize gives extrapolation_value outside the input. */

enum { CT_HALF_PIXEL, CT_ASYMMETRIC, CT_ALIGN_CORNERS, CT_PYTORCH_HALF_PIXEL, CT_TF_HALF_PIXEL_NN, CT_TF_CROP };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef struct rs_cfg {
    int linear;   /* 0 nearest, 1 linear */
    int ctm;      /* CT_* */
    int nearest;  /* NM_* */
    float extrap; /* tf_crop_and_resize's value outside the input */
} rs_cfg;

static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static int rs_config(const qd_node *n, rs_cfg *c, qd_err *e)
{
    static const char *const ctms[] = {"half_pixel", "asymmetric", "align_corners",
                                       "pytorch_half_pixel", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    int up = !strcmp(n->op_type, "Upsample");
    const char *mode = qd_attr_str(n, "mode", "nearest");
    memset(c, 0, sizeof *c);
    if (!strcmp(mode, "linear") || (up && !strcmp(mode, "bilinear")))
        c->linear = 1;
    else if (!strcmp(mode, "cubic"))
        return qd_errf(e, QD_EINPUT, "%s mode 'cubic' is not supported (nearest and linear are)", n->op_type);
    else if (strcmp(mode, "nearest"))
        return qd_errf(e, QD_EINPUT, "%s mode '%s' is unknown", n->op_type, mode);
    if (up || n->opset < 11) { /* Upsample and Resize-10: asymmetric, ORT's "simple" nearest */
        c->ctm = CT_ASYMMETRIC;
        c->nearest = NM_SIMPLE;
        return QD_OK;
    }
    const char *ct = qd_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    const char *nm = qd_attr_str(n, "nearest_mode", "round_prefer_floor");
    if ((c->ctm = pick(ct, ctms, 6)) < 0)
        return qd_errf(e, QD_EINPUT, "Resize coordinate_transformation_mode '%s' is not supported", ct);
    if ((c->nearest = pick(nm, nms, 4)) < 0)
        return qd_errf(e, QD_EINPUT, "Resize nearest_mode '%s' is not supported", nm);
    c->extrap = qd_attr_float(n, "extrapolation_value", 0.0f);
    return QD_OK;
}

static int resize_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    rs_cfg c;
    int rc, up = !strcmp(n->op_type, "Upsample");
    if (up) {
        if (n->opset < 7)
            return qd_errf(e, QD_EINPUT, "Upsample-%d is not supported; need opset 7+", n->opset);
        if (n->opset < 9 && !qd_attr_find(n, "scales"))
            return qd_errf(e, QD_EINPUT, "Upsample-%d: attribute scales is required", n->opset);
        rc = n->opset < 9 ? check_arity(n, 1, 1, 1, 1, e) : check_arity(n, 2, 2, 1, 1, e);
    } else {
        if (n->opset < 10)
            return qd_errf(e, QD_EINPUT, "Resize needs opset 10+, the model has %d", n->opset);
        rc = n->opset == 10 ? check_arity(n, 2, 2, 1, 1, e) : check_arity(n, 1, 4, 1, 1, e);
    }
    return rc ? rc : rs_config(n, &c, e);
}

/* Output sizes, per-axis scales and roi of one Resize/Upsample call. */
typedef struct rs_plan {
    rs_cfg c;
    int64_t out[MAXD];
    double scale[MAXD], roi_s[MAXD], roi_e[MAXD];
    double rlen[MAXD]; /* resized length: sizes[d], or input length * scale */
} rs_plan;

static const qd_tensor *nonempty(const qd_tensor *t)
{
    return t && qd_tensor_numel(t) > 0 ? t : NULL;
}

static int rs_inputs(const qd_node *n, qd_tensor *const *in, const qd_tensor **roi, const qd_tensor **sc,
                     const qd_tensor **sz)
{
    *roi = *sc = *sz = NULL;
    if (!strcmp(n->op_type, "Upsample"))
        *sc = n->opset >= 9 ? nonempty(opt_in(n, in, 1)) : NULL;
    else if (n->opset == 10)
        *sc = nonempty(opt_in(n, in, 1));
    else {
        *roi = nonempty(opt_in(n, in, 1));
        *sc = nonempty(opt_in(n, in, 2));
        *sz = nonempty(opt_in(n, in, 3));
    }
    return QD_OK;
}

static int rs_make_plan(const qd_node *n, qd_tensor *const *in, rs_plan *p, qd_err *e)
{
    const qd_tensor *x = in[0], *roi, *sc, *sz;
    int r = x->ndim, rc;
    char b[96];
    if ((rc = rs_config(n, &p->c, e)))
        return rc;
    if (r == 0)
        return qd_errf(e, QD_EINPUT, "%s: input must have rank >= 1", n->op_type);
    if (p->c.linear && x->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "%s linear supports float32 only, got %s", n->op_type, qd_dtype_name(x->dtype));
    rs_inputs(n, in, &roi, &sc, &sz);
    double sv[MAXD];
    int nsv = 0;
    if (!strcmp(n->op_type, "Upsample") && n->opset < 9) {
        const float *f;
        nsv = qd_attr_floats(n, "scales", &f);
        for (int i = 0; i < nsv && i < MAXD; i++)
            sv[i] = f[i];
    } else if (sc) {
        if (sc->dtype != QD_F32 && sc->dtype != QD_F64)
            return qd_errf(e, QD_EINPUT, "%s: scales must be float, got %s", n->op_type, qd_dtype_name(sc->dtype));
        nsv = (int)qd_tensor_numel(sc);
        for (int i = 0; i < nsv && i < MAXD; i++)
            sv[i] = qd_tensor_get_f64(sc, i);
    }
    if (sc && sz)
        return qd_errf(e, QD_EINPUT, "Resize: give scales or sizes, not both");
    if (!nsv && !sz)
        return qd_errf(e, QD_EINPUT, "%s: scales or sizes is required", n->op_type);
    for (int d = 0; d < r; d++) {
        p->roi_s[d] = 0;
        p->roi_e[d] = 1;
    }
    if (p->c.ctm == CT_TF_CROP) {
        if (!roi || qd_tensor_numel(roi) != 2 * r)
            return qd_errf(e, QD_EINPUT, "Resize: tf_crop_and_resize needs roi with %d values", 2 * r);
        for (int d = 0; d < r; d++) {
            p->roi_s[d] = qd_tensor_get_f64(roi, d);
            p->roi_e[d] = qd_tensor_get_f64(roi, r + d);
        }
    }
    if (sz) {
        int64_t s[MAXD];
        int k;
        if ((rc = get_ints(sz, "Resize sizes", s, MAXD, &k, e)))
            return rc;
        if (k != r)
            return qd_errf(e, QD_EINPUT, "Resize: %d sizes for input %s of rank %d", k, shp(x, b, sizeof b), r);
        for (int d = 0; d < r; d++) {
            if (s[d] < 0 || (x->shape[d] == 0 && s[d] > 0))
                return qd_errf(e, QD_EINPUT, "Resize: cannot resize axis %d of %s to %lld",
                               d, shp(x, b, sizeof b), (long long)s[d]);
            p->out[d] = s[d];
            p->scale[d] = x->shape[d] ? (double)s[d] / (double)x->shape[d] : 1;
            p->rlen[d] = (double)s[d];
        }
        return QD_OK;
    }
    if (nsv != r)
        return qd_errf(e, QD_EINPUT, "%s: %d scales for input %s of rank %d", n->op_type, nsv, shp(x, b, sizeof b), r);
    for (int d = 0; d < r; d++) {
        if (!(sv[d] > 0) || sv[d] > 1e6)
            return qd_errf(e, QD_EINPUT, "%s: scale %g for axis %d is not positive", n->op_type, sv[d], d);
        p->scale[d] = sv[d];
        p->rlen[d] = (double)x->shape[d] * sv[d];
        p->out[d] = (int64_t)floor((double)x->shape[d] * (p->roi_e[d] - p->roi_s[d]) * sv[d]);
        if (p->out[d] < 0)
            p->out[d] = 0;
    }
    return QD_OK;
}

static int resize_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    rs_plan p;
    int rc = rs_make_plan(n, in, &p, e);
    return rc ? rc : qd_tensor_resize(out[0], in[0]->dtype, in[0]->ndim, p.out, e);
}

/* Source coordinate of output index o on one axis. The resized length is
 * len_in * scale, which is fractional when scales (not sizes) are given: the
 * ONNX reference (and its align_corners test data) use that, not the
 * rounded output size. */
static double rs_coord(const rs_plan *p, int d, int64_t o, int64_t len_in)
{
    double s = p->scale[d], x = (double)o, rs = p->roi_s[d], re = p->roi_e[d], len_out = p->rlen[d];
    switch (p->c.ctm) {
    case CT_ASYMMETRIC: return x / s;
    case CT_ALIGN_CORNERS: return len_out != 1 ? x * (double)(len_in - 1) / (len_out - 1) : 0;
    case CT_PYTORCH_HALF_PIXEL: return len_out != 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_TF_HALF_PIXEL_NN: return (x + 0.5) / s;
    case CT_TF_CROP:
        if (len_out != 1)
            return rs * (double)(len_in - 1) + x * (re - rs) * (double)(len_in - 1) / (len_out - 1);
        return 0.5 * (rs + re) * (double)(len_in - 1);
    default: return (x + 0.5) / s - 0.5;
    }
}

static int64_t rs_round(int mode, double x, int down)
{
    switch (mode) {
    case NM_ROUND_PREFER_CEIL: return (int64_t)floor(x + 0.5);
    case NM_FLOOR: return (int64_t)floor(x);
    case NM_CEIL: return (int64_t)ceil(x);
    case NM_SIMPLE: return (int64_t)(down ? ceil(x) : floor(x));
    default: return (int64_t)ceil(x - 0.5);
    }
}

/* Per-axis lookup: source indices i0/i1 (clamped), weight w of i1 (linear),
 * outside flags (tf_crop_and_resize), and whether the axis is an identity. */
typedef struct rs_axis {
    int64_t *i0, *i1;
    float *w;
    unsigned char *outside;
    int identity, any_outside;
} rs_axis;

typedef struct rs_job {
    qd_ctx *ctx; /* for per-thread scratch; may be NULL */
    const rs_plan *p;
    const qd_tensor *x;
    qd_tensor *y;
    rs_axis ax[MAXD];
    unsigned char extrap[16]; /* extrapolation value in the dtype */
    size_t es;
} rs_job;

static void rs_tables(rs_job *j, int d)
{
    const rs_plan *p = j->p;
    rs_axis *a = &j->ax[d];
    int64_t len = j->x->shape[d], lo = p->out[d];
    double lim = (double)(len - 1);
    a->identity = lo == len;
    a->any_outside = 0;
    for (int64_t o = 0; o < lo; o++) {
        double x = rs_coord(p, d, o, len);
        a->outside[o] = p->c.ctm == CT_TF_CROP && (x < 0 || x > lim);
        a->any_outside |= a->outside[o];
        if (x != x)
            x = 0;
        x = x < -1 ? -1 : x > lim + 1 ? lim + 1 : x; /* keep the int conversions in range */
        if (p->c.linear) {
            double f = floor(x);
            a->i0[o] = (int64_t)clamp64((int64_t)f, 0, len - 1);
            a->i1[o] = (int64_t)clamp64((int64_t)f + 1, 0, len - 1);
            a->w[o] = (float)(x - f);
        } else {
            a->i0[o] = clamp64(rs_round(p->c.nearest, x, p->scale[d] < 1), 0, len - 1);
            a->i1[o] = a->i0[o];
            a->w[o] = 0;
        }
        if (a->outside[o] || a->i0[o] != o || (a->w[o] != 0 && a->i1[o] != a->i0[o]))
            a->identity = 0;
    }
}

/* Nearest: one output row (all axes but the last) per item. */
static void rs_nearest_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const rs_job *j = arg;
    const qd_tensor *x = j->x, *y = j->y;
    int r = x->ndim, last = r - 1;
    size_t es = j->es;
    int64_t ol = y->shape[last];
    const rs_axis *aw = &j->ax[last];
    for (int64_t row = b; row < end; row++) {
        char *dst = (char *)y->data + (size_t)(row * ol) * es;
        int64_t rem = row, off = 0, mul = 1;
        int out = 0;
        for (int d = last - 1; d >= 0; d--) {
            int64_t o = rem % y->shape[d];
            rem /= y->shape[d];
            out |= j->ax[d].outside[o];
            off += j->ax[d].i0[o] * mul;
            mul *= x->shape[d];
        }
        if (out) {
            fill_elems(dst, j->extrap, ol, es);
            continue;
        }
        const char *src = (const char *)x->data + (size_t)(off * x->shape[last]) * es;
        if (aw->identity) {
            memcpy(dst, src, (size_t)ol * es);
            continue;
        }
        const int64_t *restrict ix = aw->i0;
#define GATHER(T)                                                               \
    do {                                                                        \
        T *restrict dd = (T *)(void *)dst;                                      \
        const T *restrict ss = (const T *)(const void *)src;                    \
        for (int64_t o = 0; o < ol; o++)                                        \
            dd[o] = ss[ix[o]];                                                  \
    } while (0)
        switch (es) {
        case 1: GATHER(uint8_t); break;
        case 2: GATHER(uint16_t); break;
        case 4: GATHER(uint32_t); break;
        case 8: GATHER(uint64_t); break;
        default:
            for (int64_t o = 0; o < ol; o++)
                memcpy(dst + (size_t)o * es, src + (size_t)ix[o] * es, es);
        }
#undef GATHER
        for (int64_t o = 0; aw->any_outside && o < ol; o++)
            if (aw->outside[o])
                memcpy(dst + (size_t)o * es, j->extrap, es);
    }
}

/* Row src (of the plane) interpolated along W into h (OW floats). */
static void rs_hrow(const rs_axis *aw, const float *restrict src, int64_t OW, float *restrict h)
{
    const int64_t *restrict i0 = aw->i0, *restrict i1 = aw->i1;
    const float *restrict w = aw->w;
    for (int64_t o = 0; o < OW; o++)
        h[o] = (1 - w[o]) * src[i0[o]] + w[o] * src[i1[o]];
}

/* dst = (1 - wy) * top + wy * bot; blocks of 8 so that -O2 vectorizes. */
static void rs_vblend(float *restrict dst, const float *restrict top, const float *restrict bot, float wy, int64_t n)
{
    float a = 1 - wy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            dst[i + k] = a * top[i + k] + wy * bot[i + k];
    for (; i < n; i++)
        dst[i] = a * top[i] + wy * bot[i];
}

/* Linear over the last two axes (all others identity): one output row per
 * item, item = plane * OH + oy. A rank-1 input is one row with H = 1. The
 * W-interpolated input rows are cached per thread (two slots), so an input
 * row is interpolated once for all the output rows that use it. */
static void rs_bilinear_range(void *arg, int64_t b, int64_t end, int tid)
{
    const rs_job *j = arg;
    const qd_tensor *x = j->x, *y = j->y;
    int r = x->ndim;
    int64_t IW = x->shape[r - 1], OW = y->shape[r - 1];
    int64_t IH = r >= 2 ? x->shape[r - 2] : 1, OH = r >= 2 ? y->shape[r - 2] : 1;
    const rs_axis *aw = &j->ax[r - 1], *ah = r >= 2 ? &j->ax[r - 2] : NULL;
    float ev = j->p->c.extrap;
    int64_t key[2] = {-1, -1}; /* plane * IH + input row held by each slot */
    float *mem = j->ctx ? qd_ctx_scratch(j->ctx, tid, (size_t)(2 * OW) * sizeof(float)) : NULL;
    float *slot[2] = {mem, mem ? mem + OW : NULL};
    for (int64_t t = b; t < end; t++) {
        int64_t plane = t / OH, oy = t % OH;
        float *dst = (float *)y->data + t * OW;
        if (ah && ah->outside[oy]) {
            for (int64_t o = 0; o < OW; o++)
                dst[o] = ev;
            continue;
        }
        int64_t r0 = plane * IH + (ah ? ah->i0[oy] : 0), r1 = plane * IH + (ah ? ah->i1[oy] : 0);
        float wy = ah ? ah->w[oy] : 0.0f;
        const float *xs = x->data;
        if (!mem) { /* no scratch: blend straight from the input rows */
            const float *a = xs + r0 * IW, *c = xs + r1 * IW;
            for (int64_t o = 0; o < OW; o++) {
                float wx = aw->w[o], ix0 = (1 - wx) * a[aw->i0[o]] + wx * a[aw->i1[o]];
                float ix1 = (1 - wx) * c[aw->i0[o]] + wx * c[aw->i1[o]];
                dst[o] = (1 - wy) * ix0 + wy * ix1;
            }
        } else {
            int s0 = key[0] == r0 ? 0 : key[1] == r0 ? 1 : -1;
            if (s0 < 0) { /* refill the slot that does not hold row r1 */
                s0 = key[0] == r1;
                rs_hrow(aw, xs + r0 * IW, OW, slot[s0]);
                key[s0] = r0;
            }
            int s1 = key[s0] == r1 ? s0 : key[1 - s0] == r1 ? 1 - s0 : -1;
            if (s1 < 0) {
                s1 = 1 - s0;
                rs_hrow(aw, xs + r1 * IW, OW, slot[s1]);
                key[s1] = r1;
            }
            rs_vblend(dst, slot[s0], slot[s1], wy, OW);
        }
        for (int64_t o = 0; aw->any_outside && o < OW; o++)
            if (aw->outside[o])
                dst[o] = ev;
    }
}

/* Linear over any axes: per output element, blend the 2^k corners of the k
 * non-identity axes. */
static void rs_linear_nd_range(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const rs_job *j = arg;
    const qd_tensor *x = j->x, *y = j->y;
    int r = x->ndim, act[MAXD], k = 0;
    int64_t st[MAXD];
    dense_strides(r, x->shape, st);
    for (int d = 0; d < r; d++)
        if (!j->ax[d].identity)
            act[k++] = d;
    const float *src = x->data;
    float *dst = y->data;
    for (int64_t t = b; t < end; t++) {
        int64_t o[MAXD], rem = t, base = 0;
        int out = 0;
        for (int d = r - 1; d >= 0; d--) {
            o[d] = rem % y->shape[d];
            rem /= y->shape[d];
            out |= j->ax[d].outside[o[d]];
            if (j->ax[d].identity)
                base += o[d] * st[d];
        }
        if (out) {
            dst[t] = j->p->c.extrap;
            continue;
        }
        double acc = 0;
        for (int m = 0; m < (1 << k); m++) {
            double w = 1;
            int64_t off = base;
            for (int i = 0; i < k; i++) {
                const rs_axis *a = &j->ax[act[i]];
                int hi = (m >> i) & 1;
                double wi = a->w[o[act[i]]];
                w *= hi ? wi : 1 - wi;
                off += (hi ? a->i1[o[act[i]]] : a->i0[o[act[i]]]) * st[act[i]];
            }
            if (w != 0)
                acc += w * src[off];
        }
        dst[t] = (float)acc;
    }
}

static int resize_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    qd_tensor *y = out[0];
    rs_plan p;
    if (rs_make_plan(n, in, &p, NULL))
        return QD_EINPUT;
    int r = x->ndim;
    int64_t tot = 0, ynum = qd_tensor_numel(y);
    if (ynum == 0)
        return QD_OK;
    for (int d = 0; d < r; d++)
        tot += p.out[d];
    char *mem = malloc((size_t)tot * (2 * sizeof(int64_t) + sizeof(float) + 1));
    if (!mem)
        return QD_EFAIL;
    rs_job j = {.ctx = ctx, .p = &p, .x = x, .y = y, .es = qd_dtype_size(x->dtype)};
    put_scalar(j.extrap, x->dtype, p.c.extrap);
    char *m = mem;
    for (int d = 0; d < r; d++) { /* carve 8-byte arrays first, then floats, then flags */
        j.ax[d].i0 = (int64_t *)(void *)m;
        m += p.out[d] * sizeof(int64_t);
        j.ax[d].i1 = (int64_t *)(void *)m;
        m += p.out[d] * sizeof(int64_t);
    }
    for (int d = 0; d < r; d++) {
        j.ax[d].w = (float *)(void *)m;
        m += p.out[d] * sizeof(float);
    }
    for (int d = 0; d < r; d++) {
        j.ax[d].outside = (unsigned char *)m;
        m += p.out[d];
    }
    for (int d = 0; d < r; d++)
        rs_tables(&j, d);
    if (!p.c.linear) {
        int64_t rows = ynum / y->shape[r - 1];
        qd_ctx_for(ctx, rows, grain_for((size_t)y->shape[r - 1] * j.es), rs_nearest_range, &j);
    } else {
        int planar = 1;
        for (int d = 0; d < r - 2; d++)
            planar &= j.ax[d].identity;
        if (planar) {
            int64_t rows = ynum / y->shape[r - 1];
            qd_ctx_for(ctx, rows, grain_for((size_t)y->shape[r - 1] * 16), rs_bilinear_range, &j);
        } else {
            qd_ctx_for(ctx, ynum, 1024, rs_linear_nd_range, &j);
        }
    }
    free(mem);
    return QD_OK;
}

/* ---- table ------------------------------------------------------------------------ */

static int cos_check_opset(qd_node *n, const qd_graph *g, qd_err *e)
{
    if (n->opset < 9)
        return qd_errf(e, QD_EINPUT, "ConstantOfShape needs opset 9+, the model has %d", n->opset);
    return cos_check(n, g, e);
}

const qd_op qd_ops_shape[] = {
    {"Concat", concat_check, concat_infer, concat_run, NULL},
    {"Constant", constant_check, constant_infer, constant_run, NULL},
    {"ConstantOfShape", cos_check_opset, cos_infer, cos_run, NULL},
    {"DepthToSpace", d2s_check, d2s_infer, d2s_run, NULL},
    {"Dropout", dropout_check, dropout_infer, dropout_run, NULL},
    {"Expand", expand_check, expand_infer, expand_run, NULL},
    {"Flatten", check_one_one, flatten_infer, copy_run_op, NULL},
    {"Gather", gather_check, gather_infer, gather_run, NULL},
    {"Identity", check_one_one, identity_infer, copy_run_op, NULL},
    {"Pad", pad_check, pad_infer, pad_run, NULL},
    {"Range", range_check, range_infer, range_run, NULL},
    {"Reshape", reshape_check, reshape_infer, copy_run_op, NULL},
    {"Resize", resize_check, resize_infer, resize_run, NULL},
    {"Shape", check_one_one, shape_infer, shape_run, NULL},
    {"Size", check_one_one, size_infer, size_run, NULL},
    {"Slice", slice_check, slice_infer, slice_run, NULL},
    {"SpaceToDepth", d2s_check, d2s_infer, d2s_run, NULL},
    {"Split", split_check, split_infer, split_run, NULL},
    {"Squeeze", squeeze_check, squeeze_infer, copy_run_op, NULL},
    {"Tile", tile_check, tile_infer, tile_run, NULL},
    {"Transpose", transpose_check, transpose_infer, transpose_run, NULL},
    {"Unsqueeze", unsqueeze_check, unsqueeze_infer, copy_run_op, NULL},
    {"Upsample", resize_check, resize_infer, resize_run, NULL},
    {0},
};
