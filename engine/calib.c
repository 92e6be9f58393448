/* calib.c - range setting: running tensor statistics (exact min/max and a
 * histogram that grows by merging bins) and the methods that turn them into
 * encodings (see calib.h). Every encoding is made by qd_quant_encoding or
 * qd_quant_encoding_so, so the grid rules are quant.c's (AIMET's). */
#include "calib.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Histogram bins. AIMET's tf_enhanced uses 512 bins over 3x the first
 * batch's range (about 170 across the data). We keep one histogram for all
 * methods, and percentile, KL and MSE need finer resolution: with 2048 bins,
 * even after the worst growth (the data then covers about a quarter of the
 * range) more than 500 bins span the data, so a percentile is interpolated
 * to within 1/500 of the range, a quarter of an 8-bit step, and the KL
 * search (TensorRT uses 2048 bins too) has room for 2^8 levels. Memory is
 * 16 KB per tensor; the encoding searches are O(bins) per tensor or per
 * candidate. */
#define NB 2048

struct qd_stats {
    int hist;          /* a histogram is kept */
    int64_t count;     /* non-NaN elements seen (+-inf included) */
    int64_t nfin;      /* finite elements seen */
    double min, max;   /* over non-NaN elements; +inf / -inf while count == 0 */
    double fmin, fmax; /* over finite elements; +inf / -inf while nfin == 0 */
    double lo, w;      /* bin i covers [lo + i w, lo + (i+1) w); w == 0 until the first finite data */
    double *bins;      /* NB counts (hist only) */
};

/* ---- scanning a tensor: min, max, NaNs ---- */

enum {
    SCAN_LANES = 32, /* independent min/max lanes: the loop over them vectorizes */
    SCAN_ROWS = 8,   /* rows folded into the lanes per store */
};

static inline float min_nn(float v, float a)
{
    return v < a ? v : a; /* a NaN v never enters */
}

/* max that keeps a NaN once one was seen: flags NaNs for the slow path. */
static inline float max_nan(float v, float a)
{
    return ((v > a) | (v != v)) ? v : a;
}

/* Min and max of x[0..n), n > 0; *mx is NaN when x holds a NaN. The lanes
 * make the inner loop a plain element-wise loop (no reassociated reduction),
 * so gcc vectorizes it at -O2. */
static void minmax_lanes(const float *restrict x, size_t n, float *mn, float *mx)
{
    enum { L = SCAN_LANES, R = SCAN_ROWS };
    float lmn[L], lmx[L];
    for (int j = 0; j < L; j++) {
        lmn[j] = INFINITY;
        lmx[j] = -INFINITY;
    }
    size_t i = 0;
    for (; i + L * R <= n; i += L * R)
        for (int j = 0; j < L; j++) {
            const float *p = x + i + j;
            float a = lmn[j], b = lmx[j];
            for (int r = 0; r < R; r++) {
                a = min_nn(p[r * L], a);
                b = max_nan(p[r * L], b);
            }
            lmn[j] = a;
            lmx[j] = b;
        }
    float a = INFINITY, b = -INFINITY;
    for (; i < n; i++) {
        a = min_nn(x[i], a);
        b = max_nan(x[i], b);
    }
    for (int j = 0; j < L; j++) {
        a = min_nn(lmn[j], a);
        b = max_nan(lmx[j], b);
    }
    *mn = a;
    *mx = b;
}

typedef struct scan {
    double min, max;   /* over non-NaN elements */
    double fmin, fmax; /* over finite elements */
    size_t nnan, nfin;
} scan;

/* One vectorized pass; a scalar second pass only when x holds NaN or inf. */
static void scan_f32(const float *x, size_t n, scan *r)
{
    float mn, mx;
    minmax_lanes(x, n, &mn, &mx);
    if (isfinite(mn) && isfinite(mx)) {
        *r = (scan){mn, mx, mn, mx, 0, n};
        return;
    }
    *r = (scan){INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (isnan(v)) {
            r->nnan++;
            continue;
        }
        r->min = fmin(r->min, v);
        r->max = fmax(r->max, v);
        if (isfinite(v)) {
            r->nfin++;
            r->fmin = fmin(r->fmin, v);
            r->fmax = fmax(r->fmax, v);
        }
    }
}

/* ---- the histogram ---- */

/* Largest float <= v (bins are indexed in float arithmetic: an exactly
 * representable lo keeps that exact). */
static double float_floor(double v)
{
    if (v <= -FLT_MAX)
        return -FLT_MAX;
    float f = (float)v;
    if ((double)f > v)
        f = nextafterf(f, -INFINITY);
    return f;
}

static int clampi(double v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : (int)v;
}

/* fmin/fmax without the NaN rules (no NaN gets here): inlined, where libm's
 * are calls. */
static inline double dmin(double a, double b)
{
    return a < b ? a : b;
}

static inline double dmax(double a, double b)
{
    return a > b ? a : b;
}

/* First range, from the first finite data [mn, mx]. A span narrower than
 * 2^-8 of the magnitude is widened: no encoding (it contains 0) resolves
 * finer, and it bounds the float rounding of lo to 1/32 of a bin. */
static void hist_init(qd_stats *s, double mn, double mx)
{
    double floor_span = dmax(dmax(fabs(mn), fabs(mx)) * 0x1p-8, 1e-30);
    if (!(mx - mn >= floor_span)) {
        double c = 0.5 * (mn + mx);
        mn = c - 0.5 * floor_span;
        mx = c + 0.5 * floor_span;
    }
    s->lo = float_floor(mn);
    s->w = (mx - s->lo) / NB;
}

/* Values this far (in bins) outside the range are counted in the end bins
 * instead of growing it: lo's rounding to float may leave the exact
 * maximum just outside, which must not double the range. */
#define COVER_TOL (1.0 / 16)

