/* test_adaround.c - AdaRound: the rectified sigmoid and its gradient, one
 * layer learned against nearest rounding (grid, floor/ceil only, encodings
 * kept), the reconstruction geometry of every Conv kind at 8 bits, accuracy
 * on LeNet at W4A8, and refused options and sims. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adaround.h"
#include "cpu.h"
#include "fixtures.h"
#include "harness.h"
#include "qeval.h"
#include "qjson.h"



static qd_sim *make_sim(const char *model, int wbits, int abits, int per_channel)
{
    return th_sim(model, (qd_sim_opts){.act_bits = abits, .param_bits = wbits, .per_channel = per_channel,
                                       .nthreads = 2});
}

/* Turn off every weight quantizer but the one on `keep` (a weight name). */
static int only_weight(qd_sim *s, const char *keep)
{
    qd_err e = {0};
    qd_override off = {.set = QD_OV_ENABLED, .enabled = 0};
    for (int i = 0; i < qd_sim_count(s); i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_PARAM && strcmp(q->name, keep) && qd_sim_override(s, q->name, &off, NULL, &e))
            return -1;
    }
    return qd_sim_find(s, keep);
}

/* ------------------------------------------------------------ h(V) */

static double h_ref(double v)
{
    double h = 1.1 * (1 / (1 + exp(-v))) - 0.1 * (1 - 1 / (1 + exp(-v)));
    return h < 0 ? 0 : h > 1 ? 1 : h;
}

static void test_rectified_sigmoid(void)
{
    enum { N = 4001 };
    static float v[N], h[N], dh[N];
    for (int i = 0; i < N; i++)
        v[i] = -10.0f + 20.0f * (float)i / (N - 1);
    qd_adaround_h(v, h, dh, N);
    double worst_h = 0, worst_d = 0;
    int flat_ok = 1, checked = 0;
    for (int i = 0; i < N; i++) {
        worst_h = fmax(worst_h, fabs(h[i] - h_ref(v[i])));
        /* central difference in double, away from the clip's kinks (h = 0, 1 at |v| = ln 23 = 3.135) */
        double eps = 1e-4, x = v[i];
        if (fabs(fabs(x) - log(23.0)) < 1e-2)
            continue;
        double fd = (h_ref(x + eps) - h_ref(x - eps)) / (2 * eps);
        worst_d = fmax(worst_d, fabs(dh[i] - fd));
        if (fabs(x) > log(23.0) && dh[i] != 0)
            flat_ok = 0;
        checked++;
    }
    ok(worst_h < 1e-6, "h(v) within 1e-6 of the double formula, worst %g", worst_h);
    ok(worst_d < 1e-5, "dh/dv within 1e-5 of central differences (%d points), worst %g", checked, worst_d);
    ok(flat_ok, "dh/dv is 0 where h is clipped to 0 or 1");
    float v0[3] = {0.0f, -40.0f, 40.0f}, h0[3];
    qd_adaround_h(v0, h0, NULL, 3);
    ok(h0[0] == 0.5f && h0[1] == 0.0f && h0[2] == 1.0f, "h(0) = 0.5, h(-40) = 0, h(40) = 1: %g %g %g", h0[0], h0[1],
       h0[2]);
}

/* ------------------------------------------------------------ one layer */

