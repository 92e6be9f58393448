/* op_math.c - element-wise math and activations, BatchNormalization,
 * Softmax/LogSoftmax, reductions, ArgMax/ArgMin and Cast.
 *
 * Element-wise kernels are made by macros, one function per (op, dtype), each
 * with four loops: both operands contiguous, one a broadcast scalar, or both.
 * A broadcast plan collapses the output shape so every kernel call gets the
 * longest contiguous run (an NCHW tensor times a 1xCx1x1 one becomes N*C calls
 * of H*W elements with a scalar operand). Tensors above ~64K elements are
 * split over the context's threads in contiguous ranges; every output element
 * is computed the same way whatever the split, so results do not depend on
 * the thread count.
 *
 * The plain references the optimized paths are compared against are the
 * multi-index double loops in tests/test_math.c.
 */
/* GCC 12 at -O2 vectorizes only loops that need no scalar epilogue ("very
 * cheap" cost model); these kernels are worth the full vectorizer. Set before
 * the includes so header inlines get the same options (and can be inlined). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include "fastmath.h"
#include "ops.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRAIN_CHEAP 65536 /* elements per task for memory-bound loops */
#define GRAIN_HEAVY 8192  /* for loops calling exp, erff, pow, ... */

/* "no loop-carried dependency" (output may alias operand 0 at the same index);
 * clang vectorizes these loops with runtime alias checks instead */
#if defined(__GNUC__) && !defined(__clang__)
#define QD_IVDEP _Pragma("GCC ivdep")
#else
#define QD_IVDEP
#endif

/* dtype sets, as bit masks */
#define DT(t) (1u << (t))
#define DT_FLOAT (DT(QD_F32) | DT(QD_F64))
#define DT_SINT (DT(QD_I8) | DT(QD_I16) | DT(QD_I32) | DT(QD_I64))
#define DT_UINT (DT(QD_U8) | DT(QD_U16) | DT(QD_U32) | DT(QD_U64))
#define DT_NUM (DT_FLOAT | DT_SINT | DT_UINT)

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------ */
/* Checks shared by all operators                                           */

/* Opset, input and output counts; inputs [0, min_in) must be present. */
static int check_io(const qd_node *n, int since, int min_in, int max_in, int max_out, qd_err *e)
{
    if (n->opset < since)
        return qd_errf(e, QD_EINPUT, "%s needs opset >= %d, the model has opset %d", n->op_type,
                       since, n->opset);
    if (n->nin < min_in || n->nin > max_in)
        return qd_errf(e, QD_EINPUT, "%s takes %d..%d inputs, the node has %d", n->op_type,
                       min_in, max_in, n->nin);
    for (int i = 0; i < min_in; i++)
        if (!qd_node_has_input(n, i))
            return qd_errf(e, QD_EINPUT, "%s: input %d is required", n->op_type, i);
    if (n->nout < 1 || n->nout > max_out || n->out[0] < 0)
        return qd_errf(e, QD_EINPUT, "%s has %d outputs, expected 1..%d with the first present",
                       n->op_type, n->nout, max_out);
    return QD_OK;
}

static int dtype_in(qd_dtype t, unsigned mask)
{
    return (unsigned)t < 32 && (mask & DT(t));
}

/* Declared dtype of input i (when the graph says) must be in mask. */
static int check_decl(const qd_node *n, const qd_graph *g, int i, unsigned mask, qd_err *e)
{
    if (!g || !qd_node_has_input(n, i) || n->in[i] >= g->nvalues)
        return QD_OK;
    qd_dtype t = g->values[n->in[i]].dtype;
    if (t == QD_UNDEF || dtype_in(t, mask))
        return QD_OK;
    return qd_errf(e, QD_EINPUT, "%s: unsupported dtype %s for input %d", n->op_type,
                   qd_dtype_name(t), i);
}

/* Actual dtype of input i must be in mask. */
static int need_dtype(const qd_node *n, const qd_tensor *t, int i, unsigned mask, qd_err *e)
{
    if (dtype_in(t->dtype, mask))
        return QD_OK;
    return qd_errf(e, QD_EINPUT, "%s: unsupported dtype %s for input %d", n->op_type,
                   qd_dtype_name(t->dtype), i);
}

/* Inputs ia and ib (given as a, b) must have the same dtype. */
static int same_dtype(const qd_node *n, const qd_tensor *a, int ia, const qd_tensor *b, int ib,
                      qd_err *e)
{
    if (a->dtype == b->dtype)
        return QD_OK;
    return qd_errf(e, QD_EINPUT, "%s: input %d is %s but input %d is %s", n->op_type, ib,
                   qd_dtype_name(b->dtype), ia, qd_dtype_name(a->dtype));
}

/* ------------------------------------------------------------------------ */
/* Unary element-wise operators                                             */

/* prm: the op's parameters (two floats for DEF_UNARY kernels) */
typedef void (*unary_fn)(int64_t n, const void *x, void *y, const void *prm);

/* One operator: kernels per dtype (output dtype = input dtype) and up to two
 * float attributes handed to the kernel. */
typedef struct unary_def {
    int since;
    int64_t grain;
    const char *attr[2];
    float attr_def[2];
    unary_fn k[QD_DTYPE_COUNT];
} unary_def;

#define DEF_UNARY(NAME, TT, EXPR)                                               \
    static void NAME(int64_t n, const void *vx, void *vy, const void *vp)       \
    {                                                                           \
        typedef TT T;                                                           \
        const T *restrict x = vx;                                               \
        T *restrict y = vy;                                                     \
        const float a0 = ((const float *)vp)[0], a1 = ((const float *)vp)[1];   \
        (void)a0;                                                               \
        (void)a1;                                                               \
        for (int64_t i = 0; i < n; i++) {                                       \
            T v = x[i];                                                         \
            y[i] = (EXPR);                                                      \
        }                                                                       \
    }

/* wrapping integer negation / absolute value (no signed overflow) */
#define INEG(v) ((T)(0 - (uint64_t)(v)))
#define IABS(v) ((v) < 0 ? INEG(v) : (v))

static inline float clamp01f(float t) { t = t > 1 ? 1 : t; return t < 0 ? 0 : t; }

DEF_UNARY(relu_f32, float, v < 0 ? 0 : v)
DEF_UNARY(relu_f64, double, v < 0 ? 0 : v)
DEF_UNARY(relu_i8, int8_t, v < 0 ? 0 : v)
DEF_UNARY(relu_i16, int16_t, v < 0 ? 0 : v)
DEF_UNARY(relu_i32, int32_t, v < 0 ? 0 : v)
DEF_UNARY(relu_i64, int64_t, v < 0 ? 0 : v)
DEF_UNARY(leaky_f32, float, v < 0 ? v * a0 : v)
DEF_UNARY(sigmoid_f32, float, 1.0f / (1.0f + fast_expf(-v)))
DEF_UNARY(sigmoid_f64, double, 1.0 / (1.0 + exp(-v)))
DEF_UNARY(hsigmoid_f32, float, clamp01f(v * a0 + a1))
DEF_UNARY(hswish_f32, float, v * clamp01f(v * (1.0f / 6.0f) + 0.5f))
DEF_UNARY(tanh_f32, float, tanhf(v))
DEF_UNARY(tanh_f64, double, tanh(v))
DEF_UNARY(sqrt_f32, float, sqrtf(v))
DEF_UNARY(sqrt_f64, double, sqrt(v))
DEF_UNARY(erf_f32, float, erff(v))
DEF_UNARY(erf_f64, double, erf(v))
DEF_UNARY(exp_f32, float, fast_expf(v))
DEF_UNARY(exp_f64, double, exp(v))
DEF_UNARY(log_f32, float, logf(v))
DEF_UNARY(log_f64, double, log(v))
DEF_UNARY(recip_f32, float, 1.0f / v)
DEF_UNARY(recip_f64, double, 1.0 / v)
DEF_UNARY(floor_f32, float, floorf(v))
DEF_UNARY(floor_f64, double, floor(v))
DEF_UNARY(ceil_f32, float, ceilf(v))
DEF_UNARY(ceil_f64, double, ceil(v))
DEF_UNARY(neg_f32, float, -v)
DEF_UNARY(neg_f64, double, -v)
DEF_UNARY(neg_i8, int8_t, INEG(v))
DEF_UNARY(neg_i16, int16_t, INEG(v))
DEF_UNARY(neg_i32, int32_t, INEG(v))
DEF_UNARY(neg_i64, int64_t, INEG(v))
DEF_UNARY(abs_f32, float, fabsf(v))
DEF_UNARY(abs_f64, double, fabs(v))
DEF_UNARY(abs_i8, int8_t, IABS(v))
DEF_UNARY(abs_i16, int16_t, IABS(v))
DEF_UNARY(abs_i32, int32_t, IABS(v))
DEF_UNARY(abs_i64, int64_t, IABS(v))
DEF_UNARY(abs_u8, uint8_t, v)
DEF_UNARY(abs_u16, uint16_t, v)
DEF_UNARY(abs_u32, uint32_t, v)
DEF_UNARY(abs_u64, uint64_t, v)
DEF_UNARY(sign_f32, float, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_f64, double, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_i8, int8_t, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_i16, int16_t, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_i32, int32_t, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_i64, int64_t, (T)((v > 0) - (v < 0)))
DEF_UNARY(sign_u8, uint8_t, (T)(v > 0))
DEF_UNARY(sign_u16, uint16_t, (T)(v > 0))
DEF_UNARY(sign_u32, uint32_t, (T)(v > 0))
DEF_UNARY(sign_u64, uint64_t, (T)(v > 0))
DEF_UNARY(not_b, uint8_t, (T)(v == 0))
DEF_UNARY(elu_f32, float, v < 0 ? a0 * expm1f(v) : v)
DEF_UNARY(selu_f32, float, v <= 0 ? a1 * (a0 * expm1f(v)) : a1 * v)
DEF_UNARY(celu_f32, float, v < 0 ? a0 * expm1f(v / a0) : v)
DEF_UNARY(softplus_f32, float, v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v)))
DEF_UNARY(softsign_f32, float, v / (1.0f + fabsf(v)))
DEF_UNARY(threlu_f32, float, v > a0 ? v : 0)
DEF_UNARY(square_f32, float, v * v)
DEF_UNARY(cube_f32, float, v * v * v)

#define K_FLOAT(P) [QD_F32] = P##_f32, [QD_F64] = P##_f64
#define K_SINT(P) [QD_I8] = P##_i8, [QD_I16] = P##_i16, [QD_I32] = P##_i32, [QD_I64] = P##_i64
#define K_UINT(P) [QD_U8] = P##_u8, [QD_U16] = P##_u16, [QD_U32] = P##_u32, [QD_U64] = P##_u64

static const unary_def U_RELU = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(relu), K_SINT(relu)}};
static const unary_def U_LEAKY = {6, GRAIN_CHEAP, {"alpha"}, {0.01f}, {[QD_F32] = leaky_f32}};
static const unary_def U_SIGMOID = {6, GRAIN_HEAVY, {0}, {0}, {K_FLOAT(sigmoid)}};
static const unary_def U_HSIGMOID = {6, GRAIN_CHEAP, {"alpha", "beta"}, {0.2f, 0.5f},
                                     {[QD_F32] = hsigmoid_f32}};
static const unary_def U_HSWISH = {14, GRAIN_CHEAP, {0}, {0}, {[QD_F32] = hswish_f32}};
static const unary_def U_TANH = {6, GRAIN_HEAVY, {0}, {0}, {K_FLOAT(tanh)}};
static const unary_def U_SQRT = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(sqrt)}};
static const unary_def U_ERF = {9, GRAIN_HEAVY, {0}, {0}, {K_FLOAT(erf)}};
static const unary_def U_EXP = {6, GRAIN_HEAVY, {0}, {0}, {K_FLOAT(exp)}};
static const unary_def U_LOG = {6, GRAIN_HEAVY, {0}, {0}, {K_FLOAT(log)}};
static const unary_def U_RECIP = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(recip)}};
static const unary_def U_FLOOR = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(floor)}};
static const unary_def U_CEIL = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(ceil)}};
static const unary_def U_NEG = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(neg), K_SINT(neg)}};
static const unary_def U_ABS = {6, GRAIN_CHEAP, {0}, {0}, {K_FLOAT(abs), K_SINT(abs), K_UINT(abs)}};
static const unary_def U_SIGN = {9, GRAIN_CHEAP, {0}, {0},
                                 {K_FLOAT(sign), K_SINT(sign), K_UINT(sign)}};
