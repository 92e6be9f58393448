/* test_live.c - live what-if evaluation: after every change of a random
 * sequence (fixed seed) of quantizer changes - bits, enable/disable,
 * symmetric, per-channel, range method, imported encodings, several at
 * once, none - the cached re-evaluation is bit-identical to a full
 * qd_qeval_run on the same sim, on LeNet, ResNet-18 and ShuffleNetV2 (Split,
 * Concat); a late quantizer re-runs few nodes; a stopped evaluation keeps the
 * cache consistent; invalidate covers hidden weight edits; a budget too small
 * falls back to full evaluations; the cached values are the run's. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "harness.h"
#include "live.h"
#include "qeval.h"
#include "util.h"

static uint64_t rng = 0x5eed;

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ z >> 27) * 0x94d049bb133111ebull;
    return z ^ z >> 31;
}

static int pick(int n) { return (int)(next() % (uint64_t)n); }

static int same(const qd_qeval_result *a, const qd_qeval_result *b)
{
    return a->images == b->images && a->labeled == b->labeled && a->top1 == b->top1 && a->agree == b->agree &&
           a->fp32_top1 == b->fp32_top1 && memcmp(&a->sig, &b->sig, sizeof a->sig) == 0 &&
           memcmp(&a->err, &b->err, sizeof a->err) == 0 && a->stopped == b->stopped;
}

typedef struct fix {
    const char *model;
    qd_sim *s;
    qd_dataset *d;
    qd_logits ref;
    int64_t batch;
    qd_live *L;
} fix;

/* Live evaluation against a full one; info of the live one to *info. */
static int check(fix *f, const char *what, qd_live_info *info)
{
    qd_err e = {0};
    qd_qeval_result got, want;
    qd_live_info own;
    if (!info)
        info = &own;
    qd_eval_opts eo = {.batch = f->batch};
    int rc = qd_live_eval(f->L, &got, info, NULL, NULL, &e);
    ok(!rc, "%s %s: live: %s", f->model, what, e.msg);
    rc = qd_qeval_run(f->s, f->d, &f->ref, &eo, &want, &e);
    ok(!rc, "%s %s: full: %s", f->model, what, e.msg);
    int eq = same(&got, &want);
    ok(eq, "%s %s: live top1 %lld agree %lld err %.17g, full top1 %lld agree %lld err %.17g", f->model, what,
       (long long)got.top1, (long long)got.agree, got.err, (long long)want.top1, (long long)want.agree, want.err);
    return eq;
}

static void update(fix *f, const char *what)
{
    qd_err e = {0};
    ok(!qd_sim_update(f->s, &e), "%s %s: update: %s", f->model, what, e.msg);
}

static void override(fix *f, int qi, const qd_override *ov)
{
    qd_err e = {0};
    int m = 0;
    ok(!qd_sim_override(f->s, qd_sim_get(f->s, qi)->name, ov, &m, &e) && m == 1, "%s: override %s: %s", f->model,
       qd_sim_get(f->s, qi)->name, e.msg);
}

/* One random change of quantizer qi (or of several); describes it in what. */
static void random_change(fix *f, int qi, char *what, size_t n)
{
    qd_quantizer *q = qd_sim_get(f->s, qi);
    qd_override ov = {0};
    switch (pick(7)) {
    case 0:
    case 1:
        ov.set = QD_OV_BITS;
        ov.bits = pick(10) == 0 ? QD_BITS_FLOAT : 2 + pick(15);
        snprintf(what, n, "%s bits %d", q->name, ov.bits);
        break;
    case 2:
        qd_sim_set_enabled(f->s, qi, !q->set.enabled);
        snprintf(what, n, "%s %s", q->name, q->set.enabled ? "enabled" : "disabled");
        return;
    case 3:
        ov.set = QD_OV_SYMMETRIC;
        ov.symmetric = !q->set.scheme.symmetric;
        snprintf(what, n, "%s symmetric %d", q->name, ov.symmetric);
        break;
    case 4:
        if (q->axis >= 0) {
            ov.set = QD_OV_PER_CHANNEL;
            ov.per_channel = !q->set.per_channel;
            snprintf(what, n, "%s per-channel %d", q->name, ov.per_channel);
            break;
        }
        /* fall through */
    case 5: {
        static const qd_range_method r[] = {QD_RANGE_MINMAX, QD_RANGE_SQNR, QD_RANGE_PERCENTILE, QD_RANGE_MSE};
        ov.set = QD_OV_RANGE;
        ov.range = r[pick(4)];
        ov.pct = 99.9;
        snprintf(what, n, "%s range %s", q->name, qd_range_name(ov.range));
        break;
    }
    default: { /* two at once */
        int qj = pick(qd_sim_count(f->s));
        qd_sim_set_enabled(f->s, qj, !qd_sim_get(f->s, qj)->set.enabled);
        ov.set = QD_OV_BITS;
        ov.bits = 2 + pick(15);
        snprintf(what, n, "%s toggled and %s bits %d", qd_sim_get(f->s, qj)->name, q->name, ov.bits);
        break;
    }
    }
    override(f, qi, &ov);
}

