/* op_pool.c - MaxPool, AveragePool (1-D and 2-D, float32) and the global
 * pools. Output sizes follow ONNX Runtime, including ceil_mode dropping a
 * last window that would start in the end padding. */
#include "ops.h"

#include <float.h>
#include <string.h>

enum { AP_NOTSET, AP_SAME_UPPER, AP_SAME_LOWER, AP_VALID };

/* Parsed attributes; k is the spatial rank of kernel_shape (1 or 2). */
typedef struct pool_attr {
    int max, k, auto_pad, ceil_mode, include_pad;
    int64_t kernel[2], stride[2], dil[2], pads[4]; /* pads: begins then ends */
} pool_attr;

/* One (N, C) plane's geometry; a 1-D pool is a 2-D one with H = 1. */
typedef struct pool_geom {
    int max, include_pad;
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t ph, pw, peh, pew; /* begin and end pads */
} pool_geom;

static int ints_attr(const qd_node *n, const char *name, int want, int64_t def, int64_t min, int64_t *v,
                     qd_err *e)
{
    const int64_t *a;
    int k = qd_attr_ints(n, name, &a);
    if (!qd_attr_find(n, name)) {
        for (int i = 0; i < want; i++)
            v[i] = def;
        return QD_OK;
    }
    if (k != want)
        return qd_errf(e, QD_EINPUT, "%s: %s has %d values, expected %d", n->op_type, name, k, want);
    for (int i = 0; i < k; i++) {
        if (a[i] < min)
            return qd_errf(e, QD_EINPUT, "%s: %s[%d] = %lld is invalid", n->op_type, name, i, (long long)a[i]);
        v[i] = a[i];
    }
    return QD_OK;
}

static int pool_parse(const qd_node *n, pool_attr *p, qd_err *e)
{
    static const char *const pads[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    const int64_t *ks;
    int rc;
    memset(p, 0, sizeof *p);
    p->max = !strcmp(n->op_type, "MaxPool");
    p->k = qd_attr_ints(n, "kernel_shape", &ks);
    if (!qd_attr_find(n, "kernel_shape"))
        return qd_errf(e, QD_EINPUT, "%s: attribute kernel_shape is required", n->op_type);
    if (p->k >= 3)
        return qd_errf(e, QD_EINPUT, "%s: %d-D pooling is not supported (1-D and 2-D are)", n->op_type, p->k);
    if (p->k < 1)
        return qd_errf(e, QD_EINPUT, "%s: kernel_shape is empty", n->op_type);
    if ((rc = ints_attr(n, "kernel_shape", p->k, 1, 1, p->kernel, e)) ||
        (rc = ints_attr(n, "strides", p->k, 1, 1, p->stride, e)) ||
        (rc = ints_attr(n, "pads", 2 * p->k, 0, 0, p->pads, e)) ||
        (rc = ints_attr(n, "dilations", p->k, 1, 1, p->dil, e)))
        return rc;
    if (!p->max && (p->dil[0] != 1 || (p->k == 2 && p->dil[1] != 1)))
        return qd_errf(e, QD_EINPUT, "AveragePool: dilations are not supported before opset 19");
    const char *ap = qd_attr_str(n, "auto_pad", "NOTSET");
    p->auto_pad = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(ap, pads[i]))
            p->auto_pad = i;
    if (p->auto_pad < 0)
        return qd_errf(e, QD_EINPUT, "%s: auto_pad '%s' is unknown", n->op_type, ap);
    p->ceil_mode = qd_attr_int(n, "ceil_mode", 0) != 0;
    p->include_pad = !p->max && qd_attr_int(n, "count_include_pad", 0) != 0;
    return QD_OK;
}

