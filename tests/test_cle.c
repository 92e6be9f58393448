/* test_cle.c - qd_cle: the equalized graph computes what the original did,
 * ranges are balanced across each pair and triplet, high-bias absorption
 * follows its formula, and what cannot be equalized is named with a reason.
 * On tests/data/cle.onnx (tests/models/make_cle.py) and the bundled models. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cle.h"
#include "data.h"
#include "exec.h"
#include "fuse.h"
#include "harness.h"

#define FIXTURE "tests/data/cle.onnx"
#define NIMG 64

static const qd_node *node_named(const qd_graph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return &g->nodes[i];
    return NULL;
}

static const qd_cle_layer *layer_named(const qd_cle_report *r, const char *name)
{
    for (int i = 0; i < r->nlayers; i++)
        if (strcmp(r->layers[i].name, name) == 0)
            return &r->layers[i];
    return NULL;
}

/* The skipped line of node, which must contain why; NULL if none. */
static const char *skipped_line(const qd_cle_report *r, const char *node, const char *why)
{
    size_t n = strlen(node);
    for (int i = 0; i < r->nskipped; i++)
        if (strncmp(r->skipped[i], node, n) == 0 && r->skipped[i][n] == ':' && strstr(r->skipped[i] + n, why))
            return r->skipped[i];
    return NULL;
}

/* Run g on x into y (y owns its copy of output 0). */
static int run(const qd_graph *g, const qd_tensor *x, qd_tensor *y)
{
    qd_err e = {0};
    qd_exec *ex = qd_exec_new(g, 2, &e);
    int rc = ex ? qd_exec_run(ex, x, 1, &e) : 1;
    if (!rc)
        rc = qd_tensor_copy(y, qd_exec_output(ex, 0), &e);
    if (rc)
        fprintf(stderr, "run: %s\n", e.msg);
    qd_exec_free(ex);
    return rc;
}

/* Output 0 of g0 and g1 on x: max |y0 - y1| / max |y0| (INFINITY when a run
 * fails), and the share of rows (of 10 logits) whose argmax agrees. */
static double rel_diff(const qd_graph *g0, const qd_graph *g1, const qd_tensor *x, double *top1)
{
    qd_tensor y0 = {0}, y1 = {0};
    double md = INFINITY, my = 0;
    if (run(g0, x, &y0) == 0 && run(g1, x, &y1) == 0 && qd_tensor_numel(&y0) == qd_tensor_numel(&y1)) {
        const float *p = y0.data, *q = y1.data;
        int64_t n = qd_tensor_numel(&y0), rows = n / 10, agree = 0;
        md = 0;
        for (int64_t i = 0; i < n; i++) {
            md = fmax(md, fabs((double)p[i] - q[i]));
            my = fmax(my, fabs((double)p[i]));
        }
        for (int64_t r = 0; r < rows; r++) {
            int a = 0, b = 0;
            for (int c = 1; c < 10; c++) {
                a = p[r * 10 + c] > p[r * 10 + a] ? c : a;
                b = q[r * 10 + c] > q[r * 10 + b] ? c : b;
            }
            agree += a == b;
        }
        if (top1)
            *top1 = rows ? (double)agree / rows : 0;
    }
    qd_tensor_free(&y0);
    qd_tensor_free(&y1);
    return my > 0 ? md / my : md;
}

/* Every float constant and BN statistic of g is finite. */
static int all_finite(const qd_graph *g)
{
    for (int v = 0; v < g->nvalues; v++) {
        const qd_tensor *t = g->values[v].init;
        if (!t || t->dtype != QD_F32)
            continue;
        for (int64_t i = 0; i < qd_tensor_numel(t); i++)
            if (!isfinite(((const float *)t->data)[i]))
                return 0;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int64_t c = 0; g->nodes[i].bn_mean && c < 2 * g->nodes[i].bn_nch; c++)
            if (!isfinite(g->nodes[i].bn_mean[c]))
                return 0;
    return 1;
}

/* Reference ranges of Conv/Gemm node n: r[c] = max |W| of output channel c
 * (out = 1) or over the weights reading input channel c (out = 0). */