static const unary_def U_NOT = {6, GRAIN_CHEAP, {0}, {0}, {[QD_BOOL] = not_b}};
static const unary_def U_ELU = {6, GRAIN_HEAVY, {"alpha"}, {1.0f}, {[QD_F32] = elu_f32}};
static const unary_def U_SELU = {6, GRAIN_HEAVY, {"alpha", "gamma"},
                                 {1.67326319217681884765625f, 1.05070102214813232421875f},
                                 {[QD_F32] = selu_f32}};
static const unary_def U_CELU = {12, GRAIN_HEAVY, {"alpha"}, {1.0f}, {[QD_F32] = celu_f32}};
static const unary_def U_SOFTPLUS = {6, GRAIN_HEAVY, {0}, {0}, {[QD_F32] = softplus_f32}};
static const unary_def U_SOFTSIGN = {6, GRAIN_CHEAP, {0}, {0}, {[QD_F32] = softsign_f32}};
static const unary_def U_THRELU = {10, GRAIN_CHEAP, {"alpha"}, {1.0f}, {[QD_F32] = threlu_f32}};

static unsigned unary_mask(const unary_def *d)
{
    unsigned m = 0;
    for (int t = 0; t < QD_DTYPE_COUNT; t++)
        if (d->k[t])
            m |= DT(t);
    return m;
}

static int unary_check(const unary_def *d, qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, d->since, 1, 1, 1, e);
    return rc ? rc : check_decl(n, g, 0, unary_mask(d), e);
}

static int unary_infer(const unary_def *d, const qd_node *n, qd_tensor *const *in,
                       qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int rc = need_dtype(n, x, 0, unary_mask(d), e);
    return rc ? rc : qd_tensor_resize(out[0], x->dtype, x->ndim, x->shape, e);
}

typedef struct unary_job {
    unary_fn fn;
    const char *x;
    char *y;
    size_t esz;
    const void *prm;
} unary_job;

static void unary_range(void *arg, int64_t b, int64_t e, int tid)
{
    const unary_job *j = arg;
    (void)tid;
    j->fn(e - b, j->x + b * (int64_t)j->esz, j->y + b * (int64_t)j->esz, j->prm);
}

static void unary_apply(qd_ctx *ctx, unary_fn fn, const qd_tensor *x, qd_tensor *y,
                        const void *prm, int64_t grain)
{
    unary_job j = {fn, x->data, y->data, qd_dtype_size(x->dtype), prm};
    qd_ctx_for(ctx, qd_tensor_numel(x), grain, unary_range, &j);
}

static int unary_run(const unary_def *d, const qd_node *n, qd_tensor *const *in,
                     qd_tensor **out, qd_ctx *ctx)
{
    float prm[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        if (d->attr[i])
            prm[i] = qd_attr_float(n, d->attr[i], d->attr_def[i]);
    unary_fn fn = d->k[in[0]->dtype];
    if (!fn)
        return QD_EINPUT;
    unary_apply(ctx, fn, in[0], out[0], prm, d->grain);
    return QD_OK;
}

#define UNARY_OP(NAME, DEF)                                                                 \
    static int check_##NAME(qd_node *n, const qd_graph *g, qd_err *e)                       \
    {                                                                                       \
        return unary_check(&DEF, n, g, e);                                                  \
    }                                                                                       \
    static int infer_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,        \
                            qd_err *e)                                                      \
    {                                                                                       \
        return unary_infer(&DEF, n, in, out, e);                                            \
    }                                                                                       \
    static int run_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,          \
                          qd_ctx *ctx)                                                      \
    {                                                                                       \
        return unary_run(&DEF, n, in, out, ctx);                                            \
    }

UNARY_OP(Relu, U_RELU)
UNARY_OP(LeakyRelu, U_LEAKY)
UNARY_OP(Sigmoid, U_SIGMOID)
UNARY_OP(HardSigmoid, U_HSIGMOID)
UNARY_OP(HardSwish, U_HSWISH)
UNARY_OP(Tanh, U_TANH)
UNARY_OP(Sqrt, U_SQRT)
UNARY_OP(Erf, U_ERF)
UNARY_OP(Exp, U_EXP)
UNARY_OP(Log, U_LOG)
UNARY_OP(Reciprocal, U_RECIP)
UNARY_OP(Floor, U_FLOOR)
UNARY_OP(Ceil, U_CEIL)
UNARY_OP(Neg, U_NEG)
UNARY_OP(Abs, U_ABS)
UNARY_OP(Sign, U_SIGN)
UNARY_OP(Not, U_NOT)
UNARY_OP(Elu, U_ELU)
UNARY_OP(Selu, U_SELU)
UNARY_OP(Celu, U_CELU)
UNARY_OP(Softplus, U_SOFTPLUS)
UNARY_OP(Softsign, U_SOFTSIGN)
UNARY_OP(ThresholdedRelu, U_THRELU)

/* ------------------------------------------------------------------------ */
/* Clip: y = min(max(x, lo), hi). Opset < 11: float attributes min/max;     */
/* opset >= 11: optional scalar inputs of x's dtype. An absent bound is the */
/* dtype's lowest/highest value (as ONNX specifies and ONNX Runtime does).  */

#define DEF_CLIP(NAME, TT)                                                      \
    static void NAME(int64_t n, const void *vx, void *vy, const void *vp)       \
    {                                                                           \
        const TT *restrict x = vx;                                              \
        TT *restrict y = vy;                                                    \
        const TT lo = ((const TT *)vp)[0], hi = ((const TT *)vp)[1];            \
        for (int64_t i = 0; i < n; i++) {                                       \
            TT v = x[i];                                                        \
            v = v < lo ? lo : v;                                                \
            y[i] = hi < v ? hi : v;                                             \
        }                                                                       \
    }

DEF_CLIP(clip_f32, float)
DEF_CLIP(clip_f64, double)
DEF_CLIP(clip_i8, int8_t)
DEF_CLIP(clip_i16, int16_t)
DEF_CLIP(clip_i32, int32_t)
DEF_CLIP(clip_i64, int64_t)
DEF_CLIP(clip_u8, uint8_t)
DEF_CLIP(clip_u16, uint16_t)
DEF_CLIP(clip_u32, uint32_t)
DEF_CLIP(clip_u64, uint64_t)

static const unary_fn clip_k[QD_DTYPE_COUNT] = {K_FLOAT(clip), K_SINT(clip), K_UINT(clip)};

/* Clip's (lo, hi) pair in x's dtype, as the kernels read it. */
typedef union clip_prm {
    float f32[2];
    double f64[2];
    int8_t i8[2];
    int16_t i16[2];
    int32_t i32[2];
    int64_t i64[2];
    uint8_t u8[2];
    uint16_t u16[2];
    uint32_t u32[2];
    uint64_t u64[2];
} clip_prm;

static int check_Clip(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 1, n->opset < 11 ? 1 : 3, 1, e);
    if (rc)
        return rc;
    return check_decl(n, g, 0, n->opset < 12 ? DT_FLOAT : DT_NUM, e);
}

static int infer_Clip(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int rc = need_dtype(n, x, 0, n->opset < 12 ? DT_FLOAT : DT_NUM, e);
    if (rc)
        return rc;
    for (int i = 1; i < n->nin && i < 3; i++) {
        if (!in[i])
            continue;
        if ((rc = same_dtype(n, x, 0, in[i], i, e)))
            return rc;
        if (qd_tensor_numel(in[i]) != 1)
            return qd_errf(e, QD_EINPUT, "Clip: %s must be a scalar, got %lld elements",
                           i == 1 ? "min" : "max", (long long)qd_tensor_numel(in[i]));
    }
    return qd_tensor_resize(out[0], x->dtype, x->ndim, x->shape, e);
}

/* Write the dtype's lowest (hi == 0) or highest value into p. */
static void clip_default(qd_dtype t, int hi, void *p)
{
    switch (t) {
#define CD(DT_, TT, LO, HI) case DT_: *(TT *)p = hi ? (HI) : (LO); break;
        CD(QD_F32, float, -FLT_MAX, FLT_MAX)
        CD(QD_F64, double, -DBL_MAX, DBL_MAX)
        CD(QD_I8, int8_t, INT8_MIN, INT8_MAX)
        CD(QD_I16, int16_t, INT16_MIN, INT16_MAX)
        CD(QD_I32, int32_t, INT32_MIN, INT32_MAX)
        CD(QD_I64, int64_t, INT64_MIN, INT64_MAX)
        CD(QD_U8, uint8_t, 0, UINT8_MAX)
        CD(QD_U16, uint16_t, 0, UINT16_MAX)
        CD(QD_U32, uint32_t, 0, UINT32_MAX)
        CD(QD_U64, uint64_t, 0, UINT64_MAX)
#undef CD
    default: break;
    }
}

static int run_Clip(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    clip_prm prm;
    size_t es = qd_dtype_size(x->dtype);
    unary_fn fn = clip_k[x->dtype];
    if (!fn)
        return QD_EINPUT;
    for (int i = 0; i < 2; i++) {
        void *p = (char *)&prm + i * es;
        const qd_tensor *b = i + 1 < n->nin ? in[i + 1] : NULL;
        if (n->opset < 11) {
            float def = i ? FLT_MAX : -FLT_MAX;
            float v = qd_attr_float(n, i ? "max" : "min", def);
            if (x->dtype == QD_F32)
                *(float *)p = v;
            else
                *(double *)p = v == def ? (i ? DBL_MAX : -DBL_MAX) : v;
        } else if (b) {
            memcpy(p, b->data, es);
        } else {
            clip_default(x->dtype, i, p);
        }
    }
    unary_apply(ctx, fn, x, out[0], &prm, GRAIN_CHEAP);
    return QD_OK;
}

/* ------------------------------------------------------------------------ */
/* Broadcasting: plan and parallel driver for kernels of 1..3 inputs        */

#define MAXIN 3

/* y[0..n) = f(x[k][...]): operand k advances by u[k] (0 or 1) per element. */
typedef void (*bkern_fn)(int64_t n, const void *const *x, const int *u, void *y, const void *aux);

/* An output shape collapsed to nd dims (size-1 dims dropped, dims merged
 * where every input is contiguous across them) with each input's element
 * strides over those dims (0 where it is broadcast). The innermost stride of
 * each input is 0 or 1. */
typedef struct bplan {
    int nd, nin;
    int64_t dim[QD_MAX_DIMS];
    int64_t st[MAXIN][QD_MAX_DIMS];
    const char *x[MAXIN];
    size_t xsz[MAXIN];
    char *y;
    size_t ysz;
    bkern_fn fn;
    const void *aux;
} bplan;

/* Output shape (r, s); input k has shape (xr[k], xs[k]) broadcastable to it. */
static void plan_init(bplan *p, int r, const int64_t *s, int nin, const int *xr,
                      const int64_t *const *xs)
{
    p->nd = 0;
    p->nin = nin;
    for (int i = 0; i < r; i++) {
        if (s[i] == 1)
            continue;
        int d = p->nd;
        p->dim[d] = s[i];
        for (int k = 0; k < nin; k++) {
            int j = i - (r - xr[k]);
            int64_t st = 0;
            if (j >= 0 && xs[k][j] != 1) {
                st = 1;
                for (int m = j + 1; m < xr[k]; m++)
                    st *= xs[k][m];
            }
            p->st[k][d] = st;
        }
        int merge = d > 0;
        for (int k = 0; k < nin && merge; k++)
            merge = p->st[k][d - 1] == p->st[k][d] * p->dim[d];
        if (merge) {
            p->dim[d - 1] *= p->dim[d];
            for (int k = 0; k < nin; k++)
                p->st[k][d - 1] = p->st[k][d];
        } else {
            p->nd++;
        }
    }
    if (p->nd == 0) { /* one element */
        p->nd = 1;
        p->dim[0] = 1;
        for (int k = 0; k < nin; k++)
            p->st[k][0] = 1;
    }
}

