/* cliutil.c - option parsing, quantization options, JSON output and the
 * progress bar shared by qdb's command files (see cliutil.h). */
#include "cliutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib.h"
#include "util.h"

int cli_parse(const char *cmd, int argc, char **argv, opt *opts, int maxpos, args *a, qd_err *e)
{
    return cli_parse2(cmd, argc, argv, opts, NULL, maxpos, a, e);
}

/* Same with a second option table (the shared quantization options). */
int cli_parse2(const char *cmd, int argc, char **argv, opt *opts, opt *more, int maxpos, args *a, qd_err *e)
{
    a->cmd = cmd;
    a->npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] != '-' || s[1] == 0) {
            if (a->npos >= maxpos)
                return qd_errf(e, QD_EINPUT, "qdb %s: unexpected argument '%s' (see qdb %s --help)", cmd, s, cmd);
            a->pos[a->npos++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0)
            return qd_errf(e, QD_EINPUT, "qdb %s: unexpected '--'", cmd);
        const char *eq = strchr(s, '=');
        size_t len = eq ? (size_t)(eq - s) : strlen(s);
        opt *o = NULL;
        for (opt *p = opts; p->name; p++)
            if (strlen(p->name) == len && strncmp(p->name, s, len) == 0)
                o = p;
        for (opt *p = more; p && p->name; p++)
            if (strlen(p->name) == len && strncmp(p->name, s, len) == 0)
                o = p;
        if (!o)
            return qd_errf(e, QD_EINPUT, "qdb %s: unknown option '%.*s' (see qdb %s --help)", cmd, (int)len, s, cmd);
        if (!o->has_arg) {
            if (eq)
                return qd_errf(e, QD_EINPUT, "qdb %s: option %s takes no value", cmd, o->name);
            o->val = "";
        } else if (eq) {
            o->val = eq + 1;
        } else if (i + 1 < argc) {
            o->val = argv[++i];
        } else {
            return qd_errf(e, QD_EINPUT, "qdb %s: option %s needs a value", cmd, o->name);
        }
        if (o->has_arg) {
            if (o->nvals == OPT_MAXVALS)
                return qd_errf(e, QD_EINPUT, "qdb %s: option %s given more than %d times", cmd, o->name,
                               OPT_MAXVALS);
            o->vals[o->nvals++] = o->val;
        }
    }
    return QD_OK;
}

int cli_parse_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out, qd_err *e)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return qd_errf(e, QD_EINPUT, "qdb %s: %s must be an integer from %ld to %ld, got '%s'", cmd, name, lo, hi, s);
    *out = v;
    return QD_OK;
}

int cli_parse_bits(const char *cmd, const char *opt_name, const char *s, int *out, int max, int *n, qd_err *e)
{
    const char *p = s;
    *n = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < QD_BITS_MIN || v > QD_BITS_MAX || *n == max || (*end && (*end != ',' || !end[1])))
            return qd_errf(e, QD_EINPUT, "qdb %s: %s must be a list like 8,6,4 of %d..%d (at most %d), got '%s'", cmd,
                           opt_name, QD_BITS_MIN, QD_BITS_MAX, max, s);
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!*n)
        return qd_errf(e, QD_EINPUT, "qdb %s: %s is empty", cmd, opt_name);
    return QD_OK;
}

/* Print a JSON object on stdout and free it. */
static struct {
    int on;
    cJSON *j;
} capture;

void cli_capture_begin(void)
{
    cJSON_Delete(capture.j);
    capture.j = NULL;
    capture.on = 1;
}

cJSON *cli_capture_take(void)
{
    cJSON *j = capture.j;
    capture.j = NULL;
    capture.on = 0;
    return j;
}

int cli_print_json(cJSON *j)
{
    if (capture.on) {
        cJSON_Delete(capture.j);
        capture.j = j;
        return j ? QD_OK : QD_EFAIL;
    }
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return QD_EFAIL;
    puts(s);
    free(s);
    return QD_OK;
}

static cli_progress_hook_fn hook_fn;
static void *hook_user;

void cli_progress_set_hook(cli_progress_hook_fn fn, void *user)
{
    hook_fn = fn;
    hook_user = user;
}

int cli_progress_hooked(void)
{
    return hook_fn != NULL;
}

int cli_progress_on(void)
{
    return hook_fn || isatty(2);
}

int cli_progress(void *user, int64_t done, int64_t total)
{
    progress *p = user;
    if (hook_fn)
        return hook_fn(hook_user, done, total);
    double el = qd_now_ms() / 1e3 - p->t0, rate = el > 0 ? done / el : 0;
    int w = 30, fill = total ? (int)(w * done / total) : w;
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld  %.0f img/s  ETA %.0fs ", fill, "##############################",
            w - fill, "", (long long)done, (long long)total, rate, rate > 0 ? (total - done) / rate : 0);
    if (done == total)
        fputc('\n', stderr);
    return 0;
}

