/* npy.h - NumPy .npy files (format versions 1-3, C order, little-endian). */
#ifndef QD_NPY_H
#define QD_NPY_H

#include "tensor.h"

/* Read path into t (t owns the data afterwards). Supports float32/64,
 * int8/16/32/64, uint8/16/32/64 and bool; Fortran order and big-endian data
 * are rejected. Errors name the file and the reason (QD_EINPUT). */
int qd_npy_read(const char *path, qd_tensor *t, qd_err *e);

/* Write t to path atomically (temporary file in the same folder, then
 * rename), so a failure never leaves a partial file. */
int qd_npy_write(const char *path, const qd_tensor *t, qd_err *e);

#endif
