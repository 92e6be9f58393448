/* test_calib.c - calib.c: statistics (NaN/inf, growth across batches,
 * merge), each range method on distributions with known answers, measured
 * fake-quant error against min-max, per-channel weights, parsing.
 * QDB_CALIB_BENCH=1 also prints ns/element of qd_stats_add and the time of
 * each encoding search. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calib.h"
#include "harness.h"

static const qd_qscheme ASYM8 = {.bits = 8};
static const qd_qscheme SYM8 = {.bits = 8, .symmetric = 1, .unsigned_symmetric = 1};
static const qd_qscheme SYM4 = {.bits = 4, .symmetric = 1, .unsigned_symmetric = 1};

/* ---- data ---- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) * 0x1p-53;
}

static double grand(void)
{
    return sqrt(-2 * log(urand())) * cos(2 * M_PI * urand());
}

static float *gauss(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)grand();
    return x;
}

/* Mean squared quantize-dequantize error of x under e. */
static double fq_mse(const float *x, size_t n, const qd_encoding *e)
{
    float *y = malloc(n * sizeof *y);
    qd_fake_quant(x, y, n, e);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    free(y);
    return s / n;
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Value at rank q * n of the sorted data (the histogram's definition). */
static double exact_quantile(const float *x, size_t n, double q)
{
    float *s = malloc(n * sizeof *s);
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmpf);
    double r = q * n - 0.5;
    size_t i = r < 0 ? 0 : r >= n - 1 ? n - 1 : (size_t)r;
    double v = s[i];
    free(s);
    return v;
}

static qd_stats *stats_of(const float *x, size_t n)
{
    qd_stats *s = qd_stats_new(1);
    qd_stats_add(s, x, n);
    return s;
}

static qd_encoding enc_of(const qd_stats *s, qd_range_method m, double pct, const qd_qscheme *sch)
{
    qd_err e = {0};
    qd_encoding enc = {0};
    int rc = qd_stats_encoding(s, m, pct, sch, &enc, &e);
    ok(rc == QD_OK, "%s: rc %d: %s", qd_range_name(m), rc, e.msg);
    ok(qd_quant_encoding_invalid(&enc) == NULL, "%s: invalid encoding: %s", qd_range_name(m),
       qd_quant_encoding_invalid(&enc));
    return enc;
}

static double bin_width(const qd_stats *s)
{
    double lo, hi;
    int n = qd_stats_hist(s, NULL, &lo, &hi);
    return n ? (hi - lo) / n : 0;
}

static double hist_total(const qd_stats *s)
{
    const double *c;
    double lo, hi, t = 0;
    int n = qd_stats_hist(s, &c, &lo, &hi);
    for (int i = 0; i < n; i++)
        t += c[i];
    return t;
}

/* ---- parsing ---- */

static void test_parse(void)
{
    struct {
        const char *s;
        qd_range_method m;
        double pct;
    } good[] = {
        {"minmax", QD_RANGE_MINMAX, -1}, {"tf", QD_RANGE_MINMAX, -1},
        {"sqnr", QD_RANGE_SQNR, -1},     {"tf_enhanced", QD_RANGE_SQNR, -1},
        {"mse", QD_RANGE_MSE, -1},       {"kl", QD_RANGE_KL, -1},
        {"entropy", QD_RANGE_KL, -1},    {"percentile", QD_RANGE_PERCENTILE, 99.99},
        {"percentile:99.9", QD_RANGE_PERCENTILE, 99.9},
        {"percentile:100", QD_RANGE_PERCENTILE, 100},
        {"percentile:50.5", QD_RANGE_PERCENTILE, 50.5},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        qd_err e = {0};
        qd_range_method m = QD_RANGE__COUNT;
        double pct = -1;
        int rc = qd_range_parse(good[i].s, &m, &pct, &e);
        ok(rc == QD_OK && m == good[i].m && pct == good[i].pct, "parse \"%s\": rc %d m %d pct %g (%s)",
           good[i].s, rc, (int)m, pct, e.msg);
    }
    const char *bad[] = {"percentile:101", "foo", "percentile:abc", "percentile:", "percentile:50",
                         "percentile:99x", "percentile:nan", "minmax:3", "", "MinMax", "percentile:-99"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qd_err e = {0};
        qd_range_method m = QD_RANGE_MSE;
        double pct = 7;
        int rc = qd_range_parse(bad[i], &m, &pct, &e);
        ok(rc == QD_EINPUT && e.code == QD_EINPUT, "parse \"%s\" rejected: rc %d", bad[i], rc);
        ok(strstr(e.msg, bad[i]) != NULL, "message names \"%s\": %s", bad[i], e.msg);
        ok(m == QD_RANGE_MSE && pct == 7, "\"%s\": outputs untouched on error", bad[i]);
    }
    qd_range_method m;
    ok(qd_range_parse("percentile:99", &m, NULL, NULL) == QD_OK && m == QD_RANGE_PERCENTILE,
       "pct and err may be NULL");
    const char *names[] = {"minmax", "sqnr", "percentile", "mse", "kl"};
    for (int i = 0; i < QD_RANGE__COUNT; i++) {
        ok(strcmp(qd_range_name(i), names[i]) == 0, "name %d = %s", i, qd_range_name(i));
        ok(qd_range_parse(qd_range_name(i), &m, NULL, NULL) == QD_OK && (int)m == i,
           "name %s parses back", names[i]);
    }
    ok(strcmp(qd_range_name(QD_RANGE__COUNT), "?") == 0, "name out of range");
}

/* ---- statistics ---- */

static void test_stats_basic(void)
{
    /* NaN ignored; +-inf count toward min/max and count, not the histogram */
    float x[] = {1, -2, NAN, 3, INFINITY, 0.5f};
    for (int hist = 0; hist <= 1; hist++) {
        qd_stats *s = qd_stats_new(hist);
        ok(s && qd_stats_has_hist(s) == hist, "new(%d)", hist);
        ok(qd_stats_count(s) == 0, "empty count");
        qd_stats_add(s, x, 6);
        ok(qd_stats_count(s) == 5, "count without NaN: %lld", (long long)qd_stats_count(s));
        ok(qd_stats_min(s) == -2 && qd_stats_max(s) == INFINITY, "min/max with inf: %g %g",
           qd_stats_min(s), qd_stats_max(s));
        /* minmax uses the finite range [-2, 3] */
        qd_encoding e = enc_of(s, QD_RANGE_MINMAX, 0, &ASYM8);
        qd_encoding w = qd_quant_encoding(-2, 3, &ASYM8);
        ok(e.scale == w.scale && e.offset == w.offset, "minmax of finite range");
        float ninf = -INFINITY;
        qd_stats_add(s, &ninf, 1);
        ok(qd_stats_min(s) == -INFINITY && qd_stats_count(s) == 6, "-inf counts");
        if (hist) {
            near(hist_total(s), 4, 0, 0, "histogram holds the 4 finite values");
            const double *c;
            double lo, hi;
            ok(qd_stats_hist(s, &c, &lo, &hi) == 2048, "2048 bins");
            ok(lo <= -2 && hi >= 3 && hi - lo < 5.5, "hist range [%g, %g] covers [-2, 3]", lo, hi);
        } else {
            ok(qd_stats_hist(s, NULL, NULL, NULL) == 0, "no histogram without hist");
        }
        qd_stats_reset(s);
        ok(qd_stats_count(s) == 0 && qd_stats_hist(s, NULL, NULL, NULL) == 0, "reset");
        qd_stats_free(s);
    }
    qd_stats_free(NULL);

    /* the large-tensor path with NaN and inf sprinkled in */
    enum { N = 300001 };
    float *y = gauss(N);
    int nnan = 0, ninf = 0;
    for (int i = 0; i < N; i += 997) {
        y[i] = i % 2 ? NAN : (i % 3 ? INFINITY : -INFINITY);
        if (i % 2)
            nnan++;
        else
            ninf++;
    }
    qd_stats *s = stats_of(y, N);
    ok(qd_stats_count(s) == N - nnan, "large: count %lld, want %d", (long long)qd_stats_count(s),
       N - nnan);
    near(hist_total(s), N - nnan - ninf, 0, 0, "large: histogram total = finite values");
    ok(qd_stats_max(s) == INFINITY && qd_stats_min(s) == -INFINITY, "large: inf in min/max");
    qd_encoding e = enc_of(s, QD_RANGE_PERCENTILE, 99.99, &SYM8);
    ok(e.max > 3 && e.max < 5, "large: percentile ignores inf: max %g", e.max);
    qd_stats_free(s);
    free(y);

    /* all NaN: no statistics */
    float nan4[4] = {NAN, NAN, NAN, NAN};
    s = qd_stats_new(1);
    qd_stats_add(s, nan4, 4);
    qd_err err = {0};
    qd_encoding out;
    ok(qd_stats_encoding(s, QD_RANGE_MINMAX, 0, &ASYM8, &out, &err) == QD_EINPUT && err.msg[0],
       "all-NaN stats: QD_EINPUT (%s)", err.msg);
    /* only infinities: a minimum-range encoding */
    float inf2[2] = {INFINITY, -INFINITY};
    qd_stats_add(s, inf2, 2);
    e = enc_of(s, QD_RANGE_SQNR, 0, &ASYM8);
    near(e.max - e.min, QD_MIN_RANGE, 1e-12, 0, "only inf: min range");
    qd_stats_free(s);
}

static void test_errors(void)
{
    qd_stats *s = qd_stats_new(1), *m = qd_stats_new(0);
    qd_encoding out;
    qd_err e = {0};
    ok(qd_stats_encoding(s, QD_RANGE_MINMAX, 0, &ASYM8, &out, &e) == QD_EINPUT && e.msg[0],
       "empty stats: %s", e.msg);
    float x[3] = {1, 2, 3};
    qd_stats_add(m, x, 3);
    for (int k = QD_RANGE_SQNR; k < QD_RANGE__COUNT; k++) {
        e = (qd_err){0};
        ok(qd_stats_encoding(m, k, 99, &ASYM8, &out, &e) == QD_EINPUT && strstr(e.msg, "histogram"),
           "%s without histogram: %s", qd_range_name(k), e.msg);
    }
    qd_stats_add(s, x, 3);
    e = (qd_err){0};
    ok(qd_stats_encoding(s, QD_RANGE_PERCENTILE, 101, &ASYM8, &out, &e) == QD_EINPUT,
       "percentile 101: %s", e.msg);
    e = (qd_err){0};
    ok(qd_stats_encoding(s, QD_RANGE_MINMAX, 0, &(qd_qscheme){.bits = 32}, &out, &e) == QD_EINPUT,
       "32 bits: %s", e.msg);
    e = (qd_err){0};
    ok(qd_stats_encoding(s, QD_RANGE__COUNT, 0, &ASYM8, &out, &e) == QD_EINPUT, "bad method: %s",
       e.msg);
    e = (qd_err){0};
    ok(qd_calib_tensor(x, 0, 3, 1, QD_RANGE_MINMAX, 0, &ASYM8, &out, &e) == QD_EINPUT,
       "empty tensor: %s", e.msg);
    qd_stats_free(s);
    qd_stats_free(m);
}

/* Growth across batches keeps every count and gives the same percentile
 * (within a bin) as one batch of all the data, and as the sorted data. */
static void test_growth(void)
{
    enum { B = 20, N = 10000 };
    float *x = gauss(B * N);
    /* batches get wider and drift: the range must grow on both sides */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            x[b * N + i] = x[b * N + i] * (1 + b / 4.0f) + (b % 3 == 0 ? 0.5f * b : -0.2f * b);
    qd_stats *inc = qd_stats_new(1), *one = stats_of(x, B * N);
    for (int b = 0; b < B; b++)
        qd_stats_add(inc, x + b * N, N);
    ok(qd_stats_count(inc) == B * N, "count after growth");
    near(hist_total(inc), B * N, 0, 0, "no count lost while growing");
    ok(qd_stats_min(inc) == qd_stats_min(one) && qd_stats_max(inc) == qd_stats_max(one),
       "exact min/max across batches");
    double wi = bin_width(inc), wo = bin_width(one);
    ok(wi < 4 * wo, "grown bins %g not much coarser than one batch's %g", wi, wo);
    double pcts[] = {99.99, 99.9, 99, 90};
    for (size_t k = 0; k < sizeof pcts / sizeof pcts[0]; k++) {
        qd_qscheme sch = ASYM8;
        qd_encoding a = enc_of(inc, QD_RANGE_PERCENTILE, pcts[k], &sch);
        qd_encoding o = enc_of(one, QD_RANGE_PERCENTILE, pcts[k], &sch);
        /* the encodings' ends are the percentiles snapped to the grid; compare the
         * raw percentiles through an unclipped asymmetric grid of 16 bits instead */
        sch.bits = 16;
        a = enc_of(inc, QD_RANGE_PERCENTILE, pcts[k], &sch);
        o = enc_of(one, QD_RANGE_PERCENTILE, pcts[k], &sch);
        double qhi = exact_quantile(x, B * N, pcts[k] / 100);
        double qlo = exact_quantile(x, B * N, 1 - pcts[k] / 100);
        near(a.max, o.max, wi + 2 * a.scale, 0, "grown vs one-batch percentile max");
        near(a.min, o.min, wi + 2 * a.scale, 0, "grown vs one-batch percentile min");
        near(a.max, qhi, wi + 2 * a.scale, 0, "grown percentile max vs sorted data");
        near(a.min, qlo, wi + 2 * a.scale, 0, "grown percentile min vs sorted data");
        near(o.max, qhi, wo + 2 * o.scale, 0, "one-batch percentile max vs sorted data");
    }

    /* a dead first batch (all zeros) does not cost resolution later */
    qd_stats *d = qd_stats_new(1);
    float z[1000] = {0};
    qd_stats_add(d, z, 1000);
    qd_stats_add(d, x, N);
    near(hist_total(d), 1000 + N, 0, 0, "dead first batch: counts");
    ok(bin_width(d) < 2.5 * bin_width(one) * (qd_stats_max(d) - qd_stats_min(d)) /
                          (qd_stats_max(one) - qd_stats_min(one)) + 1e-6,
       "dead first batch: bins %g", bin_width(d));
    /* one tiny then one huge value */
    float t1 = 1e-6f, t2 = 1e6f;
    qd_stats_add(d, &t1, 1);
    qd_stats_add(d, &t2, 1);
    near(hist_total(d), 1002 + N, 0, 0, "huge growth keeps counts");
    const double *c;
    double lo, hi;
    qd_stats_hist(d, &c, &lo, &hi);
    ok(lo <= qd_stats_min(d) && hi >= 1e6, "range covers the huge value: [%g, %g]", lo, hi);
    qd_stats_free(d);

    /* adding the same data again never grows the range (exact ends stay covered
     * after lo is rounded to float), and data far from 0 keeps its resolution */
    for (int k = 0; k < 3; k++) {
        float base = k == 0 ? 1000.0f : k == 1 ? -0.001f : 3e30f;
        float v[5000];
        for (int i = 0; i < 5000; i++)
            v[i] = base + (k == 2 ? 1e27f : 1.0f) * (float)(i % 1000) / 999;
        qd_stats *g = qd_stats_new(1);
        qd_stats_add(g, v, 5000);
        double lo0, hi0, lo1, hi1;
        qd_stats_hist(g, NULL, &lo0, &hi0);
        for (int r = 0; r < 5; r++)
            qd_stats_add(g, v, r % 2 ? 5000 : 100);
        qd_stats_hist(g, NULL, &lo1, &hi1);
        ok(lo0 == lo1 && hi0 == hi1, "base %g: range unchanged by the same data: [%.9g, %.9g] -> [%.9g, %.9g]",
           base, lo0, hi0, lo1, hi1);
        near(hist_total(g), 5000 * 3 + 100 * 3, 0, 0, "same data: counts");
        qd_encoding p = enc_of(g, QD_RANGE_PERCENTILE, 90, &(qd_qscheme){.bits = 16});
        (void)p;
        qd_stats_free(g);
    }

    /* a growth to the left rounds the new lo down to a float; the old exact
     * maximum must still count as covered (no doubling when A comes again) */
    for (int k = 0; k < 20; k++) {
        float a[3000], b[3000];
        double top = 1.3 + 0.071 * k;
        for (int i = 0; i < 3000; i++) {
            a[i] = (float)(0.1 + (top - 0.1) * i / 2999);
            b[i] = (float)(-1.7 - 0.37 * k + 2.2 * i / 2999);
        }
        qd_stats *g = qd_stats_new(1);
        qd_stats_add(g, a, 3000);
        qd_stats_add(g, b, 3000);
        double lo0, hi0, lo1, hi1;
        qd_stats_hist(g, NULL, &lo0, &hi0);
        qd_stats_add(g, a, 3000);
        qd_stats_add(g, b, 3000);
        qd_stats_hist(g, NULL, &lo1, &hi1);
        ok(lo0 == lo1 && hi0 == hi1, "grown range stable under the same data (k %d): [%.9g, %.9g] -> [%.9g, %.9g]",
           k, lo0, hi0, lo1, hi1);
        qd_stats_free(g);
    }

    /* merge: two halves give the one-batch answer */
    qd_stats *h1 = qd_stats_new(1), *h2 = qd_stats_new(1), *empty = qd_stats_new(1);
    for (int b = 0; b < B; b++)
        qd_stats_add(b < B / 2 ? h1 : h2, x + b * N, N);
    qd_stats_merge(h1, h2);
    ok(qd_stats_count(h1) == B * N, "merge count");
    near(hist_total(h1), B * N, 1e-6, 1e-12, "merge keeps the histogram mass");
    ok(qd_stats_min(h1) == qd_stats_min(one) && qd_stats_max(h1) == qd_stats_max(one), "merge min/max");
    qd_qscheme s16 = {.bits = 16};
    qd_encoding pm = enc_of(h1, QD_RANGE_PERCENTILE, 99.9, &s16);
    qd_encoding po = enc_of(one, QD_RANGE_PERCENTILE, 99.9, &s16);
    near(pm.max, po.max, 2 * bin_width(h1), 0, "merged percentile max");
    near(pm.min, po.min, 2 * bin_width(h1), 0, "merged percentile min");
    qd_stats_merge(empty, h1);
    ok(qd_stats_count(empty) == B * N, "merge into empty");
    near(hist_total(empty), hist_total(h1), 0, 0, "merge into empty copies the histogram");
    qd_stats_merge(empty, empty);
    ok(qd_stats_count(empty) == 2 * B * N, "merge with itself doubles");
    near(hist_total(empty), 2 * hist_total(h1), 1e-6, 1e-12, "self-merge mass");
    qd_stats *nh = qd_stats_new(0);
    qd_stats_merge(nh, h1);
    ok(qd_stats_count(nh) == B * N && qd_stats_max(nh) == qd_stats_max(one), "merge into minmax-only");
    qd_stats_free(nh);
    qd_stats_free(h1);
    qd_stats_free(h2);
    qd_stats_free(empty);
    qd_stats_free(inc);
    qd_stats_free(one);
    free(x);
}

/* ---- methods ---- */

static void test_uniform(void)
{
    /* uniform [-1, 1]: nothing to clip, every method gives about the full range */
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++)
        x[i] = (float)(2 * urand() - 1);
    qd_stats *s = stats_of(x, N);
    const qd_qscheme *schs[] = {&ASYM8, &SYM8};
    for (int k = 0; k < 2; k++) {
        qd_encoding mm = enc_of(s, QD_RANGE_MINMAX, 0, schs[k]);
        double mse_mm = fq_mse(x, N, &mm);
        for (int m = QD_RANGE_SQNR; m < QD_RANGE__COUNT; m++) {
            qd_encoding e = enc_of(s, m, 99.99, schs[k]);
            char what[64];
            snprintf(what, sizeof what, "uniform %s %s max", k ? "sym" : "asym", qd_range_name(m));
            near(e.max, mm.max, 0.03, 0, what);
            snprintf(what, sizeof what, "uniform %s %s min", k ? "sym" : "asym", qd_range_name(m));
            near(e.min, mm.min, 0.03, 0, what);
            double mse = fq_mse(x, N, &e);
            ok(mse < 1.3 * mse_mm, "uniform %s %s: mse %g vs minmax %g", k ? "sym" : "asym",
               qd_range_name(m), mse, mse_mm);
        }
    }
    qd_stats_free(s);

    /* ReLU-like [0, 6] with half the values exactly 0: unsigned grid (offset 0), max ~ 6 */
    for (int i = 0; i < N; i++)
        x[i] = i % 2 ? (float)(6 * urand()) : 0;
    s = stats_of(x, N);
    for (int m = 0; m < QD_RANGE__COUNT; m++) {
        qd_encoding e = enc_of(s, m, 99.99, &SYM8);
        ok(e.offset == 0 && e.min == 0, "relu %s: offset %d", qd_range_name(m), e.offset);
        near(e.max, 6, 0.2, 0, "relu max");
    }
    qd_stats_free(s);

    /* percentile on 0..9999 by hand: 99% of the mass lies below 9899.5 (rank
     * 9900 of 10000, the values spread over the bins), min stays 0 (data >= 0) */
    for (int i = 0; i < 10000; i++)
        x[i] = (float)i;
    s = stats_of(x, 10000);
    qd_encoding e = enc_of(s, QD_RANGE_PERCENTILE, 99, &(qd_qscheme){.bits = 16});
    near(e.max, 9900, 2 * bin_width(s) + e.scale, 0, "p99 of 0..9999");
    ok(e.min == 0, "p99 of nonnegative data keeps min 0");
    qd_stats_free(s);
    /* two-sided -5000..4999: both ends clipped, p99 -> [-4950, 4950] */
    for (int i = 0; i < 10000; i++)
        x[i] = (float)(i - 5000);
    s = stats_of(x, 10000);
    e = enc_of(s, QD_RANGE_PERCENTILE, 99, &(qd_qscheme){.bits = 16});
    near(e.max, 4900, 2 * bin_width(s) + 2 * e.scale, 0, "p99 max of -5000..4999");
    near(e.min, -4900, 2 * bin_width(s) + 2 * e.scale, 0, "p99 min of -5000..4999");
    e = enc_of(s, QD_RANGE_PERCENTILE, 100, &(qd_qscheme){.bits = 16});
    near(e.max, 4999, 2 * e.scale, 0, "p100 = max");
    qd_stats_free(s);
    free(x);
}

