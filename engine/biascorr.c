/* biascorr.c - empirical and analytic bias correction (see biascorr.h). */
#include "biascorr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const mode_names[] = {"empirical", "analytic"};
_Static_assert(sizeof mode_names / sizeof *mode_names == QD_BC_ANALYTIC + 1, "mode_names out of sync");

const char *qd_bc_mode_name(qd_bc_mode m)
{
    return (unsigned)m < sizeof mode_names / sizeof *mode_names ? mode_names[m] : "?";
}

/* ------------------------------------------------------------ expectations */

static double pdf(double x) { return 0.39894228040143267794 * exp(-0.5 * x * x); }
static double cdf(double x) { return 0.5 * erfc(-x / M_SQRT2); }
static double upper(double x) { return 0.5 * erfc(x / M_SQRT2); } /* 1 - cdf(x), accurate in the tail */

/* With a = (lo - mu) / sigma, b = (hi - mu) / sigma:
 *   E[clip(z)] = lo P(z < lo) + hi P(z > hi) + E[z; lo <= z <= hi]
 *   E[z; lo <= z <= hi] = mu (Phi(b) - Phi(a)) + sigma (phi(a) - phi(b)). */
double qd_bc_clip_mean(double mu, double sigma, double lo, double hi)
{
    if (!(sigma > 0))
        return mu < lo ? lo : mu > hi ? hi : mu;
    double a = (lo - mu) / sigma, b = (hi - mu) / sigma;
    double below = cdf(a), above = upper(b);
    double inside = a > 0 ? upper(a) - upper(b) : cdf(b) - cdf(a);
    double r = mu * inside + sigma * (pdf(a) - pdf(b));
    if (below > 0) /* lo = -inf has below = 0 */
        r += lo * below;
    if (above > 0)
        r += hi * above;
    return r;
}

/* ------------------------------------------------------------ geometry */

/* One layer's taps. Conv: x (c, h, w), W (co, c/group, kh, kw), output
 * (co, oh, ow), tap (ky, kx) of output (oy, ox) reads x[oy*sh - pt + ky*dh]
 * [ox*sw - pl + kx*dw]. Gemm: x (c = K), W (co, K) with transB, else (K, co);
 * one tap per input, kh = kw = 1. */
typedef struct geom {
    int gemm, transb;
    int64_t co, c, group, kh, kw;       /* from the weight (geom_weight) */
    int64_t h, w, sh, sw, dh, dw, pt, pl, oh, ow; /* from an input's shape (geom_input) */
} geom;

static int is_op(const qd_node *n, const char *op) { return strcmp(n->op_type, op) == 0; }

/* The weight part of g's node n (a Conv or a Gemm without transA). */
static int geom_weight(const qd_node *n, const qd_tensor *w, geom *gm, qd_err *e)
{
    memset(gm, 0, sizeof *gm);
    if (w->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "%s: weight is not float32", n->name);
    if (is_op(n, "Gemm")) {
        if (w->ndim != 2 || qd_attr_int(n, "transA", 0))
            return qd_errf(e, QD_EINPUT, "%s: Gemm with transA or a weight of rank %d", n->name, w->ndim);
        gm->gemm = 1;
        gm->transb = qd_attr_int(n, "transB", 0) != 0;
        gm->co = w->shape[gm->transb ? 0 : 1];
        gm->c = w->shape[gm->transb ? 1 : 0];
        gm->group = gm->kh = gm->kw = 1;
        return QD_OK;
    }
    gm->group = qd_attr_int(n, "group", 1);
    if ((w->ndim != 3 && w->ndim != 4) || gm->group < 1 || w->shape[0] % gm->group)
        return qd_errf(e, QD_EINPUT, "%s: weight of rank %d with group %lld", n->name, w->ndim, (long long)gm->group);
    gm->co = w->shape[0];
    gm->c = w->shape[1] * gm->group;
    gm->kh = w->ndim == 4 ? w->shape[2] : 1;
    gm->kw = w->shape[w->ndim - 1];
    return QD_OK;
}

