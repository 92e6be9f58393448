/* test_quant.c - quant.c: encodings against hand-computed AIMET values, the
 * fake-quant kernels against their scalar reference (ties, saturation,
 * in place), per-channel fake quant and the integer export. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant.h"

static const qd_qscheme ASYM8 = {.bits = 8};
static const qd_qscheme SYM8 = {.bits = 8, .symmetric = 1, .unsigned_symmetric = 1};
static const qd_qscheme SYM8_SIGNED = {.bits = 8, .symmetric = 1};
static const qd_qscheme STRICT8 = {.bits = 8, .symmetric = 1, .strict_symmetric = 1};

static void check_enc(qd_encoding e, double min, double max, double scale, int offset,
                      const char *what)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s min", what);
    near(e.min, min, 1e-12, 1e-9, buf);
    snprintf(buf, sizeof buf, "%s max", what);
    near(e.max, max, 1e-12, 1e-9, buf);
    snprintf(buf, sizeof buf, "%s scale", what);
    near(e.scale, scale, 0, 1e-12, buf);
    ok(e.offset == offset, "%s offset %d, want %d", what, e.offset, offset);
    ok(qd_quant_encoding_invalid(&e) == NULL, "%s: %s", what, qd_quant_encoding_invalid(&e));
}

static void test_encodings(void)
{
    qd_encoding e;

    /* asymmetric 8 bit [-1, 3]: scale = 4/255 = 0.0156862745;
     * -min/scale = 1 * 255/4 = 63.75 -> 64, offset -64;
     * min = -64 * 4/255 = -1.00392157, max = min + 4 = 2.99607843 */
    e = qd_quant_encoding(-1, 3, &ASYM8);
    check_enc(e, -256.0 / 255, -256.0 / 255 + 4, 4.0 / 255, -64, "asym [-1,3]");
    ok(e.bits == 8 && e.symmetric == 0, "asym bits/symmetric");

    /* [2, 5] does not contain 0: widened to [0, 5]; scale 5/255, offset 0 */
    e = qd_quant_encoding(2, 5, &ASYM8);
    check_enc(e, 0, 5, 5.0 / 255, 0, "asym [2,5]");
    /* [-5, -2] -> [-5, 0]: offset = round(-5 / (5/255)) = -255, max 0 */
    e = qd_quant_encoding(-5, -2, &ASYM8);
    check_enc(e, -5, 0, 5.0 / 255, -255, "asym [-5,-2]");
    /* swapped bounds are put in order */
    e = qd_quant_encoding(3, -1, &ASYM8);
    check_enc(e, -256.0 / 255, -256.0 / 255 + 4, 4.0 / 255, -64, "asym swapped");

    /* signed symmetric 8 bit [-0.5, 2.54]: absmax 2.54, pos = floor(255/2) = 127,
     * scale = 2.54/127 = 0.02, offset = -ceil(255/2) = -128,
     * min = -128 * 0.02 = -2.56, max = 127 * 0.02 = 2.54 */
    e = qd_quant_encoding(-0.5, 2.54, &SYM8);
    check_enc(e, -2.56, 2.54, 0.02, -128, "sym [-0.5,2.54]");
    ok(e.symmetric == 1, "sym flag");
    /* |min| the larger: [-2.54, 0.5] gives the same grid */
    e = qd_quant_encoding(-2.54, 0.5, &SYM8);
    check_enc(e, -2.56, 2.54, 0.02, -128, "sym [-2.54,0.5]");

    /* strict symmetric: steps 254, pos 127, offset -127: [-127, 127] * 0.02 */
    e = qd_quant_encoding(-0.5, 2.54, &STRICT8);
    check_enc(e, -2.54, 2.54, 0.02, -127, "strict [-0.5,2.54]");
    near(qd_quant_steps(&STRICT8), 254, 0, 0, "strict steps");
    near(qd_quant_steps(&SYM8), 255, 0, 0, "sym steps");

    /* unsigned symmetric on [0, 6]: the unsigned grid, scale 6/255, offset 0 */
    e = qd_quant_encoding(0, 6, &SYM8);
    check_enc(e, 0, 6, 6.0 / 255, 0, "unsigned sym [0,6]");
    /* [1, 6] is widened to [0, 6] first: still unsigned */
    e = qd_quant_encoding(1, 6, &SYM8);
    check_enc(e, 0, 6, 6.0 / 255, 0, "unsigned sym [1,6]");
    /* unsigned_symmetric = 0 on [0, 6]: signed grid, scale 6/127, offset -128,
     * min = -128 * 6/127 = -6.04724409 */
    e = qd_quant_encoding(0, 6, &SYM8_SIGNED);
    check_enc(e, -768.0 / 127, 6, 6.0 / 127, -128, "signed sym [0,6]");
    /* unsigned symmetric does not apply once min < 0 */
    e = qd_quant_encoding(-0.001, 6, &SYM8);
    check_enc(e, -768.0 / 127, 6, 6.0 / 127, -128, "sym [-0.001,6]");

    /* 4 bit asymmetric [-1, 3]: steps 15, scale 4/15, -min/scale = 3.75 -> 4,
     * min = -16/15, max = -16/15 + 4 */
    qd_qscheme a4 = {.bits = 4}, s4 = {.bits = 4, .symmetric = 1, .unsigned_symmetric = 1};
    e = qd_quant_encoding(-1, 3, &a4);
    check_enc(e, -16.0 / 15, -16.0 / 15 + 4, 4.0 / 15, -4, "asym4 [-1,3]");
    /* 4 bit symmetric [-1, 3]: pos 7, scale 3/7, offset -8, min -24/7 */
    e = qd_quant_encoding(-1, 3, &s4);
    check_enc(e, -24.0 / 7, 3, 3.0 / 7, -8, "sym4 [-1,3]");
    /* 16 bit asymmetric [-1, 3]: steps 65535, -min/scale = 65535/4 = 16383.75
     * -> 16384, min = -16384 * 4/65535 */
    qd_qscheme a16 = {.bits = 16}, s16 = {.bits = 16, .symmetric = 1};
    e = qd_quant_encoding(-1, 3, &a16);
    check_enc(e, -65536.0 / 65535, -65536.0 / 65535 + 4, 4.0 / 65535, -16384, "asym16 [-1,3]");
    /* 16 bit symmetric: pos 32767, offset -32768 */
    e = qd_quant_encoding(-1, 3, &s16);
    check_enc(e, -32768 * 3.0 / 32767, 3, 3.0 / 32767, -32768, "sym16 [-1,3]");
    /* 2 bit: steps 3; symmetric pos 1, offset -2 */
    qd_qscheme s2 = {.bits = 2, .symmetric = 1};
    e = qd_quant_encoding(-1, 1, &s2);
    check_enc(e, -2, 1, 1, -2, "sym2 [-1,1]");
}