static int pool_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    pool_attr p;
    int max = !strcmp(n->op_type, "MaxPool");
    if (n->nin != 1 || n->nout < 1 || n->nout > (max ? 2 : 1))
        return qd_errf(e, QD_EINPUT, "%s takes 1 input and %d output(s), got %d and %d",
                       n->op_type, max ? 2 : 1, n->nin, n->nout);
    if (max && n->nout == 2 && (!n->out || n->out[1] >= 0))
        return qd_errf(e, QD_EINPUT, "MaxPool: the Indices output is not supported");
    int64_t so = qd_attr_int(n, "storage_order", 0);
    if (so != 0 && so != 1)
        return qd_errf(e, QD_EINPUT, "MaxPool: storage_order %lld is invalid", (long long)so);
    return pool_parse(n, &p, e);
}

/* Output size and begin/end pads of one spatial axis. */
static int pool_axis(const pool_attr *p, int a, int64_t in, int64_t *out, int64_t *pb, int64_t *pe, qd_err *e)
{
    int64_t k = p->kernel[a], s = p->stride[a], ek = p->dil[a] * (k - 1) + 1;
    *pb = p->pads[a];
    *pe = p->pads[p->k + a];
    if (p->auto_pad == AP_VALID) {
        *pb = *pe = 0;
    } else if (p->auto_pad != AP_NOTSET) {
        int64_t target = (in + s - 1) / s, need = (target - 1) * s + ek - in;
        if (need < 0)
            need = 0;
        *pb = p->auto_pad == AP_SAME_UPPER ? need / 2 : (need + 1) / 2;
        *pe = need - *pb;
    }
    int64_t num = in + *pb + *pe - ek;
    if (p->ceil_mode) {
        /* ceil(num / s) + 1; num may be negative (a window wider than the
         * input still yields one output in ceil mode, as in ORT and PyTorch) */
        *out = (num >= 0 ? (num + s - 1) / s : -(-num / s)) + 1;
        if (*out > 1 && (*out - 1) * s >= in + *pb) /* last window would start in the end padding */
            (*out)--;
    } else {
        *out = num >= 0 ? num / s + 1 : 0;
    }
    if (*out < 1)
        return qd_errf(e, QD_EINPUT, "pool window %lld is larger than the padded input %lld on spatial axis %d",
                       (long long)ek, (long long)(in + *pb + *pe), a);
    return QD_OK;
}

static int pool_geometry(const qd_node *n, const qd_tensor *x, pool_geom *g, qd_err *e)
{
    pool_attr p;
    char b[96];
    int rc = pool_parse(n, &p, e);
    if (rc)
        return rc;
    if (x->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "%s supports float32 only, got %s", n->op_type, qd_dtype_name(x->dtype));
    int sp = x->ndim - 2;
    if (sp == 3)
        return qd_errf(e, QD_EINPUT, "%s: 3-D pooling is not supported (input %s)", n->op_type,
                       qd_shape_str(x->ndim, x->shape, b, sizeof b));
    if (sp != p.k)
        return qd_errf(e, QD_EINPUT, "%s: kernel_shape has %d dims but the input %s has %d spatial dims",
                       n->op_type, p.k, qd_shape_str(x->ndim, x->shape, b, sizeof b), sp);
    int64_t out[2], pb[2], pe[2];
    for (int a = 0; a < p.k; a++)
        if ((rc = pool_axis(&p, a, x->shape[2 + a], &out[a], &pb[a], &pe[a], e)))
            return rc;
    int h = p.k == 2; /* index of the W axis in the attribute arrays */
    *g = (pool_geom){
        .max = p.max, .include_pad = p.include_pad,
        .H = h ? x->shape[2] : 1, .W = x->shape[2 + h], .OH = h ? out[0] : 1, .OW = out[h],
        .kh = h ? p.kernel[0] : 1, .kw = p.kernel[h], .sh = h ? p.stride[0] : 1, .sw = p.stride[h],
        .dh = h ? p.dil[0] : 1, .dw = p.dil[h], .ph = h ? pb[0] : 0, .pw = pb[h],
        .peh = h ? pe[0] : 0, .pew = pe[h],
    };
    return QD_OK;
}

static int pool_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    pool_geom g;
    int rc = pool_geometry(n, x, &g, e);
    if (rc)
        return rc;
    int64_t dims[4] = {x->shape[0], x->shape[1], g.OH, g.OW};
    if (x->ndim == 3)
        dims[2] = g.OW;
    return qd_tensor_resize(out[0], QD_F32, x->ndim, dims, e);
}

