/* quant.h - one quantizer's arithmetic: encodings (scale, offset, grid) from
 * a range, and quantize-dequantize ("fake quant") kernels. The math is
 * AIMET's (libpymo getComputedEncodings / QuantizeToFxp):
 *
 *   steps = 2^bits - 1, one less for strict symmetric.
 *   Range first widened to contain 0, and max >= min + QD_MIN_RANGE.
 *   symmetric (signed; or unsigned symmetric off; or min < 0):
 *       absmax = max(|min|, |max|); pos = floor(steps / 2)
 *       scale = absmax / pos; offset = -ceil(steps / 2)
 *       min = offset * scale; max = pos * scale      (8 bit: [-128, 127] * scale,
 *                                                      strict: [-127, 127] * scale)
 *   asymmetric, or unsigned symmetric with min >= 0:
 *       scale = (max - min) / steps
 *       offset = -round(-min / scale) clamped to [-steps, 0] when min < 0 < max
 *                (0 is then exactly representable), else round(min / scale)
 *       min = offset * scale; max = min + (max_in - min_in)
 *
 *   fake quant:  q = clamp(round(x / scale), offset, offset + steps)
 *                y = q * scale
 *   with round half to even (as torch.round and ONNX QuantizeLinear).
 *   The integer the hardware holds is q - offset in [0, steps]; AIMET's
 *   "offset" is minus the ONNX zero point. */
#ifndef QD_QUANT_H
#define QD_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* AIMET's minimum range: dead channels and constant tensors never give a
 * zero, NaN or denormal scale. */
#define QD_MIN_RANGE 0.01
#define QD_BITS_MIN 2
#define QD_BITS_MAX 16
#define QD_BITS_FLOAT 32   /* "32 bits" = left in float (quantizer bypassed) */

/* How a quantizer maps a range onto its integer grid. */
typedef struct qd_qscheme {
    int bits;               /* QD_BITS_MIN..QD_BITS_MAX, or QD_BITS_FLOAT */
    int symmetric;          /* grid symmetric around 0 */
    int unsigned_symmetric; /* symmetric and range >= 0: use the unsigned grid [0, steps] (AIMET default on) */
    int strict_symmetric;   /* symmetric with steps = 2^bits - 2: [-(2^(b-1)-1), 2^(b-1)-1] */
} qd_qscheme;

/* One encoding (per tensor, or per channel). */
typedef struct qd_encoding {
    double min, max;   /* representable range: min = offset * scale, max = min + steps * scale */
    double scale;      /* step (AIMET "delta"), > 0 */
    int offset;        /* AIMET offset: integer of min; zero point = -offset */
    int bits;
    int symmetric;     /* the scheme was symmetric (for is_symmetric in encodings files) */
} qd_encoding;

/* Integer steps of a scheme: 2^bits - 1 (- 1 when strict symmetric). */
double qd_quant_steps(const qd_qscheme *s);

/* Encoding for an observed range [min, max] (AIMET's computeEncoding:
 * widened to contain 0 and to at least QD_MIN_RANGE). Non-finite inputs are
 * treated as 0. s->bits must be in QD_BITS_MIN..QD_BITS_MAX. */
qd_encoding qd_quant_encoding(double min, double max, const qd_qscheme *s);

/* Encoding from a candidate (scale, offset) pair as the range searches
 * produce them: min = offset * scale, max = min + steps * scale. */
qd_encoding qd_quant_encoding_so(double scale, int offset, const qd_qscheme *s);

/* Check an encoding read from a file or given by a user: finite, scale > 0,
 * bits in range, offset in [-steps, 0]... Returns NULL when valid, else a
 * static string saying what is wrong. */
const char *qd_quant_encoding_invalid(const qd_encoding *e);

/* Quantize-dequantize n floats from x into y (x == y allowed). */
void qd_fake_quant(const float *x, float *y, size_t n, const qd_encoding *e);

/* Per channel along one axis: x is outer x nch x inner (C order), channel c
 * uses enc[c]. (Conv weights: outer = 1, nch = C_out, inner = C_in*kh*kw.) */
void qd_fake_quant_channels(const float *x, float *y, size_t outer, size_t nch, size_t inner,
                            const qd_encoding *enc);

/* Plain scalar reference of qd_fake_quant, for tests. */
void qd_fake_quant_ref(const float *x, float *y, size_t n, const qd_encoding *e);

/* Integer value q - offset in [0, steps] that x quantizes to (for exports). */
int32_t qd_quant_int(float x, const qd_encoding *e);

/* Bias as an integer kernel stores it: round(b / scale) saturated to int32,
 * scale = s_in * s_w in float (see qd_sim_opts.float_bias). */
int32_t qd_quant_bias(float b, float scale);

#endif