/* Widen the range to cover [mn, mx] by merging k old bins into each new
 * one (k the smallest integer that fits; the old range is m old bins from
 * the new lo, so bins stay aligned and no count moves outside its old bin).
 * The spare room goes to the side(s) that grew. */
static void hist_grow(qd_stats *s, double mn, double mx)
{
    double lo = s->lo, w = s->w, hi = lo + NB * w, tol = w * COVER_TOL;
    double need_l = mn < lo - tol ? ceil((lo - mn) / w) : 0;
    double need_r = mx > hi + tol ? ceil((mx - hi) / w) : 0;
    if (need_l == 0 && need_r == 0)
        return;
    double span = NB + need_l + need_r;
    double k = ceil(span / NB);
    double spare = k * NB - span;
    double m = need_l + (need_r == 0 ? spare : need_l == 0 ? 0 : floor(spare / 2));
    double merged[NB] = {0};
    for (int i = 0; i < NB; i++)
        if (s->bins[i] != 0)
            merged[clampi(floor((i + m) / k), 0, NB - 1)] += s->bins[i];
    memcpy(s->bins, merged, sizeof merged);
    s->lo = float_floor(lo - m * w);
    s->w = k * w;
}

enum {
    IDX_BLK = 256,      /* elements indexed per vectorized block */
    NSUB = 4,           /* interleaved sub-histograms: repeats of one bin don't serialize */
    SUBW = NB + 16,     /* sub-histogram row: NB bins, bin NB takes non-finite values */
    SUB_CHUNK = 1 << 17, /* elements per flush: a uint16 sub-bin gets at most 2^15 */
    DIRECT_MAX = 2048,  /* below this, count straight into the doubles */
    FUSE_BLK = 4096,    /* elements scanned then binned while in L1 */
};

/* Bin index of each of x[0..n): clamped into [0, NB-1]; NB for NaN/inf. */
static void bin_index(const float *restrict x, int32_t *restrict id, int n, float lo, float inv)
{
    const float top = NB - 1;
    for (int j = 0; j < n; j++) {
        float v = x[j];
        float d = (v - lo) * inv;
        d = d > 0 ? d : 0;
        d = d < top ? d : top;
        id[j] = v - v == 0 ? (int32_t)d : NB;
    }
}

/* Counts pending in small integer sub-histograms, added to the doubles
 * every SUB_CHUNK elements and whenever the bins change. */
typedef struct counter {
    float lo, inv;     /* s->lo and 1 / s->w, for bin_index */
    size_t pending;    /* elements in h since the last flush */
    uint16_t h[NSUB][SUBW];
} counter;

static void counter_start(counter *c, const qd_stats *s)
{
    c->lo = (float)s->lo;
    c->inv = (float)(1.0 / s->w);
    c->pending = 0;
    memset(c->h, 0, sizeof c->h);
}

static void counter_flush(counter *c, qd_stats *s)
{
    if (c->pending == 0)
        return;
    for (int k = 0; k < NB; k++)
        s->bins[k] += (double)((uint32_t)c->h[0][k] + c->h[1][k] + c->h[2][k] + c->h[3][k]);
    c->pending = 0;
    memset(c->h, 0, sizeof c->h);
}

/* Count x[0..n) (the range covers its finite values). */
static void counter_add(counter *c, qd_stats *s, const float *x, size_t n)
{
    int32_t id[IDX_BLK];
    size_t i = 0;
    for (; i + IDX_BLK <= n; i += IDX_BLK) {
        if (c->pending + IDX_BLK > SUB_CHUNK)
            counter_flush(c, s);
        bin_index(x + i, id, IDX_BLK, c->lo, c->inv);
        for (int j = 0; j < IDX_BLK; j += NSUB) {
            c->h[0][id[j]]++;
            c->h[1][id[j + 1]]++;
            c->h[2][id[j + 2]]++;
            c->h[3][id[j + 3]]++;
        }
        c->pending += IDX_BLK;
    }
    if (i < n) {
        int b = (int)(n - i);
        if (c->pending + b > SUB_CHUNK)
            counter_flush(c, s);
        bin_index(x + i, id, b, c->lo, c->inv);
        for (int j = 0; j < b; j++)
            c->h[j % NSUB][id[j]]++;
        c->pending += b;
    }
}

/* Count a few elements straight into the doubles (no sub-histograms to
 * clear and flush). */
static void count_direct(qd_stats *s, const float *x, size_t n)
{
    float lo = (float)s->lo, inv = (float)(1.0 / s->w);
    int32_t id[IDX_BLK];
    for (size_t i = 0; i < n; i += IDX_BLK) {
        int b = n - i < IDX_BLK ? (int)(n - i) : IDX_BLK;
        bin_index(x + i, id, b, lo, inv);
        for (int j = 0; j < b; j++)
            if (id[j] < NB)
                s->bins[id[j]] += 1;
    }
}

/* Count x[0..n) (the range covers its finite values). */
static void hist_count(qd_stats *s, const float *x, size_t n)
{
    if (n < DIRECT_MAX) {
        count_direct(s, x, n);
        return;
    }
    counter c;
    counter_start(&c, s);
    counter_add(&c, s, x, n);
    counter_flush(&c, s);
}

/* Add mass c spread uniformly over [x0, x1] to the n bins (lo, w) of h
 * (x0 == x1: all of it in one bin); mass outside goes to the end bins. */
static void spread(double *h, int n, double lo, double w, double x0, double x1, double c)
{
    double u0 = (x0 - lo) / w, u1 = (x1 - lo) / w;
    if (!(u1 > u0)) {
        h[clampi(floor(u0), 0, n - 1)] += c;
        return;
    }
    double dens = c / (u1 - u0);
    if (u0 < 0) {
        h[0] += dens * (dmin(u1, 0) - u0);
        u0 = 0;
    }
    if (u1 > n) {
        h[n - 1] += dens * (u1 - dmax(u0, n));
        u1 = n;
    }
    if (!(u1 > u0))
        return;
    int i0 = (int)u0, i1 = clampi(ceil(u1), i0 + 1, n); /* bins i0 .. i1-1 */
    if (i1 == i0 + 1) {
        h[i0] += dens * (u1 - u0);
        return;
    }
    h[i0] += dens * (i0 + 1 - u0);
    for (int i = i0 + 1; i < i1 - 1; i++)
        h[i] += dens;
    h[i1 - 1] += dens * (u1 - (i1 - 1));
}

