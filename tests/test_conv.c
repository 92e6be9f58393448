/* test_conv.c - Conv, ConvTranspose, Gemm, MatMul: optimized kernels against
 * the reference loops on many random cases (threads 1 and 2), the operators
 * through check/infer/run with hand-built nodes, and the errors they report.
 * `test_conv --bench` prints GFLOP/s of ResNet/MobileNet-like layers,
 * `test_conv --bench3x3 THREADS` im2col against Winograd on ResNet's 3x3s,
 * `test_conv --benchpixel THREADS` the 1x1-output layers before and with
 * the single-pixel path, `test_conv --benchsmall THREADS` the layers with
 * 4x4 and 2x2 outputs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "kernels_conv.h"
#include "ops.h"

/* ---- helpers ---- */

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1)); }

static float *rnd_floats(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(rnd() % 20001) / 10000.0f - 1.0f;
    return p;
}

static void fill_rnd(qd_tensor *t)
{
    float *p = t->data;
    for (int64_t i = 0; i < qd_tensor_numel(t); i++)
        p[i] = (float)(rnd() % 20001) / 10000.0f - 1.0f;
}

static qd_ctx *ctx_new(int nthreads)
{
    qd_ctx *c = calloc(1, sizeof *c);
    c->nthreads = nthreads;
    c->pool = nthreads > 1 ? qd_pool_new(nthreads) : NULL;
    return c;
}

static void ctx_free(qd_ctx *c)
{
    for (int i = 0; i < 64; i++)
        free(c->scratch[i]);
    qd_pool_free(c->pool);
    free(c);
}

/* max |got - ref| <= 1e-5 * max(1, max|ref|) * sqrt(K); NaN fails */
static int close_enough(const char *what, const float *got, const float *ref, int64_t n, int64_t k)
{
    double err = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= err))
            err = d;
        if (fabs(ref[i]) > mag)
            mag = fabs(ref[i]);
    }
    double tol = 1e-5 * (mag > 1 ? mag : 1) * sqrt((double)(k > 1 ? k : 1));
    ok(err <= tol, "%s: max err %.3g > tol %.3g", what, err, tol);
    return err <= tol;
}

/* ---- kernel-level convolution ---- */

/* Fill the output size from pads (top, bottom, left, right); 0 if empty. */
static int conv_out(qd_conv_shape *s, int64_t pb, int64_t pr)
{
    int64_t dkh = s->dh * (s->kh - 1) + 1, dkw = s->dw * (s->kw - 1) + 1;
    int64_t eh = s->h + s->pt + pb - dkh, ew = s->w + s->pl + pr - dkw;
    if (eh < 0 || ew < 0)
        return 0;
    s->oh = eh / s->sh + 1;
    s->ow = ew / s->sw + 1;
    return 1;
}

/* y = conv(x, w, b) by algo (-1: qd_conv's pick) and by the reference; b used or not */
static void conv_cmp_algo(const qd_conv_shape *s, qd_ctx *ctx, int with_bias, const char *tag, int algo)
{
    int64_t cig = s->ci / s->group;
    int64_t nx = s->n * s->ci * s->h * s->w, nw = s->co * cig * s->kh * s->kw;
    int64_t ny = s->n * s->co * s->oh * s->ow;
    float *x = rnd_floats(nx), *w = rnd_floats(nw), *b = with_bias ? rnd_floats(s->co) : NULL;
    float *y = malloc((size_t)ny * sizeof *y), *r = malloc((size_t)ny * sizeof *r);
    for (int64_t i = 0; i < ny; i++)
        y[i] = NAN;
    int rc = algo < 0 ? qd_conv(s, x, w, b, y, ctx) : qd_conv_with((qd_conv_algo)algo, s, x, w, b, y, ctx);
    qd_conv_ref(s, x, w, b, r);
    char what[256];
    snprintf(what, sizeof what,
             "conv %s n%lld ci%lld %lldx%lld co%lld k%lldx%lld s%lld,%lld d%lld,%lld p%lld,%lld o%lldx%lld g%lld t%d algo%d",
             tag, (long long)s->n, (long long)s->ci, (long long)s->h, (long long)s->w, (long long)s->co,
             (long long)s->kh, (long long)s->kw, (long long)s->sh, (long long)s->sw, (long long)s->dh,
             (long long)s->dw, (long long)s->pt, (long long)s->pl, (long long)s->oh, (long long)s->ow,
             (long long)s->group, ctx->nthreads, algo < 0 ? (int)qd_conv_pick(s) : algo);
    ok(rc == QD_OK, "%s: rc %d", what, rc);
    close_enough(what, y, r, ny, cig * s->kh * s->kw);
    free(x), free(w), free(b), free(y), free(r);
}

static void conv_cmp(const qd_conv_shape *s, qd_ctx *ctx, int with_bias, const char *tag)
{
    conv_cmp_algo(s, ctx, with_bias, tag, -1);
}

static qd_conv_shape shape2d(int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t k,
                             int64_t st, int64_t d, int64_t p, int64_t g)
{
    qd_conv_shape s = {.n = n, .ci = ci, .h = h, .w = w, .co = co, .kh = k, .kw = k, .sh = st, .sw = st,
                       .dh = d, .dw = d, .pt = p, .pl = p, .group = g, .lo = -INFINITY, .hi = INFINITY};
    conv_out(&s, p, p);
    return s;
}

static void test_conv_fixed(qd_ctx *c1, qd_ctx *c2)
{
    qd_ctx *cs[2] = {c1, c2};
    for (int t = 0; t < 2; t++) {
        qd_ctx *c = cs[t];
        /* ResNet-ish: 3x3, 1x1 direct, 1x1 stride 2, 7x7 stride 2 */
        qd_conv_shape s = shape2d(3, 16, 20, 20, 24, 3, 1, 1, 1, 1);
        conv_cmp(&s, c, 1, "3x3");
        s = shape2d(3, 16, 20, 20, 24, 1, 1, 1, 0, 1);
        ok(qd_conv_pick(&s) == QD_CONV_GEMM1X1, "1x1 picks the direct sgemm");
        conv_cmp(&s, c, 1, "1x1");
        s = shape2d(3, 16, 21, 21, 24, 1, 2, 1, 0, 1);
        conv_cmp(&s, c, 0, "1x1 s2");
        s = shape2d(1, 3, 45, 45, 8, 7, 2, 1, 3, 1);
        conv_cmp(&s, c, 1, "7x7 s2");
        /* several im2col tiles per image (batch 1 and 3) */
        s = shape2d(1, 16, 48, 44, 8, 3, 1, 1, 1, 1);
        conv_cmp(&s, c, 1, "tiled");
        s = shape2d(3, 32, 40, 40, 8, 3, 1, 1, 1, 1);
        conv_cmp(&s, c, 1, "tiled b3");
        /* depthwise (MobileNet), with multiplier, wide and narrow planes */
        s = shape2d(3, 12, 56, 56, 12, 3, 1, 1, 1, 12);
        ok(qd_conv_pick(&s) == QD_CONV_DEPTHWISE, "depthwise picks the direct kernel");
        conv_cmp(&s, c, 1, "dw");
        s = shape2d(3, 12, 57, 57, 12, 3, 2, 1, 1, 12);
        conv_cmp(&s, c, 1, "dw s2");
        s = shape2d(2, 6, 9, 7, 12, 3, 1, 1, 1, 6);
        conv_cmp(&s, c, 1, "dw x2 narrow");
        s = shape2d(2, 4, 30, 33, 8, 5, 2, 1, 2, 4);
        conv_cmp(&s, c, 0, "dw x2 5x5 s2");
        s = shape2d(2, 4, 30, 33, 4, 3, 3, 2, 2, 4);
        conv_cmp(&s, c, 1, "dw s3 d2");
        s = shape2d(2, 1, 28, 28, 16, 5, 1, 1, 2, 1);
        conv_cmp(&s, c, 1, "single input channel");
        /* grouped */
        s = shape2d(3, 8, 15, 13, 12, 3, 1, 1, 1, 2);
        conv_cmp(&s, c, 1, "g2");
        s = shape2d(2, 32, 14, 14, 64, 3, 2, 1, 1, 8);
        conv_cmp(&s, c, 1, "g8 s2");
        /* fused clamp (Relu6) in every path */
        s = shape2d(2, 16, 12, 12, 8, 3, 1, 1, 1, 1);
        s.lo = 0, s.hi = 6;
        conv_cmp(&s, c, 1, "clamp im2col");
        s = shape2d(2, 16, 12, 12, 8, 1, 1, 1, 0, 1);
        s.lo = 0, s.hi = 0.5f;
        conv_cmp(&s, c, 1, "clamp 1x1");
        s = shape2d(2, 8, 19, 19, 8, 3, 1, 1, 1, 8);
        s.lo = 0, s.hi = 0.25f;
        conv_cmp(&s, c, 1, "clamp dw");
        /* asymmetric pads, rectangular kernels */
        s = (qd_conv_shape){.n = 2, .ci = 4, .h = 11, .w = 17, .co = 6, .kh = 2, .kw = 5, .sh = 2, .sw = 1,
                            .dh = 1, .dw = 2, .pt = 0, .pl = 3, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 1, 0);
        conv_cmp(&s, c, 1, "asym");
        /* 1-D */
        s = (qd_conv_shape){.n = 3, .ci = 6, .h = 1, .w = 50, .co = 4, .kh = 1, .kw = 5, .sh = 1, .sw = 2,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 2, .group = 2, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 1);
        conv_cmp(&s, c, 1, "1-D");
        s = (qd_conv_shape){.n = 3, .ci = 6, .h = 1, .w = 40, .co = 6, .kh = 1, .kw = 3, .sh = 1, .sw = 1,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 1, .group = 6, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 1);
        conv_cmp(&s, c, 1, "1-D dw");
    }
}

/* random cases over every attribute */
static void test_conv_random(qd_ctx *c1, qd_ctx *c2, int count)
{
    static const int64_t ks[] = {1, 3, 5, 7};
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.lo = -INFINITY, .hi = INFINITY};
        int kind = (int)rnd_in(0, 3); /* 0 regular, 1 grouped, 2 depthwise, 3 depthwise x2 */
        int oned = rnd_in(0, 5) == 0;
        s.n = rnd_in(0, 1) ? 3 : 1;
        s.group = kind == 0 ? 1 : kind == 1 ? 2 : rnd_in(1, 6);
        s.ci = kind >= 2 ? s.group : s.group * rnd_in(1, 5);
        s.co = kind == 3 ? 2 * s.ci : kind == 2 ? s.ci : s.group * rnd_in(1, 5);
        s.kh = oned ? 1 : ks[rnd_in(0, 3)];
        s.kw = rnd_in(0, 3) ? s.kh : ks[rnd_in(0, 3)];
        if (oned && s.kw == 1 && rnd_in(0, 1))
            s.kw = 3;
        s.sh = oned ? 1 : rnd_in(1, 2);
        s.sw = rnd_in(1, 2);
        s.dh = oned ? 1 : rnd_in(1, 2);
        s.dw = rnd_in(1, 2);
        s.h = oned ? 1 : rnd_in(1, 24);
        s.w = rnd_in(1, 24);
        int64_t pb = oned ? 0 : rnd_in(0, s.kh - 1), pr = rnd_in(0, s.kw - 1);
        s.pt = oned ? 0 : rnd_in(0, s.kh - 1);
        s.pl = rnd_in(0, s.kw - 1);
        if (!conv_out(&s, pb, pr)) {
            i--;
            continue;
        }
        if (rnd_in(0, 7) == 0)
            s.lo = 0, s.hi = rnd_in(0, 1) ? 0.5f : INFINITY;
        conv_cmp(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "random");
    }
}

