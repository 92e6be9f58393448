/* bench_live.c - live what-if evaluation (engine/live.h) against a full
 * re-evaluation, as the TUI uses it: one quantizer's bits 8 -> 4 and back.
 *
 * Per model: a w8a8 sim calibrated like `qdb eval` does (1000 images of
 * fashion-mnist:train, range sqnr, default config), FP32 logits of the
 * first LIVE_IMAGES of a seeded subset of the Fashion-MNIST test set (seed 0,
 * as `qdb eval --limit`), LIVE_THREADS threads, batches of LIVE_BATCH. Then
 * the first live evaluation (every node, fills the cache) and, for a spread
 * of quantizers (LIVE_PICK of them, evenly over the sim's order: early,
 * middle, late; 0 = all), a what-if change: qd_sim_override bits 4 +
 * qd_sim_update, a live evaluation, a full qd_qeval_run of the same state
 * (must be identical), then bits 8 + qd_sim_update and a live evaluation
 * (must equal the first result). Reports medians and maxima of the times,
 * the ratio full / live, node executions, cache bytes. Table on stdout,
 * samples in tests/out/bench_live.json; exits 1 when a result differs.
 *
 * Environment (defaults): LIVE_MODELS="resnet18" (names under models/)
 *   LIVE_IMAGES=1000 LIVE_THREADS=2 LIVE_BATCH=64 LIVE_PICK=16 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "live.h"
#include "qeval.h"
#include "qsetup.h"
#include "util.h"

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static int same(const qd_qeval_result *a, const qd_qeval_result *b)
{
    return a->images == b->images && a->top1 == b->top1 && a->agree == b->agree && a->fp32_top1 == b->fp32_top1 &&
           memcmp(&a->sig, &b->sig, sizeof a->sig) == 0 && memcmp(&a->err, &b->err, sizeof a->err) == 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    if (n <= 0)
        return NAN;
    double *s = malloc(sizeof *s * (size_t)n);
    memcpy(s, v, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_dbl);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static double maxof(const double *v, int n)
{
    double m = n ? v[0] : NAN;
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static const char *kind_name(qd_qkind k) { return k == QD_QK_INPUT ? "input" : k == QD_QK_ACT ? "act" : "param"; }

typedef struct sample {
    int q;
    double update_s, live_s, revert_s, full_s, cpu_live_s, cpu_full_s;
    int64_t nodes_run, nodes_full;
    int identical;
} sample;

/* One model; appends its JSON object to js. Returns results that differ. */
static int bench_model(const char *name, long images, int threads, long batch, int pick, FILE *js, int first)
{
    char path[512];
    snprintf(path, sizeof path, "models/%s.onnx", name);
    qd_err e = {0};
    double calib_s = 0;
    qd_qsetup qo = {.quant = "w8a8", .per_channel = -1, .nthreads = threads, .batch = batch};
    qd_sim *s = qd_qsetup_build(path, &qo, &calib_s, &e);
    qd_dataset *d = s ? qd_data_open("fashion-mnist", NULL, &e) : NULL;
    qd_graph *g = d && !qd_data_limit(d, images, 0, &e) ? qd_graph_load(path, &e) : NULL;
    qd_logits ref = {0};
    qd_eval_opts eo = {.batch = batch, .nthreads = threads};
    if (!g || qd_logits_compute(g, d, &eo, &ref, &e)) {
        fprintf(stderr, "bench_live: %s: %s\n", name, e.msg);
        qd_graph_free(g);
        qd_data_free(d);
        qd_sim_free(s);
        return 1;
    }
    qd_graph_free(g);
    qd_live *L = qd_live_new(s, d, &ref, &(qd_live_opts){.batch = batch}, &e);
    qd_qeval_result base, full, r;
    qd_live_info info;
    int bad = 0;
    double t0 = qd_now_ms();
    if (!L || qd_live_eval(L, &base, &info, NULL, NULL, &e)) {
        fprintf(stderr, "bench_live: %s: %s\n", name, e.msg);
        bad = 1;
        goto out;
    }
    double first_s = (qd_now_ms() - t0) / 1e3;
    qd_eval_opts fo = {.batch = batch};
    t0 = qd_now_ms();
    if (qd_qeval_run(s, d, &ref, &fo, &full, &e)) {
        fprintf(stderr, "bench_live: %s: %s\n", name, e.msg);
        bad = 1;
        goto out;
    }
    double full0_s = (qd_now_ms() - t0) / 1e3;
    bad += !same(&base, &full);
    size_t cache = info.cache_bytes;
    int cached = info.cached;
    int nq = qd_sim_count(s), nact = 0;
    int *qs = malloc(sizeof *qs * (size_t)nq);
    for (int i = 0; i < nq; i++)
        if (qd_quantizer_active(qd_sim_get(s, i)))
            qs[nact++] = i;
    int n = pick > 0 && pick < nact ? pick : nact;
    sample *sm = calloc((size_t)n + 1, sizeof *sm);
    printf("\n%s: %d quantizers (%d active), %lld images, batch %ld, %d threads; calibration %.2f s\n", name, nq,
           nact, (long long)ref.n, batch, threads, calib_s);
    printf("first live eval (every node, fills the cache): %.3f s; full qd_qeval_run %.3f s; cache %.1f MiB%s; "
           "%s\n",
           first_s, full0_s, (double)cache / (1 << 20), cached ? "" : " (over budget: no cache)",
           same(&base, &full) ? "identical" : "DIFFERENT");
    printf("| # | quantizer | kind | nodes run/full | update s | live s | revert s | full s | full/live | identical |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < n; k++) {
        sample *p = &sm[k];
        p->q = qs[n > 1 ? (int)((int64_t)k * (nact - 1) / (n - 1)) : 0];
        qd_quantizer *q = qd_sim_get(s, p->q);
        qd_override ov = {.set = QD_OV_BITS, .bits = 4};
        double c0;
        t0 = qd_now_ms();
        if (qd_sim_override(s, q->name, &ov, NULL, &e) || qd_sim_update(s, &e))
            goto fail;
        p->update_s = (qd_now_ms() - t0) / 1e3;
        t0 = qd_now_ms(), c0 = qd_cpu_ms();
        if (qd_live_eval(L, &r, &info, NULL, NULL, &e))
            goto fail;
        p->live_s = (qd_now_ms() - t0) / 1e3;
        p->cpu_live_s = (qd_cpu_ms() - c0) / 1e3;
        p->nodes_run = info.nodes_run;
        p->nodes_full = info.nodes_full;
        t0 = qd_now_ms(), c0 = qd_cpu_ms();
        if (qd_qeval_run(s, d, &ref, &fo, &full, &e))
            goto fail;
        p->full_s = (qd_now_ms() - t0) / 1e3;
        p->cpu_full_s = (qd_cpu_ms() - c0) / 1e3;
        p->identical = same(&r, &full);
        ov.bits = 8;
        if (qd_sim_override(s, q->name, &ov, NULL, &e) || qd_sim_update(s, &e))
            goto fail;
        t0 = qd_now_ms();
        if (qd_live_eval(L, &r, &info, NULL, NULL, &e))
            goto fail;
        p->revert_s = (qd_now_ms() - t0) / 1e3;
        p->identical &= same(&r, &base);
        bad += !p->identical;
        printf("| %d | %s | %s | %lld/%lld | %.3f | %.3f | %.3f | %.3f | %.1fx | %s |\n", p->q, q->name,
               kind_name(q->kind), (long long)p->nodes_run, (long long)p->nodes_full, p->update_s, p->live_s,
               p->revert_s, p->full_s, p->full_s / p->live_s, p->identical ? "yes" : "NO");
        fflush(stdout);
        continue;
    fail:
        fprintf(stderr, "bench_live: %s %s: %s\n", name, q->name, e.msg);
        bad++;
        n = k;
        break;
    }
    double *v = calloc((size_t)n * 5 + 1, sizeof *v), *live = v, *rev = v + n, *fl = v + 2 * n, *up = v + 3 * n,
           *frac = v + 4 * n;
    for (int k = 0; k < n; k++) {
        live[k] = sm[k].live_s;
        rev[k] = sm[k].revert_s;
        fl[k] = sm[k].full_s;
        up[k] = sm[k].update_s;
        frac[k] = (double)sm[k].nodes_run / (double)(sm[k].nodes_full ? sm[k].nodes_full : 1);
    }
    double ml = median(live, n), mf = median(fl, n);
    printf("summary %s: live eval median %.3f s (max %.3f), after revert median %.3f s (max %.3f); full re-eval "
           "median %.3f s (max %.3f); full/live %.1fx; nodes run median %.0f%% of full; qd_sim_update median %.3f s "
           "(max %.3f); cache %.1f MiB; %s\n",
           name, ml, maxof(live, n), median(rev, n), maxof(rev, n), mf, maxof(fl, n), mf / ml, 100 * median(frac, n),
           median(up, n), maxof(up, n), (double)cache / (1 << 20), bad ? "SOME RESULTS DIFFER" : "all identical");
    fprintf(js,
            "%s  {\"model\": \"%s\", \"images\": %lld, \"batch\": %ld, \"threads\": %d, \"quantizers\": %d, "
            "\"cached\": %d, \"cache_bytes\": %zu, \"first_live_s\": %.6f, \"full0_s\": %.6f, "
            "\"median_live_s\": %.6f, \"max_live_s\": %.6f, \"median_revert_s\": %.6f, \"median_full_s\": %.6f, "
            "\"ratio_full_live\": %.4f, \"median_update_s\": %.6f, \"identical\": %s,\n   \"samples\": [",
            first ? "" : ",\n", name, (long long)ref.n, batch, threads, nq, cached, cache, first_s, full0_s, ml,
            maxof(live, n), median(rev, n), mf, mf / ml, median(up, n), bad ? "false" : "true");
    for (int k = 0; k < n; k++) {
        const sample *p = &sm[k];
        fprintf(js, "%s\n    {\"q\": %d, \"name\": ", k ? "," : "", p->q);
        json_str(js, qd_sim_get(s, p->q)->name);
        fprintf(js,
                ", \"kind\": \"%s\", \"nodes_run\": %lld, \"nodes_full\": %lld, \"update_s\": %.6f, \"live_s\": "
                "%.6f, \"revert_s\": %.6f, \"full_s\": %.6f, \"cpu_live_s\": %.6f, \"cpu_full_s\": %.6f, "
                "\"identical\": %s}",
                kind_name(qd_sim_get(s, p->q)->kind), (long long)p->nodes_run, (long long)p->nodes_full,
                p->update_s, p->live_s, p->revert_s, p->full_s, p->cpu_live_s, p->cpu_full_s,
                p->identical ? "true" : "false");
    }
    fprintf(js, "]}");
    free(v);
    free(sm);
    free(qs);
out:
    qd_live_free(L);
    qd_logits_free(&ref);
    qd_data_free(d);
    qd_sim_free(s);
    return bad;
}