static void ranges(const qd_graph *g, const qd_node *n, int out, double *r, int64_t nr)
{
    const qd_tensor *w = qd_node_const_input(g, n, 1);
    const float *W = w->data;
    for (int64_t c = 0; c < nr; c++)
        r[c] = 0;
    if (strcmp(n->op_type, "Gemm") == 0) {
        int tb = (int)qd_attr_int(n, "transB", 0);
        for (int64_t i = 0; i < w->shape[0]; i++)
            for (int64_t j = 0; j < w->shape[1]; j++) {
                int64_t c = out == tb ? i : j; /* W (co, ci) when transB, else (ci, co) */
                r[c] = fmax(r[c], fabsf(W[i * w->shape[1] + j]));
            }
        return;
    }
    int64_t co = w->shape[0], cip = w->shape[1], ksz = qd_tensor_numel(w) / (co * cip),
            grp = qd_attr_int(n, "group", 1);
    for (int64_t o = 0; o < co; o++)
        for (int64_t j = 0; j < cip; j++)
            for (int64_t t = 0; t < ksz; t++) {
                int64_t c = out ? o : o / (co / grp) * cip + j;
                r[c] = fmax(r[c], fabsf(W[(o * cip + j) * ksz + t]));
            }
}

/* Largest relative disagreement between the ranges of each set's layers
 * on a channel where none is zero: r1 vs r2 for pairs, r1, rd, r3 for
 * triplets. */
static double worst_imbalance(const qd_graph *g, const qd_cle_report *r)
{
    double worst = 0;
    for (int k = 0; k < r->nsets; k++) {
        const qd_cle_set *s = &r->sets[k];
        const qd_cle_layer *a = &r->layers[s->layer[0]], *z = &r->layers[s->layer[s->n - 1]];
        int64_t n = a->nch;
        double *r1 = malloc(3 * (size_t)n * sizeof *r1), *rd = r1 + n, *r3 = r1 + 2 * n;
        if (!r1)
            return INFINITY;
        ranges(g, &g->nodes[a->node], 1, r1, n);
        ranges(g, &g->nodes[z->node], 0, r3, n);
        if (s->n == 3)
            ranges(g, &g->nodes[r->layers[s->layer[1]].node], 1, rd, n);
        for (int64_t c = 0; c < n; c++) {
            double lo = fmin(r1[c], r3[c]), hi = fmax(r1[c], r3[c]);
            if (s->n == 3)
                lo = fmin(lo, rd[c]), hi = fmax(hi, rd[c]);
            if (lo > 0)
                worst = fmax(worst, (hi - lo) / hi);
        }
        free(r1);
    }
    return worst;
}

/* A seeded N(0, 1)-ish input of n x 3 x 8 x 8 for the fixture. */
static void fixture_input(qd_tensor *x, int64_t n)
{
    qd_err e = {0};
    int64_t shape[4] = {n, 3, 8, 8};
    if (qd_tensor_resize(x, QD_F32, 4, shape, &e))
        return;
    uint64_t s = 12345;
    float *p = x->data;
    for (int64_t i = 0; i < qd_tensor_numel(x); i++) {
        double u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(s >> 11) / 9007199254740992.0;
        }
        p[i] = (float)((u - 2) * 1.7);
    }
}

static const char *FIXTURE_SKIPS[][2] = {
    {"e_grp", "grouped convolution"}, {"f_conv", "followed by Add 'f_add'"},
    {"g1_conv", "Concat"},            {"g2_conv", "followed by Concat 'cat'"},
    {"k_conv", "ReLU6"},              {"h_conv", "Clip 'h_clip' (-1, 1), not positively homogeneous"},
};