/* Winograd F(2x2, 3x3) forced on 3x3 stride-1 shapes it would not always be
 * picked for: odd and tiny planes, pads 0/1/2 and asymmetric, batch 1 and 3,
 * several tile blocks, clamps, transforms by rows of tiles (wide planes) and
 * gathered across rows (narrow ones); plus the shapes qd_conv_pick gives it. */
static void test_conv_winograd(qd_ctx *c1, qd_ctx *c2, int count)
{
    qd_ctx *cs[2] = {c1, c2};
    for (int t = 0; t < 2; t++) {
        qd_conv_shape s = shape2d(2, 32, 14, 14, 32, 3, 1, 1, 1, 1);
        ok(qd_conv_pick(&s) == QD_CONV_WINOGRAD, "3x3 s1 32->32 picks Winograd");
        conv_cmp(&s, cs[t], 1, "wino pick");
        s = shape2d(2, 32, 14, 14, 32, 3, 2, 1, 1, 1);
        ok(!qd_conv_can(&s, QD_CONV_WINOGRAD), "no Winograd for stride 2");
        ok(qd_conv_with(QD_CONV_WINOGRAD, &s, NULL, NULL, NULL, NULL, cs[t]) == QD_EINPUT,
           "forced Winograd on stride 2 is refused");
        s = shape2d(2, 32, 14, 14, 32, 3, 1, 2, 2, 1);
        ok(!qd_conv_can(&s, QD_CONV_WINOGRAD), "no Winograd for dilation 2");
        s = shape2d(2, 32, 14, 14, 32, 3, 1, 1, 1, 2);
        ok(!qd_conv_can(&s, QD_CONV_WINOGRAD), "no Winograd for groups");
        /* ResNet-like, with the fused Relu, several blocks per image */
        s = shape2d(3, 64, 56, 56, 64, 3, 1, 1, 1, 1);
        s.lo = 0;
        conv_cmp_algo(&s, cs[t], 1, "wino 56x56 relu", QD_CONV_WINOGRAD);
        s = shape2d(3, 256, 7, 7, 128, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, cs[t], 1, "wino 7x7 blocks across images", QD_CONV_WINOGRAD);
        s = shape2d(1, 1, 1, 1, 1, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, cs[t], 1, "wino 1x1 plane", QD_CONV_WINOGRAD);
        s = shape2d(1, 3, 3, 3, 2, 3, 1, 1, 0, 1);
        conv_cmp_algo(&s, cs[t], 0, "wino 3x3 plane no pad", QD_CONV_WINOGRAD);
        /* small planes go VL tiles at a time across rows and images: two
         * blocks (the second short), odd planes whose last tiles are cut */
        s = shape2d(40, 64, 4, 4, 64, 3, 1, 1, 1, 1);
        s.lo = 0;
        conv_cmp_algo(&s, cs[t], 1, "wino 4x4 two blocks", QD_CONV_WINOGRAD);
        s = shape2d(3, 20, 13, 7, 24, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, cs[t], 1, "wino 13x7 gathered", QD_CONV_WINOGRAD);
        s = shape2d(2, 9, 5, 30, 7, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, cs[t], 0, "wino 5x30 by rows", QD_CONV_WINOGRAD);
    }
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .group = 1,
                           .lo = -INFINITY, .hi = INFINITY};
        s.n = rnd_in(0, 1) ? 3 : 1;
        s.ci = rnd_in(1, 40);
        s.co = rnd_in(1, 40);
        s.h = rnd_in(1, 40);
        s.w = rnd_in(1, 40);
        s.pt = rnd_in(0, 2);
        s.pl = rnd_in(0, 2);
        int64_t pb = rnd_in(0, 2), pr = rnd_in(0, 2);
        if (!conv_out(&s, pb, pr)) {
            i--;
            continue;
        }
        int c = (int)rnd_in(0, 3);
        if (c == 1)
            s.lo = 0;
        else if (c == 2)
            s.lo = 0, s.hi = 0.5f;
        conv_cmp_algo(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "wino random", QD_CONV_WINOGRAD);
    }
}

/* 1x1 stride-1 unpadded (sgemm straight on x, epilogue on the tile): odd
 * channel counts and planes, batch 1 and 3, clamps. */
static void test_conv_1x1(qd_ctx *c1, qd_ctx *c2, int count)
{
    for (int i = 0; i < count; i++) {
        int64_t hw = rnd_in(1, 20);
        qd_conv_shape s = shape2d(rnd_in(0, 1) ? 3 : 1, rnd_in(1, 40), hw, rnd_in(1, 40), rnd_in(1, 40), 1, 1, 1,
                                  0, 1);
        int c = (int)rnd_in(0, 2);
        if (c == 1)
            s.lo = 0, s.hi = 6;
        else if (c == 2)
            s.lo = -0.5f, s.hi = 0.5f;
        conv_cmp(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "1x1 random");
    }
    /* output channels a multiple of 8 and inputs on both sides of the
     * small-K kernel's limit: the register-blocked path, column tails */
    for (int i = 0; i < count / 2; i++) {
        int64_t hw = rnd_in(1, 30);
        qd_conv_shape s = shape2d(rnd_in(1, 3), rnd_in(1, 200), hw, rnd_in(1, 30), 8 * rnd_in(1, 6), 1, 1, 1, 0, 1);
        if (i % 3 == 1)
            s.lo = 0, s.hi = 6;
        conv_cmp(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "1x1 small-K");
    }
}

/* Single output pixel (oh == ow == 1): qd_conv_pick takes QD_CONV_PIXEL for
 * every such shape and no other; forced and picked runs on ResNet's layer4
 * and MobileNetV2's last shapes, grouped and depthwise, dilated, asymmetric
 * pads, no live tap at all (y = bias), batch 1 and more, clamps; random
 * shapes with a 1x1 output. */