/* Output elements [b, e) in row-major order, as runs of the innermost dim. */
static void plan_range(void *arg, int64_t b, int64_t e, int tid)
{
    const bplan *p = arg;
    int last = p->nd - 1;
    int64_t idx[QD_MAX_DIMS], off[MAXIN], rem = b;
    int u[MAXIN];
    const void *xp[MAXIN];
    (void)tid;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % p->dim[d];
        rem /= p->dim[d];
    }
    for (int k = 0; k < p->nin; k++) {
        off[k] = 0;
        for (int d = 0; d <= last; d++)
            off[k] += idx[d] * p->st[k][d];
        u[k] = p->st[k][last] != 0;
    }
    while (b < e) {
        int64_t cnt = min64(p->dim[last] - idx[last], e - b);
        for (int k = 0; k < p->nin; k++)
            xp[k] = p->x[k] + off[k] * (int64_t)p->xsz[k];
        p->fn(cnt, xp, u, p->y + b * (int64_t)p->ysz, p->aux);
        b += cnt;
        idx[last] += cnt;
        for (int k = 0; k < p->nin; k++)
            off[k] += cnt * p->st[k][last];
        for (int d = last; d > 0 && idx[d] == p->dim[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
            for (int k = 0; k < p->nin; k++)
                off[k] += p->st[k][d - 1] - p->dim[d] * p->st[k][d];
        }
    }
}

/* y = fn(x...) over y's shape; x[k] given with (possibly adjusted) shapes. */
static void bcast_run(qd_ctx *ctx, bkern_fn fn, const void *aux, qd_tensor *y, int nin,
                      const qd_tensor *const *x, const int *xr, const int64_t *const *xs,
                      int64_t grain)
{
    int64_t total = qd_tensor_numel(y);
    if (total == 0)
        return;
    bplan p;
    plan_init(&p, y->ndim, y->shape, nin, xr, xs);
    for (int k = 0; k < nin; k++) {
        p.x[k] = x[k]->data;
        p.xsz[k] = qd_dtype_size(x[k]->dtype);
    }
    p.y = y->data;
    p.ysz = qd_dtype_size(y->dtype);
    p.fn = fn;
    p.aux = aux;
    qd_ctx_for(ctx, total, grain, plan_range, &p);
}

/* Binary kernel: p, q are the operands (type T, U an unsigned type at least
 * as wide as int for wrapping arithmetic), TO the output type. */
#define DEF_BIN(NAME, TT, UU, TO, EXPR)                                         \
    static void NAME(int64_t n, const void *const *x, const int *u, void *vy,   \
                     const void *aux)                                           \
    {                                                                           \
        typedef TT T;                                                           \
        typedef UU U;                                                           \
        const T *a = x[0], *b = x[1];                                           \
        TO *y = vy;                                                             \
        (void)aux;                                                              \
        (void)sizeof(U);                                                        \
        if (u[0] && u[1]) {                                                     \
            QD_IVDEP for (int64_t i = 0; i < n; i++)                            \
            {                                                                   \
                T p = a[i], q = b[i];                                           \
                y[i] = (EXPR);                                                  \
            }                                                                   \
        } else if (u[0]) {                                                      \
            const T q = b[0];                                                   \
            QD_IVDEP for (int64_t i = 0; i < n; i++)                            \
            {                                                                   \
                T p = a[i];                                                     \
                y[i] = (EXPR);                                                  \
            }                                                                   \
        } else if (u[1]) {                                                      \
            const T p = a[0];                                                   \
            QD_IVDEP for (int64_t i = 0; i < n; i++)                            \
            {                                                                   \
                T q = b[i];                                                     \
                y[i] = (EXPR);                                                  \
            }                                                                   \
        } else {                                                                \
            const T p = a[0], q = b[0];                                         \
            const TO v = (EXPR);                                                \
            for (int64_t i = 0; i < n; i++)                                     \
                y[i] = v;                                                       \
        }                                                                       \
    }

/* One binary op for every numeric dtype: EF for floats, ES for signed and EU
 * for unsigned integers; TO(T) gives the output type. */