/* relu6_to_relu = 0, hba = 0: exact; sets, skips, zero channels, balance. */
static void test_fixture_exact(const qd_tensor *x)
{
    qd_err e = {0};
    qd_graph *ref = qd_graph_load(FIXTURE, &e), *g = qd_graph_load(FIXTURE, &e);
    ok(ref && g, "load %s: %s", FIXTURE, e.msg);
    if (!ref || !g)
        goto out;
    qd_cle_opts o = {.relu6_to_relu = 0, .hba = 0};
    qd_cle_report r;
    ok(qd_cle(g, &o, &r, &e) == 0, "cle: %s", e.msg);
    ok(r.bn_folded == 7, "7 BNs folded, got %d", r.bn_folded);
    ok(r.pairs == 4 && r.triplets == 1, "4 pairs (a-b, m-n, n-o, p-q), 1 triplet (b-c-d): %d, %d", r.pairs,
       r.triplets);
    ok(r.nsets == 5 && r.sets[1].n == 3 && !strcmp(r.layers[r.sets[1].layer[1]].name, "c_dw"),
       "the triplet's middle layer is c_dw");
    ok(r.relu6_replaced == 0 && r.hba_absorbed == 0, "no ReLU6 replaced, no HBA");
    ok(r.converged && r.iterations > 1 && r.iterations < 100, "converged after %d passes (last |ln s| %.2g)",
       r.iterations, r.last_change);
    ok(r.nlayers == 15, "15 Conv/Gemm layers, got %d", r.nlayers);
    int nskip = (int)(sizeof FIXTURE_SKIPS / sizeof FIXTURE_SKIPS[0]);
    for (int i = 0; i < nskip; i++) {
        const char *s = skipped_line(&r, FIXTURE_SKIPS[i][0], FIXTURE_SKIPS[i][1]);
        ok(s != NULL, "skipped: %s (%s)", FIXTURE_SKIPS[i][0], FIXTURE_SKIPS[i][1]);
    }
    ok(r.nskipped == nskip, "%d skipped lines, got %d", nskip, r.nskipped);
    ok(!skipped_line(&r, "d_conv", "") && !skipped_line(&r, "o_conv", ""),
       "d_conv and o_conv (ends of chains, followed by a grouped conv and a Clip(-1, 1)) are not skipped");
    const qd_node *kc = node_named(g, "k_clip");
    ok(kc && strcmp(kc->op_type, "Clip") == 0, "k_clip stays a Clip");
    double top1, diff = rel_diff(ref, g, x, &top1);
    ok(diff <= 1e-5, "equalized vs original: relative max diff %.3g", diff);
    ok(all_finite(g), "no NaN/Inf in weights, biases, BN statistics");
    const qd_cle_layer *a = layer_named(&r, "a_conv"), *b = layer_named(&r, "b_conv");
    ok(a && a->nch == 8 && a->range_before[2] == 0 && a->range_after[2] == 0,
       "a_conv's all-zero channel 2 stays zero");
    double rin[8];
    if (b) {
        ranges(g, &g->nodes[b->node], 0, rin, 8);
        ok(rin[5] == 0, "b_conv's unread input channel 5 stays zero");
        ok(b->range_after[5] > 0 && isfinite(b->range_after[5]), "b_conv's output channel 5 is finite: %g",
           b->range_after[5]);
    }
    double imb = worst_imbalance(g, &r);
    ok(imb <= 1e-4, "every set's ranges equal per channel after convergence: worst relative gap %.3g", imb);
    double lb = 0, la = 0;
    int neq = 0;
    for (int i = 0; i < r.nlayers; i++) {
        const qd_cle_layer *l = &r.layers[i];
        ok(l->equalized == (skipped_line(&r, l->name, "") == NULL), "%s: equalized flag matches the skip list",
           l->name);
        if (l->equalized) {
            neq++;
            lb += log(l->spread_before);
            la += log(l->spread_after);
        }
    }
    ok(la < lb, "equalized layers' spreads shrink: geometric mean %.1f -> %.1f (a_conv %.1f -> %.1f)",
       exp(lb / neq), exp(la / neq), a ? a->spread_before : 0, a ? a->spread_after : 0);
    /* equalizing again finds nothing to do */
    qd_cle_report r2;
    ok(qd_cle(g, &o, &r2, &e) == 0 && r2.bn_folded == 0 && r2.converged && r2.iterations == 1,
       "second qd_cle: converged in %d pass (|ln s| %.2g)", r2.iterations, r2.last_change);
    qd_cle_report_free(&r2);
    qd_cle_report_free(&r);
    qd_cle_report_free(&r); /* twice is harmless */
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* max_iter = 1: the last set of each chain is exactly balanced. */
static void test_fixture_one_pass(const qd_tensor *x)
{
    qd_err e = {0};
    qd_graph *ref = qd_graph_load(FIXTURE, &e), *g = qd_graph_load(FIXTURE, &e);
    if (!ref || !g) {
        ok(0, "load: %s", e.msg);
        goto out;
    }
    qd_cle_opts o = {.relu6_to_relu = 0, .hba = 0, .max_iter = 1};
    qd_cle_report r;
    ok(qd_cle(g, &o, &r, &e) == 0 && r.iterations == 1 && !r.converged, "one pass: %s", e.msg);
    const qd_cle_layer *p = layer_named(&r, "p_fc"), *q = layer_named(&r, "q_fc");
    if (p && q) {
        double r1[16], r2[16], bef = 0, worst = 0;
        ranges(g, &g->nodes[p->node], 1, r1, 16);
        ranges(g, &g->nodes[q->node], 0, r2, 16);
        for (int c = 0; c < 16; c++) {
            worst = fmax(worst, fabs(r1[c] - r2[c]) / fmax(r1[c], r2[c]));
            bef = fmax(bef, p->range_before[c]);
        }
        ok(worst <= 1e-6, "pair p_fc -> q_fc (Gemm, transB 1 then 0) balanced after one step: gap %.2g", worst);
        ok(p->spread_after < p->spread_before, "p_fc spread %.1f -> %.1f", p->spread_before, p->spread_after);
    } else {
        ok(0, "p_fc and q_fc are layers");
    }
    double diff = rel_diff(ref, g, x, NULL);
    ok(diff <= 1e-5, "one pass: relative max diff %.3g", diff);
    qd_cle_report_free(&r);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* The bias of node n (zeros when it has none) into b. */
static void bias_of(const qd_graph *g, const qd_node *n, float *b, int64_t co)
{
    const qd_tensor *t = qd_node_const_input(g, n, 2);
    for (int64_t c = 0; c < co; c++)
        b[c] = t ? ((const float *)t->data)[c] : 0;
}

/* hba = 1 against hba = 0: the bias changes are -c and W2 c per link. */
static void test_fixture_hba(const qd_tensor *x)
{
    qd_err e = {0};
    qd_graph *g0 = qd_graph_load(FIXTURE, &e), *g1 = qd_graph_load(FIXTURE, &e);
    if (!g0 || !g1) {
        ok(0, "load: %s", e.msg);
        goto out;
    }
    qd_cle_opts o0 = {.relu6_to_relu = 0, .hba = 0}, o1 = {.relu6_to_relu = 0, .hba = 1};
    qd_cle_report r0, r1;
    int rc = qd_cle(g0, &o0, &r0, &e) | qd_cle(g1, &o1, &r1, &e);
    ok(rc == 0, "cle: %s", e.msg);
    /* links with a Relu after a BN'd layer: a -> b, c -> d (in the triplet), m -> n */
    static const char *links[][2] = {{"a_conv", "b_conv"}, {"c_dw", "d_conv"}, {"m_conv", "n_conv"}};
    int nabs = 0;
    for (int k = 0; k < 3; k++) {
        const qd_node *a0 = node_named(g0, links[k][0]), *a1 = node_named(g1, links[k][0]),
                      *b0 = node_named(g0, links[k][1]), *b1 = node_named(g1, links[k][1]);
        if (!a0 || !a1 || !b0 || !b1 || !a0->bn_mean || a0->bn_nch != 8) {
            ok(0, "link %s -> %s with BN statistics", links[k][0], links[k][1]);
            continue;
        }
        float ba0[8], ba1[8], bb0[8], bb1[8];
        double c[8], da = 0, db = 0, dbeta = 0;
        int n = 0;
        bias_of(g0, a0, ba0, 8);
        bias_of(g1, a1, ba1, 8);
        bias_of(g0, b0, bb0, 8);
        bias_of(g1, b1, bb1, 8);
        for (int i = 0; i < 8; i++) {
            c[i] = fmax(0, (double)a0->bn_mean[i] - 3.0 * a0->bn_mean[8 + i]);
            n += c[i] > 0;
            da = fmax(da, fabs((ba0[i] - c[i]) - ba1[i]));
            dbeta = fmax(dbeta, fabs((a0->bn_mean[i] - c[i]) - a1->bn_mean[i]));
        }
        const qd_tensor *w = qd_node_const_input(g0, b0, 1);
        int64_t cip = w->shape[1], ksz = qd_tensor_numel(w) / (8 * cip);
        for (int o = 0; o < 8; o++) {
            double acc = bb0[o];
            for (int64_t j = 0; j < cip; j++)
                for (int64_t t = 0; t < ksz; t++)
                    acc += ((const float *)w->data)[(o * cip + j) * ksz + t] * c[cip == 1 ? o : j];
            db = fmax(db, fabs(acc - bb1[o]) / fmax(1, fabs(acc)));
        }
        ok(n > 0, "%s: %d channels with beta - 3|gamma| > 0", links[k][0], n);
        ok(da <= 1e-5 && dbeta <= 1e-5, "%s: bias and beta lowered by c (max err %.2g, %.2g)", links[k][0], da,
           dbeta);
        ok(db <= 1e-5, "%s: bias of %s raised by W2 c (max rel err %.2g)", links[k][0], links[k][1], db);
        nabs += n;
    }
    ok(r1.hba_absorbed == nabs, "hba_absorbed %d = %d channels over the three links", r1.hba_absorbed, nabs);
    ok(all_finite(g1), "HBA: no NaN/Inf");
    double diff = rel_diff(g0, g1, x, NULL);
    ok(isfinite(diff) && diff < 0.5, "HBA changes the output by %.3g relative (approximation: padding, x < c)",
       diff);
    qd_cle_report_free(&r0);
    qd_cle_report_free(&r1);
out:
    qd_graph_free(g0);
    qd_graph_free(g1);
}

/* relu6_to_relu = 1: k_clip becomes Relu and k -> m joins the chain; the
 * result computes what cle_relu.onnx (k_clip a Relu) computes. */
static void test_fixture_relu6(const qd_tensor *x)
{
    qd_err e = {0};
    qd_graph *ref = qd_graph_load("tests/data/cle_relu.onnx", &e), *g = qd_graph_load(FIXTURE, &e);
    if (!ref || !g) {
        ok(0, "load: %s", e.msg);
        goto out;
    }
    qd_cle_opts o = {.relu6_to_relu = 1, .hba = 0};
    qd_cle_report r;
    ok(qd_cle(g, &o, &r, &e) == 0, "cle: %s", e.msg);
    ok(r.relu6_replaced == 1 && r.pairs == 5 && r.triplets == 1, "1 ReLU6 replaced, 5 pairs, 1 triplet: %d %d %d",
       r.relu6_replaced, r.pairs, r.triplets);
    const qd_node *kc = node_named(g, "k_clip");
    ok(kc && strcmp(kc->op_type, "Relu") == 0 && kc->nin == 1 && kc->op, "k_clip is now a Relu of one input");
    ok(!skipped_line(&r, "k_conv", "") && r.nskipped == 5, "k_conv equalized; 5 skipped, got %d", r.nskipped);
    double diff = rel_diff(ref, g, x, NULL);
    ok(diff <= 1e-5, "equal to the Relu variant: relative max diff %.3g", diff);
    qd_cle_report_free(&r);
    /* opts NULL: the defaults (ReLU6 replaced, HBA) and no report */
    qd_graph *h = qd_graph_load(FIXTURE, &e);
    ok(h && qd_cle(h, NULL, NULL, &e) == 0 && strcmp(node_named(h, "k_clip")->op_type, "Relu") == 0,
       "defaults replace ReLU6: %s", e.msg);
    qd_graph_free(h);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* On a graph whose activations qd_graph_fuse already moved into the Convs:
 * fused clamps are activations too, and a fused ReLU6 is opened to [0, inf). */
static void test_fixture_fused(const qd_tensor *x)
{
    qd_err e = {0};
    qd_graph *ref = qd_graph_load("tests/data/cle_relu.onnx", &e), *g = qd_graph_load(FIXTURE, &e);
    if (!ref || !g) {
        ok(0, "load: %s", e.msg);
        goto out;
    }
    qd_fuse_stats st;
    ok(qd_graph_fuse(g, &st, &e) == 0 && st.act_fused == 10, "fuse: %d activations into Convs %s", st.act_fused,
       e.msg);
    qd_cle_opts o = {.relu6_to_relu = 1, .hba = 0};
    qd_cle_report r;
    ok(qd_cle(g, &o, &r, &e) == 0, "cle: %s", e.msg);
    ok(r.bn_folded == 0 && r.pairs == 5 && r.triplets == 1 && r.relu6_replaced == 1,
       "fused graph: %d pairs, %d triplets, %d ReLU6 replaced", r.pairs, r.triplets, r.relu6_replaced);
    const qd_node *k = node_named(g, "k_conv");
    ok(k && k->fused_clip && k->clip_lo == 0 && isinf(k->clip_hi), "k_conv's fused ReLU6 clamps to [0, inf)");
    ok(skipped_line(&r, "h_conv", "fused clamp [-1, 1]") != NULL, "h_conv: its fused Clip(-1, 1) is named");
    double diff = rel_diff(ref, g, x, NULL);
    ok(diff <= 1e-5, "fused + equalized vs the Relu variant: relative max diff %.3g", diff);
    qd_cle_report_free(&r);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* The first NIMG Fashion-MNIST test images. */
static int images(qd_tensor *x)
{
    qd_err e = {0};
    qd_dataset *d = qd_data_open("fashion-mnist", NULL, &e);
    int rc = d ? qd_data_batch(d, 0, NIMG, x, NULL, &e) : 1;
    if (rc)
        fprintf(stderr, "data: %s\n", e.msg);
    qd_data_free(d);
    return rc;
}

/* Largest spread of the equalized layers (depthwise ones only when dw). */
static void worst_spread(const qd_cle_report *r, int dw, double *before, double *after, const char **name)
{
    *before = *after = 0;
    *name = "-";
    for (int i = 0; i < r->nlayers; i++) {
        const qd_cle_layer *l = &r->layers[i];
        if (!l->equalized || (dw && !l->depthwise))
            continue;
        if (l->spread_before > *before)
            *before = l->spread_before, *name = l->name;
        *after = fmax(*after, l->spread_after);
    }
}

/* A bundled model: exact without ReLU6 replacement or HBA. */
static void test_model(const char *arch, const qd_tensor *x, int pairs, int triplets)
{
    char path[128];
    snprintf(path, sizeof path, "models/%s.onnx", arch);
    qd_err e = {0};
    qd_graph *ref = qd_graph_load(path, &e), *g = qd_graph_load(path, &e);
    if (!ref || !g) {
        ok(0, "load %s: %s", path, e.msg);
        goto out;
    }
    qd_cle_opts o = {.relu6_to_relu = 0, .hba = 0};
    qd_cle_report r;
    ok(qd_cle(g, &o, &r, &e) == 0, "%s: cle: %s", arch, e.msg);
    ok(r.pairs == pairs && r.triplets == triplets, "%s: %d pairs, %d triplets (expected %d, %d), %d skipped", arch,
       r.pairs, r.triplets, pairs, triplets, r.nskipped);
    ok(r.converged, "%s: converged in %d passes", arch, r.iterations);
    double top1, diff = rel_diff(ref, g, x, &top1);
    ok(diff <= 1e-5, "%s: equalized vs original on %d images: relative max diff %.3g", arch, NIMG, diff);
    ok(all_finite(g), "%s: no NaN/Inf", arch);
    double imb = worst_imbalance(g, &r);
    ok(imb <= 1e-4, "%s: sets balanced per channel, worst gap %.3g", arch, imb);
    double b, a;
    const char *n;
    worst_spread(&r, 0, &b, &a, &n);
    ok(r.nsets == 0 || a < b, "%s: worst spread of equalized layers %.1f (%s) -> %.1f", arch, b, n, a);
    if (strcmp(arch, "mobilenet_v2") == 0)
        ok(skipped_line(&r, "/2/features/features.1/conv/conv.0/conv.0.0/Conv", "ReLU6") &&
               skipped_line(&r, "/2/features/features.2/conv/conv.2/Conv", "output has 2 readers") &&
               skipped_line(&r, "/2/features/features.3/conv/conv.2/Conv", "followed by Add"),
           "%s: ReLU6, a residual's two readers and its Add named as reasons", arch);
    if (strcmp(arch, "resnet18") == 0)
        ok(r.nskipped == 4 && skipped_line(&r, "/2/fc/Gemm", "graph output"), "%s: 4 skipped, the last Gemm's "
           "output is a graph output", arch);
    qd_cle_report_free(&r);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* MobileNetV2 with ReLU6 replaced: the FP32 change, depthwise spreads, HBA. */
static void test_mobilenet_relu6(const qd_tensor *x)
{
    const char *path = "models/mobilenet_v2.onnx";
    qd_err e = {0};
    qd_graph *ref = qd_graph_load(path, &e), *g = qd_graph_load(path, &e), *h = qd_graph_load(path, &e);
    if (!ref || !g || !h) {
        ok(0, "load %s: %s", path, e.msg);
        goto out;
    }
    qd_cle_opts o = {.relu6_to_relu = 1, .hba = 0};
    qd_cle_report r, rh;
    ok(qd_cle(g, &o, &r, &e) == 0 && qd_cle(h, NULL, &rh, &e) == 0, "cle: %s", e.msg);
    ok(r.pairs == 3 && r.triplets == 17 && r.relu6_replaced == 34, "mobilenet_v2 relu6_to_relu: %d pairs, %d triplets, %d ReLU6 "
       "replaced, %d passes", r.pairs, r.triplets, r.relu6_replaced, r.iterations);
    ok(all_finite(g) && all_finite(h), "no NaN/Inf");
    double top1, diff = rel_diff(ref, g, x, &top1);
    ok(isfinite(diff), "ReLU6 -> Relu changes the logits by %.3g relative, top-1 agrees on %.1f%% of %d images",
       diff, 100 * top1, NIMG);
    double hdiff, htop1;
    hdiff = rel_diff(ref, h, x, &htop1);
    ok(isfinite(hdiff), "with HBA (%d channels): %.3g relative, top-1 agrees %.1f%%",
       rh.hba_absorbed, hdiff, 100 * htop1);
    double b, a;
    const char *n;
    worst_spread(&r, 1, &b, &a, &n);
    int shrunk = 0, ndw = 0;
    for (int i = 0; i < r.nlayers; i++)
        if (r.layers[i].depthwise && r.layers[i].equalized) {
            ndw++;
            shrunk += r.layers[i].spread_after < r.layers[i].spread_before;
        }
    ok(ndw == 17 && shrunk == ndw, "depthwise spreads shrink in %d of %d; worst %.1f (%s) -> %.1f", shrunk, ndw, b,
       n, a);
    ok(worst_imbalance(g, &r) <= 1e-4, "triplets balanced");
    qd_cle_report_free(&r);
    qd_cle_report_free(&rh);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
    qd_graph_free(h);
}

int main(void)
{
    qd_tensor fx = {0}, x = {0};
    fixture_input(&fx, 4);
    test_fixture_exact(&fx);
    test_fixture_one_pass(&fx);
    test_fixture_hba(&fx);
    test_fixture_relu6(&fx);
    test_fixture_fused(&fx);
    qd_cle_report_free(NULL);
    if (images(&x) == 0) {
        test_model("lenet", &x, 2, 0);
        test_model("resnet18", &x, 9, 0);
        test_model("mobilenet_v2", &x, 3, 0);
        test_model("shufflenet_v2", &x, 4, 16);
        test_mobilenet_relu6(&x);
    } else {
        ok(0, "Fashion-MNIST test images");
    }
    qd_tensor_free(&fx);
    qd_tensor_free(&x);
    return th_summary();
}