static int stop_after(void *user, int64_t done, int64_t total)
{
    (void)total;
    return done >= *(int64_t *)user;
}

/* The last quantizer in graph order: an activation with the highest
 * producer. */
static int late_quantizer(qd_sim *s)
{
    int best = -1, at = -1;
    for (int i = 0; i < qd_sim_count(s); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (q->kind == QD_QK_ACT && q->node > at)
            at = q->node, best = i;
    }
    return best;
}

/* After a full qd_qeval_run the executor holds the last batch: the live
 * cache of that batch must hold the same values. */
static void check_values(fix *f)
{
    const qd_graph *g = qd_sim_graph(f->s);
    qd_exec *x = qd_sim_exec(f->s);
    int64_t b = qd_live_batches(f->L) - 1;
    int bad = 0, n = 0;
    for (int v = 0; v < g->nvalues; v++) {
        if (g->values[v].producer < 0)
            continue;
        const qd_tensor *a = qd_live_value(f->L, b, v), *w = qd_exec_value(x, v);
        if (!w)
            continue;
        n++;
        if (!a || a->dtype != w->dtype || a->ndim != w->ndim ||
            memcmp(a->shape, w->shape, sizeof(int64_t) * (size_t)a->ndim) ||
            memcmp(a->data, w->data, qd_tensor_nbytes(w))) {
            if (bad++ < 3)
                fprintf(stderr, "  %s: value %s differs\n", f->model, g->values[v].name);
        }
    }
    ok(n > 0 && !bad, "%s: %d of %d cached values of the last batch differ from a full run", f->model, bad, n);
}

