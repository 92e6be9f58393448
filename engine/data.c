/* data.c - datasets: spec parsing, IDX reading, NPY and image-folder
 * sources, seeded subsets and float32 batches. */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "npy.h"
#include "sha256.h"

/* Most bytes deflate can expand one compressed byte into (zlib's technical
 * note: 1032:1), plus slack for headers; bounds what a gzip file can hold. */
#define GZ_RATIO 1032
#define GZ_SLACK 1024

/* ---------------------------------------------------------------- IDX */

/* A byte source for IDX: a gzFile, or memory (inflated when gzipped). */
typedef struct isrc {
    gzFile gz;
    const unsigned char *p;
    size_t n, pos;
    z_stream zs;
    int inflating, ended;
} isrc;

/* Read up to k bytes; returns the count, or -1 with e set on corrupt data. */
static int64_t isrc_read(isrc *s, void *dst, size_t k, const char *name, qd_err *e)
{
    size_t got = 0;
    if (s->gz) {
        while (got < k) {
            unsigned chunk = k - got > (1u << 30) ? 1u << 30 : (unsigned)(k - got);
            int r = gzread(s->gz, (char *)dst + got, chunk);
            if (r < 0) {
                int zerr;
                const char *m = gzerror(s->gz, &zerr);
                qd_errf(e, QD_EINPUT, "%s: corrupt gzip data: %s", name, m);
                return -1;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        return (int64_t)got;
    }
    if (!s->inflating) {
        size_t left = s->n - s->pos;
        got = k < left ? k : left;
        memcpy(dst, s->p + s->pos, got);
        s->pos += got;
        return (int64_t)got;
    }
    while (got < k && !s->ended) {
        size_t want = k - got;
        s->zs.next_out = (Bytef *)dst + got;
        s->zs.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before = s->zs.avail_out;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        got += before - s->zs.avail_out;
        if (r == Z_STREAM_END)
            s->ended = 1;
        else if (r == Z_BUF_ERROR || (r == Z_OK && before == s->zs.avail_out && s->zs.avail_in == 0))
            break; /* input ended early: truncated */
        else if (r != Z_OK) {
            qd_errf(e, QD_EINPUT, "%s: corrupt gzip data: %s", name, s->zs.msg ? s->zs.msg : "inflate failed");
            return -1;
        }
    }
    return (int64_t)got;
}

static const struct { unsigned char code; qd_dtype t; } idx_types[] = {
    {0x08, QD_U8}, {0x09, QD_I8}, {0x0B, QD_I16}, {0x0C, QD_I32}, {0x0D, QD_F32}, {0x0E, QD_F64},
};

/* Parse an IDX stream; cap is the most bytes the source can hold, exactly
 * (uncompressed) or as a bound (gzip). */
static int idx_parse(isrc *s, uint64_t cap, int exact, const char *name, qd_tensor *t, qd_err *e)
{
    unsigned char m[4];
    int64_t r = isrc_read(s, m, 4, name, e);
    if (r < 0)
        return QD_EINPUT;
    if (r != 4 || m[0] || m[1])
        return qd_errf(e, QD_EINPUT, "%s: bad magic: not an IDX file", name);
    qd_dtype dt = QD_UNDEF;
    for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
        if (idx_types[i].code == m[2])
            dt = idx_types[i].t;
    if (dt == QD_UNDEF)
        return qd_errf(e, QD_EINPUT, "%s: bad magic: unknown IDX type 0x%02x", name, m[2]);
    int nd = m[3];
    if (nd < 1 || nd > QD_MAX_DIMS)
        return qd_errf(e, QD_EINPUT, "%s: bad magic: IDX rank %d is outside 1..%d", name, nd, QD_MAX_DIMS);
    unsigned char dims[4 * QD_MAX_DIMS];
    if ((r = isrc_read(s, dims, 4 * (size_t)nd, name, e)) < 0)
        return QD_EINPUT;
    if (r != 4 * nd)
        return qd_errf(e, QD_EINPUT, "%s: truncated IDX header", name);
    int64_t shape[QD_MAX_DIMS], es = (int64_t)qd_dtype_size(dt), need = es;
    for (int i = 0; i < nd; i++) {
        const unsigned char *d = dims + 4 * i;
        shape[i] = (int64_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
        if (shape[i] && need > INT64_MAX / shape[i])
            return qd_errf(e, QD_EINPUT, "%s: IDX shape too large", name);
        need *= shape[i];
    }
    uint64_t hdr = 4 + 4 * (uint64_t)nd;
    int64_t item = shape[0] ? need / shape[0] : 0;
    char is[160] = "";
    if (nd > 1)
        snprintf(is, sizeof is, " of %s", qd_shape_str(nd - 1, shape + 1, (char[160]){0}, 160));
    uint64_t avail = cap > hdr ? cap - hdr : 0;
    if ((uint64_t)need > avail && exact)
        return qd_errf(e, QD_EINPUT, "%s: truncated: header says %lld items%s, file has %lld", name,
                       (long long)shape[0], is, (long long)(item ? (int64_t)avail / item : 0));
    if ((uint64_t)need > avail)
        return qd_errf(e, QD_EINPUT, "%s: truncated: header says %lld items%s (%lld bytes), more than a "
                       "gzip file of this size can hold", name, (long long)shape[0], is, (long long)need);
    qd_err sub = {0};
    if (qd_tensor_resize(t, dt, nd, shape, &sub))
        return qd_errf(e, sub.code, "%s: %s", name, sub.msg);
    if ((r = isrc_read(s, t->data, (size_t)need, name, e)) < 0)
        return QD_EINPUT;
    if (r != need)
        return qd_errf(e, QD_EINPUT, "%s: truncated: header says %lld items%s, file has %lld", name,
                       (long long)shape[0], is, (long long)(item ? r / item : 0));
    /* big-endian -> native */
    unsigned char *b = t->data;
    for (int64_t i = 0; es > 1 && i < need; i += es)
        for (int64_t j = 0; j < es / 2; j++) {
            unsigned char c = b[i + j];
            b[i + j] = b[i + es - 1 - j];
            b[i + es - 1 - j] = c;
        }
    return QD_OK;
}

int qd_idx_read(const char *path, qd_tensor *t, qd_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return qd_errf(e, QD_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return qd_errf(e, QD_EINPUT, "%s: not a regular file", path);
    isrc s = {0};
    s.gz = gzopen(path, "rb");
    if (!s.gz)
        return qd_errf(e, QD_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    /* Peek at the header to learn whether the file is gzipped (gzdirect is
     * only valid after a read), then start over. */
    unsigned char peek[1];
    int rc = QD_OK;
    if (gzread(s.gz, peek, 1) < 0) {
        int zerr;
        rc = qd_errf(e, QD_EINPUT, "%s: corrupt gzip data: %s", path, gzerror(s.gz, &zerr));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t cap = gzdirect(s.gz) ? size : size * GZ_RATIO + GZ_SLACK;
    if (gzrewind(s.gz) != 0) {
        rc = qd_errf(e, QD_EINPUT, "%s: cannot rewind", path);
        goto out;
    }
    rc = idx_parse(&s, cap, gzdirect(s.gz), path, t, e);
out:
    gzclose(s.gz);
    return rc;
}

int qd_idx_read_mem(const void *buf, size_t size, const char *name, qd_tensor *t, qd_err *e)
{
    isrc s = {0};
    s.p = buf;
    s.n = size;
    uint64_t cap = size;
    if (size >= 2 && s.p[0] == 0x1f && s.p[1] == 0x8b) {
        if (inflateInit2(&s.zs, 16 + MAX_WBITS) != Z_OK)
            return qd_errf(e, QD_EFAIL, "%s: cannot start inflating", name);
        s.inflating = 1;
        s.zs.next_in = (Bytef *)s.p;
        s.zs.avail_in = size > UINT_MAX ? UINT_MAX : (uInt)size;
        cap = (uint64_t)size * GZ_RATIO + GZ_SLACK;
    }
    int rc = idx_parse(&s, cap, !s.inflating, name, t, e);
    if (s.inflating)
        inflateEnd(&s.zs);
    return rc;
}

/* ------------------------------------------------------------ dataset */

enum { SRC_IDX, SRC_NPY, SRC_FOLDER };

struct qd_dataset {
    int src;
    qd_data_opts o;
    int64_t chw[3];      /* one sample after preprocessing */
    int64_t total;       /* samples in the source */
    int64_t count;       /* samples in the current set */
    int64_t *sel;        /* count source indices, or NULL for 0..count-1 */
    int64_t *labels;     /* total labels, or NULL */
    int nclasses;
    char base[384];      /* description of the source */
    char desc[512];      /* base + subset */
    /* IDX: pixels in memory, u8 or any IDX type, total x C*H*W */
    qd_tensor images;
    /* NPY: images read per batch */
    char *npy_path;
    qd_npy_info npy;
    unsigned char *row; /* one uint8 sample */
    /* image folder */
    char **files;        /* total paths */
    char **classes;      /* nclasses names */
    qd_tensor img;       /* one decoded sample */
};

void qd_data_free(qd_dataset *d)
{
    if (!d)
        return;
    free(d->sel);
    free(d->labels);
    qd_tensor_free(&d->images);
    free(d->npy_path);
    free(d->row);
    for (int64_t i = 0; d->files && i < d->total; i++)
        free(d->files[i]);
    free(d->files);
    for (int i = 0; d->classes && i < d->nclasses; i++)
        free(d->classes[i]);
    free(d->classes);
    qd_tensor_free(&d->img);
    free(d);
}

int64_t qd_data_count(const qd_dataset *d) { return d->count; }
int qd_data_has_labels(const qd_dataset *d) { return d->labels != NULL; }
int qd_data_nclasses(const qd_dataset *d) { return d->nclasses; }
const char *qd_data_describe(const qd_dataset *d) { return d->desc; }

int qd_data_sha256(qd_dataset *d, char hex[65], qd_err *e)
{
    qd_sha256 c;
    qd_sha256_init(&c);
    qd_tensor x = {0};
    int64_t labels[256];
    int rc = QD_OK;
    for (int64_t i = 0; i < d->count && !rc; i += 256) {
        int64_t n = d->count - i < 256 ? d->count - i : 256;
        if (!(rc = qd_data_batch(d, i, n, &x, labels, e))) {
            qd_sha256_update(&c, x.data, (size_t)qd_tensor_numel(&x) * sizeof(float));
            qd_sha256_update(&c, labels, (size_t)n * sizeof labels[0]);
        }
    }
    qd_tensor_free(&x);
    if (!rc)
        qd_sha256_hex(&c, hex);
    return rc;
}

void qd_data_sample_shape(const qd_dataset *d, int64_t chw[3])
{
    memcpy(chw, d->chw, sizeof d->chw);
}

const char *qd_data_class_name(const qd_dataset *d, int cls)
{
    return d->classes && cls >= 0 && cls < d->nclasses ? d->classes[cls] : NULL;
}

/* Copy labels from an integer tensor of shape (n,) after checking them. */
static int take_labels(qd_dataset *d, const qd_tensor *l, const char *lpath, const char *ipath, qd_err *e)
{
    if (l->dtype != QD_U8 && l->dtype != QD_I8 && l->dtype != QD_I16 && l->dtype != QD_I32 && l->dtype != QD_I64)
        return qd_errf(e, QD_EINPUT, "%s: labels have dtype %s (expected int64, int32 or uint8)", lpath,
                       qd_dtype_name(l->dtype));
    if (l->ndim != 1)
        return qd_errf(e, QD_EINPUT, "%s: labels have rank %d (expected 1, shape (N,))", lpath, l->ndim);
    if (l->shape[0] != d->total)
        return qd_errf(e, QD_EINPUT, "%s: label count mismatch: %lld labels for %lld images in %s", lpath,
                       (long long)l->shape[0], (long long)d->total, ipath);
    d->labels = malloc(sizeof *d->labels * (size_t)(d->total ? d->total : 1));
    if (!d->labels)
        return qd_errf(e, QD_EFAIL, "%s: out of memory", lpath);
    int64_t mx = -1;
    for (int64_t i = 0; i < d->total; i++) {
        int64_t v = qd_tensor_get_i64(l, i);
        if (v < 0)
            return qd_errf(e, QD_EINPUT, "%s: label %lld at index %lld is negative", lpath, (long long)v,
                           (long long)i);
        d->labels[i] = v;
        if (v > mx)
            mx = v;
    }
    d->nclasses = (int)(mx + 1 > INT_MAX ? INT_MAX : mx + 1);
    return QD_OK;
}

/* N x H x W -> C = 1, N x C x H x W as is; anything else is QD_EINPUT. */
static int image_dims(qd_dataset *d, int ndim, const int64_t *shape, const char *path, qd_err *e)
{
    if (ndim == 3) {
        d->chw[0] = 1, d->chw[1] = shape[1], d->chw[2] = shape[2];
    } else if (ndim == 4) {
        d->chw[0] = shape[1], d->chw[1] = shape[2], d->chw[2] = shape[3];
    } else {
        return qd_errf(e, QD_EINPUT, "%s: images have rank %d, shape %s (expected N x H x W or N x C x H x W)",
                       path, ndim, qd_shape_str(ndim, shape, (char[160]){0}, 160));
    }
    d->total = shape[0];
    if (d->chw[0] * d->chw[1] * d->chw[2] == 0)
        return qd_errf(e, QD_EINPUT, "%s: images have an empty sample shape %s", path,
                       qd_shape_str(ndim, shape, (char[160]){0}, 160));
    return QD_OK;
}

static void set_base(qd_dataset *d, const char *what, const char *extra)
{
    char s[160];
    snprintf(d->base, sizeof d->base, "%s (%lld images %s%s, %s)", what, (long long)d->total,
             qd_shape_str(3, d->chw, s, sizeof s), extra, d->labels ? "labels" : "no labels");
    snprintf(d->desc, sizeof d->desc, "%s", d->base);
}

static int open_idx(qd_dataset *d, const char *what, const char *ipath, const char *lpath, qd_err *e)
{
    int rc;
    if ((rc = qd_idx_read(ipath, &d->images, e)))
        return rc;
    if ((rc = image_dims(d, d->images.ndim, d->images.shape, ipath, e)))
        return rc;
    if (lpath) {
        qd_tensor l = {0};
        rc = qd_idx_read(lpath, &l, e);
        if (!rc)
            rc = take_labels(d, &l, lpath, ipath, e);
        qd_tensor_free(&l);
        if (rc)
            return rc;
    }
    set_base(d, what, "");
    return QD_OK;
}

static int open_npy(qd_dataset *d, const char *ipath, const char *lpath, qd_err *e)
{
    int rc;
    if ((rc = qd_npy_info_read(ipath, &d->npy, e)))
        return rc;
    if (d->npy.dtype != QD_F32 && d->npy.dtype != QD_U8)
        return qd_errf(e, QD_EINPUT, "%s: images have dtype %s (expected float32 or uint8)", ipath,
                       qd_dtype_name(d->npy.dtype));
    if ((rc = image_dims(d, d->npy.ndim, d->npy.shape, ipath, e)))
        return rc;
    if (!(d->npy_path = strdup(ipath)) || !(d->row = malloc((size_t)(d->chw[0] * d->chw[1] * d->chw[2]))))
        return qd_errf(e, QD_EFAIL, "%s: out of memory", ipath);
    if (lpath) {
        qd_tensor l = {0};
        rc = qd_npy_read(lpath, &l, e);
        if (!rc)
            rc = take_labels(d, &l, lpath, ipath, e);
        qd_tensor_free(&l);
        if (rc)
            return rc;
    }
    char what[300];
    snprintf(what, sizeof what, "npy %s", ipath);
    set_base(d, what, d->npy.dtype == QD_U8 ? " uint8" : " float32");
    return QD_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir (no dot-files), sorted; *n gets the count. NULL on error. */
static char **list_dir(const char *dir, int64_t *n, qd_err *e)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        qd_errf(e, QD_EINPUT, "%s: cannot open folder: %s", dir, strerror(errno));
        return NULL;
    }
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.')
            continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[cnt] = strdup(de->d_name)))
            goto oom;
        cnt++;
    }
    closedir(dp);
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_str);
    *n = (int64_t)cnt;
    if (!v)
        v = calloc(1, sizeof *v);
    return v;
oom:
    closedir(dp);
    for (size_t i = 0; i < cnt; i++)
        free(v[i]);
    free(v);
    qd_errf(e, QD_EFAIL, "%s: out of memory listing the folder", dir);
    return NULL;
}

static void free_list(char **v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Append the images of one class folder to d->files / d->labels. */
static int add_class(qd_dataset *d, const char *cdir, int cls, int64_t *cap, qd_err *e)
{
    int64_t n = 0;
    char **names = list_dir(cdir, &n, e);
    if (!names)
        return e ? e->code : QD_EINPUT;
    int rc = QD_OK;
    if (n == 0)
        rc = qd_errf(e, QD_EINPUT, "%s: class folder has no images", cdir);
    for (int64_t i = 0; !rc && i < n; i++) {
        char *p = join(cdir, names[i]);
        struct stat st;
        if (!p) {
            rc = qd_errf(e, QD_EFAIL, "out of memory");
            break;
        }
        if (stat(p, &st) != 0)
            rc = qd_errf(e, QD_EINPUT, "%s: cannot open: %s", p, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = qd_errf(e, QD_EINPUT, "%s: unexpected sub-folder inside a class folder", p);
        else if (!S_ISREG(st.st_mode) || !is_image_name(names[i]))
            rc = qd_errf(e, QD_EINPUT, "%s: not an image (expected .png, .jpg or .jpeg in a class folder)", p);
        if (!rc && d->total == *cap) {
            int64_t nc = *cap ? 2 * *cap : 256;
            char **nf = realloc(d->files, sizeof *nf * (size_t)nc);
            if (nf)
                d->files = nf;
            int64_t *nl = realloc(d->labels, sizeof *nl * (size_t)nc);
            if (nl)
                d->labels = nl;
            if (!nf || !nl)
                rc = qd_errf(e, QD_EFAIL, "out of memory");
            else
                *cap = nc;
        }
        if (rc) {
            free(p);
            break;
        }
        d->files[d->total] = p;
        d->labels[d->total++] = cls;
    }
    free_list(names, n);
    return rc;
}

static int open_folder(qd_dataset *d, const char *dir, qd_err *e)
{
    int64_t n = 0, cap = 0;
    char **names = list_dir(dir, &n, e);
    if (!names)
        return e ? e->code : QD_EINPUT;
    int rc = QD_OK;
    /* classes: the sub-folders (plain files at the top are ignored) */
    d->classes = calloc((size_t)(n ? n : 1), sizeof *d->classes);
    if (!d->classes)
        rc = qd_errf(e, QD_EFAIL, "out of memory");
    for (int64_t i = 0; !rc && i < n; i++) {
        char *p = join(dir, names[i]);
        struct stat st;
        if (!p) {
            rc = qd_errf(e, QD_EFAIL, "out of memory");
        } else if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            d->classes[d->nclasses] = names[i];
            names[i] = NULL;
            rc = add_class(d, p, d->nclasses++, &cap, e);
        }
        free(p);
    }
    free_list(names, n);
    if (rc)
        return rc;
    if (d->nclasses == 0)
        return qd_errf(e, QD_EINPUT, "%s: no class sub-folders (expected DIR/<class>/<image>)", dir);
    if ((rc = qd_image_read(d->files[0], &d->o, &d->img, e)))
        return rc;
    memcpy(d->chw, d->img.shape, sizeof d->chw);
    char what[300], extra[64];
    snprintf(what, sizeof what, "imagefolder %s", dir);
    snprintf(extra, sizeof extra, " in %d classes", d->nclasses);
    set_base(d, what, extra);
    return QD_OK;
}

/* Split "A,B" into A and B (B NULL without a comma); *buf is freed by caller. */
static int split2(const char *s, char **buf, const char **a, const char **b, const char *spec, qd_err *e)
{
    if (!(*buf = strdup(s)))
        return qd_errf(e, QD_EFAIL, "out of memory");
    char *c = strchr(*buf, ',');
    *a = *buf;
    *b = NULL;
    if (c) {
        *c = 0;
        *b = c + 1;
    }
    if (!**a || (*b && !**b))
        return qd_errf(e, QD_EINPUT, "dataset '%s': empty file name", spec);
    return QD_OK;
}

qd_dataset *qd_data_open(const char *spec, const qd_data_opts *o, qd_err *e)
{
    static const char usage[] =
        "expected fashion-mnist[:test|:train], idx:IMAGES[,LABELS], npy:IMAGES[,LABELS] or imagefolder:DIR";
    qd_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    if (o)
        d->o = *o;
    char *buf = NULL;
    const char *a, *b;
    int rc = QD_OK, image_opts = d->o.resize || d->o.crop || d->o.gray || d->o.bgr;
    if (d->o.resize < 0 || d->o.crop < 0) {
        rc = qd_errf(e, QD_EINPUT, "dataset '%s': resize and crop must be positive", spec);
        goto out;
    }
    if (image_opts && strncmp(spec, "imagefolder:", 12) != 0) {
        rc = qd_errf(e, QD_EINPUT, "dataset '%s': resize, crop, gray and bgr apply to imagefolder: only", spec);
        goto out;
    }
    if (!strcmp(spec, "fashion-mnist") || !strcmp(spec, "fashion-mnist:test") ||
        !strcmp(spec, "fashion-mnist:train")) {
        int train = !strcmp(spec, "fashion-mnist:train");
        const char *split = train ? "train" : "t10k";
        char ip[512], lp[512];
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", QD_FASHION_MNIST_DIR, split);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", QD_FASHION_MNIST_DIR, split);
        d->src = SRC_IDX;
        rc = open_idx(d, train ? "fashion-mnist train" : "fashion-mnist test", ip, lp, e);
        if (rc && access(ip, F_OK) != 0)
            qd_err_prefix(e, "%s (install Debian's dataset-fashion-mnist)", spec);
    } else if (!strncmp(spec, "idx:", 4)) {
        d->src = SRC_IDX;
        if (!(rc = split2(spec + 4, &buf, &a, &b, spec, e))) {
            char what[300];
            snprintf(what, sizeof what, "idx %s", a);
            rc = open_idx(d, what, a, b, e);
        }
    } else if (!strncmp(spec, "npy:", 4)) {
        d->src = SRC_NPY;
        if (!(rc = split2(spec + 4, &buf, &a, &b, spec, e)))
            rc = open_npy(d, a, b, e);
    } else if (!strncmp(spec, "imagefolder:", 12)) {
        d->src = SRC_FOLDER;
        if (!spec[12])
            rc = qd_errf(e, QD_EINPUT, "dataset '%s': empty folder name", spec);
        else
            rc = open_folder(d, spec + 12, e);
    } else {
        rc = qd_errf(e, QD_EINPUT, "unknown dataset '%s' (%s)", spec, usage);
    }
    d->count = d->total;
out:
    free(buf);
    if (rc) {
        qd_data_free(d);
        return NULL;
    }
    return d;
}

/* ------------------------------------------------------------ subsets */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, m) by rejection: no modulo bias. */
static uint64_t uniform(uint64_t *s, uint64_t m)
{
    uint64_t lim = UINT64_MAX - (UINT64_MAX % m + 1) % m; /* largest multiple of m, minus 1 */
    uint64_t r;
    do
        r = splitmix64(s);
    while (r > lim);
    return r % m;
}