/* One spatial axis of a Conv (ONNX rules): output size and leading pad;
 * -1 when the kernel does not fit. */
static int64_t conv_axis(const char *autopad, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                         int64_t *lead)
{
    int64_t dk = d * (k - 1) + 1, out;
    if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
        out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + dk - in;
        total = total > 0 ? total : 0;
        *lead = !strcmp(autopad, "SAME_UPPER") ? total / 2 : total - total / 2;
        return out;
    }
    if (!strcmp(autopad, "VALID"))
        pb = pe = 0;
    *lead = pb;
    return in + pb + pe >= dk ? (in + pb + pe - dk) / s + 1 : -1;
}

/* The spatial part of gm for an input sample of shape xs (rank xdim - 1:
 * C [H] W for a Conv, K for a Gemm). */
static int geom_input(const qd_node *n, int xdim, const int64_t *xs, geom *gm, qd_err *e)
{
    int r = xdim - 2; /* spatial rank */
    if (gm->gemm ? xdim != 2 || xs[0] != gm->c : (r != 1 && r != 2) || xs[0] != gm->c || (r == 1 && gm->kh != 1))
        return qd_errf(e, QD_EINPUT, "%s: input of rank %d with %lld channels does not fit a weight for %lld", n->name,
                       xdim, (long long)xs[0], (long long)gm->c);
    gm->h = gm->w = gm->sh = gm->sw = gm->dh = gm->dw = gm->oh = gm->ow = 1;
    gm->pt = gm->pl = 0;
    if (gm->gemm)
        return QD_OK;
    gm->h = r == 2 ? xs[1] : 1;
    gm->w = xs[r];
    const int64_t *st, *dl, *pd;
    int nst = qd_attr_ints(n, "strides", &st), ndl = qd_attr_ints(n, "dilations", &dl);
    int npd = qd_attr_ints(n, "pads", &pd);
    if ((nst && nst != r) || (ndl && ndl != r) || (npd && npd != 2 * r))
        return qd_errf(e, QD_EINPUT, "%s: strides, dilations or pads are not for %d-D", n->name, r);
    const char *ap = qd_attr_str(n, "auto_pad", "NOTSET");
    int64_t in[2] = {gm->h, gm->w}, k[2] = {gm->kh, gm->kw}, s[2] = {1, 1}, d[2] = {1, 1}, o[2] = {1, 1},
            lead[2] = {0, 0};
    for (int ax = 2 - r; ax < 2; ax++) {
        int i = ax - (2 - r);
        s[ax] = nst ? st[i] : 1;
        d[ax] = ndl ? dl[i] : 1;
        if (s[ax] < 1 || d[ax] < 1)
            return qd_errf(e, QD_EINPUT, "%s: stride or dilation < 1", n->name);
        o[ax] = conv_axis(ap, in[ax], k[ax], s[ax], d[ax], npd ? pd[i] : 0, npd ? pd[i + r] : 0, &lead[ax]);
        if (o[ax] < 1)
            return qd_errf(e, QD_EINPUT, "%s: kernel larger than the padded input", n->name);
    }
    gm->sh = s[0], gm->dh = d[0], gm->oh = o[0], gm->pt = lead[0];
    gm->sw = s[1], gm->dw = d[1], gm->ow = o[1], gm->pl = lead[1];
    return QD_OK;
}

/* Mean over n images and all output positions of what each tap reads:
 * m (c, kh, kw) from sum (c, h, w), the input summed over the images.
 * Padding reads zero. Gemm: m = sum / n. */