#define DEF_BIN_NUM(P, EF, ES, EU, TO)                                          \
    DEF_BIN(P##_f32, float, float, TO(float), EF)                               \
    DEF_BIN(P##_f64, double, double, TO(double), EF)                            \
    DEF_BIN(P##_i8, int8_t, unsigned, TO(int8_t), ES)                           \
    DEF_BIN(P##_i16, int16_t, unsigned, TO(int16_t), ES)                        \
    DEF_BIN(P##_i32, int32_t, uint32_t, TO(int32_t), ES)                        \
    DEF_BIN(P##_i64, int64_t, uint64_t, TO(int64_t), ES)                        \
    DEF_BIN(P##_u8, uint8_t, unsigned, TO(uint8_t), EU)                         \
    DEF_BIN(P##_u16, uint16_t, unsigned, TO(uint16_t), EU)                      \
    DEF_BIN(P##_u32, uint32_t, uint32_t, TO(uint32_t), EU)                      \
    DEF_BIN(P##_u64, uint64_t, uint64_t, TO(uint64_t), EU)

#define SAME(T) T
#define BOOL(T) uint8_t
#define K_NUM(P) K_FLOAT(P), K_SINT(P), K_UINT(P)

/* integer +,-,* wrap (as in ONNX Runtime); x / 0 gives 0 instead of a trap,
 * and INT_MIN / -1 wraps. Float Max/Min propagate NaN. */
#define W_ADD ((T)((U)p + (U)q))
#define W_SUB ((T)((U)p - (U)q))
#define W_MUL ((T)((U)p * (U)q))
#define S_DIV (q == 0 ? (T)0 : q == -1 ? (T)(0 - (U)p) : (T)(p / q))
#define U_DIV (q == 0 ? (T)0 : (T)(p / q))
#define F_MAX ((p > q || p != p) ? p : q)
#define F_MIN ((p < q || p != p) ? p : q)
#define I_MAX (p > q ? p : q)
#define I_MIN (p < q ? p : q)

DEF_BIN_NUM(add, p + q, W_ADD, W_ADD, SAME)
DEF_BIN_NUM(sub, p - q, W_SUB, W_SUB, SAME)
DEF_BIN_NUM(mul, p * q, W_MUL, W_MUL, SAME)
DEF_BIN_NUM(div, p / q, S_DIV, U_DIV, SAME)
DEF_BIN_NUM(max, F_MAX, I_MAX, I_MAX, SAME)
DEF_BIN_NUM(min, F_MIN, I_MIN, I_MIN, SAME)
DEF_BIN_NUM(eq, p == q, p == q, p == q, BOOL)
DEF_BIN_NUM(lt, p < q, p < q, p < q, BOOL)
DEF_BIN_NUM(gt, p > q, p > q, p > q, BOOL)
DEF_BIN_NUM(le, p <= q, p <= q, p <= q, BOOL)
DEF_BIN_NUM(ge, p >= q, p >= q, p >= q, BOOL)
DEF_BIN(eq_b, uint8_t, unsigned, uint8_t, (p != 0) == (q != 0))
DEF_BIN(and_b, uint8_t, unsigned, uint8_t, (p != 0) & (q != 0))
DEF_BIN(or_b, uint8_t, unsigned, uint8_t, (p != 0) | (q != 0))
DEF_BIN(xor_b, uint8_t, unsigned, uint8_t, (p != 0) ^ (q != 0))
DEF_BIN(prelu_f32, float, float, float, p < 0 ? p * q : p)
DEF_BIN(prelu_f64, double, double, double, p < 0 ? p * q : p)
DEF_BIN(pow_f32, float, float, float, powf(p, q))

/* Mean's last step: (p + q) / count, count in aux. */
DEF_BIN(meanlast_f32, float, float, float, (p + q) / (T)(*(const double *)aux))
DEF_BIN(meanlast_f64, double, double, double, (p + q) / *(const double *)aux)

typedef struct bin_def {
    int since;
    int legacy;   /* at opset < 7 the op has the broadcast/axis attributes */
    int out_bool; /* output dtype is bool */
    int64_t grain;
    bkern_fn k[QD_DTYPE_COUNT];
} bin_def;

static const bin_def B_ADD = {6, 1, 0, GRAIN_CHEAP, {K_NUM(add)}};
static const bin_def B_SUB = {6, 1, 0, GRAIN_CHEAP, {K_NUM(sub)}};
static const bin_def B_MUL = {6, 1, 0, GRAIN_CHEAP, {K_NUM(mul)}};
static const bin_def B_DIV = {6, 1, 0, GRAIN_CHEAP, {K_NUM(div)}};
static const bin_def B_EQ = {6, 1, 1, GRAIN_CHEAP, {K_NUM(eq), [QD_BOOL] = eq_b}};
static const bin_def B_LT = {6, 1, 1, GRAIN_CHEAP, {K_NUM(lt)}};
static const bin_def B_GT = {6, 1, 1, GRAIN_CHEAP, {K_NUM(gt)}};
static const bin_def B_LE = {12, 0, 1, GRAIN_CHEAP, {K_NUM(le)}};
static const bin_def B_GE = {12, 0, 1, GRAIN_CHEAP, {K_NUM(ge)}};
static const bin_def B_AND = {6, 1, 1, GRAIN_CHEAP, {[QD_BOOL] = and_b}};
static const bin_def B_OR = {6, 1, 1, GRAIN_CHEAP, {[QD_BOOL] = or_b}};
static const bin_def B_XOR = {6, 1, 1, GRAIN_CHEAP, {[QD_BOOL] = xor_b}};

static unsigned kern_mask(const bkern_fn *k)
{
    unsigned m = 0;
    for (int t = 0; t < QD_DTYPE_COUNT; t++)
        if (k[t])
            m |= DT(t);
    return m;
}

/* B's shape for broadcasting against A. From opset 7 it is numpy's rule; before,
 * B broadcasts onto A only with broadcast=1, its dims aligned at `axis` (default:
 * trailing), and without broadcast the shapes must be equal. */
static int b_shape(const qd_node *n, int legacy, const qd_tensor *a, const qd_tensor *b, int *rb,
                   int64_t *sb, qd_err *e)
{
    *rb = b->ndim;
    memcpy(sb, b->shape, sizeof b->shape);
    if (!legacy || n->opset >= 7)
        return QD_OK;
    int eq = a->ndim == b->ndim;
    for (int i = 0; eq && i < a->ndim; i++)
        eq = a->shape[i] == b->shape[i];
    if (!qd_attr_int(n, "broadcast", 0)) {
        if (eq)
            return QD_OK;
        char sa[96], sbs[96];
        return qd_errf(e, QD_EINPUT, "%s: shapes %s and %s differ and broadcast=0", n->op_type,
                       qd_shape_str(a->ndim, a->shape, sa, sizeof sa),
                       qd_shape_str(b->ndim, b->shape, sbs, sizeof sbs));
    }
    const qd_attr *ax = qd_attr_find(n, "axis");
    if (!ax)
        return QD_OK;
    int axis;
    if (qd_norm_axis(ax->i, a->ndim, &axis, e))
        return e ? e->code : QD_EINPUT;
    if (axis + b->ndim > a->ndim)
        return qd_errf(e, QD_EINPUT, "%s: B of rank %d does not fit A of rank %d at axis %d",
                       n->op_type, b->ndim, a->ndim, axis);
    *rb = a->ndim;
    for (int i = 0; i < a->ndim; i++)
        sb[i] = i >= axis && i < axis + b->ndim ? b->shape[i - axis] : 1;
    return QD_OK;
}

/* Output shape of a two-input op; at opset < 7 it must be A's shape. */
static int bin_shape(const qd_node *n, int legacy, const qd_tensor *a, const qd_tensor *b, int *r,
                     int64_t *s, qd_err *e)
{
    int rb;
    int64_t sb[QD_MAX_DIMS];
    int rc = b_shape(n, legacy, a, b, &rb, sb, e);
    if (rc || (rc = qd_broadcast_shape(a->ndim, a->shape, rb, sb, r, s, e)))
        return rc;
    int same = *r == a->ndim;
    for (int i = 0; same && i < *r; i++)
        same = s[i] == a->shape[i];
    if (legacy && n->opset < 7 && !same)
        return qd_errf(e, QD_EINPUT, "%s: at opset %d B must broadcast onto A's shape",
                       n->op_type, n->opset);
    return QD_OK;
}

static int bin_check(const bin_def *d, qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, d->since, 2, 2, 1, e);
    unsigned m = kern_mask(d->k);
    if (!rc)
        rc = check_decl(n, g, 0, m, e);
    return rc ? rc : check_decl(n, g, 1, m, e);
}

static int bin_infer(const bin_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                     qd_err *e)
{
    int r, rc;
    int64_t s[QD_MAX_DIMS];
    if ((rc = need_dtype(n, in[0], 0, kern_mask(d->k), e)) || (rc = same_dtype(n, in[0], 0, in[1], 1, e)))
        return rc;
    if ((rc = bin_shape(n, d->legacy, in[0], in[1], &r, s, e)))
        return rc;
    return qd_tensor_resize(out[0], d->out_bool ? QD_BOOL : in[0]->dtype, r, s, e);
}

/* Run fn on (a, b) -> y, with b's legacy shape adjustment. */
static int bin_apply(qd_ctx *ctx, const qd_node *n, int legacy, bkern_fn fn, const void *aux,
                     const qd_tensor *a, const qd_tensor *b, qd_tensor *y, int64_t grain)
{
    int rb;
    int64_t sb[QD_MAX_DIMS];
    if (!fn || b_shape(n, legacy, a, b, &rb, sb, NULL))
        return QD_EINPUT;
    const qd_tensor *x[2] = {a, b};
    const int xr[2] = {a->ndim, rb};
    const int64_t *xs[2] = {a->shape, sb};
    bcast_run(ctx, fn, aux, y, 2, x, xr, xs, grain);
    return QD_OK;
}

static int bin_run(const bin_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                   qd_ctx *ctx)
{
    return bin_apply(ctx, n, d->legacy, d->k[in[0]->dtype], NULL, in[0], in[1], out[0],
                     d->grain);
}

#define BIN_OP(NAME, DEF)                                                                   \
    static int check_##NAME(qd_node *n, const qd_graph *g, qd_err *e)                       \
    {                                                                                       \
        return bin_check(&DEF, n, g, e);                                                    \
    }                                                                                       \
    static int infer_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,        \
                            qd_err *e)                                                      \
    {                                                                                       \
        return bin_infer(&DEF, n, in, out, e);                                              \
    }                                                                                       \
    static int run_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,          \
                          qd_ctx *ctx)                                                      \
    {                                                                                       \
        return bin_run(&DEF, n, in, out, ctx);                                              \
    }

BIN_OP(Add, B_ADD)
BIN_OP(Sub, B_SUB)
BIN_OP(Mul, B_MUL)
BIN_OP(Div, B_DIV)
BIN_OP(Equal, B_EQ)
BIN_OP(Less, B_LT)
BIN_OP(Greater, B_GT)
BIN_OP(LessOrEqual, B_LE)
BIN_OP(GreaterOrEqual, B_GE)
BIN_OP(And, B_AND)
BIN_OP(Or, B_OR)
BIN_OP(Xor, B_XOR)

/* ---- PRelu: y = x < 0 ? slope * x : x, slope broadcast onto x ---------- */

static const bkern_fn prelu_k[QD_DTYPE_COUNT] = {K_FLOAT(prelu)};

static int check_PRelu(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 2, 2, 1, e);
    return rc ? rc : check_decl(n, g, 0, DT_FLOAT, e);
}

/* The slope's shape for broadcasting: numpy's rule (unidirectional), except
 * that PRelu-6 takes a 1-D slope of size C as per-channel (C, 1, ...). */
static void prelu_slope(const qd_node *n, const qd_tensor *x, const qd_tensor *s, int *rs, int64_t *ss)
{
    *rs = s->ndim;
    memcpy(ss, s->shape, sizeof s->shape);
    if (n->opset < 7 && s->ndim == 1 && x->ndim >= 2 && s->shape[0] == x->shape[1] &&
        s->shape[0] != 1) {
        *rs = x->ndim - 1;
        for (int i = 0; i < *rs; i++)
            ss[i] = i ? 1 : s->shape[0];
    }
}

static int infer_PRelu(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0], *s = in[1];
    int r, rs, rc;
    int64_t sh[QD_MAX_DIMS], ss[QD_MAX_DIMS];
    if ((rc = need_dtype(n, x, 0, DT_FLOAT, e)) || (rc = same_dtype(n, x, 0, s, 1, e)))
        return rc;
    prelu_slope(n, x, s, &rs, ss);
    if ((rc = qd_broadcast_shape(x->ndim, x->shape, rs, ss, &r, sh, e)))
        return rc;
    int same = r == x->ndim;
    for (int i = 0; same && i < r; i++)
        same = sh[i] == x->shape[i];
    if (!same) {
        char a[96], b[96];
        return qd_errf(e, QD_EINPUT, "PRelu: slope %s does not broadcast onto X %s",
                       qd_shape_str(s->ndim, s->shape, b, sizeof b),
                       qd_shape_str(x->ndim, x->shape, a, sizeof a));
    }
    return qd_tensor_resize(out[0], x->dtype, x->ndim, x->shape, e);
}

static int run_PRelu(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    int rs;
    int64_t ss[QD_MAX_DIMS];
    bkern_fn fn = prelu_k[in[0]->dtype];
    if (!fn)
        return QD_EINPUT;
    prelu_slope(n, in[0], in[1], &rs, ss);
    const qd_tensor *x[2] = {in[0], in[1]};
    const int xr[2] = {in[0]->ndim, rs};
    const int64_t *xs[2] = {in[0]->shape, ss};
    bcast_run(ctx, fn, NULL, out[0], 2, x, xr, xs, GRAIN_CHEAP);
    return QD_OK;
}

/* ---- Pow: base f32/f64/i32/i64, exponent any numeric type -------------- */

/* Read element i of a numeric array of dtype t as double. */
static inline double ld_f64(const void *p, qd_dtype t, int64_t i)
{
    switch (t) {
    case QD_F32: return ((const float *)p)[i];
    case QD_F64: return ((const double *)p)[i];
    case QD_I8: return ((const int8_t *)p)[i];
    case QD_I16: return ((const int16_t *)p)[i];
    case QD_I32: return ((const int32_t *)p)[i];
    case QD_I64: return (double)((const int64_t *)p)[i];
    case QD_U8: return ((const uint8_t *)p)[i];
    case QD_U16: return ((const uint16_t *)p)[i];
    case QD_U32: return ((const uint32_t *)p)[i];
    case QD_U64: return (double)((const uint64_t *)p)[i];
    default: return 0;
    }
}

/* Float to integer truncation toward zero with x86's result for NaN and out
 * of range values (the "integer indefinite" INT_MIN) instead of UB. */
static inline int64_t f2i64(double d)
{
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? (int64_t)d : INT64_MIN;
}

static inline int32_t f2i32(double d)
{
    return d > -2147483649.0 && d < 2147483648.0 ? (int32_t)d : INT32_MIN;
}

static inline uint64_t f2u64(double d)
{
    if (d >= 9223372036854775808.0 && d < 18446744073709551616.0)
        return (uint64_t)d;
    return (uint64_t)f2i64(d);
}

typedef struct pow_aux {
    qd_dtype ta, tb;
} pow_aux;

/* Generic Pow as ONNX Runtime computes it for mixed types: std::pow in
 * double, then converted to the base's type. */
static void pow_gen(int64_t n, const void *const *x, const int *u, void *y, const void *vaux)
{
    const pow_aux *aux = vaux;
    for (int64_t i = 0; i < n; i++) {
        double v = pow(ld_f64(x[0], aux->ta, i * u[0]), ld_f64(x[1], aux->tb, i * u[1]));
        switch (aux->ta) {
        case QD_F32: ((float *)y)[i] = (float)v; break;
        case QD_F64: ((double *)y)[i] = v; break;
        case QD_I32: ((int32_t *)y)[i] = f2i32(v); break;
        case QD_I64: ((int64_t *)y)[i] = f2i64(v); break;
        default: break;
        }
    }
}

#define POW_BASE (DT_FLOAT | DT(QD_I32) | DT(QD_I64))

static int check_Pow(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 2, 2, 1, e);
    if (!rc)
        rc = check_decl(n, g, 0, POW_BASE, e);
    return rc ? rc : check_decl(n, g, 1, DT_NUM, e);
}

static int infer_Pow(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int r, rc;
    int64_t s[QD_MAX_DIMS];
    if ((rc = need_dtype(n, in[0], 0, POW_BASE, e)) || (rc = need_dtype(n, in[1], 1, DT_NUM, e)))
        return rc;
    if (n->opset < 12 && (rc = same_dtype(n, in[0], 0, in[1], 1, e)))
        return rc;
    if ((rc = bin_shape(n, 1, in[0], in[1], &r, s, e)))
        return rc;
    return qd_tensor_resize(out[0], in[0]->dtype, r, s, e);
}

static int run_Pow(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *a = in[0], *b = in[1];
    if (a->dtype == QD_F32 && b->dtype == QD_F32) {
        /* x^2 and x^3 by multiplication, as ONNX Runtime does */
        float q = qd_tensor_numel(b) == 1 ? ((const float *)b->data)[0] : 0;
        if ((q == 2.0f || q == 3.0f) && qd_tensor_numel(a) == qd_tensor_numel(out[0])) {
            static const float none[2];
            unary_apply(ctx, q == 2.0f ? square_f32 : cube_f32, a, out[0], none, GRAIN_CHEAP);
            return QD_OK;
        }
        return bin_apply(ctx, n, 1, pow_f32, NULL, a, b, out[0], GRAIN_HEAVY);
    }
    pow_aux aux = {a->dtype, b->dtype};
    return bin_apply(ctx, n, 1, pow_gen, &aux, a, b, out[0], GRAIN_HEAVY);
}

/* ---- Max, Min, Sum, Mean: 1+ inputs, folded left to right -------------- */

typedef struct var_def {
    int mean;
    bkern_fn k[QD_DTYPE_COUNT];
    bkern_fn last[QD_DTYPE_COUNT]; /* Mean: add-and-divide for the last input */
} var_def;

static const var_def V_MAX = {0, {K_NUM(max)}, {0}};
static const var_def V_MIN = {0, {K_NUM(min)}, {0}};
static const var_def V_SUM = {0, {K_FLOAT(add)}, {0}};
static const var_def V_MEAN = {1, {K_FLOAT(add)}, {K_FLOAT(meanlast)}};

static int var_check(const var_def *d, qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 1, INT32_MAX, 1, e);
    for (int i = 0; !rc && i < n->nin; i++) {
        if (!qd_node_has_input(n, i))
            return qd_errf(e, QD_EINPUT, "%s: input %d is empty", n->op_type, i);
        rc = check_decl(n, g, i, kern_mask(d->k), e);
    }
    return rc;
}

static int var_infer(const var_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                     qd_err *e)
{
    int r, rc = need_dtype(n, in[0], 0, kern_mask(d->k), e);
    int64_t s[QD_MAX_DIMS];
    if (rc)
        return rc;
    r = in[0]->ndim;
    memcpy(s, in[0]->shape, sizeof s);
    for (int i = 1; i < n->nin; i++) {
        if (!in[i])
            return qd_errf(e, QD_EINPUT, "%s: input %d is empty", n->op_type, i);
        int64_t prev[QD_MAX_DIMS];
        memcpy(prev, s, sizeof s);
        if ((rc = same_dtype(n, in[0], 0, in[i], i, e)) ||
            (rc = qd_broadcast_shape(r, prev, in[i]->ndim, in[i]->shape, &r, s, e)))
            return rc;
    }
    return qd_tensor_resize(out[0], in[0]->dtype, r, s, e);
}

static int var_run(const var_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                   qd_ctx *ctx)
{
    qd_tensor *y = out[0];
    qd_dtype t = in[0]->dtype;
    double count = n->nin;
    if (!d->k[t])
        return QD_EINPUT;
    if (n->nin == 1) {
        memcpy(y->data, in[0]->data, qd_tensor_nbytes(in[0]));
        return QD_OK;
    }
    for (int i = 1; i < n->nin; i++) {
        const qd_tensor *a = i == 1 ? in[0] : y; /* y aliases operand 0 at the same index */
        const qd_tensor *x[2] = {a, in[i]};
        const int xr[2] = {a->ndim, in[i]->ndim};
        const int64_t *xs[2] = {a->shape, in[i]->shape};
        int last = d->mean && i == n->nin - 1;
        bcast_run(ctx, last ? d->last[t] : d->k[t], &count, y, 2, x, xr, xs, GRAIN_CHEAP);
    }
    return QD_OK;
}

#define VAR_OP(NAME, DEF)                                                                   \
    static int check_##NAME(qd_node *n, const qd_graph *g, qd_err *e)                       \
    {                                                                                       \
        return var_check(&DEF, n, g, e);                                                    \
    }                                                                                       \
    static int infer_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,        \
                            qd_err *e)                                                      \
    {                                                                                       \
        return var_infer(&DEF, n, in, out, e);                                              \
    }                                                                                       \
    static int run_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,          \
                          qd_ctx *ctx)                                                      \
    {                                                                                       \
        return var_run(&DEF, n, in, out, ctx);                                              \
    }

VAR_OP(Max, V_MAX)
VAR_OP(Min, V_MIN)
VAR_OP(Sum, V_SUM)
VAR_OP(Mean, V_MEAN)

/* ---- Where: y = cond ? x : y, three-way broadcasting, any element size -- */

#define DEF_WHERE(NAME, TT)                                                     \
    static void NAME(int64_t n, const void *const *x, const int *u, void *vy,   \
                     const void *aux)                                           \
    {                                                                           \
        const uint8_t *c = x[0];                                                \
        const TT *a = x[1], *b = x[2];                                          \
        TT *y = vy;                                                             \
        int64_t uc = u[0], ua = u[1], ub = u[2];                                \
        (void)aux;                                                              \
        if (uc && ua && ub) {                                                   \
            for (int64_t i = 0; i < n; i++)                                     \
                y[i] = c[i] ? a[i] : b[i];                                      \
        } else {                                                                \
            for (int64_t i = 0; i < n; i++)                                     \
                y[i] = c[i * uc] ? a[i * ua] : b[i * ub];                       \
        }                                                                       \
    }

DEF_WHERE(where_1, uint8_t)
DEF_WHERE(where_2, uint16_t)
DEF_WHERE(where_4, uint32_t)
DEF_WHERE(where_8, uint64_t)

static int check_Where(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 9, 3, 3, 1, e);
    return rc ? rc : check_decl(n, g, 0, DT(QD_BOOL), e);
}