/* Outliers: the clipping methods must beat min-max on the measured
 * fake-quant error of the data. Whether clipping pays depends on the
 * outlier fraction q: clipping outliers at X costs about q X^2, keeping
 * them costs (2X / steps)^2 / 12 of rounding noise on everything, so
 * clipping pays for q < 1 / (3 steps^2): 1.5e-3 at 4 bits, 5e-6 at 8. */
static void test_outliers(void)
{
    /* 4 bits, 0.01% outliers at +-(40..60) sigma */
    enum { N = 200000, N8 = 1000000 };
    float *x = gauss(N8);
    for (int i = 0; i < N; i += 10000)
        x[i] = (float)((i / 10000 % 2 ? 1 : -1) * (40 + 20 * urand()));
    qd_stats *s = stats_of(x, N);
    qd_encoding mm = enc_of(s, QD_RANGE_MINMAX, 0, &SYM4);
    double e_mm = fq_mse(x, N, &mm);
    for (int m = QD_RANGE_SQNR; m < QD_RANGE__COUNT; m++) {
        qd_encoding e = enc_of(s, m, 99.99, &SYM4);
        double err = fq_mse(x, N, &e);
        ok(err < 0.5 * e_mm && e.max < 0.5 * mm.max,
           "4-bit outliers %s: max %.3g mse %.4g vs minmax max %.3g mse %.4g", qd_range_name(m),
           e.max, err, mm.max, e_mm);
    }
    qd_stats_free(s);
    for (int i = 0; i < N; i += 10000)
        x[i] = (float)grand();

    /* 8 bits: one outlier at 60 sigma in 10^6 values (signed symmetric), and
     * the same one-sided for the asymmetric grid */
    x[12345] = 60;
    s = stats_of(x, N8);
    const qd_qscheme *schs[] = {&SYM8, &ASYM8};
    for (int k = 0; k < 2; k++) {
        mm = enc_of(s, QD_RANGE_MINMAX, 0, schs[k]);
        e_mm = fq_mse(x, N8, &mm);
        for (int m = QD_RANGE_SQNR; m < QD_RANGE__COUNT; m++) {
            qd_encoding e = enc_of(s, m, 99.99, schs[k]);
            double err = fq_mse(x, N8, &e);
            /* sym: minmax noise (120/255)^2/12 = 0.018, clipped ~ 1e-6 * 56^2 = 0.003;
             * asym: minmax (65/255)^2/12 = 0.0054 (half the span), clipped 0.003 */
            double f = k ? 0.75 : 0.5;
            ok(err < f * e_mm && e.max < f * mm.max,
               "8-bit %s outlier %s: [%.3g, %.3g] mse %.4g vs minmax [%.3g, %.3g] mse %.4g",
               k ? "asym" : "sym", qd_range_name(m), e.min, e.max, err, mm.min, mm.max, e_mm);
        }
    }
    qd_stats_free(s);
    free(x);
}