static void test_conv_pixel(qd_ctx *c1, qd_ctx *c2, int count)
{
    qd_ctx *cs[2] = {c1, c2};
    const int P = QD_CONV_PIXEL;
    for (int t = 0; t < 2; t++) {
        qd_ctx *c = cs[t];
        /* ResNet-18 layer4: 3x3 pad 1 on a 1x1 plane (1 live tap), the
         * stride-2 2x2 -> 1x1 (4 live taps: col is x), the 1x1 downsample */
        qd_conv_shape s = shape2d(3, 64, 1, 1, 48, 3, 1, 1, 1, 1);
        ok(qd_conv_pick(&s) == QD_CONV_PIXEL, "3x3 pad 1 on 1x1 picks the pixel path");
        conv_cmp_algo(&s, c, 1, "pixel 3x3 1x1 plane", P);
        s.lo = 0;
        conv_cmp(&s, c, 1, "pixel 3x3 1x1 plane relu");
        s = shape2d(2, 512, 1, 1, 512, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, c, 1, "pixel layer4 512", P);
        s = shape2d(1, 3, 1, 1, 5, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, c, 0, "pixel 3x3 tiny", P);
        s = shape2d(3, 32, 2, 2, 40, 3, 2, 1, 1, 1);
        ok(s.oh == 1 && s.ow == 1 && qd_conv_pick(&s) == QD_CONV_PIXEL, "3x3 s2 2x2 -> 1x1 picks the pixel path");
        conv_cmp_algo(&s, c, 1, "pixel 3x3 s2 2x2", P);
        s.lo = 0, s.hi = 0.5f;
        conv_cmp(&s, c, 0, "pixel 3x3 s2 2x2 clamp");
        s = shape2d(3, 16, 2, 2, 24, 1, 2, 1, 0, 1);
        conv_cmp_algo(&s, c, 1, "pixel 1x1 s2 2x2", P);
        /* 1x1 kernel on a 1x1 plane (MobileNetV2's last blocks): no gathers */
        s = shape2d(3, 160, 1, 1, 96, 1, 1, 1, 0, 1);
        ok(qd_conv_pick(&s) == QD_CONV_PIXEL, "1x1 on a 1x1 plane picks the pixel path");
        conv_cmp_algo(&s, c, 1, "pixel 1x1", P);
        s.lo = 0, s.hi = 6;
        conv_cmp_algo(&s, c, 1, "pixel 1x1 relu6", P);
        s = shape2d(1, 7, 1, 1, 3, 1, 1, 1, 0, 1);
        conv_cmp(&s, c, 0, "pixel 1x1 n1");
        /* many inputs per output over a small batch: the transposed
         * register-blocked product (ShuffleNetV2's conv5; a column tail and
         * gathered taps; over PIXEL_T_MAX_N images: sgemm) */
        s = shape2d(64, 464, 1, 1, 1024, 1, 1, 1, 0, 1);
        s.lo = 0;
        conv_cmp_algo(&s, c, 1, "pixel wide K conv5 relu", P);
        s = shape2d(33, 96, 2, 2, 64, 3, 2, 1, 1, 1);
        ok(s.oh == 1 && s.ow == 1, "3x3 s2 2x2 K 384 -> 1x1");
        conv_cmp_algo(&s, c, 1, "pixel wide K tail gathered", P);
        conv_cmp_algo(&s, c, 0, "pixel wide K no bias", P);
        s = shape2d(130, 200, 1, 1, 24, 1, 1, 1, 0, 1);
        conv_cmp_algo(&s, c, 1, "pixel wide K batch 130", P);
        /* depthwise: one live tap (channels by vectors, with a tail), four
         * live taps (s2 on 2x2), a multiplier, n = 1 */
        s = shape2d(3, 40, 1, 1, 40, 3, 1, 1, 1, 40);
        ok(qd_conv_pick(&s) == QD_CONV_PIXEL, "depthwise on a 1x1 plane picks the pixel path");
        conv_cmp_algo(&s, c, 1, "pixel dw", P);
        s.lo = 0, s.hi = 0.25f;
        conv_cmp_algo(&s, c, 1, "pixel dw clamp", P);
        conv_cmp_algo(&s, c, 0, "pixel dw clamp no bias", P);
        s = shape2d(1, 37, 1, 1, 37, 3, 1, 1, 1, 37);
        conv_cmp(&s, c, 1, "pixel dw n1");
        s = shape2d(3, 24, 2, 2, 24, 3, 2, 1, 1, 24);
        conv_cmp_algo(&s, c, 1, "pixel dw s2 2x2", P);
        s = shape2d(2, 8, 1, 1, 16, 3, 1, 1, 1, 8);
        conv_cmp_algo(&s, c, 1, "pixel dw x2", P);
        /* grouped, not depthwise: short and long dot products (with a tail) */
        s = shape2d(3, 32, 1, 1, 64, 3, 1, 1, 1, 8);
        conv_cmp_algo(&s, c, 1, "pixel g8", P);
        s = shape2d(2, 64, 2, 2, 32, 3, 2, 1, 1, 2);
        conv_cmp_algo(&s, c, 1, "pixel g2 s2", P);
        s = shape2d(1, 74, 2, 2, 6, 3, 2, 1, 1, 2);
        s.lo = -0.5f, s.hi = 0.5f;
        conv_cmp_algo(&s, c, 1, "pixel g2 tail clamp", P);
        /* the kernel covers the plane: every tap live, no gathers */
        s = shape2d(3, 6, 7, 7, 10, 7, 1, 1, 0, 1);
        conv_cmp_algo(&s, c, 1, "pixel 7x7 on 7x7", P);
        s = shape2d(2, 5, 7, 7, 5, 7, 1, 1, 0, 5);
        conv_cmp_algo(&s, c, 1, "pixel dw 7x7 on 7x7", P);
        /* dilation 2: one live tap of 9 on 3x3 (pad 1); all 9 on 5x5 (pad 0) */
        s = shape2d(3, 8, 3, 3, 12, 3, 1, 2, 1, 1);
        ok(s.oh == 1 && s.ow == 1, "d2 3x3 pad 1 -> 1x1");
        conv_cmp_algo(&s, c, 1, "pixel d2 pad 1", P);
        s = shape2d(2, 8, 5, 5, 12, 3, 1, 2, 0, 1);
        conv_cmp_algo(&s, c, 1, "pixel d2 pad 0", P);
        s = shape2d(2, 8, 5, 5, 8, 3, 1, 2, 0, 8);
        conv_cmp_algo(&s, c, 1, "pixel dw d2", P);
        /* asymmetric pads and strides, rectangular kernel: taps (2, 0..1) */
        s = (qd_conv_shape){.n = 3, .ci = 5, .h = 2, .w = 3, .co = 7, .kh = 3, .kw = 2, .sh = 2, .sw = 3,
                            .dh = 1, .dw = 1, .pt = 2, .pl = 0, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        ok(s.oh == 1 && s.ow == 1, "asym -> 1x1");
        conv_cmp_algo(&s, c, 1, "pixel asym", P);
        s.group = 5, s.co = 10;
        conv_cmp_algo(&s, c, 1, "pixel asym dw x2", P);
        /* 1-D */
        s = (qd_conv_shape){.n = 2, .ci = 4, .h = 1, .w = 3, .co = 6, .kh = 1, .kw = 3, .sh = 1, .sw = 1,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 0, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        conv_cmp_algo(&s, c, 1, "pixel 1-D", P);
        /* no live tap: every tap reads padding, y = clamp(bias) */
        s = (qd_conv_shape){.n = 3, .ci = 4, .h = 1, .w = 1, .co = 6, .kh = 2, .kw = 2, .sh = 2, .sw = 2,
                            .dh = 1, .dw = 1, .pt = 2, .pl = 2, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        ok(s.oh == 1 && s.ow == 1, "no live tap -> 1x1");
        conv_cmp_algo(&s, c, 1, "pixel no tap", P);
        conv_cmp_algo(&s, c, 0, "pixel no tap no bias", P);
        s.lo = 0, s.hi = 0.25f;
        conv_cmp_algo(&s, c, 1, "pixel no tap clamp", P);
        s.group = 2;
        conv_cmp_algo(&s, c, 1, "pixel no tap g2", P);
        s.group = 4, s.co = 4;
        conv_cmp_algo(&s, c, 1, "pixel no tap dw", P);
        s = (qd_conv_shape){.n = 2, .ci = 3, .h = 3, .w = 2, .co = 4, .kh = 3, .kw = 2, .sh = 1, .sw = 4,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 2, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        conv_cmp_algo(&s, c, 1, "pixel no live column", P);
        /* not one pixel: not picked, refused when forced */
        s = shape2d(2, 64, 2, 2, 64, 3, 1, 1, 1, 1);
        ok(s.oh == 2 && qd_conv_pick(&s) != QD_CONV_PIXEL && !qd_conv_can(&s, QD_CONV_PIXEL),
           "2x2 output: no pixel path");
        ok(qd_conv_with(QD_CONV_PIXEL, &s, NULL, NULL, NULL, NULL, c) == QD_EINPUT,
           "forced pixel path on a 2x2 output is refused");
        s = shape2d(2, 8, 2, 2, 8, 3, 1, 1, 1, 8);
        ok(qd_conv_pick(&s) == QD_CONV_DEPTHWISE, "depthwise 2x2 output keeps the depthwise kernel");
        s = (qd_conv_shape){.n = 2, .ci = 4, .h = 1, .w = 4, .co = 6, .kh = 1, .kw = 3, .sh = 1, .sw = 1,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 0, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        ok(s.oh == 1 && s.ow == 2 && !qd_conv_can(&s, QD_CONV_PIXEL), "1x2 output: no pixel path");
    }
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.lo = -INFINITY, .hi = INFINITY};
        int kind = (int)rnd_in(0, 3); /* 0 regular, 1 grouped, 2 depthwise, 3 depthwise x2 */
        s.n = (int64_t[]){1, 2, 5}[rnd_in(0, 2)];
        s.group = kind == 0 ? 1 : kind == 1 ? rnd_in(2, 3) : rnd_in(1, 40);
        s.ci = kind >= 2 ? s.group : s.group * rnd_in(1, 24);
        s.co = kind == 3 ? 2 * s.ci : kind == 2 ? s.ci : s.group * rnd_in(1, 24);
        s.kh = rnd_in(1, 5);
        s.kw = rnd_in(0, 2) ? s.kh : rnd_in(1, 5);
        s.sh = rnd_in(1, 3);
        s.sw = rnd_in(1, 3);
        s.dh = rnd_in(1, 2);
        s.dw = rnd_in(1, 2);
        s.h = rnd_in(1, 6);
        s.w = rnd_in(1, 6);
        s.pt = rnd_in(0, s.kh);
        s.pl = rnd_in(0, s.kw);
        if (!conv_out(&s, rnd_in(0, s.kh), rnd_in(0, s.kw)) || s.oh != 1 || s.ow != 1) {
            i--;
            continue;
        }
        if (rnd_in(0, 3) == 0)
            s.lo = 0, s.hi = rnd_in(0, 1) ? 0.5f : INFINITY;
        conv_cmp_algo(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "pixel random", rnd_in(0, 1) ? P : -1);
    }
}

/* Small output planes (up to 16 pixels): GEMM1X1 and im2col gather several
 * images side by side through a table of offsets (smallk on the gathered
 * columns when K is small), the depthwise kernel goes VL channels at a time
 * per output pixel; MobileNetV2's, ShuffleNetV2's and ResNet-18's shapes,
 * then random ones with planes on both sides of the limit. */
static void test_conv_small(qd_ctx *c1, qd_ctx *c2, int count)
{
    qd_ctx *cs[2] = {c1, c2};
    const int D = QD_CONV_DEPTHWISE;
    for (int t = 0; t < 2; t++) {
        qd_ctx *c = cs[t];
        /* 1x1 on 2x2 and 4x4: small K (smallk), large K, cog not a multiple of 8 */
        qd_conv_shape s = shape2d(6, 96, 2, 2, 576, 1, 1, 1, 0, 1);
        s.lo = 0, s.hi = 6;
        ok(qd_conv_pick(&s) == QD_CONV_GEMM1X1, "1x1 on 2x2 picks GEMM1X1");
        conv_cmp(&s, c, 1, "small 1x1 96->576 2x2 relu6");
        s = shape2d(6, 576, 2, 2, 96, 1, 1, 1, 0, 1);
        conv_cmp(&s, c, 1, "small 1x1 576->96 2x2");
        s = shape2d(5, 32, 4, 4, 192, 1, 1, 1, 0, 1);
        conv_cmp(&s, c, 0, "small 1x1 32->192 4x4");
        s = shape2d(5, 58, 4, 4, 58, 1, 1, 1, 0, 1);
        s.lo = 0;
        conv_cmp(&s, c, 1, "small 1x1 58->58 4x4 relu");
        s = shape2d(7, 116, 2, 2, 116, 1, 1, 1, 0, 2);
        conv_cmp(&s, c, 1, "small 1x1 g2 2x2");
        /* im2col: ResNet's stride-2 3x3 and 1x1 onto 4x4 and 2x2, a 3x3 on 4x4 */
        s = shape2d(5, 64, 7, 7, 32, 3, 2, 1, 1, 1);
        s.lo = 0;
        conv_cmp_algo(&s, c, 1, "small 3x3 s2 7->4", QD_CONV_IM2COL);
        s = shape2d(5, 32, 4, 4, 48, 1, 2, 1, 0, 1);
        conv_cmp_algo(&s, c, 0, "small 1x1 s2 4->2", QD_CONV_IM2COL);
        s = shape2d(5, 40, 4, 4, 24, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, c, 1, "small 3x3 4x4", QD_CONV_IM2COL);
        s = shape2d(4, 12, 4, 4, 12, 3, 1, 2, 2, 3);
        conv_cmp_algo(&s, c, 1, "small 3x3 d2 g3 4x4", QD_CONV_IM2COL);
        /* depthwise: 2x2 and 4x4 planes, stride 2 onto them, channel tails,
         * multipliers, a 5x5 kernel, no bias, n = 1 */
        s = shape2d(3, 576, 2, 2, 576, 3, 1, 1, 1, 576);
        s.lo = 0, s.hi = 6;
        ok(qd_conv_pick(&s) == QD_CONV_DEPTHWISE, "depthwise on 2x2 picks the depthwise kernel");
        conv_cmp(&s, c, 1, "small dw 576 2x2 relu6");
        s = shape2d(3, 58, 4, 4, 58, 3, 1, 1, 1, 58);
        conv_cmp_algo(&s, c, 1, "small dw 58 4x4", D);
        s = shape2d(3, 37, 7, 7, 37, 3, 2, 1, 1, 37);
        conv_cmp_algo(&s, c, 0, "small dw s2 7->4 no bias", D);
        s = shape2d(2, 116, 4, 4, 116, 3, 2, 1, 1, 116);
        s.lo = -0.25f, s.hi = 0.25f;
        conv_cmp_algo(&s, c, 1, "small dw s2 4->2 clamp", D);
        s = shape2d(1, 20, 2, 2, 20, 3, 1, 1, 1, 20);
        conv_cmp_algo(&s, c, 1, "small dw n1", D);
        s = shape2d(2, 9, 3, 3, 27, 3, 1, 1, 1, 9);
        conv_cmp_algo(&s, c, 1, "small dw x3", D);
        s = shape2d(2, 24, 4, 4, 48, 5, 1, 1, 2, 24);
        conv_cmp_algo(&s, c, 1, "small dw x2 5x5", D);
        s = shape2d(2, 17, 4, 4, 17, 3, 1, 2, 1, 17);
        conv_cmp_algo(&s, c, 1, "small dw d2", D);
        /* just past the limits: 5x4 output, and a 17x17 input onto 2x2 */
        s = shape2d(2, 19, 5, 4, 19, 3, 1, 1, 1, 19);
        conv_cmp_algo(&s, c, 1, "dw 5x4 plane", D);
        s = shape2d(2, 19, 17, 17, 19, 3, 8, 1, 1, 19);
        ok(s.oh * s.ow <= 16, "17x17 s8 -> small output");
        conv_cmp_algo(&s, c, 1, "dw large input small output", D);
    }
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.lo = -INFINITY, .hi = INFINITY};
        int kind = (int)rnd_in(0, 4); /* 0 1x1, 1 regular, 2 grouped, 3 depthwise, 4 depthwise x2 */
        s.n = rnd_in(1, 7);
        s.group = kind <= 1 ? 1 : kind == 2 ? rnd_in(2, 3) : rnd_in(1, 40);
        s.ci = kind >= 3 ? s.group : s.group * rnd_in(1, kind == 0 ? 200 : 24);
        s.co = kind == 4 ? 2 * s.ci : kind == 3 ? s.ci : s.group * (kind == 0 && rnd_in(0, 1) ? 8 * rnd_in(1, 8) : rnd_in(1, 24));
        s.kh = kind == 0 ? 1 : rnd_in(1, 5);
        s.kw = kind == 0 ? 1 : rnd_in(0, 2) ? s.kh : rnd_in(1, 5);
        s.sh = kind == 0 ? 1 : rnd_in(1, 3);
        s.sw = kind == 0 ? 1 : rnd_in(1, 3);
        s.dh = kind == 0 ? 1 : rnd_in(1, 2);
        s.dw = kind == 0 ? 1 : rnd_in(1, 2);
        s.h = rnd_in(1, 9);
        s.w = rnd_in(1, 9);
        s.pt = kind == 0 ? 0 : rnd_in(0, s.kh - 1);
        s.pl = kind == 0 ? 0 : rnd_in(0, s.kw - 1);
        int64_t pb = kind == 0 ? 0 : rnd_in(0, s.kh - 1), pr = kind == 0 ? 0 : rnd_in(0, s.kw - 1);
        if (!conv_out(&s, pb, pr) || s.oh * s.ow > 24 || s.oh * s.ow < 2) {
            i--;
            continue;
        }
        if (rnd_in(0, 3) == 0)
            s.lo = 0, s.hi = rnd_in(0, 1) ? 6.0f : INFINITY;
        int algo = kind >= 3 ? D : kind == 0 ? QD_CONV_GEMM1X1 : QD_CONV_IM2COL;
        conv_cmp_algo(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "small random", rnd_in(0, 1) ? algo : -1);
    }
}

/* The plane path (group 1, a small plane as one matrix): qd_conv_pick takes
 * it for ResNet-18's 3x3 on 2x2 from a batch of 16 and not below; forced on
 * shapes whose box of read inputs is the plane (col is x) or not (a
 * gather), with dead taps (zeros in wt), several blocks of output channels,
 * no live tap at all, clamps; random shapes it can compute. */
static void test_conv_plane(qd_ctx *c1, qd_ctx *c2, int count)
{
    qd_ctx *cs[2] = {c1, c2};
    const int P = QD_CONV_PLANE;
    for (int t = 0; t < 2; t++) {
        qd_ctx *c = cs[t];
        qd_conv_shape s = shape2d(16, 64, 2, 2, 48, 3, 1, 1, 1, 1);
        s.lo = 0;
        ok(qd_conv_pick(&s) == QD_CONV_PLANE, "3x3 pad 1 on 2x2, batch 16, picks the plane path");
        conv_cmp(&s, c, 1, "plane 3x3 2x2 relu");
        s.n = 15;
        ok(qd_conv_pick(&s) != QD_CONV_PLANE && qd_conv_can(&s, QD_CONV_PLANE), "batch 15: not picked");
        s = shape2d(17, 256, 2, 2, 256, 3, 1, 1, 1, 1);
        conv_cmp(&s, c, 1, "plane r18 l3 256 n17");
        /* several blocks of output channels, the last one short */
        s = shape2d(5, 200, 2, 2, 300, 3, 1, 1, 1, 1);
        s.lo = -0.5f, s.hi = 0.5f;
        conv_cmp_algo(&s, c, 1, "plane blocks clamp", P);
        conv_cmp_algo(&s, c, 0, "plane blocks clamp no bias", P);
        s = shape2d(1, 3, 2, 2, 5, 3, 1, 1, 1, 1);
        conv_cmp_algo(&s, c, 0, "plane tiny n1", P);
        /* 2x1, 1x2 and 3x3 planes, 5x5 pad 2 on 3x3 and 2x2, dilation 2 */
        s = (qd_conv_shape){.n = 3, .ci = 7, .h = 2, .w = 1, .co = 9, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                            .dh = 1, .dw = 1, .pt = 1, .pl = 1, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 1, 1);
        conv_cmp_algo(&s, c, 1, "plane 2x1", P);
        s.h = 1, s.w = 2;
        conv_out(&s, 1, 1);
        conv_cmp_algo(&s, c, 1, "plane 1x2", P);
        s = shape2d(3, 6, 3, 3, 10, 5, 1, 1, 2, 1);
        conv_cmp_algo(&s, c, 1, "plane 5x5 on 3x3", P);
        s = shape2d(18, 6, 2, 2, 10, 5, 1, 1, 2, 1);
        ok(qd_conv_pick(&s) == QD_CONV_PLANE, "5x5 pad 2 on 2x2 picks the plane path");
        conv_cmp(&s, c, 1, "plane 5x5 on 2x2");
        s = shape2d(3, 8, 2, 2, 12, 3, 1, 2, 2, 1);
        ok(s.oh == 2 && s.ow == 2, "3x3 d2 pad 2 on 2x2 -> 2x2");
        conv_cmp_algo(&s, c, 1, "plane d2 one live tap each", P);
        /* the box is not the plane: 1-D, stride 2, the last column unread */
        s = (qd_conv_shape){.n = 3, .ci = 5, .h = 1, .w = 6, .co = 4, .kh = 1, .kw = 3, .sh = 1, .sw = 2,
                            .dh = 1, .dw = 1, .pt = 0, .pl = 0, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 0, 0);
        ok(s.ow == 2 && qd_conv_can(&s, P), "1-D s2: 2 outputs, column 5 unread");
        conv_cmp_algo(&s, c, 1, "plane box gathered", P);
        /* stride 2 on 3x3: output row 0 reads rows 0..1, row 1 rows 1..2 */
        s = shape2d(2, 4, 3, 3, 6, 3, 2, 1, 1, 1);
        ok(s.oh == 2 && qd_conv_can(&s, P), "3x3 s2 on 3x3 -> 2x2, plane path");
        conv_cmp_algo(&s, c, 1, "plane s2 3x3 -> 2x2", P);
        /* no live tap at all: y = clamp(bias) */
        s = (qd_conv_shape){.n = 3, .ci = 4, .h = 1, .w = 1, .co = 6, .kh = 2, .kw = 2, .sh = 3, .sw = 3,
                            .dh = 1, .dw = 1, .pt = 2, .pl = 2, .group = 1, .lo = -INFINITY, .hi = INFINITY};
        conv_out(&s, 2, 2);
        ok(s.oh == 2 && s.ow == 2 && qd_conv_can(&s, P), "no live tap -> 2x2");
        conv_cmp_algo(&s, c, 1, "plane no tap", P);
        s.lo = 0, s.hi = 0.25f;
        conv_cmp_algo(&s, c, 1, "plane no tap clamp", P);
        /* refused: groups, a 4x4 plane (16 inputs > 4 * 9 / 4), 1x1 on 2x2 */
        s = shape2d(2, 8, 2, 2, 8, 3, 1, 1, 1, 2);
        ok(!qd_conv_can(&s, P), "no plane path for groups");
        ok(qd_conv_with(QD_CONV_PLANE, &s, NULL, NULL, NULL, NULL, c) == QD_EINPUT,
           "forced plane path with groups is refused");
        s = shape2d(32, 8, 4, 4, 8, 3, 1, 1, 1, 1);
        ok(!qd_conv_can(&s, P) && qd_conv_pick(&s) != QD_CONV_PLANE, "no plane path on 4x4");
        s = shape2d(32, 8, 2, 2, 8, 1, 1, 1, 0, 1);
        ok(!qd_conv_can(&s, P), "no plane path for 1x1 on 2x2");
    }
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.group = 1, .lo = -INFINITY, .hi = INFINITY};
        s.n = (int64_t[]){1, 3, 17}[rnd_in(0, 2)];
        s.ci = rnd_in(1, 40);
        s.co = rnd_in(1, 40);
        s.kh = rnd_in(1, 5);
        s.kw = rnd_in(0, 2) ? s.kh : rnd_in(1, 5);
        s.sh = rnd_in(1, 3);
        s.sw = rnd_in(1, 3);
        s.dh = rnd_in(1, 2);
        s.dw = rnd_in(1, 2);
        s.h = rnd_in(1, 5);
        s.w = rnd_in(1, 5);
        s.pt = rnd_in(0, s.kh);
        s.pl = rnd_in(0, s.kw);
        if (!conv_out(&s, rnd_in(0, s.kh), rnd_in(0, s.kw)) || !qd_conv_can(&s, QD_CONV_PLANE)) {
            i--;
            continue;
        }
        if (rnd_in(0, 3) == 0)
            s.lo = 0, s.hi = rnd_in(0, 1) ? 0.5f : INFINITY;
        conv_cmp_algo(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "plane random", rnd_in(0, 3) ? P : -1);
    }
}