static void tap_means(const geom *gm, const double *sum, int64_t n, double *m)
{
    double inv = 1.0 / ((double)n * (double)gm->oh * (double)gm->ow);
    for (int64_t ci = 0; ci < gm->c; ci++)
        for (int64_t ky = 0; ky < gm->kh; ky++)
            for (int64_t kx = 0; kx < gm->kw; kx++) {
                double acc = 0;
                for (int64_t oy = 0; oy < gm->oh; oy++) {
                    int64_t iy = oy * gm->sh - gm->pt + ky * gm->dh;
                    if (iy < 0 || iy >= gm->h)
                        continue;
                    const double *row = sum + (ci * gm->h + iy) * gm->w;
                    for (int64_t ox = 0; ox < gm->ow; ox++) {
                        int64_t ix = ox * gm->sw - gm->pl + kx * gm->dw;
                        if (ix >= 0 && ix < gm->w)
                            acc += row[ix];
                    }
                }
                m[(ci * gm->kh + ky) * gm->kw + kx] = acc * inv;
            }
}

/* out (co) = sum over taps W[c, tap] m[tap]:
 * Conv W (co, c/group, kh, kw) @ m (c, kh, kw) per group; Gemm W @ m (K). */
static void wx_from_taps(const geom *gm, const double *m, const float *w, double *out)
{
    int64_t taps = gm->kh * gm->kw, cig = gm->c / gm->group, cog = gm->co / gm->group;
    for (int64_t o = 0; o < gm->co; o++) {
        double acc = 0;
        if (gm->gemm) {
            for (int64_t k = 0; k < gm->c; k++)
                acc += (double)w[gm->transb ? o * gm->c + k : k * gm->co + o] * m[k];
        } else {
            const float *wr = w + o * cig * taps;
            const double *mr = m + (o / cog) * cig * taps;
            for (int64_t t = 0; t < cig * taps; t++)
                acc += (double)wr[t] * mr[t];
        }
        out[o] = acc;
    }
}

/* ------------------------------------------------------------ input sums */

/* The sum over images of one layer's input, sample shape xs (rank - 1). */
typedef struct acc {
    int xdim;
    int64_t xs[QD_MAX_DIMS];
    int64_t n;       /* images added */
    double *sum;     /* one per sample element */
} acc;

static void acc_free(acc *a)
{
    free(a->sum);
    memset(a, 0, sizeof *a);
}

static int acc_add(acc *a, const qd_tensor *x, const char *name, qd_err *e)
{
    if (x->dtype != QD_F32 || x->ndim < 2 || x->ndim > 4)
        return qd_errf(e, QD_EINPUT, "%s: input must be float32 of rank 2 to 4, is rank %d", name, x->ndim);
    int64_t per = qd_shape_numel(x->ndim - 1, x->shape + 1), nimg = x->shape[0];
    if (!a->sum) {
        a->sum = calloc((size_t)per + 1, sizeof *a->sum);
        if (!a->sum)
            return qd_errf(e, QD_EFAIL, "out of memory");
        a->xdim = x->ndim;
        memcpy(a->xs, x->shape + 1, (size_t)(x->ndim - 1) * sizeof *a->xs);
    } else if (a->xdim != x->ndim || memcmp(a->xs, x->shape + 1, (size_t)(x->ndim - 1) * sizeof *a->xs)) {
        return qd_errf(e, QD_EINPUT, "%s: input shape changed between batches", name);
    }
    const float *p = x->data;
    for (int64_t i = 0; i < nimg; i++, p += per)
        for (int64_t k = 0; k < per; k++)
            a->sum[k] += p[k];
    a->n += nimg;
    return QD_OK;
}

/* E[(w x)_c] per output channel from a's sums. */
static int acc_wx_mean(const qd_node *nd, const acc *a, const qd_tensor *w, double *out, qd_err *e)
{
    geom gm;
    if (geom_weight(nd, w, &gm, e) || geom_input(nd, a->xdim, a->xs, &gm, e))
        return e->code;
    if (a->n < 1)
        return qd_errf(e, QD_EINPUT, "%s: no images", nd->name);
    double *m = malloc((size_t)(gm.c * gm.kh * gm.kw + 1) * sizeof *m);
    if (!m)
        return qd_errf(e, QD_EFAIL, "out of memory");
    tap_means(&gm, a->sum, a->n, m);
    wx_from_taps(&gm, m, w->data, out);
    free(m);
    return QD_OK;
}

