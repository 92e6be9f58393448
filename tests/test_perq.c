/* test_perq.c - per-quantizer analysis: the cached way gives bit-identical
 * results to one full evaluation per quantizer (done here independently with
 * qd_sim_set_enabled + qd_qeval_run), in both modes, on LeNet and ResNet-18;
 * the memory budget shrinks the batch or falls back to recomputing; the
 * sim's flags are restored; stopping keeps the images done; a quantizer
 * that leaves its tensor as it is re-runs nothing unless an int32 bias
 * moves with it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "harness.h"
#include "npy.h"
#include "perq.h"
#include "qeval.h"
#include "qjson.h"
#include "util.h"


static qd_sim *make_sim(const char *model, int wbits, int abits, qd_dataset *cal)
{
    qd_err e = {0};
    qd_sim *s = th_sim(model, (qd_sim_opts){.act_bits = abits, .param_bits = wbits, .range = QD_RANGE_SQNR,
                                            .per_channel = 0, .nthreads = 2});
    if (s && qd_sim_calibrate(s, cal, 32, NULL, NULL, &e)) {
        fprintf(stderr, "calibrate %s: %s\n", model, e.msg);
        qd_sim_free(s);
        s = NULL;
    }
    return s;
}

static int same(const qd_qeval_result *a, const qd_qeval_result *b)
{
    return a->images == b->images && a->top1 == b->top1 && a->agree == b->agree && a->fp32_top1 == b->fp32_top1 &&
           a->sig == b->sig && a->err == b->err;
}

/* The naive way, written out: quantizer k alone on (or alone off), a full
 * evaluation. */
static int reference(qd_sim *s, qd_dataset *d, const qd_logits *ref, qd_perq_mode mode, const int *qs, int n,
                     int64_t batch, qd_qeval_result *res)
{
    qd_err e = {0};
    int nq = qd_sim_count(s);
    unsigned char *en = malloc((size_t)nq);
    for (int i = 0; i < nq; i++)
        en[i] = (unsigned char)qd_sim_get(s, i)->set.enabled;
    qd_eval_opts eo = {.batch = batch};
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        for (int i = 0; i < nq; i++)
            qd_sim_set_enabled(s, i, mode == QD_PERQ_ENABLE_ONE ? i == qs[k] : en[i] && i != qs[k]);
        rc = qd_qeval_run(s, d, ref, &eo, &res[k], &e);
    }
    for (int i = 0; i < nq; i++)
        qd_sim_set_enabled(s, i, en[i]);
    free(en);
    if (rc)
        fprintf(stderr, "reference: %s\n", e.msg);
    return rc;
}

static int stop_after(void *user, int64_t done, int64_t total)
{
    (void)total;
    return done >= *(int64_t *)user;
}