int qd_data_limit(qd_dataset *d, int64_t n, uint64_t seed, qd_err *e)
{
    if (n < 0)
        return qd_errf(e, QD_EINPUT, "limit %lld is negative", (long long)n);
    if (n >= d->count)
        return QD_OK;
    int64_t *idx = malloc(sizeof *idx * (size_t)(d->count ? d->count : 1));
    if (!idx)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (int64_t i = 0; i < d->count; i++)
        idx[i] = i;
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i + (int64_t)uniform(&s, (uint64_t)(d->count - i));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    for (int64_t i = 0; i < n; i++)
        idx[i] = d->sel ? d->sel[idx[i]] : idx[i];
    int64_t *sel = realloc(idx, sizeof *sel * (size_t)(n ? n : 1));
    free(d->sel);
    d->sel = sel ? sel : idx;
    d->count = n;
    size_t l = strlen(d->desc);
    snprintf(d->desc + l, sizeof d->desc - l, ", subset of %lld (seed %llu)", (long long)n,
             (unsigned long long)seed);
    return QD_OK;
}

/* ------------------------------------------------------------ batches */

static int batch_folder(qd_dataset *d, int64_t k, int64_t src, float *dst, qd_err *e)
{
    int rc = qd_image_read(d->files[src], &d->o, &d->img, e);
    if (rc) {
        qd_err_prefix(e, "sample %lld", (long long)k);
        return rc;
    }
    if (memcmp(d->img.shape, d->chw, sizeof d->chw) != 0) {
        char a[64], b[64];
        return qd_errf(e, QD_EINPUT, "sample %lld: %s: preprocessed shape %s differs from the dataset's %s "
                       "(set crop, or resize and crop)", (long long)k, d->files[src],
                       qd_shape_str(3, d->img.shape, a, sizeof a), qd_shape_str(3, d->chw, b, sizeof b));
    }
    memcpy(dst, d->img.data, qd_tensor_nbytes(&d->img));
    return QD_OK;
}