int qd_bc_wx_mean(const qd_graph *g, int node, const qd_tensor *x, const qd_tensor *w, double *out, qd_err *e)
{
    if (node < 0 || node >= g->nnodes || !(is_op(&g->nodes[node], "Conv") || is_op(&g->nodes[node], "Gemm")))
        return qd_errf(e, QD_EINPUT, "node %d is not a Conv or Gemm", node);
    acc a = {0};
    int rc = acc_add(&a, x, g->nodes[node].name, e);
    if (!rc)
        rc = acc_wx_mean(&g->nodes[node], &a, w, out, e);
    acc_free(&a);
    return rc;
}

/* ------------------------------------------------------------ layers */

typedef struct layer {
    int node, wv, bv;       /* node, weight and bias values in the sim's graph */
    const char *why;        /* skipped when set */
    int level;              /* empirical: the pass that corrects it */
    int done;
    acc in;                 /* empirical: input sums of the current pass */
    double *ref;            /* empirical: E[W_fp32 x_fp32] per output channel */
    double mean_abs, max_abs;
} layer;


/* Candidates: every Conv/Gemm (and ConvTranspose, skipped) with an active
 * weight quantizer, which must have encodings. */
static int find_layers(qd_sim *s, layer **out, int *nout, qd_err *e)
{
    const qd_graph *g = qd_sim_graph(s);
    int *uses = qd_graph_count_uses(g);
    layer *L = calloc((size_t)g->nnodes + 1, sizeof *L);
    int n = 0, rc = QD_OK;
    if (!uses || !L) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *nd = &g->nodes[i];
        int conv = is_op(nd, "Conv"), gemm = is_op(nd, "Gemm"), convt = is_op(nd, "ConvTranspose");
        if (!(conv || gemm || convt) || !qd_node_has_input(nd, 1))
            continue;
        int qi = qd_sim_find(s, g->values[nd->in[1]].name);
        qd_quantizer *q = qd_sim_get(s, qi);
        if (!q || q->kind != QD_QK_PARAM || !qd_quantizer_active(q))
            continue;
        if (!q->nenc) {
            rc = qd_errf(e, QD_EINPUT, "bias correction needs a calibrated simulation: weight quantizer '%s' has no "
                                       "encodings", q->name);
            goto fail;
        }
        layer *l = &L[n++];
        l->node = i;
        l->wv = nd->in[1];
        l->bv = qd_node_has_input(nd, 2) ? nd->in[2] : -1;
        if (convt)
            l->why = "ConvTranspose is not supported";
        else if (gemm && qd_attr_int(nd, "transA", 0))
            l->why = "Gemm with transA";
        else if (gemm && (qd_attr_float(nd, "alpha", 1.0f) != 1.0f || qd_attr_float(nd, "beta", 1.0f) != 1.0f))
            l->why = "Gemm with alpha or beta not 1";
        else if (l->bv < 0 || !qd_sim_fp32(s, l->bv) || uses[l->bv] != 1)
            l->why = "no bias of its own";
        else if (!qd_sim_fp32(s, l->wv))
            l->why = "no FP32 weight";
        geom gm;
        qd_err ge = {0};
        if (!l->why && (geom_weight(nd, qd_sim_fp32(s, l->wv), &gm, &ge) ||
                        qd_tensor_numel(qd_sim_fp32(s, l->bv)) != gm.co))
            l->why = "weight or bias of an unexpected shape";
    }
    free(uses);
    *out = L;
    *nout = n;
    return QD_OK;
fail:
    free(uses);
    free(L);
    return rc;
}

