/* kernels_conv.c - convolution kernels (see kernels_conv.h): im2col tiles +
 * sgemm, Winograd F(2x2, 3x3) + sgemm, a direct depthwise kernel (by VL
 * channels on small planes), the live taps of a single output pixel or of a
 * small plane as one matrix + sgemm, sgemm + col2im for the transpose, and
 * the reference loops they are tested against. */
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
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
/* lo = a0 b0 a1 b1 ... a7 b7, hi = a8 b8 ... a15 b15 */
static inline void vzip(vf a, vf b, vf *lo, vf *hi)
{
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    *lo = _mm512_permutex2var_ps(a, il, b);
    *hi = _mm512_permutex2var_ps(a, ih, b);
}
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* a0 a2 ... a14 b0 b2 ... b14 */
static inline vf veven(vf a, vf b)
{
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, idx, b);
}
/* p[0], p[2], ..., p[30] */
static inline vf vld_even(const float *p) { return veven(vld(p), vld(p + 16)); }
/* lanes l in [lo, hi) of p + a (0 <= lo <= hi <= VL), the others 0; only
 * those lanes are read, so p + a may point before p's array */
static inline vf vld_lanes(const float *p, int64_t a, int64_t lo, int64_t hi)
{
    __mmask16 m = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
    return _mm512_maskz_loadu_ps(m, (const float *)((uintptr_t)p + (uintptr_t)(a * (int64_t)sizeof(float))));
}
/* max/min return their second operand when either is NaN: NaN passes */
static inline vf vclamp(vf v, vf lo, vf hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, v)); }
/* the first n < VL lanes; the others read as 0, are not written */
static inline vf vld_n(const float *p, int64_t n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
static inline void vst_n(float *p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
/* p[idx[0]], ..., p[idx[VL-1]] */
static inline vf vgather(const float *p, const int32_t *idx) { return _mm512_i32gather_ps(_mm512_loadu_si512(idx), p, 4); }
/* the same, 0 where idx < 0 */
static inline vf vgather_m(const float *p, const int32_t *idx)
{
    __m512i i = _mm512_loadu_si512(idx);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), _mm512_cmpge_epi32_mask(i, _mm512_setzero_si512()), i, p, 4);
}
/* p[idx[l]] = v[l] where idx[l] >= 0 */
static inline void vscatter_m(float *p, const int32_t *idx, vf v)
{
    __m512i i = _mm512_loadu_si512(idx);
    _mm512_mask_i32scatter_ps(p, _mm512_cmpge_epi32_mask(i, _mm512_setzero_si512()), i, v, 4);
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 8
typedef __m256 vf;
static inline vf vld(const float *p) { return _mm256_loadu_ps(p); }
static inline void vst(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vsplat(float a) { return _mm256_set1_ps(a); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline void vzip(vf a, vf b, vf *lo, vf *hi)
{
    __m256 l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b); /* a0 b0 a1 b1 | a4 b4 a5 b5 */
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf veven(vf a, vf b)
{
    __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline vf vld_even(const float *p) { return veven(vld(p), vld(p + 8)); }
static inline vf vld_lanes(const float *p, int64_t a, int64_t lo, int64_t hi)
{
    __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), l),
                                    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), l));
    return _mm256_maskload_ps((const float *)((uintptr_t)p + (uintptr_t)(a * (int64_t)sizeof(float))), m);
}
static inline vf vclamp(vf v, vf lo, vf hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }
static inline __m256i vmask_n(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vf vld_n(const float *p, int64_t n) { return _mm256_maskload_ps(p, vmask_n(n)); }
static inline void vst_n(float *p, vf v, int64_t n) { _mm256_maskstore_ps(p, vmask_n(n), v); }
static inline vf vgather(const float *p, const int32_t *idx)
{
    return _mm256_i32gather_ps(p, _mm256_loadu_si256((const __m256i *)idx), 4);
}
static inline vf vgather_m(const float *p, const int32_t *idx)
{
    __m256i i = _mm256_loadu_si256((const __m256i *)idx);
    __m256 m = _mm256_castsi256_ps(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(-1)));
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, i, m, 4);
}
static inline void vscatter_m(float *p, const int32_t *idx, vf v)
{
    float t[VL];
    vst(t, v);
    for (int l = 0; l < VL; l++)
        if (idx[l] >= 0)
            p[idx[l]] = t[l];
}
#else
#define VL 4
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));
static inline vf vld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vst(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vsplat(float a) { return (vf){a, a, a, a}; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vsub(vf a, vf b) { return a - b; }
static inline void vzip(vf a, vf b, vf *lo, vf *hi)
{
    *lo = (vf){a[0], b[0], a[1], b[1]};
    *hi = (vf){a[2], b[2], a[3], b[3]};
}
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline vf veven(vf a, vf b) { return (vf){a[0], a[2], b[0], b[2]}; }
static inline vf vld_even(const float *p) { return (vf){p[0], p[2], p[4], p[6]}; }
static inline vf vld_lanes(const float *p, int64_t a, int64_t lo, int64_t hi)
{
    float t[VL] = {0};
    for (int64_t l = lo; l < hi; l++)
        t[l] = p[a + l];
    return vld(t);
}
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
static inline vf vgather(const float *p, const int32_t *idx) { return (vf){p[idx[0]], p[idx[1]], p[idx[2]], p[idx[3]]}; }
static inline vf vgather_m(const float *p, const int32_t *idx)
{
    float t[VL];
    for (int l = 0; l < VL; l++)
        t[l] = idx[l] >= 0 ? p[idx[l]] : 0.0f;
    return vld(t);
}
static inline void vscatter_m(float *p, const int32_t *idx, vf v)
{
    float t[VL];
    vst(t, v);
    for (int l = 0; l < VL; l++)
        if (idx[l] >= 0)
            p[idx[l]] = t[l];
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

/* Output planes of up to SMALL_PLANE pixels: im2col goes through a table of
 * source offsets instead of row by row (the calls cost more than the short
 * rows they copy), and 1x1 convs with a small K gather images side by side
 * too rather than go image by image (gemm_smallk's blocks are 2 VL wide). */
#ifndef SMALL_PLANE
#define SMALL_PLANE 16
#endif
/* gemm_images: for planes over VL/2 pixels, gathering for gemm_smallk pays
 * from this many output channels (measured on 4x4 planes) */
#define SMALLK_GATHER_ROWS 32

/* off (kh*kw, oh*ow) and VL more -1s: where tap (ky, kx) of output pixel p
 * reads in an input plane, -1 for padding */
static void small_taps(const qd_conv_shape *s, int32_t *off)
{
    for (int64_t ky = 0; ky < s->kh; ky++)
        for (int64_t kx = 0; kx < s->kw; kx++)
            for (int64_t oy = 0; oy < s->oh; oy++)
                for (int64_t ox = 0; ox < s->ow; ox++) {
                    int64_t iy = oy * s->sh - s->pt + ky * s->dh, ix = ox * s->sw - s->pl + kx * s->dw;
                    *off++ = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w ? (int32_t)(iy * s->w + ix) : -1;
                }
    for (int l = 0; l < VL; l++)
        *off++ = -1;
}

/* col (cig*kh*kw, oh*ow), row stride ld, from x (cig, h, w) through off;
 * a 1x1 stride-1 unpadded conv copies the planes as they are */
static void im2col_small(const qd_conv_shape *s, int64_t cig, const int32_t *off, int direct, const float *x,
                         float *col, int64_t ld)
{
    int64_t k2 = s->kh * s->kw, ohw = s->oh * s->ow, hw = s->h * s->w;
    for (int64_t c = 0; c < cig; c++, x += hw)
        for (int64_t t = 0; t < k2; t++) {
            const int32_t *o = off + t * ohw;
            float *d = col + (c * k2 + t) * ld;
            if (direct) {
                copy_f(d, x, ohw);
                continue;
            }
            int64_t p = 0;
            for (; p + VL <= ohw; p += VL)
                vst(d + p, vgather_m(x, o + p));
            if (p < ohw)
                vst_n(d + p, vgather_m(x, o + p), ohw - p);
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

/* ---- 1x1 convolution with few input channels: register-blocked ----
 * For a small K, OpenBLAS spends much of the product packing and making extra
 * passes over C (zeroing for beta = 0, then our bias/clamp pass). This kernel
 * keeps 8 rows x 2 vectors of outputs in registers over all of K and writes
 * each output once, with bias and clamp. */

#ifndef SMALLK_MAX
#define SMALLK_MAX 160 /* inputs per output up to which it beats sgemm (MobileNetV2) */
#endif
#define SMALLK_TILE 512 /* columns of X kept in L2 while all rows pass over them */

/* 8 rows x (2 VL) outputs at y, ncols (<= 2 VL) of them valid. */
static inline __attribute__((always_inline)) void
smallk_block8(int64_t K, const float *w, const float *x, int64_t ldx, const float *b, float *y, int64_t ldy,
              int64_t ncols, vf vlo, vf vhi, int act)
{
    vf a0[8], a1[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
        a0[r] = a1[r] = vsplat(b ? b[r] : 0.0f);
    int64_t n0 = ncols < VL ? ncols : VL, n1 = ncols - n0;
    if (n1 == VL) {
        for (int64_t k = 0; k < K; k++) {
            vf x0 = vld(x + k * ldx), x1 = vld(x + k * ldx + VL);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                vf wv = vsplat(w[r * K + k]);
                a0[r] = vfma(wv, x0, a0[r]);
                a1[r] = vfma(wv, x1, a1[r]);
            }
        }
    } else {
        for (int64_t k = 0; k < K; k++) {
            vf x0 = n0 == VL ? vld(x + k * ldx) : vld_n(x + k * ldx, n0);
            vf x1 = n1 > 0 ? vld_n(x + k * ldx + VL, n1) : vsplat(0.0f);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                vf wv = vsplat(w[r * K + k]);
                a0[r] = vfma(wv, x0, a0[r]);
                a1[r] = vfma(wv, x1, a1[r]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) {
        vf v0 = act ? vclamp(a0[r], vlo, vhi) : a0[r], v1 = act ? vclamp(a1[r], vlo, vhi) : a1[r];
        float *yr = y + r * ldy;
        if (n1 == VL) {
            vst(yr, v0);
            vst(yr + VL, v1);
        } else {
            if (n0 == VL) vst(yr, v0); else vst_n(yr, v0, n0);
            if (n1 > 0) vst_n(yr + VL, v1, n1);
        }
    }
}

/* Y (M, n), row stride ldy, = clamp(W (M, K) @ X (K, n), row stride ldx, + b);
 * M a multiple of 8. */
static void gemm_smallk(int64_t M, int64_t n, int64_t K, const float *w, const float *x, int64_t ldx,
                        const float *b, float *y, int64_t ldy, float lo, float hi)
{
    vf vlo = vsplat(lo), vhi = vsplat(hi);
    int act = has_clamp(lo, hi);
    for (int64_t j0 = 0; j0 < n; j0 += SMALLK_TILE) {
        int64_t j1 = min64(n, j0 + SMALLK_TILE);
        for (int64_t r = 0; r < M; r += 8)
            for (int64_t j = j0; j < j1; j += 2 * VL)
                smallk_block8(K, w + r * K, x + j, ldx, b ? b + r : NULL, y + r * ldy + j, ldy, min64(2 * VL, j1 - j),
                              vlo, vhi, act);
    }
}

static int use_smallk(int64_t M, int64_t K)
{
    return K <= SMALLK_MAX && M % 8 == 0;
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
    if (j->direct && use_smallk(cog, K)) {
        gemm_smallk(cog, cols, K, j->w + g * cog * K, bm, ldb, bias, y, ohw, s->lo, s->hi);
        return QD_OK;
    }
    if (!j->direct) {
        float *col = qd_ctx_scratch(j->ctx, tid, (size_t)max64(K * cols, 16) * sizeof(float));
        if (!col)
            return QD_EFAIL;
        im2col(s, cig, x, oy0, oy1, col, cols);
        bm = col;
        ldb = cols;
    }
    int rc = qd_sgemm(0, 0, cog, cols, K, 1.0f, j->w + g * cog * K, K, bm, ldb, 0.0f, y, ohw);
    if (bias || has_clamp(s->lo, s->hi)) /* epilogue on the tile sgemm just wrote, still in cache */
        store_rows(y, ohw, y, ohw, cog, cols, bias, s->lo, s->hi);
    return rc;
}

/* Whole images [n0, n1) of one group side by side:
 * W_g (cog, K) @ col (K, ni*ohw) -> t (cog, ni*ohw), then t to each image. */
static int gemm_images(gemm_job *j, int64_t n0, int64_t n1, int64_t g, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t G = s->group, cig = s->ci / G, cog = s->co / G, K = cig * s->kh * s->kw;
    int64_t ohw = s->oh * s->ow, cols = (n1 - n0) * ohw;
    const float *wg = j->w + g * cog * K, *bias = j->b ? j->b + g * cog : NULL;
    int smallk = j->direct && use_smallk(cog, K), small = ohw <= SMALL_PLANE;
    /* smallk image by image fills ohw of 2 VL columns per block: gathered
     * unless the blocks are over a quarter full and few rows pay for it */
    if (smallk && (!small || (ohw > VL / 2 && cog < SMALLK_GATHER_ROWS))) {
        for (int64_t n = n0; n < n1; n++)
            gemm_smallk(cog, ohw, K, wg, j->x + (n * s->ci + g * cig) * s->h * s->w, ohw, bias,
                        j->y + (n * s->co + g * cog) * ohw, ohw, s->lo, s->hi);
        return QD_OK;
    }
    /* scratch: the offset table (small planes), col (K, cols), t (cog, cols) */
    size_t tab = small ? ((size_t)(s->kh * s->kw * ohw + VL) * sizeof(int32_t) + 63) & ~(size_t)63 : 0;
    char *mem = qd_ctx_scratch(j->ctx, tid, tab + (size_t)((K + cog) * cols) * sizeof(float));
    if (!mem)
        return QD_EFAIL;
    int32_t *off = (int32_t *)mem;
    float *col = (float *)(mem + tab), *t = col + K * cols;
    if (small)
        small_taps(s, off);
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = j->x + (n * s->ci + g * cig) * s->h * s->w;
        if (small)
            im2col_small(s, cig, off, j->direct, xn, col + (n - n0) * ohw, cols);
        else
            im2col(s, cig, xn, 0, s->oh, col + (n - n0) * ohw, cols);
    }
    int rc = QD_OK;
    if (smallk) /* bias and clamp in the kernel; t is copied out as it is */
        gemm_smallk(cog, cols, K, wg, col, cols, bias, t, cols, s->lo, s->hi);
    else
        rc = qd_sgemm(0, 0, cog, cols, K, 1.0f, wg, K, col, cols, 0.0f, t, cols);
    for (int64_t n = n0; n < n1; n++)
        store_rows(j->y + (n * s->co + g * cog) * ohw, ohw, t + (n - n0) * ohw, cols, cog, ohw,
                   smallk ? NULL : bias, smallk ? -INFINITY : s->lo, smallk ? INFINITY : s->hi);
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

/* Output rows read the input rows in place (a zero row stands in above and
 * below the plane); an output block whose inputs cross the left or right
 * edge loads only the lanes inside the row (masked loads), zeros elsewhere. */
typedef struct dw_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    qd_ctx *ctx;
    int64_t span; /* inputs of one block along a row, see dw_span */
    atomic_int fail;
} dw_job;

/* Inputs a VL-wide output block reads along a row, from its first: VL loads
 * at stride sw (the stride-2 load reads 2*VL) for each of kw taps. */
static int64_t dw_span(const qd_conv_shape *s)
{
    return (s->sw == 2 ? 2 * VL - 1 : (VL - 1) * s->sw) + (s->kw - 1) * s->dw + 1;
}

/* VL inputs at stride sw from p (1 and 2 are the fast cases) */
static inline vf dw_load(const float *p, int64_t sw)
{
    return sw == 1 ? vld(p) : sw == 2 ? vld_even(p) : vld_strided(p, sw);
}

/* Output blocks are VL wide; the last one overlaps the previous one (the
 * outputs are recomputed, not accumulated), and a plane narrower than VL is
 * computed whole and stored in part. */
static inline int64_t dw_block(int64_t ox, int64_t ow) { return ox + VL <= ow || ow < VL ? ox : ow - VL; }

static inline void dw_store(float *yr, int64_t o, int64_t ow, vf acc)
{
    if (ow < VL)
        vst_n(yr, acc, ow);
    else
        vst(yr + o, acc);
}

/* rows[ky] = input row of output row oy and tap row ky (zrow outside the plane) */
static inline void dw_rows(const qd_conv_shape *s, const float *x, const float *zrow, int64_t oy,
                           const float **rows)
{
    for (int64_t ky = 0; ky < s->kh; ky++) {
        int64_t iy = oy * s->sh - s->pt + ky * s->dh;
        rows[ky] = iy >= 0 && iy < s->h ? x + iy * s->w : zrow;
    }
}

/* VL inputs row[a], row[a + sw], ... with zeros outside [0, w) (a block at
 * the plane's left or right edge) */
static inline vf dw_load_edge(const float *row, int64_t a, int64_t w, int64_t sw)
{
    if (sw == 1)
        return vld_lanes(row, a, min64(VL, max64(0, -a)), max64(0, min64(VL, w - a)));
    if (sw == 2) {
        int64_t b = a + VL;
        return veven(vld_lanes(row, a, min64(VL, max64(0, -a)), max64(0, min64(VL, w - a))),
                     vld_lanes(row, b, min64(VL, max64(0, -b)), max64(0, min64(VL, w - b))));
    }
    float t[VL];
    for (int l = 0; l < VL; l++) {
        int64_t ix = a + l * sw;
        t[l] = ix >= 0 && ix < w ? row[ix] : 0.0f;
    }
    return vld(t);
}

/* does the block whose first input column is i read only inside the row? */
static inline int dw_inside(const qd_conv_shape *s, int64_t i, int64_t span) { return i >= 0 && i + span <= s->w; }

/* Lanes [lo, hi) of the VL loads at a, a + VL (stride 2) that lie in [0, w) */
typedef struct dw_lanes { int64_t lo0, hi0, lo1, hi1; } dw_lanes;

static inline dw_lanes dw_lanes_at(int64_t a, int64_t w)
{
    int64_t b = a + VL;
    return (dw_lanes){min64(VL, max64(0, -a)), max64(0, min64(VL, w - a)), min64(VL, max64(0, -b)),
                      max64(0, min64(VL, w - b))};
}

/* dw_load_edge for strides 1 and 2 with the lanes worked out beforehand */
static inline vf dw_load_lanes(const float *row, int64_t a, dw_lanes l, int64_t sw)
{
    if (sw == 1)
        return vld_lanes(row, a, l.lo0, l.hi0);
    return veven(vld_lanes(row, a, l.lo0, l.hi0), vld_lanes(row, a + VL, l.lo1, l.hi1));
}

/* The 9 weights of a 3x3 kernel, splat */
typedef struct dw_w9 { vf w[9]; } dw_w9;

/* One VL block of a 3x3 output row: rows[3] the input rows, i the block's
 * first input column, inside or else the lanes l0..l2 of its three taps. */
static inline __attribute__((always_inline)) vf
dw3x3_block(const float **rows, int64_t i, int inside, const dw_lanes *l, const dw_w9 *k, vf vb, int64_t dx,
            int64_t sw)
{
    vf a, b, c;
    if (inside) {
        const float *r0 = rows[0] + i, *r1 = rows[1] + i, *r2 = rows[2] + i;
        a = vfma(k->w[0], dw_load(r0, sw), vb);
        b = vmul(k->w[3], dw_load(r1, sw));
        c = vmul(k->w[6], dw_load(r2, sw));
        a = vfma(k->w[1], dw_load(r0 + dx, sw), a);
        b = vfma(k->w[4], dw_load(r1 + dx, sw), b);
        c = vfma(k->w[7], dw_load(r2 + dx, sw), c);
        a = vfma(k->w[2], dw_load(r0 + 2 * dx, sw), a);
        b = vfma(k->w[5], dw_load(r1 + 2 * dx, sw), b);
        c = vfma(k->w[8], dw_load(r2 + 2 * dx, sw), c);
    } else {
        a = vfma(k->w[0], dw_load_lanes(rows[0], i, l[0], sw), vb);
        b = vmul(k->w[3], dw_load_lanes(rows[1], i, l[0], sw));
        c = vmul(k->w[6], dw_load_lanes(rows[2], i, l[0], sw));
        a = vfma(k->w[1], dw_load_lanes(rows[0], i + dx, l[1], sw), a);
        b = vfma(k->w[4], dw_load_lanes(rows[1], i + dx, l[1], sw), b);
        c = vfma(k->w[7], dw_load_lanes(rows[2], i + dx, l[1], sw), c);
        a = vfma(k->w[2], dw_load_lanes(rows[0], i + 2 * dx, l[2], sw), a);
        b = vfma(k->w[5], dw_load_lanes(rows[1], i + 2 * dx, l[2], sw), b);
        c = vfma(k->w[8], dw_load_lanes(rows[2], i + 2 * dx, l[2], sw), c);
    }
    return vadd(a, vadd(b, c));
}

/* y (oh, ow) = clamp(bias + 3x3 taps of wk over x (h, w)), weights in
 * registers, one FMA chain per kernel row; sw (1 or 2) is a constant after
 * inlining. Wide planes go row by row; narrow ones (most blocks at an edge)
 * column block by column block, an edge block's lanes worked out once per
 * column (measured: each order is the faster one on its side of 2 VL). */
static inline __attribute__((always_inline)) void
dw3x3(const qd_conv_shape *s, const float *x, const float *zrow, int64_t span, const float *wk,
      float bias, float *y, int64_t sw)
{
    int64_t ow = s->ow, dx = s->dw, w = s->w;
    dw_w9 k;
    for (int t = 0; t < 9; t++)
        k.w[t] = vsplat(wk[t]);
    vf vb = vsplat(bias), vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    int act = has_clamp(s->lo, s->hi);
    const float *rows[3];
    if (ow > 2 * VL) {
        for (int64_t oy = 0; oy < s->oh; oy++) {
            dw_rows(s, x, zrow, oy, rows);
            for (int64_t ox = 0; ox < ow; ox += VL) {
                int64_t o = dw_block(ox, ow), i = o * sw - s->pl;
                int inside = dw_inside(s, i, span);
                dw_lanes l[3];
                if (!inside)
                    l[0] = dw_lanes_at(i, w), l[1] = dw_lanes_at(i + dx, w), l[2] = dw_lanes_at(i + 2 * dx, w);
                vf a = dw3x3_block(rows, i, inside, l, &k, vb, dx, sw);
                dw_store(y + oy * ow, o, ow, act ? vclamp(a, vlo, vhi) : a);
            }
        }
        return;
    }
    for (int64_t ox = 0; ox < ow; ox += VL) {
        int64_t o = dw_block(ox, ow), i = o * sw - s->pl;
        int inside = dw_inside(s, i, span);
        dw_lanes l[3] = {dw_lanes_at(i, w), dw_lanes_at(i + dx, w), dw_lanes_at(i + 2 * dx, w)};
        for (int64_t oy = 0; oy < s->oh; oy++) {
            dw_rows(s, x, zrow, oy, rows);
            vf a = dw3x3_block(rows, i, inside, l, &k, vb, dx, sw);
            dw_store(y + oy * ow, o, ow, act ? vclamp(a, vlo, vhi) : a);
        }
    }
}

/* Any kernel: the same with the taps in loops; rows holds kh pointers. */
static void dw_any(const qd_conv_shape *s, const float *x, const float *zrow, int64_t span,
                   const float **rows, const float *wk, float bias, float *y)
{
    int64_t ow = s->ow, sw = s->sw;
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    int act = has_clamp(s->lo, s->hi);
    for (int64_t oy = 0; oy < s->oh; oy++) {
        dw_rows(s, x, zrow, oy, rows);
        float *yr = y + oy * ow;
        for (int64_t ox = 0; ox < ow; ox += VL) {
            int64_t o = dw_block(ox, ow), i = o * sw - s->pl;
            vf acc = vsplat(bias);
            if (dw_inside(s, i, span))
                for (int64_t ky = 0; ky < s->kh; ky++)
                    for (int64_t kx = 0; kx < s->kw; kx++)
                        acc = vfma(vsplat(wk[ky * s->kw + kx]), dw_load(rows[ky] + i + kx * s->dw, sw), acc);
            else
                for (int64_t ky = 0; ky < s->kh; ky++)
                    for (int64_t kx = 0; kx < s->kw; kx++)
                        acc = vfma(vsplat(wk[ky * s->kw + kx]), dw_load_edge(rows[ky], i + kx * s->dw, s->w, sw),
                                   acc);
            dw_store(yr, o, ow, act ? vclamp(acc, vlo, vhi) : acc);
        }
    }
}

/* items are (image, input channel); each feeds co/ci output planes */
static void dw_items(void *arg, int64_t begin, int64_t end, int tid)
{
    dw_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t mult = s->co / s->ci, hw = s->h * s->w, ohw = s->oh * s->ow, k2 = s->kh * s->kw, span = j->span;
    /* row pointers (kh), zero row (w) */
    size_t bytes = (size_t)s->kh * sizeof(float *) + (size_t)s->w * sizeof(float);
    const float **rows = qd_ctx_scratch(j->ctx, tid, bytes);
    if (!rows) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *zrow = (float *)(rows + s->kh);
    zero_f(zrow, s->w);
    int k33 = s->kh == 3 && s->kw == 3;
    for (int64_t i = begin; i < end; i++) {
        int64_t n = i / s->ci, c = i % s->ci;
        const float *x = j->x + i * hw;
        for (int64_t m = 0; m < mult; m++) {
            int64_t oc = c * mult + m;
            const float *wk = j->w + oc * k2;
            float bias = j->b ? j->b[oc] : 0.0f, *y = j->y + (n * s->co + oc) * ohw;
            if (k33 && s->sw == 1)
                dw3x3(s, x, zrow, span, wk, bias, y, 1);
            else if (k33 && s->sw == 2)
                dw3x3(s, x, zrow, span, wk, bias, y, 2);
            else
                dw_any(s, x, zrow, span, rows, wk, bias, y);
        }
    }
}

/* ---- depthwise on small output planes: VL channels at a time ----
 * With a few outputs per plane the kernel above computes VL-wide row blocks
 * that are mostly masked lanes, one (image, channel) at a time. Here an item
 * is VL output channels oc0.. of one image: their input planes are gathered
 * pixel-major,
 *   xt (h*w, VL),   xt[q][l] = x[i][(oc0 + l) / mult][q]
 * every output pixel sums its live taps over whole vectors of channels,
 *   yt (oh*ow, VL), yt[p][l] = b[oc0 + l] + sum over live (q, t) of xt[q][l] * wt[t][l]
 * with wt (kh*kw, VL) the block's weights, and yt is gathered back into y
 * (the block's m*oh*ow outputs are contiguous there). */

#ifndef DWS_PLANE
#define DWS_PLANE SMALL_PLANE /* output pixels up to which it beats the direct kernel */
#endif
#define DWS_MAX_TAPS 64       /* kh*kw, so that the tap list fits in the job */
#define DWS_MAX_IN 256        /* h*w, so that xt and its indices stay in L1 */

typedef struct dws_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    qd_ctx *ctx;
    int16_t start[DWS_PLANE + 1];         /* output pixel p's live taps: [start[p], start[p+1]) */
    int16_t tq[DWS_PLANE * DWS_MAX_TAPS]; /* a live tap's input pixel */
    int16_t tt[DWS_PLANE * DWS_MAX_TAPS]; /* and the tap, ky*kw + kx */
    atomic_int fail;
} dws_job;

static int dws_can(const qd_conv_shape *s)
{
    return s->oh * s->ow <= DWS_PLANE && s->kh * s->kw <= DWS_MAX_TAPS && s->h * s->w <= DWS_MAX_IN &&
           s->ci * s->h * s->w <= INT32_MAX;
}

/* items are (channel block, image), block-major: a thread's run of items
 * gathers a block's weights and indices once */
static void dws_items(void *arg, int64_t begin, int64_t end, int tid)
{
    dws_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t co = s->co, mult = s->co / s->ci, hw = s->h * s->w, ohw = s->oh * s->ow, k2 = s->kh * s->kw;
    /* scratch: wt (k2, VL), xt (hw, VL), yt (ohw, VL); xi (hw, VL), yi (ohw, VL) the gathers' indices */
    float *wt = qd_ctx_scratch(j->ctx, tid, (size_t)(2 * (k2 + hw + ohw) * VL) * sizeof(float));
    if (!wt) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *xt = wt + k2 * VL, *yt = xt + hw * VL;
    int32_t *xi = (int32_t *)(yt + ohw * VL), *yi = xi + hw * VL;
    for (int64_t k = 0; k < ohw * VL; k++) /* y block position k is yt[k % ohw][k / ohw] */
        yi[k] = (int32_t)(k % ohw * VL + k / ohw);
    int act = has_clamp(s->lo, s->hi);
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi), vb = vsplat(0.0f);
    int64_t blk = -1, oc0 = 0, m = 0, c0 = 0;
    for (int64_t it = begin; it < end; it++) {
        if (it / s->n != blk) { /* a new channel block: weights, bias, gather indices */
            blk = it / s->n;
            oc0 = blk * VL;
            m = min64(VL, co - oc0);
            c0 = oc0 / mult;
            for (int64_t l = 0; l < VL; l++) { /* lanes past m repeat lane 0 and are not stored */
                int64_t oc = oc0 + (l < m ? l : 0);
                for (int64_t t = 0; t < k2; t++)
                    wt[t * VL + l] = j->w[oc * k2 + t];
                for (int64_t q = 0; q < hw; q++)
                    xi[q * VL + l] = (int32_t)((oc / mult - c0) * hw + q);
            }
            vb = !j->b ? vsplat(0.0f) : m == VL ? vld(j->b + oc0) : vld_n(j->b + oc0, m);
        }
        int64_t i = it % s->n;
        const float *xb = j->x + (i * s->ci + c0) * hw;
        for (int64_t q = 0; q < hw; q++)
            vst(xt + q * VL, vgather(xb, xi + q * VL));
        for (int64_t p = 0; p < ohw; p++) {
            vf acc = vb;
            for (int64_t k = j->start[p]; k < j->start[p + 1]; k++)
                acc = vfma(vld(xt + j->tq[k] * VL), vld(wt + j->tt[k] * VL), acc);
            vst(yt + p * VL, act ? vclamp(acc, vlo, vhi) : acc);
        }
        float *yb = j->y + (i * co + oc0) * ohw;
        int64_t k = 0, ny = m * ohw;
        for (; k + VL <= ny; k += VL)
            vst(yb + k, vgather(yt, yi + k));
        if (k < ny)
            vst_n(yb + k, vgather(yt, yi + k), ny - k);
    }
}

static int conv_dw_small(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                         float *y, qd_ctx *ctx)
{
    dws_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx};
    int k = 0;
    for (int64_t oy = 0; oy < s->oh; oy++)
        for (int64_t ox = 0; ox < s->ow; ox++) {
            j.start[oy * s->ow + ox] = (int16_t)k;
            for (int64_t ky = 0; ky < s->kh; ky++)
                for (int64_t kx = 0; kx < s->kw; kx++) {
                    int64_t iy = oy * s->sh - s->pt + ky * s->dh, ix = ox * s->sw - s->pl + kx * s->dw;
                    if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                        continue;
                    j.tq[k] = (int16_t)(iy * s->w + ix);
                    j.tt[k++] = (int16_t)(ky * s->kw + kx);
                }
        }
    j.start[s->oh * s->ow] = (int16_t)k;
    atomic_init(&j.fail, 0);
    qd_ctx_for(ctx, (s->co + VL - 1) / VL * s->n, 1, dws_items, &j);
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

static int conv_depthwise(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                          float *y, qd_ctx *ctx)
{
    if (dws_can(s))
        return conv_dw_small(s, x, w, b, y, ctx);
    dw_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx, .span = dw_span(s)};
    atomic_init(&j.fail, 0);
    qd_ctx_for(ctx, s->n * s->ci, 1, dw_items, &j);
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

/* ---- Winograd F(2x2, 3x3): 3x3 kernel, stride 1, dilation 1, one group ---- */

/* Every 2x2 output tile comes from a 4x4 input patch d:
 *   y = A^T [(G g G^T) .* (B^T d B)] A,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1].
 * The 16 element-wise products over all channels become 16 sgemms:
 *   U[xi] (co, ci) @ V[xi] (ci, tiles) -> M[xi] (co, tiles).
 * Tiles are numbered across the batch (image, tile row, tile column) and cut
 * into blocks of tb, one work item each, so that small late-layer images
 * still give sgemms with enough columns. U is made on every call (weights
 * may change between runs) at the head of thread 0's scratch. */

/* Tiles per block: ci + co within these bounds (measured: wider channels
 * want wider sgemms to amortize packing U; V and M are 16 (ci + co) tb floats). */
#define WINO_MIN_TILES 128
#define WINO_MAX_TILES 512
/* qd_conv_pick prefers it to im2col from these channels (in and out) and
 * tiles in the batch: below, transforming and packing U costs more than
 * the multiplications it saves (measured on ResNet-18's layers). */
#define WINO_MIN_CH 32
#define WINO_MIN_BATCH_TILES 32

typedef struct wino_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y, *u;          /* U (16, co, ci) */
    qd_ctx *ctx;
    int64_t th, tw;        /* tile rows and columns per image */
    int64_t tb;            /* tiles per block */
    int gather;            /* small planes: wino_input_g, wino_output_g */
    size_t ubytes;         /* U's bytes, rounded to 64 */
    atomic_int fail;
} wino_job;

/* U[xi][oc][c] = (G g G^T)[xi] for output channels [begin, end), VL input
 * channels at a time (the 16 stores of U go to far-apart rows). */
static void wino_weights(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    wino_job *j = arg;
    int64_t ci = j->s->ci, co = j->s->co, cc = co * ci;
    const vf half = vsplat(0.5f);
    for (int64_t oc = begin; oc < end; oc++)
        for (int64_t c0 = 0; c0 < ci; c0 += VL) {
            int64_t nv = min64(VL, ci - c0);
            const float *g = j->w + (oc * ci + c0) * 9;
            float gt[9][VL] = {{0}};
            for (int64_t c = 0; c < nv; c++)
                for (int k = 0; k < 9; k++)
                    gt[k][c] = g[c * 9 + k];
            vf gg[4][3];
            for (int k = 0; k < 3; k++) {
                vf a = vld(gt[k]), b = vld(gt[3 + k]), d = vld(gt[6 + k]);
                gg[0][k] = a;
                gg[1][k] = vmul(half, vadd(vadd(a, b), d));
                gg[2][k] = vmul(half, vadd(vsub(a, b), d));
                gg[3][k] = d;
            }
            float *u = j->u + oc * ci + c0;
            for (int i = 0; i < 4; i++) {
                vf r[4] = {gg[i][0], vmul(half, vadd(vadd(gg[i][0], gg[i][1]), gg[i][2])),
                           vmul(half, vadd(vsub(gg[i][0], gg[i][1]), gg[i][2])), gg[i][2]};
                for (int q = 0; q < 4; q++)
                    vst_n(u + (i * 4 + q) * cc, r[q], nv);
            }
        }
}

/* The run of tiles from global tile t up to t1 that shares one tile row:
 * image *n, tile row *ty, columns [*tx, *tx + returned count). */
static int64_t wino_seg(const wino_job *j, int64_t t, int64_t t1, int64_t *n, int64_t *ty, int64_t *tx)
{
    int64_t T = j->th * j->tw;
    *n = t / T;
    *ty = t % T / j->tw;
    *tx = t % j->tw;
    return min64(j->tw - *tx, t1 - t);
}

/* o[xi*xs ..] (nv lanes) = (B^T d B)[xi] of the patches d of VL tiles */
static inline void wino_in_tf(vf d[4][4], float *o, int64_t xs, int64_t nv)
{
    vf e[4][4];
    for (int q = 0; q < 4; q++) {
        e[0][q] = vsub(d[0][q], d[2][q]);
        e[1][q] = vadd(d[1][q], d[2][q]);
        e[2][q] = vsub(d[2][q], d[1][q]);
        e[3][q] = vsub(d[1][q], d[3][q]);
    }
    for (int i = 0; i < 4; i++) {
        vf r4[4] = {vsub(e[i][0], e[i][2]), vadd(e[i][1], e[i][2]), vsub(e[i][2], e[i][1]), vsub(e[i][1], e[i][3])};
        for (int q = 0; q < 4; q++) {
            if (nv == VL)
                vst(o + (i * 4 + q) * xs, r4[q]);
            else
                vst_n(o + (i * 4 + q) * xs, r4[q], nv);
        }
    }
}

/* e = the two rows of A^T M (each of 4 columns) for VL tiles at p, M[xi] at p + xi*ms */
static inline void wino_out_rows(const float *p, int64_t ms, int64_t nv, vf e[2][4])
{
    for (int q = 0; q < 4; q++) {
        vf m0 = nv == VL ? vld(p + q * ms) : vld_n(p + q * ms, nv);
        vf m1 = nv == VL ? vld(p + (4 + q) * ms) : vld_n(p + (4 + q) * ms, nv);
        vf m2 = nv == VL ? vld(p + (8 + q) * ms) : vld_n(p + (8 + q) * ms, nv);
        vf m3 = nv == VL ? vld(p + (12 + q) * ms) : vld_n(p + (12 + q) * ms, nv);
        e[0][q] = vadd(vadd(m0, m1), m2);
        e[1][q] = vsub(vsub(m1, m2), m3);
    }
}

/* V[xi][c][col ..] = (B^T d B)[xi] for tiles [t0, t1) of the block, col = t - t0;
 * V (16, ci, tb). Vectors of VL tiles along a tile row read the input rows
 * in place (zrow (w) above and below the plane, masked loads at its edges). */
static void wino_input(const wino_job *j, int64_t t0, int64_t t1, float *v, const float *zrow)
{
    const qd_conv_shape *s = j->s;
    int64_t ci = s->ci, tb = j->tb, xs = ci * tb, w = s->w;
    for (int64_t c = 0; c < ci; c++)
        for (int64_t t = t0; t < t1;) {
            int64_t n, ty, txa;
            int64_t cnt = wino_seg(j, t, t1, &n, &ty, &txa);
            const float *xc = j->x + (n * ci + c) * s->h * w, *rows[4];
            int64_t x0 = max64(0, 2 * txa - s->pl), x1 = min64(w, 2 * (txa + cnt) - s->pl + 2);
            for (int r = 0; r < 4; r++) {
                int64_t iy = 2 * ty - s->pt + r;
                rows[r] = iy >= 0 && iy < s->h ? xc + iy * w : zrow;
                if (c + 1 < ci && rows[r] != zrow) /* the same rows of the next channel: short runs */
                    for (int64_t ix = x0; ix < x1; ix += 16)
                        __builtin_prefetch(rows[r] + s->h * w + ix);
            }
            for (int64_t k = 0; k < cnt; k += VL) {
                int64_t nv = min64(VL, cnt - k), a = 2 * (txa + k) - s->pl;
                float *o = v + c * tb + (t - t0) + k;
                vf d[4][4];
                if (a >= 0 && a + 2 * VL + 3 <= w) /* vld_even reads 2 VL from a + q */
                    for (int r = 0; r < 4; r++)
                        for (int q = 0; q < 4; q++)
                            d[r][q] = vld_even(rows[r] + a + q);
                else /* the same, loading only the lanes inside the row */
                    for (int q = 0; q < 4; q++) {
                        int64_t a0 = a + q, a1 = a0 + VL;
                        int64_t lo0 = min64(VL, max64(0, -a0)), hi0 = max64(0, min64(VL, w - a0));
                        int64_t lo1 = min64(VL, max64(0, -a1)), hi1 = max64(0, min64(VL, w - a1));
                        for (int r = 0; r < 4; r++)
                            d[r][q] = veven(vld_lanes(rows[r], a0, lo0, hi0), vld_lanes(rows[r], a1, lo1, hi1));
                    }
                wino_in_tf(d, o, xs, nv);
            }
            t += cnt;
        }
}

/* y tiles [t0, t1) = clamp(A^T M A + b) from M (16, co, tb) */
static void wino_output(const wino_job *j, int64_t t0, int64_t t1, const float *m)
{
    const qd_conv_shape *s = j->s;
    int64_t co = s->co, tb = j->tb, ms = co * tb, ow = s->ow, oh = s->oh;
    int act = has_clamp(s->lo, s->hi);
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    for (int64_t oc = 0; oc < co; oc++) {
        vf vb = vsplat(j->b ? j->b[oc] : 0.0f);
        for (int64_t t = t0; t < t1;) {
            int64_t n, ty, txa;
            int64_t cnt = wino_seg(j, t, t1, &n, &ty, &txa);
            float *yp = j->y + ((n * co + oc) * oh + 2 * ty) * ow;
            for (int64_t k = 0; k < cnt; k += VL) {
                int64_t nv = min64(VL, cnt - k), tx = txa + k;
                vf e[2][4];
                wino_out_rows(m + oc * tb + (t - t0) + k, ms, nv, e);
                int64_t ncol = min64(2 * nv, ow - 2 * tx);
                for (int i = 0; i < 2 && 2 * ty + i < oh; i++) {
                    vf a = vadd(vadd(vadd(e[i][0], e[i][1]), e[i][2]), vb);
                    vf b = vadd(vsub(vsub(e[i][1], e[i][2]), e[i][3]), vb);
                    if (act)
                        a = vclamp(a, vlo, vhi), b = vclamp(b, vlo, vhi);
                    vf lo, hi;
                    vzip(a, b, &lo, &hi);
                    float *yr = yp + i * ow + 2 * tx;
                    if (ncol >= 2 * VL) {
                        vst(yr, lo);
                        vst(yr + VL, hi);
                    } else if (ncol > VL) {
                        vst(yr, lo);
                        vst_n(yr + VL, hi, ncol - VL);
                    } else {
                        vst_n(yr, lo, ncol);
                    }
                }
            }
            t += cnt;
        }
    }
}

/* Small planes (tiles per row below WINO_ROW_TILES): a vector of tiles
 * along one row is mostly masked lanes, so the transforms go VL tiles of the
 * block at a time across rows and images instead, through tables made per
 * block: xo (16, tb) the offset of patch value (r, q) of each tile from x's
 * channel c plane of image 0, yo (4, tb) that of output (i, jj) in y's
 * channel oc; -1 for padding (read as 0) and outputs past the plane. */
#ifndef WINO_ROW_TILES
#define WINO_ROW_TILES 8
#endif

static void wino_tables(const wino_job *j, int64_t t0, int64_t t1, int32_t *xo, int32_t *yo)
{
    const qd_conv_shape *s = j->s;
    int64_t tb = j->tb, T = j->th * j->tw;
    for (int64_t l = 0; l < tb; l++) {
        int64_t t = t0 + l, n = t / T, ty = t % T / j->tw, tx = t % j->tw;
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) {
                int64_t iy = 2 * ty - s->pt + r, ix = 2 * tx - s->pl + q;
                int in = t < t1 && iy >= 0 && iy < s->h && ix >= 0 && ix < s->w;
                xo[(r * 4 + q) * tb + l] = in ? (int32_t)((n * s->ci * s->h + iy) * s->w + ix) : -1;
            }
        for (int i = 0; i < 2; i++)
            for (int jj = 0; jj < 2; jj++) {
                int64_t oy = 2 * ty + i, ox = 2 * tx + jj;
                int in = t < t1 && oy < s->oh && ox < s->ow;
                yo[(i * 2 + jj) * tb + l] = in ? (int32_t)((n * s->co * s->oh + oy) * s->ow + ox) : -1;
            }
    }
}

static void wino_input_g(const wino_job *j, int64_t nt, const int32_t *xo, float *v)
{
    const qd_conv_shape *s = j->s;
    int64_t ci = s->ci, tb = j->tb, xs = ci * tb, hw = s->h * s->w;
    for (int64_t c = 0; c < ci; c++)
        for (int64_t k = 0; k < nt; k += VL) {
            vf d[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    d[r][q] = vgather_m(j->x + c * hw, xo + (r * 4 + q) * tb + k);
            wino_in_tf(d, v + c * tb + k, xs, VL);
        }
}

static void wino_output_g(const wino_job *j, int64_t nt, const int32_t *yo, const float *m)
{
    const qd_conv_shape *s = j->s;
    int64_t co = s->co, tb = j->tb, ms = co * tb, ohw = s->oh * s->ow;
    int act = has_clamp(s->lo, s->hi);
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    for (int64_t oc = 0; oc < co; oc++) {
        vf vb = vsplat(j->b ? j->b[oc] : 0.0f);
        float *yc = j->y + oc * ohw;
        for (int64_t k = 0; k < nt; k += VL) {
            vf e[2][4];
            wino_out_rows(m + oc * tb + k, ms, min64(VL, nt - k), e);
            for (int i = 0; i < 2; i++) {
                vf a = vadd(vadd(vadd(e[i][0], e[i][1]), e[i][2]), vb);
                vf b = vadd(vsub(vsub(e[i][1], e[i][2]), e[i][3]), vb);
                if (act)
                    a = vclamp(a, vlo, vhi), b = vclamp(b, vlo, vhi);
                vscatter_m(yc, yo + (i * 2) * tb + k, a);
                vscatter_m(yc, yo + (i * 2 + 1) * tb + k, b);
            }
        }
    }
}

/* Scratch bytes of one block: V, M, a zero row, the gather tables */
static size_t wino_work(const wino_job *j)
{
    const qd_conv_shape *s = j->s;
    return (size_t)(16 * (s->ci + s->co) * j->tb + s->w) * sizeof(float) +
           (j->gather ? (size_t)(20 * j->tb) * sizeof(int32_t) : 0);
}

/* One block of tiles: input transform, 16 sgemms, output transform. */
static int wino_block(wino_job *j, int64_t blk, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t ci = s->ci, co = s->co, tb = j->tb;
    int64_t t0 = blk * tb, t1 = min64(j->s->n * j->th * j->tw, t0 + tb);
    size_t head = tid == 0 ? j->ubytes : 0; /* thread 0's scratch starts with U */
    char *mem = qd_ctx_scratch(j->ctx, tid, head + wino_work(j));
    if (!mem)
        return QD_EFAIL;
    float *v = (float *)(mem + head), *m = v + 16 * ci * tb, *zrow = m + 16 * co * tb;
    int32_t *xo = (int32_t *)(zrow + s->w), *yo = xo + 16 * tb;
    if (j->gather) {
        wino_tables(j, t0, t1, xo, yo);
        wino_input_g(j, t1 - t0, xo, v);
    } else {
        zero_f(zrow, s->w);
        wino_input(j, t0, t1, v, zrow);
    }
    int rc = QD_OK;
    for (int xi = 0; xi < 16 && !rc; xi++)
        rc = qd_sgemm(0, 0, co, t1 - t0, ci, 1.0f, j->u + xi * co * ci, ci, v + xi * ci * tb, tb, 0.0f,
                      m + xi * co * tb, tb);
    if (!rc && j->gather)
        wino_output_g(j, t1 - t0, yo, m);
    else if (!rc)
        wino_output(j, t0, t1, m);
    return rc;
}

static void wino_items(void *arg, int64_t begin, int64_t end, int tid)
{
    wino_job *j = arg;
    for (int64_t i = begin; i < end; i++)
        if (wino_block(j, i, tid))
            atomic_store(&j->fail, 1);
}

static int conv_winograd(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                         float *y, qd_ctx *ctx)
{
    int64_t nt = ctx->nthreads;
    wino_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx};
    j.th = (s->oh + 1) / 2;
    j.tw = (s->ow + 1) / 2;
    int64_t total = s->n * j.th * j.tw;
    j.tb = min64(WINO_MAX_TILES, max64(WINO_MIN_TILES, s->ci + s->co));
    j.tb = min64(j.tb, max64(VL, (total + nt - 1) / nt)); /* a block per thread when few tiles */
    j.tb = (j.tb + VL - 1) / VL * VL;
    j.ubytes = ((size_t)(16 * s->co * s->ci) * sizeof(float) + 63) & ~(size_t)63;
    j.gather = j.tw < WINO_ROW_TILES && s->n * s->ci * s->h * s->w <= INT32_MAX &&
               s->n * s->co * s->oh * s->ow <= INT32_MAX;
    atomic_init(&j.fail, 0);
    j.u = qd_ctx_scratch(ctx, 0, j.ubytes + wino_work(&j));
    if (!j.u)
        return QD_EFAIL;
    qd_ctx_for(ctx, s->co, max64(1, 4096 / s->ci), wino_weights, &j);
    int64_t items = (total + j.tb - 1) / j.tb;
    if (nt > 1 && items >= nt) {
        qd_blas_set_threads(1);
        qd_ctx_for(ctx, items, 1, wino_items, &j);
    } else {
        qd_blas_set_threads((int)nt);
        wino_items(&j, 0, items, 0);
    }
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

/* ---- a single output pixel: only the live taps ----
 * With oh == ow == 1 tap (ky, kx) reads x at iy = ky*dh - pt, ix = kx*dw - pl;
 * the taps outside the plane read padding and are skipped. The live ones
 * form a rectangle [ky0, ky1) x [kx0, kx1) of T taps (T <= h*w), gathered:
 *   col (n, ci*T),   col[i][c*T + t] = x[i][c][iy_t][ix_t]
 *   wt  (co, cig*T), wt[oc][c*T + t] = w[oc][c][ky_t][kx_t]
 * Group 1 is then one sgemm over the batch, y (n, co) = col @ wt^T; more
 * groups a dot product per output, y[i][oc] = col[i][g*cig*T ..] . wt[oc].
 * col is x itself when the live taps are the whole plane (T == h*w, in
 * order); wt is w when every tap is live. Depthwise without a multiplier
 * (one channel in and out per group) gathers tap-major instead,
 *   col (n, T*ci), col[i][t*ci + c];  wt (T, co), wt[t][oc]
 * and goes VL channels at a time; with T == 1 both layouts are the same. */

typedef struct pixel_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y;
    const float *col, *wt;   /* the operands, gathered or borrowed */
    float *colbuf, *wtbuf;   /* where the gathers write */
    int64_t ky0, ky1, kx0, kx1, T;
    int64_t ldcol;           /* ci*T */
    int tapmajor;            /* depthwise layouts */
} pixel_job;

/* col rows [begin, end) (images) from x */
static void pixel_gather_x(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const pixel_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t hw = s->h * s->w;
    for (int64_t i = begin; i < end; i++) {
        float *d = j->colbuf + i * j->ldcol;
        const float *xi = j->x + i * s->ci * hw;
        if (j->tapmajor) {
            for (int64_t ky = j->ky0; ky < j->ky1; ky++)
                for (int64_t kx = j->kx0; kx < j->kx1; kx++) {
                    int64_t off = (ky * s->dh - s->pt) * s->w + kx * s->dw - s->pl;
                    for (int64_t c = 0; c < s->ci; c++)
                        *d++ = xi[c * hw + off];
                }
            continue;
        }
        for (int64_t c = 0; c < s->ci; c++, xi += hw)
            for (int64_t ky = j->ky0; ky < j->ky1; ky++) {
                int64_t row = (ky * s->dh - s->pt) * s->w - s->pl;
                for (int64_t kx = j->kx0; kx < j->kx1; kx++)
                    *d++ = xi[row + kx * s->dw];
            }
    }
}

/* wt rows [begin, end) (output channels) from w */
static void pixel_gather_w(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const pixel_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t cig = s->ci / s->group, k2 = s->kh * s->kw;
    for (int64_t oc = begin; oc < end; oc++) {
        const float *wc = j->w + oc * cig * k2;
        if (j->tapmajor) {
            for (int64_t ky = j->ky0, t = 0; ky < j->ky1; ky++)
                for (int64_t kx = j->kx0; kx < j->kx1; kx++, t++)
                    j->wtbuf[t * s->co + oc] = wc[ky * s->kw + kx];
            continue;
        }
        float *d = j->wtbuf + oc * cig * j->T;
        if (j->T == 1) { /* one tap per input channel: a strided copy */
            const float *src = wc + j->ky0 * s->kw + j->kx0;
            for (int64_t c = 0; c < cig; c++)
                d[c] = src[c * k2];
            continue;
        }
        for (int64_t c = 0; c < cig; c++, wc += k2)
            for (int64_t ky = j->ky0; ky < j->ky1; ky++)
                for (int64_t kx = j->kx0; kx < j->kx1; kx++)
                    *d++ = wc[ky * s->kw + kx];
    }
}

/* bias + a[0..n) . b[0..n), in order below VL terms, else VL partial sums */
static inline float dot_f(float bias, const float *a, const float *b, int64_t n)
{
    if (n < VL) {
        float acc = bias;
        for (int64_t k = 0; k < n; k++)
            acc += a[k] * b[k];
        return acc;
    }
    vf acc = vmul(vld(a), vld(b));
    int64_t k = VL;
    for (; k + VL <= n; k += VL)
        acc = vfma(vld(a + k), vld(b + k), acc);
    if (k < n)
        acc = vfma(vld_n(a + k, n - k), vld_n(b + k, n - k), acc);
    float t[VL], sum = bias;
    vst(t, acc);
    for (int l = 0; l < VL; l++)
        sum += t[l];
    return sum;
}

/* y[i][oc0 .. oc1) of image i, depthwise tap-major: VL channels at a time,
 * y = b + sum over t of col[i][t][oc] * wt[t][oc] */
static void pixel_dw_row(const pixel_job *j, int64_t i, int64_t oc0, int64_t oc1, vf vlo, vf vhi, int act)
{
    const qd_conv_shape *s = j->s;
    const float *xr = j->col + i * j->ldcol;
    float *yi = j->y + i * s->co;
    for (int64_t oc = oc0; oc < oc1; oc += VL) {
        int64_t m = min64(VL, oc1 - oc);
        vf acc = j->b ? (m == VL ? vld(j->b + oc) : vld_n(j->b + oc, m)) : vsplat(0.0f);
        for (int64_t t = 0; t < j->T; t++) {
            const float *a = xr + t * s->ci + oc, *wv = j->wt + t * s->co + oc;
            acc = m == VL ? vfma(vld(a), vld(wv), acc) : vfma(vld_n(a, m), vld_n(wv, m), acc);
        }
        if (act)
            acc = vclamp(acc, vlo, vhi);
        if (m == VL)
            vst(yi + oc, acc);
        else
            vst_n(yi + oc, acc, m);
    }
}

/* y[i][oc] for outputs [begin, end) of y (n, co), group > 1: a dot product
 * of cig*T terms each, or VL depthwise channels at a time (tap-major) */
static void pixel_direct(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const pixel_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t co = s->co, cog = co / s->group, kg = s->ci / s->group * j->T;
    int act = has_clamp(s->lo, s->hi);
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    int64_t i = begin / co, oc0 = begin % co;
    for (int64_t e = begin; e < end; i++, oc0 = 0) {
        int64_t oc1 = min64(co, oc0 + (end - e));
        e += oc1 - oc0;
        if (j->tapmajor) {
            pixel_dw_row(j, i, oc0, oc1, vlo, vhi, act);
            continue;
        }
        const float *xr = j->col + i * j->ldcol;
        float *yi = j->y + i * co;
        for (int64_t oc = oc0, g = oc0 / cog, r = oc0 % cog; oc < oc1; oc++) {
            float v = dot_f(j->b ? j->b[oc] : 0.0f, xr + g * kg, j->wt + oc * kg, kg);
            yi[oc] = clampf(v, s->lo, s->hi);
            if (++r == cog)
                r = 0, g++;
        }
    }
}

/* y (rows, cols) = clamp(y + b[col]); b may be NULL */
static void bias_cols(float *y, int64_t rows, int64_t cols, const float *b, float lo, float hi)
{
    int act = has_clamp(lo, hi);
    if (!b && !act)
        return;
    vf vlo = vsplat(lo), vhi = vsplat(hi);
    for (int64_t r = 0; r < rows; r++, y += cols) {
        int64_t i = 0;
        for (; i + VL <= cols; i += VL) {
            vf v = b ? vadd(vld(y + i), vld(b + i)) : vld(y + i);
            vst(y + i, act ? vclamp(v, vlo, vhi) : v);
        }
        if (i < cols) {
            int64_t m = cols - i;
            vf v = b ? vadd(vld_n(y + i, m), vld_n(b + i, m)) : vld_n(y + i, m);
            vst_n(y + i, act ? vclamp(v, vlo, vhi) : v, m);
        }
    }
}

/* Gathers and direct outputs go to the threads a few thousand floats at a time. */
#define PIXEL_GRAIN_FLOATS 8192

/* A 1x1 output over a small batch with many inputs per output (the last
 * layers at 28x28): sgemm would pack all of wt for a few columns. Instead
 * y^T (co, n) = wt (co, K) @ col^T (K, n) in the register-blocked kernel,
 * wt streamed once, col^T kept in L2; 8 rows of wt per item. */
#define PIXEL_T_MAX_N 128
typedef struct pixel_t_job {
    int64_t n, K;
    const float *w, *xt, *b;
    float *yt;
    float lo, hi;
} pixel_t_job;

static void pixel_t_items(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const pixel_t_job *j = arg;
    vf vlo = vsplat(j->lo), vhi = vsplat(j->hi);
    int act = has_clamp(j->lo, j->hi);
    for (int64_t r = begin * 8; r < end * 8; r += 8)
        for (int64_t c = 0; c < j->n; c += 2 * VL)
            smallk_block8(j->K, j->w + r * j->K, j->xt + c, j->n, j->b ? j->b + r : NULL, j->yt + r * j->n + c, j->n,
                          min64(2 * VL, j->n - c), vlo, vhi, act);
}

static int pixel_t_use(const qd_conv_shape *s, int64_t kg)
{
    return s->group == 1 && s->n <= PIXEL_T_MAX_N && s->co % 8 == 0 && kg > SMALLK_MAX;
}

static int conv_pixel(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                      float *y, qd_ctx *ctx)
{
    pixel_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .col = x, .wt = w};
    valid_range(s->kh, s->h, s->dh, -s->pt, &j.ky0, &j.ky1);
    valid_range(s->kw, s->w, s->dw, -s->pl, &j.kx0, &j.kx1);
    j.T = (j.ky1 - j.ky0) * (j.kx1 - j.kx0);
    j.ldcol = s->ci * j.T;
    j.tapmajor = s->group > 1 && s->group == s->ci && s->group == s->co;
    int64_t kg = s->ci / s->group * j.T;
    int tm = j.tapmajor && j.T > 1;
    int gx = tm || !(j.ky1 - j.ky0 == s->h && j.kx1 - j.kx0 == s->w); /* col is not x */
    int gw = tm || j.T != s->kh * s->kw;                              /* wt is not w */
    size_t cn = gx ? (size_t)(s->n * j.ldcol) : 0, wn = gw ? (size_t)(s->co * kg) : 0;
    int tr = pixel_t_use(s, kg);
    size_t tn = tr ? (size_t)((kg + s->co) * s->n) : 0;
    float *mem = NULL;
    if (cn + wn + tn > 0) {
        mem = qd_ctx_scratch(ctx, 0, (cn + wn + tn) * sizeof(float));
        if (!mem)
            return QD_EFAIL;
        if (gx) {
            j.col = j.colbuf = mem;
            qd_ctx_for(ctx, s->n, max64(1, PIXEL_GRAIN_FLOATS / max64(1, j.ldcol)), pixel_gather_x, &j);
        }
        if (gw) {
            j.wt = j.wtbuf = mem + cn;
            qd_ctx_for(ctx, s->co, max64(1, PIXEL_GRAIN_FLOATS / max64(1, kg)), pixel_gather_w, &j);
        }
    }
    if (s->group > 1) {
        qd_ctx_for(ctx, s->n * s->co, max64(VL, PIXEL_GRAIN_FLOATS / max64(1, kg)), pixel_direct, &j);
        return QD_OK;
    }
    if (tr) {
        float *xt = mem + cn + wn, *yt = xt + kg * s->n;
        for (int64_t i = 0; i < s->n; i++)
            for (int64_t k = 0; k < kg; k++)
                xt[k * s->n + i] = j.col[i * j.ldcol + k];
        pixel_t_job t = {s->n, kg, j.wt, xt, b, yt, s->lo, s->hi};
        qd_ctx_for(ctx, s->co / 8, 1, pixel_t_items, &t);
        for (int64_t i = 0; i < s->n; i++)
            for (int64_t c = 0; c < s->co; c++)
                y[i * s->co + c] = yt[c * s->n + i];
        return QD_OK;
    }
    /* col (n, ci*T) @ wt^T (ci*T, co) -> y (n, co) */
    qd_blas_set_threads(qd_blas_threads_for(ctx->nthreads, s->n * s->co * kg));
    int rc = qd_sgemm(0, 1, s->n, s->co, kg, 1.0f, j.col, j.ldcol, j.wt, kg, 0.0f, y, s->co);
    bias_cols(y, s->n, s->co, b, s->lo, s->hi);
    return rc;
}

/* ---- a small plane as one matrix: only the live taps ----
 * On a plane smaller than the kernel (ResNet's 3x3 pad 1 on 2x2) most taps
 * read padding and each output pixel reads its own part of the input. Over
 * the box [iy0, iy0+ih) x [ix0, ix0+iw) of the R = ih*iw input pixels that
 * live taps read, one image's convolution is one matrix (group 1):
 *   wt (co*oh*ow, ci*R), wt[oc*ohw + p][c*R + r] = w[oc][c][ky][kx] when output
 *                        pixel p reads input pixel r through tap (ky, kx), else 0
 *   col (n, ci*R),       col[i][c*R + r] = x[i][c][r] (x itself when the box is the plane)
 *   y (n, co*ohw) = col @ wt^T, y in NCHW order: one sgemm over the batch.
 * It does ohw*R multiply-adds per (ci, co) where im2col does ohw*kh*kw, but
 * wt is made on every call (weights may change between runs): ohw*R/(kh*kw)
 * times the size of w. With oh == ow == 1 it is the pixel path's sgemm. */

/* qd_conv_can: wt at most PLANE_MAX_RATIO times the size of w, and ohw*R at
 * most PLANE_MAX_CELLS (the tap table's size) */
#define PLANE_MAX_RATIO 4
#define PLANE_MAX_CELLS 256
/* qd_conv_pick: when R*PLANE_PICK_RATIO <= kh*kw (half the multiply-adds of
 * im2col at 2) and the batch amortizes making wt (measured: ResNet-18's 3x3
 * 256->256 on 2x2) */
#define PLANE_PICK_RATIO 2
#define PLANE_MIN_BATCH 16

/* wt is made and multiplied by blocks of output channels of about this many
 * floats, so that each block stays in L2 between its gather and its sgemm */
#ifndef PLANE_BLOCK_FLOATS
#define PLANE_BLOCK_FLOATS (128 * 1024)
#endif

typedef struct plane_job {
    const qd_conv_shape *s;
    const float *x, *w, *b;
    float *y, *brow;               /* brow (co*ohw): the bias of each column of y */
    const float *col;
    qd_ctx *ctx;
    size_t head;                   /* bytes of brow and col at the head of thread 0's scratch */
    int64_t iy0, ih, ix0, iw, R;
    int64_t ocb;                   /* output channels per block */
    int32_t toff[PLANE_MAX_CELLS]; /* (ohw, R): ky*kw + kx of the tap from r to p, -1 if none */
    atomic_int fail;
} plane_job;

/* Input positions [*a, *a + *len) along one axis that some live tap reads:
 * o*st - pad + k*d in [0, in) for o < on, k < kn; *len 0 when none. */
static void plane_axis(int64_t on, int64_t in, int64_t kn, int64_t st, int64_t d, int64_t pad, int64_t *a,
                       int64_t *len)
{
    int64_t lo = in, hi = -1;
    for (int64_t o = 0; o < on; o++)
        for (int64_t k = 0; k < kn; k++) {
            int64_t i = o * st - pad + k * d;
            if (i >= 0 && i < in)
                lo = min64(lo, i), hi = max64(hi, i);
        }
    *a = hi < 0 ? 0 : lo;
    *len = hi < 0 ? 0 : hi - lo + 1;
}

/* ohw*R of s's box, or -1 when it exceeds PLANE_MAX_CELLS */
static int64_t plane_cells(const qd_conv_shape *s, int64_t *iy0, int64_t *ih, int64_t *ix0, int64_t *iw)
{
    if (s->oh * s->ow > PLANE_MAX_CELLS)
        return -1;
    plane_axis(s->oh, s->h, s->kh, s->sh, s->dh, s->pt, iy0, ih);
    plane_axis(s->ow, s->w, s->kw, s->sw, s->dw, s->pl, ix0, iw);
    if (*ih * *iw > PLANE_MAX_CELLS)
        return -1;
    int64_t cells = s->oh * s->ow * *ih * *iw;
    return cells <= PLANE_MAX_CELLS ? cells : -1;
}

/* col rows [begin, end) (images): the box of x */
static void plane_gather_x(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const plane_job *j = arg;
    const qd_conv_shape *s = j->s;
    int64_t hw = s->h * s->w;
    float *col = (float *)j->col;
    for (int64_t i = begin; i < end; i++) {
        float *d = col + i * s->ci * j->R;
        const float *xc = j->x + i * s->ci * hw + j->iy0 * s->w + j->ix0;
        for (int64_t c = 0; c < s->ci; c++, xc += hw)
            for (int64_t ry = 0; ry < j->ih; ry++, d += j->iw)
                copy_f(d, xc + ry * s->w, j->iw);
    }
}

/* wt rows of output channels [oc0, oc1) into wt (rows (oc1-oc0)*ohw, K) */
static void plane_gather_w(const plane_job *j, int64_t oc0, int64_t oc1, float *wt)
{
    const qd_conv_shape *s = j->s;
    int64_t ohw = s->oh * s->ow, k2 = s->kh * s->kw, R = j->R, ci = s->ci;
    int32_t idx[VL];
    for (int64_t p = 0; p < ohw; p++) {
        const int32_t *t = j->toff + p * R;
        int64_t c = 0, cv = 0; /* channels by gathers of VL / R, when every tap is live */
        int live = R > 0 && VL % R == 0;
        for (int64_t r = 0; r < R; r++)
            live &= t[r] >= 0;
        if (live) {
            for (int l = 0; l < VL; l++)
                idx[l] = (int32_t)(l / R * k2 + t[l % R]);
            cv = ci / (VL / R) * (VL / R);
        }
        for (int64_t oc = oc0; oc < oc1; oc++) {
            const float *wc = j->w + oc * ci * k2;
            float *d = wt + ((oc - oc0) * ohw + p) * ci * R;
            for (c = 0; c < cv; c += VL / R, wc += VL / R * k2, d += VL)
                vst(d, vgather(wc, idx));
            for (; c < ci; c++, wc += k2, d += R)
                for (int64_t r = 0; r < R; r++)
                    d[r] = t[r] >= 0 ? wc[t[r]] : 0.0f;
        }
    }
}

/* One block of output channels: its wt rows, then
 * col (n, K) @ wt_blk^T (K, cols) -> y[:, oc0*ohw ..) (n, cols), row stride co*ohw */
static int plane_block(plane_job *j, int64_t blk, int tid)
{
    const qd_conv_shape *s = j->s;
    int64_t ohw = s->oh * s->ow, K = s->ci * j->R, N = s->co * ohw;
    int64_t oc0 = blk * j->ocb, oc1 = min64(s->co, oc0 + j->ocb), cols = (oc1 - oc0) * ohw;
    size_t head = tid == 0 ? j->head : 0;
    char *mem = qd_ctx_scratch(j->ctx, tid, head + (size_t)max64(1, j->ocb * ohw * K) * sizeof(float));
    if (!mem)
        return QD_EFAIL;
    float *wt = (float *)(mem + head);
    plane_gather_w(j, oc0, oc1, wt);
    float *y = j->y + oc0 * ohw;
    int rc = qd_sgemm(0, 1, s->n, cols, K, 1.0f, j->col, K, wt, K, 0.0f, y, N);
    int act = has_clamp(s->lo, s->hi);
    if (!j->b && !act)
        return rc;
    vf vlo = vsplat(s->lo), vhi = vsplat(s->hi);
    const float *br = j->brow + oc0 * ohw;
    for (int64_t i = 0; i < s->n; i++, y += N) {
        int64_t k = 0;
        for (; k + VL <= cols; k += VL) {
            vf v = j->b ? vadd(vld(y + k), vld(br + k)) : vld(y + k);
            vst(y + k, act ? vclamp(v, vlo, vhi) : v);
        }
        if (k < cols) {
            vf v = j->b ? vadd(vld_n(y + k, cols - k), vld_n(br + k, cols - k)) : vld_n(y + k, cols - k);
            vst_n(y + k, act ? vclamp(v, vlo, vhi) : v, cols - k);
        }
    }
    return rc;
}

static void plane_items(void *arg, int64_t begin, int64_t end, int tid)
{
    plane_job *j = arg;
    for (int64_t i = begin; i < end; i++)
        if (plane_block(j, i, tid))
            atomic_store(&j->fail, 1);
}

/* Enough blocks for every thread: each worker runs single-threaded sgemms;
 * else one block at a time with BLAS threads. */
static int conv_plane(const qd_conv_shape *s, const float *x, const float *w, const float *b, float *y,
                      qd_ctx *ctx)
{
    plane_job j = {.s = s, .x = x, .w = w, .b = b, .y = y, .ctx = ctx};
    plane_cells(s, &j.iy0, &j.ih, &j.ix0, &j.iw);
    j.R = j.ih * j.iw;
    int64_t ohw = s->oh * s->ow, K = s->ci * j.R, nt = ctx->nthreads;
    for (int64_t oy = 0; oy < s->oh; oy++)
        for (int64_t ox = 0; ox < s->ow; ox++)
            for (int64_t ry = 0; ry < j.ih; ry++)
                for (int64_t rx = 0; rx < j.iw; rx++) {
                    int64_t dy = j.iy0 + ry - oy * s->sh + s->pt, dx = j.ix0 + rx - ox * s->sw + s->pl;
                    int ok = dy >= 0 && dy % s->dh == 0 && dy / s->dh < s->kh && dx >= 0 && dx % s->dw == 0 &&
                             dx / s->dw < s->kw;
                    j.toff[((oy * s->ow + ox) * j.ih + ry) * j.iw + rx] =
                        (int32_t)(ok ? dy / s->dh * s->kw + dx / s->dw : -1);
                }
    j.ocb = max64(1, PLANE_BLOCK_FLOATS / max64(1, ohw * K));
    if (nt > 1) /* a block per thread at least */
        j.ocb = min64(j.ocb, (s->co + nt - 1) / nt);
    int64_t items = (s->co + j.ocb - 1) / j.ocb;
    int gx = !(j.ih == s->h && j.iw == s->w); /* col is not x */
    size_t bn = (size_t)(s->co * ohw), cn = gx ? (size_t)(s->n * K) : 0;
    j.head = ((bn + cn) * sizeof(float) + 63) & ~(size_t)63;
    float *mem = qd_ctx_scratch(ctx, 0, j.head + (size_t)max64(1, j.ocb * ohw * K) * sizeof(float));
    if (!mem)
        return QD_EFAIL;
    j.brow = mem;
    for (int64_t oc = 0; b && oc < s->co; oc++)
        for (int64_t p = 0; p < ohw; p++)
            mem[oc * ohw + p] = b[oc];
    j.col = gx ? mem + bn : x;
    if (gx)
        qd_ctx_for(ctx, s->n, max64(1, PIXEL_GRAIN_FLOATS / max64(1, K)), plane_gather_x, &j);
    atomic_init(&j.fail, 0);
    if (nt > 1 && items >= nt) {
        qd_blas_set_threads(1);
        qd_ctx_for(ctx, items, 1, plane_items, &j);
    } else {
        qd_blas_set_threads(qd_blas_threads_for((int)nt, s->n * s->co * ohw * K));
        plane_items(&j, 0, items, 0);
    }
    return atomic_load(&j.fail) ? QD_EFAIL : QD_OK;
}

/* ---- dispatch ---- */

qd_conv_algo qd_conv_pick(const qd_conv_shape *s)
{
    if (qd_conv_can(s, QD_CONV_PIXEL))
        return QD_CONV_PIXEL;
    if (s->ci == s->group && s->ci > 0)
        return QD_CONV_DEPTHWISE;
    if (qd_conv_can(s, QD_CONV_GEMM1X1))
        return QD_CONV_GEMM1X1;
    int64_t iy0, ih, ix0, iw;
    if (qd_conv_can(s, QD_CONV_PLANE) && s->n >= PLANE_MIN_BATCH && plane_cells(s, &iy0, &ih, &ix0, &iw) >= 0 &&
        ih * iw * PLANE_PICK_RATIO <= s->kh * s->kw)
        return QD_CONV_PLANE;
    if (qd_conv_can(s, QD_CONV_WINOGRAD) && s->ci >= WINO_MIN_CH && s->co >= WINO_MIN_CH &&
        s->n * ((s->oh + 1) / 2) * ((s->ow + 1) / 2) >= WINO_MIN_BATCH_TILES)
        return QD_CONV_WINOGRAD;
    return QD_CONV_IM2COL;
}

int qd_conv_can(const qd_conv_shape *s, qd_conv_algo algo)
{
    switch (algo) {
    case QD_CONV_GEMM1X1:
        return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 && s->pl == 0 &&
               s->oh == s->h && s->ow == s->w;
    case QD_CONV_IM2COL: return 1;
    case QD_CONV_DEPTHWISE: return s->ci == s->group && s->ci > 0;
    case QD_CONV_WINOGRAD:
        return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
               s->group == 1;
    case QD_CONV_PIXEL: return s->oh == 1 && s->ow == 1;
    case QD_CONV_PLANE: {
        int64_t iy0, ih, ix0, iw, cells = s->group == 1 ? plane_cells(s, &iy0, &ih, &ix0, &iw) : -1;
        return cells >= 0 && cells <= PLANE_MAX_RATIO * s->kh * s->kw;
    }
    }
    return 0;
}

int qd_conv(const qd_conv_shape *s, const float *x, const float *w, const float *b,
            float *y, qd_ctx *ctx)
{
    if (s->n <= 0 || s->co <= 0 || s->oh <= 0 || s->ow <= 0)
        return QD_OK;
    return qd_conv_with(qd_conv_pick(s), s, x, w, b, y, ctx);
}

int qd_conv_with(qd_conv_algo algo, const qd_conv_shape *s, const float *x, const float *w,
                 const float *b, float *y, qd_ctx *ctx)
{
    if (!qd_conv_can(s, algo))
        return QD_EINPUT;
    if (s->n <= 0 || s->co <= 0 || s->oh <= 0 || s->ow <= 0)
        return QD_OK;
    switch (algo) {
    case QD_CONV_DEPTHWISE: return conv_depthwise(s, x, w, b, y, ctx);
    case QD_CONV_GEMM1X1: return conv_gemm(s, x, w, b, y, ctx, 1);
    case QD_CONV_WINOGRAD: return conv_winograd(s, x, w, b, y, ctx);
    case QD_CONV_PIXEL: return conv_pixel(s, x, w, b, y, ctx);
    case QD_CONV_PLANE: return conv_plane(s, x, w, b, y, ctx);
    case QD_CONV_IM2COL: break;
    }
    return conv_gemm(s, x, w, b, y, ctx, 0);
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
