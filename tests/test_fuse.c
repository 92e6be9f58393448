/* test_fuse.c - qd_graph_fuse: the rewrites happen where they may, not where
 * they may not, and the fused graph computes what the original computes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fuse.h"
#include "harness.h"
#include "npy.h"

#define MODEL "tests/data/fuse.onnx"

static int find_node(const qd_graph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

/* Run g on x; copy output i into out. */
static int run(const qd_graph *g, const qd_tensor *x, int i, qd_tensor *out)
{
    qd_err e = {0};
    qd_exec *ex = qd_exec_new(g, 2, &e);
    int rc = ex ? qd_exec_run(ex, x, 1, &e) : 1;
    if (!rc)
        rc = qd_tensor_copy(out, qd_exec_output(ex, i), &e);
    if (rc)
        fprintf(stderr, "run: %s\n", e.msg);
    qd_exec_free(ex);
    return rc;
}

/* Max |a - b| over max |a| for output o of two graphs on x. */
static double rel_diff(const qd_graph *g0, const qd_graph *g1, const qd_tensor *x, int o)
{
    qd_tensor y0 = {0}, y1 = {0};
    double md = INFINITY, mr = 0;
    if (run(g0, x, o, &y0) == 0 && run(g1, x, o, &y1) == 0 && qd_tensor_numel(&y0) == qd_tensor_numel(&y1)) {
        md = 0;
        const float *p = y0.data, *q = y1.data;
        for (int64_t i = 0; i < qd_tensor_numel(&y0); i++) {
            md = fmax(md, fabs((double)p[i] - q[i]));
            mr = fmax(mr, fabs((double)p[i]));
        }
    }
    qd_tensor_free(&y0);
    qd_tensor_free(&y1);
    return mr > 0 ? md / mr : md;
}

/* BatchNormalizations that do not follow a Conv: Gemm -> BN folds back,
 * BN -> Conv (no padding) and BN -> Gemm fold forward, BN -> padded Conv
 * stays. */
static void test_bn_forward(void)
{
    const char *path = "tests/data/bn_forward.onnx";
    qd_err e = {0};
    qd_graph *ref = qd_graph_load(path, &e), *g = qd_graph_load(path, &e);
    qd_tensor x = {0};
    ok(ref && g && qd_npy_read("tests/data/bn_forward_in.npy", &x, &e) == 0, "load %s: %s", path, e.msg);
    if (!ref || !g || e.code)
        return;
    qd_fuse_stats st;
    ok(qd_graph_fuse_ex(g, QD_FUSE_BN, NULL, &st, &e) == 0, "fuse: %s", e.msg);
    ok(st.bn_folded == 4 && st.act_fused == 0, "4 BNs folded (p, r forward; s back; t forward), got %d", st.bn_folded);
    ok(find_node(g, "q_bnorm") >= 0, "BN before a padded Conv stays");
    ok(find_node(g, "p_bnorm") < 0 && find_node(g, "r_bnorm") < 0 && find_node(g, "s_bnorm") < 0 &&
           find_node(g, "t_bnorm") < 0, "the other BNs are gone");
    int r = find_node(g, "r_conv");
    ok(r >= 0 && g->nodes[r].nin == 3, "grouped conv without bias got one");
    for (int o = 0; o < 5; o++) {
        double d = rel_diff(ref, g, &x, o);
        ok(d <= 2e-6, "output %d: folded vs original relative max diff %.3g", o, d);
    }
    /* a kept value blocks the fold that would absorb it */
    qd_graph *k = qd_graph_load(path, &e);
    if (k) {
        unsigned char *keep = calloc((size_t)k->nvalues, 1);
        int v = qd_graph_find_value(k, "s_mm");
        if (keep && v >= 0)
            keep[v] = 1;
        ok(qd_graph_fuse_ex(k, QD_FUSE_BN, keep, &st, &e) == 0 && st.bn_folded == 3 &&
               find_node(k, "s_bnorm") >= 0, "keep[s_mm] leaves s's BN: %d folded", st.bn_folded);
        free(keep);
        qd_graph_free(k);
    }
    qd_tensor_free(&x);
    qd_graph_free(ref);
    qd_graph_free(g);
}

/* ResNet-18 as PyTorch exports it: three downsample BNs read their
 * parameters through Identity nodes; all 20 fold and the output stays. */
static void test_identity_params(void)
{
    qd_err e = {0};
    qd_graph *ref = qd_graph_load("models/resnet18.onnx", &e), *g = qd_graph_load("models/resnet18.onnx", &e);
    ok(ref && g, "load resnet18: %s", e.msg);
    if (!ref || !g)
        goto out;
    qd_fuse_stats st;
    ok(qd_graph_fuse_ex(g, QD_FUSE_BN, NULL, &st, &e) == 0, "fuse: %s", e.msg);
    int bns = 0;
    for (int i = 0; i < g->nnodes; i++)
        bns += !strcmp(g->nodes[i].op_type, "BatchNormalization");
    ok(bns == 0 && st.bn_folded == 20 && st.removed_identity > 0, "resnet18: %d BNs folded, %d left, %d Identity bypassed",
       st.bn_folded, bns, st.removed_identity);
    qd_tensor x = {0};
    int64_t shape[4] = {2, 1, 28, 28};
    qd_tensor_resize(&x, QD_F32, 4, shape, &e);
    for (int i = 0; i < 2 * 784; i++)
        ((float *)x.data)[i] = (float)((i * 37) % 101) / 100.0f;
    double d = rel_diff(ref, g, &x, 0);
    ok(d <= 1e-5, "resnet18 folded = original (rel diff %.3g)", d);
    qd_tensor_free(&x);
out:
    qd_graph_free(ref);
    qd_graph_free(g);
}

