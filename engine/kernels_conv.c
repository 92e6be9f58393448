/* kernels_conv.c - convolution kernels (see kernels_conv.h): im2col tiles +
 * sgemm, a direct depthwise kernel on a zero-padded copy of each plane,
 * sgemm + col2im for the transpose, and the reference loops they are tested
 * against. */
#include "kernels_conv.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <cblas.h>

/* Floats in one im2col (or col2im) tile: a few output rows of columns, sized
 * so the tile stays in L2 while sgemm reads it. */
#define COL_TILE_FLOATS (128 * 1024)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- float vectors as wide as the ISA: AVX-512, AVX2+FMA, or generic ---- */

#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
typedef __m512 vf;
static inline vf vld(const float *p) { return _mm512_loadu_ps(p); }
static inline void vst(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vsplat(float a) { return _mm512_set1_ps(a); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* p[0], p[2], ..., p[30] */
static inline vf vld_even(const float *p)
{
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(vld(p), idx, vld(p + 16));
}
/* max/min return their second operand when either is NaN: NaN passes */
static inline vf vclamp(vf v, vf lo, vf hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, v)); }
/* the first n < VL lanes; the others read as 0, are not written */
static inline vf vld_n(const float *p, int64_t n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
static inline void vst_n(float *p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 8
typedef __m256 vf;
static inline vf vld(const float *p) { return _mm256_loadu_ps(p); }
static inline void vst(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vsplat(float a) { return _mm256_set1_ps(a); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vld_even(const float *p)
{
    __m256 t = _mm256_shuffle_ps(vld(p), vld(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline vf vclamp(vf v, vf lo, vf hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }
static inline __m256i vmask_n(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vf vld_n(const float *p, int64_t n) { return _mm256_maskload_ps(p, vmask_n(n)); }
static inline void vst_n(float *p, vf v, int64_t n) { _mm256_maskstore_ps(p, vmask_n(n), v); }
#else
#define VL 4
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));
static inline vf vld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vst(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vsplat(float a) { return (vf){a, a, a, a}; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vld_even(const float *p) { return (vf){p[0], p[2], p[4], p[6]}; }
static inline vf vld_n(const float *p, int64_t n)
{
    float t[VL] = {0};
    memcpy(t, p, (size_t)n * sizeof *p);
    return vld(t);
}
static inline void vst_n(float *p, vf v, int64_t n)
{
    float t[VL];
    vst(t, v);
    memcpy(p, t, (size_t)n * sizeof *p);
}
static inline vf vclamp(vf v, vf lo, vf hi)
{
    vi m = v < lo;
    v = (vf)((m & (vi)lo) | (~m & (vi)v));
    m = v > hi;
    return (vf)((m & (vi)hi) | (~m & (vi)v));
}
#endif

/* p[0], p[s], ..., p[(VL-1)*s] */
static inline vf vld_strided(const float *p, int64_t s)
{
    float t[VL];
    for (int i = 0; i < VL; i++)
        t[i] = p[i * s];
    return vld(t);
}

/* d[0..n) = s[0..n) and d[0..n) = 0, inline for the short rows of im2col */
static inline void copy_f(float *restrict d, const float *restrict s, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        vst(d + i, vld(s + i));
    if (i < n)
        vst_n(d + i, vld_n(s + i, n - i), n - i);
}

static inline void zero_f(float *d, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        vst(d + i, vsplat(0));
    if (i < n)
        vst_n(d + i, vsplat(0), n - i);
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static int has_clamp(float lo, float hi) { return lo > -INFINITY || hi < INFINITY; }

/* ---- sgemm ---- */

int qd_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return QD_OK;
    if (k <= 0) { /* C = beta * C */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return QD_OK;
    }
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return QD_EFAIL;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return QD_OK;
}

void qd_sgemm_ref(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb,
                  float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                       (tb ? b[j * ldb + p] : b[p * ldb + j]);
            float *o = &c[i * ldc + j];
            *o = (float)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *o));
        }
}

/* ---- shared helpers ---- */

/* Positions o in [0, on) whose source o*s + off lies in [0, in): [*lo, *hi). */
static void valid_range(int64_t on, int64_t in, int64_t s, int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = in - off <= 0 ? 0 : (in - off + s - 1) / s;
    *lo = min64(a, on);
    *hi = max64(*lo, min64(b, on));
}

/* y rows (rows, cols), row stride ld: y = clamp(y); nothing without a clamp */
static void clamp_rows(float *y, int64_t rows, int64_t cols, int64_t ld, float lo, float hi)
{
    if (!has_clamp(lo, hi))
        return;
    vf vlo = vsplat(lo), vhi = vsplat(hi);
    for (int64_t r = 0; r < rows; r++) {
        float *p = y + r * ld;
        int64_t i = 0;
        for (; i + VL <= cols; i += VL)
            vst(p + i, vclamp(vld(p + i), vlo, vhi));
        for (; i < cols; i++)
            p[i] = clampf(p[i], lo, hi);
    }
}

/* y rows (rows, cols), row stride ld, = b[r] (0 when b is NULL) */
static void fill_rows(float *y, int64_t rows, int64_t cols, int64_t ld, const float *b)
{
    for (int64_t r = 0; r < rows; r++) {
        float *p = y + r * ld;
        vf vb = vsplat(b ? b[r] : 0.0f);
        int64_t i = 0;
        for (; i + VL <= cols; i += VL)
            vst(p + i, vb);
        for (; i < cols; i++)
            p[i] = b ? b[r] : 0.0f;
    }
}

/* d[o] = src[o*s] for o in [0, n) */
static void copy_strided(float *d, const float *src, int64_t n, int64_t s)
{
    int64_t o = 0;
    if (s == 2) /* vld_even reads src[2o .. 2o+2VL-1]: stay within src[2(n-1)] */
        for (; o + VL < n; o += VL)
            vst(d + o, vld_even(src + 2 * o));
    for (; o < n; o++)
        d[o] = src[o * s];
}

/* ---- reference convolution ---- */

void qd_conv_ref(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                 float *y)
{
    int64_t cig = s->ci / s->group, cog = s->co / s->group;
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t oc = 0; oc < s->co; oc++)
            for (int64_t oy = 0; oy < s->oh; oy++)
                for (int64_t ox = 0; ox < s->ow; ox++) {
                    int64_t g = oc / cog;
                    double acc = b ? b[oc] : 0.0;
                    for (int64_t c = 0; c < cig; c++)
                        for (int64_t ky = 0; ky < s->kh; ky++)
                            for (int64_t kx = 0; kx < s->kw; kx++) {
                                int64_t iy = oy * s->sh - s->pt + ky * s->dh;
                                int64_t ix = ox * s->sw - s->pl + kx * s->dw;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                acc += (double)x[((n * s->ci + g * cig + c) * s->h + iy) * s->w + ix] *
                                       w[((oc * cig + c) * s->kh + ky) * s->kw + kx];
                            }
                    y[((n * s->co + oc) * s->oh + oy) * s->ow + ox] = clampf((float)acc, s->lo, s->hi);
                }
}

/* ---- im2col + sgemm ---- */

/* One im2col row (tap c, ky, kx) for output rows [oy0, oy1): d (rows, ow)
 * from the input plane xc (h, w); off is the tap's column offset, [lo, hi)
 * the outputs whose column is inside the plane. */
static void im2col_row(const qd_conv_shape *s, const float *xc, int64_t ky, int64_t off, int64_t lo,
                       int64_t hi, int64_t oy0, int64_t oy1, float *d)
{
    int64_t ow = s->ow;
    for (int64_t oy = oy0; oy < oy1; oy++, d += ow) {
        int64_t iy = oy * s->sh - s->pt + ky * s->dh;
        if (iy < 0 || iy >= s->h) {
            zero_f(d, ow);
            continue;
        }
        const float *src = xc + iy * s->w;
        zero_f(d, lo);
        if (s->sw == 1)
            copy_f(d + lo, src + lo + off, hi - lo);
        else
            copy_strided(d + lo, src + lo * s->sw + off, hi - lo, s->sw);
        zero_f(d + hi, ow - hi);
    }
}

/* The same when strides are 1 and ow == w: the rows inside the plane are one
 * run of the source, copied at once; the columns outside are zeroed after. */
static void im2col_row_s1(const qd_conv_shape *s, const float *xc, int64_t ky, int64_t off, int64_t lo,
                          int64_t hi, int64_t oy0, int64_t oy1, float *d)
{
    int64_t w = s->w, hw = s->h * w, dy = ky * s->dh - s->pt; /* iy = oy + dy */
    int64_t ya = min64(max64(-dy, oy0), oy1), yb = max64(ya, min64(s->h - dy, oy1));
    zero_f(d, (ya - oy0) * w);
    zero_f(d + (yb - oy0) * w, (oy1 - yb) * w);
    float *dr = d + (ya - oy0) * w;
    int64_t start = (ya + dy) * w + off, n = (yb - ya) * w;
    int64_t a = min64(n, max64(0, -start)), b = max64(a, min64(n, hw - start));
    zero_f(dr, a);
    copy_f(dr + a, xc + start + a, b - a);
    zero_f(dr + b, n - b);
    for (int64_t r = 0; r < yb - ya; r++) {
        for (int64_t i = 0; i < lo; i++)
            dr[r * w + i] = 0;
        for (int64_t i = hi; i < w; i++)
            dr[r * w + i] = 0;
    }
}

/* col (cig*kh*kw, (oy1-oy0)*ow), row stride ld, from x (cig, h, w) for
 * output rows [oy0, oy1) */
static void im2col(const qd_conv_shape *s, int64_t cig, const float *x, int64_t oy0, int64_t oy1,
                   float *col, int64_t ld)
{
    int run = s->sh == 1 && s->sw == 1 && s->ow == s->w;
    for (int64_t c = 0; c < cig; c++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++) {
                float *row = col + ((c * s->kh + ky) * s->kw + kx) * ld;
                const float *xc = x + c * s->h * s->w;
                int64_t off = kx * s->dw - s->pl, lo, hi;
                valid_range(s->ow, s->w, s->sw, off, &lo, &hi);
                (run ? im2col_row_s1 : im2col_row)(s, xc, ky, off, lo, hi, oy0, oy1, row);
            }
}

/* y (rows, cols), row stride ldy, = clamp(t (rows, cols), row stride ldt, + b[r]) */
static void store_rows(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t rows, int64_t cols,
                       const float *b, float lo, float hi)
{
    int act = has_clamp(lo, hi);
    vf vlo = vsplat(lo), vhi = vsplat(hi);
    for (int64_t r = 0; r < rows; r++, y += ldy, t += ldt) {
        vf vb = vsplat(b ? b[r] : 0.0f);
        int64_t i = 0;
        for (; i + VL <= cols; i += VL) {
            vf v = vadd(vld(t + i), vb);
            vst(y + i, act ? vclamp(v, vlo, vhi) : v);
        }
        if (i < cols) {
            vf v = vadd(vld_n(t + i, cols - i), vb);
            vst_n(y + i, act ? vclamp(v, vlo, vhi) : v, cols - i);
        }
    }
}

/* Work items are (image block, group, row tile): a tile is a few output rows
 * of one image, or whole images side by side when they are small, so that
 * every sgemm has enough columns to pay for packing W. */
typedef struct gemm_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    qd_ctx *ctx;
    int64_t rows, ntiles; /* output rows per tile, tiles per image */
    int64_t nimg;         /* images per block (ntiles == 1 when > 1) */
    int direct;           /* 1x1 stride-1 unpadded: sgemm reads x itself */
    atomic_int fail;
} gemm_job;

/* Rows [oy0, oy1) of one image and group:
 * W_g (cog, K) @ col (K, cols) -> y tile (cog, cols), row stride oh*ow */
static int gemm_rows(gemm_job *j, int64_t n, int64_t g, int64_t oy0, int64_t oy1, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t G = s->group, cig = s->ci / G, cog = s->co / G, K = cig * s->kh * s->kw;
    int64_t cols = (oy1 - oy0) * s->ow, ohw = s->oh * s->ow;
    const float *x = j->x + (n * s->ci + g * cig) * s->h * s->w;
    float *y = j->y + (n * s->co + g * cog) * ohw + oy0 * s->ow;
    const float *bm = x + oy0 * s->ow, *bias = j->b ? j->b + g * cog : NULL;
    int64_t ldb = s->h * s->w;
    if (!j->direct) {
        float *col = qd_ctx_scratch(j->ctx, tid, (size_t)max64(K * cols, 16) * sizeof(float));
        if (!col)
            return QD_EFAIL;
        im2col(s, cig, x, oy0, oy1, col, cols);
        bm = col;
        ldb = cols;
    }
    if (bias) /* sgemm adds onto the bias: no zeroing pass, no bias pass */
        fill_rows(y, cog, cols, ohw, bias);
    int rc = qd_sgemm(0, 0, cog, cols, K, 1.0f, j->w + g * cog * K, K, bm, ldb, bias ? 1.0f : 0.0f, y, ohw);
    clamp_rows(y, cog, cols, ohw, s->lo, s->hi);
    return rc;
}

/* Whole images [n0, n1) of one group side by side:
 * W_g (cog, K) @ col (K, ni*ohw) -> t (cog, ni*ohw), then t to each image. */
static int gemm_images(gemm_job *j, int64_t n0, int64_t n1, int64_t g, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t G = s->group, cig = s->ci / G, cog = s->co / G, K = cig * s->kh * s->kw;
    int64_t ohw = s->oh * s->ow, cols = (n1 - n0) * ohw;
    float *col = qd_ctx_scratch(j->ctx, tid, (size_t)((K + cog) * cols) * sizeof(float));
    if (!col)
        return QD_EFAIL;
    float *t = col + K * cols;
    for (int64_t n = n0; n < n1; n++)
        im2col(s, cig, j->x + (n * s->ci + g * cig) * s->h * s->w, 0, s->oh, col + (n - n0) * ohw, cols);
    int rc = qd_sgemm(0, 0, cog, cols, K, 1.0f, j->w + g * cog * K, K, col, cols, 0.0f, t, cols);
    for (int64_t n = n0; n < n1; n++)
        store_rows(j->y + (n * s->co + g * cog) * ohw, ohw, t + (n - n0) * ohw, cols, cog, ohw,
                   j->b ? j->b + g * cog : NULL, s->lo, s->hi);
    return rc;
}

static void gemm_items(void *arg, int64_t begin, int64_t end, int tid)
{
    gemm_job *j = arg;
    const qd_conv_shape *s = j->s;
    for (int64_t i = begin; i < end; i++) {
        int64_t t = i % j->ntiles, g = i / j->ntiles % s->group, blk = i / j->ntiles / s->group;
        int64_t n0 = blk * j->nimg, n1 = min64(s->n, n0 + j->nimg);
        int rc = n1 - n0 > 1 ? gemm_images(j, n0, n1, g, tid)
                             : gemm_rows(j, n0, g, t * j->rows, min64(s->oh, (t + 1) * j->rows), tid);
        if (rc)
            atomic_store(&j->fail, 1);
    }
}

/* Columns per sgemm: enough to amortize packing W, few enough that the
 * im2col tile stays near L2 when K is small. */
#define GEMM_MIN_COLS 256
#define GEMM_MAX_COLS 2048

/* Enough items for every thread: each worker runs single-threaded sgemms;
 * else one item at a time with BLAS threads. */
static int conv_gemm(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                     float *y, qd_ctx *ctx, int direct)
{
    int64_t K = s->ci / s->group * s->kh * s->kw, ohw = s->oh * s->ow, nt = ctx->nthreads;
    int64_t want = min64(GEMM_MAX_COLS, max64(GEMM_MIN_COLS, COL_TILE_FLOATS / max64(1, K)));
    gemm_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx, .direct = direct, .nimg = 1};
    j.rows = min64(s->oh, max64(1, want / s->ow));
    j.ntiles = (s->oh + j.rows - 1) / j.rows;
    if (j.ntiles == 1 && ohw < want) /* small images: several per sgemm, yet a block per thread */
        j.nimg = max64(1, min64(want / ohw, s->n * s->group / nt));
    atomic_init(&j.fail, 0);
    int64_t items = (s->n + j.nimg - 1) / j.nimg * s->group * j.ntiles;
    if (nt > 1 && items >= nt) {
        qd_blas_set_threads(1);
        qd_ctx_for(ctx, items, 1, gemm_items, &j);
    } else {
        qd_blas_set_threads((int)nt);
        gemm_items(&j, 0, items, 0);
    }
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

/* ---- depthwise: one input channel per group, direct ---- */

typedef struct dw_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    qd_ctx *ctx;
    int64_t ph, pw; /* padded plane */
    atomic_int fail;
} dw_job;

/* pad (ph, pw) = x (h, w) shifted by (pt, pl), zeros around */
static void dw_pad_plane(const qd_conv_shape *s, const float *x, float *pad, int64_t ph, int64_t pw)
{
    int64_t lead = min64(s->pl, pw), ncopy = max64(0, min64(s->w, pw - lead));
    for (int64_t r = 0; r < ph; r++) {
        float *d = pad + r * pw;
        int64_t iy = r - s->pt;
        if (iy < 0 || iy >= s->h) {
            zero_f(d, pw);
            continue;
        }
        zero_f(d, lead);
        copy_f(d + lead, x + iy * s->w, ncopy);
        zero_f(d + lead + ncopy, pw - lead - ncopy);
    }
}

/* VL inputs at stride sw from p (1 and 2 are the fast cases) */
static inline vf dw_load(const float *p, int64_t sw)
{
    return sw == 1 ? vld(p) : sw == 2 ? vld_even(p) : vld_strided(p, sw);
}

/* Output blocks are VL wide; the last one overlaps the previous one (the
 * outputs are recomputed, not accumulated), and a plane narrower than VL is
 * computed whole into a temporary. */
static inline int64_t dw_block(int64_t ox, int64_t ow) { return ox + VL <= ow || ow < VL ? ox : ow - VL; }

static inline void dw_store(float *yr, int64_t o, int64_t ow, vf acc)
{
    if (ow < VL)
        vst_n(yr, acc, ow);
    else
        vst(yr + o, acc);
}

/* y (oh, ow) = clamp(bias + 3x3 taps of wk over pad), weights in registers,
 * one FMA chain per kernel row; sw is a constant after inlining. */
static inline __attribute__((always_inline)) void
dw3x3(const qd_conv_shape *s, const float *pad, int64_t pw, const float *wk, float bias, float *y,
      int64_t sw)
{
    int64_t ow = s->ow, dy = s->dh * pw, dx = s->dw;
    vf w0 = vsplat(wk[0]), w1 = vsplat(wk[1]), w2 = vsplat(wk[2]), w3 = vsplat(wk[3]);
    vf w4 = vsplat(wk[4]), w5 = vsplat(wk[5]), w6 = vsplat(wk[6]), w7 = vsplat(wk[7]);
    vf w8 = vsplat(wk[8]), vb = vsplat(bias), vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    int act = has_clamp(s->lo, s->hi);
    for (int64_t oy = 0; oy < s->oh; oy++) {
        const float *r0 = pad + oy * s->sh * pw, *r1 = r0 + dy, *r2 = r1 + dy;
        float *yr = y + oy * ow;
        for (int64_t ox = 0; ox < ow; ox += VL) {
            int64_t o = dw_block(ox, ow), i = o * sw;
            vf a = vfma(w0, dw_load(r0 + i, sw), vb);
            vf b = vmul(w3, dw_load(r1 + i, sw));
            vf c = vmul(w6, dw_load(r2 + i, sw));
            a = vfma(w1, dw_load(r0 + i + dx, sw), a);
            b = vfma(w4, dw_load(r1 + i + dx, sw), b);
            c = vfma(w7, dw_load(r2 + i + dx, sw), c);
            a = vfma(w2, dw_load(r0 + i + 2 * dx, sw), a);
            b = vfma(w5, dw_load(r1 + i + 2 * dx, sw), b);
            c = vfma(w8, dw_load(r2 + i + 2 * dx, sw), c);
            a = vadd(a, vadd(b, c));
            dw_store(yr, o, ow, act ? vclamp(a, vlo, vhi) : a);
        }
    }
}

/* Any kernel: the same with the taps in loops. */
static void dw_any(const qd_conv_shape *s, const float *pad, int64_t pw, const float *wk, float bias,
                   float *y)
{
    int64_t ow = s->ow, sw = s->sw;
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    int act = has_clamp(s->lo, s->hi);
    for (int64_t oy = 0; oy < s->oh; oy++) {
        const float *r0 = pad + oy * s->sh * pw;
        float *yr = y + oy * ow;
        for (int64_t ox = 0; ox < ow; ox += VL) {
            int64_t o = dw_block(ox, ow);
            vf acc = vsplat(bias);
            for (int64_t ky = 0; ky < s->kh; ky++) {
                const float *rp = r0 + ky * s->dh * pw + o * sw;
                for (int64_t kx = 0; kx < s->kw; kx++)
                    acc = vfma(vsplat(wk[ky * s->kw + kx]), dw_load(rp + kx * s->dw, sw), acc);
            }
            dw_store(yr, o, ow, act ? vclamp(acc, vlo, vhi) : acc);
        }
    }
}

static void dw_plane(const qd_conv_shape *s, const float *pad, int64_t pw, const float *wk,
                     float bias, float *y)
{
    if (s->kh == 3 && s->kw == 3 && s->sw == 1)
        dw3x3(s, pad, pw, wk, bias, y, 1);
    else if (s->kh == 3 && s->kw == 3 && s->sw == 2)
        dw3x3(s, pad, pw, wk, bias, y, 2);
    else
        dw_any(s, pad, pw, wk, bias, y);
}

/* items are (image, input channel); each feeds co/ci output planes */
static void dw_items(void *arg, int64_t begin, int64_t end, int tid)
{
    dw_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t mult = s->co / s->ci, hw = s->h * s->w, ohw = s->oh * s->ow, k2 = s->kh * s->kw;
    float *pad = qd_ctx_scratch(j->ctx, tid, (size_t)(j->ph * j->pw) * sizeof(float));
    if (!pad) {
        atomic_store(&j->fail, 1);
        return;
    }
    for (int64_t i = begin; i < end; i++) {
        int64_t n = i / s->ci, c = i % s->ci;
        dw_pad_plane(s, j->x + i * hw, pad, j->ph, j->pw);
        for (int64_t m = 0; m < mult; m++) {
            int64_t oc = c * mult + m;
            dw_plane(s, pad, j->pw, j->w + oc * k2, j->b ? j->b[oc] : 0.0f,
                     j->y + (n * s->co + oc) * ohw);
        }
    }
}

static int conv_depthwise(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                          float *y, qd_ctx *ctx)
{
    dw_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx};
    int64_t owv = max64(s->ow, VL);
    j.ph = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    j.pw = (owv - 1) * s->sw + (s->kw - 1) * s->dw + 1 + 2 * VL;
    atomic_init(&j.fail, 0);
    qd_ctx_for(ctx, s->n * s->ci, 1, dw_items, &j);
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

/* ---- dispatch ---- */

qd_conv_algo qd_conv_pick(const qd_conv_shape *s)
{
    if (s->ci == s->group && s->ci > 0)
        return QD_CONV_DEPTHWISE;
    if (s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 && s->pl == 0 &&
        s->oh == s->h && s->ow == s->w)
        return QD_CONV_GEMM1X1;
    return QD_CONV_IM2COL;
}

int qd_conv(const qd_conv_shape *s, const float *x, const float *w, const float *b,
            float *y, qd_ctx *ctx)
{
    if (s->n <= 0 || s->co <= 0 || s->oh <= 0 || s->ow <= 0)
        return QD_OK;
    switch (qd_conv_pick(s)) {
    case QD_CONV_DEPTHWISE: return conv_depthwise(s, x, w, b, y, ctx);
    case QD_CONV_GEMM1X1: return conv_gemm(s, x, w, b, y, ctx, 1);
    default: return conv_gemm(s, x, w, b, y, ctx, 0);
    }
}

/* ---- transposed convolution ---- */

void qd_convt_ref(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                  float *y)
{
    int64_t cig = s->ci / s->group, cog = s->co / s->group, ohw = s->oh * s->ow;
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t oc = 0; oc < s->co; oc++)
            for (int64_t i = 0; i < ohw; i++)
                y[(n * s->co + oc) * ohw + i] = b ? b[oc] : 0.0f;
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t ic = 0; ic < s->ci; ic++)
            for (int64_t iy = 0; iy < s->h; iy++)
                for (int64_t ix = 0; ix < s->w; ix++) {
                    float xv = x[((n * s->ci + ic) * s->h + iy) * s->w + ix];
                    int64_t g = ic / cig;
                    for (int64_t c = 0; c < cog; c++)
                        for (int64_t ky = 0; ky < s->kh; ky++)
                            for (int64_t kx = 0; kx < s->kw; kx++) {
                                int64_t oy = iy * s->sh - s->pt + ky * s->dh;
                                int64_t ox = ix * s->sw - s->pl + kx * s->dw;
                                if (oy < 0 || oy >= s->oh || ox < 0 || ox >= s->ow)
                                    continue;
                                y[((n * s->co + g * cog + c) * s->oh + oy) * s->ow + ox] +=
                                    xv * w[((ic * cog + c) * s->kh + ky) * s->kw + kx];
                            }
                }
    for (int64_t i = 0; i < s->n * s->co * ohw; i++)
        y[i] = clampf(y[i], s->lo, s->hi);
}