/* b += delta per output channel; the layer's statistics. */
static void shift_bias(qd_sim *s, layer *l, const double *delta)
{
    qd_tensor *b = qd_sim_fp32(s, l->bv);
    float *bp = b->data;
    int64_t co = qd_tensor_numel(b);
    double sum = 0, mx = 0;
    for (int64_t c = 0; c < co; c++) {
        bp[c] = (float)((double)bp[c] + delta[c]);
        sum += fabs(delta[c]);
        mx = fmax(mx, fabs(delta[c]));
    }
    l->mean_abs = co ? sum / (double)co : 0;
    l->max_abs = mx;
    l->done = 1;
}

/* ------------------------------------------------------------ empirical */

/* The tensor layer l read in the last run: from the executor, or, for a
 * graph input (which the executor does not keep), the batch itself, fake
 * quantized into *tmp as the sim quantizes it unless fp32. */
static const qd_tensor *layer_input(qd_sim *s, const layer *l, const qd_tensor *batch, int fp32, qd_tensor *tmp,
                                    qd_err *e)
{
    const qd_graph *g = qd_sim_graph(s);
    int v = g->nodes[l->node].in[0];
    const qd_tensor *t = qd_exec_value(qd_sim_exec(s), v);
    if (t)
        return t;
    if (g->values[v].producer >= 0 || g->values[v].init || g->ninputs != 1 || g->inputs[0] != v) {
        qd_errf(e, QD_EFAIL, "internal: input '%s' of %s was not computed", g->values[v].name, g->nodes[l->node].name);
        return NULL;
    }
    qd_quantizer *q = qd_sim_get(s, qd_sim_find(s, g->values[v].name));
    if (fp32 || !q || !qd_quantizer_active(q) || !q->nenc)
        return batch;
    if (qd_tensor_resize(tmp, QD_F32, batch->ndim, batch->shape, e))
        return NULL;
    qd_fake_quant(batch->data, tmp->data, (size_t)qd_tensor_numel(batch), &q->enc[0]);
    return tmp;
}

/* Pass numbers: a layer is corrected in the pass after the last one that
 * corrects a layer its input depends on. Returns the number of passes. */
static int assign_levels(const qd_graph *g, layer *L, int nl, int *lvl)
{
    int depth = 0, k = 0;
    memset(lvl, 0, (size_t)g->nvalues * sizeof *lvl);
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *nd = &g->nodes[i];
        int m = 0;
        for (int j = 0; j < nd->nin; j++)
            if (nd->in[j] >= 0 && lvl[nd->in[j]] > m)
                m = lvl[nd->in[j]];
        while (k < nl && L[k].node < i)
            k++;
        if (k < nl && L[k].node == i && !L[k].why) {
            L[k].level = ++m;
            depth = m > depth ? m : depth;
        }
        for (int j = 0; j < nd->nout; j++)
            if (nd->out[j] >= 0)
                lvl[nd->out[j]] = m;
    }
    return depth;
}

/* Batches are kept in memory between passes up to this size (decoding
 * images again for every pass would cost more than the runs). */
#define BC_CACHE_BYTES ((int64_t)256 << 20)