static int infer_Where(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int r, r2, rc;
    int64_t s[QD_MAX_DIMS], s2[QD_MAX_DIMS];
    if ((rc = need_dtype(n, in[0], 0, DT(QD_BOOL), e)) || (rc = same_dtype(n, in[1], 1, in[2], 2, e)))
        return rc;
    if (!qd_dtype_size(in[1]->dtype))
        return qd_errf(e, QD_EINPUT, "Where: unsupported dtype %s", qd_dtype_name(in[1]->dtype));
    if ((rc = qd_broadcast_shape(in[0]->ndim, in[0]->shape, in[1]->ndim, in[1]->shape, &r2, s2, e)) ||
        (rc = qd_broadcast_shape(r2, s2, in[2]->ndim, in[2]->shape, &r, s, e)))
        return rc;
    return qd_tensor_resize(out[0], in[1]->dtype, r, s, e);
}

static int run_Where(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    bkern_fn fn;
    (void)n;
    switch (qd_dtype_size(in[1]->dtype)) {
    case 1: fn = where_1; break;
    case 2: fn = where_2; break;
    case 4: fn = where_4; break;
    case 8: fn = where_8; break;
    default: return QD_EINPUT;
    }
    const qd_tensor *x[3] = {in[0], in[1], in[2]};
    const int xr[3] = {in[0]->ndim, in[1]->ndim, in[2]->ndim};
    const int64_t *xs[3] = {in[0]->shape, in[1]->shape, in[2]->shape};
    bcast_run(ctx, fn, NULL, out[0], 3, x, xr, xs, GRAIN_CHEAP);
    return QD_OK;
}

/* ------------------------------------------------------------------------ */
/* Softmax, LogSoftmax (float32)                                            */
/*                                                                          */
/* The input is viewed as (outer, len, inner) and normalized over len:      */
/* opset < 13 coerces to 2-D at axis (default 1): inner = 1 and len is the  */
/* product of the dims from axis on; opset >= 13 uses the one axis (default */
/* -1). Numerically stable: exp(x - max), sum in double.                    */

#define SM_CH 256 /* columns per task when inner > 1 */

typedef struct smax_job {
    const float *x;
    float *y;
    int64_t len, inner, nchunk;
    int log;
} smax_job;

/* One contiguous row of len elements (8 lanes for the max and the sum). */
static void smax_row(const float *x, float *y, int64_t len, int log)
{
    float ml[8];
    double sl[8] = {0};
    int64_t i;
    for (int j = 0; j < 8; j++)
        ml[j] = -INFINITY;
    for (i = 0; i + 8 <= len; i += 8)
        for (int j = 0; j < 8; j++)
            ml[j] = x[i + j] > ml[j] ? x[i + j] : ml[j];
    for (; i < len; i++)
        ml[0] = x[i] > ml[0] ? x[i] : ml[0];
    float m = ml[0];
    for (int j = 1; j < 8; j++)
        m = ml[j] > m ? ml[j] : m;
    for (i = 0; i < len; i++)
        y[i] = fast_expf(x[i] - m);
    for (i = 0; i + 8 <= len; i += 8)
        for (int j = 0; j < 8; j++)
            sl[j] += y[i + j];
    for (; i < len; i++)
        sl[0] += y[i];
    double s = 0;
    for (int j = 0; j < 8; j++)
        s += sl[j];
    if (log) {
        float ls = logf((float)s);
        for (i = 0; i < len; i++)
            y[i] = (x[i] - m) - ls;
    } else {
        float r = 1.0f / (float)s;
        for (i = 0; i < len; i++)
            y[i] *= r;
    }
}

/* cnt <= SM_CH columns j of a (len, inner) block: normalize x[k*inner + j]
 * over k, vectorized across j. y holds exp(x - max) in between. */
static void smax_cols(const float *x, float *y, int64_t len, int64_t inner, int cnt, int log)
{
    float m[SM_CH], r[SM_CH];
    double s[SM_CH];
    for (int j = 0; j < cnt; j++) {
        m[j] = -INFINITY;
        s[j] = 0;
    }
    for (int64_t k = 0; k < len; k++) {
        const float *xk = x + k * inner;
        for (int j = 0; j < cnt; j++)
            m[j] = xk[j] > m[j] ? xk[j] : m[j];
    }
    for (int64_t k = 0; k < len; k++) {
        const float *xk = x + k * inner;
        float *yk = y + k * inner;
        for (int j = 0; j < cnt; j++)
            yk[j] = fast_expf(xk[j] - m[j]);
        for (int j = 0; j < cnt; j++)
            s[j] += yk[j];
    }
    for (int j = 0; j < cnt; j++)
        r[j] = log ? logf((float)s[j]) : 1.0f / (float)s[j];
    for (int64_t k = 0; k < len; k++) {
        const float *xk = x + k * inner;
        float *yk = y + k * inner;
        if (log)
            for (int j = 0; j < cnt; j++)
                yk[j] = (xk[j] - m[j]) - r[j];
        else
            for (int j = 0; j < cnt; j++)
                yk[j] *= r[j];
    }
}

static void smax_range(void *arg, int64_t b, int64_t e, int tid)
{
    const smax_job *j = arg;
    (void)tid;
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / j->nchunk, c = it % j->nchunk, base = o * j->len * j->inner;
        if (j->inner == 1) {
            smax_row(j->x + base, j->y + base, j->len, j->log);
        } else {
            int64_t j0 = c * SM_CH;
            smax_cols(j->x + base + j0, j->y + base + j0, j->len, j->inner,
                      (int)min64(SM_CH, j->inner - j0), j->log);
        }
    }
}

static int check_Softmax(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 1, 1, 1, e);
    return rc ? rc : check_decl(n, g, 0, DT(QD_F32), e);
}

/* outer/len/inner of the softmax view; QD_EINPUT for a bad axis. */
static int smax_view(const qd_node *n, const qd_tensor *x, int64_t *outer, int64_t *len,
                     int64_t *inner, qd_err *e)
{
    int v13 = n->opset >= 13, axis;
    int rc = qd_norm_axis(qd_attr_int(n, "axis", v13 ? -1 : 1), x->ndim, &axis, e);
    if (rc)
        return rc;
    *outer = qd_shape_numel(axis, x->shape);
    *len = v13 ? (x->ndim ? x->shape[axis] : 1) : qd_shape_numel(x->ndim - axis, x->shape + axis);
    *inner = v13 && x->ndim ? qd_shape_numel(x->ndim - axis - 1, x->shape + axis + 1) : 1;
    return QD_OK;
}

static int infer_Softmax(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    int64_t o, l, i;
    int rc = need_dtype(n, in[0], 0, DT(QD_F32), e);
    if (rc || (rc = smax_view(n, in[0], &o, &l, &i, e)))
        return rc;
    return qd_tensor_resize(out[0], in[0]->dtype, in[0]->ndim, in[0]->shape, e);
}

static int smax_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx, int log)
{
    smax_job j = {in[0]->data, out[0]->data, 0, 0, 0, log};
    int64_t outer;
    if (smax_view(n, in[0], &outer, &j.len, &j.inner, NULL))
        return QD_EINPUT;
    if (outer == 0 || j.len == 0 || j.inner == 0)
        return QD_OK;
    j.nchunk = (j.inner + SM_CH - 1) / SM_CH;
    int64_t work = j.len * min64(j.inner, SM_CH);
    qd_ctx_for(ctx, outer * j.nchunk, max64(1, GRAIN_HEAVY / work), smax_range, &j);
    return QD_OK;
}

static int run_Softmax(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    return smax_run(n, in, out, ctx, 0);
}

static int run_LogSoftmax(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    return smax_run(n, in, out, ctx, 1);
}

/* ------------------------------------------------------------------------ */
/* BatchNormalization, inference form (float32):                            */
/* y = a[c] * x + b[c], a = scale / sqrt(var + eps), b = B - mean * a       */
/* (ONNX Runtime's folding). Opset < 9 spatial=0 gives per-(C, D...)         */
/* parameters; training (training_mode=1 or the extra outputs) is rejected. */

static void bn_kern(int64_t n, const void *const *x, const int *u, void *vy, const void *aux)
{
    const float *v = x[0], *a = x[1], *b = x[2];
    float *y = vy;
    (void)aux;
    if (u[1]) {
        QD_IVDEP for (int64_t i = 0; i < n; i++)
            y[i] = v[i] * a[i] + b[i];
    } else {
        const float a0 = a[0], b0 = b[0];
        QD_IVDEP for (int64_t i = 0; i < n; i++)
            y[i] = v[i] * a0 + b0;
    }
}

static int check_BatchNormalization(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 5, 5, 5, e);
    if (rc)
        return rc;
    if (qd_attr_int(n, "training_mode", 0))
        return qd_errf(e, QD_EINPUT, "BatchNormalization: training_mode=1 is not supported");
    for (int i = 1; i < n->nout; i++)
        if (n->out[i] >= 0)
            return qd_errf(e, QD_EINPUT,
                           "BatchNormalization: training outputs (output %d) are not supported", i);
    for (int i = 0; i < 5; i++)
        if ((rc = check_decl(n, g, i, DT(QD_F32), e)))
            return rc;
    return QD_OK;
}

/* Channel count K of the parameters and whether they are per (C, D...). */
static void bn_params(const qd_node *n, const qd_tensor *x, int64_t *k, int *spatial)
{
    *spatial = n->opset >= 9 || qd_attr_int(n, "spatial", 1) != 0;
    *k = *spatial ? x->shape[1] : qd_shape_numel(x->ndim - 1, x->shape + 1);
}

static int infer_BatchNormalization(const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                                    qd_err *e)
{
    const qd_tensor *x = in[0];
    int64_t k;
    int spatial, rc;
    for (int i = 0; i < 5; i++)
        if ((rc = need_dtype(n, in[i], i, DT(QD_F32), e)))
            return rc;
    if (x->ndim < 2)
        return qd_errf(e, QD_EINPUT, "BatchNormalization: X must have rank >= 2, got %d", x->ndim);
    bn_params(n, x, &k, &spatial);
    static const char *names[] = {"X", "scale", "B", "mean", "var"};
    for (int i = 1; i < 5; i++)
        if (qd_tensor_numel(in[i]) != k)
            return qd_errf(e, QD_EINPUT, "BatchNormalization: %s has %lld elements, expected %lld",
                           names[i], (long long)qd_tensor_numel(in[i]), (long long)k);
    for (int i = 1; i < n->nout; i++)
        if (out[i])
            return qd_errf(e, QD_EINPUT, "BatchNormalization: training outputs are not supported");
    return qd_tensor_resize(out[0], QD_F32, x->ndim, x->shape, e);
}