/* Bin i of s as an interval clipped to the exact finite range. */
static void bin_span(const qd_stats *s, int i, double *l, double *r)
{
    *l = dmax(s->lo + i * s->w, s->fmin);
    *r = dmin(s->lo + (i + 1) * s->w, s->fmax);
    if (*r < *l)
        *r = *l = dmin(dmax(*l, s->fmin), s->fmax);
}

/* ---- the public statistics API ---- */

qd_stats *qd_stats_new(int hist)
{
    qd_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->hist = hist != 0;
    if (s->hist && !(s->bins = malloc(NB * sizeof *s->bins))) {
        free(s);
        return NULL;
    }
    qd_stats_reset(s);
    return s;
}

void qd_stats_free(qd_stats *s)
{
    if (!s)
        return;
    free(s->bins);
    free(s);
}

void qd_stats_reset(qd_stats *s)
{
    if (!s)
        return;
    s->count = s->nfin = 0;
    s->min = s->fmin = INFINITY;
    s->max = s->fmax = -INFINITY;
    s->lo = s->w = 0;
    if (s->bins)
        memset(s->bins, 0, NB * sizeof *s->bins);
}

/* Make the histogram range cover [mn, mx] (finite). */
static void hist_cover(qd_stats *s, double mn, double mx)
{
    if (s->w == 0)
        hist_init(s, mn, mx);
    else
        hist_grow(s, mn, mx);
}

static void stats_fold(qd_stats *s, const scan *r, size_t n)
{
    s->count += (int64_t)(n - r->nnan);
    s->nfin += (int64_t)r->nfin;
    s->min = dmin(s->min, r->min);
    s->max = dmax(s->max, r->max);
    s->fmin = dmin(s->fmin, r->fmin);
    s->fmax = dmax(s->fmax, r->fmax);
}

static void scan_merge(scan *a, const scan *b)
{
    a->min = dmin(a->min, b->min);
    a->max = dmax(a->max, b->max);
    a->fmin = dmin(a->fmin, b->fmin);
    a->fmax = dmax(a->fmax, b->fmax);
    a->nnan += b->nnan;
    a->nfin += b->nfin;
}

static const scan SCAN_EMPTY = {INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0};

static int hist_covers(const qd_stats *s, const scan *r)
{
    double tol = s->w * COVER_TOL;
    return r->nfin == 0 || (r->fmin >= s->lo - tol && r->fmax <= s->lo + NB * s->w + tol);
}

/* One pass over memory: each L1-sized block is scanned for min/max, then
 * binned while still in cache. A block outside the range (rare once the
 * first batches are in) scans the rest of x so the range grows once for
 * the whole call, not once per block. */
static void hist_add_fused(qd_stats *s, const float *x, size_t n)
{
    counter c;
    counter_start(&c, s);
    scan tot = SCAN_EMPTY;
    for (size_t i = 0; i < n; i += FUSE_BLK) {
        size_t b = n - i < FUSE_BLK ? n - i : FUSE_BLK;
        scan r;
        scan_f32(x + i, b, &r);
        if (!hist_covers(s, &r)) {
            scan rest = r, more;
            if (i + b < n) {
                scan_f32(x + i + b, n - i - b, &more);
                scan_merge(&rest, &more);
            }
            counter_flush(&c, s);
            hist_grow(s, rest.fmin, rest.fmax);
            counter_start(&c, s);
        }
        scan_merge(&tot, &r);
        counter_add(&c, s, x + i, b);
    }
    counter_flush(&c, s);
    stats_fold(s, &tot, n);
}

void qd_stats_add(qd_stats *s, const float *x, size_t n)
{
    if (!s || !x || n == 0)
        return;
    if (s->hist && s->w > 0 && n >= DIRECT_MAX) {
        hist_add_fused(s, x, n);
        return;
    }
    /* min/max only, a small tensor, or the first finite data (sets the range) */
    scan r;
    scan_f32(x, n, &r);
    stats_fold(s, &r, n);
    if (!s->hist || r.nfin == 0)
        return;
    hist_cover(s, r.fmin, r.fmax);
    hist_count(s, x, n);
}

void qd_stats_merge(qd_stats *a, const qd_stats *b)
{
    if (!a || !b || b->count == 0)
        return;
    int with_hist = a->hist && b->hist && b->w > 0;
    double bb[NB], blo = b->lo, bw = b->w, bfmin = b->fmin, bfmax = b->fmax;
    if (with_hist)
        memcpy(bb, b->bins, sizeof bb); /* a may be b */
    scan r = {b->min, b->max, b->fmin, b->fmax, 0, (size_t)b->nfin};
    stats_fold(a, &r, (size_t)b->count);
    if (!with_hist)
        return;
    if (a->w == 0) {
        a->lo = blo;
        a->w = bw;
        memcpy(a->bins, bb, sizeof bb);
        return;
    }
    hist_grow(a, bfmin, bfmax);
    for (int i = 0; i < NB; i++) {
        if (bb[i] == 0)
            continue;
        double l = dmax(blo + i * bw, bfmin), rr = dmin(blo + (i + 1) * bw, bfmax);
        if (rr < l)
            rr = l = dmin(dmax(l, bfmin), bfmax);
        spread(a->bins, NB, a->lo, a->w, l, rr, bb[i]);
    }
}

int64_t qd_stats_count(const qd_stats *s)
{
    return s ? s->count : 0;
}

double qd_stats_min(const qd_stats *s)
{
    return s ? s->min : INFINITY;
}

