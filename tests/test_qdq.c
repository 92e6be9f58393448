/* test_qdq.c - qd_qdq_graph / qd_qdq_export: one QuantizeLinear ->
 * DequantizeLinear pair per enabled activation quantizer, one
 * DequantizeLinear per enabled weight whose integers dequantize to exactly
 * the sim's fake-quantized weights, readers rewired, graph output names kept,
 * and the cases QDQ cannot express refused with the tensor named.
 * (ONNX Runtime runs the exported models in tests/t_qdq.sh.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "onnx_save.h"
#include "qdq.h"
#include "sim.h"

#define OUT "tests/out/qdq"

/* AIMET's default runtime config (sessions/configs/default.json) by hand,
 * so that this test needs the engine only. */
static char *sg_conv_relu[] = {"Conv", "Relu"}, *sg_conv_clip[] = {"Conv", "Clip"},
            *sg_add_relu[] = {"Add", "Relu"}, *sg_gemm_relu[] = {"Gemm", "Relu"};
static qd_qcfg_group groups[] = {{2, sg_conv_relu}, {2, sg_conv_clip}, {2, sg_add_relu}, {2, sg_gemm_relu}};

static qd_qcfg make_cfg(int per_channel, int quantize_bias)
{
    static qd_qcfg_param bias = {"bias", 0, -1};
    bias.is_quantized = quantize_bias;
    qd_qcfg c = {0};
    c.name = "test";
    c.ops_output_quantized = 1;
    c.params_quantized = 1;
    c.params_symmetric = 1;
    c.unsigned_symmetric = 1;
    c.per_channel = per_channel;
    c.nparams = 1;
    c.params = &bias;
    c.ngroups = 4;
    c.groups = groups;
    c.input_quantized = 1;
    return c;
}

static qd_sim *make_sim(const char *model, int per_channel, int quantize_bias, int calibrate)
{
    qd_err e = {0};
    qd_graph *g = qd_graph_load(model, &e);
    ok(g != NULL, "load %s: %s", model, e.msg);
    if (!g)
        return NULL;
    qd_qcfg c = make_cfg(per_channel, quantize_bias);
    qd_sim_opts o = {.cfg = &c, .act_bits = 8, .param_bits = 8, .range = QD_RANGE_MINMAX, .per_channel = -1,
                     .nthreads = 2};
    qd_sim *s = qd_sim_new(g, &o, &e);
    ok(s != NULL, "sim %s: %s", model, e.msg);
    if (!s || !calibrate)
        return s;
    qd_dataset *d = qd_data_open("fashion-mnist:train", NULL, &e);
    int rc = d ? qd_data_limit(d, 64, 1, &e) : 1;
    if (!rc)
        rc = qd_sim_calibrate(s, d, 32, NULL, NULL, &e);
    ok(rc == 0, "calibrate %s: %s", model, e.msg);
    qd_data_free(d);
    if (rc) {
        qd_sim_free(s);
        return NULL;
    }
    return s;
}

static int count_op(const qd_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += strcmp(g->nodes[i].op_type, op) == 0;
    return n;
}

static int is_op(const qd_graph *g, int node, const char *op)
{
    return node >= 0 && strcmp(g->nodes[node].op_type, op) == 0;
}

/* Element i of an int8/uint8/int32 tensor. */
static int64_t ival(const qd_tensor *t, int64_t i)
{
    return qd_tensor_get_i64(t, i);
}