static int run_BatchNormalization(const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                                  qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    int64_t k;
    int spatial;
    bn_params(n, x, &k, &spatial);
    float eps = qd_attr_float(n, "epsilon", 1e-5f);
    float *ab = malloc((size_t)max64(1, 2 * k) * sizeof *ab);
    if (!ab)
        return QD_EFAIL;
    const float *sc = in[1]->data, *bias = in[2]->data, *mean = in[3]->data, *var = in[4]->data;
    for (int64_t c = 0; c < k; c++) {
        float a = 1.0f / sqrtf(var[c] + eps) * sc[c];
        ab[c] = a;
        ab[k + c] = bias[c] - mean[c] * a;
    }
    /* a, b as tensors of shape (1, C, 1, ...) or (1, C, D...) */
    qd_tensor ta = {.dtype = QD_F32, .ndim = x->ndim, .data = ab};
    qd_tensor tb = {.dtype = QD_F32, .ndim = x->ndim, .data = ab + k};
    for (int i = 0; i < x->ndim; i++)
        ta.shape[i] = i == 0 ? 1 : (spatial && i > 1) ? 1 : x->shape[i];
    memcpy(tb.shape, ta.shape, sizeof ta.shape);
    const qd_tensor *xs3[3] = {x, &ta, &tb};
    const int xr[3] = {x->ndim, x->ndim, x->ndim};
    const int64_t *xs[3] = {x->shape, ta.shape, tb.shape};
    bcast_run(ctx, bn_kern, NULL, out[0], 3, xs3, xr, xs, GRAIN_CHEAP);
    free(ab);
    return QD_OK;
}

/* ------------------------------------------------------------------------ */
/* Reductions: ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSum/LogSumExp */
/*                                                                          */
/* The input's dims are collapsed into alternating kept / reduced groups   */
/* (size-1 dims dropped). When the innermost group is reduced, each output   */
/* is a sum of contiguous rows (8 accumulator lanes); when it is kept, rows  */
/* of outputs are accumulated together, vectorized across the row. Float    */
/* sums accumulate in double, integer ones wrap in int64. LogSumExp         */
/* subtracts each output's max first (a second pass).                       */

enum { R_SUM, R_SUMSQ, R_L1, R_MAX, R_MIN, R_PROD, R_SUMEXP };
enum { FIN_NONE, FIN_MEAN, FIN_SQRT, FIN_LOG };

typedef union racc {
    double f;
    int64_t i;
} racc;

typedef struct red_kern {
    /* reduce n contiguous elements; sh: LogSumExp's shift (exp(x - sh)) */
    racc (*row)(const void *x, int64_t n, int kind, double sh);
    /* acc[j] op= x[j], j < n; shv[j]: LogSumExp's shift per column */
    void (*cols)(racc *acc, const void *x, int64_t n, int kind, const double *shv);
    racc (*fold)(racc a, racc b, int kind);
    racc (*init)(int kind);
    /* y[i] = finalized a (mean: / count; log: log(a) + sh) */
    void (*fin)(void *y, int64_t i, racc a, int fin, int64_t count, double sh);
} red_kern;

#define FU_SUM(a, v) ((a) + (v))
#define FU_SQ(a, v) ((a) + (double)(v) * (v))
#define FU_L1(a, v) ((a) + fabs((double)(v)))
#define FU_MAX(a, v) (((v) > (a) || (v) != (v)) ? (double)(v) : (a))
#define FU_MIN(a, v) (((v) < (a) || (v) != (v)) ? (double)(v) : (a))
#define FU_PROD(a, v) ((a) * (v))
#define FU_EXP(a, v) ((a) + exp((double)(v) - sh))

#define IU_SUM(a, v) ((int64_t)((uint64_t)(a) + (uint64_t)(v)))
#define IU_SQ(a, v) ((int64_t)((uint64_t)(a) + (uint64_t)(v) * (uint64_t)(v)))
#define IU_L1(a, v) ((int64_t)((uint64_t)(a) + ((v) < 0 ? 0 - (uint64_t)(v) : (uint64_t)(v))))
#define IU_MAX(a, v) ((v) > (a) ? (int64_t)(v) : (a))
#define IU_MIN(a, v) ((v) < (a) ? (int64_t)(v) : (a))
#define IU_PROD(a, v) ((int64_t)((uint64_t)(a) * (uint64_t)(v)))
#define IU_EXP(a, v) IU_SUM(a, f2i64(exp((double)(v) - sh))) /* unused: float only */

/* acc = fold over 8 lanes of UPD(acc, x[i]) */
#define LANES(UPD, FOLD, INIT, AT)                                                  \
    do {                                                                        \
        AT l[8];                                                                \
        int64_t i = 0;                                                          \
        for (int j = 0; j < 8; j++)                                             \
            l[j] = (INIT);                                                      \
        for (; i + 8 <= n; i += 8)                                              \
            for (int j = 0; j < 8; j++)                                         \
                l[j] = UPD(l[j], x[i + j]);                                     \
        for (; i < n; i++)                                                      \
            l[0] = UPD(l[0], x[i]);                                             \
        for (int j = 1; j < 8; j++)                                             \
            l[0] = FOLD(l[0], l[j]);                                            \
        r = l[0];                                                               \
    } while (0)

#define COLS(UPD, M)                                                            \
    for (int64_t j = 0; j < n; j++)                                             \
    a[j].M = UPD(a[j].M, x[j])
#define COLS_SH(UPD, M)                                                         \
    for (int64_t j = 0; j < n; j++) {                                           \
        const double sh = shv[j];                                               \
        a[j].M = UPD(a[j].M, x[j]);                                             \
    }