/* ---- kernel-level transposed convolution ---- */

static void convt_cmp(const qd_conv_shape *s, qd_ctx *ctx, int with_bias, const char *tag)
{
    int64_t cog = s->co / s->group;
    int64_t nx = s->n * s->ci * s->h * s->w, nw = s->ci * cog * s->kh * s->kw;
    int64_t ny = s->n * s->co * s->oh * s->ow;
    float *x = rnd_floats(nx), *w = rnd_floats(nw), *b = with_bias ? rnd_floats(s->co) : NULL;
    float *y = malloc((size_t)ny * sizeof *y), *r = malloc((size_t)ny * sizeof *r);
    for (int64_t i = 0; i < ny; i++)
        y[i] = NAN;
    int rc = qd_convt(s, x, w, b, y, ctx);
    qd_convt_ref(s, x, w, b, r);
    char what[200];
    snprintf(what, sizeof what, "convt %s n%lld ci%lld %lldx%lld co%lld k%lldx%lld s%lld,%lld d%lld,%lld o%lldx%lld g%lld t%d",
             tag, (long long)s->n, (long long)s->ci, (long long)s->h, (long long)s->w, (long long)s->co,
             (long long)s->kh, (long long)s->kw, (long long)s->sh, (long long)s->sw, (long long)s->dh,
             (long long)s->dw, (long long)s->oh, (long long)s->ow, (long long)s->group, ctx->nthreads);
    ok(rc == QD_OK, "%s: rc %d", what, rc);
    close_enough(what, y, r, ny, s->ci / s->group * s->kh * s->kw);
    free(x), free(w), free(b), free(y), free(r);
}