/* MSE against a brute-force search of the measured error, and the known
 * optimum for a Gaussian (ACIQ, Banner et al. 2019: clip at 2.55 sigma for 4
 * bits, 3.92 sigma for 8 bits). */
static void test_mse_optimum(void)
{
    enum { N = 400000 };
    float *x = gauss(N);
    qd_stats *s = stats_of(x, N);
    const qd_qscheme *schs[] = {&SYM4, &SYM8};
    const double aciq[] = {2.55, 3.92};
    for (int k = 0; k < 2; k++) {
        qd_encoding e = enc_of(s, QD_RANGE_MSE, 0, schs[k]);
        double err = fq_mse(x, N, &e), best = INFINITY, abest = 0;
        double amax = fmax(-qd_stats_min(s), qd_stats_max(s));
        for (int i = 1; i <= 200; i++) {
            double a = amax * i / 200;
            qd_encoding c = qd_quant_encoding(-a, a, schs[k]);
            double v = fq_mse(x, N, &c);
            if (v < best) {
                best = v;
                abest = a;
            }
        }
        ok(err <= 1.03 * best, "%d-bit gauss mse: %.5g vs brute force %.5g (clip %.3g vs %.3g)",
           schs[k]->bits, err, best, e.max, abest);
        near(e.max, aciq[k], 0.25, 0, k ? "8-bit gauss mse clip (ACIQ 3.92)" : "4-bit gauss mse clip (ACIQ 2.55)");
    }
    qd_stats_free(s);

    /* asymmetric, skewed: exponential with a small negative tail; brute force
     * over both ends */
    for (int i = 0; i < N; i++)
        x[i] = (float)(-log(urand()) - 0.3 * (i % 7 == 0 ? -log(urand()) : 0));
    s = stats_of(x, N);
    qd_qscheme a4 = {.bits = 4};
    qd_encoding e = enc_of(s, QD_RANGE_MSE, 0, &a4);
    double err = fq_mse(x, N, &e), best = INFINITY;
    double lo = qd_stats_min(s), hi = qd_stats_max(s);
    for (int i = 1; i <= 40; i++)
        for (int j = 1; j <= 40; j++) {
            qd_encoding c = qd_quant_encoding(lo * i / 40, hi * j / 40, &a4);
            double v = fq_mse(x, N / 4, &c);
            best = v < best ? v : best;
        }
    double err4 = fq_mse(x, N / 4, &e);
    ok(err4 <= 1.05 * best, "4-bit asym skewed mse: %.5g vs brute force %.5g", err4, best);
    qd_encoding mm = enc_of(s, QD_RANGE_MINMAX, 0, &a4);
    ok(err < fq_mse(x, N, &mm), "4-bit asym mse beats minmax");
    qd_stats_free(s);
    free(x);
}