/* Constant tensors and dead channels: the range is at least QD_MIN_RANGE,
 * never a zero, NaN or denormal scale. */
static void test_degenerate(void)
{
    qd_encoding e;
    /* [0, 0] -> [0, 0.01]: scale 0.01/255, offset 0 */
    e = qd_quant_encoding(0, 0, &ASYM8);
    check_enc(e, 0, 0.01, 0.01 / 255, 0, "asym [0,0]");
    /* signed symmetric: absmax 0.01, scale 0.01/127 */
    e = qd_quant_encoding(0, 0, &SYM8_SIGNED);
    check_enc(e, -1.28 / 127, 0.01, 0.01 / 127, -128, "sym [0,0]");
    e = qd_quant_encoding(0, 0, &SYM8);
    check_enc(e, 0, 0.01, 0.01 / 255, 0, "unsigned sym [0,0]");
    /* [3, 3] -> [0, 3] */
    e = qd_quant_encoding(3, 3, &ASYM8);
    check_enc(e, 0, 3, 3.0 / 255, 0, "asym [3,3]");
    /* [-3, -3] -> [-3, 0], offset -255 */
    e = qd_quant_encoding(-3, -3, &ASYM8);
    check_enc(e, -3, 0, 3.0 / 255, -255, "asym [-3,-3]");
    /* a tiny range is widened to QD_MIN_RANGE: [-1e-30, 1e-30] -> max = min + 0.01 */
    e = qd_quant_encoding(-1e-30, 1e-30, &ASYM8);
    ok(e.scale >= 0.01 / 255 * (1 - 1e-12) && isnormal(e.scale), "tiny range scale %g", e.scale);
    ok(e.max - e.min >= 0.01 * (1 - 1e-12), "tiny range width %g", e.max - e.min);

    /* non-finite inputs count as 0 */
    e = qd_quant_encoding(NAN, 1, &ASYM8);
    check_enc(e, 0, 1, 1.0 / 255, 0, "[nan,1]");
    e = qd_quant_encoding(-1, NAN, &ASYM8);
    check_enc(e, -1, 0, 1.0 / 255, -255, "[-1,nan]");
    e = qd_quant_encoding(-INFINITY, INFINITY, &ASYM8);
    check_enc(e, 0, 0.01, 0.01 / 255, 0, "[-inf,inf]");
    e = qd_quant_encoding(NAN, NAN, &SYM8_SIGNED);
    check_enc(e, -1.28 / 127, 0.01, 0.01 / 127, -128, "[nan,nan] sym");

    /* a dead channel fake-quantizes to exact zeros next to live channels */
    float x[2 * 3 * 2] = {0.5f, -0.25f, 0, 0, 1, 2, /* o = 0: ch0, ch1 (dead), ch2 */
                          -0.5f, 0.25f, 0, 0, 3, 4};
    float y[12];
    qd_encoding enc[3] = {qd_quant_encoding(-0.5, 0.5, &ASYM8), qd_quant_encoding(0, 0, &ASYM8),
                          qd_quant_encoding(1, 4, &ASYM8)};
    qd_fake_quant_channels(x, y, 2, 3, 2, enc);
    ok(y[2] == 0 && y[3] == 0 && y[8] == 0 && y[9] == 0, "dead channel stays 0");
    /* scale 1/255; 0.5 saturates at max = -128/255 + 1 (half a step below) */
    ok(fabsf(y[0] - 0.5f) <= 0.51f / 255, "live channel 0: %g", y[0]);
}