static void test_convt_random(qd_ctx *c1, qd_ctx *c2, int count)
{
    for (int i = 0; i < count; i++) {
        qd_conv_shape s = {.lo = -INFINITY, .hi = INFINITY};
        int oned = rnd_in(0, 4) == 0;
        s.n = rnd_in(0, 1) ? 3 : 1;
        s.group = rnd_in(0, 2) ? 1 : rnd_in(2, 3);
        s.ci = s.group * rnd_in(1, 4);
        s.co = s.group * rnd_in(1, 4);
        s.kh = oned ? 1 : rnd_in(1, 5);
        s.kw = rnd_in(1, 5);
        s.sh = oned ? 1 : rnd_in(1, 3);
        s.sw = rnd_in(1, 3);
        s.dh = oned ? 1 : rnd_in(1, 2);
        s.dw = rnd_in(1, 2);
        s.h = oned ? 1 : rnd_in(1, 12);
        s.w = rnd_in(1, 12);
        s.pt = oned ? 0 : rnd_in(0, s.kh - 1);
        s.pl = rnd_in(0, s.kw - 1);
        int64_t pb = oned ? 0 : rnd_in(0, s.kh - 1), pr = rnd_in(0, s.kw - 1);
        int64_t oph = oned ? 0 : rnd_in(0, s.sh - 1), opw = rnd_in(0, s.sw - 1);
        s.oh = s.sh * (s.h - 1) + oph + s.dh * (s.kh - 1) + 1 - s.pt - pb;
        s.ow = s.sw * (s.w - 1) + opw + s.dw * (s.kw - 1) + 1 - s.pl - pr;
        if (s.oh <= 0 || s.ow <= 0) {
            i--;
            continue;
        }
        convt_cmp(&s, (i & 1) ? c2 : c1, (int)rnd_in(0, 1), "random");
    }
    /* a larger one with several col2im tiles */
    qd_conv_shape s = {.n = 3, .ci = 16, .h = 40, .w = 40, .co = 32, .kh = 4, .kw = 4, .sh = 2, .sw = 2,
                       .dh = 1, .dw = 1, .pt = 1, .pl = 1, .group = 1, .lo = -INFINITY, .hi = INFINITY};
    s.oh = 2 * 39 + 4 - 2;
    s.ow = s.oh;
    convt_cmp(&s, c1, 1, "tiled");
    convt_cmp(&s, c2, 1, "tiled");
    s.lo = 0, s.hi = 1;
    convt_cmp(&s, c2, 0, "clamp");
}

/* ---- operators through check / infer / run ---- */

typedef struct tnode {
    qd_node n;
    qd_attr attrs[8];
    int in[3], out[1];
} tnode;

static void tnode_init(tnode *t, const char *op, int nin)
{
    memset(t, 0, sizeof *t);
    t->n.name = (char *)"test";
    t->n.op_type = (char *)op;
    t->n.opset = 13;
    t->n.nin = nin;
    t->n.nout = 1;
    t->n.in = t->in;
    t->n.out = t->out;
    t->n.attrs = t->attrs;
    for (int i = 0; i < 3; i++)
        t->in[i] = i;
}

static qd_attr *tattr(tnode *t, const char *name, qd_attr_type type)
{
    qd_attr *a = &t->attrs[t->n.nattr++];
    a->name = (char *)name;
    a->type = type;
    return a;
}

static void tints(tnode *t, const char *name, int n, int64_t *v)
{
    qd_attr *a = tattr(t, name, QD_ATTR_INTS);
    a->n = n;
    a->ints = v;
}

static void tint(tnode *t, const char *name, int64_t v) { tattr(t, name, QD_ATTR_INT)->i = v; }
static void tfloat(tnode *t, const char *name, float v) { tattr(t, name, QD_ATTR_FLOAT)->f = v; }
static void tstr(tnode *t, const char *name, const char *v) { tattr(t, name, QD_ATTR_STRING)->s = (char *)v; }

static void tensor_new(qd_tensor *t, int nd, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    qd_tensor_resize(t, QD_F32, nd, shape, NULL);
    fill_rnd(t);
}

/* check + infer + run; returns the first failing code, e->msg says why */
static int run_node(tnode *t, qd_tensor **in, qd_tensor *out, qd_ctx *ctx, qd_err *e)
{
    const qd_op *op = qd_op_find(t->n.op_type);
    if (!op)
        return qd_errf(e, QD_EINPUT, "no op %s", t->n.op_type);
    int rc = op->check(&t->n, NULL, e);
    if (!rc)
        rc = op->infer(&t->n, in, &out, e);
    if (!rc)
        rc = op->run(&t->n, in, &out, ctx);
    if (t->n.priv && op->free_priv)
        op->free_priv(t->n.priv);
    t->n.priv = NULL;
    return rc;
}

static int shape_is(const qd_tensor *t, int nd, const int64_t *shape)
{
    if (t->ndim != nd)
        return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

/* Conv node on X (n, ci, h, w) with auto_pad; checks shape and values */
static void op_conv_autopad(qd_ctx *ctx, const char *autopad, int64_t h, int64_t w, int64_t k, int64_t st,
                            int64_t d, int64_t g)
{
    tnode t;
    tnode_init(&t, "Conv", 3);
    int64_t strides[2] = {st, st}, dils[2] = {d, d};
    tstr(&t, "auto_pad", autopad);
    tints(&t, "strides", 2, strides);
    tints(&t, "dilations", 2, dils);
    tint(&t, "group", g);
    int64_t xs[4] = {2, 2 * g, h, w}, ws[4] = {3 * g, 2, k, k}, bs[1] = {3 * g};
    qd_tensor X, W, B, Y = {0};
    tensor_new(&X, 4, xs);
    tensor_new(&W, 4, ws);
    tensor_new(&B, 1, bs);
    qd_tensor *in[3] = {&X, &W, &B};
    qd_err e = {0};
    int rc = run_node(&t, in, &Y, ctx, &e);
    ok(rc == QD_OK, "Conv %s: %s", autopad, e.msg);
    /* expected geometry, ONNX's rules */
    qd_conv_shape s = {.n = 2, .ci = 2 * g, .h = h, .w = w, .co = 3 * g, .kh = k, .kw = k, .sh = st, .sw = st,
                       .dh = d, .dw = d, .group = g, .lo = -INFINITY, .hi = INFINITY};
    int64_t dk = d * (k - 1) + 1;
    if (!strcmp(autopad, "VALID")) {
        s.oh = (h - dk) / st + 1, s.ow = (w - dk) / st + 1;
    } else {
        s.oh = (h + st - 1) / st, s.ow = (w + st - 1) / st;
        int64_t th = (s.oh - 1) * st + dk - h, tw = (s.ow - 1) * st + dk - w;
        th = th < 0 ? 0 : th, tw = tw < 0 ? 0 : tw;
        int upper = !strcmp(autopad, "SAME_UPPER");
        s.pt = upper ? th / 2 : th - th / 2;
        s.pl = upper ? tw / 2 : tw - tw / 2;
    }
    int64_t ys[4] = {2, 3 * g, s.oh, s.ow};
    ok(rc || shape_is(&Y, 4, ys), "Conv %s %lldx%lld k%lld s%lld: output %lldx%lld, got %s", autopad,
       (long long)h, (long long)w, (long long)k, (long long)st, (long long)s.oh, (long long)s.ow,
       qd_shape_str(Y.ndim, Y.shape, (char[64]){0}, 64));
    if (!rc && shape_is(&Y, 4, ys)) {
        float *r = malloc(qd_tensor_nbytes(&Y));
        qd_conv_ref(&s, X.data, W.data, B.data, r);
        close_enough(autopad, Y.data, r, qd_tensor_numel(&Y), 2 * k * k);
        free(r);
    }
    qd_tensor_free(&X), qd_tensor_free(&W), qd_tensor_free(&B), qd_tensor_free(&Y);
}

static void test_conv_op(qd_ctx *c1, qd_ctx *c2)
{
    const char *modes[] = {"SAME_UPPER", "SAME_LOWER", "VALID"};
    for (int m = 0; m < 3; m++) {
        op_conv_autopad(c1, modes[m], 7, 8, 3, 2, 1, 1);
        op_conv_autopad(c2, modes[m], 10, 9, 4, 1, 1, 2);
        op_conv_autopad(c1, modes[m], 11, 6, 3, 3, 2, 1);
        op_conv_autopad(c2, modes[m], 6, 6, 2, 2, 1, 1);
        op_conv_autopad(c1, modes[m], 5, 7, 1, 2, 1, 1); /* kernel < stride: no padding */
    }
    /* explicit asymmetric pads, 1-D, no bias, weights inferred shape */
    tnode t;
    tnode_init(&t, "Conv", 2);
    int64_t pads[2] = {2, 1}, strides[1] = {2}, ks[1] = {3};
    tints(&t, "pads", 2, pads);
    tints(&t, "strides", 1, strides);
    tints(&t, "kernel_shape", 1, ks);
    int64_t xs[3] = {3, 4, 17}, ws[3] = {5, 4, 3};
    qd_tensor X, W, Y = {0};
    tensor_new(&X, 3, xs);
    tensor_new(&W, 3, ws);
    qd_tensor *in[3] = {&X, &W, NULL};
    qd_err e = {0};
    int rc = run_node(&t, in, &Y, c2, &e);
    int64_t ys[3] = {3, 5, (17 + 3 - 3) / 2 + 1};
    ok(rc == QD_OK && shape_is(&Y, 3, ys), "Conv 1-D: %s", e.msg);
    if (!rc) {
        qd_conv_shape s = {.n = 3, .ci = 4, .h = 1, .w = 17, .co = 5, .kh = 1, .kw = 3, .sh = 1, .sw = 2,
                           .dh = 1, .dw = 1, .pl = 2, .group = 1, .oh = 1, .ow = ys[2],
                           .lo = -INFINITY, .hi = INFINITY};
        float *r = malloc(qd_tensor_nbytes(&Y));
        qd_conv_ref(&s, X.data, W.data, NULL, r);
        close_enough("Conv 1-D", Y.data, r, qd_tensor_numel(&Y), 12);
        free(r);
    }
    qd_tensor_free(&X), qd_tensor_free(&W), qd_tensor_free(&Y);
}

/* ONNX's test_convtranspose_autopad_same: SAME_UPPER puts the odd pad at the end */
static void test_convt_op_known(qd_ctx *ctx)
{
    tnode t;
    tnode_init(&t, "ConvTranspose", 2);
    int64_t strides[2] = {2, 2};
    tstr(&t, "auto_pad", "SAME_UPPER");
    tints(&t, "strides", 2, strides);
    int64_t xs[4] = {1, 1, 3, 3}, ws[4] = {1, 2, 3, 3};
    qd_tensor X, W, Y = {0};
    tensor_new(&X, 4, xs);
    tensor_new(&W, 4, ws);
    for (int i = 0; i < 9; i++)
        ((float *)X.data)[i] = (float)i;
    for (int i = 0; i < 18; i++)
        ((float *)W.data)[i] = 1;
    qd_tensor *in[3] = {&X, &W, NULL};
    qd_err e = {0};
    int rc = run_node(&t, in, &Y, ctx, &e);
    static const float want[36] = {0, 0, 1, 1, 3, 2,  0, 0, 1, 1,  3,  2, 3, 3, 8,  5,  12, 7,
                                   3, 3, 7, 4, 9, 5,  9, 9, 20, 11, 24, 13, 6, 6, 13, 7, 15, 8};
    int64_t ys[4] = {1, 2, 6, 6};
    ok(rc == QD_OK && shape_is(&Y, 4, ys), "ConvTranspose SAME_UPPER: %s", e.msg);
    if (!rc && shape_is(&Y, 4, ys)) {
        int same = 1;
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 36; i++)
                same &= ((float *)Y.data)[c * 36 + i] == want[i];
        ok(same, "ConvTranspose SAME_UPPER values match ONNX's test");
    }
    qd_tensor_free(&X), qd_tensor_free(&W), qd_tensor_free(&Y);
}