static void test_sqnr_kl(void)
{
    enum { N = 400000 };
    float *x = gauss(N);
    qd_stats *s = stats_of(x, N);
    double amax = fmax(-qd_stats_min(s), qd_stats_max(s));
    /* tf_enhanced on a Gaussian at 8 bits clips a little (the top deltas
     * saturate almost nothing); never below 3 sigma, never above max |x| */
    qd_encoding e = enc_of(s, QD_RANGE_SQNR, 0, &SYM8);
    ok(e.max > 3 && e.max <= amax * 1.02, "sqnr gauss 8 bit max %g (max |x| %g)", e.max, amax);
    qd_encoding mm = enc_of(s, QD_RANGE_MINMAX, 0, &SYM8);
    ok(fq_mse(x, N, &e) <= fq_mse(x, N, &mm), "sqnr gauss no worse than minmax");
    /* KL (TensorRT's int8 entropy thresholds on Gaussians land near 3-4.5 sigma) */
    e = enc_of(s, QD_RANGE_KL, 0, &SYM8);
    ok(e.max > 2.5 && e.max < 5, "kl gauss 8 bit threshold %g", e.max);
    /* asymmetric KL on two-sided skewed data keeps 0 inside and both ends sensible */
    for (int i = 0; i < N; i++)
        x[i] = (float)(i % 4 ? -log(urand()) : -0.5 * -log(urand()));
    qd_stats_free(s);
    s = stats_of(x, N);
    e = enc_of(s, QD_RANGE_KL, 0, &ASYM8);
    ok(e.min < 0 && e.max > 3 && e.max <= qd_stats_max(s) * 1.01 && e.min >= qd_stats_min(s) * 1.01,
       "kl asym skewed [%g, %g] of [%g, %g]", e.min, e.max, qd_stats_min(s), qd_stats_max(s));
    mm = enc_of(s, QD_RANGE_MINMAX, 0, &ASYM8);
    e = enc_of(s, QD_RANGE_SQNR, 0, &ASYM8);
    ok(fq_mse(x, N, &e) <= fq_mse(x, N, &mm) * 1.001, "sqnr asym skewed no worse than minmax");
    /* 16 bits: KL has no room to search and keeps the observed range */
    e = enc_of(s, QD_RANGE_KL, 0, &(qd_qscheme){.bits = 16});
    near(e.max - e.min, qd_stats_max(s) - qd_stats_min(s), 1e-3, 0, "kl 16 bit keeps the range");
    qd_stats_free(s);
    free(x);
}