/* y (cog, oh, ow) += col (cog*kh*kw, (iy1-iy0)*w) scattered from input rows [iy0, iy1) */
static void col2im(const qd_conv_shape *s, int64_t cog, const float *col, int64_t iy0, int64_t iy1,
                   float *y)
{
    int64_t cols = (iy1 - iy0) * s->w;
    for (int64_t c = 0; c < cog; c++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++) {
                const float *row = col + ((c * s->kh + ky) * s->kw + kx) * cols;
                int64_t off = kx * s->dw - s->pl, lo, hi;
                valid_range(s->w, s->ow, s->sw, off, &lo, &hi);
                for (int64_t iy = iy0; iy < iy1; iy++) {
                    int64_t oy = iy * s->sh - s->pt + ky * s->dh;
                    if (oy < 0 || oy >= s->oh)
                        continue;
                    float *yr = y + (c * s->oh + oy) * s->ow + off;
                    const float *r = row + (iy - iy0) * s->w;
                    int64_t ix = lo;
                    if (s->sw == 1)
                        for (; ix + VL <= hi; ix += VL)
                            vst(yr + ix, vadd(vld(yr + ix), vld(r + ix)));
                    for (; ix < hi; ix++)
                        yr[ix * s->sw] += r[ix];
                }
            }
}

