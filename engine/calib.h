/* calib.h - range setting: running statistics of a tensor (min/max and a
 * histogram in bounded memory) and the methods that turn them into an
 * encoding:
 *   minmax      AIMET "tf": the observed range
 *   sqnr        AIMET "tf_enhanced": grid search over candidate (scale, offset)
 *               pairs on the histogram, cost = 3 x saturation noise + quantization noise
 *   percentile  clip to the p-th / (100-p)-th percentiles (p e.g. 99.99)
 *   mse         the clipping range that minimizes the expected squared error
 *   kl          the clipping range that minimizes KL(P || Q) between the
 *               histogram and its quantized version (TensorRT-style entropy) */
#ifndef QD_CALIB_H
#define QD_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "quant.h"

typedef enum qd_range_method {
    QD_RANGE_MINMAX,
    QD_RANGE_SQNR,
    QD_RANGE_PERCENTILE,
    QD_RANGE_MSE,
    QD_RANGE_KL,
    QD_RANGE__COUNT
} qd_range_method;

/* "minmax", "sqnr", "percentile", "mse", "kl". */
const char *qd_range_name(qd_range_method m);
/* Parse "minmax" | "tf" | "sqnr" | "tf_enhanced" | "percentile[:P]" | "mse" |
 * "kl" | "entropy"; P in (50, 100], default 99.99. QD_EINPUT with a message
 * naming s when invalid (*m and *pct are then untouched). *pct is set only
 * for percentile; pct may be NULL. */
int qd_range_parse(const char *s, qd_range_method *m, double *pct, qd_err *e);

/* Running statistics of one tensor: exact min/max, element count, and a
 * histogram with a fixed number of bins (2048) whose range grows (by merging
 * bins) as new data exceeds it. Memory is bounded by the bin count. NaNs are
 * ignored; +-inf count toward min/max and the count but not the histogram,
 * and encodings use the range of the finite values. Not synchronized: one
 * thread at a time per qd_stats (there is no shared state between them). */
typedef struct qd_stats qd_stats;

/* hist = 0 keeps min/max only (enough for minmax). NULL on out of memory.
 * qd_stats_add costs one pass over x: about 0.2 ns/element for min/max
 * only, 0.7 with the histogram (QDB_CALIB_BENCH=1 build/.../test_calib). */
qd_stats *qd_stats_new(int hist);
void qd_stats_free(qd_stats *s);
void qd_stats_reset(qd_stats *s);
void qd_stats_add(qd_stats *s, const float *x, size_t n);
/* Merge b into a (a may be b). With different hist settings only the
 * count and min/max merge: a's histogram then lacks b's data. */
void qd_stats_merge(qd_stats *a, const qd_stats *b);
/* Non-NaN elements seen; their min and max (+-inf included; +inf and -inf
 * while empty). */
int64_t qd_stats_count(const qd_stats *s);
double qd_stats_min(const qd_stats *s);
double qd_stats_max(const qd_stats *s);
int qd_stats_has_hist(const qd_stats *s);
/* Histogram view: returns nbins, the counts over [lo, hi) in bins of equal
 * width (borrowed: valid until the next add, merge, reset or free), or 0
 * (counts NULL) without a histogram or before any finite value. Counts are
 * integers except after merges of histograms with different bins. */
int qd_stats_hist(const qd_stats *s, const double **counts, double *lo, double *hi);

/* Encoding of scheme sch from the statistics by method m (pct for
 * percentile). QD_EINPUT when the statistics are empty, a histogram method
 * is asked of stats without one, pct is outside (50, 100] or the bit-width
 * outside QD_BITS_MIN..QD_BITS_MAX. A constant tensor (dead channel) gets
 * the minmax encoding from every method. Each search costs well under a
 * millisecond (O(bins) per candidate; see calib.c). */
int qd_stats_encoding(const qd_stats *s, qd_range_method m, double pct, const qd_qscheme *sch,
                      qd_encoding *out, qd_err *e);

/* Encodings of a whole in-memory tensor laid out outer x nch x inner:
 * one per channel when nch > 1 (enc has nch entries; channel c is every
 * x[(o * nch + c) * inner + i]), else one. Each channel's histogram spans
 * exactly its range. QD_EINPUT for an empty tensor. */
int qd_calib_tensor(const float *x, size_t outer, size_t nch, size_t inner, qd_range_method m,
                    double pct, const qd_qscheme *sch, qd_encoding *enc, qd_err *e);

#endif
