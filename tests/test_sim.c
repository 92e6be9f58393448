/* test_sim.c - quantizer placement (AIMET conventions), overrides, and what
 * the simulation computes: every quantized tensor lies on its grid, weights
 * per channel, bypassed quantizers give FP32 back. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qjson.h"
#include "sim.h"

static qd_dataset *calib_data(int n)
{
    qd_err e = {0};
    qd_dataset *d = qd_data_open("fashion-mnist:train", NULL, &e);
    if (!d || qd_data_limit(d, n, 1, &e)) {
        fprintf(stderr, "data: %s\n", e.msg);
        qd_data_free(d);
        return NULL;
    }
    return d;
}

static qd_sim *make_sim(const char *model, const char *cfg_name, const char *cfg_text, int wbits, int abits,
                        int per_channel, qd_range_method rm)
{
    qd_err e = {0};
    qd_qcfg cfg = {0};
    int rc = cfg_text ? qd_qcfg_parse(cfg_text, strlen(cfg_text), "inline.json", &cfg, &e)
                      : qd_qcfg_builtin(cfg_name, &cfg, &e);
    qd_graph *g = rc ? NULL : qd_graph_load(model, &e);
    if (!g) {
        fprintf(stderr, "make_sim: %s\n", e.msg);
        qd_qcfg_clear(&cfg);
        return NULL;
    }
    qd_sim_opts o = {.cfg = &cfg, .act_bits = abits, .param_bits = wbits, .range = rm, .pct = 99.99,
                     .per_channel = per_channel, .nthreads = 1};
    qd_sim *s = qd_sim_new(g, &o, &e);
    if (!s)
        fprintf(stderr, "qd_sim_new: %s\n", e.msg);
    qd_qcfg_clear(&cfg);
    return s;
}

static int has_q(qd_sim *s, const char *name, qd_qkind kind)
{
    int i = qd_sim_find(s, name);
    return i >= 0 && qd_sim_get(s, i)->kind == kind;
}

/* Largest distance of t's values from the grid of enc, in steps; also
 * whether all lie inside [min, max]. */
static double off_grid(const float *x, size_t n, const qd_encoding *enc, int *outside)
{
    double worst = 0;
    *outside = 0;
    for (size_t i = 0; i < n; i++) {
        double k = x[i] / enc->scale;
        worst = fmax(worst, fabs(k - nearbyint(k)));
        if (x[i] < enc->min - 1e-6 * fabs(enc->min) - 1e-12 || x[i] > enc->max + 1e-6 * fabs(enc->max) + 1e-12)
            *outside = 1;
    }
    return worst;
}

static void test_placement_lenet(void)
{
    qd_sim *s = make_sim("models/lenet.onnx", "default", NULL, 8, 8, -1, QD_RANGE_MINMAX);
    ok(s != NULL, "lenet sim");
    if (!s)
        return;
    qd_sim_counts c;
    qd_sim_get_counts(s, &c);
    /* image; Sub, Div, conv1+bn+relu, conv2+bn+relu, fc1+relu, fc2+relu, fc3 */
    ok(c.inputs == 1 && c.acts == 7 && c.params == 5, "lenet: 1 input, 7 act, 5 param quantizers, got %d %d %d",
       c.inputs, c.acts, c.params);
    ok(c.bn_folded == 2, "2 BNs folded, got %d", c.bn_folded);
    ok(has_q(s, "image", QD_QK_INPUT), "input quantizer on image");
    ok(has_q(s, "logits", QD_QK_ACT), "logits quantized");
    ok(has_q(s, "conv1.weight", QD_QK_PARAM) || has_q(s, "1.conv1.weight", QD_QK_PARAM) || c.params == 5,
       "conv weights quantized");
    const qd_graph *g = qd_sim_graph(s);
    /* no quantizer inside a supergroup, none after MaxPool/Flatten, no bias */
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        int q = qd_sim_find(s, g->values[n->out[0]].name);
        if (!strcmp(n->op_type, "MaxPool") || !strcmp(n->op_type, "Flatten"))
            ok(q < 0, "%s (%s) has no output quantizer", n->name, n->op_type);
        if (!strcmp(n->op_type, "Conv"))
            ok(n->fused_clip && q >= 0, "%s: Relu fused, quantizer after it", n->name);
        if (!strcmp(n->op_type, "Gemm") && qd_node_has_input(n, 2))
            ok(qd_sim_find(s, g->values[n->in[2]].name) < 0, "%s: bias not quantized", n->name);
        if (!strcmp(n->op_type, "Gemm") && strcmp(g->values[n->out[0]].name, "logits"))
            ok(q < 0, "%s: Gemm+Relu supergroup: no quantizer between them", n->name);
    }
    for (int i = 0; i < qd_sim_count(s); i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_PARAM) {
            ok(q->set.scheme.symmetric && !q->set.per_channel, "%s: symmetric per-tensor weights", q->name);
            ok(q->axis == 0, "%s: output channels on axis 0 (Conv, Gemm transB=1), got %d", q->name, q->axis);
        } else {
            ok(!q->set.scheme.symmetric, "%s: asymmetric activations", q->name);
        }
    }
    /* running before calibration is refused, by name */
    qd_err e = {0};
    qd_tensor x = {0};
    int64_t shp[4] = {2, 1, 28, 28};
    qd_tensor_resize(&x, QD_F32, 4, shp, &e);
    memset(x.data, 0, qd_tensor_nbytes(&x));
    ok(qd_sim_run(s, &x, 1, &e) == QD_EINPUT && strstr(e.msg, "no encodings"), "uncalibrated run: %s", e.msg);
    qd_tensor_free(&x);
    qd_sim_free(s);
}

