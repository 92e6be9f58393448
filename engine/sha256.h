/* sha256.h - SHA-256 (FIPS 180-4) of bytes and files, for fingerprints of
 * models and data in sessions. */
#ifndef QD_SHA256_H
#define QD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct qd_sha256 {
    uint32_t h[8];
    uint64_t bytes;      /* message length so far */
    uint8_t buf[64];     /* a partial block */
    size_t nbuf;
} qd_sha256;

void qd_sha256_init(qd_sha256 *c);
void qd_sha256_update(qd_sha256 *c, const void *p, size_t n);
/* The digest as 64 lowercase hex digits and a NUL; c is then spent. */
void qd_sha256_hex(qd_sha256 *c, char hex[65]);
/* Of the file at path (QD_EINPUT naming it when it cannot be read). */
int qd_sha256_file(const char *path, char hex[65], qd_err *e);

#endif
