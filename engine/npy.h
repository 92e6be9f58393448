/* npy.h - NumPy .npy files (format versions 1-3, C order, little-endian). */
#ifndef QD_NPY_H
#define QD_NPY_H

#include <stdio.h>

#include "tensor.h"

/* What an NPY header says: element type, shape, where the data starts. */
typedef struct qd_npy_info {
    qd_dtype dtype;
    int ndim;
    int64_t shape[QD_MAX_DIMS];
    uint64_t data_offset; /* bytes from the start of the file to element 0 */
} qd_npy_info;

/* Read path into t (t owns the data afterwards). Supports float32/64,
 * int8/16/32/64, uint8/16/32/64 and bool; Fortran order and big-endian data
 * are rejected. Errors name the file and the reason (QD_EINPUT). */
int qd_npy_read(const char *path, qd_tensor *t, qd_err *e);

/* The same for an NPY file held in memory (size bytes at buf, borrowed for
 * the call); name is used in messages. Header-claimed sizes are checked
 * against size before anything is allocated. */
int qd_npy_read_mem(const void *buf, size_t size, const char *name, qd_tensor *t, qd_err *e);

/* Read only the header of path into info; QD_EINPUT unless the file holds
 * all the data the header claims. */
int qd_npy_info_read(const char *path, qd_npy_info *info, qd_err *e);

/* Read rows [row0, row0 + nrows) along axis 0 of the array info describes
 * from f (opened on path, which is named in messages) into dst, which holds
 * nrows * (bytes per row). */
int qd_npy_read_rows(FILE *f, const char *path, const qd_npy_info *info, int64_t row0, int64_t nrows,
                     void *dst, qd_err *e);

/* Write t to path atomically (temporary file in the same folder, then
 * rename), so a failure never leaves a partial file. */
int qd_npy_write(const char *path, const qd_tensor *t, qd_err *e);

#endif