double qd_stats_max(const qd_stats *s)
{
    return s ? s->max : -INFINITY;
}

int qd_stats_has_hist(const qd_stats *s)
{
    return s && s->hist;
}

int qd_stats_hist(const qd_stats *s, const double **counts, double *lo, double *hi)
{
    if (!s || !s->hist || s->w == 0) {
        if (counts)
            *counts = NULL;
        return 0;
    }
    if (counts)
        *counts = s->bins;
    if (lo)
        *lo = s->lo;
    if (hi)
        *hi = s->lo + NB * s->w;
    return NB;
}

/* ---- percentile ---- */

/* Value below which a fraction q of the histogram mass lies; bins are
 * taken as uniform, the end bins clipped to the exact finite range. */
static double hist_quantile(const qd_stats *s, double total, double q)
{
    double t = q * total, c = 0;
    for (int i = 0; i < NB; i++) {
        double b = s->bins[i];
        if (b <= 0)
            continue;
        if (c + b >= t) {
            double l, r, f = (t - c) / b;
            bin_span(s, i, &l, &r);
            f = f < 0 ? 0 : f > 1 ? 1 : f;
            return l + f * (r - l);
        }
        c += b;
    }
    return s->fmax;
}

static qd_encoding percentile_enc(const qd_stats *s, double total, double pct,
                                  const qd_qscheme *sch)
{
    double q = pct / 100;
    double lo = s->fmin >= 0 ? s->fmin : hist_quantile(s, total, 1 - q);
    double hi = s->fmax <= 0 ? s->fmax : hist_quantile(s, total, q);
    return qd_quant_encoding(lo, hi, sch);
}

/* ---- squared-error costs on the histogram (sqnr, mse) ---- */

/* The histogram with prefix sums of its moments: the error of all bins in
 * a range against one value is O(1). Positions are in bin units u (bin i's
 * midpoint is i + 0.5), moments taken about cen to limit cancellation. */
typedef struct hview {
    double lo, w;
    int first, last;   /* non-empty bins */
    double cen;
    double *m0, *m1, *m2; /* over bins [0, i): sum p, p (u - cen), p (u - cen)^2 */
} hview;

static int hview_init(hview *h, const qd_stats *s)
{
    h->lo = s->lo;
    h->w = s->w;
    h->first = 0;
    while (h->first < NB - 1 && s->bins[h->first] <= 0)
        h->first++;
    h->last = NB - 1;
    while (h->last > h->first && s->bins[h->last] <= 0)
        h->last--;
    h->cen = 0.5 * (h->first + h->last + 1);
    h->m0 = malloc(3 * (NB + 1) * sizeof *h->m0);
    if (!h->m0)
        return -1;
    h->m1 = h->m0 + NB + 1;
    h->m2 = h->m1 + NB + 1;
    h->m0[0] = h->m1[0] = h->m2[0] = 0;
    for (int i = 0; i < NB; i++) {
        double p = s->bins[i], u = i + 0.5 - h->cen;
        h->m0[i + 1] = h->m0[i] + p;
        h->m1[i + 1] = h->m1[i] + p * u;
        h->m2[i + 1] = h->m2[i] + p * u * u;
    }
    return 0;
}

static void hview_free(hview *h)
{
    free(h->m0);
}

/* sum over bins [a, b) of p (u - v)^2, v in bin units from lo. */
static double seg_err(const hview *h, int a, int b, double v)
{
    if (b <= a)
        return 0;
    v -= h->cen;
    double s0 = h->m0[b] - h->m0[a], s1 = h->m1[b] - h->m1[a], s2 = h->m2[b] - h->m2[a];
    double r = s2 - 2 * v * s1 + v * v * s0;
    return r > 0 ? r : 0;
}

/* Bins whose midpoint is below bin-unit position u. */
static int bins_below(double u)
{
    return clampi(ceil(u - 0.5), 0, NB);
}

/* gamma x saturation error + quantization error (sums of squares, value
 * units) of encoding e over the histogram, every bin taken at its midpoint
 * (as AIMET does). Midpoints outside [min, max] saturate; the ones inside
 * round to the nearest grid point. O(1) per grid cell that holds data (at
 * most one per bin), and O(1) when cells are narrower than a bin, where
 * the quantization error is the uniform step^2/12 per element. */
static double enc_cost(const hview *h, const qd_encoding *e, double steps, double gamma)
{
    double iw = 1 / h->w, cw = e->scale * iw; /* grid step in bins */
    double z = -h->lo * iw;                   /* value 0 in bin units */
    double gmin = e->offset, gmax = e->offset + steps;
    double q0 = z + gmin * cw, q1 = z + gmax * cw;
    int end = h->last + 1;
    int ja = clampi(bins_below(q0), h->first, end);
    int jb = clampi(floor(q1 - 0.5) + 1, ja, end);
    double sat = seg_err(h, h->first, ja, q0) + seg_err(h, jb, end, q1);
    double quant = 0;
    if (jb > ja && cw <= 1) {
        quant = (h->m0[jb] - h->m0[ja]) * cw * cw / 12;
    } else if (jb > ja) {
        /* cell g: the bins with midpoints in [(g - 1/2) cw, (g + 1/2) cw) from z */
        double g0 = dmin(dmax(nearbyint((ja + 0.5 - z) / cw), gmin), gmax);
        double g1 = dmin(dmax(nearbyint((jb - 0.5 - z) / cw), g0), gmax);
        const double *m0 = h->m0, *m1 = h->m1, *m2 = h->m2;
        double v = z + g0 * cw - h->cen, edge = z + (g0 + 0.5) * cw - 0.5;
        int a = ja, ncell = (int)(g1 - g0);
        for (int k = 0; k <= ncell && a < jb; k++, v += cw, edge += cw) {
            int b = k == ncell ? jb : clampi(ceil(edge), a, jb);
            if (b == a)
                continue;
            double s0 = m0[b] - m0[a], s1 = m1[b] - m1[a], s2 = m2[b] - m2[a];
            double r = s2 - 2 * v * s1 + v * v * s0;
            quant += r > 0 ? r : 0;
            a = b;
        }
    }
    return (gamma * sat + quant) * h->w * h->w;
}

