/* cli_fix.c - the weight-fix commands: qdb cle, qdb bias-correct (and the
 * model files they write, which eval, sweep and export take like any other). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cliutil.h"
#include "fuse.h"
#include "onnx_save.h"
#include "qeval.h"
#include "qjson.h"
#include "util.h"

/* ---- qdb cle ---- */

static const char cle_help[] =
    "usage: qdb cle MODEL -o OUT.onnx [--keep-relu6] [--no-hba] [--data SPEC] [--json]\n"
    "Cross-layer equalization (Nagel et al. 2019): folds the batch norms, replaces\n"
    "ReLU6 by ReLU between layers it equalizes, rescales the output channels of\n"
    "Conv->Conv pairs and Conv->depthwise->Conv triplets so that their weight\n"
    "ranges match, and absorbs high biases through ReLUs. Writes the equalized\n"
    "FP32 model and, per layer, the spread of its per-channel weight ranges\n"
    "(largest / smallest non-zero) before and after.\n"
    "  --keep-relu6       leave ReLU6 alone (those chains are then not equalized;\n"
    "                     the model computes exactly what it did)\n"
    "  --no-hba           no high-bias absorption\n"
    "  --data SPEC        also evaluate the FP32 model before and after on SPEC\n"
    "                     (--limit N --seed S): the accuracy change of the ReLU6\n"
    "                     replacement (if FP32 accuracy drops, do not use CLE)\n"
    "  --threads T --batch B\n"
    "  --json             one JSON object with every layer's ranges\n";

