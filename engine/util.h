/* util.h - small helpers shared across the engine and its callers. */
#ifndef QD_UTIL_H
#define QD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* Open path for binary reading; only regular files (a directory or device
 * is QD_EINPUT "not a regular file"). Its size goes to *size. */
FILE *qd_open_regular(const char *path, uint64_t *size, qd_err *e);
/* The whole of regular file path, NUL-terminated (the caller frees it);
 * its length to *len. A file over max bytes (max > 0) is QD_EINPUT. */
char *qd_read_file(const char *path, uint64_t max, size_t *len, qd_err *e);
/* Write len bytes at buf to path through a new temporary file next to it,
 * flushed to disk and renamed over path: path is either its old contents or
 * the whole new file, and nothing is left behind on failure. An unwritable
 * place is QD_EINPUT, a failed write QD_EFAIL, both naming path. */
int qd_write_atomic(const char *path, const void *buf, size_t len, qd_err *e);
/* Monotonic clock, milliseconds. */
double qd_now_ms(void);
/* CPU time of the process (all threads), milliseconds. */
double qd_cpu_ms(void);

#endif