/* Without supergroups in the config, Conv and Relu each get a quantizer and
 * are not fused. */
static void test_no_supergroups(void)
{
    const char *cfg = "{\"defaults\": {\"ops\": {\"is_output_quantized\": \"True\"}, \"params\": "
                      "{\"is_quantized\": \"True\", \"is_symmetric\": \"True\"}}, \"params\": {\"bias\": "
                      "{\"is_quantized\": \"False\"}}, \"op_type\": {}, \"supergroups\": [], \"model_input\": "
                      "{\"is_input_quantized\": \"True\"}, \"model_output\": {}}";
    qd_sim *s = make_sim("models/lenet.onnx", NULL, cfg, 8, 8, -1, QD_RANGE_MINMAX);
    ok(s != NULL, "sim with inline config");
    if (!s)
        return;
    qd_sim_counts c;
    qd_sim_get_counts(s, &c);
    ok(c.acts == 11 && c.act_fused == 0, "11 act quantizers and no fusion without supergroups, got %d, %d fused",
       c.acts, c.act_fused);
    qd_sim_free(s);
}

static void test_run_on_grid(int per_channel)
{
    qd_sim *s = make_sim("models/resnet18.onnx", per_channel ? "per_channel" : "default", NULL, 8, 8, -1,
                         QD_RANGE_SQNR);
    qd_dataset *d = calib_data(64);
    qd_err e = {0};
    ok(s && d, "resnet18 sim and data");
    if (!s || !d)
        goto out;
    ok(qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);
    qd_tensor x = {0};
    ok(qd_data_batch(d, 0, 8, &x, NULL, &e) == 0 && qd_sim_run(s, &x, 1, &e) == 0, "run: %s", e.msg);
    const qd_graph *g = qd_sim_graph(s);
    int checked = 0, bad = 0;
    for (int i = 0; i < qd_sim_count(s); i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        /* AIMET's per-channel config keeps Gemm weights per tensor */
        int pc = q->kind == QD_QK_PARAM && per_channel && strcmp(g->nodes[q->node].op_type, "Gemm") != 0;
        ok(q->nenc == (pc ? (int)q->nch : 1), "%s: %d encodings", q->name, q->nenc);
        if (q->kind == QD_QK_PARAM) {
            const qd_tensor *w = g->values[q->value].init;
            size_t per = (size_t)qd_tensor_numel(w) / (size_t)q->nenc; /* axis 0 for Conv/Gemm(transB) */
            for (int c = 0; c < q->nenc; c++) {
                int out;
                double d0 = off_grid((const float *)w->data + c * per, per, &q->enc[c], &out);
                bad += d0 > 1e-3 || out;
            }
            ok(q->set.scheme.symmetric && q->enc[0].offset == -128, "%s: signed symmetric weights", q->name);
        } else if (q->kind == QD_QK_ACT) {
            const qd_tensor *t = qd_exec_value(qd_sim_exec(s), q->value);
            if (!t)
                continue;
            int out;
            double d0 = off_grid(t->data, (size_t)qd_tensor_numel(t), &q->enc[0], &out);
            ok(d0 < 1e-3 && !out, "%s: activations on the grid (%.3g steps off, outside %d)", q->name, d0, out);
            checked++;
        }
    }
    ok(bad == 0, "all weights on their grids (%d channels off)", bad);
    ok(checked > 10, "checked %d activation tensors", checked);
    qd_tensor_free(&x);
out:
    qd_data_free(d);
    qd_sim_free(s);
}