#define DEF_REDUCE(SUF, TT, AT, M, P, LOWEST, HIGHEST)                          \
    static racc init_##SUF(int kind)                                            \
    {                                                                           \
        racc r;                                                                 \
        r.M = kind == R_MAX ? (AT)(LOWEST) : kind == R_MIN ? (AT)(HIGHEST)      \
            : kind == R_PROD ? 1 : 0;                                           \
        return r;                                                               \
    }                                                                           \
    static racc fold_##SUF(racc a, racc b, int kind)                            \
    {                                                                           \
        switch (kind) {                                                         \
        case R_MAX: a.M = P##U_MAX(a.M, b.M); break;                            \
        case R_MIN: a.M = P##U_MIN(a.M, b.M); break;                            \
        case R_PROD: a.M = P##U_PROD(a.M, b.M); break;                          \
        default: a.M = P##U_SUM(a.M, b.M); break;                               \
        }                                                                       \
        return a;                                                               \
    }                                                                           \
    static racc row_##SUF(const void *vx, int64_t n, int kind, double sh)       \
    {                                                                           \
        const TT *x = vx;                                                       \
        (void)sh;                                                               \
        AT r = init_##SUF(kind).M;                                              \
        switch (kind) {                                                         \
        case R_SUM: LANES(P##U_SUM, P##U_SUM, 0, AT); break;                        \
        case R_SUMSQ: LANES(P##U_SQ, P##U_SUM, 0, AT); break;                       \
        case R_L1: LANES(P##U_L1, P##U_SUM, 0, AT); break;                          \
        case R_MAX: LANES(P##U_MAX, P##U_MAX, (AT)(LOWEST), AT); break;             \
        case R_MIN: LANES(P##U_MIN, P##U_MIN, (AT)(HIGHEST), AT); break;            \
        case R_PROD: LANES(P##U_PROD, P##U_PROD, 1, AT); break;                     \
        case R_SUMEXP: LANES(P##U_EXP, P##U_SUM, 0, AT); break;                     \
        default: break;                                                         \
        }                                                                       \
        racc out;                                                               \
        out.M = r;                                                              \
        return out;                                                             \
    }                                                                           \
    static void cols_##SUF(racc *a, const void *vx, int64_t n, int kind,        \
                           const double *shv)                                   \
    {                                                                           \
        const TT *x = vx;                                                       \
        switch (kind) {                                                         \
        case R_SUM: COLS(P##U_SUM, M); break;                                      \
        case R_SUMSQ: COLS(P##U_SQ, M); break;                                     \
        case R_L1: COLS(P##U_L1, M); break;                                        \
        case R_MAX: COLS(P##U_MAX, M); break;                                      \
        case R_MIN: COLS(P##U_MIN, M); break;                                      \
        case R_PROD: COLS(P##U_PROD, M); break;                                    \
        case R_SUMEXP: COLS_SH(P##U_EXP, M); break;                                \
        default: break;                                                         \
        }                                                                       \
    }

DEF_REDUCE(f32, float, double, f, F, -INFINITY, INFINITY)
DEF_REDUCE(f64, double, double, f, F, -INFINITY, INFINITY)
DEF_REDUCE(i32, int32_t, int64_t, i, I, INT32_MIN, INT32_MAX)
DEF_REDUCE(i64, int64_t, int64_t, i, I, INT64_MIN, INT64_MAX)

static double fin_float(racc a, int fin, int64_t count, double sh)
{
    switch (fin) {
    case FIN_MEAN: return a.f / (double)count;
    case FIN_SQRT: return sqrt(a.f);
    case FIN_LOG: return log(a.f) + sh;
    default: return a.f;
    }
}

static void fin_f32(void *y, int64_t i, racc a, int fin, int64_t count, double sh)
{
    ((float *)y)[i] = (float)fin_float(a, fin, count, sh);
}

static void fin_f64(void *y, int64_t i, racc a, int fin, int64_t count, double sh)
{
    ((double *)y)[i] = fin_float(a, fin, count, sh);
}

static int64_t fin_int(racc a, int fin, int64_t count)
{
    switch (fin) {
    case FIN_MEAN: return count ? a.i / count : 0;
    case FIN_SQRT: return f2i64(sqrt((double)a.i));
    case FIN_LOG: return f2i64(log((double)a.i));
    default: return a.i;
    }
}

static void fin_i32(void *y, int64_t i, racc a, int fin, int64_t count, double sh)
{
    (void)sh;
    ((int32_t *)y)[i] = (int32_t)fin_int(a, fin, count);
}

static void fin_i64(void *y, int64_t i, racc a, int fin, int64_t count, double sh)
{
    (void)sh;
    ((int64_t *)y)[i] = fin_int(a, fin, count);
}

static const red_kern red_k[QD_DTYPE_COUNT] = {
    [QD_F32] = {row_f32, cols_f32, fold_f32, init_f32, fin_f32},
    [QD_F64] = {row_f64, cols_f64, fold_f64, init_f64, fin_f64},
    [QD_I32] = {row_i32, cols_i32, fold_i32, init_i32, fin_i32},
    [QD_I64] = {row_i64, cols_i64, fold_i64, init_i64, fin_i64},
};

#define RED_TYPES (DT_FLOAT | DT(QD_I32) | DT(QD_I64))
#define RED_CH 512 /* outputs per task when the innermost group is kept */

typedef struct red_def {
    int kind, fin;
    int axes_input_since; /* opset from which axes is an input (ReduceSum: 13) */
    unsigned types;
} red_def;

static const red_def R_DSUM = {R_SUM, FIN_NONE, 13, RED_TYPES};
static const red_def R_DMEAN = {R_SUM, FIN_MEAN, 18, RED_TYPES};
static const red_def R_DMAX = {R_MAX, FIN_NONE, 18, RED_TYPES};
static const red_def R_DMIN = {R_MIN, FIN_NONE, 18, RED_TYPES};
static const red_def R_DPROD = {R_PROD, FIN_NONE, 18, RED_TYPES};
static const red_def R_DSUMSQ = {R_SUMSQ, FIN_NONE, 18, RED_TYPES};
static const red_def R_DL1 = {R_L1, FIN_NONE, 18, RED_TYPES};
static const red_def R_DL2 = {R_SUMSQ, FIN_SQRT, 18, DT_FLOAT};
static const red_def R_DLOGSUM = {R_SUM, FIN_LOG, 18, DT_FLOAT};
static const red_def R_DLOGSUMEXP = {R_SUMEXP, FIN_LOG, 18, DT_FLOAT};

/* Collapsed reduction: kept groups kd/ks (input strides), reduced groups
 * rd/rs, and the innermost contiguous run of `row` elements. */
typedef struct rjob {
    const red_kern *k;
    int kind, fin;
    int last_red;            /* innermost group reduced (else kept) */
    int nk, nr;
    int64_t kd[QD_MAX_DIMS], ks[QD_MAX_DIMS];
    int64_t rd[QD_MAX_DIMS], rs[QD_MAX_DIMS];
    int64_t row, nrc, count; /* run length, reduced combinations, elements per output */
    int64_t nchunk;          /* kept-innermost: RED_CH chunks per row */
    const char *x;
    char *y;
    size_t xsz;
} rjob;

static int64_t unravel(int64_t i, int nd, const int64_t *d, const int64_t *s)
{
    int64_t off = 0;
    for (int k = nd - 1; k >= 0; k--) {
        off += (i % d[k]) * s[k];
        i /= d[k];
    }
    return off;
}

/* LogSumExp's shift: the max, or 0 when that is not finite (all -inf gives
 * log(0) = -inf, a +inf or NaN propagates). */
static double lse_shift(racc m)
{
    return isfinite(m.f) ? m.f : 0;
}

/* outputs [b, e): each reduces nrc contiguous rows */
static void red_range_rows(void *arg, int64_t b, int64_t e, int tid)
{
    const rjob *j = arg;
    const red_kern *k = j->k;
    (void)tid;
    for (int64_t o = b; o < e; o++) {
        int64_t base = unravel(o, j->nk, j->kd, j->ks);
        double sh = 0;
        if (j->kind == R_SUMEXP) {
            racc m = k->init(R_MAX);
            for (int64_t c = 0; c < j->nrc; c++) {
                const char *x = j->x + (base + unravel(c, j->nr, j->rd, j->rs)) * (int64_t)j->xsz;
                m = k->fold(m, k->row(x, j->row, R_MAX, 0), R_MAX);
            }
            sh = lse_shift(m);
        }
        racc acc = k->init(j->kind);
        for (int64_t c = 0; c < j->nrc; c++) {
            const char *x = j->x + (base + unravel(c, j->nr, j->rd, j->rs)) * (int64_t)j->xsz;
            acc = k->fold(acc, k->row(x, j->row, j->kind, sh), j->kind);
        }
        k->fin(j->y, o, acc, j->fin, j->count, sh);
    }
}

/* tasks [b, e): (outer kept index, chunk of the innermost kept run) */
static void red_range_cols(void *arg, int64_t b, int64_t e, int tid)
{
    const rjob *j = arg;
    const red_kern *k = j->k;
    racc acc[RED_CH];
    double shv[RED_CH];
    (void)tid;
    for (int64_t t = b; t < e; t++) {
        int64_t o = t / j->nchunk, j0 = (t % j->nchunk) * RED_CH;
        int64_t cnt = min64(RED_CH, j->row - j0);
        int64_t base = unravel(o, j->nk, j->kd, j->ks) + j0;
        for (int64_t i = 0; i < cnt; i++)
            shv[i] = 0;
        if (j->kind == R_SUMEXP) {
            for (int64_t i = 0; i < cnt; i++)
                acc[i] = k->init(R_MAX);
            for (int64_t c = 0; c < j->nrc; c++) {
                int64_t off = base + unravel(c, j->nr, j->rd, j->rs);
                k->cols(acc, j->x + off * (int64_t)j->xsz, cnt, R_MAX, shv);
            }
            for (int64_t i = 0; i < cnt; i++)
                shv[i] = lse_shift(acc[i]);
        }
        racc init = k->init(j->kind);
        for (int64_t i = 0; i < cnt; i++)
            acc[i] = init;
        for (int64_t c = 0; c < j->nrc; c++) {
            int64_t off = base + unravel(c, j->nr, j->rd, j->rs);
            k->cols(acc, j->x + off * (int64_t)j->xsz, cnt, j->kind, shv);
        }
        for (int64_t i = 0; i < cnt; i++)
            k->fin(j->y, o * j->row + j0 + i, acc[i], j->fin, j->count, shv[i]);
    }
}

/* Reduced-axis flags from the axes attribute or input; *noop when the op is
 * the identity (ReduceSum's noop_with_empty_axes with no axes). */
static int red_axes(const red_def *d, const qd_node *n, qd_tensor *const *in, int *red, int *noop,
                    qd_err *e)
{
    const qd_tensor *x = in[0];
    const int64_t *ax = NULL;
    int64_t tmp[QD_MAX_DIMS];
    int na = 0, r = x->ndim;
    *noop = 0;
    if (n->opset >= d->axes_input_since) {
        const qd_tensor *t = n->nin > 1 ? in[1] : NULL;
        if (t) {
            if (t->dtype != QD_I64)
                return qd_errf(e, QD_EINPUT, "%s: axes must be int64, got %s", n->op_type,
                               qd_dtype_name(t->dtype));
            if (qd_tensor_numel(t) > QD_MAX_DIMS)
                return qd_errf(e, QD_EINPUT, "%s: %lld axes for rank %d", n->op_type,
                               (long long)qd_tensor_numel(t), r);
            na = (int)qd_tensor_numel(t);
            memcpy(tmp, t->data, (size_t)na * sizeof *tmp);
            ax = tmp;
        }
        if (na == 0 && qd_attr_int(n, "noop_with_empty_axes", 0))
            *noop = 1;
    } else {
        na = qd_attr_ints(n, "axes", &ax);
    }
    for (int i = 0; i < r; i++)
        red[i] = na == 0;
    for (int i = 0; i < na; i++) {
        int a;
        if (qd_norm_axis(ax[i], r, &a, e))
            return QD_EINPUT;
        if (red[a])
            return qd_errf(e, QD_EINPUT, "%s: axis %lld repeated", n->op_type, (long long)ax[i]);
        red[a] = 1;
    }
    return QD_OK;
}

static int red_check(const red_def *d, qd_node *n, const qd_graph *g, qd_err *e)
{
    int ax_in = n->opset >= d->axes_input_since;
    int rc = check_io(n, 6, 1, ax_in ? 2 : 1, 1, e);
    if (!rc)
        rc = check_decl(n, g, 0, d->types, e);
    if (!rc && ax_in)
        rc = check_decl(n, g, 1, DT(QD_I64), e);
    return rc;
}

static int red_infer(const red_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                     qd_err *e)
{
    const qd_tensor *x = in[0];
    int red[QD_MAX_DIMS], noop, r = 0;
    int64_t s[QD_MAX_DIMS];
    int rc = need_dtype(n, x, 0, d->types, e);
    if (rc || (rc = red_axes(d, n, in, red, &noop, e)))
        return rc;
    if (noop)
        return qd_tensor_resize(out[0], x->dtype, x->ndim, x->shape, e);
    int keep = qd_attr_int(n, "keepdims", 1) != 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!red[i])
            s[r++] = x->shape[i];
        else if (keep)
            s[r++] = 1;
    }
    return qd_tensor_resize(out[0], x->dtype, r, s, e);
}

static void red_plan(rjob *j, const qd_tensor *x, const int *red)
{
    int64_t d[QD_MAX_DIMS + 1], st[QD_MAX_DIMS + 1];
    int f[QD_MAX_DIMS + 1], nd = 0;
    int64_t stride = 1;
    j->count = 1;
    for (int i = x->ndim - 1; i >= 0; i--) { /* innermost first */
        int64_t n = x->shape[i];
        if (red[i])
            j->count *= n;
        if (n != 1) {
            if (nd > 0 && f[nd - 1] == red[i]) {
                d[nd - 1] *= n;
            } else {
                d[nd] = n;
                st[nd] = stride;
                f[nd++] = red[i];
            }
        }
        stride *= n;
    }
    if (nd == 0) {
        d[0] = 1;
        st[0] = 1;
        f[nd++] = 1;
    }
    j->last_red = f[0];
    j->row = d[0];
    j->nk = j->nr = 0;
    j->nrc = 1;
    for (int g = nd - 1; g >= 1; g--) { /* outermost first */
        if (f[g]) {
            j->rd[j->nr] = d[g];
            j->rs[j->nr++] = st[g];
            j->nrc *= d[g];
        } else {
            j->kd[j->nk] = d[g];
            j->ks[j->nk++] = st[g];
        }
    }
}

static int red_run(const red_def *d, const qd_node *n, qd_tensor *const *in, qd_tensor **out,
                   qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    int red[QD_MAX_DIMS], noop;
    if (!red_k[x->dtype].row || red_axes(d, n, in, red, &noop, NULL))
        return QD_EINPUT;
    if (noop) {
        memcpy(out[0]->data, x->data, qd_tensor_nbytes(x));
        return QD_OK;
    }
    int64_t nout = qd_tensor_numel(out[0]);
    if (nout == 0)
        return QD_OK;
    rjob j = {.k = &red_k[x->dtype], .kind = d->kind, .fin = d->fin, .x = x->data,
              .y = out[0]->data, .xsz = qd_dtype_size(x->dtype)};
    red_plan(&j, x, red);
    if (j.count == 1 && x->dtype == QD_F32 && (j.fin == FIN_NONE || j.fin == FIN_MEAN) &&
        (j.kind == R_SUM || j.kind == R_MAX || j.kind == R_MIN || j.kind == R_PROD)) {
        /* every reduced axis has one element (a global pool of 1x1 maps):
         * the output is the input, in the same order */
        memcpy(out[0]->data, x->data, qd_tensor_nbytes(x));
        return QD_OK;
    }
    int64_t per = max64(1, j.count);
    if (j.last_red) {
        qd_ctx_for(ctx, nout, max64(1, GRAIN_CHEAP / per), red_range_rows, &j);
    } else {
        j.nchunk = (j.row + RED_CH - 1) / RED_CH;
        qd_ctx_for(ctx, nout / j.row * j.nchunk, max64(1, GRAIN_CHEAP / (per * RED_CH)),
                   red_range_cols, &j);
    }
    return QD_OK;
}

#define RED_OP(NAME, DEF)                                                                   \
    static int check_##NAME(qd_node *n, const qd_graph *g, qd_err *e)                       \
    {                                                                                       \
        return red_check(&DEF, n, g, e);                                                    \
    }                                                                                       \
    static int infer_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,        \
                            qd_err *e)                                                      \
    {                                                                                       \
        return red_infer(&DEF, n, in, out, e);                                              \
    }                                                                                       \
    static int run_##NAME(const qd_node *n, qd_tensor *const *in, qd_tensor **out,          \
                          qd_ctx *ctx)                                                      \
    {                                                                                       \
        return red_run(&DEF, n, in, out, ctx);                                              \
    }

RED_OP(ReduceSum, R_DSUM)
RED_OP(ReduceMean, R_DMEAN)
RED_OP(ReduceMax, R_DMAX)
RED_OP(ReduceMin, R_DMIN)
RED_OP(ReduceProd, R_DPROD)
RED_OP(ReduceSumSquare, R_DSUMSQ)
RED_OP(ReduceL1, R_DL1)
RED_OP(ReduceL2, R_DL2)
RED_OP(ReduceLogSum, R_DLOGSUM)
RED_OP(ReduceLogSumExp, R_DLOGSUMEXP)

/* ------------------------------------------------------------------------ */
/* ArgMax, ArgMin: int64 index of the first (select_last_index: last)       */
/* extreme along one axis; a NaN wins, like numpy.                          */

typedef struct arg_job {
    const void *x;
    int64_t *y;
    int64_t len, inner;
    int min, last;
} arg_job;

#define DEF_ARG(SUF, TT)                                                        \
    static void arg_##SUF(void *arg, int64_t b, int64_t e, int tid)             \
    {                                                                           \
        const arg_job *j = arg;                                                 \
        const TT *x = j->x;                                                     \
        (void)tid;                                                              \
        for (int64_t t = b; t < e; t++) {                                       \
            const TT *p = x + (t / j->inner) * j->len * j->inner + t % j->inner; \
            TT best = p[0];                                                     \
            int64_t bi = 0;                                                     \
            for (int64_t k = 1; k < j->len; k++) {                              \
                TT v = p[k * j->inner];                                         \
                int win = j->min ? (j->last ? v <= best : v < best)             \
                                 : (j->last ? v >= best : v > best);            \
                if (best != best)                                               \
                    win = j->last && v != v;                                    \
                else if (v != v)                                                \
                    win = 1;                                                    \
                if (win) {                                                      \
                    best = v;                                                   \
                    bi = k;                                                     \
                }                                                               \
            }                                                                   \
            j->y[t] = bi;                                                       \
        }                                                                       \
    }

DEF_ARG(f32, float)
DEF_ARG(f64, double)
DEF_ARG(i32, int32_t)
DEF_ARG(i64, int64_t)
DEF_ARG(u8, uint8_t)
DEF_ARG(i8, int8_t)

static const qd_range_fn arg_k[QD_DTYPE_COUNT] = {
    [QD_F32] = arg_f32, [QD_F64] = arg_f64, [QD_I32] = arg_i32,
    [QD_I64] = arg_i64, [QD_U8] = arg_u8,   [QD_I8] = arg_i8,
};

#define ARG_TYPES (DT_FLOAT | DT(QD_I32) | DT(QD_I64) | DT(QD_U8) | DT(QD_I8))

static int check_ArgMax(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 1, 1, 1, e);
    return rc ? rc : check_decl(n, g, 0, ARG_TYPES, e);
}

static int infer_ArgMax(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    int axis, r = 0, rc = need_dtype(n, x, 0, ARG_TYPES, e);
    int64_t s[QD_MAX_DIMS];
    if (rc || (rc = qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, e)))
        return rc;
    if (x->ndim == 0 || x->shape[axis] == 0)
        return qd_errf(e, QD_EINPUT, "%s: axis %d is empty", n->op_type, axis);
    int keep = qd_attr_int(n, "keepdims", 1) != 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != axis || keep)
            s[r++] = i == axis ? 1 : x->shape[i];
    return qd_tensor_resize(out[0], QD_I64, r, s, e);
}

static int run_ArgMax(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    int axis;
    qd_range_fn fn = arg_k[x->dtype];
    if (!fn || qd_norm_axis(qd_attr_int(n, "axis", 0), x->ndim, &axis, NULL) || x->ndim == 0)
        return QD_EINPUT;
    arg_job j = {x->data, out[0]->data, x->shape[axis],
                 qd_shape_numel(x->ndim - axis - 1, x->shape + axis + 1),
                 strcmp(n->op_type, "ArgMin") == 0, qd_attr_int(n, "select_last_index", 0) != 0};
    int64_t nout = qd_tensor_numel(out[0]);
    qd_ctx_for(ctx, nout, max64(1, GRAIN_CHEAP / max64(1, j.len)), fn, &j);
    return QD_OK;
}

#define check_ArgMin check_ArgMax
#define infer_ArgMin infer_ArgMax
#define run_ArgMin run_ArgMax

/* ------------------------------------------------------------------------ */
/* Cast, CastLike                                                           */
/*                                                                          */
/* Through a carrier per source kind: double for floats (exact for float32  */
/* and float16), int64 for signed/small unsigned ints and bool, uint64 for  */
/* uint64. float -> int truncates toward zero like static_cast (x86's       */
/* INT_MIN for NaN / out of range, then wrapped to narrow types); to bool   */
/* is x != 0; float16 rounds to nearest even.                               */

#define CAST_TYPES (DT_NUM | DT(QD_BOOL) | DT(QD_F16))
#define CAST_BLK 256

enum { CAR_F, CAR_I, CAR_U };

typedef union ccar {
    double f;
    int64_t i;
    uint64_t u;
} ccar;

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (ex) {
        bits = sign | ((ex + 112) << 23) | (man << 13);
    } else if (man) { /* subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t ex = (b >> 23) & 0xff, man = b & 0x7fffff;
    if (ex == 0xff) /* inf, NaN (kept quiet) */
        return sign | 0x7c00 | (man ? 0x200 | (uint16_t)(man >> 13) : 0);
    int e = (int)ex - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00;
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, up to inf: correct */
    return sign | (uint16_t)h;
}

static int carrier_of(qd_dtype t)
{
    return t == QD_F32 || t == QD_F64 || t == QD_F16 ? CAR_F : t == QD_U64 ? CAR_U : CAR_I;
}

static void cast_load(qd_dtype t, const void *src, int64_t n, ccar *c)
{
    switch (t) {
#define LD(DT_, TT, M, EXPR)                                                    \
    case DT_:                                                                   \
        for (int64_t i = 0; i < n; i++) {                                       \
            TT v = ((const TT *)src)[i];                                        \
            c[i].M = (EXPR);                                                    \
        }                                                                       \
        break;
        LD(QD_F32, float, f, v)
        LD(QD_F64, double, f, v)
        LD(QD_F16, uint16_t, f, f16_to_f32(v))
        LD(QD_I8, int8_t, i, v)
        LD(QD_I16, int16_t, i, v)
        LD(QD_I32, int32_t, i, v)
        LD(QD_I64, int64_t, i, v)
        LD(QD_U8, uint8_t, i, v)
        LD(QD_U16, uint16_t, i, v)
        LD(QD_U32, uint32_t, i, v)
        LD(QD_U64, uint64_t, u, v)
        LD(QD_BOOL, uint8_t, i, v != 0)
#undef LD
    default: break;
    }
}

static void cast_store(qd_dtype t, int car, const ccar *c, int64_t n, void *dst)
{
    switch (t) {
#define ST(DT_, TT, FROM_F, FROM_I, FROM_U)                                     \
    case DT_: {                                                                 \
        TT *y = dst;                                                            \
        if (car == CAR_F)                                                       \
            for (int64_t i = 0; i < n; i++) {                                   \
                double v = c[i].f;                                              \
                y[i] = (FROM_F);                                                \
            }                                                                   \
        else if (car == CAR_I)                                                  \
            for (int64_t i = 0; i < n; i++) {                                   \
                int64_t v = c[i].i;                                             \
                y[i] = (FROM_I);                                                \
            }                                                                   \
        else                                                                    \
            for (int64_t i = 0; i < n; i++) {                                   \
                uint64_t v = c[i].u;                                            \
                y[i] = (FROM_U);                                                \
            }                                                                   \
        break;                                                                  \
    }
        ST(QD_F32, float, (float)v, (float)v, (float)v)
        ST(QD_F64, double, v, (double)v, (double)v)
        ST(QD_F16, uint16_t, f32_to_f16((float)v), f32_to_f16((float)v), f32_to_f16((float)v))
        ST(QD_I8, int8_t, (int8_t)f2i32(v), (int8_t)v, (int8_t)v)
        ST(QD_I16, int16_t, (int16_t)f2i32(v), (int16_t)v, (int16_t)v)
        ST(QD_I32, int32_t, f2i32(v), (int32_t)v, (int32_t)v)
        ST(QD_I64, int64_t, f2i64(v), v, (int64_t)v)
        ST(QD_U8, uint8_t, (uint8_t)f2i32(v), (uint8_t)v, (uint8_t)v)
        ST(QD_U16, uint16_t, (uint16_t)f2i32(v), (uint16_t)v, (uint16_t)v)
        ST(QD_U32, uint32_t, (uint32_t)f2i64(v), (uint32_t)v, (uint32_t)v)
        ST(QD_U64, uint64_t, f2u64(v), (uint64_t)v, v)
        ST(QD_BOOL, uint8_t, v != 0, v != 0, v != 0)
#undef ST
    default: break;
    }
}

typedef struct cast_job {
    qd_dtype from, to;
    const char *x;
    char *y;
} cast_job;

static void cast_range(void *arg, int64_t b, int64_t e, int tid)
{
    const cast_job *j = arg;
    size_t xs = qd_dtype_size(j->from), ys = qd_dtype_size(j->to);
    int car = carrier_of(j->from);
    ccar buf[CAST_BLK];
    (void)tid;
    for (int64_t i = b; i < e; i += CAST_BLK) {
        int64_t n = min64(CAST_BLK, e - i);
        cast_load(j->from, j->x + i * (int64_t)xs, n, buf);
        cast_store(j->to, car, buf, n, j->y + i * (int64_t)ys);
    }
}

static int cast_to(const qd_node *n, qd_dtype to, qd_err *e)
{
    if (dtype_in(to, CAST_TYPES))
        return QD_OK;
    return qd_errf(e, QD_EINPUT, "%s: unsupported dtype %s (to=%d)", n->op_type,
                   qd_dtype_name(to), (int)to);
}

static int check_Cast(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 6, 1, 1, 1, e);
    if (rc)
        return rc;
    const qd_attr *to = qd_attr_find(n, "to");
    if (!to || to->type != QD_ATTR_INT)
        return qd_errf(e, QD_EINPUT, "Cast: integer attribute 'to' is required");
    if ((rc = cast_to(n, (qd_dtype)to->i, e)))
        return rc;
    return check_decl(n, g, 0, CAST_TYPES, e);
}

static int check_CastLike(qd_node *n, const qd_graph *g, qd_err *e)
{
    int rc = check_io(n, 15, 2, 2, 1, e);
    if (!rc)
        rc = check_decl(n, g, 0, CAST_TYPES, e);
    return rc ? rc : check_decl(n, g, 1, CAST_TYPES, e);
}

static qd_dtype cast_target(const qd_node *n, qd_tensor *const *in)
{
    if (strcmp(n->op_type, "CastLike") == 0)
        return in[1]->dtype;
    int64_t to = qd_attr_int(n, "to", 0);
    return to > 0 && to < QD_DTYPE_COUNT ? (qd_dtype)to : QD_UNDEF;
}

static int infer_Cast(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    qd_dtype to = cast_target(n, in);
    int rc = need_dtype(n, in[0], 0, CAST_TYPES, e);
    if (rc || (rc = cast_to(n, to, e)))
        return rc;
    return qd_tensor_resize(out[0], to, in[0]->ndim, in[0]->shape, e);
}

static int run_Cast(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    cast_job j = {in[0]->dtype, cast_target(n, in), in[0]->data, out[0]->data};
    if (!dtype_in(j.from, CAST_TYPES) || !dtype_in(j.to, CAST_TYPES))
        return QD_EINPUT;
    if (j.from == j.to) {
        memcpy(out[0]->data, in[0]->data, qd_tensor_nbytes(in[0]));
        return QD_OK;
    }
    qd_ctx_for(ctx, qd_tensor_numel(in[0]), GRAIN_CHEAP, cast_range, &j);
    return QD_OK;
}

#define infer_CastLike infer_Cast
#define run_CastLike run_Cast

/* ------------------------------------------------------------------------ */

#define ROW(NAME) {#NAME, check_##NAME, infer_##NAME, run_##NAME, NULL}

const qd_op qd_ops_math[] = {
    ROW(Abs),
    ROW(Add),
    ROW(And),
    ROW(ArgMax),
    ROW(ArgMin),
    ROW(BatchNormalization),
    ROW(Cast),
    ROW(CastLike),
    ROW(Ceil),
    ROW(Celu),
    ROW(Clip),
    ROW(Div),
    ROW(Elu),
    ROW(Equal),
    ROW(Erf),
    ROW(Exp),
    ROW(Floor),
    ROW(Greater),
    ROW(GreaterOrEqual),
    ROW(HardSigmoid),
    ROW(HardSwish),
    ROW(LeakyRelu),
    ROW(Less),
    ROW(LessOrEqual),
    ROW(Log),
    {"LogSoftmax", check_Softmax, infer_Softmax, run_LogSoftmax, NULL},
    ROW(Max),
    ROW(Mean),
    ROW(Min),
    ROW(Mul),
    ROW(Neg),
    ROW(Not),
    ROW(Or),
    ROW(PRelu),
    ROW(Pow),
    ROW(Reciprocal),
    ROW(ReduceL1),
    ROW(ReduceL2),
    ROW(ReduceLogSum),
    ROW(ReduceLogSumExp),
    ROW(ReduceMax),
    ROW(ReduceMean),
    ROW(ReduceMin),
    ROW(ReduceProd),
    ROW(ReduceSum),
    ROW(ReduceSumSquare),
    ROW(Relu),
    ROW(Selu),
    ROW(Sigmoid),
    ROW(Sign),
    ROW(Softmax),
    ROW(Softplus),
    ROW(Softsign),
    ROW(Sqrt),
    ROW(Sub),
    ROW(Sum),
    ROW(Tanh),
    ROW(ThresholdedRelu),
    ROW(Where),
    ROW(Xor),
    {0},
};