/* ConvTranspose through the op: explicit pads + output_padding, output_shape,
 * SAME_LOWER, group 2, 1-D */
static void test_convt_op(qd_ctx *c1, qd_ctx *c2)
{
    struct {
        int64_t h, w, k, st, d, g, pads[4], outpad[2], outshape[2];
        const char *autopad;
        int64_t eoh, eow, ept, epl; /* expected output size and leading pads */
    } cs[] = {
        {5, 6, 3, 2, 1, 1, {1, 0, 0, 1}, {1, 0}, {0, 0}, NULL, 2 * 4 + 1 + 3 - 1, 2 * 5 + 3 - 1, 1, 0},
        {5, 6, 3, 2, 1, 2, {0, 0, 0, 0}, {0, 0}, {12, 14}, NULL, 12, 14, 0, 0},
        {5, 5, 4, 2, 1, 1, {0, 0, 0, 0}, {0, 0}, {9, 10}, NULL, 9, 10, 2, 1}, /* odd pad first */
        {4, 5, 3, 2, 2, 1, {0, 0, 0, 0}, {0, 0}, {0, 0}, "SAME_LOWER", 8, 10, 2, 2},
        {4, 5, 4, 2, 1, 1, {0, 0, 0, 0}, {0, 0}, {0, 0}, "SAME_UPPER", 8, 10, 1, 1},
        {4, 5, 3, 2, 1, 1, {0, 0, 0, 0}, {0, 0}, {0, 0}, "SAME_LOWER", 8, 10, 1, 1},
        {4, 5, 3, 1, 1, 1, {2, 2, 2, 2}, {0, 0}, {0, 0}, "VALID", 6, 7, 0, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        tnode t;
        tnode_init(&t, "ConvTranspose", 3);
        int64_t strides[2] = {cs[i].st, cs[i].st}, dils[2] = {cs[i].d, cs[i].d};
        tints(&t, "strides", 2, strides);
        tints(&t, "dilations", 2, dils);
        tint(&t, "group", cs[i].g);
        tints(&t, "pads", 4, cs[i].pads);
        if (cs[i].outpad[0] || cs[i].outpad[1])
            tints(&t, "output_padding", 2, cs[i].outpad);
        if (cs[i].outshape[0])
            tints(&t, "output_shape", 2, cs[i].outshape);
        if (cs[i].autopad)
            tstr(&t, "auto_pad", cs[i].autopad);
        int64_t g = cs[i].g, xs[4] = {2, 2 * g, cs[i].h, cs[i].w}, ws[4] = {2 * g, 3, cs[i].k, cs[i].k};
        int64_t bs[1] = {3 * g};
        qd_tensor X, W, B, Y = {0};
        tensor_new(&X, 4, xs);
        tensor_new(&W, 4, ws);
        tensor_new(&B, 1, bs);
        qd_tensor *in[3] = {&X, &W, &B};
        qd_err e = {0};
        int rc = run_node(&t, in, &Y, (i & 1) ? c2 : c1, &e);
        int64_t ys[4] = {2, 3 * g, cs[i].eoh, cs[i].eow};
        char ysh[64];
        ok(rc == QD_OK && shape_is(&Y, 4, ys), "ConvTranspose case %zu: %s, got %s", i, e.msg,
           qd_shape_str(Y.ndim, Y.shape, ysh, sizeof ysh));
        if (!rc && shape_is(&Y, 4, ys)) {
            qd_conv_shape s = {.n = 2, .ci = 2 * g, .h = cs[i].h, .w = cs[i].w, .co = 3 * g, .kh = cs[i].k,
                               .kw = cs[i].k, .sh = cs[i].st, .sw = cs[i].st, .dh = cs[i].d, .dw = cs[i].d,
                               .pt = cs[i].ept, .pl = cs[i].epl, .group = g, .oh = cs[i].eoh, .ow = cs[i].eow,
                               .lo = -INFINITY, .hi = INFINITY};
            float *r = malloc(qd_tensor_nbytes(&Y));
            qd_convt_ref(&s, X.data, W.data, B.data, r);
            close_enough("ConvTranspose op", Y.data, r, qd_tensor_numel(&Y), 2 * cs[i].k * cs[i].k);
            free(r);
        }
        qd_tensor_free(&X), qd_tensor_free(&W), qd_tensor_free(&B), qd_tensor_free(&Y);
    }
    /* 1-D with output_shape given as (N, C, L) */
    tnode t;
    tnode_init(&t, "ConvTranspose", 2);
    int64_t st[1] = {3}, os[3] = {1, 2, 20};
    tints(&t, "strides", 1, st);
    tints(&t, "output_shape", 3, os);
    int64_t xs[3] = {1, 3, 6}, ws[3] = {3, 2, 4};
    qd_tensor X, W, Y = {0};
    tensor_new(&X, 3, xs);
    tensor_new(&W, 3, ws);
    qd_tensor *in[3] = {&X, &W, NULL};
    qd_err e = {0};
    int rc = run_node(&t, in, &Y, c1, &e);
    int64_t ys[3] = {1, 2, 20};
    ok(rc == QD_OK && shape_is(&Y, 3, ys), "ConvTranspose 1-D: %s", e.msg);
    if (!rc) {
        /* full = 3*5 + 4 = 19 < 20: no padding, one extra zero column */
        qd_conv_shape s = {.n = 1, .ci = 3, .h = 1, .w = 6, .co = 2, .kh = 1, .kw = 4, .sh = 1, .sw = 3,
                           .dh = 1, .dw = 1, .group = 1, .oh = 1, .ow = 20, .lo = -INFINITY, .hi = INFINITY};
        float *r = malloc(qd_tensor_nbytes(&Y));
        qd_convt_ref(&s, X.data, W.data, NULL, r);
        close_enough("ConvTranspose 1-D", Y.data, r, 40, 12);
        free(r);
    }
    qd_tensor_free(&X), qd_tensor_free(&W), qd_tensor_free(&Y);
}

/* Gemm over trans/alpha/beta and every shape of C */
static void test_gemm_op(qd_ctx *c1, qd_ctx *c2)
{
    int64_t dims[][3] = {{4, 5, 6}, {1, 7, 3}, {33, 17, 65}, {64, 100, 300}, {3, 1, 1}, {5, 4, 0}};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int v = 0; v < 4 * 3 * 7; v++) {
            int ta = v & 1, tb = (v >> 1) & 1, bv = (v >> 2) % 3, cshape = v / 12;
            int64_t M = dims[di][0], N = dims[di][1], K = dims[di][2];
            float alpha = (v & 4) ? 0.5f : 1.0f, beta = bv == 0 ? 1.0f : bv == 1 ? 0.0f : 2.0f;
            tnode t;
            tnode_init(&t, "Gemm", cshape ? 3 : 2);
            tint(&t, "transA", ta);
            tint(&t, "transB", tb);
            tfloat(&t, "alpha", alpha);
            if (bv != 0)
                tfloat(&t, "beta", beta);
            int64_t as[2] = {ta ? K : M, ta ? M : K}, bs[2] = {tb ? N : K, tb ? K : N};
            /* C shapes: none, scalar, (1), (N), (1,N), (M,1), (M,N) */
            int cnd[] = {0, 0, 1, 1, 2, 2, 2};
            int64_t csh[][2] = {{0, 0}, {0, 0}, {1, 0}, {N, 0}, {1, N}, {M, 1}, {M, N}};
            qd_tensor A, B, C = {0}, Y = {0};
            tensor_new(&A, 2, as);
            tensor_new(&B, 2, bs);
            if (cshape)
                tensor_new(&C, cnd[cshape], csh[cshape]);
            qd_tensor *in[3] = {&A, &B, cshape ? &C : NULL};
            qd_err e = {0};
            int rc = run_node(&t, in, &Y, (v & 8) ? c2 : c1, &e);
            int64_t ys[2] = {M, N};
            ok(rc == QD_OK && shape_is(&Y, 2, ys), "Gemm %lldx%lldx%lld v%d: %s", (long long)M, (long long)N,
               (long long)K, v, e.msg);
            float *r = malloc((size_t)(M * N + 1) * sizeof *r);
            int64_t cr = cnd[cshape] == 2 ? csh[cshape][0] : 1;
            int64_t cc = cnd[cshape] >= 1 ? csh[cshape][cnd[cshape] - 1] : 1;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    r[i * N + j] = cshape ? ((float *)C.data)[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)] : 0;
            qd_sgemm_ref(ta, tb, M, N, K, alpha, A.data, as[1], B.data, bs[1], cshape ? beta : 0, r, N);
            char what[80];
            snprintf(what, sizeof what, "Gemm %lldx%lldx%lld v%d", (long long)M, (long long)N, (long long)K, v);
            if (!rc)
                close_enough(what, Y.data, r, M * N, K);
            free(r);
            qd_tensor_free(&A), qd_tensor_free(&B), qd_tensor_free(&C), qd_tensor_free(&Y);
        }
}