/* All quantizers bypassed: the simulation is the FP32 model. 16 bits: close. */
static void test_bypass_and_16bit(void)
{
    qd_err e = {0};
    qd_dataset *d = calib_data(32);
    qd_graph *ref = qd_graph_load("models/mobilenet_v2.onnx", &e);
    qd_exec *rx = ref ? qd_exec_new(ref, 1, &e) : NULL;
    qd_tensor x = {0};
    ok(d && rx && qd_data_batch(d, 0, 16, &x, NULL, &e) == 0 && qd_exec_run(rx, &x, 1, &e) == 0, "reference: %s",
       e.msg);
    if (!d || !rx || e.code)
        goto out;
    const qd_tensor *y0 = qd_exec_output(rx, 0);
    for (int bits = 32; bits >= 16; bits -= 16) {
        qd_sim *s = make_sim("models/mobilenet_v2.onnx", "default", NULL, 8, 8, -1, QD_RANGE_MINMAX);
        if (!s)
            break;
        qd_override ov = {.set = QD_OV_BITS, .bits = bits};
        int matched = 0;
        ok(qd_sim_override(s, "@all", &ov, &matched, &e) == 0 && matched == qd_sim_count(s), "@all matched %d",
           matched);
        ok(qd_sim_calibrate(s, d, 16, NULL, NULL, &e) == 0 && qd_sim_run(s, &x, 1, &e) == 0, "run: %s", e.msg);
        const qd_tensor *y1 = qd_sim_output(s, 0);
        double sig = 0, err = 0;
        for (int64_t i = 0; i < qd_tensor_numel(y0); i++) {
            double a = ((const float *)y0->data)[i], b = ((const float *)y1->data)[i];
            sig += a * a;
            err += (a - b) * (a - b);
        }
        double sqnr = err > 0 ? 10 * log10(sig / err) : 999;
        ok(sqnr > (bits == 32 ? 100 : 45), "%d bits: SQNR vs FP32 %.1f dB", bits, sqnr);
        qd_sim_free(s);
    }
out:
    qd_tensor_free(&x);
    qd_exec_free(rx);
    qd_graph_free(ref);
    qd_data_free(d);
}

static void test_overrides(void)
{
    qd_err e = {0};
    qd_sim *s = make_sim("models/lenet.onnx", "default", NULL, 8, 8, -1, QD_RANGE_MINMAX);
    qd_dataset *d = calib_data(32);
    if (!s || !d) {
        ok(0, "sim");
        goto out;
    }
    int m = 0;
    qd_override ov = {.set = QD_OV_BITS | QD_OV_PER_CHANNEL, .bits = 4, .per_channel = 1};
    ok(qd_sim_override(s, "@weights", &ov, &m, &e) == 0 && m == 5, "@weights: %d", m);
    qd_override off = {.set = QD_OV_ENABLED, .enabled = 0};
    ok(qd_sim_override(s, "*Relu*", &off, &m, &e) == 0 && m >= 2, "glob *Relu*: %d", m);
    ok(qd_sim_override(s, "nope*", &off, &m, &e) == QD_EINPUT && strstr(e.msg, "nope*"), "no match: %s", e.msg);
    ok(qd_sim_override(s, "@bogus", &off, &m, &e) == QD_EINPUT, "bad group: %s", e.msg);
    qd_override bad = {.set = QD_OV_BITS, .bits = 17};
    ok(qd_sim_override(s, "@all", &bad, &m, &e) == QD_EINPUT, "17 bits refused: %s", e.msg);
    qd_override fixed = {.set = QD_OV_FIXED, .fmin = -1, .fmax = 3};
    ok(qd_sim_override(s, "image", &fixed, &m, &e) == 0 && m == 1, "fixed range on image");
    ok(qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0, "calibrate: %s", e.msg);
    qd_quantizer *img = qd_sim_get(s, qd_sim_find(s, "image"));
    ok(img && fabs(img->enc[0].scale - 4.0 / 255) < 1e-12 && img->enc[0].offset == -64,
       "fixed [-1, 3]: scale 4/255, offset -64 (round(255/4))");
    for (int i = 0; i < qd_sim_count(s); i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_PARAM)
            ok(q->nenc == q->nch && q->enc[0].bits == 4 && q->enc[0].offset == -8, "%s: 4-bit per-channel",
               q->name);
    }
    /* set_encodings validates and freezes; calibration keeps it */
    qd_encoding enc = qd_quant_encoding(-2, 2, &img->set.scheme);
    ok(qd_sim_set_encodings(s, qd_sim_find(s, "image"), &enc, 1, &e) == 0 && img->frozen, "set + freeze");
    ok(qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0 && img->enc[0].scale == enc.scale, "frozen kept");
    qd_encoding zero = enc;
    zero.scale = 0;
    ok(qd_sim_set_encodings(s, qd_sim_find(s, "image"), &zero, 1, &e) == QD_EINPUT, "scale 0: %s", e.msg);
    ok(qd_sim_set_encodings(s, qd_sim_find(s, "image"), &enc, 3, &e) == QD_EINPUT, "3 encodings: %s", e.msg);