/* Check one weight: DQ(int, scale, zp) equals the sim's weight bit for bit. */
static void check_param(const qd_graph *o, const qd_graph *g, const qd_quantizer *q, const char *what)
{
    int v = qd_graph_find_value(o, q->name);
    int dn = v >= 0 ? o->values[v].producer : -1;
    if (!(v >= 0 && is_op(o, dn, "DequantizeLinear") && !o->values[v].init)) {
        ok(0, "%s: weight %s is written by a DequantizeLinear", what, q->name);
        return;
    }
    const qd_node *d = &o->nodes[dn];
    const qd_tensor *x = qd_node_const_input(o, d, 0), *sc = qd_node_const_input(o, d, 1),
                    *zp = qd_node_const_input(o, d, 2);
    const qd_tensor *w = g->values[q->value].init; /* the sim's fake-quantized weight */
    if (!(x && sc && zp && w && qd_tensor_numel(x) == qd_tensor_numel(w))) {
        ok(0, "%s: %s: constant integers, scale and zero point", what, q->name);
        return;
    }
    ok(x->dtype == QD_I8 || x->dtype == QD_U8 || x->dtype == QD_I32, "%s: %s integer dtype %s", what, q->name,
       qd_dtype_name(x->dtype));
    ok(zp->dtype == x->dtype && sc->dtype == QD_F32, "%s: %s zero point dtype", what, q->name);
    int per = q->nenc > 1;
    ok(qd_tensor_numel(sc) == q->nenc && sc->ndim == per, "%s: %s: %d scales", what, q->name, q->nenc);
    if (per)
        ok(qd_attr_int(d, "axis", -99) == q->axis, "%s: %s axis %d", what, q->name, q->axis);
    else
        ok(qd_attr_find(d, "axis") == NULL, "%s: %s per-tensor has no axis", what, q->name);
    int64_t outer = 1, inner = 1, nch = per ? w->shape[q->axis] : 1;
    for (int k = 0; k < w->ndim; k++)
        if (per && k < q->axis)
            outer *= w->shape[k];
        else if (!per || k > q->axis)
            inner *= w->shape[k];
    int64_t bad = 0, n = 0;
    const float *wf = w->data, *sf = sc->data;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < nch; c++)
            for (int64_t i = 0; i < inner; i++, n++) {
                int64_t at = (a * nch + c) * inner + i;
                float y = (float)(ival(x, at) - ival(zp, c)) * sf[c];
                bad += memcmp(&y, &wf[at], sizeof y) != 0;
            }
    ok(bad == 0 && n == qd_tensor_numel(w), "%s: %s: %lld of %lld dequantized weights differ from the sim's",
       what, q->name, (long long)bad, (long long)n);
    for (int c = 0; c < q->nenc; c++) {
        const qd_encoding *en = &q->enc[c];
        if (sf[c] != (float)en->scale || -ival(zp, c) != (x->dtype == QD_U8 ? en->offset : 0)) {
            ok(0, "%s: %s channel %d scale/zero point", what, q->name, c);
            break;
        }
    }
}

/* Structure of the QDQ graph of a calibrated sim. */
/* Each bias the sim holds as int32 is an int32 constant, zero point 0 and
 * the sim's scales, DequantizeLinear'd to exactly the sim's bias values.
 * Returns how many. */
static int check_biases(qd_sim *s, const qd_graph *o, const char *what)
{
    const qd_graph *g = qd_sim_graph(s);
    int n = 0, bad = 0;
    for (int i = 0; i < qd_sim_bias_count(s); i++) {
        qd_sim_bias b;
        qd_sim_bias_get(s, i, &b);
        if (!b.on)
            continue;
        n++;
        const char *name = g->values[b.value].name;
        int dn = o->values[b.value].producer;
        if (!is_op(o, dn, "DequantizeLinear") || o->values[b.value].init) {
            ok(0, "%s: bias %s is written by a DequantizeLinear", what, name);
            continue;
        }
        const qd_node *d = &o->nodes[dn];
        const qd_tensor *x = qd_node_const_input(o, d, 0), *sc = qd_node_const_input(o, d, 1),
                        *zp = qd_node_const_input(o, d, 2);
        const qd_tensor *sim = g->values[b.value].init;
        if (!x || !sc || !zp || x->dtype != QD_I32 || zp->dtype != QD_I32 || sc->dtype != QD_F32 ||
            qd_tensor_numel(sc) != b.n || qd_tensor_numel(zp) != b.n ||
            qd_attr_int(d, "axis", -1) != (b.n > 1 ? 0 : -1) || qd_tensor_numel(x) != qd_tensor_numel(sim)) {
            ok(0, "%s: bias %s: int32 integers, %d scales, int32 zero points", what, name, b.n);
            continue;
        }
        for (int64_t k = 0; k < qd_tensor_numel(x); k++) {
            int c = b.n > 1 ? (int)k : 0;
            float s0 = ((const float *)sc->data)[c];
            bad += s0 != b.scale[c] || ((const int32_t *)zp->data)[c] != 0 ||
                   (float)((const int32_t *)x->data)[k] * s0 != ((const float *)sim->data)[k];
        }
    }
    ok(bad == 0, "%s: %d int32 biases dequantize to the sim's values (%d differ)", what, n, bad);
    return n;
}