/* numpy matmul reference with its own index arithmetic */
static void matmul_ref(const qd_tensor *A, const qd_tensor *B, float *y, int64_t *oshape, int *orank)
{
    int64_t as[QD_MAX_DIMS], bs[QD_MAX_DIMS];
    int ra = A->ndim, rb = B->ndim;
    /* promote 1-D operands */
    if (ra == 1) {
        as[0] = 1, as[1] = A->shape[0], ra = 2;
    } else {
        memcpy(as, A->shape, sizeof(int64_t) * (size_t)ra);
    }
    if (rb == 1) {
        bs[0] = B->shape[0], bs[1] = 1, rb = 2;
    } else {
        memcpy(bs, B->shape, sizeof(int64_t) * (size_t)rb);
    }
    int nb = (ra > rb ? ra : rb) - 2;
    int64_t bat[QD_MAX_DIMS], total = 1;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (ra - 2)), ib = i - (nb - (rb - 2));
        int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
        bat[i] = da > db ? da : db;
        total *= bat[i];
    }
    int64_t M = as[ra - 2], K = as[ra - 1], N = bs[rb - 1];
    for (int64_t t = 0; t < total; t++) {
        int64_t idx[QD_MAX_DIMS], rem = t;
        for (int i = nb - 1; i >= 0; i--)
            idx[i] = rem % bat[i], rem /= bat[i];
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < ra - 2; i++) {
            int bi = i + (nb - (ra - 2));
            oa = oa * as[i] + (as[i] == 1 ? 0 : idx[bi]);
        }
        for (int i = 0; i < rb - 2; i++) {
            int bi = i + (nb - (rb - 2));
            ob = ob * bs[i] + (bs[i] == 1 ? 0 : idx[bi]);
        }
        qd_sgemm_ref(0, 0, M, N, K, 1, (const float *)A->data + oa * M * K, K,
                     (const float *)B->data + ob * K * N, N, 0, y + t * M * N, N);
    }
    *orank = 0;
    for (int i = 0; i < nb; i++)
        oshape[(*orank)++] = bat[i];
    if (A->ndim > 1)
        oshape[(*orank)++] = M;
    if (B->ndim > 1)
        oshape[(*orank)++] = N;
}

static void test_matmul_op(qd_ctx *c1, qd_ctx *c2)
{
    struct { int ra, rb; int64_t a[4], b[4]; } cs[] = {
        {1, 1, {7}, {7}},
        {1, 2, {7}, {7, 5}},
        {2, 1, {4, 7}, {7}},
        {2, 2, {33, 70}, {70, 45}},
        {4, 2, {2, 3, 4, 7}, {7, 5}},
        {2, 3, {4, 7}, {3, 7, 5}},
        {4, 4, {2, 1, 4, 7}, {1, 3, 7, 5}},
        {3, 3, {3, 4, 7}, {3, 7, 5}},
        {3, 3, {1, 4, 7}, {4, 7, 5}},
        {1, 3, {7}, {3, 7, 5}},
        {3, 1, {3, 4, 7}, {7}},
        {3, 2, {5, 64, 32}, {32, 48}},
        {3, 3, {2, 0, 7}, {2, 7, 5}},
        {2, 2, {3, 0}, {0, 4}},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        tnode t;
        tnode_init(&t, "MatMul", 2);
        qd_tensor A, B, Y = {0};
        tensor_new(&A, cs[i].ra, cs[i].a);
        tensor_new(&B, cs[i].rb, cs[i].b);
        qd_tensor *in[3] = {&A, &B, NULL};
        for (int th = 0; th < 2; th++) {
            qd_err e = {0};
            int rc = run_node(&t, in, &Y, th ? c2 : c1, &e);
            int64_t os[QD_MAX_DIMS];
            int orank;
            float *r = malloc(65536 * sizeof *r); /* larger than every case */
            matmul_ref(&A, &B, r, os, &orank);
            char ysh[64], osh[64];
            ok(rc == QD_OK && shape_is(&Y, orank, os), "MatMul case %zu: %s, shape %s want %s", i, e.msg,
               qd_shape_str(Y.ndim, Y.shape, ysh, sizeof ysh), qd_shape_str(orank, os, osh, sizeof osh));
            if (!rc && shape_is(&Y, orank, os))
                close_enough("MatMul", Y.data, r, qd_tensor_numel(&Y), A.shape[A.ndim - 1]);
            free(r);
        }
        qd_tensor_free(&A), qd_tensor_free(&B), qd_tensor_free(&Y);
    }
}

/* ---- errors ---- */

/* run a node on tensors of the given shapes; expect QD_EINPUT naming `want` */
static void expect_err(tnode *t, int nin, const int64_t *const *shapes, const int *ranks, const char *want,
                       qd_ctx *ctx)
{
    qd_tensor ts[3], Y = {0};
    qd_tensor *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nin; i++) {
        tensor_new(&ts[i], ranks[i], shapes[i]);
        in[i] = &ts[i];
    }
    qd_err e = {0};
    int rc = run_node(t, in, &Y, ctx, &e);
    ok(rc == QD_EINPUT && strstr(e.msg, want), "%s: expected an error with '%s', got %d '%s'", t->n.op_type,
       want, rc, e.msg);
    for (int i = 0; i < nin; i++)
        qd_tensor_free(&ts[i]);
    qd_tensor_free(&Y);
}

static void test_errors(qd_ctx *ctx)
{
    int64_t x4[4] = {1, 4, 8, 8}, w4[4] = {6, 4, 3, 3}, x5[5] = {1, 4, 8, 8, 8}, w5[5] = {6, 4, 3, 3, 3};
    int r44[3] = {4, 4, 1}, r55[2] = {5, 5};
    tnode t;
    int64_t k3[3] = {3, 3, 3};
    tnode_init(&t, "Conv", 2);
    tints(&t, "kernel_shape", 3, k3);
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "3-D convolution is not supported", ctx);
    tnode_init(&t, "Conv", 2);
    expect_err(&t, 2, (const int64_t *[]){x5, w5}, r55, "3-D convolution is not supported", ctx);
    tnode_init(&t, "Conv", 2);
    tstr(&t, "auto_pad", "SAME");
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "auto_pad", ctx);
    tnode_init(&t, "Conv", 2);
    tint(&t, "group", 0);
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "group", ctx);
    tnode_init(&t, "Conv", 2);
    tint(&t, "group", 3);
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "not divisible by group 3", ctx);
    int64_t w4b[4] = {6, 3, 3, 3};
    tnode_init(&t, "Conv", 2);
    expect_err(&t, 2, (const int64_t *[]){x4, w4b}, r44, "expects 3 input channels", ctx);
    int64_t wbig[4] = {6, 4, 9, 9};
    tnode_init(&t, "Conv", 2);
    expect_err(&t, 2, (const int64_t *[]){x4, wbig}, r44, "larger than the padded input", ctx);
    int64_t bbad[1] = {5};
    tnode_init(&t, "Conv", 3);
    expect_err(&t, 3, (const int64_t *[]){x4, w4, bbad}, r44, "B has shape 5", ctx);
    int64_t st[2] = {0, 1};
    tnode_init(&t, "Conv", 2);
    tints(&t, "strides", 2, st);
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "strides[0]", ctx);
    int64_t ks2[2] = {5, 5};
    tnode_init(&t, "Conv", 2);
    tints(&t, "kernel_shape", 2, ks2);
    expect_err(&t, 2, (const int64_t *[]){x4, w4}, r44, "kernel_shape[0] = 5", ctx);
    tnode_init(&t, "ConvTranspose", 2);
    expect_err(&t, 2, (const int64_t *[]){x5, w5}, r55, "3-D convolution is not supported", ctx);
    /* Gemm / MatMul */
    int64_t a2[2] = {3, 4}, b2[2] = {5, 6}, c2[2] = {2, 6}, b2ok[2] = {4, 6};
    int r22[3] = {2, 2, 2};
    tnode_init(&t, "Gemm", 2);
    expect_err(&t, 2, (const int64_t *[]){a2, b2}, r22, "inner dimensions differ", ctx);
    tnode_init(&t, "Gemm", 3);
    expect_err(&t, 3, (const int64_t *[]){a2, b2ok, c2}, r22, "does not broadcast to 3x6", ctx);
    tnode_init(&t, "MatMul", 2);
    expect_err(&t, 2, (const int64_t *[]){a2, b2}, r22, "inner dimensions differ", ctx);
    int64_t a3[3] = {2, 3, 4}, b3[3] = {3, 4, 6};
    int r33[2] = {3, 3};
    tnode_init(&t, "MatMul", 2);
    expect_err(&t, 2, (const int64_t *[]){a3, b3}, r33, "batch dims do not broadcast", ctx);
}

/* ---- benchmark ---- */

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bench_algo(const char *name, const qd_conv_shape *s, qd_ctx *ctx, int reps, int algo)
{
    int64_t cig = s->ci / s->group;
    float *x = rnd_floats(s->n * s->ci * s->h * s->w), *w = rnd_floats(s->co * cig * s->kh * s->kw);
    float *b = rnd_floats(s->co), *y = malloc((size_t)(s->n * s->co * s->oh * s->ow) * sizeof *y);
    qd_conv_with(algo < 0 ? qd_conv_pick(s) : (qd_conv_algo)algo, s, x, w, b, y, ctx); /* warm up */
    double best = 1e30, cpu = 1e30; /* wall, and CPU time of the process (a busy machine) */
    for (int r = 0; r < reps; r++) {
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        qd_conv_with(algo < 0 ? qd_conv_pick(s) : (qd_conv_algo)algo, s, x, w, b, y, ctx);
        double dt = now(CLOCK_MONOTONIC) - t0, dc = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        best = dt < best ? dt : best;
        cpu = dc < cpu ? dc : cpu;
    }
    double flops = 2.0 * s->n * s->co * s->oh * s->ow * cig * s->kh * s->kw;
    printf("%-40s algo %d threads %d: %8.2f ms %6.1f GFLOP/s | per CPU-second %6.1f GFLOP/s\n", name, algo < 0 ? (int)qd_conv_pick(s) : algo,
           ctx->nthreads, best * 1e3, flops / best * 1e-9, flops / cpu * 1e-9);
    free(x), free(w), free(b), free(y);
}

static void bench_one(const char *name, const qd_conv_shape *s, qd_ctx *ctx, int reps)
{
    bench_algo(name, s, ctx, reps, -1);
}

/* 3x3 stride-1 layers of ResNet-18 by im2col and by Winograd */
static void bench_3x3(int nthreads)
{
    qd_ctx *c = ctx_new(nthreads);
    static const int64_t layers[][3] = {{64, 56, 64}, {128, 28, 64}, {256, 14, 64}, {512, 7, 64},
                                        {64, 56, 1}, {128, 28, 1}, {256, 14, 1}, {512, 7, 1}};
    for (int i = 0; i < 8; i++) {
        char name[64];
        int64_t ch = layers[i][0], hw = layers[i][1], n = layers[i][2];
        snprintf(name, sizeof name, "3x3 %lld ch %lldx%lld b%lld", (long long)ch, (long long)hw, (long long)hw,
                 (long long)n);
        qd_conv_shape s = shape2d(n, ch, hw, hw, ch, 3, 1, 1, 1, 1);
        bench_algo(name, &s, c, n > 1 ? 3 : 20, QD_CONV_IM2COL);
        bench_algo(name, &s, c, n > 1 ? 3 : 20, QD_CONV_WINOGRAD);
    }
    ctx_free(c);
}