static void check_model(const char *model, int64_t images, int64_t batch, int steps)
{
    qd_err e = {0};
    double t0 = qd_now_ms();
    fix f = {.model = model, .batch = batch};
    qd_dataset *cal = th_data("fashion-mnist:train", 64, 7);
    f.d = th_data("fashion-mnist", images, 11);
    f.s = cal && f.d ? th_sim(model, (qd_sim_opts){.range = QD_RANGE_SQNR, .per_channel = 0, .nthreads = 2}) : NULL;
    ok(f.s && !qd_sim_calibrate(f.s, cal, 32, NULL, NULL, &e), "%s: sim: %s", model, e.msg);
    if (!f.s)
        goto out;
    qd_graph *g = qd_graph_load(model, &e);
    qd_eval_opts eo = {.batch = batch, .nthreads = 2};
    ok(g && !qd_logits_compute(g, f.d, &eo, &f.ref, &e), "%s: FP32 logits: %s", model, e.msg);
    qd_graph_free(g);
    f.L = qd_live_new(f.s, f.d, &f.ref, &(qd_live_opts){.batch = batch}, &e);
    ok(f.L != NULL, "%s: live: %s", model, e.msg);
    if (!f.L)
        goto out;
    int64_t nbatch = qd_live_batches(f.L);
    ok(nbatch == (images + batch - 1) / batch && nbatch >= 3, "%s: %lld batches", model, (long long)nbatch);
    int nq = qd_sim_count(f.s), nn = qd_sim_graph(f.s)->nnodes;
    qd_live_info info;

    /* first: full */
    check(&f, "first", &info);
    ok(info.cached && info.full && info.nodes_run == info.nodes_full && info.nodes_full == nbatch * nn &&
           info.cache_bytes > 0 && !info.nchanged,
       "%s first: cached %d full %d nodes %lld/%lld bytes %zu", model, info.cached, info.full,
       (long long)info.nodes_run, (long long)info.nodes_full, info.cache_bytes);
    check_values(&f);

    /* nothing changed: nothing runs */
    check(&f, "unchanged", &info);
    ok(info.nchanged == 0 && info.nodes_run == 0 && !info.full, "%s unchanged: %d changed, %lld nodes run", model,
       info.nchanged, (long long)info.nodes_run);

    /* a late quantizer re-runs few nodes; the test fails if reach were everything */
    int late = late_quantizer(f.s);
    ok(late >= 0, "%s: a late activation quantizer", model);
    if (late >= 0) {
        override(&f, late, &(qd_override){.set = QD_OV_BITS, .bits = 4});
        update(&f, "late");
        check(&f, "late 4 bits", &info);
        int64_t after = nn - qd_sim_get(f.s, late)->node;
        ok(info.nchanged == 1 && info.nodes_run == nbatch * after && info.nodes_run < info.nodes_full,
           "%s late %s: %d changed, ran %lld nodes of %lld (expected %lld)", model, qd_sim_get(f.s, late)->name,
           info.nchanged, (long long)info.nodes_run, (long long)info.nodes_full, (long long)(nbatch * after));
        override(&f, late, &(qd_override){.set = QD_OV_BITS, .bits = 8});
        update(&f, "late");
        check(&f, "late back to 8 bits", &info);
    }

    /* an int32 bias whose input grid comes through data movement (MaxPool,
     * Flatten...): the activation quantizer behind it changes the bias */
    {
        const qd_graph *sg = qd_sim_graph(f.s);
        int qi = -1;
        qd_sim_bias b0, b1;
        for (int i = 0; i < qd_sim_bias_count(f.s) && qi < 0; i++) {
            qd_sim_bias_get(f.s, i, &b0);
            int v = sg->nodes[b0.node].in[0], hops = 0;
            while (b0.on && v >= 0 && qd_sim_find(f.s, sg->values[v].name) < 0 && sg->values[v].producer >= 0) {
                v = sg->nodes[sg->values[v].producer].in[0];
                hops++;
            }
            if (b0.on && hops > 0 && v >= 0 && qd_sim_find(f.s, sg->values[v].name) >= 0) {
                qi = qd_sim_find(f.s, sg->values[v].name);
                float s0 = b0.scale[0];
                override(&f, qi, &(qd_override){.set = QD_OV_BITS, .bits = 5});
                update(&f, "bias grid");
                qd_sim_bias_get(f.s, i, &b1);
                ok(b1.on && b1.scale[0] != s0, "%s: int32 bias of %s follows %s", model, sg->nodes[b0.node].name,
                   qd_sim_get(f.s, qi)->name);
                check(&f, "int32 bias grid through data movement", &info);
                ok(info.nchanged == 1, "%s: one quantizer changed", model);
                override(&f, qi, &(qd_override){.set = QD_OV_BITS, .bits = 8});
                update(&f, "bias grid");
                check(&f, "int32 bias grid back", &info);
            }
        }
        ok(qi >= 0, "%s: an int32 bias behind data movement", model);
    }

    /* random changes */
    int bad = 0, partial = 0;
    for (int k = 0; k < steps; k++) {
        char what[600];
        int qi = pick(nq);
        if (pick(8) == 0) { /* imported (frozen) encodings: an active quantizer's, narrowed */
            qd_quantizer *q = qd_sim_get(f.s, qi);
            if (qd_quantizer_active(q) && q->nenc) {
                qd_encoding *enc = malloc(sizeof *enc * (size_t)q->nenc);
                qd_qscheme sc = {.bits = q->enc[0].bits, .symmetric = q->enc[0].symmetric};
                for (int c = 0; c < q->nenc; c++)
                    enc[c] = qd_quant_encoding(q->enc[c].min * 0.7, q->enc[c].max * 0.7, &sc);
                ok(!qd_sim_set_encodings(f.s, qi, enc, q->nenc, &e), "set encodings: %s", e.msg);
                free(enc);
                snprintf(what, sizeof what, "%s encodings narrowed", q->name);
            } else {
                snprintf(what, sizeof what, "nothing");
            }
        } else {
            random_change(&f, qi, what, sizeof what);
        }
        update(&f, what);
        if (!check(&f, what, &info) && bad++ < 3)
            fprintf(stderr, "  step %d: %s\n", k, what);
        partial += info.nodes_run < info.nodes_full;
    }
    ok(!bad, "%s: %d of %d random changes differ", model, bad, steps);
    ok(partial > 0, "%s: %d of %d changes ran fewer nodes than a full evaluation", model, partial, steps);
    check_values(&f);

    /* a stopped evaluation: the batches done are identical to a stopped full
     * one; the next evaluation catches up */
    {
        int64_t stop = batch; /* after the first batch */
        int qi = pick(nq);
        char what[600];
        random_change(&f, qi, what, sizeof what);
        update(&f, what);
        qd_qeval_result got, want;
        qd_eval_opts so = {.batch = batch, .progress = stop_after, .user = &stop};
        ok(!qd_live_eval(f.L, &got, &info, stop_after, &stop, &e), "stopped: %s", e.msg);
        ok(!qd_qeval_run(f.s, f.d, &f.ref, &so, &want, &e), "stopped full: %s", e.msg);
        ok(info.stopped && got.stopped && got.images == batch && same(&got, &want),
           "%s stopped after %s: images %lld, same %d", model, what, (long long)got.images, same(&got, &want));
        ok(info.nchanged > 0 && !qd_live_value(f.L, nbatch - 1, qd_sim_graph(f.s)->outputs[0]) &&
               qd_live_value(f.L, 0, qd_sim_graph(f.s)->outputs[0]),
           "%s: a batch not done after a stop has no up-to-date value", model);
        /* another change on top, then a complete evaluation */
        random_change(&f, pick(nq), what, sizeof what);
        update(&f, what);
        check(&f, "after a stop", &info);
        check(&f, "after a stop, unchanged", &info);
        ok(info.nodes_run == 0, "%s: caught up after the stop (%lld nodes ran)", model, (long long)info.nodes_run);
    }

    /* a change the snapshot cannot see: an int32 bias's FP32 original */
    if (qd_sim_bias_count(f.s) > 0) {
        qd_sim_bias b;
        qd_sim_bias_get(f.s, qd_sim_bias_count(f.s) - 1, &b);
        qd_tensor *t = qd_sim_fp32(f.s, b.value);
        for (int64_t i = 0; i < qd_tensor_numel(t); i++)
            ((float *)t->data)[i] += 3.0f;
        qd_sim_params_changed(f.s);
        qd_qeval_result got, want;
        ok(!qd_live_eval(f.L, &got, &info, NULL, NULL, &e) &&
               !qd_qeval_run(f.s, f.d, &f.ref, &(qd_eval_opts){.batch = batch}, &want, &e),
           "hidden: %s", e.msg);
        ok(!same(&got, &want) && info.nodes_run == 0, "%s: a hidden bias edit is not seen (the test can tell)",
           model);
        qd_live_invalidate(f.L);
        check(&f, "invalidated", &info);
        ok(info.full && info.nodes_run == info.nodes_full, "%s invalidated: full %d", model, info.full);
        check_values(&f);
    }

    /* a quantizer without encodings is refused; the cache is intact after */
    {
        int qi = late >= 0 ? late : 0;
        override(&f, qi, &(qd_override){.set = QD_OV_BITS | QD_OV_ENABLED, .bits = 6, .enabled = 1});
        qd_qeval_result got;
        ok(qd_live_eval(f.L, &got, &info, NULL, NULL, &e) == QD_EINPUT &&
               strstr(e.msg, qd_sim_get(f.s, qi)->name),
           "%s: no encodings refused: %s", model, e.msg);
        update(&f, "encodings back");
        check(&f, "after a refusal", &info);
    }

    /* a budget too small: every evaluation is full, still identical */
    {
        qd_live *L = f.L;
        f.L = qd_live_new(f.s, f.d, &f.ref, &(qd_live_opts){.batch = batch, .mem = 1000}, &e);
        check(&f, "budget", &info);
        ok(!info.cached && info.full && info.cache_bytes == 0, "%s budget: cached %d bytes %zu", model, info.cached,
           info.cache_bytes);
        ok(!qd_live_value(f.L, 0, qd_sim_graph(f.s)->outputs[0]), "%s budget: no cached values", model);
        char what[600];
        random_change(&f, pick(nq), what, sizeof what);
        update(&f, what);
        check(&f, "budget, changed", &info);
        ok(!info.cached && info.full && info.nchanged > 0 && info.nodes_run == info.nodes_full,
           "%s budget after a change: cached %d full %d changed %d", model, info.cached, info.full, info.nchanged);
        qd_live_free(f.L);
        f.L = L;
        /* the first handle saw none of that change yet */
        check(&f, "first handle again", &info);
        ok(info.nchanged > 0, "%s: the first handle sees the change", model);
    }
out:
    printf("%s: %.1f s\n", model, (qd_now_ms() - t0) / 1e3);
    qd_live_free(f.L);
    qd_logits_free(&f.ref);
    qd_sim_free(f.s);
    qd_data_free(cal);
    qd_data_free(f.d);
}

int main(void)
{
    check_model("models/lenet.onnx", TH_LIGHT ? 100 : 200, 32, TH_LIGHT ? 16 : 40); /* last batch 4 or 8 */
    check_model("models/resnet18.onnx", TH_LIGHT ? 28 : 44, 8, TH_LIGHT ? 8 : 20);
    check_model("models/shufflenet_v2.onnx", TH_LIGHT ? 24 : 40, 8, TH_LIGHT ? 6 : 16);
    return th_summary();
}