int qd_data_batch(qd_dataset *d, int64_t start, int64_t n, qd_tensor *x, int64_t *labels, qd_err *e)
{
    if (start < 0 || n < 0 || start > d->count || n > d->count - start)
        return qd_errf(e, QD_EINPUT, "batch [%lld, %lld) is outside the dataset's %lld samples",
                       (long long)start, (long long)(start + n), (long long)d->count);
    int64_t shape[4] = {n, d->chw[0], d->chw[1], d->chw[2]};
    int rc = qd_tensor_resize(x, QD_F32, 4, shape, e);
    if (rc)
        return rc;
    int64_t per = d->chw[0] * d->chw[1] * d->chw[2], hw = d->chw[1] * d->chw[2];
    float *out = x->data;
    FILE *f = NULL;
    if (d->src == SRC_NPY && n > 0 && !(f = fopen(d->npy_path, "rb")))
        return qd_errf(e, QD_EINPUT, "%s: cannot open: %s", d->npy_path, strerror(errno));
    for (int64_t k = 0; k < n && !rc; k++) {
        int64_t i = start + k, src = d->sel ? d->sel[i] : i;
        float *dst = out + k * per;
        if (labels)
            labels[k] = d->labels ? d->labels[src] : -1;
        if (d->src == SRC_IDX) {
            if (d->images.dtype == QD_U8) {
                const uint8_t *p = (const uint8_t *)d->images.data + src * per;
                for (int64_t j = 0; j < per; j++)
                    dst[j] = p[j];
            } else {
                for (int64_t j = 0; j < per; j++)
                    dst[j] = (float)qd_tensor_get_f64(&d->images, src * per + j);
            }
            qd_data_normalize(dst, d->chw[0], hw, d->images.dtype == QD_U8, &d->o);
        } else if (d->src == SRC_NPY) {
            int u8 = d->npy.dtype == QD_U8;
            if ((rc = qd_npy_read_rows(f, d->npy_path, &d->npy, src, 1, u8 ? (void *)d->row : (void *)dst, e))) {
                qd_err_prefix(e, "sample %lld", (long long)k);
                break;
            }
            if (u8)
                for (int64_t j = 0; j < per; j++)
                    dst[j] = d->row[j];
            qd_data_normalize(dst, d->chw[0], hw, u8, &d->o);
        } else {
            rc = batch_folder(d, i, src, dst, e);
        }
    }
    if (f)
        fclose(f);
    return rc;
}