int main(void)
{
    test_bn_forward();
    test_identity_params();

    qd_err e = {0};
    qd_graph *ref = qd_graph_load(MODEL, &e), *g = qd_graph_load(MODEL, &e);
    qd_tensor x = {0};
    ok(ref && g, "load %s: %s", MODEL, e.msg);
    ok(qd_npy_read("tests/data/fuse_in.npy", &x, &e) == 0, "input: %s", e.msg);
    if (!ref || !g || e.code)
        return th_summary();
    int before = g->nnodes;
    qd_fuse_stats st;
    ok(qd_graph_fuse(g, &st, &e) == 0, "fuse: %s", e.msg);
    ok(st.bn_folded == 3, "3 BNs folded (a, b, d), got %d", st.bn_folded);
    ok(st.act_fused == 2, "2 activations fused (a relu, b clip), got %d", st.act_fused);
    ok(g->nnodes == before - 5 && st.removed == 5, "5 nodes removed: %d -> %d", before, g->nnodes);
    ok(find_node(g, "c_relu") >= 0 && find_node(g, "c_add") >= 0, "c's Relu stays: its input has two readers");
    ok(find_node(g, "d_relu") >= 0, "d's Relu stays: d_bn is a graph output");
    int a = find_node(g, "a_conv"), b = find_node(g, "b_conv");
    ok(a >= 0 && g->nodes[a].fused_clip && g->nodes[a].clip_lo == 0 && isinf(g->nodes[a].clip_hi),
       "a_conv clamps to [0, inf)");
    ok(b >= 0 && g->nodes[b].fused_clip && g->nodes[b].clip_lo == 0 && g->nodes[b].clip_hi == 6,
       "b_conv clamps to [0, 6]");
    ok(b >= 0 && g->nodes[b].nin == 3, "b_conv got a bias input");
    /* the folded BN's statistics stay on the Conv: mean beta, std |gamma| */
    int bnb = find_node(ref, "b_bnorm");
    if (b >= 0 && bnb >= 0) {
        const qd_node *n = &g->nodes[b];
        const qd_tensor *gam = qd_node_const_input(ref, &ref->nodes[bnb], 1),
                        *bet = qd_node_const_input(ref, &ref->nodes[bnb], 2);
        int same = n->bn_mean && gam && bet && n->bn_nch == qd_tensor_numel(gam);
        for (int64_t c = 0; same && c < n->bn_nch; c++)
            same = n->bn_mean[c] == ((const float *)bet->data)[c] &&
                   n->bn_mean[n->bn_nch + c] == fabsf(((const float *)gam->data)[c]);
        ok(same, "b_conv keeps b_bnorm's beta and |gamma| (%lld channels)", (long long)n->bn_nch);
    } else {
        ok(0, "b_conv and b_bnorm exist");
    }
    ok(a >= 0 && g->nodes[a].bn_mean != NULL, "a_conv has BN statistics");
    if (a >= 0)
        ok(strcmp(g->values[g->nodes[a].out[0]].name, "a_r") == 0, "a_conv writes the Relu's output name");
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nout; j++)
            ok(g->values[g->nodes[i].out[j]].producer == i, "producer of %s renumbered", g->nodes[i].name);

    /* same numbers, both outputs */
    for (int o = 0; o < 2; o++) {
        qd_tensor y0 = {0}, y1 = {0};
        if (run(ref, &x, o, &y0) == 0 && run(g, &x, o, &y1) == 0) {
            ok(y0.ndim == y1.ndim && qd_tensor_numel(&y0) == qd_tensor_numel(&y1), "output %d shape", o);
            double md = 0, mr = 0;
            const float *p = y0.data, *q = y1.data;
            for (int64_t i = 0; i < qd_tensor_numel(&y0); i++) {
                md = fmax(md, fabs((double)p[i] - q[i]));
                mr = fmax(mr, fabs((double)p[i]));
            }
            ok(md <= 1e-5 * mr, "output %d: fused vs original max diff %.3g (max %.3g)", o, md, mr);
        } else {
            ok(0, "output %d ran", o);
        }
        qd_tensor_free(&y0);
        qd_tensor_free(&y1);
    }
    /* fusing twice changes nothing more */
    ok(qd_graph_fuse(g, &st, &e) == 0 && st.removed == 0, "second fuse is a no-op");
    qd_tensor_free(&x);
    qd_graph_free(ref);
    qd_graph_free(g);
    return th_summary();
}