/* AdaRound one weight of LeNet alone and check what it wrote. */
static void test_one_layer(const char *weight, int per_channel)
{
    qd_sim *s = make_sim("models/lenet.onnx", 4, 8, per_channel);
    qd_dataset *d = th_data("fashion-mnist:train", 512, 3);
    qd_err e = {0};
    ok(s && d, "lenet sim and data");
    if (!s || !d)
        goto out;
    int qi = only_weight(s, weight);
    ok(qi >= 0, "quantizer on %s", weight);
    if (qi < 0)
        goto out;
    ok(qd_sim_calibrate(s, d, 64, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);
    qd_quantizer *q = qd_sim_get(s, qi);
    int nenc = q->nenc;
    ok(nenc == (per_channel ? q->nch : 1), "%s: %d encodings", weight, nenc);
    qd_encoding *enc0 = malloc((size_t)nenc * sizeof *enc0);
    qd_tensor w0 = {0};
    if (!enc0 || qd_tensor_copy(&w0, qd_sim_fp32(s, q->value), &e)) {
        free(enc0);
        goto out;
    }
    memcpy(enc0, q->enc, (size_t)nenc * sizeof *enc0);
    qd_adaround_opts o;
    qd_adaround_defaults(&o);
    o.iterations = TH_LIGHT ? 100 : 400;
    o.images = 512;
    o.nthreads = 2;
    qd_adaround_report r;
    int rc = qd_adaround(s, d, &o, NULL, NULL, &r, &e);
    ok(rc == 0, "adaround %s: %s", weight, e.msg);
    ok(r.nlayers == 1 && r.skipped == 0, "one layer done, none skipped: %d, %d", r.nlayers, r.skipped);
    if (rc || r.nlayers != 1)
        goto done;
    const qd_adaround_layer *L = &r.layers[0];
    printf("  %s (%s): %lld weights, %lld rows, MSE nearest %.4g -> AdaRound %.4g (FP32 output power %.4g), "
           "%.1f%% flipped, %.2f s\n",
           weight, per_channel ? "per channel" : "per tensor", (long long)L->weights, (long long)L->rows,
           L->loss_nearest, L->loss_adaround, L->target_power, 100 * L->frac_flipped, L->seconds);
    ok(L->q == qi && L->weights == qd_tensor_numel(&w0), "report names the quantizer and its size");
    ok(!L->kept_nearest && L->loss_adaround < L->loss_nearest,
       "learned rounding beats nearest on the layer's output: %g < %g", L->loss_adaround, L->loss_nearest);
    ok(L->frac_flipped > 0 && L->frac_flipped < 0.5, "some weights flipped: %g", L->frac_flipped);
    /* encodings as they were, and frozen */
    q = qd_sim_get(s, qi);
    int same = q->nenc == nenc;
    for (int c = 0; same && c < nenc; c++)
        same = q->enc[c].scale == enc0[c].scale && q->enc[c].offset == enc0[c].offset &&
               q->enc[c].min == enc0[c].min && q->enc[c].max == enc0[c].max && q->enc[c].bits == enc0[c].bits;
    ok(same && q->frozen, "encodings unchanged and frozen");
    /* every weight on its grid, floor or ceil of the original, and fake
     * quant gives it back exactly */
    const qd_tensor *w = qd_sim_fp32(s, q->value);
    const float *wa = w->data, *wo = w0.data;
    int64_t n = qd_tensor_numel(w), inner = n / (nenc > 1 ? nenc : 1), off_grid = 0, far = 0, moved = 0;
    float *fq = malloc((size_t)n * sizeof *fq);
    if (!fq)
        goto done;
    const qd_graph *g = qd_sim_graph(s);
    int transposed = nenc > 1 && q->axis != 0; /* a per-channel Gemm weight with transB = 0 */
    ok(!transposed, "LeNet's weights have their channels on axis 0");
    for (int64_t i = 0; i < n; i++) {
        const qd_encoding *en = &enc0[nenc > 1 ? i / inner : 0];
        double k = wa[i] / en->scale;
        if (fabs(k - nearbyint(k)) > 1e-3 || k < en->offset - 1e-3 || k > en->max / en->scale + 1e-3)
            off_grid++;
        if (fabs((double)wa[i] - wo[i]) > en->scale * (1 + 1e-5))
            far++;
        qd_fake_quant(&wa[i], &fq[i], 1, en);
        moved += fq[i] != wa[i];
    }
    ok(off_grid == 0, "%lld of %lld weights off their grid", (long long)off_grid, (long long)n);
    ok(far == 0, "%lld weights moved more than one step from the FP32 weight", (long long)far);
    ok(moved == 0, "fake quant reproduces %lld of %lld weights", (long long)(n - moved), (long long)n);
    /* the simulation runs with exactly these weights */
    qd_tensor x = {0};
    ok(qd_data_batch(d, 0, 4, &x, NULL, &e) == 0 && qd_sim_run(s, &x, 1, &e) == 0, "run: %s", e.msg);
    const qd_tensor *ws = g->values[q->value].init;
    ok(ws && !memcmp(ws->data, wa, (size_t)n * sizeof(float)), "the sim's weight is the AdaRounded one");
    qd_tensor_free(&x);
    free(fq);
done:
    qd_adaround_report_free(&r);
    qd_tensor_free(&w0);
    free(enc0);
out:
    qd_sim_free(s);
    qd_data_free(d);
}

/* ------------------------------------------------------------ geometry */

/* At W8A8 nearest rounding reconstructs each layer's FP32 output closely:
 * a wrong column (stride, padding, group, channel order) would not. Every
 * kind of Conv of MobileNetV2 (strided and depthwise 3x3, 1x1, Clip 6) and
 * ShuffleNetV2 (unfused depthwise, Relu fused) and their Gemm. */
static void test_geometry(const char *model)
{
    qd_sim *s = make_sim(model, 8, 8, 1);
    qd_dataset *d = th_data("fashion-mnist:train", TH_LIGHT ? 16 : 64, 5);
    qd_err e = {0};
    ok(s && d, "%s sim and data", model);
    if (!s || !d || qd_sim_calibrate(s, d, 64, NULL, NULL, &e)) {
        ok(0, "calibrate: %s", e.msg);
        goto out;
    }
    qd_adaround_opts o;
    qd_adaround_defaults(&o);
    o.iterations = 1;
    qd_adaround_report r;
    int rc = qd_adaround(s, d, &o, NULL, NULL, &r, &e);
    ok(rc == 0, "adaround %s: %s", model, e.msg);
    double worst = 0;
    int at = -1, kinds = 0;
    const qd_graph *g = qd_sim_graph(s);
    for (int i = 0; i < r.nlayers; i++) {
        const qd_adaround_layer *L = &r.layers[i];
        double rel = L->loss_nearest / (L->target_power > 0 ? L->target_power : 1);
        if (rel > worst)
            worst = rel, at = i;
        const qd_node *n = &g->nodes[L->node];
        kinds |= !strcmp(n->op_type, "Gemm") ? 1 : qd_attr_int(n, "group", 1) > 1 ? 2 : 4;
    }
    printf("  %s: %d layers at W8A8, worst nearest-rounding MSE / output power %.3g (%s)\n", model, r.nlayers, worst,
           at >= 0 ? g->nodes[r.layers[at].node].name : "-");
    ok(r.nlayers > 50 && kinds == 7, "%s: %d layers: Conv, depthwise Conv and Gemm", model, r.nlayers);
    ok(worst < 0.02, "%s: every layer's output reconstructed within 2%% at 8 bits, worst %g", model, worst);
    qd_adaround_report_free(&r);
out:
    qd_sim_free(s);
    qd_data_free(d);
}

/* ------------------------------------------------------------ accuracy */

static double top1(qd_sim *s, qd_dataset *t, const qd_logits *ref)
{
    qd_err e = {0};
    qd_eval_opts eo = {.batch = 100, .nthreads = 2};
    qd_qeval_result r;
    if (qd_qeval_run(s, t, ref, &eo, &r, &e)) {
        fprintf(stderr, "eval: %s\n", e.msg);
        return -1;
    }
    return (double)r.top1 / (double)r.images;
}

static void test_lenet_w4a8(void)
{
    qd_sim *s = make_sim("models/lenet.onnx", 4, 8, -1);
    qd_dataset *d = th_data("fashion-mnist:train", TH_LIGHT ? 256 : 1024, 1);
    qd_dataset *t = th_data("fashion-mnist", TH_LIGHT ? 500 : 2000, 7);
    qd_err e = {0};
    qd_logits ref = {0};
    ok(s && d && t, "lenet sim and data");
    if (!s || !d || !t)
        goto out;
    ok(qd_sim_calibrate(s, d, 64, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);
    ok(qd_logits_compute(qd_sim_graph(s), t, NULL, &ref, &e) == 0, "labels: %s", e.msg);
    double near = top1(s, t, &ref);
    qd_adaround_opts o;
    qd_adaround_defaults(&o);
    o.iterations = TH_LIGHT ? 100 : 500;
    o.nthreads = 2;
    qd_adaround_report r;
    int rc = qd_adaround(s, d, &o, NULL, NULL, &r, &e);
    ok(rc == 0, "adaround: %s", e.msg);
    double ada = top1(s, t, &ref);
    printf("  LeNet W4A8 per tensor, %lld test images: top-1 nearest %.4f, AdaRound %.4f (%d layers, %d "
           "iterations, %.1f s)\n",
           (long long)qd_data_count(t), near, ada, r.nlayers, o.iterations, r.seconds);
    ok(r.nlayers == 5, "5 layers, got %d", r.nlayers);
    ok(ada >= near - 0.005, "AdaRound top-1 %.4f >= nearest %.4f - 0.005", ada, near);
    /* recalibrating keeps the frozen weight encodings and the rounding */
    qd_tensor w0 = {0};
    int wq = r.nlayers ? r.layers[0].q : -1;
    if (wq >= 0 && !qd_tensor_copy(&w0, qd_sim_fp32(s, qd_sim_get(s, wq)->value), &e)) {
        ok(qd_sim_calibrate(s, d, 64, NULL, NULL, &e) == 0, "recalibrate: %s", e.msg);
        ok(!memcmp(w0.data, qd_sim_fp32(s, qd_sim_get(s, wq)->value)->data, qd_tensor_nbytes(&w0)),
           "recalibration keeps the rounding");
        ok(fabs(top1(s, t, &ref) - ada) < 0.01, "accuracy after recalibrating the activations");
    }
    qd_tensor_free(&w0);
    qd_adaround_report_free(&r);
out:
    qd_logits_free(&ref);
    qd_sim_free(s);
    qd_data_free(d);
    qd_data_free(t);
}

/* ------------------------------------------------------------ refusals */

static int stop_at_second(void *user, int layer, int nlayers, const char *name)
{
    (void)name;
    (void)nlayers;
    *(int *)user += 1;
    return layer == 1;
}

static void test_refusals(void)
{
    qd_sim *s = make_sim("models/lenet.onnx", 4, 8, -1);
    qd_dataset *d = th_data("fashion-mnist:train", 64, 1);
    qd_err e = {0};
    qd_adaround_report r;
    ok(s && d, "lenet sim and data");
    if (!s || !d)
        goto out;
    qd_adaround_opts o;
    qd_adaround_defaults(&o);
    ok(qd_adaround(s, d, &o, NULL, NULL, &r, &e) == QD_EINPUT && strstr(e.msg, "calibrated") &&
           strstr(e.msg, "no encodings") && !strchr(e.msg, '\n') && r.nlayers == 0,
       "uncalibrated sim: %s", e.msg);
    ok(qd_sim_calibrate(s, d, 64, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);
    struct {
        const char *what;
        qd_adaround_opts o;
    } bad[8];
    for (int i = 0; i < 8; i++)
        bad[i].o = o;
    bad[0].what = "iterations", bad[0].o.iterations = 0;
    bad[1].what = "images", bad[1].o.images = 0;
    bad[2].what = "batch", bad[2].o.batch = -1;
    bad[3].what = "lr", bad[3].o.lr = 0;
    bad[4].what = "warm_start", bad[4].o.warm_start = 1;
    bad[5].what = "beta", bad[5].o.beta_end = 0.5;
    bad[6].what = "reg_weight", bad[6].o.reg_weight = NAN;
    bad[7].what = "nthreads", bad[7].o.nthreads = 0;
    const qd_tensor *w = NULL;
    for (int i = 0; i < qd_sim_count(s) && !w; i++)
        if (qd_sim_get(s, i)->kind == QD_QK_PARAM)
            w = qd_sim_fp32(s, qd_sim_get(s, i)->value);
    qd_tensor w0 = {0};
    ok(w && !qd_tensor_copy(&w0, w, &e), "a weight");
    for (int i = 0; i < 8; i++) {
        memset(&e, 0, sizeof e);
        int rc = qd_adaround(s, d, &bad[i].o, NULL, NULL, &r, &e);
        ok(rc == QD_EINPUT && strstr(e.msg, bad[i].what) && !strchr(e.msg, '\n'), "bad %s: %d %s", bad[i].what, rc,
           e.msg);
        qd_adaround_report_free(&r);
    }
    ok(w && !memcmp(w0.data, w->data, qd_tensor_nbytes(&w0)), "refused calls leave the weights alone");
    qd_tensor_free(&w0);
    /* a progress callback stops it between layers; what was done stays */
    memset(&e, 0, sizeof e);
    o.iterations = 5;
    o.images = 64;
    int calls = 0;
    ok(qd_adaround(s, d, &o, stop_at_second, &calls, &r, &e) == QD_EINPUT && strstr(e.msg, "stopped") &&
           r.nlayers == 1 && calls == 2,
       "stopped at layer 2: %s (%d done)", e.msg, r.nlayers);
    ok(r.nlayers == 1 && qd_sim_get(s, r.layers[0].q)->frozen, "the layer done is frozen");
    qd_adaround_report_free(&r);
    qd_adaround_report_free(NULL);
out:
    qd_sim_free(s);
    qd_data_free(d);
}

int main(int argc, char **argv)
{
    (void)argc;
    qd_cpu_reexec_for_blas(argv);
    test_rectified_sigmoid();
    test_refusals();
    test_one_layer("1.conv2.weight", 0);
    test_one_layer("1.fc1.weight", 1);
    test_geometry("models/mobilenet_v2.onnx");
    test_geometry("models/shufflenet_v2.onnx");
    test_lenet_w4a8();
    return th_summary();
}