typedef struct convt_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    qd_ctx *ctx;
    int64_t rows; /* input rows per tile */
    atomic_int fail;
} convt_job;

/* One (image, group), by tiles of input rows:
 * W_g^T (cog*kh*kw, cig) @ x rows (cig, rows*w) -> col, then col2im into y. */
static void convt_item(convt_job *j, int64_t item, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t G = s->group, n = item / G, g = item % G;
    int64_t cig = s->ci / G, cog = s->co / G, k2 = cog * s->kh * s->kw, hw = s->h * s->w;
    const float *x = j->x + (n * s->ci + g * cig) * hw, *w = j->w + g * cig * k2;
    float *y = j->y + (n * s->co + g * cog) * s->oh * s->ow;
    fill_rows(y, cog, s->oh * s->ow, s->oh * s->ow, j->b ? j->b + g * cog : NULL);
    for (int64_t iy0 = 0; iy0 < s->h; iy0 += j->rows) {
        int64_t iy1 = min64(s->h, iy0 + j->rows), cols = (iy1 - iy0) * s->w;
        float *col = qd_ctx_scratch(j->ctx, tid, (size_t)max64(k2 * cols, 16) * sizeof(float));
        if (!col || qd_sgemm(1, 0, k2, cols, cig, 1.0f, w, k2, x + iy0 * s->w, hw, 0.0f, col, cols)) {
            atomic_store(&j->fail, 1);
            return;
        }
        col2im(s, cog, col, iy0, iy1, y);
    }
    clamp_rows(y, cog, s->oh * s->ow, s->oh * s->ow, s->lo, s->hi);
}

static void convt_items(void *arg, int64_t begin, int64_t end, int tid)
{
    for (int64_t i = begin; i < end; i++)
        convt_item(arg, i, tid);
}

int qd_convt(const qd_conv_shape *s, const float *x, const float *w, const float *b,
             float *y, qd_ctx *ctx)
{
    if (s->n <= 0 || s->co <= 0 || s->oh <= 0 || s->ow <= 0)
        return QD_OK;
    int64_t k2 = s->co / s->group * s->kh * s->kw;
    convt_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx};
    j.rows = max64(1, COL_TILE_FLOATS / max64(1, k2 * s->w));
    atomic_init(&j.fail, 0);
    int64_t items = s->n * s->group;
    if (ctx->nthreads > 1 && items >= ctx->nthreads) {
        qd_blas_set_threads(1);
        qd_ctx_for(ctx, items, 1, convt_items, &j);
    } else {
        qd_blas_set_threads(ctx->nthreads);
        convt_items(&j, 0, items, 0);
    }
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}