/* The 1x1-output layers of ResNet-18 (layer4) and MobileNetV2 on 28x28
 * Fashion-MNIST at batch 64, with their fused Relu (hi = INFINITY) or Relu6:
 * the algorithm picked before the pixel path (and im2col for the Winograd
 * one), then the pixel path. */
static void bench_pixel(qd_ctx *c)
{
    static const struct {
        const char *name;
        int64_t ci, hw, co, k, st, p, g;
        float hi; /* clamp [0, hi]; 0: none */
        int old;
    } L[] = {
        {"r18 l4.0.conv1 3x3 s2 256->512 2x2", 256, 2, 512, 3, 2, 1, 1, INFINITY, QD_CONV_IM2COL},
        {"r18 l4.0.down 1x1 s2 256->512 2x2", 256, 2, 512, 1, 2, 0, 1, 0, QD_CONV_IM2COL},
        {"r18 l4 3x3 512->512 1x1", 512, 1, 512, 3, 1, 1, 1, INFINITY, QD_CONV_WINOGRAD},
        {"r18 l4 3x3 512->512 1x1", 512, 1, 512, 3, 1, 1, 1, INFINITY, QD_CONV_IM2COL},
        {"mbv2 1x1 160->960 1x1", 160, 1, 960, 1, 1, 0, 1, 6, QD_CONV_GEMM1X1},
        {"mbv2 1x1 960->160 1x1", 960, 1, 160, 1, 1, 0, 1, 0, QD_CONV_GEMM1X1},
        {"mbv2 1x1 960->320 1x1", 960, 1, 320, 1, 1, 0, 1, 0, QD_CONV_GEMM1X1},
        {"mbv2 1x1 320->1280 1x1", 320, 1, 1280, 1, 1, 0, 1, 6, QD_CONV_GEMM1X1},
        {"mbv2 dw 3x3 960ch 1x1", 960, 1, 960, 3, 1, 1, 960, 6, QD_CONV_DEPTHWISE},
        {"mbv2 dw 3x3 s2 576ch 2x2", 576, 2, 576, 3, 2, 1, 576, 6, QD_CONV_DEPTHWISE},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s b64", L[i].name);
        qd_conv_shape s = shape2d(64, L[i].ci, L[i].hw, L[i].hw, L[i].co, L[i].k, L[i].st, 1, L[i].p, L[i].g);
        if (L[i].hi > 0)
            s.lo = 0, s.hi = L[i].hi;
        bench_algo(name, &s, c, 20, L[i].old);
        if (i != 2) /* the next row is the same layer */
            bench_algo(name, &s, c, 20, QD_CONV_PIXEL);
    }
}

/* The layers with 7x7, 4x4 and 2x2 output planes of the bundled models on
 * 28x28 Fashion-MNIST at batch 64, with their fused Relu (hi = INFINITY) or Relu6:
 * the picked algorithm, then any other one given (-1: none). */
static void bench_small(qd_ctx *c)
{
    static const struct {
        const char *name;
        int64_t ci, hw, co, k, st, p, g;
        float hi; /* clamp [0, hi]; 0: none */
        int alt[2];
    } L[] = {
        {"mbv2 1x1 24->144 7x7", 24, 7, 144, 1, 1, 0, 1, 6, {-1, -1}},
        {"mbv2 1x1 144->24 7x7", 144, 7, 24, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 32->192 4x4", 32, 4, 192, 1, 1, 0, 1, 6, {-1, -1}},
        {"mbv2 1x1 192->32 4x4", 192, 4, 32, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 144->32 4x4", 144, 4, 32, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 192->64 2x2", 192, 2, 64, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 64->384 2x2", 64, 2, 384, 1, 1, 0, 1, 6, {-1, -1}},
        {"mbv2 1x1 384->64 2x2", 384, 2, 64, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 384->96 2x2", 384, 2, 96, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 1x1 96->576 2x2", 96, 2, 576, 1, 1, 0, 1, 6, {-1, -1}},
        {"mbv2 1x1 576->96 2x2", 576, 2, 96, 1, 1, 0, 1, 0, {-1, -1}},
        {"mbv2 dw 3x3 s2 96ch 14->7", 96, 14, 96, 3, 2, 1, 96, 6, {-1, -1}},
        {"mbv2 dw 3x3 144ch 7x7", 144, 7, 144, 3, 1, 1, 144, 6, {-1, -1}},
        {"mbv2 dw 3x3 s2 144ch 7->4", 144, 7, 144, 3, 2, 1, 144, 6, {-1, -1}},
        {"mbv2 dw 3x3 192ch 4x4", 192, 4, 192, 3, 1, 1, 192, 6, {-1, -1}},
        {"mbv2 dw 3x3 s2 192ch 4->2", 192, 4, 192, 3, 2, 1, 192, 6, {-1, -1}},
        {"mbv2 dw 3x3 384ch 2x2", 384, 2, 384, 3, 1, 1, 384, 6, {-1, -1}},
        {"mbv2 dw 3x3 576ch 2x2", 576, 2, 576, 3, 1, 1, 576, 6, {-1, -1}},
        {"shuf 1x1 24->58 7x7", 24, 7, 58, 1, 1, 0, 1, INFINITY, {-1, -1}},
        {"shuf 1x1 58->58 4x4", 58, 4, 58, 1, 1, 0, 1, INFINITY, {-1, -1}},
        {"shuf 1x1 116->116 2x2", 116, 2, 116, 1, 1, 0, 1, INFINITY, {-1, -1}},
        {"shuf dw 3x3 s2 58ch 7->4", 58, 7, 58, 3, 2, 1, 58, 0, {-1, -1}},
        {"shuf dw 3x3 58ch 4x4", 58, 4, 58, 3, 1, 1, 58, 0, {-1, -1}},
        {"shuf dw 3x3 s2 116ch 4->2", 116, 4, 116, 3, 2, 1, 116, 0, {-1, -1}},
        {"shuf dw 3x3 116ch 2x2", 116, 2, 116, 3, 1, 1, 116, 0, {-1, -1}},
        {"r18 l1 3x3 64->64 7x7", 64, 7, 64, 3, 1, 1, 1, INFINITY, {QD_CONV_IM2COL, QD_CONV_WINOGRAD}},
        {"r18 l2.0.down 1x1 s2 64->128 7->4", 64, 7, 128, 1, 2, 0, 1, 0, {-1, -1}},
        {"r18 l2.0.conv1 3x3 s2 64->128 7->4", 64, 7, 128, 3, 2, 1, 1, INFINITY, {-1, -1}},
        {"r18 l2 3x3 128->128 4x4", 128, 4, 128, 3, 1, 1, 1, INFINITY, {QD_CONV_IM2COL, QD_CONV_WINOGRAD}},
        {"r18 l3.0.down 1x1 s2 128->256 4->2", 128, 4, 256, 1, 2, 0, 1, 0, {-1, -1}},
        {"r18 l3.0.conv1 3x3 s2 128->256 4->2", 128, 4, 256, 3, 2, 1, 1, INFINITY, {-1, -1}},
        {"r18 l3 3x3 256->256 2x2", 256, 2, 256, 3, 1, 1, 1, INFINITY, {QD_CONV_IM2COL, QD_CONV_WINOGRAD}},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s b64", L[i].name);
        qd_conv_shape s = shape2d(64, L[i].ci, L[i].hw, L[i].hw, L[i].co, L[i].k, L[i].st, 1, L[i].p, L[i].g);
        if (L[i].hi > 0)
            s.lo = 0, s.hi = L[i].hi;
        bench_algo(name, &s, c, 20, -1);
        for (int a = 0; a < 2; a++)
            if (L[i].alt[a] >= 0 && L[i].alt[a] != (int)qd_conv_pick(&s))
                bench_algo(name, &s, c, 20, L[i].alt[a]);
    }
}

static void bench(void)
{
    qd_ctx *cs[2] = {ctx_new(1), ctx_new(2)};
    for (int t = 0; t < 2; t++) {
        qd_conv_shape s = shape2d(64, 64, 56, 56, 64, 3, 1, 1, 1, 1);
        bench_one("resnet 3x3 64->64 56x56 b64", &s, cs[t], 5);
        s = shape2d(64, 128, 28, 28, 128, 3, 1, 1, 1, 1);
        bench_one("resnet 3x3 128->128 28x28 b64", &s, cs[t], 5);
        s = shape2d(64, 64, 56, 56, 128, 1, 2, 1, 0, 1);
        bench_one("resnet 1x1 s2 64->128 b64", &s, cs[t], 5);
        s = shape2d(64, 3, 224, 224, 64, 7, 2, 1, 3, 1);
        bench_one("resnet 7x7 s2 3->64 224 b64", &s, cs[t], 3);
        s = shape2d(64, 144, 56, 56, 144, 3, 1, 1, 1, 144);
        bench_one("mbv2 dw 3x3 144ch 56x56 b64", &s, cs[t], 5);
        s = shape2d(64, 144, 56, 56, 144, 3, 2, 1, 1, 144);
        bench_one("mbv2 dw 3x3 s2 144ch 56 b64", &s, cs[t], 5);
        s = shape2d(64, 24, 56, 56, 144, 1, 1, 1, 0, 1);
        bench_one("mbv2 1x1 24->144 56x56 b64", &s, cs[t], 5);
        bench_pixel(cs[t]);
        bench_small(cs[t]);
    }
    ctx_free(cs[0]);
    ctx_free(cs[1]);
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "--bench3x3")) {
        bench_3x3(atoi(argv[2]));
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "--benchpixel")) {
        qd_ctx *c = ctx_new(atoi(argv[2]));
        bench_pixel(c);
        ctx_free(c);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "--benchsmall")) {
        qd_ctx *c = ctx_new(atoi(argv[2]));
        bench_small(c);
        ctx_free(c);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench();
        return 0;
    }
    qd_ctx *c1 = ctx_new(1), *c2 = ctx_new(2);
    test_conv_fixed(c1, c2);
    test_conv_random(c1, c2, 400);
    test_conv_winograd(c1, c2, 300);
    test_conv_1x1(c1, c2, 200);
    test_conv_pixel(c1, c2, 400);
    test_conv_small(c1, c2, 400);
    test_conv_plane(c1, c2, 300);
    test_convt_random(c1, c2, 150);
    test_conv_op(c1, c2);
    test_convt_op_known(c1);
    test_convt_op(c1, c2);
    test_gemm_op(c1, c2);
    test_matmul_op(c1, c2);
    test_errors(c1);
    ctx_free(c1);
    ctx_free(c2);
    return th_summary();
}