#define MAXF(a, b) ((a) > (b) ? (a) : (b))

/* Reference window: any position, dilation, padding. */
static float window_generic(const float *x, const pool_geom *g, int64_t oy, int64_t ox)
{
    int64_t ys = oy * g->sh - g->ph, xs = ox * g->sw - g->pw, cnt = 0;
    float m = -FLT_MAX, s = 0;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        int64_t y = ys + ky * g->dh;
        if (y < 0 || y >= g->H)
            continue;
        for (int64_t kx = 0; kx < g->kw; kx++) {
            int64_t xx = xs + kx * g->dw;
            if (xx < 0 || xx >= g->W)
                continue;
            float v = x[y * g->W + xx];
            if (g->max)
                m = MAXF(v, m);
            else
                s += v;
            cnt++;
        }
    }
    if (g->max)
        return m;
    if (g->include_pad) { /* window clipped to the padded extent (ORT) */
        int64_t ye = ys + g->kh < g->H + g->peh ? ys + g->kh : g->H + g->peh;
        int64_t xe = xs + g->kw < g->W + g->pew ? xs + g->kw : g->W + g->pew;
        cnt = (ye - ys) * (xe - xs);
    }
    return cnt ? s / (float)cnt : 0.0f;
}

/* o[i] = max(o[i], p[i]) and o[i] += p[i]; blocks of 8 so that -O2 vectorizes. */
static void max_run(float *restrict o, const float *restrict p, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            o[i + k] = MAXF(p[i + k], o[i + k]);
    for (; i < n; i++)
        o[i] = MAXF(p[i], o[i]);
}

static void add_run(float *restrict o, const float *restrict p, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            o[i + k] += p[i + k];
    for (; i < n; i++)
        o[i] += p[i];
}

/* Outputs [x0, x1) of row oy whose windows lie inside the input: tap by tap
 * over the whole run, so outputs are independent (and vectorize at stride 1). */
static void row_inside(const float *x, const pool_geom *g, int64_t oy, int64_t x0, int64_t x1, float *y)
{
    int64_t n = x1 - x0, sw = g->sw;
    const float *base = x + (oy * g->sh - g->ph) * g->W + (x0 * sw - g->pw);
    float *restrict o = y + x0;
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++) {
            const float *restrict p = base + ky * g->dh * g->W + kx * g->dw;
            int first = ky == 0 && kx == 0;
            if (first && sw == 1) {
                memcpy(o, p, (size_t)n * sizeof *o);
            } else if (first) {
                for (int64_t i = 0; i < n; i++)
                    o[i] = p[i * sw];
            } else if (g->max && sw == 1) {
                max_run(o, p, n);
            } else if (g->max) {
                for (int64_t i = 0; i < n; i++)
                    o[i] = MAXF(p[i * sw], o[i]);
            } else if (sw == 1) {
                add_run(o, p, n);
            } else {
                for (int64_t i = 0; i < n; i++)
                    o[i] += p[i * sw];
            }
        }
    if (!g->max) {
        float inv = 1.0f / (float)(g->kh * g->kw);
        for (int64_t i = 0; i < n; i++)
            o[i] *= inv;
    }
}

/* First and one-past-last output index whose window lies inside [0, in). */
static void inside_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t ek, int64_t *lo, int64_t *hi)
{
    int64_t a = (p + s - 1) / s, b = in + p - ek < 0 ? 0 : (in + p - ek) / s + 1;
    *lo = a < out ? a : out;
    *hi = b < *lo ? *lo : b > out ? out : b;
}

typedef struct pool_job {
    const float *x;
    float *y;
    pool_geom g;
} pool_job;