typedef struct best {
    qd_encoding enc;
    double cost;
} best;

static void try_enc(best *b, const hview *h, qd_encoding e, double steps, double gamma)
{
    if (!(e.scale > 0) || !isfinite(e.scale))
        return;
    double c = enc_cost(h, &e, steps, gamma);
    if (c < b->cost) {
        b->cost = c;
        b->enc = e;
    }
}

/* Observed range, widened to contain 0 and to QD_MIN_RANGE. */
static void observed(const qd_stats *s, double *omin, double *omax)
{
    *omin = dmin(s->fmin, 0);
    *omax = dmax(s->fmax, 0);
    *omax = dmax(*omax, *omin + QD_MIN_RANGE);
}

/* AIMET tf_enhanced: the candidate grid of TfEnhancedEncodingAnalyzer,
 * cost = 3 x saturation + quantization noise. */
static qd_encoding sqnr_enc(const hview *h, const qd_stats *s, const qd_qscheme *sch)
{
    const double gamma = 3;
    double steps = qd_quant_steps(sch), omin, omax;
    observed(s, &omin, &omax);
    best b = {.enc = qd_quant_encoding(omin, omax, sch), .cost = INFINITY};
    if (sch->symmetric) {
        /* 101 deltas f * delta_max, f = 0.01 .. 1.01, offset fixed */
        double delta_max;
        int off;
        if (omin == 0 && sch->unsigned_symmetric) {
            delta_max = omax / steps;
            off = 0;
        } else {
            delta_max = 2 * dmax(-omin, omax) / steps;
            off = (int)floor(-steps / 2);
        }
        for (int k = 1; k <= 101; k++)
            try_enc(&b, h, qd_quant_encoding_so(k / 100.0 * delta_max, off, sch), steps, gamma);
    } else {
        /* 17 deltas x 21 offsets, each clamped into the observed range */
        double od = (omax - omin) / steps;
        int oo = (int)nearbyint(omin / od);
        double gmin = od * oo, gmax = gmin + od * steps;
        for (int k = 1; k <= 17; k++) {
            double d = k / 16.0 * od;
            for (int i = 0; i <= 20; i++) {
                int off = (int)(-steps + steps / 20.0 * i);
                double tmin = d * off, tmax = tmin + d * steps;
                if (tmin < gmin && tmax > gmax)
                    continue;
                tmin = dmax(tmin, gmin);
                tmax = dmin(tmax, gmax);
                double d2 = (tmax - tmin) / steps;
                if (!(d2 > 0))
                    continue;
                double o2 = dmin(0, dmax(-steps, nearbyint(tmin / d2)));
                try_enc(&b, h, qd_quant_encoding_so(d2, (int)o2, sch), steps, gamma);
            }
        }
        try_enc(&b, h, qd_quant_encoding_so(od, oo, sch), steps, gamma);
    }
    return b.enc;
}

enum {
    MSE_PER_OCTAVE = 8, /* first pass: clipping factors 2^(-k/8) */
    MSE_OCTAVES = 20,
    MSE_LOCAL = 8,      /* later passes: 2^(+-j/32), j <= 8, around the current factor */
    MSE_REFINE = 16,    /* linear steps between the neighbours of the best factor */
};

/* Encoding of the clipped range [fa * omin, fb * omax]. */
static qd_encoding mse_cand(double omin, double omax, double fa, double fb, const qd_qscheme *sch)
{
    return qd_quant_encoding(fa * omin, fb * omax, sch);
}

typedef struct mse_ctx {
    const hview *h;
    const qd_qscheme *sch;
    double steps, omin, omax;
    best b; /* best overall */
} mse_ctx;

static double mse_eval(mse_ctx *m, double fa, double fb)
{
    qd_encoding e = mse_cand(m->omin, m->omax, fa, fb, m->sch);
    double c = enc_cost(m->h, &e, m->steps, 1);
    if (c < m->b.cost) {
        m->b.cost = c;
        m->b.enc = e;
    }
    return c;
}

/* Best factor for one end (side 0: min, 1: max, 2: both) with the other
 * fixed, starting from f: a geometric grid (from 1 down when full, else a
 * local one around f), then a linear refinement between the neighbours. */
static double mse_line(mse_ctx *m, double fa, double fb, int side, int full)
{
    double f = side == 0 ? fa : fb;
    double extent = side == 0 ? -m->omin : side == 1 ? m->omax : m->omax - m->omin;
    double fmin_ok = dmax(m->h->w, QD_MIN_RANGE) / extent; /* finer is not resolved */
    double grid[MSE_PER_OCTAVE * MSE_OCTAVES + 1];
    int ng = 0;
    if (full) {
        for (int k = 0; k <= MSE_PER_OCTAVE * MSE_OCTAVES; k++) {
            double g = exp2(-(double)k / MSE_PER_OCTAVE);
            if (k > 0 && g < fmin_ok)
                break;
            grid[ng++] = g;
        }
    } else {
        for (int j = MSE_LOCAL; j >= -MSE_LOCAL; j--) {
            double g = f * exp2(j / 32.0);
            if (g <= 1 && g >= fmin_ok)
                grid[ng++] = g;
        }
    }
    if (ng == 0)
        return f;
    int kb = 0;
    double cb = INFINITY;
    for (int k = 0; k < ng; k++) {
        double c = mse_eval(m, side == 1 ? fa : grid[k], side == 0 ? fb : grid[k]);
        if (c < cb) {
            cb = c;
            kb = k;
        }
    }
    double best_f = grid[kb];
    double lo = kb + 1 < ng ? grid[kb + 1] : grid[kb] * 0.97;
    double hi = kb > 0 ? grid[kb - 1] : dmin(1, grid[kb] * 1.03);
    for (int k = 1; k < MSE_REFINE; k++) {
        double g = lo + (hi - lo) * k / MSE_REFINE;
        double c = mse_eval(m, side == 1 ? fa : g, side == 0 ? fb : g);
        if (c < cb) {
            cb = c;
            best_f = g;
        }
    }
    return best_f;
}