int cli_parse_fix(const char *cmd, const char *opt_name, const char *item, int allow_pc, unsigned *out, qd_err *e)
{
    static const struct { const char *name; unsigned bit; } fixes[] = {
        {"none", 0}, {"cle", CLI_FIX_CLE}, {"bc", CLI_FIX_BC}, {"ada", CLI_FIX_ADA}, {"pc", CLI_FIX_PC}};
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", item);
    *out = 0;
    for (char *save = NULL, *t = strtok_r(tmp, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
        size_t i = 0;
        while (i < sizeof fixes / sizeof *fixes && (strcmp(t, fixes[i].name) || (fixes[i].bit == CLI_FIX_PC && !allow_pc)))
            i++;
        if (i == sizeof fixes / sizeof *fixes)
            return qd_errf(e, QD_EINPUT, "qdb %s: %s: unknown fix '%s' (%snone, cle, bc, ada)", cmd, opt_name, t,
                           allow_pc ? "pc, " : "");
        *out |= fixes[i].bit;
    }
    return QD_OK;
}

int cli_quant_given(const opt *q)
{
    for (int i = 0; i < Q__N; i++)
        if (q[i].val)
            return 1;
    return 0;
}

/* Fill o from the parsed quantization options. data_spec is the command's
 * --data (or NULL): Fashion-MNIST calibrates on its training split, other
 * data on itself. */
int cli_quant_setup(const char *cmd, const opt *q, const char *data_spec, long seed, long threads, long batch,
                       const qd_data_opts *dopt, qd_qsetup *o, qd_err *e)
{
    memset(o, 0, sizeof *o);
    long calib = 1000;
    if (q[Q_CALIB].val && cli_parse_int(cmd, "--calib", q[Q_CALIB].val, 1, 1L << 40, &calib, e))
        return e->code;
    if (q[Q_PC].val && q[Q_PT].val)
        return qd_errf(e, QD_EINPUT, "qdb %s: --per-channel and --per-tensor contradict each other", cmd);
    int wb, ab;
    if (q[Q_QUANT].val && qd_qsetup_parse_quant(q[Q_QUANT].val, &wb, &ab, e))
        return qd_err_prefix(e, "qdb %s", cmd), e->code;
    qd_range_method rm;
    if (q[Q_RANGE].val && qd_range_parse(q[Q_RANGE].val, &rm, NULL, e))
        return qd_err_prefix(e, "qdb %s: --range", cmd), e->code;
    o->quant = q[Q_QUANT].val;
    o->per_channel = q[Q_PC].val ? 1 : q[Q_PT].val ? 0 : -1;
    o->range = q[Q_RANGE].val;
    o->calib = calib;
    o->calib_data = q[Q_CALIBDATA].val;
    if (!o->calib_data && data_spec && strncmp(data_spec, "fashion-mnist", 13) != 0)
        o->calib_data = data_spec;
    o->seed = (uint64_t)seed;
    o->config = q[Q_CONFIG].val;
    o->overrides = q[Q_OVERRIDES].val;
    o->sets = q[Q_SET].vals;
    o->nsets = q[Q_SET].nvals;
    o->encodings = q[Q_ENC].val;
    if (q[Q_BIAS].val) {
        if (strcmp(q[Q_BIAS].val, "int32") != 0 && strcmp(q[Q_BIAS].val, "float") != 0)
            return qd_errf(e, QD_EINPUT, "qdb %s: --bias '%s': expected int32 or float", cmd, q[Q_BIAS].val);
        o->float_bias = !strcmp(q[Q_BIAS].val, "float");
    }
    o->cle = q[Q_CLE].val != NULL;
    if ((q[Q_CLEKEEP].val || q[Q_CLENOHBA].val) && !o->cle)
        return qd_errf(e, QD_EINPUT, "qdb %s: --cle-keep-relu6 and --cle-no-hba go with --cle", cmd);
    o->cle_keep_relu6 = q[Q_CLEKEEP].val != NULL;
    o->cle_no_hba = q[Q_CLENOHBA].val != NULL;
    o->adaround = q[Q_ADA].val != NULL || q[Q_ADAIT].val != NULL;
    long iters = 0;
    if (q[Q_ADAIT].val && cli_parse_int(cmd, "--adaround-iters", q[Q_ADAIT].val, 1, 1000000, &iters, e))
        return e->code;
    o->adaround_iters = (int)iters;
    o->bias_correct = q[Q_BC].val;
    if (o->bias_correct && strcmp(o->bias_correct, "empirical") != 0 && strcmp(o->bias_correct, "analytic") != 0)
        return qd_errf(e, QD_EINPUT, "qdb %s: --bias-correct '%s': expected empirical or analytic", cmd,
                       o->bias_correct);
    o->nthreads = (int)threads;
    o->batch = batch;
    o->dopts = o->calib_data == data_spec ? dopt : NULL;
    return QD_OK;
}

const char *cli_range_label(const qd_qsetup *o) { return o->range ? o->range : "sqnr"; }

cJSON *cli_json_quant(const qd_qsetup *o, qd_sim *s, double calib_s)
{
    cJSON *j = cJSON_CreateObject();
    qd_sim_counts c;
    qd_sim_get_counts(s, &c);
    cJSON_AddStringToObject(j, "quant", o->quant ? o->quant : "w8a8");
    cJSON_AddBoolToObject(j, "per_channel", o->per_channel == 1);
    cJSON_AddStringToObject(j, "range", cli_range_label(o));
    cJSON_AddStringToObject(j, "config", o->config ? o->config : o->per_channel == 1 ? "per_channel" : "default");
    cJSON_AddNumberToObject(j, "calib_images", (double)o->calib);
    cJSON_AddNumberToObject(j, "calib_seconds", calib_s);
    cJSON_AddNumberToObject(j, "input_quantizers", c.inputs);
    cJSON_AddNumberToObject(j, "activation_quantizers", c.acts);
    cJSON_AddNumberToObject(j, "param_quantizers", c.params);
    cJSON_AddNumberToObject(j, "enabled_quantizers", c.enabled);
    cJSON_AddNumberToObject(j, "int32_biases", c.int32_biases);
    cJSON_AddNumberToObject(j, "bn_folded", c.bn_folded);
    const qd_qsetup_fixes *f = o->fixes;
    if (f && f->cle_done) {
        cJSON *c2 = cJSON_AddObjectToObject(j, "cle");
        cJSON_AddNumberToObject(c2, "pairs", f->cle.pairs);
        cJSON_AddNumberToObject(c2, "triplets", f->cle.triplets);
        cJSON_AddNumberToObject(c2, "relu6_replaced", f->cle.relu6_replaced);
        cJSON_AddNumberToObject(c2, "hba_channels", f->cle.hba_absorbed);
        cJSON_AddNumberToObject(c2, "skipped", f->cle.nskipped);
    }
    if (f && f->bc_done) {
        cJSON *b = cJSON_AddObjectToObject(j, "bias_correction");
        cJSON_AddStringToObject(b, "mode", o->bias_correct);
        cJSON_AddNumberToObject(b, "layers", f->bc.layers);
        cJSON_AddNumberToObject(b, "skipped", f->bc.skipped);
        cJSON_AddNumberToObject(b, "images", (double)f->bc.images);
        cJSON_AddNumberToObject(b, "seconds", f->bc.seconds);
    }
    if (f && f->ada_done) {
        cJSON *a = cJSON_AddObjectToObject(j, "adaround");
        cJSON_AddNumberToObject(a, "layers", f->ada.nlayers);
        cJSON_AddNumberToObject(a, "skipped", f->ada.skipped);
        cJSON_AddNumberToObject(a, "seconds", f->ada.seconds);
    }
    return j;
}

void cli_print_quant(const qd_qsetup *o, qd_sim *s, double calib_s)
{
    qd_sim_counts c;
    qd_sim_get_counts(s, &c);
    printf("quant: %s, %s weights, range %s, config %s\n", o->quant ? o->quant : "w8a8",
           o->per_channel == 1 ? "per-channel" : "per-tensor", cli_range_label(o),
           o->config ? o->config : o->per_channel == 1 ? "per_channel" : "default");
    printf("       %d quantizers (%d input, %d activation, %d param; %d enabled), %d int32 biases, "
           "%d batch norms folded\n",
           c.inputs + c.acts + c.params, c.inputs, c.acts, c.params, c.enabled, c.int32_biases, c.bn_folded);
    if (o->encodings)
        printf("       encodings from %s\n", o->encodings);
    const qd_qsetup_fixes *f = o->fixes;
    if (f && f->cle_done)
        printf("CLE: %d pairs, %d triplets equalized, %d ReLU6 -> ReLU, %d channels' high bias absorbed, "
               "%d layers not equalized\n",
               f->cle.pairs, f->cle.triplets, f->cle.relu6_replaced, f->cle.hba_absorbed, f->cle.nskipped);
    if (f && f->bc_done)
        printf("bias correction (%s): %d layers corrected, %d skipped, %.2f s\n", o->bias_correct, f->bc.layers,
               f->bc.skipped, f->bc.seconds);
    if (f && f->ada_done)
        printf("AdaRound: %d layers, %d skipped, %.1f s\n", f->ada.nlayers, f->ada.skipped, f->ada.seconds);
    printf("calibration: %lld images of %s in %.2f s\n", (long long)o->calib,
           o->calib_data ? o->calib_data : "fashion-mnist:train", calib_s);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

void cli_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
