/* npy.c - reading and writing NumPy .npy files. */
#include "npy.h"
#include "util.h"

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

/* Byte size of the data info describes, or -1 when it overflows. */
static int64_t info_nbytes(const qd_npy_info *info)
{
    int64_t n = (int64_t)qd_dtype_size(info->dtype);
    for (int i = 0; i < info->ndim; i++) {
        if (info->shape[i] && n > INT64_MAX / info->shape[i])
            return -1;
        n *= info->shape[i];
    }
    return n;
}

static int parse_header(const char *h, qd_npy_info *info, const char *path, qd_err *e)
{
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"), *s = dict_value(h, "shape");
    if (!d || !f || !s)
        return qd_errf(e, QD_EINPUT, "%s: NPY header lacks descr, fortran_order or shape", path);
    if (strncmp(f, "False", 5) != 0)
        return qd_errf(e, QD_EINPUT, "%s: Fortran-order arrays are not supported (save with C order)", path);
    if (d[0] != '\'')
        return qd_errf(e, QD_EINPUT, "%s: malformed NPY descr", path);
    qd_dtype dt = QD_UNDEF;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (strncmp(d + 1, descrs[i].descr, 3) == 0 && d[4] == '\'')
            dt = descrs[i].t;
    if (dt == QD_UNDEF && strncmp(d + 1, "<b1", 3) == 0 && d[4] == '\'')
        dt = QD_BOOL;
    if (dt == QD_UNDEF) {
        const char *q = strchr(d + 1, '\'');
        int n = q ? (int)(q - d - 1) : (int)strlen(d + 1);
        return qd_errf(e, QD_EINPUT, "%s: unsupported NPY dtype '%.*s'", path, n > 16 ? 16 : n, d + 1);
    }
    if (*s != '(')
        return qd_errf(e, QD_EINPUT, "%s: malformed NPY shape", path);
    memset(info, 0, sizeof *info);
    info->dtype = dt;
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
        if (info->ndim == QD_MAX_DIMS)
            return qd_errf(e, QD_EINPUT, "%s: NPY rank above %d", path, QD_MAX_DIMS);
        info->shape[info->ndim++] = v;
        p = end;
    }
    if (info_nbytes(info) < 0)
        return qd_errf(e, QD_EINPUT, "%s: NPY shape %s is too large", path,
                       qd_shape_str(info->ndim, info->shape, (char[160]){0}, 160));
    return QD_OK;
}

/* A byte source: a FILE or a memory buffer. */
typedef struct src {
    FILE *f;
    const unsigned char *p;
    size_t n, pos;
} src;

static size_t src_read(src *r, void *dst, size_t k)
{
    if (r->f)
        return fread(dst, 1, k, r->f);
    size_t left = r->n - r->pos;
    if (k > left)
        k = left;
    memcpy(dst, r->p + r->pos, k);
    r->pos += k;
    return k;
}

/* Read the prefix and header from r into info; size is the total byte size
 * of the source (the data must fit in it). */
