/* cli.c - qdb's command table and the argv front end. Each command parses
 * its own options, calls the engine, and reports as text or one JSON object
 * on stdout; messages go to stderr. Exit codes: 0 ok, 1 failure, 2 bad input. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "cpu.h"
#include "data.h"
#include "eval.h"
#include "exec.h"
#include "fuse.h"
#include "npy.h"
#include "qdq.h"
#include "qeval.h"
#include "qjson.h"
#include "qsetup.h"
#include "session.h"
#include "summary.h"
#include "util.h"
#include "cliutil.h"

/* "1x3x224x224" -> dims */
static int parse_shape(const char *cmd, const char *s, int *nd, int64_t *dims, qd_err *e)
{
    *nd = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || errno || *nd == QD_MAX_DIMS || (*end && *end != 'x'))
            return qd_errf(e, QD_EINPUT, "qdb %s: --shape must look like 1x3x224x224, got '%s'", cmd, s);
        dims[(*nd)++] = v;
        p = *end ? end + 1 : end;
    }
    if (!*nd)
        return qd_errf(e, QD_EINPUT, "qdb %s: --shape is empty", cmd);
    return QD_OK;
}

static cJSON *json_shape(int nd, const int64_t *d)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < nd; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)d[i]));
    return a;
}

/* "N" for a dynamic dim in text output */
static char *decl_shape_str(const qd_value *v, char *buf, size_t n)
{
    if (v->ndim < 0) {
        snprintf(buf, n, "?");
        return buf;
    }
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < v->ndim && o < n; i++) {
        if (v->dims[i] < 0)
            o += (size_t)snprintf(buf + o, n - o, "%s?", i ? "x" : "");
        else
            o += (size_t)snprintf(buf + o, n - o, i ? "x%lld" : "%lld", (long long)v->dims[i]);
    }
    if (v->ndim == 0)
        snprintf(buf, n, "scalar");
    return buf;
}

static char *human(double v, char *buf, size_t n)
{
    const char *u = "";
    if (v >= 1e9) { v /= 1e9; u = "G"; }
    else if (v >= 1e6) { v /= 1e6; u = "M"; }
    else if (v >= 1e3) { v /= 1e3; u = "K"; }
    snprintf(buf, n, *u ? "%.2f%s" : "%.0f%s", v, u);
    return buf;
}

/* ---- qdb info ---- */

static const char info_help[] =
    "usage: qdb info MODEL [--shape DIMS] [--json]\n"
    "Inputs and outputs with shapes, and a table of layers (name, op, output\n"
    "shape, parameters, MACs) traced with one run at batch 1.\n"
    "  --shape DIMS   shape of the first input for the trace, e.g. 1x3x224x224\n"
    "                 (needed when it has dynamic dimensions other than batch)\n"
    "  --json         print one JSON object on stdout\n";

