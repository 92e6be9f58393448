/* tensor.h - dense tensors: dtype, shape, contiguous C-order data. */
#ifndef QD_TENSOR_H
#define QD_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Element types; the numbers are ONNX TensorProto.DataType's. */
typedef enum qd_dtype {
    QD_UNDEF = 0,
    QD_F32 = 1,
    QD_U8 = 2,
    QD_I8 = 3,
    QD_U16 = 4,
    QD_I16 = 5,
    QD_I32 = 6,
    QD_I64 = 7,
    QD_STRING = 8,
    QD_BOOL = 9,
    QD_F16 = 10,
    QD_F64 = 11,
    QD_U32 = 12,
    QD_U64 = 13,
    QD_DTYPE_COUNT
} qd_dtype;

#define QD_MAX_DIMS 8
/* Largest tensor qdb allocates; larger ones are a bad model or input. */
#define QD_TENSOR_MAX_BYTES ((uint64_t)1 << 34)

/* A tensor. data holds numel elements in C order (a scalar when ndim == 0).
 * cap is the byte size of data when the tensor owns it, 0 when data is
 * borrowed (then qd_tensor_free leaves it alone). */
typedef struct qd_tensor {
    qd_dtype dtype;
    int ndim;
    int64_t shape[QD_MAX_DIMS];
    void *data;
    size_t cap;
    size_t limit;   /* largest size qd_tensor_resize may give it, bytes; 0 = QD_TENSOR_MAX_BYTES */
} qd_tensor;

/* Bytes per element, 0 for types qdb cannot hold (string, undef). */
size_t qd_dtype_size(qd_dtype t);
/* "float32", "int64", ...; "?" for unknown values. */
const char *qd_dtype_name(qd_dtype t);

int64_t qd_shape_numel(int ndim, const int64_t *shape);
static inline int64_t qd_tensor_numel(const qd_tensor *t) { return qd_shape_numel(t->ndim, t->shape); }
static inline size_t qd_tensor_nbytes(const qd_tensor *t)
{
    return (size_t)qd_tensor_numel(t) * qd_dtype_size(t->dtype);
}

/* Give t the dtype and shape, growing its owned buffer when needed (contents
 * are unspecified). Borrowed data is never written: a new buffer is owned.
 * A size over t->limit (or QD_TENSOR_MAX_BYTES) is QD_EINPUT, before any
 * allocation. */
int qd_tensor_resize(qd_tensor *t, qd_dtype dtype, int ndim, const int64_t *shape, qd_err *e);
/* Deep copy src into dst (dst owns its buffer afterwards). */
int qd_tensor_copy(qd_tensor *dst, const qd_tensor *src, qd_err *e);
/* Release the owned buffer; t may be NULL. Leaves t empty. */
void qd_tensor_free(qd_tensor *t);

/* Format a shape as "1x3x224x224" (or "scalar") into buf. */
char *qd_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* Per-channel minimum, maximum and mean of a float tensor along axis:
 * mn, mx and mean get shape[axis] entries each. Returns the channel count,
 * or -1 when t is not float32 or axis is out of range. */
int64_t qd_tensor_channel_stats(const qd_tensor *t, int axis, double *mn, double *mx, double *mean);

/* Read element i of an integer or float tensor as int64 / double. */
int64_t qd_tensor_get_i64(const qd_tensor *t, int64_t i);
double qd_tensor_get_f64(const qd_tensor *t, int64_t i);

#endif
