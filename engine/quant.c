/* quant.c - encodings and fake-quant kernels (see quant.h for the math). */
/* The fake-quant loop runs over every activation: worth the full vectorizer
 * (GCC 12 at -O2 skips loops that need a scalar epilogue), as in op_math.c. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "quant.h"

#include <math.h>

double qd_quant_steps(const qd_qscheme *s)
{
    double steps = ldexp(1.0, s->bits) - 1.0;
    if (s->symmetric && s->strict_symmetric)
        steps -= 1.0;
    return steps;
}

/* Signed symmetric grid? (unsigned symmetric only applies to ranges >= 0) */
static int signed_grid(const qd_qscheme *s, double min)
{
    return s->symmetric && (min < 0.0 || !s->unsigned_symmetric);
}

qd_encoding qd_quant_encoding(double min, double max, const qd_qscheme *s)
{
    if (!isfinite(min))
        min = 0.0;
    if (!isfinite(max))
        max = 0.0;
    if (min > max) {
        double t = min;
        min = max;
        max = t;
    }
    min = fmin(min, 0.0);
    max = fmax(max, 0.0);
    max = fmax(max, min + QD_MIN_RANGE);

    double steps = qd_quant_steps(s);
    qd_encoding e = {.bits = s->bits, .symmetric = s->symmetric};
    if (signed_grid(s, min)) {
        double absmax = fmax(fabs(min), fabs(max));
        double pos = floor(steps / 2);
        e.scale = absmax / pos;
        e.offset = (int)-ceil(steps / 2);
        e.min = e.offset * e.scale;
        e.max = pos * e.scale;
        return e;
    }
    e.scale = (max - min) / steps;
    if (min < 0.0 && max > 0.0) {
        double z = nearbyint(-min / e.scale);
        z = fmin(steps, fmax(0.0, z));
        e.offset = (int)-z;
    } else {
        e.offset = (int)nearbyint(min / e.scale);
    }
    e.min = e.scale * e.offset;
    e.max = max - min + e.min;
    return e;
}

qd_encoding qd_quant_encoding_so(double scale, int offset, const qd_qscheme *s)
{
    qd_encoding e = {.bits = s->bits, .symmetric = s->symmetric, .scale = scale, .offset = offset};
    e.min = scale * offset;
    e.max = e.min + qd_quant_steps(s) * scale;
    return e;
}

const char *qd_quant_encoding_invalid(const qd_encoding *e)
{
    if (e->bits < QD_BITS_MIN || e->bits > QD_BITS_MAX)
        return "bit-width out of range 2..16";
    if (!isfinite(e->scale) || !(e->scale > 0.0))
        return "scale is not a positive finite number";
    if (e->scale < 1e-30)
        return "scale is too small (denormal)";
    if (!isfinite(e->min) || !isfinite(e->max))
        return "min/max are not finite";
    double steps = ldexp(1.0, e->bits) - 1.0;
    if (e->offset > 0 || e->offset < -steps)
        return "offset outside [-(2^bits - 1), 0]";
    /* the grid's top, which the kernels take from max, must be offset +
     * 2^bits - 1 steps (or 2^bits - 2 for strict symmetric) */
    double top = e->max / e->scale - e->offset, h = nearbyint(top);
    if ((h != steps && h != steps - 1) || fabs(top - h) > 1e-3)
        return "max is not min + (2^bits - 1) * scale";
    if (fabs(e->min / e->scale - e->offset) > 1e-3)
        return "min is not offset * scale";
    return NULL;
}

/* Round half to even for |v| < 2^22: adding and subtracting 1.5 * 2^23 leaves
 * the nearest integer under the default rounding mode, and vectorizes with
 * plain SSE2 (rintf needs SSE4.1 to vectorize). Callers clamp v first. */
static inline float round_even(float v)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

/* Quantize-dequantize one value with the grid [lo, hi] in units of scale. */
static inline float fq1(float x, float scale, float lo, float hi)
{
    float v = x / scale;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return round_even(v) * scale;
}

/* Two loops so that each vectorizes without a runtime overlap check (which
 * would send the in-place case, the common one, to scalar code). */
static void fq_span(const float *restrict x, float *restrict y, size_t n, float scale, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        y[i] = fq1(x[i], scale, lo, hi);
}

static void fq_span_inplace(float *y, size_t n, float scale, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        y[i] = fq1(y[i], scale, lo, hi);
}

/* Highest grid integer of e (in units of scale): min / scale + steps. */
static double grid_hi(const qd_encoding *e)
{
    return nearbyint(e->max / e->scale);
}

static void fq_any(const float *x, float *y, size_t n, const qd_encoding *e)
{
    float scale = (float)e->scale;
    float lo = (float)e->offset;
    float hi = (float)grid_hi(e);
    if (x == y)
        fq_span_inplace(y, n, scale, lo, hi);
    else
        fq_span(x, y, n, scale, lo, hi);
}

void qd_fake_quant(const float *x, float *y, size_t n, const qd_encoding *e)
{
    fq_any(x, y, n, e);
}

void qd_fake_quant_channels(const float *x, float *y, size_t outer, size_t nch, size_t inner,
                            const qd_encoding *enc)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < nch; c++) {
            size_t off = (o * nch + c) * inner;
            fq_any(x + off, y + off, inner, &enc[c]);
        }
}

void qd_fake_quant_ref(const float *x, float *y, size_t n, const qd_encoding *e)
{
    double lo = e->offset, hi = grid_hi(e);
    for (size_t i = 0; i < n; i++) {
        float v = x[i] / (float)e->scale;
        double q = nearbyint((double)v);
        q = q < lo ? lo : q > hi ? hi : q;
        y[i] = (float)q * (float)e->scale;
    }
}

int32_t qd_quant_int(float x, const qd_encoding *e)
{
    double lo = e->offset, hi = grid_hi(e);
    double q = nearbyint((double)(x / (float)e->scale));
    if (isnan(q))
        q = 0; /* NaN goes to real 0 */
    q = q < lo ? lo : q > hi ? hi : q;
    return (int32_t)(q - e->offset);
}

int32_t qd_quant_bias(float b, float scale)
{
    double q = nearbyint((double)(b / scale));
    if (isnan(q))
        return 0;
    return q < -2147483648.0 ? INT32_MIN : q > 2147483647.0 ? INT32_MAX : (int32_t)q;
}