int main(void)
{
    const char *models = getenv("LIVE_MODELS");
    long images = env_long("LIVE_IMAGES", 1000), batch = env_long("LIVE_BATCH", 64);
    int threads = (int)env_long("LIVE_THREADS", 2), pick = (int)env_long("LIVE_PICK", 16);
    char list[512];
    snprintf(list, sizeof list, "%s", models && *models ? models : "resnet18");
    double load0 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la && fscanf(la, "%lf", &load0) != 1)
        load0 = NAN;
    if (la)
        fclose(la);
    printf("bench_live: live what-if evaluation vs full re-evaluation (bits 8 -> 4 of one quantizer, and back)\n");
    printf("goal: < 1 s on ResNet-18, 1000 images, 2 threads\n");
    printf("load average %.2f before (the machine may be shared)\n", load0);
    mkdir("tests/out", 0777);
    FILE *js = fopen("tests/out/bench_live.json.tmp", "w");
    if (!js) {
        perror("bench_live: tests/out/bench_live.json.tmp");
        return 1;
    }
    fprintf(js, "{\"goal\": \"< 1 s on ResNet-18, 1000 images, 2 threads\", \"load_before\": %.2f, \"models\": [\n",
            load0);
    int bad = 0, first = 1;
    for (char *save = NULL, *m = strtok_r(list, " ,", &save); m; m = strtok_r(NULL, " ,", &save), first = 0)
        bad += bench_model(m, images, threads, batch, pick, js, first);
    double load1 = 0;
    if ((la = fopen("/proc/loadavg", "r")) && fscanf(la, "%lf", &load1) != 1)
        load1 = NAN;
    if (la)
        fclose(la);
    fprintf(js, "\n], \"load_after\": %.2f}\n", load1);
    fclose(js);
    rename("tests/out/bench_live.json.tmp", "tests/out/bench_live.json");
    printf("load average %.2f after; samples in tests/out/bench_live.json\n", load1);
    return bad ? 1 : 0;
}