static void test_so_and_invalid(void)
{
    /* from (scale, offset): min = -10 * 0.1 = -1, max = -1 + 255 * 0.1 = 24.5 */
    qd_encoding e = qd_quant_encoding_so(0.1, -10, &ASYM8);
    check_enc(e, -1, 24.5, 0.1, -10, "so asym");
    /* strict symmetric: steps 254 -> max = -127 * 0.02 + 254 * 0.02 = 2.54 */
    e = qd_quant_encoding_so(0.02, -127, &STRICT8);
    check_enc(e, -2.54, 2.54, 0.02, -127, "so strict");
    /* the same grid as qd_quant_encoding gives */
    qd_encoding f = qd_quant_encoding(-1, 3, &ASYM8);
    e = qd_quant_encoding_so(f.scale, f.offset, &ASYM8);
    check_enc(e, f.min, f.max, f.scale, f.offset, "so roundtrip");

    qd_encoding good = qd_quant_encoding(-1, 3, &ASYM8), bad;
    ok(qd_quant_encoding_invalid(&good) == NULL, "good encoding is valid");
    bad = good, bad.bits = 1;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "bits 1 invalid");
    bad = good, bad.bits = 17;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "bits 17 invalid");
    bad = good, bad.bits = QD_BITS_FLOAT;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "bits 32 invalid as an encoding");
    bad = good, bad.scale = 0;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "scale 0 invalid");
    bad = good, bad.scale = -0.1;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "negative scale invalid");
    bad = good, bad.scale = NAN;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "NaN scale invalid");
    bad = good, bad.scale = INFINITY;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "inf scale invalid");
    bad = good, bad.scale = 1e-35;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "denormal-ish scale invalid");
    bad = good, bad.min = -INFINITY;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "infinite min invalid");
    bad = good, bad.max = NAN;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "NaN max invalid");
    bad = good, bad.offset = 1;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "offset 1 invalid");
    bad = good, bad.offset = -256;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "offset -256 invalid at 8 bits");
    bad = good, bad.offset = -255, bad.min = -255 * good.scale, bad.max = 0;
    ok(qd_quant_encoding_invalid(&bad) == NULL, "offset -255 (grid [-255, 0] steps) valid at 8 bits");
    bad = good, bad.offset = -255;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "offset -255 with max/min of another grid invalid");
    bad = good, bad.max = good.max * 3;
    ok(qd_quant_encoding_invalid(&bad) != NULL, "max not min + 255 steps invalid");
}

/* xorshift: reproducible without libc's rand state */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 11) * 0x1p-53;
}