out:
    qd_data_free(d);
    qd_sim_free(s);
}

/* The quantizer grid a Conv/Gemm input comes from, through data movement. */
static const qd_encoding *input_grid(qd_sim *s, int v)
{
    const qd_graph *g = qd_sim_graph(s);
    for (;;) {
        int qi = qd_sim_find(s, g->values[v].name);
        if (qi >= 0)
            return qd_sim_get(s, qi)->set.enabled ? &qd_sim_get(s, qi)->enc[0] : NULL;
        int p = g->values[v].producer;
        if (p < 0)
            return NULL;
        const char *op = g->nodes[p].op_type;
        if (strcmp(op, "MaxPool") && strcmp(op, "Flatten") && strcmp(op, "Reshape"))
            return NULL;
        v = g->nodes[p].in[0];
    }
}

/* Biases of quantized Conv/Gemm are int32 on s_in * s_w[c] (as QLinearConv
 * holds them), follow the encodings they derive from, and stay FP32 with
 * float_bias, a disabled input grid or a disabled weight. */
static void test_int32_bias(const char *model, int per_channel)
{
    char what[96];
    snprintf(what, sizeof what, "%s %s", model, per_channel ? "per-channel" : "per-tensor");
    qd_sim *s = make_sim(model, per_channel ? "per_channel" : "default", NULL, 8, 8, -1, QD_RANGE_SQNR);
    qd_dataset *d = calib_data(64);
    qd_err e = {0};
    ok(s && d, "%s: sim and data", what);
    if (!s || !d)
        goto out;
    ok(qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0, "%s: calibrate: %s", what, e.msg);
    const qd_graph *g = qd_sim_graph(s);
    int nb = qd_sim_bias_count(s), on = 0, bad_scale = 0, bad_grid = 0, bad_round = 0;
    for (int i = 0; i < nb; i++) {
        qd_sim_bias b;
        qd_sim_bias_get(s, i, &b);
        const qd_node *n = &g->nodes[b.node];
        const qd_quantizer *w = qd_sim_get(s, qd_sim_find(s, g->values[n->in[1]].name));
        const qd_encoding *in = input_grid(s, n->in[0]);
        if (!b.on || !w || !in)
            continue;
        on++;
        bad_scale += b.n != w->nenc;
        for (int c = 0; c < b.n && c < w->nenc; c++)
            bad_scale += b.scale[c] != (float)in->scale * (float)w->enc[c].scale;
        const float *q = g->values[b.value].init->data, *f = qd_sim_fp32(s, b.value)->data;
        for (int64_t k = 0; k < qd_tensor_numel(g->values[b.value].init); k++) {
            /* q[k] is the float product int * scale: exact to float epsilon */
            double sc = b.scale[b.n > 1 ? k : 0], steps = q[k] / sc, eps = 1.2e-7;
            bad_grid += fabs(steps - nearbyint(steps)) > 1e-3 + fabs(steps) * eps;
            bad_round += fabs(q[k] - f[k]) > 0.5001 * sc + fabs(f[k]) * eps;
        }
    }
    qd_sim_counts c;
    qd_sim_get_counts(s, &c);
    ok(nb > 0 && on == nb && c.int32_biases == nb, "%s: %d of %d biases int32 (%d counted)", what, on, nb,
       c.int32_biases);
    ok(bad_scale == 0, "%s: bias scales are s_in * s_w (%d differ)", what, bad_scale);
    ok(bad_grid == 0, "%s: biases on their int32 grid (%d off)", what, bad_grid);
    ok(bad_round == 0, "%s: biases within half a step of FP32 (%d further)", what, bad_round);

    /* the first Conv's input grid off: its bias goes back to FP32; on again: int32 */
    qd_sim_bias b0;
    qd_sim_bias_get(s, 0, &b0);
    const qd_node *n0 = &g->nodes[b0.node];
    int qin = -1;
    for (int v = n0->in[0]; qin < 0 && v >= 0;) {
        qin = qd_sim_find(s, g->values[v].name);
        int p = g->values[v].producer;
        v = qin < 0 && p >= 0 ? g->nodes[p].in[0] : -1;
    }
    qd_override off = {.set = QD_OV_ENABLED, .enabled = 0}, on1 = {.set = QD_OV_ENABLED, .enabled = 1};
    const qd_quantizer *qi = qd_sim_get(s, qin);
    ok(qi != NULL, "%s: quantizer of the first biased node's input", what);
    if (qi) {
        const float *bq = g->values[b0.value].init->data, *bf = qd_sim_fp32(s, b0.value)->data;
        size_t nbytes = qd_tensor_nbytes(qd_sim_fp32(s, b0.value));
        qd_sim_override(s, qi->name, &off, NULL, &e);
        qd_sim_apply(s);
        qd_sim_bias_get(s, 0, &b0);
        ok(!b0.on && memcmp(bq, bf, nbytes) == 0, "%s: %s off: bias FP32 again", what, qi->name);
        qd_sim_override(s, qi->name, &on1, NULL, &e);
        qd_sim_apply(s);
        qd_sim_bias_get(s, 0, &b0);
        ok(b0.on && memcmp(bq, bf, nbytes) != 0, "%s: %s on: bias int32 again", what, qi->name);
        /* a new input range moves the bias grid */
        float s1 = b0.scale[0];
        qd_override fix = {.set = QD_OV_FIXED, .fmin = 0, .fmax = 7};
        ok(qd_sim_override(s, qi->name, &fix, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "%s: fixed range: %s",
           what, e.msg);
        qd_sim_bias_get(s, 0, &b0);
        ok(b0.on && b0.scale[0] != s1 && b0.scale[0] == (float)qi->enc[0].scale *
                                                           (float)qd_sim_get(s, qd_sim_find(s, g->values[n0->in[1]].name))->enc[0].scale,
           "%s: bias scale follows the input range (%g -> %g)", what, s1, b0.n ? b0.scale[0] : 0);
        /* a 16-bit input: integer kernels hold the bias wider than int32 (TFLite's 16x8 mode uses
         * int64); the sim keeps it FP32 (an int32 grid of s_in * s_w would saturate at W16A16) */
        qd_override b16 = {.set = QD_OV_BITS, .bits = 16}, b8 = {.set = QD_OV_BITS, .bits = 8};
        ok(qd_sim_override(s, qi->name, &b16, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "%s: 16 bits: %s",
           what, e.msg);
        qd_sim_bias_get(s, 0, &b0);
        ok(!b0.on && memcmp(bq, bf, nbytes) == 0, "%s: %s at 16 bits: bias FP32", what, qi->name);
        ok(qd_sim_override(s, qi->name, &b8, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "%s: 8 bits: %s",
           what, e.msg);
        qd_sim_bias_get(s, 0, &b0);
        ok(b0.on, "%s: %s at 8 bits: bias int32 again", what, qi->name);
        /* the weight off: FP32 bias */
        ok(qd_sim_override(s, g->values[n0->in[1]].name, &off, NULL, &e) == 0, "%s: weight off", what);
        qd_sim_apply(s);
        qd_sim_bias_get(s, 0, &b0);
        ok(!b0.on && memcmp(bq, bf, nbytes) == 0, "%s: weight off: bias FP32", what);
    }
    qd_sim_free(s);
    s = NULL;

    /* float_bias: every bias is the FP32 original */
    qd_qcfg cfg = {0};
    qd_graph *g2 = qd_qcfg_builtin("default", &cfg, &e) ? NULL : qd_graph_load(model, &e);
    qd_sim_opts o = {.cfg = &cfg, .range = QD_RANGE_MINMAX, .per_channel = -1, .float_bias = 1};
    s = g2 ? qd_sim_new(g2, &o, &e) : NULL;
    qd_qcfg_clear(&cfg);
    ok(s && qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0, "%s: float_bias sim: %s", what, e.msg);
    if (s) {
        int same = 1;
        for (int i = 0; i < qd_sim_bias_count(s); i++) {
            qd_sim_bias b;
            qd_sim_bias_get(s, i, &b);
            const qd_tensor *f = qd_sim_fp32(s, b.value);
            same &= !b.on && memcmp(qd_sim_graph(s)->values[b.value].init->data, f->data, qd_tensor_nbytes(f)) == 0;
        }
        qd_sim_get_counts(s, &c);
        ok(same && c.int32_biases == 0, "%s: float_bias keeps FP32 biases", what);
    }
out:
    qd_data_free(d);
    qd_sim_free(s);
}

/* FP32 mode: the sim's graph computes the FP32 model (BN folded), quantizers
 * bypassed, until switched back; every Conv/Gemm has a bias. */
static void test_fp32_mode(void)
{
    qd_sim *s = make_sim("models/mobilenet_v2.onnx", "default", NULL, 4, 4, -1, QD_RANGE_MINMAX);
    qd_dataset *d = calib_data(32);
    qd_err e = {0};
    qd_graph *g = qd_graph_load("models/mobilenet_v2.onnx", &e);
    qd_exec *x = g ? qd_exec_new(g, 1, &e) : NULL;
    qd_tensor in = {0};
    ok(s && d && x, "fp32 mode: sim, data, plain executor: %s", e.msg);
    if (!s || !d || !x)
        goto out;
    const qd_graph *sg = qd_sim_graph(s);
    int nobias = 0;
    for (int i = 0; i < sg->nnodes; i++)
        nobias += !strcmp(sg->nodes[i].op_type, "Conv") && !qd_node_has_input(&sg->nodes[i], 2);
    ok(nobias == 0, "every Conv has a bias (%d without)", nobias);
    ok(qd_sim_calibrate(s, d, 32, NULL, NULL, &e) == 0 && qd_data_batch(d, 0, 16, &in, NULL, &e) == 0,
       "calibrate: %s", e.msg);
    double dq = 0, d32 = 0, ref = 0;
    ok(qd_exec_run(x, &in, 1, &e) == 0, "plain run: %s", e.msg);
    const qd_tensor *y0 = qd_exec_output(x, 0);
    for (int pass = 0; pass < 3; pass++) {
        qd_sim_set_fp32(s, pass == 1);
        ok(qd_sim_run(s, &in, 1, &e) == 0, "run %d: %s", pass, e.msg);
        const float *p = y0->data, *q = qd_sim_output(s, 0)->data;
        double md = 0;
        for (int64_t i = 0; i < qd_tensor_numel(y0); i++) {
            md = fmax(md, fabs((double)p[i] - q[i]));
            ref = fmax(ref, fabs((double)p[i]));
        }
        if (pass == 1)
            d32 = md;
        else if (pass == 0)
            dq = md;
        else
            ok(md == dq, "back to simulation: the same output as before (%g vs %g)", md, dq);
    }
    ok(d32 <= 1e-5 * ref, "FP32 mode = FP32 model (max diff %.3g of %.3g)", d32, ref);
    ok(dq > 1e-2 * ref, "W4A4 simulation differs from FP32 (max diff %.3g)", dq);
out:
    qd_tensor_free(&in);
    qd_exec_free(x);
    qd_graph_free(g);
    qd_data_free(d);
    qd_sim_free(s);
}

int main(void)
{
    test_placement_lenet();
    test_no_supergroups();
    test_run_on_grid(0);
    test_run_on_grid(1);
    test_bypass_and_16bit();
    test_overrides();
    test_fp32_mode();
    test_int32_bias("models/lenet.onnx", 0);
    test_int32_bias("models/mobilenet_v2.onnx", 1);
    return th_summary();
}