/* ---- whole tensors ---- */

static void test_calib_tensor(void)
{
    enum { OUTER = 2, NCH = 4, INNER = 50 };
    float w[OUTER * NCH * INNER];
    for (int o = 0; o < OUTER; o++)
        for (int c = 0; c < NCH; c++)
            for (int i = 0; i < INNER; i++) {
                float *p = &w[(o * NCH + c) * INNER + i];
                switch (c) {
                case 0: *p = (float)(2 * urand() - 1); break;        /* [-1, 1] */
                case 1: *p = 0; break;                                /* dead */
                case 2: *p = 3; break;                                /* constant */
                default: *p = (float)(o * INNER + i) / 10 - 2; break; /* ramp -2 .. 7.9 */
                }
            }
    w[3 * INNER + 7] = NAN; /* channel 3, o = 0: ignored */
    for (int m = 0; m < QD_RANGE__COUNT; m++) {
        qd_encoding enc[NCH];
        qd_err e = {0};
        int rc = qd_calib_tensor(w, OUTER, NCH, INNER, m, 99.99, &ASYM8, enc, &e);
        ok(rc == QD_OK, "calib_tensor %s: %s", qd_range_name(m), e.msg);
        for (int c = 0; c < NCH; c++)
            ok(qd_quant_encoding_invalid(&enc[c]) == NULL && isnormal(enc[c].scale),
               "%s channel %d valid", qd_range_name(m), c);
        /* dead channel: QD_MIN_RANGE; constant 3: [0, 3] */
        qd_encoding dead = qd_quant_encoding(0, 0, &ASYM8), three = qd_quant_encoding(3, 3, &ASYM8);
        ok(enc[1].scale == dead.scale && enc[1].offset == 0, "%s dead channel scale %g",
           qd_range_name(m), enc[1].scale);
        ok(enc[2].scale == three.scale && enc[2].offset == 0, "%s constant channel", qd_range_name(m));
        near(enc[0].max - enc[0].min, 2, 0.2, 0, "channel 0 range");
        if (m == QD_RANGE_MINMAX) {
            /* exact per-channel min/max of outer slices: ramp over both o */
            qd_encoding want = qd_quant_encoding(-2, 99 / 10.0f - 2, &ASYM8);
            ok(enc[3].scale == want.scale && enc[3].offset == want.offset,
               "minmax channel 3 = [-2, 7.9] over both outer slices: [%g, %g]", enc[3].min, enc[3].max);
        }
    }
    /* per tensor (nch = 1): one encoding over everything */
    qd_encoding one;
    qd_err e = {0};
    ok(qd_calib_tensor(w, OUTER, 1, NCH * INNER, QD_RANGE_MINMAX, 0, &ASYM8, &one, &e) == QD_OK,
       "per tensor: %s", e.msg);
    qd_encoding want = qd_quant_encoding(-2, 99 / 10.0f - 2, &ASYM8);
    ok(one.scale == want.scale, "per tensor minmax over all channels");
    ok(qd_calib_tensor(w, OUTER, 1, NCH * INNER, QD_RANGE_SQNR, 0, &SYM8, &one, &e) == QD_OK &&
           qd_quant_encoding_invalid(&one) == NULL,
       "per tensor sqnr: %s", e.msg);
}