static int read_header(src *r, uint64_t size, const char *path, qd_npy_info *info, qd_err *e)
{
    unsigned char pre[12];
    if (src_read(r, pre, 10) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return qd_errf(e, QD_EINPUT, "%s: not an NPY file (bad magic)", path);
    size_t hlen, plen = 10;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (src_read(r, pre + 10, 2) != 2)
            return qd_errf(e, QD_EINPUT, "%s: truncated NPY header", path);
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        plen = 12;
    } else {
        return qd_errf(e, QD_EINPUT, "%s: unsupported NPY version %d", path, pre[6]);
    }
    if (hlen > 1 << 20)
        return qd_errf(e, QD_EINPUT, "%s: NPY header too long", path);
    if (plen + hlen > size)
        return qd_errf(e, QD_EINPUT, "%s: truncated NPY header", path);
    char *hdr = malloc(hlen + 1);
    if (!hdr)
        return qd_errf(e, QD_EFAIL, "%s: out of memory", path);
    int rc = QD_OK;
    if (src_read(r, hdr, hlen) != hlen) {
        rc = qd_errf(e, QD_EINPUT, "%s: truncated NPY header", path);
    } else {
        hdr[hlen] = 0;
        rc = parse_header(hdr, info, path, e);
    }
    free(hdr);
    if (rc)
        return rc;
    info->data_offset = plen + hlen;
    uint64_t nb = (uint64_t)info_nbytes(info);
    if (nb > size - info->data_offset)
        return qd_errf(e, QD_EINPUT, "%s: truncated NPY data: header says %s %s (%llu bytes), file has %llu",
                       path, qd_shape_str(info->ndim, info->shape, (char[160]){0}, 160),
                       qd_dtype_name(info->dtype), (unsigned long long)nb,
                       (unsigned long long)(size - info->data_offset));
    return QD_OK;
}

/* Read the data info describes from r into t. */
static int read_data(src *r, const qd_npy_info *info, const char *path, qd_tensor *t, qd_err *e)
{
    qd_err sub = {0};
    if (qd_tensor_resize(t, info->dtype, info->ndim, info->shape, &sub))
        return qd_errf(e, sub.code, "%s: %s", path, sub.msg);
    size_t nb = qd_tensor_nbytes(t), got = nb ? src_read(r, t->data, nb) : 0;
    if (got != nb)
        return qd_errf(e, QD_EINPUT, "%s: truncated NPY data: %zu of %zu bytes", path, got, nb);
    return QD_OK;
}

int qd_npy_read(const char *path, qd_tensor *t, qd_err *e)
{
    uint64_t size;
    FILE *f = qd_open_regular(path, &size, e);
    if (!f)
        return e ? e->code : QD_EINPUT;
    src r = {.f = f};
    qd_npy_info info;
    int rc = read_header(&r, size, path, &info, e);
    if (!rc)
        rc = read_data(&r, &info, path, t, e);
    fclose(f);
    return rc;
}

int qd_npy_read_mem(const void *buf, size_t size, const char *name, qd_tensor *t, qd_err *e)
{
    src r = {.p = buf, .n = size};
    qd_npy_info info;
    int rc = read_header(&r, size, name, &info, e);
    if (!rc)
        rc = read_data(&r, &info, name, t, e);
    return rc;
}

int qd_npy_info_read(const char *path, qd_npy_info *info, qd_err *e)
{
    uint64_t size;
    FILE *f = qd_open_regular(path, &size, e);
    if (!f)
        return e ? e->code : QD_EINPUT;
    src r = {.f = f};
    int rc = read_header(&r, size, path, info, e);
    fclose(f);
    return rc;
}

int qd_npy_read_rows(FILE *f, const char *path, const qd_npy_info *info, int64_t row0, int64_t nrows,
                     void *dst, qd_err *e)
{
    int64_t rows = info->ndim ? info->shape[0] : 1;
    if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0)
        return qd_errf(e, QD_EINPUT, "%s: rows %lld..%lld are outside 0..%lld", path, (long long)row0,
                       (long long)(row0 + nrows), (long long)rows);
    int64_t total = info_nbytes(info), row = rows ? total / rows : 0;
    size_t nb = (size_t)(row * nrows);
    if (nb == 0)
        return QD_OK;
    if (fseeko(f, (off_t)(info->data_offset + (uint64_t)(row * row0)), SEEK_SET) != 0)
        return qd_errf(e, QD_EINPUT, "%s: cannot seek to row %lld: %s", path, (long long)row0, strerror(errno));
    size_t got = fread(dst, 1, nb, f);
    if (got != nb)
        return qd_errf(e, QD_EINPUT, "%s: truncated NPY data at row %lld: %zu of %zu bytes", path,
                       (long long)row0, got, nb);
    return QD_OK;
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