static cJSON *json_floats(const float *v, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* FP32 top-1 of the original and the equalized model on d, and how much
 * their logits differ: fills acc0, acc1, agree (fractions), max_rel. */
typedef struct cle_eval {
    int64_t n;
    double acc0, acc1, agree, max_rel;
    int labeled;
} cle_eval;

static int eval_both(const char *model, const qd_graph *eq, qd_dataset *d, const qd_eval_opts *eo, cle_eval *r,
                     qd_err *e)
{
    qd_logits l0 = {0}, l1 = {0};
    qd_graph *g0 = qd_graph_load(model, e), *g1 = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = !g0 ? e->code : qd_graph_save_mem(eq, &buf, &len, e);
    if (!rc && !(g1 = qd_graph_load_mem(buf, len, "equalized model", e)))
        rc = e->code;
    if (!rc)
        rc = qd_graph_fuse(g0, NULL, e) || qd_graph_fuse(g1, NULL, e) ? e->code : QD_OK;
    if (!rc && !(rc = qd_logits_compute(g0, d, eo, &l0, e)))
        rc = qd_logits_compute(g1, d, eo, &l1, e);
    if (!rc) {
        r->n = l0.n;
        r->labeled = l0.labeled;
        double n = l0.n ? (double)l0.n : 1;
        r->acc0 = qd_logits_top1(&l0) / n;
        r->acc1 = qd_logits_top1(&l1) / n;
        int64_t agree = 0;
        double md = 0, mx = 0;
        for (int64_t i = 0; i < l0.n; i++) {
            const float *a = l0.y + i * l0.classes, *b = l1.y + i * l1.classes;
            int ia = 0, ib = 0;
            for (int k = 0; k < l0.classes; k++) {
                ia = a[k] > a[ia] ? k : ia;
                ib = b[k] > b[ib] ? k : ib;
                md = fmax(md, fabs((double)a[k] - b[k]));
                mx = fmax(mx, fabs((double)a[k]));
            }
            agree += ia == ib;
        }
        r->agree = agree / n;
        r->max_rel = mx > 0 ? md / mx : md;
    }
    free(buf);
    qd_logits_free(&l0);
    qd_logits_free(&l1);
    qd_graph_free(g0);
    qd_graph_free(g1);
    return rc;
}

int cli_cmd_cle(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "-o", .has_arg = 1},        {.name = "--output", .has_arg = 1},
                  {.name = "--keep-relu6", .has_arg = 0}, {.name = "--no-hba", .has_arg = 0},
                  {.name = "--data", .has_arg = 1},    {.name = "--limit", .has_arg = 1},
                  {.name = "--seed", .has_arg = 1},    {.name = "--threads", .has_arg = 1},
                  {.name = "--batch", .has_arg = 1},   {.name = "--json", .has_arg = 0},
                  {.name = "--help", .has_arg = 0},    {.name = "-h", .has_arg = 0},
                  {0}};
    enum { O, OUTPUT, KEEP6, NOHBA, DATA, LIMIT, SEED, THREADS, BATCH, JSON, HELP, H };
    args a;
    if (cli_parse("cle", argc, argv, opts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(cle_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb cle: give one MODEL (see qdb cle --help)");
    const char *out = opts[O].val ? opts[O].val : opts[OUTPUT].val;
    if (!out)
        return qd_errf(e, QD_EINPUT, "qdb cle: -o OUT.onnx is required");
    long limit = -1, seed = 0, threads = 1, batch = 64;
    if ((opts[LIMIT].val && cli_parse_int("cle", "--limit", opts[LIMIT].val, 1, 1L << 40, &limit, e)) ||
        (opts[SEED].val && cli_parse_int("cle", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[THREADS].val && cli_parse_int("cle", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[BATCH].val && cli_parse_int("cle", "--batch", opts[BATCH].val, 1, 65536, &batch, e)))
        return e->code;
    qd_cle_opts co = QD_CLE_OPTS_DEFAULT;
    co.relu6_to_relu = !opts[KEEP6].val;
    co.hba = !opts[NOHBA].val;

    int rc;
    qd_cle_report r = {0};
    qd_dataset *d = NULL;
    cle_eval ev = {0};
    qd_graph *g = qd_graph_load(a.pos[0], e);
    if (!g)
        return e->code;
    if ((rc = qd_cle(g, &co, &r, e))) {
        qd_err_prefix(e, "%s", a.pos[0]);
        goto out;
    }
    if (opts[DATA].val) {
        if (!(d = qd_data_open(opts[DATA].val, NULL, e)) ||
            (limit > 0 && qd_data_limit(d, limit, (uint64_t)seed, e))) {
            rc = e->code;
            goto out;
        }
        progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
        qd_eval_opts eo = {.batch = batch, .nthreads = (int)threads, .progress = pr.tty ? cli_progress : NULL,
                           .user = &pr};
        if ((rc = eval_both(a.pos[0], g, d, &eo, &ev, e)))
            goto out;
    }
    if ((rc = qd_graph_save(g, out, e)))
        goto out;
    if (opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a.pos[0]);
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddNumberToObject(j, "bn_folded", r.bn_folded);
        cJSON_AddNumberToObject(j, "pairs", r.pairs);
        cJSON_AddNumberToObject(j, "triplets", r.triplets);
        cJSON_AddNumberToObject(j, "relu6_replaced", r.relu6_replaced);
        cJSON_AddNumberToObject(j, "hba_channels", r.hba_absorbed);
        cJSON_AddNumberToObject(j, "iterations", r.iterations);
        cJSON_AddBoolToObject(j, "converged", r.converged);
        cJSON *ls = cJSON_AddArrayToObject(j, "layers");
        for (int i = 0; i < r.nlayers; i++) {
            const qd_cle_layer *l = &r.layers[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", l->name);
            cJSON_AddNumberToObject(o, "channels", (double)l->nch);
            cJSON_AddBoolToObject(o, "depthwise", l->depthwise);
            cJSON_AddBoolToObject(o, "equalized", l->equalized);
            cJSON_AddNumberToObject(o, "spread_before", l->spread_before);
            cJSON_AddNumberToObject(o, "spread_after", l->spread_after);
            cJSON_AddItemToObject(o, "range_before", json_floats(l->range_before, l->nch));
            cJSON_AddItemToObject(o, "range_after", json_floats(l->range_after, l->nch));
            cJSON_AddItemToArray(ls, o);
        }
        cJSON *sk = cJSON_AddArrayToObject(j, "skipped");
        for (int i = 0; i < r.nskipped; i++)
            cJSON_AddItemToArray(sk, cJSON_CreateString(r.skipped[i]));
        if (d) {
            cJSON *f = cJSON_AddObjectToObject(j, "fp32");
            cJSON_AddStringToObject(f, "data", qd_data_describe(d));
            cJSON_AddNumberToObject(f, "images", (double)ev.n);
            cJSON_AddItemToObject(f, "accuracy_before", ev.labeled ? cJSON_CreateNumber(ev.acc0) : cJSON_CreateNull());
            cJSON_AddItemToObject(f, "accuracy_after", ev.labeled ? cJSON_CreateNumber(ev.acc1) : cJSON_CreateNull());
            cJSON_AddNumberToObject(f, "agreement", ev.agree);
            cJSON_AddNumberToObject(f, "max_rel_diff", ev.max_rel);
        }
        rc = cli_print_json(j);
        goto out;
    }
    printf("model: %s -> %s\n", a.pos[0], out);
    printf("%d batch norms folded; %d pairs and %d triplets equalized in %d passes%s; %d ReLU6 -> ReLU; "
           "high bias absorbed on %d channels\n",
           r.bn_folded, r.pairs, r.triplets, r.iterations, r.converged ? "" : " (not converged)", r.relu6_replaced,
           r.hba_absorbed);
    printf("%-44s %6s %10s %10s  %s\n", "layer", "ch", "spread", "after", "");
    for (int i = 0; i < r.nlayers; i++) {
        const qd_cle_layer *l = &r.layers[i];
        printf("%-44.44s %6lld %10.2f %10.2f  %s%s\n", l->name, (long long)l->nch, l->spread_before,
               l->spread_after, l->equalized ? "equalized" : "-", l->depthwise ? " (depthwise)" : "");
    }
    for (int i = 0; i < r.nskipped; i++)
        printf("  %s\n", r.skipped[i]);
    if (d) {
        if (ev.labeled)
            printf("FP32 top-1 on %s: %.4f before, %.4f after (%+.2f points)\n", qd_data_describe(d), ev.acc0,
                   ev.acc1, 100 * (ev.acc1 - ev.acc0));
        printf("FP32 agreement before/after: %.4f; largest logit change %.3g of the largest logit\n", ev.agree,
               ev.max_rel);
    }
out:
    qd_cle_report_free(&r);
    qd_data_free(d);
    qd_graph_free(g);
    return rc;
}

/* The sim's FP32 graph (BN folded, fixed biases and weights) to out, and
 * its encodings to enc (may be NULL). */
static int save_fixed(qd_sim *s, const char *out, const char *enc, qd_err *e)
{
    qd_sim_set_fp32(s, 1);
    qd_sim_apply(s);
    int rc = qd_graph_save(qd_sim_graph(s), out, e);
    qd_sim_set_fp32(s, 0);
    qd_sim_apply(s);
    if (!rc && enc && (rc = qd_encodings_write(s, enc, "0.6.1", e)))
        unlink(out); /* the model is only of use with its encodings */
    return rc;
}

/* ---- qdb bias-correct, qdb adaround ---- */

static const char bc_help[] =
    "usage: qdb bias-correct MODEL [quantization options] [--mode empirical|analytic] -o OUT.onnx\n"
    "                        [--encodings-out ENC.json] [--images N]\n"
    "Bias correction (white paper 4.5) for the given quantization: the biases of\n"
    "Conv/Gemm layers absorb the mean output error that weight quantization causes,\n"
    "layer by layer. Writes the BN-folded FP32 model with the corrected biases (run\n"
    "it with the same quantization options: qdb eval OUT.onnx --quant ...).\n"
    "  --mode M           empirical (default; on calibration images) or analytic\n"
    "                     (data-free, from the batch norms before each layer)\n"
    "  --images N         empirical: calibration images used (default 512)\n"
    "  --encodings-out F  also write the sim's AIMET encodings (0.6.1)\n"
    "  --seed S --threads T --batch B --json\n" QUANT_HELP;

static const char ada_help[] =
    "usage: qdb adaround MODEL [quantization options] -o OUT.onnx --encodings-out ENC.json\n"
    "AdaRound (Nagel et al. 2020; white paper 4.6) for the given quantization:\n"
    "each Conv/Gemm weight learns, layer by layer on the calibration images,\n"
    "whether to round up or down so that the layer's output matches FP32. Writes\n"
    "the BN-folded model whose weights are the rounded grid values, and the\n"
    "encodings (weights frozen) that go with it: qdb eval OUT.onnx --quant ...\n"
    "--encodings ENC.json reproduces the result. Also --cle / --bias-correct first.\n"
    "  --iterations N     Adam steps per layer (default 500)\n"
    "  --seed S --threads T --batch B --json\n" QUANT_HELP;

/* Per-layer report lines of either fix, as JSON (j != NULL) or text. */
static void report_layers(const qd_graph *g, const qd_qsetup_fixes *fx, int ada, cJSON *j)
{
    cJSON *ls = j ? cJSON_AddArrayToObject(j, "layers") : NULL;
    if (!j && ada)
        printf("%-44s %9s %8s %12s %12s %8s\n", "layer", "weights", "seconds", "MSE nearest", "MSE AdaRound",
               "flipped");
    else if (!j)
        printf("%-44s %12s %12s\n", "layer", "mean |db|", "max |db|");
    int n = ada ? fx->ada.nlayers : fx->bc.n;
    for (int i = 0; i < n; i++) {
        const qd_adaround_layer *al = ada ? &fx->ada.layers[i] : NULL;
        const qd_bc_layer *bl = ada ? NULL : &fx->bc.per_layer[i];
        const char *name = g->nodes[ada ? al->node : bl->node].name;
        if (j) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", name);
            if (ada) {
                cJSON_AddNumberToObject(o, "weights", (double)al->weights);
                cJSON_AddNumberToObject(o, "seconds", al->seconds);
                cJSON_AddNumberToObject(o, "mse_nearest", al->loss_nearest);
                cJSON_AddNumberToObject(o, "mse_adaround", al->loss_adaround);
                cJSON_AddNumberToObject(o, "flipped", al->frac_flipped);
                cJSON_AddBoolToObject(o, "kept_nearest", al->kept_nearest);
            } else {
                cJSON_AddBoolToObject(o, "corrected", bl->corrected);
                if (bl->why)
                    cJSON_AddStringToObject(o, "skipped", bl->why);
                cJSON_AddNumberToObject(o, "mean_abs_shift", bl->mean_abs_shift);
                cJSON_AddNumberToObject(o, "max_abs_shift", bl->max_abs_shift);
            }
            cJSON_AddItemToArray(ls, o);
        } else if (ada) {
            printf("%-44.44s %9lld %8.2f %12.4g %12.4g %7.1f%%%s\n", name, (long long)al->weights, al->seconds,
                   al->loss_nearest, al->loss_adaround, 100 * al->frac_flipped,
                   al->kept_nearest ? " (nearest kept)" : "");
        } else if (bl->corrected) {
            printf("%-44.44s %12.4g %12.4g\n", name, bl->mean_abs_shift, bl->max_abs_shift);
        } else {
            printf("%-44.44s skipped: %s\n", name, bl->why ? bl->why : "");
        }
    }
}

/* qdb bias-correct (ada = 0) and qdb adaround (ada = 1): the fix on a
 * calibrated sim, then the fixed FP32 model (and encodings) written. */
static int fix_command(const char *cmd, int ada, int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "-o", .has_arg = 1},         {.name = "--output", .has_arg = 1},
                  {.name = "--encodings-out", .has_arg = 1}, {.name = "--seed", .has_arg = 1},
                  {.name = "--threads", .has_arg = 1},  {.name = "--batch", .has_arg = 1},
                  {.name = "--json", .has_arg = 0},     {.name = "--help", .has_arg = 0},
                  {.name = "-h", .has_arg = 0},
                  /* bias-correct: --mode --images; adaround: --iterations */
                  {.name = ada ? "--iterations" : "--mode", .has_arg = 1},
                  {.name = ada ? NULL : "--images", .has_arg = 1}, {0}};
    enum { O, OUTPUT, ENCOUT, SEED, THREADS, BATCH, JSON, HELP, H, MODE_ITERS, IMAGES };
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2(cmd, argc, argv, opts, qopts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(ada ? ada_help : bc_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb %s: give one MODEL (see qdb %s --help)", cmd, cmd);
    const char *out = opts[O].val ? opts[O].val : opts[OUTPUT].val;
    if (!out || (ada && !opts[ENCOUT].val))
        return qd_errf(e, QD_EINPUT, "qdb %s: %s", cmd,
                       ada ? "-o OUT.onnx and --encodings-out ENC.json are required" : "-o OUT.onnx is required");
    if (!ada && qopts[Q_BC].val)
        return qd_errf(e, QD_EINPUT, "qdb %s: use --mode, not --bias-correct", cmd);
    long n = ada ? 0 : 512, seed = 0, threads = 1, batch = 64;
    if ((!ada && opts[IMAGES].val && cli_parse_int(cmd, "--images", opts[IMAGES].val, 1, 1L << 40, &n, e)) ||
        (ada && opts[MODE_ITERS].val && cli_parse_int(cmd, "--iterations", opts[MODE_ITERS].val, 1, 1000000, &n, e)) ||
        (opts[SEED].val && cli_parse_int(cmd, "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[THREADS].val && cli_parse_int(cmd, "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[BATCH].val && cli_parse_int(cmd, "--batch", opts[BATCH].val, 1, 65536, &batch, e)))
        return e->code;
    qd_qsetup qs;
    if (cli_quant_setup(cmd, qopts, NULL, seed, threads, batch, NULL, &qs, e))
        return e->code;
    if (ada) {
        if (n && qs.adaround_iters)
            return qd_errf(e, QD_EINPUT, "qdb %s: give --iterations or --adaround-iters, not both", cmd);
        qs.adaround = 1;
        if (n) /* else --adaround-iters, or the default */
            qs.adaround_iters = (int)n;
    } else {
        qs.bias_correct = opts[MODE_ITERS].val ? opts[MODE_ITERS].val : "empirical";
        if (strcmp(qs.bias_correct, "empirical") != 0 && strcmp(qs.bias_correct, "analytic") != 0)
            return qd_errf(e, QD_EINPUT, "qdb %s: --mode '%s': expected empirical or analytic", cmd, qs.bias_correct);
        qs.bc_images = n;
        if (n > qs.calib)
            return qd_errf(e, QD_EINPUT, "qdb %s: --images %ld is more than the %lld calibration images (--calib)",
                           cmd, n, (long long)qs.calib);
    }
    qd_qsetup_fixes fx = {0};
    qs.fixes = &fx;
    progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
    qs.progress = pr.tty ? cli_progress : NULL;
    qs.user = &pr;
    double calib_s = 0;
    qd_sim *s = qd_qsetup_build(a.pos[0], &qs, &calib_s, e);
    int rc = s ? save_fixed(s, out, opts[ENCOUT].val, e) : e->code;
    if (!rc && opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a.pos[0]);
        cJSON_AddStringToObject(j, "output", out);
        if (opts[ENCOUT].val)
            cJSON_AddStringToObject(j, "encodings", opts[ENCOUT].val);
        cJSON_AddItemToObject(j, "sim", cli_json_quant(&qs, s, calib_s));
        report_layers(qd_sim_graph(s), &fx, ada, j);
        rc = cli_print_json(j);
    } else if (!rc) {
        printf("model: %s -> %s%s%s\n", a.pos[0], out, opts[ENCOUT].val ? ", encodings " : "",
               opts[ENCOUT].val ? opts[ENCOUT].val : "");
        cli_print_quant(&qs, s, calib_s);
        report_layers(qd_sim_graph(s), &fx, ada, NULL);
    }
    qd_qsetup_fixes_free(&fx);
    qd_sim_free(s);
    return rc;
}

int cli_cmd_bias_correct(int argc, char **argv, qd_err *e) { return fix_command("bias-correct", 0, argc, argv, e); }

int cli_cmd_adaround(int argc, char **argv, qd_err *e) { return fix_command("adaround", 1, argc, argv, e); }