static void check_model(const char *model, int wbits, int abits, int64_t images, int64_t batch, int every)
{
    qd_err e = {0};
    qd_dataset *cal = th_data("fashion-mnist:train", 64, 7), *d = th_data("fashion-mnist", images, 11);
    qd_sim *s = cal && d ? make_sim(model, wbits, abits, cal) : NULL;
    ok(s != NULL, "%s: sim", model);
    if (!s)
        goto out;
    qd_graph *g = qd_graph_load(model, &e);
    qd_logits ref = {0};
    qd_eval_opts eo = {.batch = batch, .nthreads = 2};
    ok(g && !qd_logits_compute(g, d, &eo, &ref, &e), "%s: FP32 logits: %s", model, e.msg);
    qd_graph_free(g);
    /* every `every`-th active quantizer (all of them on LeNet) */
    int nq = qd_sim_count(s), n = 0;
    int *qs = malloc(sizeof *qs * (size_t)nq);
    for (int i = 0; i < nq; i++)
        if (qd_quantizer_active(qd_sim_get(s, i)) && i % every == 0)
            qs[n++] = i;
    ok(n >= 3, "%s: %d quantizers measured", model, n);
    qd_qeval_result *got = calloc((size_t)n, sizeof *got), *want = calloc((size_t)n, sizeof *want);
    qd_qeval_result full;
    qd_eval_opts fo = {.batch = batch};
    ok(!qd_qeval_run(s, d, &ref, &fo, &full, &e), "%s: full sim: %s", model, e.msg);
    for (int m = 0; m < 2; m++) {
        qd_perq_mode mode = m ? QD_PERQ_DISABLE_ONE : QD_PERQ_ENABLE_ONE;
        const char *mn = m ? "disable-one" : "enable-one";
        qd_perq_info info;
        qd_perq_opts po = {.batch = batch};
        ok(!reference(s, d, &ref, mode, qs, n, batch, want), "%s %s: reference", model, mn);
        ok(!qd_perq_run(s, d, &ref, mode, qs, n, &po, got, &info, &e), "%s %s: %s", model, mn, e.msg);
        int bad = 0;
        for (int k = 0; k < n; k++)
            if (!same(&got[k], &want[k])) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s %s %s: top1 %lld/%lld agree %lld/%lld err %.17g/%.17g\n", model, mn,
                            qd_sim_get(s, qs[k])->name, (long long)got[k].top1, (long long)want[k].top1,
                            (long long)got[k].agree, (long long)want[k].agree, got[k].err, want[k].err);
            }
        ok(!bad, "%s %s: %d of %d quantizers differ from the naive way", model, mn, bad, n);
        ok(info.cached && info.batch == batch && info.images == images, "%s %s: cached %d batch %lld images %lld",
           model, mn, info.cached, (long long)info.batch, (long long)info.images);
        ok(info.nodes_run < info.nodes_full, "%s %s: ran %lld nodes, the naive way %lld", model, mn,
           (long long)info.nodes_run, (long long)info.nodes_full);
        ok(info.cache_bytes > 0, "%s %s: cache bytes", model, mn);
        if (mode == QD_PERQ_DISABLE_ONE)
            ok(same(&info.base, &full), "%s: disable-one's base run is the full simulation", model);
        else
            ok(info.base.agree == images && info.base.top1 == full.fp32_top1,
               "%s: enable-one's base run (all bypassed) is FP32: agree %lld of %lld", model,
               (long long)info.base.agree, (long long)images);
        /* the flags are back: a full run gives the same numbers */
        qd_qeval_result again;
        ok(!qd_qeval_run(s, d, &ref, &fo, &again, &e) && same(&again, &full), "%s %s: sim restored", model, mn);
        /* naive mode is the same */
        po.naive = 1;
        ok(!qd_perq_run(s, d, &ref, mode, qs, n, &po, got, &info, &e) && !info.cached, "%s %s naive", model, mn);
        bad = 0;
        for (int k = 0; k < n; k++)
            bad += !same(&got[k], &want[k]);
        ok(!bad && info.nodes_run == info.nodes_full, "%s %s naive: %d differ", model, mn, bad);
    }
    /* a budget of one image's worth of cache: batch shrinks, results agree
     * in top-1 (sums may differ in the last bits at another batch size) */
    {
        reference(s, d, &ref, QD_PERQ_ENABLE_ONE, qs, n, batch, want);
        qd_perq_opts po = {.batch = batch, .mem = 1};
        qd_perq_info info;
        ok(!qd_perq_run(s, d, &ref, QD_PERQ_ENABLE_ONE, qs, n, &po, got, &info, &e), "tiny budget: %s", e.msg);
        ok(!info.cached && info.cache_bytes == 0, "%s: budget of 1 byte falls back to recomputing", model);
        po.mem = 0;
        po.batch = 4;
        qd_perq_info i4;
        ok(!qd_perq_run(s, d, &ref, QD_PERQ_ENABLE_ONE, qs, 1, &po, got, &i4, &e), "batch 4: %s", e.msg);
        po.mem = i4.image_bytes * 2 + 1; /* room for 2 images */
        ok(!qd_perq_run(s, d, &ref, QD_PERQ_ENABLE_ONE, qs, n, &po, got, &info, &e), "budget: %s", e.msg);
        /* buffers are rounded up to 64 bytes */
        size_t slack = 64 * 2 * (size_t)qd_sim_graph(s)->nvalues;
        ok(info.cached && info.batch == 2 && info.cache_bytes > 0 && info.cache_bytes <= po.mem + slack,
           "%s: budget of %zu bytes (2 images) gives batch %lld, the cache held %zu", model, po.mem,
           (long long)info.batch, info.cache_bytes);
        int bad = 0;
        for (int k = 0; k < n; k++)
            bad += got[k].agree != want[k].agree && labs((long)(got[k].agree - want[k].agree)) > 1;
        ok(!bad, "%s: at batch 2, %d quantizers' agreement moved by more than one image", model, bad);
    }
    /* stopping keeps what was measured */
    {
        int64_t at = batch * n; /* one batch of every quantizer */
        qd_perq_opts po = {.batch = batch, .progress = stop_after, .user = &at};
        qd_perq_info info;
        ok(!qd_perq_run(s, d, &ref, QD_PERQ_DISABLE_ONE, qs, n, &po, got, &info, &e), "stop: %s", e.msg);
        ok(info.stopped && info.images == batch && got[n - 1].images == batch, "%s: stopped after %lld images",
           model, (long long)info.images);
    }
    /* a bypassed quantizer cannot be measured */
    {
        qd_sim_set_enabled(s, qs[0], 0);
        ok(qd_perq_run(s, d, &ref, QD_PERQ_ENABLE_ONE, qs, n, NULL, got, NULL, &e) == QD_EINPUT &&
               strstr(e.msg, qd_sim_get(s, qs[0])->name),
           "bypassed quantizer refused: %s", e.msg);
        qd_sim_set_enabled(s, qs[0], 1);
    }
    free(qs);
    free(got);
    free(want);
    qd_logits_free(&ref);
out:
    qd_sim_free(s);
    qd_data_free(cal);
    qd_data_free(d);
}