/* The clipping range minimizing the expected squared quantize-dequantize
 * error over the histogram. One factor shrinks both ends when the grid is
 * signed symmetric (only the larger end matters) or the data one-sided;
 * otherwise coordinate descent over the two ends, the first pass over the
 * whole grid, later ones locally, until the cost stops improving. */
static qd_encoding mse_enc(const hview *h, const qd_stats *s, const qd_qscheme *sch)
{
    mse_ctx m = {.h = h, .sch = sch, .steps = qd_quant_steps(sch), .b = {.cost = INFINITY}};
    observed(s, &m.omin, &m.omax);
    mse_eval(&m, 1, 1);
    int signed_grid = sch->symmetric && (m.omin < 0 || !sch->unsigned_symmetric);
    if (signed_grid || m.omin == 0 || m.omax == 0) {
        mse_line(&m, 1, 1, 2, 1);
        return m.b.enc;
    }
    double fa = 1, fb = 1;
    for (int it = 0; it < 6; it++) {
        double c0 = m.b.cost;
        fb = mse_line(&m, fa, fb, 1, it == 0);
        fa = mse_line(&m, fa, fb, 0, it == 0);
        if (it > 0 && !(m.b.cost < c0 * (1 - 1e-6)))
            break;
    }
    return m.b.enc;
}

/* ---- KL divergence (entropy calibration) ---- */

/* Prefix sums of a reference histogram r[0..n) for O(1) window sums. */
typedef struct klref {
    const double *r;
    int n;
    double *c;   /* sum r[0..i) */
    double *z;   /* nonzero bins in [0, i) */
    double *e;   /* sum r log r over [0, i) */
} klref;

static double xlogx(double x)
{
    return x > 0 ? x * log(x) : 0;
}

/* KL(P || Q) of the window [a, b) of the reference: P is the window with the
 * mass outside added to its end bins; Q merges the window into L levels
 * (bins [a + floor(g W / L), a + floor((g+1) W / L)) for level g) and
 * spreads each level's mass evenly over its non-empty bins. Q is smoothed
 * with a small uniform part so bins P has and Q lacks cost a lot but not
 * infinity. O(L). */
static double kl_window(const klref *k, int a, int b, int L)
{
    const double alpha = 1e-6;
    double total = k->c[k->n], mq = k->c[b] - k->c[a];
    if (!(mq > 0) || !(total > 0))
        return INFINITY;
    double tl = k->c[a], tr = total - k->c[b];
    int W = b - a;
    double ra = k->r[a], rb = k->r[b - 1];
    /* sum P log P */
    double plogp = k->e[b] - k->e[a];
    if (a == b - 1) {
        plogp += xlogx(ra + tl + tr) - xlogx(ra);
    } else {
        plogp += xlogx(ra + tl) - xlogx(ra) + xlogx(rb + tr) - xlogx(rb);
    }
    /* sum P log Q' */
    double plogq = 0, qa = alpha / W, qb = alpha / W;
    for (int g = 0; g < L; g++) {
        int s = a + (int)((long long)g * W / L), t = a + (int)((long long)(g + 1) * W / L);
        double m = k->c[t] - k->c[s], nz = k->z[t] - k->z[s];
        if (nz <= 0)
            continue;
        double q = (1 - alpha) * (m / nz) / mq + alpha / W;
        double lq = log(q);
        plogq += m * lq;
        if (a >= s && a < t && ra > 0)
            qa = q;
        if (b - 1 >= s && b - 1 < t && rb > 0)
            qb = q;
    }
    plogq += tl * log(qa) + tr * log(qb);
    return (plogp - plogq) / total - log(total);
}

static int klref_init(klref *k, const double *r, int n)
{
    k->r = r;
    k->n = n;
    k->c = malloc(3 * (size_t)(n + 1) * sizeof *k->c);
    if (!k->c)
        return -1;
    k->z = k->c + n + 1;
    k->e = k->z + n + 1;
    k->c[0] = k->z[0] = k->e[0] = 0;
    for (int i = 0; i < n; i++) {
        k->c[i + 1] = k->c[i] + r[i];
        k->z[i + 1] = k->z[i] + (r[i] > 0);
        k->e[i + 1] = k->e[i] + xlogx(r[i]);
    }
    return 0;
}

/* The histogram resampled onto n bins over [0, A] of |x| (fold) or over
 * [A0, A] of x. */
static void resample(const qd_stats *s, double *dst, int n, double a0, double a1, int fold)
{
    double w = (a1 - a0) / n;
    memset(dst, 0, n * sizeof *dst);
    for (int i = 0; i < NB; i++) {
        double c = s->bins[i], l, r;
        if (c <= 0)
            continue;
        bin_span(s, i, &l, &r);
        if (fold && r <= 0) {
            spread(dst, n, a0, w, -r, -l, c);
        } else if (fold && l < 0) {
            double fl = -l / (r - l);
            spread(dst, n, a0, w, 0, -l, c * fl);
            spread(dst, n, a0, w, 0, r, c * (1 - fl));
        } else {
            spread(dst, n, a0, w, l, r, c);
        }
    }
}

/* Windows tried per search (each O(levels) with a log per level); reference
 * bins per grid level. */
enum { KL_WINDOWS = 128, KL_BINS_PER_LEVEL = 16 };

/* Smallest-KL window [0, i) of a one-sided reference, i >= L: a strided
 * scan over i, then every i next to the best. */