static void check_graph(qd_sim *s, const qd_graph *o, const char *what)
{
    const qd_graph *g = qd_sim_graph(s);
    int nact = 0, nparam = 0;
    for (int i = 0; i < qd_sim_count(s); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (!q->set.enabled || q->set.scheme.bits == QD_BITS_FLOAT)
            continue;
        if (q->kind == QD_QK_PARAM) {
            nparam++;
            check_param(o, g, q, what);
            continue;
        }
        nact++;
        /* its Q reads the float value; scale and zero point as the encoding */
        int qn = -1;
        for (int k = 0; k < o->nnodes && qn < 0; k++)
            if (is_op(o, k, "QuantizeLinear") && o->nodes[k].in[0] >= 0 && o->nodes[k].in[0] < g->nvalues &&
                o->nodes[k].in[0] == q->value)
                qn = k;
        ok(qn >= 0, "%s: QuantizeLinear on %s", what, q->name);
        if (qn < 0)
            continue;
        const qd_tensor *sc = qd_node_const_input(o, &o->nodes[qn], 1), *zp = qd_node_const_input(o, &o->nodes[qn], 2);
        const qd_encoding *en = &q->enc[0];
        int sgn = en->symmetric && en->offset == -128;
        ok(sc && zp && sc->ndim == 0 && *(float *)sc->data == (float)en->scale &&
               zp->dtype == (sgn ? QD_I8 : QD_U8) && ival(zp, 0) == (sgn ? 0 : -en->offset),
           "%s: %s scale %g offset %d -> %s zero point", what, q->name, en->scale, en->offset, sgn ? "int8" : "uint8");
    }
    int nbias = check_biases(s, o, what);
    ok(count_op(o, "QuantizeLinear") == nact, "%s: %d QuantizeLinear for %d enabled activation quantizers", what,
       count_op(o, "QuantizeLinear"), nact);
    ok(count_op(o, "DequantizeLinear") == nact + nparam + nbias, "%s: %d DequantizeLinear for %d + %d + %d", what,
       count_op(o, "DequantizeLinear"), nact, nparam, nbias);
    ok(o->nnodes == g->nnodes + 2 * nact + nparam + nbias, "%s: nodes = %d + 2 x %d + %d + %d", what, g->nnodes,
       nact, nparam, nbias);
    /* topological order; only Q nodes read a quantized value */
    unsigned char *ready = calloc((size_t)o->nvalues, 1), *quantized = calloc((size_t)o->nvalues, 1);
    for (int v = 0; v < o->nvalues; v++)
        ready[v] = o->values[v].producer < 0;
    for (int k = 0; k < o->nnodes; k++)
        if (is_op(o, k, "QuantizeLinear"))
            quantized[o->nodes[k].in[0]] = 1;
    int order = 1, bypass = 0, prod = 1;
    for (int k = 0; k < o->nnodes; k++) {
        const qd_node *n = &o->nodes[k];
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0)
                continue;
            order &= ready[v] || o->values[v].init != NULL;
            bypass += quantized[v] && !is_op(o, k, "QuantizeLinear");
        }
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0) {
                ready[n->out[j]] = 1;
                prod &= o->values[n->out[j]].producer == k;
            }
    }
    ok(order, "%s: nodes in topological order", what);
    ok(prod, "%s: producers point at the writing node", what);
    ok(bypass == 0, "%s: %d readers of a quantized value skip its QDQ", what, bypass);
    free(ready);
    free(quantized);
    /* the output keeps its name; it is dequantized when its quantizer is on */
    int out = o->outputs[0];
    ok(o->noutputs == 1 && strcmp(o->values[out].name, "logits") == 0, "%s: output named logits", what);
    int qo = qd_sim_find(s, "logits");
    if (qo >= 0 && qd_sim_get(s, qo)->set.enabled)
        ok(is_op(o, o->values[out].producer, "DequantizeLinear") && o->values[out].dtype == QD_F32 &&
               o->values[out].ndim == 2,
           "%s: logits come from a DequantizeLinear, declared float Nx10", what);
    ok(o->ninputs == 1 && strcmp(o->values[o->inputs[0]].name, "image") == 0, "%s: input image", what);
}

