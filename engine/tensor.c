/* tensor.c - tensor allocation and element access. */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[] = {
    [QD_UNDEF] = {"undefined", 0}, [QD_F32] = {"float32", 4}, [QD_U8] = {"uint8", 1},
    [QD_I8] = {"int8", 1},         [QD_U16] = {"uint16", 2},  [QD_I16] = {"int16", 2},
    [QD_I32] = {"int32", 4},       [QD_I64] = {"int64", 8},   [QD_STRING] = {"string", 0},
    [QD_BOOL] = {"bool", 1},       [QD_F16] = {"float16", 2}, [QD_F64] = {"float64", 8},
    [QD_U32] = {"uint32", 4},      [QD_U64] = {"uint64", 8},
};
_Static_assert(sizeof dtypes / sizeof dtypes[0] == QD_DTYPE_COUNT, "dtype table out of sync");

size_t qd_dtype_size(qd_dtype t)
{
    return (unsigned)t < QD_DTYPE_COUNT ? dtypes[t].size : 0;
}

const char *qd_dtype_name(qd_dtype t)
{
    return (unsigned)t < QD_DTYPE_COUNT ? dtypes[t].name : "?";
}

int64_t qd_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int qd_tensor_resize(qd_tensor *t, qd_dtype dtype, int ndim, const int64_t *shape, qd_err *e)
{
    if (ndim < 0 || ndim > QD_MAX_DIMS)
        return qd_errf(e, QD_EINPUT, "rank %d is outside 0..%d", ndim, QD_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return qd_errf(e, QD_EINPUT, "negative dimension %lld", (long long)shape[i]);
        if (shape[i] && n > INT64_MAX / 16 / shape[i])
            return qd_errf(e, QD_EINPUT, "tensor too large");
        n *= shape[i];
    }
    size_t es = qd_dtype_size(dtype);
    if (!es)
        return qd_errf(e, QD_EINPUT, "unsupported dtype %s", qd_dtype_name(dtype));
    uint64_t limit = t->limit ? t->limit : QD_TENSOR_MAX_BYTES;
    if ((uint64_t)n > limit / es)
        return qd_errf(e, QD_EINPUT, "a tensor of %s %s elements is over the limit of %llu bytes",
                       qd_shape_str(ndim, shape, (char[160]){0}, 160), qd_dtype_name(dtype),
                       (unsigned long long)limit);
    size_t need = (size_t)n * es;
    if (need == 0)
        need = es; /* keep a valid pointer for empty tensors */
    if (t->cap < need) {
        /* 64-byte alignment for vector kernels */
        void *p = NULL;
        size_t sz = (need + 63) & ~(size_t)63;
        if (posix_memalign(&p, 64, sz))
            return qd_errf(e, QD_EFAIL, "out of memory allocating %zu bytes", sz);
        if (t->cap)
            free(t->data);
        t->data = p;
        t->cap = sz;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    return QD_OK;
}

int qd_tensor_copy(qd_tensor *dst, const qd_tensor *src, qd_err *e)
{
    if (dst == src)
        return QD_OK;
    int rc = qd_tensor_resize(dst, src->dtype, src->ndim, src->shape, e);
    if (rc)
        return rc;
    memcpy(dst->data, src->data, qd_tensor_nbytes(src));
    return QD_OK;
}

void qd_tensor_free(qd_tensor *t)
{
    if (!t)
        return;
    if (t->cap)
        free(t->data);
    memset(t, 0, sizeof *t);
}

char *qd_shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    if (ndim == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? "x%lld" : "%lld", (long long)shape[i]);
    return buf;
}

int64_t qd_tensor_get_i64(const qd_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QD_I64: return ((const int64_t *)t->data)[i];
    case QD_I32: return ((const int32_t *)t->data)[i];
    case QD_U8: return ((const uint8_t *)t->data)[i];
    case QD_I8: return ((const int8_t *)t->data)[i];
    case QD_U16: return ((const uint16_t *)t->data)[i];
    case QD_I16: return ((const int16_t *)t->data)[i];
    case QD_U32: return ((const uint32_t *)t->data)[i];
    case QD_U64: return (int64_t)((const uint64_t *)t->data)[i];
    case QD_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case QD_F32: return (int64_t)((const float *)t->data)[i];
    case QD_F64: return (int64_t)((const double *)t->data)[i];
    default: return 0;
    }
}

double qd_tensor_get_f64(const qd_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QD_F32: return ((const float *)t->data)[i];
    case QD_F64: return ((const double *)t->data)[i];
    default: return (double)qd_tensor_get_i64(t, i);
    }
}

int64_t qd_tensor_channel_stats(const qd_tensor *t, int axis, double *mn, double *mx, double *mean)
{
    if (!t || t->dtype != QD_F32 || axis < 0 || axis >= t->ndim)
        return -1;
    int64_t co = t->shape[axis], inner = 1, outer = 1;
    for (int d = axis + 1; d < t->ndim; d++)
        inner *= t->shape[d];
    for (int d = 0; d < axis; d++)
        outer *= t->shape[d];
    const float *x = t->data;
    for (int64_t c = 0; c < co; c++) {
        double lo = INFINITY, hi = -INFINITY, s = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                double v = x[(o * co + c) * inner + k];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                s += v;
            }
        mn[c] = lo, mx[c] = hi, mean[c] = outer > 0 && inner > 0 ? s / (double)(outer * inner) : 0;
    }
    return co;
}