/* ---- benchmark (QDB_CALIB_BENCH=1) ---- */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double add_ns(int hist, const float *x, size_t n, int reps)
{
    qd_stats *s = qd_stats_new(hist);
    qd_stats_add(s, x, n); /* range set, pages touched */
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t = now_ns();
        qd_stats_add(s, x, n);
        t = now_ns() - t;
        best = t < best ? t : best;
    }
    qd_stats_free(s);
    return best / n;
}

static void bench(void)
{
    enum { N = 1 << 20, REPS = 30 };
    float *x = gauss(N), *r = malloc(N * sizeof *r);
    for (int i = 0; i < N; i++)
        r[i] = x[i] > 0 ? x[i] : 0;
    printf("bench: qd_stats_add on %d floats (best of %d)\n", N, REPS);
    double mm = add_ns(0, x, N, REPS), hg = add_ns(1, x, N, REPS), hr = add_ns(1, r, N, REPS);
    printf("bench:   min/max only        %6.3f ns/element\n", mm);
    printf("bench:   min/max + histogram %6.3f ns/element (gaussian)\n", hg);
    printf("bench:   min/max + histogram %6.3f ns/element (relu, half zeros)\n", hr);
    int small = 4000;
    printf("bench:   %d floats: min/max %.3f, histogram %.3f ns/element\n", small,
           add_ns(0, x, small, 200), add_ns(1, x, small, 200));
    qd_stats *s = stats_of(x, N);
    const qd_qscheme *schs[] = {&SYM8, &ASYM8, &SYM4};
    const char *sn[] = {"sym8", "asym8", "sym4"};
    for (int k = 0; k < 3; k++)
        for (int m = 0; m < QD_RANGE__COUNT; m++) {
            qd_encoding e;
            double best = INFINITY;
            for (int i = 0; i < 5; i++) {
                double t = now_ns();
                qd_stats_encoding(s, m, 99.99, schs[k], &e, NULL);
                t = now_ns() - t;
                best = t < best ? t : best;
            }
            printf("bench:   encoding %-10s %-5s %8.1f us  [%.4g, %.4g]\n", qd_range_name(m), sn[k],
                   best / 1e3, e.min, e.max);
        }
    qd_stats_free(s);
    free(x);
    free(r);
}

int main(void)
{
    test_parse();
    test_stats_basic();
    test_errors();
    test_growth();
    test_uniform();
    test_outliers();
    test_mse_optimum();
    test_sqnr_kl();
    test_calib_tensor();
    const char *b = getenv("QDB_CALIB_BENCH");
    if (b && strcmp(b, "1") == 0)
        bench();
    return th_summary();
}
