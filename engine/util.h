/* util.h - small helpers shared across the engine and its callers. */
#ifndef QD_UTIL_H
#define QD_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* Open path for binary reading; only regular files (a directory or device
 * is QD_EINPUT "not a regular file"). Its size goes to *size. */
FILE *qd_open_regular(const char *path, uint64_t *size, qd_err *e);
/* Monotonic clock, milliseconds. */
double qd_now_ms(void);

#endif