/* Unchanged tensors: on tests/data/cle.onnx, whose input x feeds a Conv,
 * with integer pixels 0..255 an asymmetric 8-bit min-max input quantizer
 * (scale 1) leaves x bit-identical, so the cached way takes the base
 * run's result for it without running anything. With int32 biases,
 * bypassing x (disable-one) moves a_conv's bias off its int32 grid: x must
 * still run, and its result must differ from the base run's. */
static void check_unchanged(int float_bias)
{
    qd_err e = {0};
    const char *npy = "tests/out/perq_grid.npy";
    qd_tensor t = {0};
    int64_t shape[4] = {40, 3, 8, 8};
    int made = !qd_tensor_resize(&t, QD_F32, 4, shape, &e);
    for (int64_t i = 0; made && i < qd_tensor_numel(&t); i++)
        ((float *)t.data)[i] = (float)((i * 37 + i / 7) % 256);
    ok(made && !qd_npy_write(npy, &t, &e), "%s: %s", npy, e.msg);
    qd_tensor_free(&t);
    qd_dataset *d = th_data("npy:tests/out/perq_grid.npy", 40, 3);
    qd_sim *s = d ? th_sim("tests/data/cle.onnx", (qd_sim_opts){.act_bits = 8, .param_bits = 8,
                                                             .range = QD_RANGE_MINMAX, .per_channel = 0,
                                                             .nthreads = 2, .float_bias = float_bias})
                  : NULL;
    qd_override ov = {.set = QD_OV_SYMMETRIC, .symmetric = 0};
    ok(s && !qd_sim_override(s, "x", &ov, NULL, &e) && !qd_sim_calibrate(s, d, 16, NULL, NULL, &e),
       "cle.onnx on integer pixels: %s", e.msg);
    if (!s)
        goto out;
    int xq = qd_sim_find(s, "x"), nq = qd_sim_count(s), n = 0, kx = -1;
    int *qs = malloc(sizeof *qs * (size_t)nq);
    for (int i = 0; i < nq; i++)
        if (qd_quantizer_active(qd_sim_get(s, i))) {
            kx = i == xq ? n : kx;
            qs[n++] = i;
        }
    ok(kx >= 0 && qd_sim_get(s, xq)->enc[0].scale == 1.0, "x quantized at scale %g",
       kx >= 0 ? qd_sim_get(s, xq)->enc[0].scale : 0.0);
    qd_graph *g = qd_graph_load("tests/data/cle.onnx", &e);
    qd_logits ref = {0};
    qd_eval_opts eo = {.batch = 16, .nthreads = 2};
    ok(g && !qd_logits_compute(g, d, &eo, &ref, &e), "cle.onnx FP32 logits: %s", e.msg);
    qd_graph_free(g);
    qd_qeval_result *got = calloc((size_t)n, sizeof *got), *want = calloc((size_t)n, sizeof *want);
    for (int m = 0; m < 2 && kx >= 0; m++) {
        qd_perq_mode mode = m ? QD_PERQ_DISABLE_ONE : QD_PERQ_ENABLE_ONE;
        const char *mn = m ? "disable-one" : "enable-one";
        qd_perq_info info;
        qd_perq_opts po = {.batch = 16};
        ok(!reference(s, d, &ref, mode, qs, n, 16, want), "cle %s: reference", mn);
        ok(!qd_perq_run(s, d, &ref, mode, qs, n, &po, got, &info, &e), "cle %s: %s", mn, e.msg);
        int bad = 0;
        for (int k = 0; k < n; k++)
            bad += !same(&got[k], &want[k]);
        ok(!bad, "cle %s, %s biases: %d of %d quantizers differ from the naive way", mn,
           float_bias ? "FP32" : "int32", bad, n);
        /* three batches of x; with int32 biases, disable-one runs x */
        int64_t skips = m && !float_bias ? 0 : 3;
        ok(info.unchanged == skips, "cle %s, %s biases: %lld quantizer-batches unchanged, expected %lld", mn,
           float_bias ? "FP32" : "int32", (long long)info.unchanged, (long long)skips);
        ok(same(&got[kx], &info.base) == (skips > 0), "cle %s, %s biases: x %s the base run", mn,
           float_bias ? "FP32" : "int32", skips ? "gives" : "differs from");
    }
    free(qs);
    free(got);
    free(want);
    qd_logits_free(&ref);
out:
    qd_sim_free(s);
    qd_data_free(d);
}

int main(void)
{
    check_unchanged(0);
    check_unchanged(1);
    check_model("models/lenet.onnx", 4, 4, TH_LIGHT ? 64 : 256, 32, 1);
    check_model("models/resnet18.onnx", 4, 8, TH_LIGHT ? 16 : 32, 16, TH_LIGHT ? 9 : 5);
    /* views (Reshape in the channel shuffle), Split and Concat */
    check_model("models/shufflenet_v2.onnx", 8, 8, TH_LIGHT ? 16 : 32, 16, TH_LIGHT ? 11 : 6);
    return th_summary();
}