static void test_round_half_even(void)
{
    /* power-of-two scale: x = (k + 0.5) * scale is exact, x / scale = k + 0.5 */
    qd_encoding e = qd_quant_encoding_so(0.125, -128, &ASYM8); /* grid [-16, 15.875] */
    float x[] = {0.3125f, 0.4375f, -0.3125f, -0.4375f, 0.0625f, -0.0625f, 0.1875f};
    /* 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4, 0.5 -> 0, -0.5 -> -0, 1.5 -> 2 */
    float want[] = {0.25f, 0.5f, -0.25f, -0.5f, 0, 0, 0.25f};
    float y[7], r[7];
    qd_fake_quant(x, y, 7, &e);
    qd_fake_quant_ref(x, r, 7, &e);
    for (int i = 0; i < 7; i++) {
        ok(y[i] == want[i], "tie %g -> %g, want %g", x[i], y[i], want[i]);
        ok(r[i] == want[i], "ref tie %g -> %g, want %g", x[i], r[i], want[i]);
    }
    /* integers of the same ties: q - offset with offset -128 */
    ok(qd_quant_int(0.3125f, &e) == 130, "int tie 2.5 -> %d", qd_quant_int(0.3125f, &e));
    ok(qd_quant_int(0.4375f, &e) == 132, "int tie 3.5 -> %d", qd_quant_int(0.4375f, &e));
    ok(qd_quant_int(-0.3125f, &e) == 126, "int tie -2.5 -> %d", qd_quant_int(-0.3125f, &e));
}

/* Fast kernel == scalar reference, bit for bit, on random values, values
 * near and on ties, and values beyond the range (saturation). */
static void fq_vs_ref(const qd_encoding *e, const char *what)
{
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *r = malloc(N * sizeof *r);
    double span = e->max - e->min;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: /* anywhere, 50% beyond either end */
            x[i] = (float)(e->min - 0.5 * span + 2 * span * urand());
            break;
        case 1: { /* ties (k + 0.5) * scale, k over the grid and a bit beyond */
            double k = floor(e->offset - 3 + (qd_quant_steps(&(qd_qscheme){.bits = e->bits}) + 6) * urand());
            x[i] = (float)((k + 0.5) * e->scale);
            break;
        }
        case 2: /* grid points */
            x[i] = (float)((e->offset + floor(256 * urand())) * e->scale);
            break;
        default: /* far out */
            x[i] = (float)((urand() - 0.5) * 1e6 * span);
        }
    }
    qd_fake_quant(x, y, N, e);
    qd_fake_quant_ref(x, r, N, e);
    /* equal values; the sign of a zero may differ (the kernel gives +0 where
     * the reference's nearbyint keeps -0 for x in (-scale/2, 0)) */
    int bad = 0, first = -1;
    for (int i = 0; i < N; i++)
        if (y[i] != r[i] && bad++ == 0)
            first = i;
    ok(bad == 0, "%s: %d of %d differ from the reference (first x=%.9g: %.9g vs %.9g)", what, bad,
       N, first >= 0 ? x[first] : 0, first >= 0 ? y[first] : 0, first >= 0 ? r[first] : 0);
    /* every output on the grid and inside [min, max] */
    int off = 0;
    for (int i = 0; i < N; i++) {
        double q = y[i] / (float)e->scale;
        if (fabs(q - nearbyint(q)) > 1e-3 + 1e-6 * fabs(q) || y[i] < (float)e->min * (1 + 1e-6f) - 1e-30f ||
            y[i] > (float)e->max * (1 + 1e-6f) + 1e-30f)
            off++;
    }
    ok(off == 0, "%s: %d outputs off the grid or outside [min, max]", what, off);
    /* in place gives the same */
    memcpy(r, x, N * sizeof *x);
    qd_fake_quant(r, r, N, e);
    ok(memcmp(r, y, N * sizeof *y) == 0, "%s: in place == out of place", what);
    free(x);
    free(y);
    free(r);
}

static void test_fake_quant(void)
{
    qd_encoding e = qd_quant_encoding(-1, 3, &ASYM8);
    fq_vs_ref(&e, "asym8");
    e = qd_quant_encoding(-0.5, 2.54, &SYM8);
    fq_vs_ref(&e, "sym8");
    e = qd_quant_encoding(-0.5, 2.54, &STRICT8);
    fq_vs_ref(&e, "strict8");
    e = qd_quant_encoding(0, 6, &SYM8);
    fq_vs_ref(&e, "unsigned8");
    e = qd_quant_encoding(-1, 3, &(qd_qscheme){.bits = 4});
    fq_vs_ref(&e, "asym4");
    e = qd_quant_encoding(-1, 3, &(qd_qscheme){.bits = 16});
    fq_vs_ref(&e, "asym16");
    e = qd_quant_encoding(-1, 3, &(qd_qscheme){.bits = 16, .symmetric = 1});
    fq_vs_ref(&e, "sym16");
    e = qd_quant_encoding(0, 0, &ASYM8);
    fq_vs_ref(&e, "min-range");

    /* saturation lands exactly on the ends of the grid */
    e = qd_quant_encoding(-1, 3, &ASYM8);
    float x[4] = {100, -100, INFINITY, -INFINITY}, y[4];
    qd_fake_quant(x, y, 4, &e);
    float hi = (float)(191 * (float)e.scale), lo = (float)(-64 * (float)e.scale);
    ok(y[0] == hi && y[2] == hi, "saturate high: %g %g want %g", y[0], y[2], hi);
    ok(y[1] == lo && y[3] == lo, "saturate low: %g %g want %g", y[1], y[3], lo);
    /* 0 is exact */
    float z = 0, zq;
    qd_fake_quant(&z, &zq, 1, &e);
    ok(zq == 0, "0 is exactly representable: %g", zq);
}

