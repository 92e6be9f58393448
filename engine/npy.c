/* npy.c - reading and writing NumPy .npy files. */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *descr; qd_dtype t; } descrs[] = {
    {"<f4", QD_F32}, {"<f8", QD_F64}, {"|i1", QD_I8},  {"<i2", QD_I16}, {"<i4", QD_I32},
    {"<i8", QD_I64}, {"|u1", QD_U8},  {"<u2", QD_U16}, {"<u4", QD_U32}, {"<u8", QD_U64},
    {"|b1", QD_BOOL},
};

/* Find the value text after 'key': in the header dict; NULL if absent. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static int parse_header(const char *h, qd_tensor *t, const char *path, qd_err *e)
{
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"), *s = dict_value(h, "shape");
    if (!d || !f || !s)
        return qd_errf(e, QD_EINPUT, "%s: NPY header lacks descr, fortran_order or shape", path);
    if (strncmp(f, "False", 5) != 0)
        return qd_errf(e, QD_EINPUT, "%s: Fortran-order arrays are not supported (save with C order)", path);
    qd_dtype dt = QD_UNDEF;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (d[0] == '\'' && strncmp(d + 1, descrs[i].descr, 3) == 0 && d[4] == '\'')
            dt = descrs[i].t;
    if (dt == QD_UNDEF && d[0] == '\'' && (strncmp(d + 1, "<b1", 3) == 0))
        dt = QD_BOOL;
    if (dt == QD_UNDEF) {
        const char *q = strchr(d + 1, '\'');
        int n = q ? (int)(q - d - 1) : 8;
        return qd_errf(e, QD_EINPUT, "%s: unsupported NPY dtype '%.*s'", path, n > 16 ? 16 : n, d + 1);
    }
    if (*s != '(')
        return qd_errf(e, QD_EINPUT, "%s: malformed NPY shape", path);
    int64_t shape[QD_MAX_DIMS];
    int nd = 0;
    const char *p = s + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || errno)
            return qd_errf(e, QD_EINPUT, "%s: malformed NPY shape", path);
        if (nd == QD_MAX_DIMS)
            return qd_errf(e, QD_EINPUT, "%s: NPY rank above %d", path, QD_MAX_DIMS);
        shape[nd++] = v;
        p = end;
    }
    qd_err sub = {0};
    if (qd_tensor_resize(t, dt, nd, shape, &sub))
        return qd_errf(e, sub.code, "%s: %s", path, sub.msg);
    return QD_OK;
}

int qd_npy_read(const char *path, qd_tensor *t, qd_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qd_errf(e, QD_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    int rc = QD_OK;
    char *hdr = NULL;
    unsigned char pre[12];
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        rc = qd_errf(e, QD_EINPUT, "%s: not a regular file", path);
        goto out;
    }
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        rc = qd_errf(e, QD_EINPUT, "%s: not an NPY file (bad magic)", path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            rc = qd_errf(e, QD_EINPUT, "%s: truncated NPY header", path);
            goto out;
        }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        rc = qd_errf(e, QD_EINPUT, "%s: unsupported NPY version %d", path, pre[6]);
        goto out;
    }
    if (hlen > 1 << 20) {
        rc = qd_errf(e, QD_EINPUT, "%s: NPY header too long", path);
        goto out;
    }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
        rc = qd_errf(e, QD_EINPUT, "%s: truncated NPY header", path);
        goto out;
    }
    hdr[hlen] = 0;
    if ((rc = parse_header(hdr, t, path, e)))
        goto out;
    size_t nb = qd_tensor_nbytes(t), got = nb ? fread(t->data, 1, nb, f) : 0;
    if (got != nb)
        rc = qd_errf(e, QD_EINPUT, "%s: truncated NPY data: %zu of %zu bytes", path, got, nb);
out:
    free(hdr);
    fclose(f);
    return rc;
}

int qd_npy_write(const char *path, const qd_tensor *t, qd_err *e)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (descrs[i].t == t->dtype)
            descr = descrs[i].descr;
    if (!descr)
        return qd_errf(e, QD_EINPUT, "%s: cannot write dtype %s to NPY", path, qd_dtype_name(t->dtype));
    char shape[256] = "", hdr[512];
    size_t o = 0;
    for (int i = 0; i < t->ndim; i++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%lld,%s", (long long)t->shape[i],
                              i + 1 < t->ndim ? " " : "");
    if (t->ndim > 1)
        shape[o - 1] = 0; /* "(2, 3)" but "(5,)" */
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', (size_t)pad);
    hdr[n + pad] = '\n';
    size_t hlen = (size_t)n + (size_t)pad + 1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return qd_errf(e, QD_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    size_t nb = qd_tensor_nbytes(t);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, hlen, f) == hlen &&
             (nb == 0 || fwrite(t->data, 1, nb, f) == nb);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return qd_errf(e, QD_EFAIL, "%s: write failed: %s", path, strerror(err));
    }
    return QD_OK;
}