static void pool_planes(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const pool_job *j = arg;
    const pool_geom *g = &j->g;
    int64_t ylo, yhi, xlo, xhi;
    inside_range(g->OH, g->H, g->sh, g->ph, g->dh * (g->kh - 1) + 1, &ylo, &yhi);
    inside_range(g->OW, g->W, g->sw, g->pw, g->dw * (g->kw - 1) + 1, &xlo, &xhi);
    for (int64_t pl = b; pl < end; pl++) {
        const float *x = j->x + pl * g->H * g->W;
        float *y = j->y + pl * g->OH * g->OW;
        for (int64_t oy = 0; oy < g->OH; oy++, y += g->OW) {
            if (oy < ylo || oy >= yhi) {
                for (int64_t ox = 0; ox < g->OW; ox++)
                    y[ox] = window_generic(x, g, oy, ox);
                continue;
            }
            for (int64_t ox = 0; ox < xlo; ox++)
                y[ox] = window_generic(x, g, oy, ox);
            if (xhi > xlo)
                row_inside(x, g, oy, xlo, xhi, y);
            for (int64_t ox = xhi; ox < g->OW; ox++)
                y[ox] = window_generic(x, g, oy, ox);
        }
    }
}

static int pool_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    pool_job j = {x->data, out[0]->data, {0}};
    if (pool_geometry(n, x, &j.g, NULL))
        return QD_EINPUT;
    int64_t planes = x->shape[0] * x->shape[1];
    int64_t work = j.g.OH * j.g.OW * j.g.kh * j.g.kw;
    if (planes > 0 && j.g.OH * j.g.OW > 0)
        qd_ctx_for(ctx, planes, work > 0 ? 1 + 65536 / work : 1, pool_planes, &j);
    return QD_OK;
}

/* ---- GlobalAveragePool, GlobalMaxPool: reduce all spatial dims ------------- */

static int global_check(qd_node *n, const qd_graph *g, qd_err *e)
{
    (void)g;
    if (n->nin != 1 || n->nout != 1)
        return qd_errf(e, QD_EINPUT, "%s takes 1 input and 1 output, got %d and %d", n->op_type, n->nin, n->nout);
    return QD_OK;
}

static int global_infer(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e)
{
    const qd_tensor *x = in[0];
    char b[96];
    if (x->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "%s supports float32 only, got %s", n->op_type, qd_dtype_name(x->dtype));
    if (x->ndim < 3)
        return qd_errf(e, QD_EINPUT, "%s: input must be (N, C, spatial...), got %s", n->op_type,
                       qd_shape_str(x->ndim, x->shape, b, sizeof b));
    int64_t dims[QD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        dims[d] = d < 2 ? x->shape[d] : 1;
    return qd_tensor_resize(out[0], QD_F32, x->ndim, dims, e);
}

typedef struct global_job {
    const float *x;
    float *y;
    int64_t S;
    int max;
} global_job;

static void global_planes(void *arg, int64_t b, int64_t end, int tid)
{
    (void)tid;
    const global_job *j = arg;
    for (int64_t pl = b; pl < end; pl++) {
        const float *x = j->x + pl * j->S;
        if (j->max) {
            float m = j->S ? x[0] : -FLT_MAX;
            for (int64_t i = 1; i < j->S; i++)
                m = x[i] > m ? x[i] : m;
            j->y[pl] = m;
        } else {
            double s = 0;
            for (int64_t i = 0; i < j->S; i++)
                s += x[i];
            j->y[pl] = j->S ? (float)(s / (double)j->S) : 0.0f;
        }
    }
}

static int global_run(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx)
{
    const qd_tensor *x = in[0];
    global_job j = {x->data, out[0]->data, qd_shape_numel(x->ndim - 2, x->shape + 2),
                    !strcmp(n->op_type, "GlobalMaxPool")};
    int64_t planes = x->shape[0] * x->shape[1];
    if (planes > 0)
        qd_ctx_for(ctx, planes, 1 + 65536 / (j.S + 1), global_planes, &j);
    return QD_OK;
}

const qd_op qd_ops_pool[] = {
    {"AveragePool", pool_check, pool_infer, pool_run, NULL},
    {"GlobalAveragePool", global_check, global_infer, global_run, NULL},
    {"GlobalMaxPool", global_check, global_infer, global_run, NULL},
    {"MaxPool", pool_check, pool_infer, pool_run, NULL},
    {0},
};