static void test_channels(void)
{
    enum { OUTER = 3, NCH = 4, INNER = 37 };
    float x[OUTER * NCH * INNER], y[OUTER * NCH * INNER], r[INNER];
    qd_encoding enc[NCH] = {
        qd_quant_encoding(-1, 1, &ASYM8), qd_quant_encoding(0, 6, &SYM8),
        qd_quant_encoding(-0.1, 0.1, &SYM8_SIGNED), qd_quant_encoding(-3, 1, &(qd_qscheme){.bits = 4}),
    };
    for (int i = 0; i < OUTER * NCH * INNER; i++)
        x[i] = (float)(8 * urand() - 4);
    qd_fake_quant_channels(x, y, OUTER, NCH, INNER, enc);
    int bad = 0;
    for (int o = 0; o < OUTER; o++)
        for (int c = 0; c < NCH; c++) {
            size_t off = ((size_t)o * NCH + c) * INNER;
            qd_fake_quant_ref(x + off, r, INNER, &enc[c]);
            for (int i = 0; i < INNER; i++)
                bad += r[i] != y[off + i];
        }
    ok(bad == 0, "per-channel fake quant: %d slices differ from the reference", bad);
    /* in place */
    qd_fake_quant_channels(x, x, OUTER, NCH, INNER, enc);
    ok(memcmp(x, y, sizeof x) == 0, "per-channel in place");
}

static void test_int(void)
{
    /* asym [-1, 3]: scale 4/255, offset -64, grid q in [-64, 191] */
    qd_encoding e = qd_quant_encoding(-1, 3, &ASYM8);
    ok(qd_quant_int(0, &e) == 64, "int(0) = -offset = 64: %d", qd_quant_int(0, &e));
    /* -1 / (4/255) = -63.75 -> -64 -> 0 */
    ok(qd_quant_int(-1, &e) == 0, "int(-1) = 0: %d", qd_quant_int(-1, &e));
    /* 3 / (4/255) = 191.25 -> 191 -> 255 */
    ok(qd_quant_int(3, &e) == 255, "int(3) = 255: %d", qd_quant_int(3, &e));
    ok(qd_quant_int(100, &e) == 255 && qd_quant_int(-100, &e) == 0, "int saturates");
    /* 1 / (4/255) = 63.75 -> 64 -> 128 */
    ok(qd_quant_int(1, &e) == 128, "int(1) = 128: %d", qd_quant_int(1, &e));
    /* symmetric: offset -128, so 0 -> 128; 2.54 / 0.02 = 127 -> 255 */
    qd_encoding s = qd_quant_encoding(-0.5, 2.54, &SYM8);
    ok(qd_quant_int(0, &s) == 128, "sym int(0) = 128: %d", qd_quant_int(0, &s));
    ok(qd_quant_int(2.54f, &s) == 255, "sym int(2.54) = 255: %d", qd_quant_int(2.54f, &s));
    ok(qd_quant_int(-2.56f, &s) == 0, "sym int(-2.56) = 0: %d", qd_quant_int(-2.56f, &s));
    /* strict: grid [-127, 127] -> integers [0, 254] */
    qd_encoding t = qd_quant_encoding(-0.5, 2.54, &STRICT8);
    ok(qd_quant_int(-100, &t) == 0 && qd_quant_int(100, &t) == 254, "strict int range [0, 254]: %d %d",
       qd_quant_int(-100, &t), qd_quant_int(100, &t));
    /* the integer and the fake-quant value agree: y = (int + offset) * scale */
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        float x = (float)(6 * urand() - 2.5), y;
        qd_fake_quant(&x, &y, 1, &e);
        float back = (float)(qd_quant_int(x, &e) + e.offset) * (float)e.scale;
        bad += y != back;
    }
    ok(bad == 0, "int and fake quant agree (%d differ)", bad);
}

int main(void)
{
    test_encodings();
    test_degenerate();
    test_so_and_invalid();
    test_round_half_even();
    test_fake_quant();
    test_channels();
    test_int();
    return th_summary();
}