static int empirical(qd_sim *s, layer *L, int nl, qd_dataset *d, int64_t nimages, int64_t batch, qd_bc_report *r,
                     qd_err *e)
{
    const qd_graph *g = qd_sim_graph(s);
    qd_tensor xload = {0}, xq = {0}, *cache = NULL;
    int64_t nbatch = 0;
    double *wx = NULL;
    int64_t co_max = 1;
    int *lvl = malloc(((size_t)g->nvalues + 1) * sizeof *lvl);
    int rc = QD_OK;
    if (!lvl) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    if (!d) {
        rc = qd_errf(e, QD_EINPUT, "empirical bias correction needs data");
        goto out;
    }
    if (g->ninputs != 1) {
        rc = qd_errf(e, QD_EINPUT, "empirical bias correction needs a model with one input, this one has %d",
                     g->ninputs);
        goto out;
    }
    if (qd_sim_check_encodings(s, e)) {
        qd_err_prefix(e, "bias correction needs a calibrated simulation");
        rc = e->code;
        goto out;
    }
    int64_t total = qd_data_count(d);
    if (nimages > 0 && nimages < total)
        total = nimages;
    if (total < 1) {
        rc = qd_errf(e, QD_EINPUT, "empirical bias correction needs at least one image");
        goto out;
    }
    r->images = total;
    int64_t chw[3];
    qd_data_sample_shape(d, chw);
    nbatch = (total + batch - 1) / batch;
    if (total * chw[0] * chw[1] * chw[2] * (int64_t)sizeof(float) <= BC_CACHE_BYTES &&
        !(cache = calloc((size_t)nbatch, sizeof *cache))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int k = 0; k < nl; k++) {
        if (L[k].why)
            continue;
        int64_t co = qd_tensor_numel(qd_sim_fp32(s, L[k].bv));
        co_max = co > co_max ? co : co_max;
        if (!(L[k].ref = malloc((size_t)co * sizeof *L[k].ref))) {
            rc = qd_errf(e, QD_EFAIL, "out of memory");
            goto out;
        }
    }
    if (!(wx = malloc((size_t)co_max * sizeof *wx))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    int depth = assign_levels(g, L, nl, lvl);
    /* pass 0: the FP32 model gives every layer's reference; pass p > 0
     * corrects the layers of level p */
    for (int pass = 0; pass <= depth && depth > 0; pass++) {
        qd_sim_set_fp32(s, pass == 0);
        for (int64_t at = 0; at < total; at += batch) {
            int64_t nb = total - at < batch ? total - at : batch;
            qd_tensor *xb = cache ? &cache[at / batch] : &xload;
            if ((!cache || pass == 0) && (rc = qd_data_batch(d, at, nb, xb, NULL, e)))
                goto out;
            if ((rc = qd_sim_run(s, xb, 1, e)))
                goto out;
            for (int k = 0; k < nl; k++) {
                layer *l = &L[k];
                if (l->why || (pass > 0 && l->level != pass))
                    continue;
                const qd_tensor *x = layer_input(s, l, xb, pass == 0, &xq, e);
                if (!x || (rc = acc_add(&l->in, x, g->nodes[l->node].name, e))) {
                    rc = e->code ? e->code : QD_EFAIL;
                    goto out;
                }
            }
        }
        for (int k = 0; k < nl; k++) {
            layer *l = &L[k];
            if (l->why || (pass > 0 && l->level != pass))
                continue;
            const qd_node *nd = &g->nodes[l->node];
            /* after a simulated run the graph holds the simulated weights */
            const qd_tensor *w = pass == 0 ? qd_sim_fp32(s, l->wv) : g->values[l->wv].init;
            if ((rc = acc_wx_mean(nd, &l->in, w, pass == 0 ? l->ref : wx, e)))
                goto out;
            acc_free(&l->in);
            if (pass == 0)
                continue;
            int64_t co = qd_tensor_numel(qd_sim_fp32(s, l->bv));
            for (int64_t c = 0; c < co; c++)
                wx[c] = l->ref[c] - wx[c];
            shift_bias(s, l, wx);
        }
        if (pass > 0)
            qd_sim_params_changed(s);
        r->passes++;
    }
out:
    qd_sim_set_fp32(s, 0);
    for (int k = 0; k < nl; k++) {
        acc_free(&L[k].in);
        free(L[k].ref);
        L[k].ref = NULL;
    }
    for (int64_t i = 0; cache && i < nbatch; i++)
        qd_tensor_free(&cache[i]);
    free(cache);
    free(wx);
    free(lvl);
    qd_tensor_free(&xload);
    qd_tensor_free(&xq);
    return rc;
}

/* ------------------------------------------------------------ analytic */

/* Clip bounds of a Relu or constant Clip node into [*lo, *hi]; 0 when n is
 * neither. */
static int act_bounds(const qd_graph *g, const qd_node *n, double *lo, double *hi)
{
    float a, b;
    if (!qd_act_bounds(g, n, &a, &b))
        return 0;
    *lo = fmax(*lo, a);
    *hi = fmin(*hi, b);
    return 1;
}

/* E[x_ci] of node n's input per channel, from the BN statistics of the
 * Conv that produces it, through Relu/Clip nodes and then channel-preserving
 * ops (Identity, Dropout, GlobalAveragePool; Flatten or Reshape, which set
 * *flat). Returns the channel count and sets *ex (malloc'd); 0 and sets
 * *why when there are no statistics; -1 when out of memory. */
static int64_t input_expectation(const qd_graph *g, const qd_node *n, double **ex, int *flat, const char **why)
{
    int v = n->in[0], pooled = 0;
    double lo = -INFINITY, hi = INFINITY;
    *flat = 0;
    *ex = NULL;
    for (int hops = 0; hops <= g->nnodes; hops++) {
        int p = v >= 0 ? g->values[v].producer : -1;
        if (p < 0) {
            *why = "its input is not a BatchNormalization output";
            return 0;
        }
        const qd_node *pn = &g->nodes[p];
        if (pn->bn_nch > 0 && pn->bn_mean && pn->out[0] == v) {
            if (pn->fused_clip) {
                lo = fmax(lo, pn->clip_lo);
                hi = fmin(hi, pn->clip_hi);
            }
            if (!(lo <= hi)) {
                *why = "empty clip range on its input";
                return 0;
            }
            int64_t c = pn->bn_nch;
            if (!(*ex = malloc((size_t)c * sizeof **ex)))
                return -1;
            for (int64_t k = 0; k < c; k++)
                (*ex)[k] = qd_bc_clip_mean(pn->bn_mean[k], pn->bn_mean[c + k], lo, hi);
            return c;
        }
        if (pn->nin < 1 || pn->in[0] < 0) {
            *why = "its input is not a BatchNormalization output";
            return 0;
        }
        if (is_op(pn, "Relu") || is_op(pn, "Clip")) {
            /* an activation commutes with reshapes, not with averaging */
            if (pooled || !act_bounds(g, pn, &lo, &hi)) {
                *why = "its input is not a BatchNormalization output";
                return 0;
            }
        } else if (is_op(pn, "GlobalAveragePool")) {
            pooled = 1;
        } else if (is_op(pn, "Flatten") || is_op(pn, "Reshape")) {
            *flat = 1;
        } else if (!is_op(pn, "Identity") && !is_op(pn, "Dropout")) {
            *why = "its input is not a BatchNormalization output";
            return 0;
        }
        v = pn->in[0];
    }
    *why = "its input is not a BatchNormalization output";
    return 0;
}

/* Tap means m (c, kh, kw) of an input whose every pixel of channel ci has
 * mean ex[ci] (gm's spatial part set): padding reads zero. */
static int padded_taps(const geom *gm, const double *ex, double *m, qd_err *e)
{
    int64_t hw = gm->h * gm->w;
    double *plane = malloc((size_t)(gm->c * hw) * sizeof *plane);
    if (!plane)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (int64_t ci = 0; ci < gm->c; ci++)
        for (int64_t k = 0; k < hw; k++)
            plane[ci * hw + k] = ex[ci];
    tap_means(gm, plane, 1, m);
    free(plane);
    return QD_OK;
}

static int analytic(qd_sim *s, layer *L, int nl, qd_err *e)
{
    const qd_graph *g = qd_sim_graph(s);
    qd_sim_set_fp32(s, 0);
    qd_sim_apply(s); /* the graph holds the simulated weights */
    int rc = QD_OK;
    for (int k = 0; k < nl; k++) {
        layer *l = &L[k];
        if (l->why)
            continue;
        const qd_node *nd = &g->nodes[l->node];
        const qd_tensor *wf = qd_sim_fp32(s, l->wv), *wq = g->values[l->wv].init;
        geom gm;
        if (geom_weight(nd, wf, &gm, e)) {
            rc = e->code;
            break;
        }
        double *ex = NULL, *m = NULL, *mf = NULL, *mq = NULL;
        int flat;
        int64_t c = input_expectation(g, nd, &ex, &flat, &l->why);
        if (c < 0)
            rc = qd_errf(e, QD_EFAIL, "out of memory");
        else if (c > 0 && !(gm.c == c || (gm.gemm && flat && gm.c % c == 0)))
            l->why = "its input's BatchNormalization has another channel count";
        int64_t ntap = gm.c * gm.kh * gm.kw;
        if (!l->why && !rc) {
            m = malloc((size_t)ntap * sizeof *m);
            mf = malloc((size_t)gm.co * sizeof *mf);
            mq = malloc((size_t)gm.co * sizeof *mq);
            if (!m || !mf || !mq)
                rc = qd_errf(e, QD_EFAIL, "out of memory");
        }
        if (!l->why && !rc) {
            /* each tap sees E[x] of its channel, where it reads inside the
             * input: padding is counted when the input's size is known from
             * the last run (calibration), else ignored */
            const qd_tensor *xt = gm.gemm ? NULL : qd_exec_value(qd_sim_exec(s), nd->in[0]);
            qd_err ge = {0};
            int64_t per = gm.c / c;
            if (xt && xt->ndim >= 3 && geom_input(nd, xt->ndim, xt->shape + 1, &gm, &ge) == 0) {
                rc = padded_taps(&gm, ex, m, e);
            } else {
                for (int64_t t = 0; t < ntap; t++)
                    m[t] = gm.gemm ? ex[t / per] : ex[t / (gm.kh * gm.kw)];
            }
        }
        if (!l->why && !rc) {
            wx_from_taps(&gm, m, wf->data, mf);
            wx_from_taps(&gm, m, wq->data, mq);
            for (int64_t o = 0; o < gm.co; o++)
                mf[o] -= mq[o];
            shift_bias(s, l, mf);
        }
        free(ex);
        free(m);
        free(mf);
        free(mq);
        if (rc)
            break;
    }
    qd_sim_params_changed(s);
    return rc;
}

/* ------------------------------------------------------------ entry */

void qd_bc_report_free(qd_bc_report *r)
{
    if (!r)
        return;
    free(r->per_layer);
    memset(r, 0, sizeof *r);
}

int qd_bias_correct(qd_sim *s, qd_bc_mode mode, qd_dataset *d, int64_t nimages, int64_t batch, qd_bc_report *r,
                    qd_err *e)
{
    qd_bc_report local;
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    double t0 = qd_now_ms();
    layer *L = NULL;
    int nl = 0;
    int rc = find_layers(s, &L, &nl, e);
    if (rc)
        return rc;
    if (mode == QD_BC_EMPIRICAL)
        rc = empirical(s, L, nl, d, nimages, batch > 0 ? batch : 32, r, e);
    else if (mode == QD_BC_ANALYTIC)
        rc = analytic(s, L, nl, e);
    else
        rc = qd_errf(e, QD_EINPUT, "unknown bias correction mode %d", (int)mode);
    r->per_layer = calloc((size_t)nl + 1, sizeof *r->per_layer);
    if (!r->per_layer) {
        rc = rc ? rc : qd_errf(e, QD_EFAIL, "out of memory");
    } else {
        for (int k = 0; k < nl; k++) {
            qd_bc_layer *o = &r->per_layer[r->n++];
            o->node = L[k].node;
            o->corrected = L[k].done;
            o->why = L[k].done ? NULL : L[k].why ? L[k].why : "not reached";
            o->mean_abs_shift = L[k].mean_abs;
            o->max_abs_shift = L[k].max_abs;
            r->layers += o->corrected;
            r->skipped += !o->corrected;
        }
    }
    free(L);
    r->seconds = (qd_now_ms() - t0) / 1e3;
    if (r == &local)
        qd_bc_report_free(r);
    return rc;
}