static cJSON *json_values(const qd_graph *g, const int *idx, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const qd_value *v = &g->values[idx[i]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v->name);
        cJSON_AddStringToObject(o, "dtype", qd_dtype_name(v->dtype));
        cJSON_AddItemToObject(o, "shape", v->ndim >= 0 ? json_shape(v->ndim, v->dims) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void print_values(const char *title, const qd_graph *g, const int *idx, int n)
{
    char buf[128];
    printf("%s:\n", title);
    for (int i = 0; i < n; i++) {
        const qd_value *v = &g->values[idx[i]];
        printf("  %-24s %-8s %s\n", v->name, qd_dtype_name(v->dtype), decl_shape_str(v, buf, sizeof buf));
    }
}

static int cmd_info(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--json", .has_arg = 0}, {.name = "--shape", .has_arg = 1}, {.name = "--help", .has_arg = 0}, {.name = "-h", .has_arg = 0}, {0}};
    enum { JSON, SHAPE, HELP, H };
    args a;
    if (cli_parse("info", argc, argv, opts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(info_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb info: give one MODEL (see qdb info --help)");
    int ov_nd = 0;
    int64_t ov[QD_MAX_DIMS];
    if (opts[SHAPE].val && parse_shape("info", opts[SHAPE].val, &ov_nd, ov, e))
        return e->code;

    qd_graph *g = qd_graph_load(a.pos[0], e);
    if (!g)
        return e->code;
    qd_tensor in[16] = {{0}};
    qd_exec *x = NULL;
    qd_summary s = {0};
    int rc = QD_OK;
    if (g->ninputs > 16) {
        rc = qd_errf(e, QD_EINPUT, "%s: more than 16 inputs", a.pos[0]);
        goto out;
    }
    if ((rc = qd_make_inputs(g, 1, ov_nd, ov, in, e)) || !(x = qd_exec_new(g, 1, e)) ||
        (rc = qd_exec_run(x, in, g->ninputs, e)) || (rc = qd_summary_compute(x, g, &s, e))) {
        if (!rc)
            rc = e->code;
        qd_err_prefix(e, "%s", a.pos[0]);
        goto out;
    }
    char b1[64], b2[64], b3[64];
    if (opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a.pos[0]);
        cJSON_AddStringToObject(j, "producer", g->producer);
        cJSON_AddNumberToObject(j, "opset", g->opset);
        cJSON_AddNumberToObject(j, "ir_version", (double)g->ir_version);
        cJSON_AddItemToObject(j, "inputs", json_values(g, g->inputs, g->ninputs));
        cJSON_AddItemToObject(j, "outputs", json_values(g, g->outputs, g->noutputs));
        cJSON *layers = cJSON_AddArrayToObject(j, "layers");
        for (int i = 0; i < s.n; i++) {
            const qd_layer *r = &s.rows[i];
            const qd_node *n = &g->nodes[r->node];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", n->name);
            cJSON_AddStringToObject(o, "op", n->op_type);
            cJSON_AddItemToObject(o, "shape", json_shape(r->ndim, r->shape));
            cJSON_AddNumberToObject(o, "params", (double)r->params);
            cJSON_AddNumberToObject(o, "macs", (double)r->macs);
            cJSON_AddItemToArray(layers, o);
        }
        cJSON_AddNumberToObject(j, "params", (double)s.params);
        cJSON_AddNumberToObject(j, "macs", (double)s.macs);
        rc = cli_print_json(j);
        goto out;
    }
    printf("model: %s (%s, opset %d, %d nodes)\n", a.pos[0], *g->producer ? g->producer : "unknown producer",
           g->opset, g->nnodes);
    print_values("inputs", g, g->inputs, g->ninputs);
    print_values("outputs", g, g->outputs, g->noutputs);
    printf("layers (traced at %s):\n", qd_shape_str(in[0].ndim, in[0].shape, b1, sizeof b1));
    printf("  %4s  %-36s %-20s %-18s %10s %10s\n", "#", "name", "op", "output", "params", "MACs");
    for (int i = 0; i < s.n; i++) {
        const qd_layer *r = &s.rows[i];
        const qd_node *n = &g->nodes[r->node];
        printf("  %4d  %-36.36s %-20s %-18s %10s %10s\n", i, n->name, n->op_type,
               qd_shape_str(r->ndim, r->shape, b1, sizeof b1), r->params ? human((double)r->params, b2, sizeof b2) : "",
               r->macs ? human((double)r->macs, b3, sizeof b3) : "");
    }
    printf("total: %d layers, %s parameters, %s MACs per image\n", s.n, human((double)s.params, b1, sizeof b1),
           human((double)s.macs / (double)(in[0].ndim ? in[0].shape[0] : 1), b2, sizeof b2));
out:
    qd_summary_free(&s);
    qd_exec_free(x);
    for (int i = 0; i < 16; i++)
        qd_tensor_free(&in[i]);
    qd_graph_free(g);
    return rc;
}

/* ---- qdb run ---- */

static const char run_help[] =
    "usage: qdb run MODEL --input IN.npy --output OUT.npy [options]\n"
    "FP32 inference of one NPY tensor (float32, C order) through the model;\n"
    "writes the model's first output (or --output-name) as NPY.\n"
    "  --threads N        worker threads (default 1)\n"
    "  --no-fuse          run every node as it is in the file (no BN folding or\n"
    "                     Conv+Relu/Clip fusion)\n"
    "  --output-name NAME which graph output to write\n"
    "  --repeat R         timed runs (default 1); --warmup W untimed runs first\n"
    "  --profile          time per op type of the last run, on stderr\n"
    "  --json             print {\"output\", \"shape\", \"ms\"} on stdout\n"
    QUANT_HELP;

/* Per op type: nodes, milliseconds and share of the last run, on stderr. */
static void print_profile(const qd_graph *g, const qd_exec *x)
{
    typedef struct { char op[48]; int n; double ms; } row;
    row t[64];
    int nt = 0;
    double total = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *n = &g->nodes[i];
        char label[48];
        const qd_tensor *w = strcmp(n->op_type, "Conv") == 0 ? qd_node_const_input(g, n, 1) : NULL;
        if (w && w->ndim == 4) /* convs by kind: they dominate */
            snprintf(label, sizeof label, "Conv %s%lldx%lld", qd_attr_int(n, "group", 1) > 1 ? "group " : "",
                     (long long)w->shape[2], (long long)w->shape[3]);
        else
            snprintf(label, sizeof label, "%s", n->op_type);
        int k = 0;
        while (k < nt && strcmp(t[k].op, label) != 0)
            k++;
        if (k == nt && nt < 64) {
            t[nt] = (row){"", 0, 0};
            snprintf(t[nt++].op, sizeof t[0].op, "%s", label);
        }
        if (k < nt) {
            t[k].n++;
            t[k].ms += qd_exec_node_ms(x, i);
        }
        total += qd_exec_node_ms(x, i);
    }
    for (int a = 0; a < nt; a++) /* by time, descending */
        for (int b = a + 1; b < nt; b++)
            if (t[b].ms > t[a].ms) {
                row tmp = t[a];
                t[a] = t[b];
                t[b] = tmp;
            }
    fprintf(stderr, "profile of the last run: %.1f ms in %d nodes\n", total, g->nnodes);
    for (int k = 0; k < nt; k++)
        fprintf(stderr, "  %-22s %4d nodes %9.1f ms %5.1f%%\n", t[k].op, t[k].n, t[k].ms,
                total > 0 ? 100 * t[k].ms / total : 0);
}

static int cmd_run(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--input", .has_arg = 1},  {.name = "--output", .has_arg = 1}, {.name = "--threads", .has_arg = 1},
                  {.name = "--output-name", .has_arg = 1}, {.name = "--repeat", .has_arg = 1}, {.name = "--warmup", .has_arg = 1},
                  {.name = "--json", .has_arg = 0},   {.name = "--help", .has_arg = 0},   {.name = "-h", .has_arg = 0},
                  {.name = "--no-fuse", .has_arg = 0}, {.name = "--profile", .has_arg = 0}, {0}};
    enum { IN, OUT, THREADS, ONAME, REPEAT, WARMUP, JSON, HELP, H, NOFUSE, PROFILE };
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("run", argc, argv, opts, qopts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(run_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb run: give one MODEL (see qdb run --help)");
    if (!opts[IN].val)
        return qd_errf(e, QD_EINPUT, "qdb run: --input IN.npy is required");
    if (!opts[OUT].val && !opts[JSON].val)
        return qd_errf(e, QD_EINPUT, "qdb run: --output OUT.npy is required");
    long threads = 1, repeat = 1, warmup = 0;
    if ((opts[THREADS].val && cli_parse_int("run", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[REPEAT].val && cli_parse_int("run", "--repeat", opts[REPEAT].val, 1, 100000, &repeat, e)) ||
        (opts[WARMUP].val && cli_parse_int("run", "--warmup", opts[WARMUP].val, 0, 100000, &warmup, e)))
        return e->code;

    int rc;
    qd_tensor in = {0};
    qd_exec *x = NULL;
    qd_sim *sim = NULL;
    double *ms = NULL;
    qd_graph *g = qd_graph_load(a.pos[0], e);
    if (!g)
        return e->code;
    int oi = 0;
    if (opts[ONAME].val) {
        oi = -1;
        for (int i = 0; i < g->noutputs; i++)
            if (strcmp(g->values[g->outputs[i]].name, opts[ONAME].val) == 0)
                oi = i;
        if (oi < 0) {
            rc = qd_errf(e, QD_EINPUT, "%s: no graph output named '%s'", a.pos[0], opts[ONAME].val);
            goto out;
        }
    }
    if (g->ninputs != 1) {
        rc = qd_errf(e, QD_EINPUT, "%s: model has %d inputs; qdb run feeds exactly one", a.pos[0], g->ninputs);
        goto out;
    }
    if ((rc = qd_npy_read(opts[IN].val, &in, e)))
        goto out;
    /* simulated (after the cheap checks: calibration takes a while); the sim
     * owns its own copy of the graph */
    if (cli_quant_given(qopts)) {
        qd_qsetup qs;
        if ((rc = cli_quant_setup("run", qopts, NULL, 0, threads, 64, NULL, &qs, e)))
            goto out;
        if (opts[NOFUSE].val) {
            rc = qd_errf(e, QD_EINPUT, "qdb run: --no-fuse does not apply to simulation (BN is always folded)");
            goto out;
        }
        if (!(sim = qd_qsetup_build(a.pos[0], &qs, NULL, e))) {
            rc = e->code;
            goto out;
        }
    }
    if (!sim && !opts[NOFUSE].val && (rc = qd_graph_fuse(g, NULL, e)))
        goto out;
    if (sim)
        x = qd_sim_exec(sim);
    if ((!x && !(x = qd_exec_new(g, (int)threads, e))) || !(ms = calloc((size_t)repeat, sizeof *ms))) {
        rc = e->code ? e->code : qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (long r = 0; r < warmup + repeat; r++) {
        double t0 = qd_now_ms();
        if ((rc = sim ? qd_sim_run(sim, &in, 1, e) : qd_exec_run(x, &in, 1, e))) {
            qd_err_prefix(e, "%s (input %s)", a.pos[0], opts[IN].val);
            goto out;
        }
        if (r >= warmup)
            ms[r - warmup] = qd_now_ms() - t0;
    }
    if (opts[PROFILE].val)
        print_profile(sim ? qd_sim_graph(sim) : g, x);
    const qd_tensor *y = qd_exec_output(x, oi);
    if (opts[OUT].val && (rc = qd_npy_write(opts[OUT].val, y, e)))
        goto out;
    if (opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", g->values[g->outputs[oi]].name);
        cJSON_AddItemToObject(j, "shape", json_shape(y->ndim, y->shape));
        cJSON *t = cJSON_AddArrayToObject(j, "ms");
        for (long r = 0; r < repeat; r++)
            cJSON_AddItemToArray(t, cJSON_CreateNumber(ms[r]));
        cJSON_AddNumberToObject(j, "threads", (double)threads);
        cJSON_AddStringToObject(j, "blas_core", qd_blas_core());
        rc = cli_print_json(j);
    }
out:
    free(ms);
    if (sim)
        qd_sim_free(sim); /* frees its executor */
    else
        qd_exec_free(x);
    qd_tensor_free(&in);
    qd_graph_free(g);
    return rc;
}

/* ---- qdb eval ---- */

static const char eval_help[] =
    "usage: qdb eval MODEL --data SPEC [options]\n"
    "FP32 top-1 / top-5 accuracy of a classifier over a dataset.\n"
    "  --data SPEC        fashion-mnist[:train|:test], idx:IMAGES[,LABELS],\n"
    "                     npy:IMAGES[,LABELS], imagefolder:DIR\n"
    "  --limit N          a seeded random subset of N samples (--seed S, default 0)\n"
    "  --batch B          images per run (default 64)\n"
    "  --threads T        worker threads (default 1)\n"
    "  --resize R --crop C --mean A,B,C --std A,B,C --gray --bgr\n"
    "                     image-folder preprocessing (torchvision order)\n"
    "  --no-fuse          run the graph as it is (no BN folding / Conv+Relu fusion)\n"
    "  --json             print {accuracy, top5, images, images_per_s, ...} on stdout;\n"
    "                     simulated: {accuracy, fp32_accuracy, agreement, sqnr_db, images, ...}\n"
    QUANT_HELP
    "With quantization: simulated and FP32 top-1, top-1 agreement with FP32 and\n"
    "the SQNR of the outputs over the whole set, 20 log10(|y| / |y - yq|).\n";

/* "a,b,c" -> three floats */
static int parse_floats3(const char *cmd, const char *name, const char *s, float v[3], qd_err *e)
{
    char *end;
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        v[i] = strtof(p, &end);
        if (end == p || errno || (i < 2 && *end != ',') || (i == 2 && *end))
            return qd_errf(e, QD_EINPUT, "qdb %s: %s must be three numbers like 0.485,0.456,0.406, got '%s'", cmd,
                           name, s);
        p = end + 1;
    }
    return QD_OK;
}

/* Calibrate, then the FP32 and the simulated pass; one progress bar each. */
static int eval_quant(const char *model, const qd_graph *g, qd_dataset *d, qd_eval_opts eo, qd_qsetup *qs,
                      int json, qd_err *e)
{
    progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
    qs->progress = eo.progress = pr.tty ? cli_progress : NULL;
    qs->user = eo.user = &pr;
    qd_logits ref = {0};
    double calib_s = 0;
    int rc;
    qd_qsetup_fixes fx = {0};
    qs->fixes = &fx;
    qd_sim *s = qd_qsetup_build(model, qs, &calib_s, e);
    if (!s) {
        qd_qsetup_fixes_free(&fx);
        return e->code;
    }
    pr.t0 = qd_now_ms() / 1e3;
    if ((rc = qd_logits_compute(g, d, &eo, &ref, e))) {
        qd_err_prefix(e, "%s (FP32)", model);
        goto out;
    }
    qd_qeval_result r;
    pr.t0 = qd_now_ms() / 1e3;
    if ((rc = qd_qeval_run(s, d, &ref, &eo, &r, e))) {
        qd_err_prefix(e, "%s (simulated)", model);
        goto out;
    }
    double n = r.images ? (double)r.images : 1;
    double fps = ref.seconds > 0 ? ref.n / ref.seconds : 0, qps = r.seconds > 0 ? r.images / r.seconds : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddStringToObject(j, "data", qd_data_describe(d));
        cJSON_AddItemToObject(j, "accuracy", r.labeled ? cJSON_CreateNumber(r.top1 / n) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "fp32_accuracy", r.labeled ? cJSON_CreateNumber(r.fp32_top1 / n) : cJSON_CreateNull());
        cJSON_AddNumberToObject(j, "agreement", r.agree / n);
        cJSON_AddItemToObject(j, "sqnr_db", isfinite(r.sqnr_db) ? cJSON_CreateNumber(r.sqnr_db) : cJSON_CreateNull());
        cJSON_AddNumberToObject(j, "images", (double)r.images);
        cJSON_AddNumberToObject(j, "images_per_s", qps);
        cJSON_AddNumberToObject(j, "fp32_images_per_s", fps);
        cJSON_AddItemToObject(j, "sim", cli_json_quant(qs, s, calib_s));
        rc = cli_print_json(j);
        goto out;
    }
    printf("model: %s\ndata:  %s\n", model, qd_data_describe(d));
    cli_print_quant(qs, s, calib_s);
    if (r.labeled)
        printf("top-1: %.4f simulated, %.4f FP32 (%+.2f points)\n", r.top1 / n, r.fp32_top1 / n,
               100.0 * (r.top1 - r.fp32_top1) / n);
    printf("agreement with FP32 top-1: %.4f (%lld/%lld)\n", r.agree / n, (long long)r.agree, (long long)r.images);
    printf("output SQNR: %.2f dB\n", r.sqnr_db);
    printf("speed: %.0f images/s simulated, %.0f FP32 (%.2fx)\n", qps, fps, fps > 0 ? qps / fps : 0);
out:
    qd_qsetup_fixes_free(&fx);
    qd_logits_free(&ref);
    qd_sim_free(s);
    return rc;
}

static int cmd_eval(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--data", .has_arg = 1},  {.name = "--limit", .has_arg = 1},  {.name = "--seed", .has_arg = 1},    {.name = "--batch", .has_arg = 1},
                  {.name = "--threads", .has_arg = 1}, {.name = "--json", .has_arg = 0}, {.name = "--no-fuse", .has_arg = 0}, {.name = "--resize", .has_arg = 1},
                  {.name = "--crop", .has_arg = 1},  {.name = "--mean", .has_arg = 1},   {.name = "--std", .has_arg = 1},     {.name = "--gray", .has_arg = 0},
                  {.name = "--bgr", .has_arg = 0},   {.name = "--help", .has_arg = 0},   {.name = "-h", .has_arg = 0},        {0}};
    enum { DATA, LIMIT, SEED, BATCH, THREADS, JSON, NOFUSE, RESIZE, CROP, MEAN, STD, GRAY, BGR, HELP, H };
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("eval", argc, argv, opts, qopts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(eval_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb eval: give one MODEL (see qdb eval --help)");
    if (!opts[DATA].val)
        return qd_errf(e, QD_EINPUT, "qdb eval: --data SPEC is required (e.g. --data fashion-mnist)");
    long limit = -1, seed = 0, batch = 64, threads = 1, resize = 0, crop = 0;
    qd_data_opts dopt = {0};
    if ((opts[LIMIT].val && cli_parse_int("eval", "--limit", opts[LIMIT].val, 1, 1L << 40, &limit, e)) ||
        (opts[SEED].val && cli_parse_int("eval", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[BATCH].val && cli_parse_int("eval", "--batch", opts[BATCH].val, 1, 65536, &batch, e)) ||
        (opts[THREADS].val && cli_parse_int("eval", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[RESIZE].val && cli_parse_int("eval", "--resize", opts[RESIZE].val, 1, 1 << 16, &resize, e)) ||
        (opts[CROP].val && cli_parse_int("eval", "--crop", opts[CROP].val, 1, 1 << 16, &crop, e)) ||
        (opts[MEAN].val && parse_floats3("eval", "--mean", opts[MEAN].val, dopt.mean, e)) ||
        (opts[STD].val && parse_floats3("eval", "--std", opts[STD].val, dopt.std, e)))
        return e->code;
    dopt.resize = (int)resize;
    dopt.crop = (int)crop;
    dopt.gray = opts[GRAY].val != NULL;
    dopt.bgr = opts[BGR].val != NULL;

    int rc;
    qd_dataset *d = NULL;
    qd_graph *g = qd_graph_load(a.pos[0], e);
    if (!g)
        return e->code;
    if (!(d = qd_data_open(opts[DATA].val, &dopt, e))) {
        rc = e->code;
        goto out;
    }
    if (limit > 0 && (rc = qd_data_limit(d, limit, (uint64_t)seed, e)))
        goto out;
    if (!opts[NOFUSE].val && (rc = qd_graph_fuse(g, NULL, e)))
        goto out;
    progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
    qd_eval_opts eo = {.batch = batch, .nthreads = (int)threads, .progress = pr.tty ? cli_progress : NULL,
                       .user = &pr};
    if (cli_quant_given(qopts)) {
        qd_qsetup qs;
        if ((rc = cli_quant_setup("eval", qopts, opts[DATA].val, seed, threads, batch, &dopt, &qs, e)))
            goto out;
        rc = eval_quant(a.pos[0], g, d, eo, &qs, opts[JSON].val != NULL, e);
        goto out;
    }
    qd_eval_result r;
    if ((rc = qd_eval_run(g, d, &eo, &r, e))) {
        qd_err_prefix(e, "%s on %s", a.pos[0], opts[DATA].val);
        goto out;
    }
    double acc = r.images ? (double)r.top1 / r.images : 0, top5 = r.images ? (double)r.top5 / r.images : 0;
    double ips = r.seconds > 0 ? r.images / r.seconds : 0;
    if (opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a.pos[0]);
        cJSON_AddStringToObject(j, "data", qd_data_describe(d));
        cJSON_AddItemToObject(j, "accuracy", r.labeled ? cJSON_CreateNumber(acc) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "top5", r.labeled && r.classes >= 5 ? cJSON_CreateNumber(top5) : cJSON_CreateNull());
        cJSON_AddNumberToObject(j, "correct", (double)r.top1);
        cJSON_AddNumberToObject(j, "images", (double)r.images);
        cJSON_AddNumberToObject(j, "images_per_s", ips);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "threads", (double)threads);
        cJSON_AddNumberToObject(j, "batch", (double)batch);
        rc = cli_print_json(j);
        goto out;
    }
    printf("model: %s\ndata:  %s\n", a.pos[0], qd_data_describe(d));
    if (r.labeled)
        printf("top-1: %.4f (%lld/%lld)\ntop-5: %.4f\n", acc, (long long)r.top1, (long long)r.images,
               r.classes >= 5 ? top5 : acc);
    else
        printf("no labels: accuracy not computed (%lld images)\n", (long long)r.images);
    printf("speed: %.0f images/s (%d thread%s, batch %ld)\n", ips, (int)threads, threads > 1 ? "s" : "", batch);
out:
    qd_data_free(d);
    qd_graph_free(g);
    return rc;
}

/* ---- qdb sweep ---- */

static const char sweep_help[] =
    "usage: qdb sweep MODEL --data SPEC [--bits 8,6,4] [--act-bits N] [--fixes LIST] [options]\n"
    "Simulated accuracy at WnAn for each n, with per-tensor and per-channel\n"
    "weights, against one FP32 pass over the same images.\n"
    "  --bits LIST        bit-widths to try (default 8,6,4)\n"
    "  --act-bits N       activations at N bits whatever the weights (WnAN)\n"
    "  --fixes LIST       also with weight fixes, each a '+' list of cle, bc (empirical\n"
    "                     bias correction), ada (AdaRound): e.g. none,cle,cle+bc,ada,cle+ada\n"
    "                     (default none; --adaround-iters N applies to ada)\n"
    "  --data SPEC        evaluation set (as for qdb eval); --limit N --seed S\n"
    "  --range R --calib N --calib-data SPEC --config FILE --set '...'\n"
    "                     as for qdb eval (--config replaces the built-in configs)\n"
    "  --batch B --threads T\n"
    "  --json             {model, data, images, fp32_accuracy, results: [{bits, act_bits,\n"
    "                     per_channel, fixes, accuracy, agreement, sqnr_db}, ...]}\n";

static int cmd_sweep(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--data", .has_arg = 1},  {.name = "--bits", .has_arg = 1},
                  {.name = "--limit", .has_arg = 1}, {.name = "--seed", .has_arg = 1},
                  {.name = "--batch", .has_arg = 1}, {.name = "--threads", .has_arg = 1},
                  {.name = "--json", .has_arg = 0},  {.name = "--help", .has_arg = 0},
                  {.name = "-h", .has_arg = 0},      {.name = "--act-bits", .has_arg = 1},
                  {.name = "--fixes", .has_arg = 1}, {0}};
    enum { DATA, BITS, LIMIT, SEED, BATCH, THREADS, JSON, HELP, H, ABITS, FIXES };
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("sweep", argc, argv, opts, qopts, 1, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(sweep_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb sweep: give one MODEL (see qdb sweep --help)");
    if (!opts[DATA].val)
        return qd_errf(e, QD_EINPUT, "qdb sweep: --data SPEC is required (e.g. --data fashion-mnist)");
    if (qopts[Q_QUANT].val || qopts[Q_PC].val || qopts[Q_PT].val || qopts[Q_ENC].val || qopts[Q_CLE].val ||
        qopts[Q_BC].val || qopts[Q_ADA].val)
        return qd_errf(e, QD_EINPUT, "qdb sweep: --quant, --per-channel, --per-tensor, --encodings, --cle and "
                                     "--bias-correct, --adaround are what the sweep varies (see --fixes); use qdb eval for "
                                     "one setting");
    long limit = -1, seed = 0, batch = 64, threads = 1, abits = 0;
    if (opts[ABITS].val && cli_parse_int("sweep", "--act-bits", opts[ABITS].val, QD_BITS_MIN, QD_BITS_FLOAT, &abits, e))
        return e->code;
    if (abits > QD_BITS_MAX && abits != QD_BITS_FLOAT)
        return qd_errf(e, QD_EINPUT, "qdb sweep: --act-bits must be %d..%d or 32, got %ld", QD_BITS_MIN, QD_BITS_MAX,
                       abits);
    unsigned fixes[16];
    char fixname[16][32];
    int nfix = 0;
    {
        const char *p = opts[FIXES].val ? opts[FIXES].val : "none";
        while (*p && nfix < 16) {
            size_t n = strcspn(p, ",");
            if (n == 0 || n >= sizeof fixname[0])
                return qd_errf(e, QD_EINPUT, "qdb sweep: --fixes: empty or too long item in '%s'", opts[FIXES].val);
            memcpy(fixname[nfix], p, n);
            fixname[nfix][n] = 0;
            unsigned f;
            if (cli_parse_fix("sweep", "--fixes", fixname[nfix], 0, &f, e))
                return e->code;
            fixes[nfix++] = f;
            p += n;
            if (*p == ',')
                p++;
        }
        if (*p)
            return qd_errf(e, QD_EINPUT, "qdb sweep: --fixes: at most 16 items");
    }
    if ((opts[LIMIT].val && cli_parse_int("sweep", "--limit", opts[LIMIT].val, 1, 1L << 40, &limit, e)) ||
        (opts[SEED].val && cli_parse_int("sweep", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[BATCH].val && cli_parse_int("sweep", "--batch", opts[BATCH].val, 1, 65536, &batch, e)) ||
        (opts[THREADS].val && cli_parse_int("sweep", "--threads", opts[THREADS].val, 1, 64, &threads, e)))
        return e->code;
    int bits[16], nbits = 0;
    if (cli_parse_bits("sweep", "--bits", opts[BITS].val ? opts[BITS].val : "8,6,4", bits, 16, &nbits, e))
        return e->code;

    int rc;
    qd_dataset *d = NULL;
    qd_logits ref = {0};
    cJSON *res = cJSON_CreateArray();
    qd_graph *g = qd_graph_load(a.pos[0], e);
    if (!g) {
        cJSON_Delete(res);
        return e->code;
    }
    if (!(d = qd_data_open(opts[DATA].val, NULL, e))) {
        rc = e->code;
        goto out;
    }
    if ((limit > 0 && (rc = qd_data_limit(d, limit, (uint64_t)seed, e))) || (rc = qd_graph_fuse(g, NULL, e)))
        goto out;
    progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
    qd_eval_opts eo = {.batch = batch, .nthreads = (int)threads, .progress = pr.tty ? cli_progress : NULL,
                       .user = &pr};
    if ((rc = qd_logits_compute(g, d, &eo, &ref, e))) {
        qd_err_prefix(e, "%s (FP32)", a.pos[0]);
        goto out;
    }
    double n = ref.n ? (double)ref.n : 1;
    int64_t fp32_top1 = qd_logits_top1(&ref);
    if (!opts[JSON].val) {
        printf("model: %s\ndata:  %s\n", a.pos[0], qd_data_describe(d));
        if (ref.labeled)
            printf("FP32 top-1: %.4f\n", fp32_top1 / n);
        printf("%-7s %-12s %-10s %9s %10s %9s\n", "bits", "weights", "fixes", "top-1", "agreement", "SQNR dB");
    }
    for (int b = 0; b < nbits; b++)
        for (int pc = 0; pc < 2; pc++)
        for (int fi = 0; fi < nfix; fi++) {
            char quant[32];
            int ab = abits ? (int)abits : bits[b];
            snprintf(quant, sizeof quant, "w%da%d", bits[b], ab);
            qd_qsetup qs;
            if ((rc = cli_quant_setup("sweep", qopts, opts[DATA].val, seed, threads, batch, NULL, &qs, e)))
                goto out;
            qs.quant = quant;
            qs.per_channel = pc;
            qs.cle = (fixes[fi] & CLI_FIX_CLE) != 0;
            qs.bias_correct = fixes[fi] & CLI_FIX_BC ? "empirical" : NULL;
            qs.adaround = (fixes[fi] & CLI_FIX_ADA) != 0;
            pr.t0 = qd_now_ms() / 1e3;
            qs.progress = eo.progress;
            qs.user = &pr;
            qd_sim *s = qd_qsetup_build(a.pos[0], &qs, NULL, e);
            if (!s) {
                rc = e->code;
                goto out;
            }
            qd_qeval_result r;
            pr.t0 = qd_now_ms() / 1e3;
            rc = qd_qeval_run(s, d, &ref, &eo, &r, e);
            qd_sim_free(s);
            if (rc) {
                qd_err_prefix(e, "%s (%s)", a.pos[0], quant);
                goto out;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "bits", bits[b]);
            cJSON_AddNumberToObject(o, "act_bits", ab);
            cJSON_AddBoolToObject(o, "per_channel", pc);
            cJSON_AddStringToObject(o, "fixes", fixname[fi]);
            cJSON_AddItemToObject(o, "accuracy", r.labeled ? cJSON_CreateNumber(r.top1 / n) : cJSON_CreateNull());
            cJSON_AddNumberToObject(o, "agreement", r.agree / n);
            cJSON_AddItemToObject(o, "sqnr_db", isfinite(r.sqnr_db) ? cJSON_CreateNumber(r.sqnr_db) : cJSON_CreateNull());
            cJSON_AddItemToArray(res, o);
            if (!opts[JSON].val) {
                printf("W%dA%-4d %-12s %-10s %9.4f %10.4f %9.2f\n", bits[b], ab, pc ? "per-channel" : "per-tensor",
                       fixname[fi], r.labeled ? r.top1 / n : NAN, r.agree / n, r.sqnr_db);
                fflush(stdout);
            }
        }
    if (opts[JSON].val) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a.pos[0]);
        cJSON_AddStringToObject(j, "data", qd_data_describe(d));
        cJSON_AddNumberToObject(j, "images", (double)ref.n);
        cJSON_AddItemToObject(j, "fp32_accuracy", ref.labeled ? cJSON_CreateNumber(fp32_top1 / n) : cJSON_CreateNull());
        cJSON_AddStringToObject(j, "range", qopts[Q_RANGE].val ? qopts[Q_RANGE].val : "sqnr");
        cJSON_AddItemToObject(j, "results", res);
        res = NULL;
        rc = cli_print_json(j);
    }
out:
    cJSON_Delete(res);
    qd_logits_free(&ref);
    qd_data_free(d);
    qd_graph_free(g);
    return rc;
}

/* ---- qdb export ---- */

static const char export_help[] =
    "usage: qdb export encodings MODEL [quantization options] -o FILE.json [--format 0.6.1|1.0.0]\n"
    "       qdb export qdq MODEL [quantization options] -o FILE.onnx\n"
    "       qdb export bundle SESSION --out DIR [--force] [--no-report]\n"
    "encodings: AIMET's encodings JSON of every enabled quantizer (default format 0.6.1).\n"
    "qdq: the BN-folded FP32 model with QuantizeLinear/DequantizeLinear pairs\n"
    "     per the 8-bit encodings (per-channel weights with axis), for ONNX Runtime.\n"
    "bundle: everything of a session (see qdb do): encodings in both formats,\n"
    "     the QDQ model, the quantsim config, the debug report and its plots.\n"
    "  --seed S --threads T --batch B\n"
    "  --json             print {kind, out, format, enabled, int32_biases} on stdout\n"
    QUANT_HELP;

static int cmd_export(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "-o", .has_arg = 1},        {.name = "--output", .has_arg = 1},
                  {.name = "--format", .has_arg = 1},  {.name = "--seed", .has_arg = 1},
                  {.name = "--threads", .has_arg = 1}, {.name = "--batch", .has_arg = 1},
                  {.name = "--help", .has_arg = 0},    {.name = "-h", .has_arg = 0},
                  {.name = "--json", .has_arg = 0},    {0}};
    enum { O, OUTPUT, FORMAT, SEED, THREADS, BATCH, HELP, H, JSON };
    if (argc > 1 && !strcmp(argv[1], "bundle"))
        return cli_export_bundle(argc - 1, argv + 1, e);
    opt qopts[] = QUANT_OPTS;
    args a;
    if (cli_parse2("export", argc, argv, opts, qopts, 2, &a, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(export_help, stdout), QD_OK;
    if (a.npos != 2 || (strcmp(a.pos[0], "encodings") != 0 && strcmp(a.pos[0], "qdq") != 0))
        return qd_errf(e, QD_EINPUT, "qdb export: give what (encodings or qdq) and one MODEL (see qdb export --help)");
    const char *out = opts[O].val ? opts[O].val : opts[OUTPUT].val;
    if (!out)
        return qd_errf(e, QD_EINPUT, "qdb export: -o FILE is required");
    int qdq = !strcmp(a.pos[0], "qdq");
    const char *fmt = opts[FORMAT].val ? opts[FORMAT].val : "0.6.1";
    if (qdq && opts[FORMAT].val)
        return qd_errf(e, QD_EINPUT, "qdb export qdq: --format is for encodings");
    if (strcmp(fmt, "0.6.1") != 0 && strcmp(fmt, "1.0.0") != 0)
        return qd_errf(e, QD_EINPUT, "qdb export: --format must be 0.6.1 or 1.0.0, got '%s'", fmt);
    long seed = 0, threads = 1, batch = 64;
    if ((opts[SEED].val && cli_parse_int("export", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[THREADS].val && cli_parse_int("export", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        (opts[BATCH].val && cli_parse_int("export", "--batch", opts[BATCH].val, 1, 65536, &batch, e)))
        return e->code;
    qd_qsetup qs;
    if (cli_quant_setup("export", qopts, NULL, seed, threads, batch, NULL, &qs, e))
        return e->code;
    progress pr = {qd_now_ms() / 1e3, cli_progress_on()};
    qs.progress = pr.tty ? cli_progress : NULL;
    qs.user = &pr;
    qd_sim *s = qd_qsetup_build(a.pos[1], &qs, NULL, e);
    if (!s)
        return e->code;
    int rc = qdq ? qd_qdq_export(s, out, e) : qd_encodings_write(s, out, fmt, e);
    if (!rc) {
        qd_sim_counts c;
        qd_sim_get_counts(s, &c);
        fprintf(stderr, "qdb export: wrote %s (%d quantizers enabled, %d int32 biases)\n", out, c.enabled,
                c.int32_biases);
        if (opts[JSON].val) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "kind", a.pos[0]);
            cJSON_AddStringToObject(j, "out", out);
            if (!qdq)
                cJSON_AddStringToObject(j, "format", fmt);
            cJSON_AddNumberToObject(j, "enabled", c.enabled);
            cJSON_AddNumberToObject(j, "int32_biases", c.int32_biases);
            rc = cli_print_json(j);
        }
    }
    qd_sim_free(s);
    return rc;
}

/* ---- the command table ---- */

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv, qd_err *e);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "inputs, outputs and the layer table of a model"},
    {"run", cmd_run, "FP32 inference of one NPY tensor"},
    {"eval", cmd_eval, "accuracy over a dataset, FP32 or simulated quantized"},
    {"sweep", cmd_sweep, "simulated accuracy at several bit-widths, per-tensor and per-channel"},
    {"export", cmd_export, "AIMET encodings JSON or a QDQ ONNX model"},
    {"debug", cli_cmd_debug, "the PTQ debugging flowchart: what hurts, why, and what fixes it"},
    {"plot", cli_cmd_plot, "plots with gnuplot: weight ranges, sensitivity, bit-width sweeps, histograms, SQNR"},
    {"cle", cli_cmd_cle, "cross-layer equalization: writes the equalized FP32 model"},
    {"bias-correct", cli_cmd_bias_correct, "bias correction for a quantization: writes the corrected model"},
    {"adaround", cli_cmd_adaround, "AdaRound for a quantization: writes the rounded model and encodings"},
    {"tui", NULL, "the interactive debugger (qdb with no arguments: on the bundled demo)"},
    {"do", cli_cmd_do, "run a command against a session file (made by its first command, load)"},
    {"open", cli_cmd_open, "check a session's model and data and show its state and journal"},
    {"replay", cli_cmd_replay, "re-run a session's journal headless; --check compares every result"},
};

cli_fn cli_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].fn; /* NULL for tui: main.c runs it */
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "qdb %s - terminal debugger for post-training quantization\n\n"
               "usage: qdb COMMAND [ARGS...]     (qdb COMMAND --help for details)\n\ncommands:\n",
            QD_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes: 0 success, 1 failure while working, 2 bad input or usage,\n            3 gnuplot missing or failed (plot; the script and data are written),\n            4 replay --check found a result that differs from the recorded one\n");
}

int qd_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? QD_EINPUT : QD_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        const char *best = qd_cpu_best_blas_core();
        printf("qdb %s (OpenBLAS kernels: %s; best for this CPU: %s)\n", QD_VERSION, qd_blas_core(),
               best ? best : "unknown");
        return QD_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0 || !commands[i].fn)
            continue;
        qd_err e = {0};
        int rc = commands[i].fn(argc - 1, argv + 1, &e);
        if (rc) {
            /* one line: "qdb CMD: where: why" */
            if (strncmp(e.msg, "qdb ", 4) == 0)
                fprintf(stderr, "%s\n", e.msg);
            else
                fprintf(stderr, "qdb %s: %s\n", commands[i].name, e.code ? e.msg : "failed");
            return e.code ? e.code : rc;
        }
        return QD_OK;
    }
    fprintf(stderr, "qdb: unknown command '%s' (see qdb --help)\n", argv[1]);
    return QD_EINPUT;
}