static void bundled(const char *arch, int per_channel)
{
    char model[128], what[64], path[160];
    snprintf(model, sizeof model, "models/%s.onnx", arch);
    snprintf(what, sizeof what, "%s %s", arch, per_channel ? "per-channel" : "per-tensor");
    snprintf(path, sizeof path, OUT "/%s_%s.onnx", arch, per_channel ? "pc" : "pt");
    qd_sim *s = make_sim(model, per_channel, 0, 1);
    if (!s)
        return;
    /* the sim's weights hold the fake-quantized values after a run */
    qd_err e = {0};
    qd_tensor x = {0};
    int64_t shape[4] = {1, 1, 28, 28};
    qd_tensor_resize(&x, QD_F32, 4, shape, &e);
    memset(x.data, 0, 784 * sizeof(float));
    ok(qd_sim_run(s, &x, 1, &e) == 0, "%s: sim runs: %s", what, e.msg);
    qd_tensor_free(&x);
    int npc = 0;
    for (int i = 0; i < qd_sim_count(s); i++)
        npc += qd_sim_get(s, i)->nenc > 1;
    ok(per_channel ? npc > 0 : npc == 0, "%s: %d per-channel quantizers", what, npc);
    qd_sim_counts cnt;
    qd_sim_get_counts(s, &cnt);
    ok(cnt.int32_biases > 0, "%s: %d int32 biases", what, cnt.int32_biases);
    qd_graph *o = qd_qdq_graph(s, &e);
    ok(o != NULL, "%s: qdq graph: %s", what, e.msg);
    if (o)
        check_graph(s, o, what);
    qd_graph_free(o);
    unlink(path);
    ok(qd_qdq_export(s, path, &e) == 0 && access(path, F_OK) == 0, "%s: export %s: %s", what, path, e.msg);
    qd_sim_free(s);
}