static int kl_one_sided(const klref *k, int L)
{
    int n = k->n, stride = (n - L) / KL_WINDOWS > 1 ? (n - L) / KL_WINDOWS : 1;
    int ibest = n;
    double kbest = INFINITY;
    for (int i = n; i >= L; i -= stride) {
        double d = kl_window(k, 0, i, L);
        if (d < kbest) {
            kbest = d;
            ibest = i;
        }
    }
    int i0 = ibest - stride + 1 > L ? ibest - stride + 1 : L;
    int i1 = ibest + stride - 1 < n ? ibest + stride - 1 : n;
    for (int i = i0; i <= i1; i++) {
        double d = kl_window(k, 0, i, L);
        if (d < kbest) {
            kbest = d;
            ibest = i;
        }
    }
    return ibest;
}

/* Two-sided window for asymmetric grids (AIMET's EntropyEncodingAnalyzer
 * walk): shrink from the end that loses the least mass, keeping the bin of
 * 0 inside, and keep the smallest-KL window. */
static void kl_two_sided(const klref *k, int L, int zbin, int *abest, int *bbest)
{
    int n = k->n, stride = (n - L) / KL_WINDOWS > 1 ? (n - L) / KL_WINDOWS : 1;
    int a = 0, b = n;
    double kbest = INFINITY;
    *abest = 0;
    *bbest = n;
    while (b - a >= L) {
        double d = kl_window(k, a, b, L);
        if (d < kbest) {
            kbest = d;
            *abest = a;
            *bbest = b;
        }
        int can_l = a + stride <= zbin, can_r = b - stride > zbin;
        double loss_l = k->c[a + stride < n ? a + stride : n] - k->c[a];
        double loss_r = k->c[b] - k->c[b - stride > 0 ? b - stride : 0];
        if (can_l && (!can_r || loss_l <= loss_r))
            a += stride;
        else if (can_r)
            b -= stride;
        else
            break;
    }
}

/* TensorRT-style entropy calibration. Signed symmetric grids and one-sided
 * data: the histogram of |x| over [0, max |x|] with one level per positive
 * grid step, threshold at the end of the best window. Asymmetric grids on
 * two-sided data: a window over [min, max] with 2^bits - 1 levels. With
 * levels for half the bins or more (11+ bits unsigned, 12+ signed) there is
 * no room to search: the observed range is kept. */
static int kl_enc(const qd_stats *s, const qd_qscheme *sch, qd_encoding *out, qd_err *e)
{
    double steps = qd_quant_steps(sch);
    int signed_grid = sch->symmetric && (s->fmin < 0 || !sch->unsigned_symmetric);
    int one_sided = signed_grid || s->fmin >= 0 || s->fmax <= 0;
    int L = (int)(signed_grid ? floor(steps / 2) : steps);
    if (L >= NB / 2) {
        *out = qd_quant_encoding(s->fmin, s->fmax, sch);
        return QD_OK;
    }
    /* KL_BINS_PER_LEVEL reference bins per level (TensorRT: 2048 for 128):
     * the smallest window, L bins, is then the same share of the range at
     * every bit-width; with all NB bins at 4 bits, windows down to 15 of
     * 2048 bins let the search clip nearly everything */
    int nb = L * KL_BINS_PER_LEVEL < NB ? L * KL_BINS_PER_LEVEL : NB;
    double ref[NB];
    klref k;
    double a0 = one_sided ? 0 : s->fmin;
    double a1 = one_sided ? dmax(-s->fmin, s->fmax) : s->fmax;
    resample(s, ref, nb, a0, a1, one_sided);
    /* the bin of 0 is left out (as ncnn's and caffe-int8's KL calibrations
     * do): zero is exact on every grid, and after a Relu it holds half the
     * mass, so the divergence of splitting it would pick tiny ranges */
    ref[one_sided ? 0 : clampi(floor(-a0 / ((a1 - a0) / nb)), 0, nb - 1)] = 0;
    if (klref_init(&k, ref, nb))
        return qd_errf(e, QD_EFAIL, "kl calibration: out of memory");
    double bw = (a1 - a0) / nb;
    if (one_sided) {
        double t = kl_one_sided(&k, L) * bw;
        if (signed_grid)
            *out = qd_quant_encoding(dmax(s->fmin, -t), dmin(s->fmax, t), sch);
        else if (s->fmin >= 0)
            *out = qd_quant_encoding(0, t, sch);
        else
            *out = qd_quant_encoding(-t, 0, sch);
    } else {
        int a, b, zbin = clampi(floor(-a0 / bw), 0, nb - 1);
        kl_two_sided(&k, L, zbin, &a, &b);
        *out = qd_quant_encoding(a0 + a * bw, a0 + b * bw, sch);
    }
    free(k.c);
    return QD_OK;
}

/* ---- encodings ---- */

static const char *const range_names[] = {"minmax", "sqnr", "percentile", "mse", "kl"};
_Static_assert(sizeof range_names / sizeof range_names[0] == QD_RANGE__COUNT,
               "range_names out of sync with qd_range_method");

const char *qd_range_name(qd_range_method m)
{
    return (unsigned)m < QD_RANGE__COUNT ? range_names[m] : "?";
}

static int pct_ok(double p)
{
    return p > 50 && p <= 100;
}

