/* fastmath.h - branch-free float helpers that let loops vectorize (shared
 * by the operators and the optimizers). */
#ifndef QD_FASTMATH_H
#define QD_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float bits_f(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }
static inline int32_t f_bits(float f) { int32_t i; memcpy(&i, &f, sizeof i); return i; }

/* expf without branches or calls, so that loops using it vectorize (libm's
 * expf is the reference: tests/test_math.c sweeps the float range and allows
 * 2 ulp; ONNX Runtime's MLAS uses a similar polynomial). exp(x) = 2^k e^r with
 * k = round(x / ln2) (by the 1.5 * 2^23 trick: no float->int conversion, so
 * NaN is harmless), |r| <= ln2/2 via Cody-Waite, e^r by Cephes' degree-6
 * polynomial, and 2^k applied in two halves so that k = 128 overflows to inf
 * and k < -126 gives subnormals. */
static inline float fast_expf(float x)
{
    const float lo = -103.972084045410f, hi = 88.7228393554688f, magic = 12582912.0f;
    float xc = x < lo ? lo : x > hi ? hi : x;
    float t = xc * 1.44269504088896341f + magic;
    float k = t - magic;
    uint32_t ki = (uint32_t)f_bits(t) - (uint32_t)f_bits(magic); /* k, two's complement */
    float r = xc - k * 0.693359375f - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    uint32_t k1 = (uint32_t)((int32_t)ki >> 1), k2 = ki - k1;
    y = y * bits_f((int32_t)((k1 + 127) << 23)) * bits_f((int32_t)((k2 + 127) << 23));
    return x < lo ? 0.0f : y;
}

#endif