/* What QDQ cannot express is refused, naming the tensor; nothing is written. */
static void refusals(void)
{
    qd_err e = {0};
    const char *path = OUT "/refused.onnx";
    qd_sim *s = make_sim("models/lenet.onnx", 0, 0, 0);
    if (!s)
        return;
    unlink(path);
    ok(qd_qdq_export(s, path, &e) == QD_EINPUT && strstr(e.msg, "no encodings"),
       "uncalibrated: QD_EINPUT, no encodings (%s)", e.msg);
    qd_sim_free(s);
    s = make_sim("models/lenet.onnx", 0, 0, 1);
    if (!s)
        return;
    const qd_graph *g = qd_sim_graph(s);
    const char *w = NULL, *a = NULL;
    for (int i = 0; i < qd_sim_count(s) && (!w || !a); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_PARAM && !w)
            w = q->name;
        if (q->kind == QD_QK_ACT && !a)
            a = q->name;
    }
    if (!w || !a) {
        ok(0, "lenet has weight and activation quantizers");
        qd_sim_free(s);
        return;
    }
    qd_override ov = {.set = QD_OV_BITS, .bits = 4};
    e = (qd_err){0};
    ok(qd_sim_override(s, w, &ov, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "4-bit %s: %s", w, e.msg);
    int rc = qd_qdq_export(s, path, &e);
    ok(rc == QD_EINPUT && strstr(e.msg, w) && strstr(e.msg, "4-bit"), "4-bit weight: QD_EINPUT naming it (%s)", e.msg);
    ok(access(path, F_OK) != 0, "4-bit weight: no file written");
    ov.bits = 8;
    qd_sim_override(s, w, &ov, NULL, &e);
    qd_sim_update(s, &e);

    ov.bits = 16;
    e = (qd_err){0};
    ok(qd_sim_override(s, a, &ov, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "16-bit %s: %s", a, e.msg);
    rc = qd_qdq_export(s, path, &e);
    ok(rc == QD_EINPUT && strstr(e.msg, a) && strstr(e.msg, "16-bit"), "16-bit activation: QD_EINPUT naming it (%s)",
       e.msg);
    ov.bits = 8;
    qd_sim_override(s, a, &ov, NULL, &e);
    qd_sim_update(s, &e);

    qd_override st = {.set = QD_OV_SYMMETRIC | QD_OV_STRICT | QD_OV_UNSIGNED, .symmetric = 1, .strict = 1};
    e = (qd_err){0};
    ok(qd_sim_override(s, a, &st, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "strict %s: %s", a, e.msg);
    rc = qd_qdq_export(s, path, &e);
    ok(rc == QD_EINPUT && strstr(e.msg, a) && strstr(e.msg, "strict"), "strict symmetric activation: refused (%s)",
       e.msg);
    st.strict = 0;
    qd_sim_override(s, a, &st, NULL, &e);
    qd_sim_update(s, &e);
    e = (qd_err){0};
    ok(qd_qdq_export(s, path, &e) == 0, "back to 8 bits, signed symmetric: exports (%s)", e.msg);

    /* a disabled quantizer gets no QDQ */
    qd_graph *o0 = qd_qdq_graph(s, &e);
    qd_override off = {.set = QD_OV_ENABLED, .enabled = 0};
    qd_sim_override(s, a, &off, NULL, &e);
    qd_graph *o1 = qd_qdq_graph(s, &e);
    ok(o0 && o1 && count_op(o1, "QuantizeLinear") == count_op(o0, "QuantizeLinear") - 1 &&
           count_op(o1, "DequantizeLinear") == count_op(o0, "DequantizeLinear") - 1,
       "disabling %s removes its pair", a);
    qd_graph_free(o0);
    qd_graph_free(o1);

    /* opsets */
    qd_graph *gm = (qd_graph *)g; /* the test pokes the opset; nothing runs afterwards */
    int opset = gm->opset;
    gm->opset = 9;
    e = (qd_err){0};
    ok(qd_qdq_export(s, path, &e) == QD_EINPUT && strstr(e.msg, "opset"), "opset 9: refused (%s)", e.msg);
    gm->opset = opset;
    qd_sim_free(s);

    s = make_sim("models/lenet.onnx", 1, 0, 1);
    if (!s)
        return;
    gm = (qd_graph *)qd_sim_graph(s);
    gm->opset = 12;
    unlink(path);
    e = (qd_err){0};
    ok(qd_qdq_export(s, path, &e) == QD_EINPUT && strstr(e.msg, "per-channel") && strstr(e.msg, "13"),
       "per-channel at opset 12: refused (%s)", e.msg);
    ok(access(path, F_OK) != 0, "refusals leave no file");
    qd_sim_free(s);
}

/* Symmetric activations (unsigned where >= 0), quantized biases at 8 and 16
 * bits, weights with channels of both grids. */
static void variants(void)
{
    qd_err e = {0};
    qd_sim *s = make_sim("models/resnet18.onnx", 1, 1, 1);
    if (!s)
        return;
    qd_override sym = {.set = QD_OV_SYMMETRIC, .symmetric = 1};
    ok(qd_sim_override(s, "@activations", &sym, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "symmetric acts: %s",
       e.msg);
    int nb = 0, nunsigned = 0, nsigned = 0;
    for (int i = 0; i < qd_sim_count(s); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        nb += q->kind == QD_QK_PARAM && strstr(q->name, "bias") != NULL;
        if (q->kind != QD_QK_PARAM && q->nenc) {
            nunsigned += q->enc[0].offset == 0;
            nsigned += q->enc[0].offset == -128;
        }
    }
    ok(nb > 0, "%d bias quantizers", nb);
    ok(nunsigned > 0 && nsigned > 0, "symmetric acts: %d unsigned, %d signed grids", nunsigned, nsigned);
    /* one bias at 16 bits: int32 */
    const char *b16 = NULL;
    for (int i = 0; i < qd_sim_count(s) && !b16; i++)
        if (qd_sim_get(s, i)->kind == QD_QK_PARAM && strstr(qd_sim_get(s, i)->name, "bias"))
            b16 = qd_sim_get(s, i)->name;
    qd_override o16 = {.set = QD_OV_BITS, .bits = 16};
    if (b16)
        ok(qd_sim_override(s, b16, &o16, NULL, &e) == 0 && qd_sim_update(s, &e) == 0, "16-bit bias: %s", e.msg);
    qd_tensor x = {0};
    int64_t shape[4] = {1, 1, 28, 28};
    qd_tensor_resize(&x, QD_F32, 4, shape, &e);
    memset(x.data, 0, 784 * sizeof(float));
    ok(qd_sim_run(s, &x, 1, &e) == 0, "variants: sim runs: %s", e.msg);
    qd_tensor_free(&x);
    qd_graph *o = qd_qdq_graph(s, &e);
    ok(o != NULL, "variants: qdq graph: %s", e.msg);
    if (o) {
        check_graph(s, o, "resnet18 variants");
        int v = b16 ? qd_graph_find_value(o, b16) : -1;
        const qd_tensor *t = v >= 0 && o->values[v].producer >= 0
                                 ? qd_node_const_input(o, &o->nodes[o->values[v].producer], 0)
                                 : NULL;
        ok(t && t->dtype == QD_I32, "16-bit bias %s stored as int32", b16 ? b16 : "?");
    }
    qd_graph_free(o);
    ok(qd_qdq_export(s, OUT "/resnet18_variants.onnx", &e) == 0, "variants: export: %s", e.msg);
    qd_sim_free(s);
}

/* Fresh names step around names the model already uses. */
static void name_clash(void)
{
    qd_err e = {0};
    qd_sim *s = make_sim("models/lenet.onnx", 0, 0, 1);
    if (!s)
        return;
    qd_graph *g = (qd_graph *)qd_sim_graph(s); /* renaming a constant changes no numbers */
    int v = qd_graph_find_value(g, "0.mean");
    ok(v >= 0, "lenet has 0.mean");
    if (v >= 0) {
        free(g->values[v].name);
        g->values[v].name = strdup("image_quantized");
        qd_graph *o = qd_qdq_graph(s, &e);
        int q = -1;
        for (int k = 0; o && k < o->nnodes; k++)
            if (is_op(o, k, "QuantizeLinear") && strcmp(o->values[o->nodes[k].in[0]].name, "image") == 0)
                q = k;
        ok(q >= 0 && strcmp(o->values[o->nodes[q].out[0]].name, "image_quantized_2") == 0,
           "Q output of image renamed image_quantized_2 next to the model's image_quantized");
        ok(qd_graph_find_value(o, "image_quantized") >= 0 && o->values[qd_graph_find_value(o, "image_quantized")].init,
           "the model's image_quantized is still its constant");
        qd_graph_free(o);
    }
    qd_sim_free(s);
}

int main(void)
{
    if (system("mkdir -p " OUT) != 0)
        return 1;
    const char *archs[] = {"lenet", "resnet18", "mobilenet_v2", "shufflenet_v2"};
    for (int i = 0; i < 4; i++)
        for (int pc = 0; pc < 2; pc++)
            bundled(archs[i], pc);
    refusals();
    variants();
    name_clash();
    return th_summary();
}