int qd_stats_encoding(const qd_stats *s, qd_range_method m, double pct, const qd_qscheme *sch,
                      qd_encoding *out, qd_err *e)
{
    if (!s || !sch || !out)
        return qd_errf(e, QD_EINPUT, "range setting: missing statistics, scheme or output");
    if (sch->bits < QD_BITS_MIN || sch->bits > QD_BITS_MAX)
        return qd_errf(e, QD_EINPUT, "range setting: bit-width %d outside %d..%d", sch->bits,
                       QD_BITS_MIN, QD_BITS_MAX);
    if ((unsigned)m >= QD_RANGE__COUNT)
        return qd_errf(e, QD_EINPUT, "range setting: unknown method %d", (int)m);
    if (s->count == 0)
        return qd_errf(e, QD_EINPUT, "range %s: no statistics (no data, or only NaNs, observed)",
                       range_names[m]);
    double lo = s->nfin ? s->fmin : 0, hi = s->nfin ? s->fmax : 0;
    if (m == QD_RANGE_MINMAX) {
        *out = qd_quant_encoding(lo, hi, sch);
        return QD_OK;
    }
    if (!s->hist)
        return qd_errf(e, QD_EINPUT,
                       "range %s needs a histogram, but the statistics were collected without one",
                       range_names[m]);
    if (m == QD_RANGE_PERCENTILE && !pct_ok(pct))
        return qd_errf(e, QD_EINPUT, "range percentile: %g is outside (50, 100]", pct);
    double total = 0;
    for (int i = 0; i < NB; i++)
        total += s->bins[i];
    if (s->nfin > 0 && !(total > 0))
        return qd_errf(e, QD_EINPUT, "range %s: the histogram is empty (merged from statistics "
                       "without one)", range_names[m]);
    /* nothing to search: no finite data, or a constant tensor (dead channel) */
    if (s->nfin == 0 || lo == hi) {
        *out = qd_quant_encoding(lo, hi, sch);
        return QD_OK;
    }
    if (m == QD_RANGE_PERCENTILE) {
        *out = percentile_enc(s, total, pct, sch);
        return QD_OK;
    }
    if (m == QD_RANGE_KL)
        return kl_enc(s, sch, out, e);
    hview h;
    if (hview_init(&h, s))
        return qd_errf(e, QD_EFAIL, "range %s: out of memory", range_names[m]);
    *out = m == QD_RANGE_SQNR ? sqnr_enc(&h, s, sch) : mse_enc(&h, s, sch);
    hview_free(&h);
    return QD_OK;
}

/* ---- whole tensors ---- */

/* Exact min/max of channel c (slices of inner elements, stride nch * inner). */
static void channel_scan(const float *x, size_t outer, size_t stride, size_t inner, scan *r)
{
    *r = SCAN_EMPTY;
    for (size_t o = 0; o < outer; o++) {
        scan q;
        scan_f32(x + o * stride, inner, &q);
        scan_merge(r, &q);
    }
}

int qd_calib_tensor(const float *x, size_t outer, size_t nch, size_t inner, qd_range_method m,
                    double pct, const qd_qscheme *sch, qd_encoding *enc, qd_err *e)
{
    size_t n;
    if (!x || !sch || !enc)
        return qd_errf(e, QD_EINPUT, "calibrate tensor: missing data, scheme or output");
    if (__builtin_mul_overflow(outer, nch, &n) || __builtin_mul_overflow(n, inner, &n))
        return qd_errf(e, QD_EINPUT, "calibrate tensor: %zu x %zu x %zu elements overflow",
                       outer, nch, inner);
    if (n == 0)
        return qd_errf(e, QD_EINPUT, "calibrate tensor: empty tensor (%zu x %zu x %zu)", outer,
                       nch, inner);
    size_t nc = nch > 1 ? nch : 1;
    size_t stride = nc * inner, len = nch > 1 ? inner : n, slices = nch > 1 ? outer : 1;
    qd_stats *s = qd_stats_new(m != QD_RANGE_MINMAX);
    if (!s)
        return qd_errf(e, QD_EFAIL, "calibrate tensor: out of memory");
    int rc = QD_OK;
    for (size_t c = 0; c < nc && rc == QD_OK; c++) {
        const float *xc = x + (nch > 1 ? c * inner : 0);
        scan r;
        channel_scan(xc, slices, stride, len, &r);
        qd_stats_reset(s);
        stats_fold(s, &r, slices * len);
        if (s->hist && r.nfin > 0) {
            /* the exact range first: no growth, the finest bins */
            hist_init(s, r.fmin, r.fmax);
            for (size_t o = 0; o < slices; o++)
                hist_count(s, xc + o * stride, len);
        }
        rc = qd_stats_encoding(s, m, pct, sch, &enc[c], e);
        if (rc && nch > 1)
            qd_err_prefix(e, "channel %zu", c);
    }
    qd_stats_free(s);
    return rc;
}

/* ---- parsing ---- */

int qd_range_parse(const char *s, qd_range_method *m, double *pct, qd_err *e)
{
    static const struct {
        const char *name;
        qd_range_method m;
    } names[] = {
        {"minmax", QD_RANGE_MINMAX}, {"tf", QD_RANGE_MINMAX},       {"sqnr", QD_RANGE_SQNR},
        {"tf_enhanced", QD_RANGE_SQNR}, {"percentile", QD_RANGE_PERCENTILE},
        {"mse", QD_RANGE_MSE},       {"kl", QD_RANGE_KL},           {"entropy", QD_RANGE_KL},
    };
    if (!s || !m)
        return qd_errf(e, QD_EINPUT, "range method: missing");
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) != len || strncmp(s, names[i].name, len) != 0)
            continue;
        if (names[i].m != QD_RANGE_PERCENTILE) {
            if (colon)
                return qd_errf(e, QD_EINPUT, "range method \"%s\": %s takes no parameter", s,
                               names[i].name);
            *m = names[i].m;
            return QD_OK;
        }
        double p = 99.99;
        if (colon) {
            char *end;
            p = strtod(colon + 1, &end);
            if (end == colon + 1 || *end != '\0' || !isfinite(p))
                return qd_errf(e, QD_EINPUT, "range method \"%s\": percentile \"%s\" is not a number",
                               s, colon + 1);
            if (!pct_ok(p))
                return qd_errf(e, QD_EINPUT, "range method \"%s\": percentile %g is outside (50, 100]",
                               s, p);
        }
        *m = QD_RANGE_PERCENTILE;
        if (pct)
            *pct = p;
        return QD_OK;
    }
    return qd_errf(e, QD_EINPUT,
                   "range method \"%s\": unknown (expected minmax, tf, sqnr, tf_enhanced, "
                   "percentile[:P], mse, kl or entropy)", s);
}
