/* sesscmd.c - commands against a session: qdb do SESSION COMMAND [ARGS],
 * qdb open SESSION and qdb replay SESSION.
 *
 * A session command either changes the session's state (load, set, unset,
 * cle, bias-correct, adaround, undo, and quantization options given to eval,
 * export or run, which stick) or runs one of the CLI's commands with the
 * session's model, data and quantization filled in (eval, sweep, debug,
 * export, plot, info, run). The state is a fold of the journal's
 * state-changing entries, so undo marks an entry and folds again, and replay
 * re-runs the journal from an empty session. Measuring commands record their
 * JSON result, flattened to scalars, which replay --check compares. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "cli.h"
#include "cliutil.h"
#include "data.h"
#include "graph.h"
#include "qjson.h"
#include "session.h"
#include "sesscmd.h"
#include "sha256.h"
#include "util.h"

enum { QD_EDIVERGED = 4 };

/* ---- a growing argv ---- */

typedef struct argl {
    char **v;
    int n;
    int oom;
} argl;

static void push(argl *a, const char *s)
{
    if (qd_strv_push(&a->v, &a->n, s))
        a->oom = 1;
}

static void pushf(argl *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pushf(argl *a, const char *fmt, ...)
{
    char buf[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    push(a, buf);
}

static void argl_free(argl *a)
{
    qd_strv_free(a->v, a->n);
    memset(a, 0, sizeof *a);
}

static int set_str(char **dst, const char *v)
{
    char *d = v ? strdup(v) : NULL;
    if (v && !d)
        return QD_EFAIL;
    free(*dst);
    *dst = d;
    return QD_OK;
}

/* ---- what the state gives the CLI's commands ---- */

/* The model as the command sees it: as recorded when that exists from here
 * (or is absolute), else relative to the session file's directory. */
const char *sess_model_path(const sess_ctx *c, char *buf, size_t n)
{
    const char *p = c->s->model;
    if (p[0] == '/' || !c->path || access(p, F_OK) == 0)
        return p;
    char *d = strdup(c->path);
    if (!d)
        return p;
    snprintf(buf, n, "%s/%s", dirname(d), p);
    free(d);
    return access(buf, F_OK) == 0 ? buf : p;
}

static void data_args(const qd_session *s, argl *a)
{
    push(a, "--data");
    push(a, s->data);
    if (s->limit > 0)
        pushf(a, "--limit=%lld", (long long)s->limit);
    pushf(a, "--seed=%llu", (unsigned long long)s->seed);
}

/* The session's quantization as options. debug: for qdb debug, which takes
 * the bits as --target (1: give it, 2: the user did) and tries the
 * transforms itself: only what it takes. */
static void quant_opts(const qd_session *s, argl *a, int debug)
{
    if (!s->quant_on)
        return;
    const qd_sess_quant *q = &s->q;
    if (debug == 1)
        pushf(a, "--target=%s", q->quant ? q->quant : "w8a8");
    else if (!debug)
        pushf(a, "--quant=%s", q->quant ? q->quant : "w8a8");
    if (q->per_channel == 1 || (q->per_channel == 0 && !debug))
        push(a, q->per_channel ? "--per-channel" : "--per-tensor");
    if (q->range)
        pushf(a, "--range=%s", q->range);
    if (q->calib > 0)
        pushf(a, "--calib=%lld", (long long)q->calib);
    /* calibrate on the session's data unless it is Fashion-MNIST (whose
     * training split is the default), as eval does for other data */
    if (q->calib_data)
        pushf(a, "--calib-data=%s", q->calib_data);
    else if (s->data && strncmp(s->data, "fashion-mnist", 13) != 0)
        pushf(a, "--calib-data=%s", s->data);
    if (q->config)
        pushf(a, "--config=%s", q->config);
    if (q->overrides)
        pushf(a, "--overrides=%s", q->overrides);
    if (q->encodings && !debug)
        pushf(a, "--encodings=%s", q->encodings);
    if (q->bias)
        pushf(a, "--bias=%s", q->bias);
    for (int i = 0; i < s->nsets; i++) {
        push(a, "--set");
        push(a, s->sets[i]);
    }
    if (debug)
        return;
    if (s->cle) {
        push(a, "--cle");
        if (s->cle_keep_relu6)
            push(a, "--cle-keep-relu6");
        if (s->cle_no_hba)
            push(a, "--cle-no-hba");
    }
    if (s->bias_correct)
        pushf(a, "--bias-correct=%s", s->bias_correct);
    if (s->adaround) {
        push(a, "--adaround");
        if (s->adaround_iters > 0)
            pushf(a, "--adaround-iters=%d", s->adaround_iters);
    }
}

static int opts_argv(const qd_session *s, const char *cmd, int debug, char ***argv, int *argc)
{
    argl a = {0};
    push(&a, cmd);
    quant_opts(s, &a, debug);
    if (a.oom) {
        argl_free(&a);
        return QD_EFAIL;
    }
    *argv = a.v;
    *argc = a.n;
    return QD_OK;
}

int sess_quant_argv(const qd_session *s, const char *cmd, char ***argv, int *argc)
{
    return opts_argv(s, cmd, 0, argv, argc);
}

int sess_debug_argv(const qd_session *s, const char *cmd, char ***argv, int *argc)
{
    return opts_argv(s, cmd, 1, argv, argc);
}

/* ---- quantization options stick to the state ---- */

/* Apply one quantization option (a QUANT_OPTS name, val NULL for flags). */
static int apply_qopt(qd_session *s, const char *name, const char *val, qd_err *e)
{
    qd_sess_quant *q = &s->q;
    int rc = QD_OK;
    s->quant_on = 1;
    if (!strcmp(name, "--quant"))
        rc = set_str(&q->quant, val);
    else if (!strcmp(name, "--per-channel") || !strcmp(name, "--per-tensor"))
        q->per_channel = !strcmp(name, "--per-channel");
    else if (!strcmp(name, "--range"))
        rc = set_str(&q->range, val);
    else if (!strcmp(name, "--calib")) {
        long n;
        if (cli_parse_int("do", "--calib", val, 1, 1L << 40, &n, e))
            return e->code;
        q->calib = n;
    } else if (!strcmp(name, "--calib-data"))
        rc = set_str(&q->calib_data, val);
    else if (!strcmp(name, "--config"))
        rc = set_str(&q->config, val);
    else if (!strcmp(name, "--overrides"))
        rc = set_str(&q->overrides, val);
    else if (!strcmp(name, "--encodings"))
        rc = set_str(&q->encodings, val);
    else if (!strcmp(name, "--bias"))
        rc = set_str(&q->bias, val);
    else if (!strcmp(name, "--set"))
        rc = qd_strv_push(&s->sets, &s->nsets, val);
    else if (!strcmp(name, "--cle"))
        s->cle = 1;
    else if (!strcmp(name, "--cle-keep-relu6"))
        s->cle = s->cle_keep_relu6 = 1;
    else if (!strcmp(name, "--cle-no-hba"))
        s->cle = s->cle_no_hba = 1;
    else if (!strcmp(name, "--bias-correct"))
        rc = set_str(&s->bias_correct, val);
    else if (!strcmp(name, "--adaround"))
        s->adaround = 1;
    else if (!strcmp(name, "--adaround-iters")) {
        long n;
        if (cli_parse_int("do", "--adaround-iters", val, 1, 1000000, &n, e))
            return e->code;
        s->adaround = 1;
        s->adaround_iters = (int)n;
    } else
        return qd_errf(e, QD_EINPUT, "%s is not a quantization option", name);
    return rc ? qd_errf(e, QD_EFAIL, "out of memory") : QD_OK;
}

/* Take the quantization options out of argv[1..) into the state (when s is
 * not NULL); the rest goes to rest (when not NULL). *given counts them. */
static int split_qopts(qd_session *s, int argc, char **argv, argl *rest, int *given, qd_err *e)
{
    opt q[] = QUANT_OPTS;
    *given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const opt *o = NULL;
        for (int k = 0; a[0] == '-' && q[k].name && !o; k++)
            if (strlen(q[k].name) == len && !strncmp(q[k].name, a, len))
                o = &q[k];
        if (!o) {
            if (rest)
                push(rest, a);
            continue;
        }
        const char *val = NULL;
        if (o->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return qd_errf(e, QD_EINPUT, "qdb do %s: %s needs a value", argv[0], o->name);
        } else if (eq)
            return qd_errf(e, QD_EINPUT, "qdb do %s: %s takes no value", argv[0], o->name);
        ++*given;
        if (s && apply_qopt(s, o->name, val, e))
            return qd_err_prefix(e, "qdb do %s", argv[0]), e->code;
    }
    return QD_OK;
}

/* ---- set and unset ---- */

static const char *const qkeys[] = {"bits", "scheme", "granularity", "range", "enabled", "strict", "unsigned",
                                    "min", "max", NULL};

static int is_qkey(const char *k)
{
    for (int i = 0; qkeys[i]; i++)
        if (!strcmp(k, qkeys[i]))
            return 1;
    return 0;
}

/* Session settings: set NAME VALUE is the quantization option --NAME. */
static const struct {
    const char *name, *opt;
} settings[] = {{"quant", "--quant"},   {"range", "--range"},         {"calib", "--calib"},
                {"calib-data", "--calib-data"}, {"config", "--config"}, {"overrides", "--overrides"},
                {"encodings", "--encodings"}, {"bias", "--bias"},     {"bias-correct", "--bias-correct"},
                {"adaround-iters", "--adaround-iters"}};

static const char set_help[] =
    "set quant wNaM | range R | calib N | calib-data SPEC | config FILE | overrides FILE |\n"
    "    encodings FILE | bias int32|float | per-channel on|off       the session's settings\n"
    "set bits|scheme|granularity|range|enabled|strict|unsigned|min|max PATTERN VALUE\n"
    "set on|off PATTERN      set PATTERN key=value...   per-quantizer overrides (PATTERN: a tensor\n"
    "                        name, a glob, @weights, @activations, @inputs, @all)\n";

/* What set/unset argv does to s (no checking against the model). */
static int apply_set(qd_session *s, int argc, char **argv, qd_err *e)
{
    if (argc == 3 && !strcmp(argv[1], "per-channel")) {
        if (strcmp(argv[2], "on") && strcmp(argv[2], "off"))
            return qd_errf(e, QD_EINPUT, "qdb do set per-channel: expected on or off, got '%s'", argv[2]);
        return apply_qopt(s, !strcmp(argv[2], "on") ? "--per-channel" : "--per-tensor", NULL, e);
    }
    if (argc == 3)
        for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
            if (!strcmp(argv[1], settings[i].name))
                return apply_qopt(s, settings[i].opt, argv[2], e);
    char buf[4200];
    if (argc == 3 && (!strcmp(argv[1], "on") || !strcmp(argv[1], "off")))
        snprintf(buf, sizeof buf, "%s enabled=%d", argv[2], !strcmp(argv[1], "on"));
    else if (argc == 4 && is_qkey(argv[1]))
        snprintf(buf, sizeof buf, "%s %s=%s", argv[2], argv[1], argv[3]);
    else if (argc >= 3 && strchr(argv[2], '=')) {
        size_t o = (size_t)snprintf(buf, sizeof buf, "%s", argv[1]);
        for (int i = 2; i < argc && o < sizeof buf; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, " %s", argv[i]);
    } else
        return qd_errf(e, QD_EINPUT, "qdb do set: cannot read '%s%s%s' (see qdb do SESSION help set)", argc > 1 ? argv[1] : "",
                       argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
    return apply_qopt(s, "--set", buf, e);
}

static int apply_unset(qd_session *s, int argc, char **argv, qd_err *e)
{
    if (argc != 2)
        return qd_errf(e, QD_EINPUT, "qdb do unset: give one name: quant, a setting, cle, bias-correct, adaround, "
                                     "--all (every override) or an override's PATTERN");
    const char *k = argv[1];
    qd_sess_quant *q = &s->q;
    char **str = !strcmp(k, "range") ? &q->range : !strcmp(k, "calib-data") ? &q->calib_data
               : !strcmp(k, "config") ? &q->config : !strcmp(k, "overrides") ? &q->overrides
               : !strcmp(k, "encodings") ? &q->encodings : !strcmp(k, "bias") ? &q->bias
               : !strcmp(k, "bias-correct") ? &s->bias_correct : NULL;
    if (str) {
        free(*str);
        *str = NULL;
    } else if (!strcmp(k, "quant")) {
        s->quant_on = 0;
    } else if (!strcmp(k, "calib")) {
        q->calib = 0;
    } else if (!strcmp(k, "per-channel")) {
        q->per_channel = -1;
    } else if (!strcmp(k, "cle")) {
        s->cle = s->cle_keep_relu6 = s->cle_no_hba = 0;
    } else if (!strcmp(k, "adaround")) {
        s->adaround = s->adaround_iters = 0;
    } else if (!strcmp(k, "--all")) {
        qd_strv_free(s->sets, s->nsets);
        s->sets = NULL;
        s->nsets = 0;
    } else {
        /* the overrides of this pattern */
        int w = 0, found = 0;
        size_t n = strlen(k);
        for (int i = 0; i < s->nsets; i++) {
            if (!strncmp(s->sets[i], k, n) && s->sets[i][n] == ' ') {
                free(s->sets[i]);
                found = 1;
            } else
                s->sets[w++] = s->sets[i];
        }
        s->nsets = w;
        if (s->sets)
            s->sets[w] = NULL;
        if (!found)
            return qd_errf(e, QD_EINPUT, "qdb do unset: '%s' is not a setting and no override has that pattern", k);
    }
    return QD_OK;
}

/* ---- the fold ---- */

static const qd_sess_val *rget(const qd_sess_entry *en, const char *k, qd_sess_vtype t)
{
    const qd_sess_val *v = qd_sess_result_get(en, k);
    return v && v->type == t ? v : NULL;
}

/* load MODEL --data SPEC [--limit N] [--seed S] */
typedef struct load_args {
    const char *model, *data; /* borrowed from argv */
    long limit, seed;         /* -1 / 0 when not given */
} load_args;

static int parse_load(int argc, char **argv, load_args *la, qd_err *e)
{
    opt o[] = {{.name = "--data", .has_arg = 1}, {.name = "--limit", .has_arg = 1}, {.name = "--seed", .has_arg = 1}, {0}};
    args a;
    *la = (load_args){.limit = -1};
    if (cli_parse("do load", argc, argv, o, 1, &a, e) ||
        (o[1].val && cli_parse_int("do load", "--limit", o[1].val, 1, 1L << 40, &la->limit, e)) ||
        (o[2].val && cli_parse_int("do load", "--seed", o[2].val, 0, 1L << 53, &la->seed, e)))
        return e->code;
    if (a.npos != 1 || !o[0].val)
        return qd_errf(e, QD_EINPUT, "qdb do load: usage: load MODEL --data SPEC [--limit N] [--seed S]");
    la->model = a.pos[0];
    la->data = o[0].val;
    return QD_OK;
}

/* What a state-changing entry does to s (its checks already passed when it
 * ran, so only its arguments and recorded result are used). */
static int apply_entry(qd_session *s, const qd_sess_entry *en, qd_err *e)
{
    const char *cmd = en->argv[0];
    if (!strcmp(cmd, "load")) {
        const qd_sess_val *ms = rget(en, "model_sha256", QD_SV_STR), *ds = rget(en, "data_sha256", QD_SV_STR),
                          *im = rget(en, "images", QD_SV_NUM);
        if (!ms || !ds || !im || strlen(ms->str) != 64 || strlen(ds->str) != 64 || en->argc < 2)
            return qd_errf(e, QD_EINPUT, "journal: load without model_sha256, data_sha256 and images");
        load_args la;
        if (parse_load(en->argc, en->argv, &la, e))
            return e->code;
        qd_session_reset_state(s);
        if (set_str(&s->model, la.model) || set_str(&s->data, la.data))
            return qd_errf(e, QD_EFAIL, "out of memory");
        memcpy(s->model_sha256, ms->str, 65);
        memcpy(s->data_sha256, ds->str, 65);
        s->images = (int64_t)im->num;
        s->limit = la.limit;
        s->seed = (uint64_t)la.seed;
        return QD_OK;
    }
    if (!s->model)
        return qd_errf(e, QD_EINPUT, "qdb do %s: the session has no model yet: start with load MODEL --data SPEC", cmd);
    if (!strcmp(cmd, "set"))
        return apply_set(s, en->argc, en->argv, e);
    if (!strcmp(cmd, "unset"))
        return apply_unset(s, en->argc, en->argv, e);
    if (!strcmp(cmd, "cle")) {
        s->cle = 1;
        s->quant_on = 1;
        for (int i = 1; i < en->argc; i++) {
            if (!strcmp(en->argv[i], "--keep-relu6"))
                s->cle_keep_relu6 = 1;
            else if (!strcmp(en->argv[i], "--no-hba"))
                s->cle_no_hba = 1;
            else
                return qd_errf(e, QD_EINPUT, "qdb do cle: unknown option '%s' (--keep-relu6, --no-hba)", en->argv[i]);
        }
        return QD_OK;
    }
    if (!strcmp(cmd, "bias-correct")) {
        const char *m = en->argc > 1 ? en->argv[1] : "empirical";
        if (en->argc > 2 || (strcmp(m, "empirical") && strcmp(m, "analytic")))
            return qd_errf(e, QD_EINPUT, "qdb do bias-correct: expected empirical (default) or analytic");
        return apply_qopt(s, "--bias-correct", m, e);
    }
    if (!strcmp(cmd, "adaround")) {
        if (en->argc == 1)
            return apply_qopt(s, "--adaround", NULL, e);
        int given;
        argl rest = {0};
        int rc = split_qopts(s, en->argc, en->argv, &rest, &given, e);
        int extra = rest.n;
        argl_free(&rest);
        if (!rc && (extra || strncmp(en->argv[1], "--adaround-iters", 16)))
            return qd_errf(e, QD_EINPUT, "qdb do adaround: the only option is --adaround-iters N");
        return rc;
    }
    if (!strcmp(cmd, "undo"))
        return QD_OK;
    /* eval, export, run: their quantization options */
    int given;
    return split_qopts(s, en->argc, en->argv, NULL, &given, e);
}

/* The state from the journal's state-changing entries that were not undone. */
static int refold(qd_session *s, qd_err *e)
{
    qd_session_reset_state(s);
    for (int i = 0; i < s->njournal; i++) {
        const qd_sess_entry *en = &s->journal[i];
        if (en->changes_state && !en->undone && apply_entry(s, en, e))
            return qd_err_prefix(e, "journal entry %d", i + 1), e->code;
    }
    return QD_OK;
}

/* ---- results ---- */

/* Keys that are not results: paths, times, machine settings. */
static int skip_key(const char *k)
{
    static const char *const no[] = {"model", "data", "out", "output", "report", "dir", "threads", "batch",
                                     "cache_bytes", "calib_s", "calib_images_per_s", NULL};
    for (int i = 0; no[i]; i++)
        if (!strcmp(k, no[i]))
            return 1;
    size_t n = strlen(k);
    return strstr(k, "seconds") || (n > 6 && !strcmp(k + n - 6, "_per_s")) || strstr(k, "_ms");
}

/* Scalars of j (objects to depth 3, not arrays) into en as dotted keys. */
static void flatten(const cJSON *j, const char *prefix, int depth, qd_sess_entry *en)
{
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!c->string || skip_key(c->string))
            continue;
        char k[256];
        snprintf(k, sizeof k, "%s%s%s", prefix, *prefix ? "." : "", c->string);
        if (cJSON_IsObject(c)) {
            if (depth < 2)
                flatten(c, k, depth + 1, en);
        } else if (cJSON_IsNumber(c))
            qd_sess_result_add(en, k, QD_SV_NUM, c->valuedouble, NULL);
        else if (cJSON_IsBool(c))
            qd_sess_result_add(en, k, QD_SV_BOOL, cJSON_IsTrue(c), NULL);
        else if (cJSON_IsString(c))
            qd_sess_result_add(en, k, QD_SV_STR, 0, c->valuestring);
        else if (cJSON_IsNull(c))
            qd_sess_result_add(en, k, QD_SV_NULL, 0, NULL);
    }
}

static void print_val(FILE *f, const qd_sess_val *v)
{
    if (v->type == QD_SV_NUM)
        fprintf(f, "%.6g", v->num);
    else if (v->type == QD_SV_BOOL)
        fputs(v->num ? "true" : "false", f);
    else if (v->type == QD_SV_STR)
        fputs(v->str, f);
    else
        fputs("null", f);
}

static void print_cmdline(FILE *f, const qd_sess_entry *en)
{
    for (int i = 0; i < en->argc; i++)
        fprintf(f, "%s%s", i ? " " : "", en->argv[i]);
}

/* "[3] eval --quant w8a8: accuracy 0.865, ..." */
void sess_entry_print(FILE *f, int n, const qd_sess_entry *en)
{
    fprintf(f, "[%d] ", n);
    print_cmdline(f, en);
    if (en->undone)
        fputs(" (undone)", f);
    /* the top-level values: the nested ones are in show --json */
    for (int k = 0, shown = 0; k < en->nresult && shown < 8; k++) {
        const qd_sess_val *v = &en->result[k];
        if (strstr(v->key, "sha256") || strchr(v->key, '.'))
            continue;
        fprintf(f, "%s%s ", shown++ ? ", " : ": ", v->key);
        print_val(f, v);
    }
    fputc('\n', f);
}

/* ---- the commands ---- */

enum {
    S_STATE = 1,    /* always changes the state */
    S_JOURNAL = 2,  /* recorded */
    S_MODEL = 4,    /* the CLI command takes MODEL */
    S_KIND = 8,     /* ... after a KIND word (plot, export) */
    S_DATA = 16,    /* gets --data --limit --seed */
    S_QUANT = 32,   /* gets the quantization state; its quantization options stick */
    S_TARGET = 64,  /* debug: --target defaults to the session's quant; its overrides hold */
    S_PLOTDATA = 128/* plot: data for the kinds that simulate */
};

typedef int (*own_fn)(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e);

typedef struct scmd {
    const char *name;
    unsigned flags;
    own_fn own;        /* NULL: the CLI command of the same name */
    const char *summary;
} scmd;

static int now_utc(char at[24])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return QD_OK;
}

/* Has the session a model? */
static int need_model(const sess_ctx *c, const char *cmd, qd_err *e)
{
    if (!c->s->model)
        return qd_errf(e, QD_EINPUT, "qdb do %s: the session has no model yet: start with load MODEL --data SPEC", cmd);
    return QD_OK;
}

/* The data as a session records it: spec, subset; its sha256 into hex.
 * NULL on error (the caller frees the set). */
static qd_dataset *open_data(const char *spec, int64_t limit, uint64_t seed, char hex[65], qd_err *e)
{
    qd_dataset *d = qd_data_open(spec, NULL, e);
    if (d && ((limit > 0 && qd_data_limit(d, limit, seed, e)) || qd_data_sha256(d, hex, e))) {
        qd_data_free(d);
        d = NULL;
    }
    return d;
}

static int do_load(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    load_args la;
    if (parse_load(argc, argv, &la, e))
        return e->code;
    const char *model = la.model;
    char msha[65], dsha[65];
    qd_graph *g = qd_graph_load(model, e);
    if (!g)
        return e->code;
    int nodes = g->nnodes;
    qd_graph_free(g);
    if (qd_sha256_file(model, msha, e))
        return e->code;
    qd_dataset *d = open_data(la.data, la.limit, (uint64_t)la.seed, dsha, e);
    if (!d)
        return qd_err_prefix(e, "qdb do load: data %s", la.data), e->code;
    int64_t images = qd_data_count(d);
    int rc = qd_sess_result_add(en, "model_sha256", QD_SV_STR, 0, msha) ||
             qd_sess_result_add(en, "nodes", QD_SV_NUM, nodes, NULL) ||
             qd_sess_result_add(en, "data", QD_SV_STR, 0, qd_data_describe(d)) ||
             qd_sess_result_add(en, "images", QD_SV_NUM, (double)images, NULL) ||
             qd_sess_result_add(en, "data_sha256", QD_SV_STR, 0, dsha);
    qd_data_free(d);
    if (rc)
        return qd_errf(e, QD_EFAIL, "out of memory");
    /* replay: the model and data must be the recorded ones */
    if (c->expect) {
        const qd_sess_val *m0 = rget(c->expect, "model_sha256", QD_SV_STR), *d0 = rget(c->expect, "data_sha256", QD_SV_STR);
        const char *what = m0 && strcmp(m0->str, msha) ? "model" : d0 && strcmp(d0->str, dsha) ? "data" : NULL;
        if (what && !c->force)
            return qd_errf(e, QD_EINPUT, "qdb replay: the %s changed since it was recorded: %s has sha256 %.12s..., the "
                                         "session recorded %.12s... (--force replays anyway)",
                           what, !strcmp(what, "model") ? model : la.data, !strcmp(what, "model") ? msha : dsha,
                           !strcmp(what, "model") ? m0->str : d0->str);
        if (what)
            fprintf(stderr, "qdb replay: warning: the %s changed since it was recorded (--force)\n", what);
    }
    return QD_OK;
}

qd_sim *sess_sim(const sess_ctx *c, const char *cmd, long threads, int no_calib, qd_err *e)
{
    const qd_session *s = c->s;
    char **v = NULL, buf[4200];
    int n = 0;
    if (sess_quant_argv(s, cmd, &v, &n))
        return qd_errf(e, QD_EFAIL, "out of memory"), NULL;
    opt q[] = QUANT_OPTS, none[] = {{0}};
    args pa;
    qd_qsetup qs;
    qd_sim *sim = NULL;
    if (!cli_parse2(cmd, n, v, none, q, 0, &pa, e) &&
        !cli_quant_setup(cmd, q, s->data, (long)s->seed, threads, 64, NULL, &qs, e)) {
        progress pr = {qd_now_ms() / 1e3, (cli_progress_hooked() || (isatty(2) && !c->quiet)) && !no_calib};
        qs.progress = pr.tty ? cli_progress : NULL;
        qs.user = &pr;
        qs.no_calib = no_calib;
        if (no_calib)
            qs.cle = 0; /* equalizing changes weights, not which quantizers exist */
        sim = qd_qsetup_build(sess_model_path(c, buf, sizeof buf), &qs, NULL, e);
    }
    qd_strv_free(v, n);
    return sim;
}

/* Check the session's settings and patterns on the simulation's structure
 * (no calibration); *matched (may be NULL) gets the last override's match
 * count. */
static int check_quant(const sess_ctx *c, int *matched, qd_err *e)
{
    const qd_session *s = c->s;
    qd_sim *sim = sess_sim(c, "do", 1, 1, e);
    if (!sim)
        return e->code;
    if (matched && s->nsets) {
        char *pat = NULL;
        qd_override ov;
        if (!qd_override_parse(s->sets[s->nsets - 1], &pat, &ov, e))
            qd_sim_override(sim, pat, &ov, matched, e);
        free(pat);
    }
    qd_sim_free(sim);
    return QD_OK;
}

static int do_set(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    if (argc < 3)
        return qd_errf(e, QD_EINPUT, "qdb do set: give a setting and its value, or a key, a PATTERN and a value "
                                     "(qdb do SESSION help set)");
    int n0 = c->s->nsets, matched = 0;
    c->sim_applied = 0;
    if (apply_set(c->s, argc, argv, e))
        return e->code;
    if (c->sim && c->s->nsets == n0 + 1) { /* the caller's live sim takes the new override */
        char *pat = NULL;
        qd_override ov;
        int rc = qd_override_parse(c->s->sets[n0], &pat, &ov, e) || qd_sim_override(c->sim, pat, &ov, &matched, e);
        free(pat);
        if (rc)
            return e->code;
        c->sim_applied = 1;
    } else if (check_quant(c, &matched, e))
        return e->code;
    if (c->s->nsets > n0)
        qd_sess_result_add(en, "matched", QD_SV_NUM, matched, NULL);
    return QD_OK;
}

static int do_unset(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)en;
    return apply_unset(c->s, argc, argv, e);
}

static int do_cle(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    qd_sess_entry tmp = {.argc = argc, .argv = argv};
    if (apply_entry(c->s, &tmp, e))
        return e->code;
    /* what equalizing does to the weights (the FP32 model, BNs folded) */
    char buf[4200];
    qd_graph *g = qd_graph_load(sess_model_path(c, buf, sizeof buf), e);
    if (!g)
        return e->code;
    qd_cle_opts co = QD_CLE_OPTS_DEFAULT;
    co.relu6_to_relu = !c->s->cle_keep_relu6;
    co.hba = !c->s->cle_no_hba;
    qd_cle_report r = {0};
    int rc = qd_cle(g, &co, &r, e);
    if (!rc) {
        double b = 0, a = 0;
        for (int i = 0; i < r.nlayers; i++) {
            b = fmax(b, r.layers[i].spread_before);
            a = fmax(a, r.layers[i].spread_after);
        }
        qd_sess_result_add(en, "pairs", QD_SV_NUM, r.pairs, NULL);
        qd_sess_result_add(en, "triplets", QD_SV_NUM, r.triplets, NULL);
        qd_sess_result_add(en, "relu6_replaced", QD_SV_NUM, r.relu6_replaced, NULL);
        qd_sess_result_add(en, "hba_absorbed", QD_SV_NUM, r.hba_absorbed, NULL);
        qd_sess_result_add(en, "worst_spread_before", QD_SV_NUM, b, NULL);
        qd_sess_result_add(en, "worst_spread_after", QD_SV_NUM, a, NULL);
    }
    qd_cle_report_free(&r);
    qd_graph_free(g);
    return rc;
}

/* bias-correct, adaround: the transform is recorded; eval measures it. */
static int do_transform(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)en;
    qd_sess_entry tmp = {.argc = argc, .argv = argv};
    return apply_entry(c->s, &tmp, e) || check_quant(c, NULL, e) ? e->code : QD_OK;
}

static int do_undo(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)argv;
    if (argc != 1)
        return qd_errf(e, QD_EINPUT, "qdb do undo: takes no arguments");
    qd_session *s = c->s;
    for (int i = s->njournal - 1; i >= 0; i--) {
        qd_sess_entry *j = &s->journal[i];
        if (!j->changes_state || j->undone || !strcmp(j->argv[0], "undo"))
            continue;
        if (!strcmp(j->argv[0], "load"))
            return qd_errf(e, QD_EINPUT, "qdb do undo: nothing to undo since load");
        j->undone = 1;
        if (refold(s, e)) {
            j->undone = 0;
            refold(s, e);
            return e->code;
        }
        qd_sess_result_add(en, "undid", QD_SV_NUM, i + 1, NULL);
        return QD_OK;
    }
    return qd_errf(e, QD_EINPUT, "qdb do undo: nothing to undo");
}

static void show_state(FILE *f, const sess_ctx *c)
{
    const qd_session *s = c->s;
    if (!s->model) {
        fprintf(f, "session %s: nothing loaded\n", c->path ? c->path : "");
        return;
    }
    fprintf(f, "model: %s (sha256 %.16s...)\n", s->model, s->model_sha256);
    fprintf(f, "data:  %s", s->data);
    if (s->limit > 0)
        fprintf(f, ", %lld images (seed %llu)", (long long)s->limit, (unsigned long long)s->seed);
    fputc('\n', f);
    argl a = {0};
    quant_opts(s, &a, 0);
    fputs("quantization:", f);
    if (!s->quant_on)
        fputs(" off (FP32)", f);
    for (int i = 0; i < a.n; i++)
        fprintf(f, " %s", a.v[i]);
    fputc('\n', f);
    argl_free(&a);
    fprintf(f, "journal: %d entr%s\n", s->njournal, s->njournal == 1 ? "y" : "ies");
    for (int i = 0; i < s->njournal; i++)
        sess_entry_print(f, i + 1, &s->journal[i]);
}

static int do_show(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)argc, (void)argv, (void)en, (void)e;
    if (c->json) {
        char *t = qd_session_print(c->s, e);
        if (!t)
            return e->code;
        fputs(t, stdout);
        free(t);
        return QD_OK;
    }
    show_state(stdout, c);
    return QD_OK;
}

static int do_save(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)en;
    opt o[] = {{.name = "-o", .has_arg = 1}, {.name = "--force", .has_arg = 0}, {0}};
    args a;
    if (cli_parse("do save", argc, argv, o, 0, &a, e))
        return e->code;
    if (!o[0].val)
        return qd_errf(e, QD_EINPUT, "qdb do save: usage: save -o FILE [--force] (a copy of the session)");
    if (!o[1].val && access(o[0].val, F_OK) == 0)
        return qd_errf(e, QD_EINPUT, "qdb do save: %s exists (--force overwrites it)", o[0].val);
    return qd_session_write(c->s, o[0].val, e);
}

static int do_help(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e);

static const scmd scmds[] = {
    {"load", S_STATE | S_JOURNAL, do_load, "load MODEL --data SPEC [--limit N] [--seed S]: start (or restart) the session"},
    {"set", S_STATE | S_JOURNAL, do_set, "set a setting or a per-quantizer override (help set)"},
    {"unset", S_STATE | S_JOURNAL, do_unset, "drop a setting, a transform, or the overrides of a PATTERN"},
    {"cle", S_STATE | S_JOURNAL, do_cle, "cross-layer equalization [--keep-relu6] [--no-hba], applied from now on"},
    {"bias-correct", S_STATE | S_JOURNAL, do_transform, "bias correction [empirical|analytic], applied from now on"},
    {"adaround", S_STATE | S_JOURNAL, do_transform, "AdaRound [--adaround-iters N], applied from now on"},
    {"undo", S_STATE | S_JOURNAL, do_undo, "revert the last state change"},
    {"eval", S_JOURNAL | S_MODEL | S_DATA | S_QUANT, NULL, "accuracy with the session's quantization (or FP32)"},
    {"sweep", S_JOURNAL | S_MODEL | S_DATA, NULL, "bit-width sweep on the session's model and data"},
    {"debug", S_JOURNAL | S_MODEL | S_DATA | S_TARGET, NULL, "the debugging flowchart of the session's quantization (--target defaults to the quant)"},
    {"export", S_JOURNAL | S_KIND | S_MODEL | S_QUANT, NULL, "export encodings|qdq -o FILE, or export bundle --out DIR"},
    {"plot", S_KIND | S_MODEL | S_PLOTDATA, NULL, "plot KIND -o FILE on the session's model and data"},
    {"info", S_MODEL, NULL, "the model's inputs, outputs and layers"},
    {"run", S_MODEL | S_QUANT, NULL, "one NPY tensor through the model (quantized when the session is)"},
    {"show", 0, do_show, "the state and the journal (--json: the session file)"},
    {"save", 0, do_save, "save -o FILE [--force]: a copy of the session"},
    {"help", 0, do_help, "these commands; help set"},
};

const char *sess_command_name(int i)
{
    return i >= 0 && (size_t)i < sizeof scmds / sizeof scmds[0] ? scmds[i].name : NULL;
}

static int do_help(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    (void)c, (void)en, (void)e;
    if (argc > 1 && !strcmp(argv[1], "set"))
        return fputs(set_help, stdout), QD_OK;
    puts("session commands (qdb do SESSION COMMAND [ARGS...]):");
    for (size_t i = 0; i < sizeof scmds / sizeof scmds[0]; i++)
        printf("  %-13s %s\n", scmds[i].name, scmds[i].summary);
    return QD_OK;
}

/* Replay writes output files into c->outdir, under their own names. */
static int redirect_out(const sess_ctx *c, argl *a, qd_err *e)
{
    static const char *const outs[] = {"-o", "--output", "--out", "--report", "--encodings-out", NULL};
    for (int i = 0; c->outdir && i < a->n; i++) {
        char *arg = a->v[i], *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        for (int k = 0; outs[k]; k++) {
            if (strlen(outs[k]) != len || strncmp(arg, outs[k], len))
                continue;
            char **vp = eq ? NULL : i + 1 < a->n ? &a->v[i + 1] : NULL;
            const char *val = eq ? eq + 1 : vp ? *vp : NULL;
            if (!val || !strcmp(val, "-"))
                break;
            char *d = strdup(val), nv[8400];
            if (!d)
                return qd_errf(e, QD_EFAIL, "out of memory");
            if (eq)
                snprintf(nv, sizeof nv, "%.*s=%s/%s", (int)len, arg, c->outdir, basename(d));
            else
                snprintf(nv, sizeof nv, "%s/%s", c->outdir, basename(d));
            free(d);
            char *r = strdup(nv);
            if (!r)
                return qd_errf(e, QD_EFAIL, "out of memory");
            if (eq) {
                free(a->v[i]);
                a->v[i] = r;
            } else {
                free(*vp);
                *vp = r;
                i++;
            }
            break;
        }
    }
    return QD_OK;
}

static int has_opt(const argl *a, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < a->n; i++)
        if (!strncmp(a->v[i], name, n) && (!a->v[i][n] || a->v[i][n] == '='))
            return 1;
    return 0;
}

/* A CLI command with the session filled in. */
static int run_cli(sess_ctx *c, const scmd *sc, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    qd_session *s = c->s;
    if (need_model(c, sc->name, e))
        return e->code;
    if (sc->flags & S_KIND && (argc < 2 || argv[1][0] == '-'))
        return qd_errf(e, QD_EINPUT, "qdb do %s: say what first (qdb %s --help)", sc->name, sc->name);
    if (!strcmp(sc->name, "export") && !strcmp(argv[1], "bundle"))
        return sess_bundle(c, argc - 1, argv + 1, en, e);
    argl user = {0}, a = {0};
    int given = 0, rc;
    /* quantization options stick: into the state first */
    if (sc->flags & S_QUANT) {
        if ((rc = split_qopts(s, argc, argv, &user, &given, e)))
            goto out;
        if (given)
            en->changes_state = 1;
    } else {
        for (int i = 1; i < argc; i++)
            push(&user, argv[i]);
    }
    char buf[4200];
    push(&a, sc->name);
    int u0 = 0;
    if (sc->flags & S_KIND)
        push(&a, user.v[u0++]);
    push(&a, sess_model_path(c, buf, sizeof buf));
    if (sc->flags & S_DATA)
        data_args(s, &a);
    if (sc->flags & S_PLOTDATA && !has_opt(&user, "--report")) {
        static const char *const simkinds[] = {"sensitivity", "sweep", "grid", "hist", "sqnr", NULL};
        for (int k = 0; simkinds[k]; k++)
            if (!strcmp(user.v[0], simkinds[k]))
                data_args(s, &a);
    }
    if (sc->flags & S_QUANT)
        quant_opts(s, &a, 0);
    if (!strcmp(sc->name, "export")) /* the calibration subset, as eval picks it */
        pushf(&a, "--seed=%llu", (unsigned long long)s->seed);
    if (sc->flags & S_TARGET) /* before the user's options, which win */
        quant_opts(s, &a, has_opt(&user, "--target") ? 2 : 1);
    for (int i = u0; i < user.n; i++)
        push(&a, user.v[i]);
    int journaled = (sc->flags & S_JOURNAL) != 0;
    int want_json = c->json;
    if (journaled || want_json)
        push(&a, "--json");
    if (a.oom) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    if ((rc = redirect_out(c, &a, e)))
        goto out;
    cli_fn fn = cli_command(sc->name);
    if (journaled)
        cli_capture_begin();
    rc = fn(a.n, a.v, e);
    cJSON *j = journaled ? cli_capture_take() : NULL;
    if (!rc && j) {
        flatten(j, "", 0, en);
        if (!strcmp(sc->name, "export")) {
            /* the file's fingerprint (recorded, not compared) */
            const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "out");
            char h[65];
            qd_err e2 = {0};
            if (cJSON_IsString(out) && !qd_sha256_file(out->valuestring, h, &e2))
                qd_sess_result_add(en, "file_sha256", QD_SV_STR, 0, h);
        }
        if (want_json && !c->quiet) {
            cli_print_json(cJSON_Duplicate(j, 1));
            c->printed = 1;
        }
    }
    cJSON_Delete(j);
out:
    argl_free(&user);
    argl_free(&a);
    return rc;
}

static int exec1(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, int *journal, qd_err *e);

int sess_exec(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, int *journal, qd_err *e)
{
    /* --json says how to print, not what to do: it is not journaled */
    argl f = {0};
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--json") || !i)
            push(&f, argv[i]);
    int rc = f.oom ? qd_errf(e, QD_EFAIL, "out of memory") : exec1(c, f.n, f.v, en, journal, e);
    argl_free(&f);
    return rc;
}

static int exec1(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, int *journal, qd_err *e)
{
    *journal = 0;
    memset(en, 0, sizeof *en);
    const scmd *sc = NULL;
    for (size_t i = 0; i < sizeof scmds / sizeof scmds[0] && !sc; i++)
        if (!strcmp(argv[0], scmds[i].name))
            sc = &scmds[i];
    if (!sc)
        return qd_errf(e, QD_EINPUT, "unknown command '%s' (qdb do SESSION help lists them)", argv[0]);
    if (sc->flags & S_STATE && strcmp(sc->name, "load") && need_model(c, sc->name, e))
        return e->code;
    if (!sc->own)
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) /* the CLI command's help: not journaled */
                return cli_command(sc->name)(argc, argv, e);
    *en = (qd_sess_entry){.changes_state = (sc->flags & S_STATE) != 0};
    if (!(en->argv = qd_strv_dup(argv, argc)))
        return qd_errf(e, QD_EFAIL, "out of memory");
    en->argc = argc;
    now_utc(en->at);
    double t0 = qd_now_ms();
    int rc = sc->own ? sc->own(c, argc, argv, en, e) : run_cli(c, sc, argc, argv, en, e);
    en->seconds = (qd_now_ms() - t0) / 1e3;
    if (!rc && !strcmp(sc->name, "load")) /* the fold sets the state from the entry */
        rc = apply_entry(c->s, en, e);
    if (rc) {
        /* the state goes back to what the journal says */
        qd_err e2 = {0};
        refold(c->s, &e2);
        qd_sess_entry_clear(en);
        return rc;
    }
    *journal = (sc->flags & S_JOURNAL) != 0;
    return QD_OK;
}

/* ---- qdb do ---- */

/* Errors of qdb do name the session: "qdb do S CMD: why". */
static void name_session(qd_err *e, const char *path, const char *cmd)
{
    char m[sizeof e->msg];
    size_t np = strlen(path);
    if (!strncmp(e->msg, path, np) && e->msg[np] == ':')
        snprintf(m, sizeof m, "qdb do %s", e->msg); /* it names the file already */
    else if (!strncmp(e->msg, "qdb do ", 7))
        snprintf(m, sizeof m, "qdb do %s %s", path, e->msg + 7);
    else if (!strncmp(e->msg, "qdb ", 4))
        snprintf(m, sizeof m, "qdb do %s %s", path, e->msg + 4);
    else
        snprintf(m, sizeof m, "qdb do %s %s: %s", path, cmd, e->msg);
    memcpy(e->msg, m, sizeof m);
}

static const char do_help_text[] =
    "usage: qdb do SESSION COMMAND [ARGS...] [--json]\n"
    "Run COMMAND against the session file SESSION; state changes and measurements\n"
    "are appended to its journal and the file is saved atomically after each.\n"
    "A session starts with: qdb do SESSION load MODEL --data SPEC [--limit N] [--seed S]\n"
    "Then, for example:\n"
    "  qdb do s.json eval --quant w8a8        (quantization options stick to the session)\n"
    "  qdb do s.json set bits conv1.weight 4\n"
    "  qdb do s.json cle\n"
    "  qdb do s.json debug --target w4a8 --report rep\n"
    "  qdb do s.json export encodings -o enc.json\n"
    "  qdb do s.json undo | show | help\n"
    "Without --json, journaled commands print one line with what they measured.\n";

int cli_cmd_do(int argc, char **argv, qd_err *e)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return argc < 2 ? qd_errf(e, QD_EINPUT, "qdb do: usage: qdb do SESSION COMMAND [ARGS...] (qdb do --help)")
                        : (fputs(do_help_text, stdout), QD_OK);
    if (argc < 3)
        return qd_errf(e, QD_EINPUT, "qdb do %s: give a COMMAND (qdb do SESSION help lists them)", argv[1]);
    const char *path = argv[1];
    int json = 0;
    for (int i = 3; i < argc; i++)
        json |= !strcmp(argv[i], "--json");
    int lock = qd_session_lock(path, e);
    if (lock < 0)
        return e->code;
    qd_session *s = NULL;
    int rc;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        if (strcmp(argv[2], "load") && strcmp(argv[2], "help")) {
            rc = qd_errf(e, QD_EINPUT, "%s: no such session: start one with qdb do %s load MODEL --data SPEC", path, path);
            goto out;
        }
        s = qd_session_new();
    } else {
        s = qd_session_read(path, e);
        if (!s) {
            rc = e->code;
            goto out;
        }
    }
    if (!s) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    sess_ctx c = {.s = s, .path = path, .json = json};
    qd_sess_entry en;
    int journal;
    if ((rc = sess_exec(&c, argc - 2, argv + 2, &en, &journal, e)))
        goto out;
    if (journal) {
        if (!(rc = qd_session_append(s, &en, e)))
            rc = qd_session_write(s, path, e);
        if (!rc && !json) {
            sess_entry_print(stdout, s->njournal, &s->journal[s->njournal - 1]);
        } else if (!rc && !c.printed) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "entry", s->njournal);
            cJSON_AddItemToObject(j, "result", qd_sess_result_json(&en));
            cli_print_json(j);
        }
    }
    qd_sess_entry_clear(&en);
out:
    qd_session_free(s);
    qd_session_unlock(lock);
    if (rc)
        name_session(e, path, argv[2]);
    return rc;
}

/* ---- qdb open ---- */

static const char open_help[] =
    "usage: qdb open SESSION [--json] [--force]\n"
    "Restore a session: check that its model and data are the recorded ones\n"
    "(sha256), then show its state and journal (--json: the session itself).\n"
    "  --force   show it even when the model or data changed\n";

int sess_verify(const sess_ctx *c, int data, char msha[65], qd_err *e)
{
    const qd_session *s = c->s;
    if (!s->model)
        return QD_OK;
    char buf[4200], h[65];
    const char *mp = sess_model_path(c, buf, sizeof buf);
    if (qd_sha256_file(mp, msha, e))
        return qd_err_prefix(e, "%s: the session's model", c->path), e->code;
    if (strcmp(msha, s->model_sha256) && !c->force)
        return qd_errf(e, QD_EINPUT, "%s: the model %s changed since it was recorded (sha256 %.12s..., recorded %.12s...; "
                                     "--force goes on)", c->path, mp, msha, s->model_sha256);
    if (!data)
        return QD_OK;
    qd_dataset *d = open_data(s->data, s->limit, s->seed, h, e);
    if (!d)
        return qd_err_prefix(e, "%s: the session's data", c->path), e->code;
    qd_data_free(d);
    if (strcmp(h, s->data_sha256) && !c->force)
        return qd_errf(e, QD_EINPUT, "%s: the data %s changed since it was recorded (sha256 %.12s..., recorded %.12s...; "
                                     "--force goes on)", c->path, s->data, h, s->data_sha256);
    return QD_OK;
}

int cli_cmd_open(int argc, char **argv, qd_err *e)
{
    opt o[] = {{.name = "--json", .has_arg = 0}, {.name = "--force", .has_arg = 0}, {.name = "--help", .has_arg = 0},
               {.name = "-h", .has_arg = 0}, {0}};
    args a;
    if (cli_parse("open", argc, argv, o, 1, &a, e))
        return e->code;
    if (o[2].val || o[3].val)
        return fputs(open_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb open: give one SESSION (qdb open --help)");
    qd_session *s = qd_session_read(a.pos[0], e);
    if (!s)
        return e->code;
    sess_ctx c = {.s = s, .path = a.pos[0], .json = o[0].val != NULL, .force = o[1].val != NULL};
    char msha[65];
    int rc = sess_verify(&c, 1, msha, e);
    if (!rc)
        rc = do_show(&c, 1, argv, NULL, e);
    qd_session_free(s);
    return rc;
}

/* ---- qdb replay ---- */

static const char replay_help[] =
    "usage: qdb replay SESSION [--check] [--json] [--force] [--tol F] [--out DIR] [--save FILE]\n"
    "Re-run the session's journal from the start, headless, on the recorded model\n"
    "and data (a changed model or data is an error unless --force).\n"
    "  --check     compare every recorded result: fractions within F (--tol, default\n"
    "              0.002), dB within 50 F, other numbers within 1e-6 relative, strings\n"
    "              and booleans exactly; the first difference is printed and qdb exits 4\n"
    "  --out DIR   where the journal's output files go (default: a temporary directory,\n"
    "              removed afterwards)\n"
    "  --save FILE the replayed session, with the new results\n"
    "  --json      one JSON object: entries replayed, the first divergence\n";

typedef struct diverge {
    int entry;
    const char *key;
    const qd_sess_val *was;
    const qd_sess_val *now;
    double tol;
} diverge;

/* The first recorded value of a that b does not reproduce. */
static int compare(const qd_sess_entry *a, const qd_sess_entry *b, double tol, diverge *d)
{
    for (int k = 0; k < a->nresult; k++) {
        const qd_sess_val *x = &a->result[k], *y = qd_sess_result_get(b, x->key);
        if (strstr(x->key, "sha256"))
            continue; /* load checks those itself; files may differ in their last digit */
        size_t n = strlen(x->key);
        double t = n > 3 && !strcmp(x->key + n - 3, "_db") ? 50 * tol : fabs(x->num) <= 1 ? tol : 1e-6 * fabs(x->num);
        int same = y && y->type == x->type &&
                   (x->type == QD_SV_NULL || (x->type == QD_SV_STR && !strcmp(x->str, y->str)) ||
                    (x->type == QD_SV_BOOL && x->num == y->num) || (x->type == QD_SV_NUM && fabs(x->num - y->num) <= t));
        if (!same) {
            *d = (diverge){.key = x->key, .was = x, .now = y, .tol = x->type == QD_SV_NUM ? t : 0};
            return 1;
        }
    }
    return 0;
}

int cli_cmd_replay(int argc, char **argv, qd_err *e)
{
    opt o[] = {{.name = "--check", .has_arg = 0}, {.name = "--json", .has_arg = 0}, {.name = "--force", .has_arg = 0},
               {.name = "--tol", .has_arg = 1},   {.name = "--out", .has_arg = 1},   {.name = "--save", .has_arg = 1},
               {.name = "--help", .has_arg = 0},  {.name = "-h", .has_arg = 0},     {0}};
    enum { CHECK, JSON, FORCE, TOL, OUT, SAVE, HELP, H };
    args a;
    if (cli_parse("replay", argc, argv, o, 1, &a, e))
        return e->code;
    if (o[HELP].val || o[H].val)
        return fputs(replay_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb replay: give one SESSION (qdb replay --help)");
    double tol = 0.002;
    if (o[TOL].val) {
        char *end;
        tol = strtod(o[TOL].val, &end);
        if (*end || end == o[TOL].val || !(tol >= 0) || tol > 1)
            return qd_errf(e, QD_EINPUT, "qdb replay: --tol must be a number in [0, 1], got '%s'", o[TOL].val);
    }
    if (o[SAVE].val && access(o[SAVE].val, F_OK) == 0)
        return qd_errf(e, QD_EINPUT, "qdb replay: %s exists (--save will not overwrite a file)", o[SAVE].val);
    qd_session *rec = qd_session_read(a.pos[0], e);
    if (!rec)
        return e->code;
    if (!rec->njournal || strcmp(rec->journal[0].argv[0], "load")) {
        qd_session_free(rec);
        return qd_errf(e, QD_EINPUT, "%s: $.journal[0]: a session's journal starts with load", a.pos[0]);
    }
    char tmpl[] = "/tmp/qdb-replay-XXXXXX";
    const char *outdir = o[OUT].val;
    int made_tmp = 0;
    if (!outdir) {
        if (!mkdtemp(tmpl)) {
            qd_session_free(rec);
            return qd_errf(e, QD_EFAIL, "qdb replay: cannot make a temporary directory: %s", strerror(errno));
        }
        outdir = tmpl;
        made_tmp = 1;
    } else if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        qd_session_free(rec);
        return qd_errf(e, QD_EINPUT, "qdb replay: --out %s: %s", outdir, strerror(errno));
    }
    qd_session *s = qd_session_new();
    sess_ctx c = {.s = s, .path = a.pos[0], .quiet = 1, .outdir = outdir, .force = o[FORCE].val != NULL};
    int rc = s ? QD_OK : qd_errf(e, QD_EFAIL, "out of memory"), json = o[JSON].val != NULL;
    diverge dv = {0};
    qd_sess_entry dnow = {0};
    int done = 0, diverged = 0;
    cJSON *jout = json ? cJSON_CreateObject() : NULL, *jent = json ? cJSON_AddArrayToObject(jout, "entries") : NULL;
    for (int i = 0; !rc && i < rec->njournal && !diverged; i++) {
        const qd_sess_entry *r = &rec->journal[i];
        qd_sess_entry en;
        int journal;
        c.expect = r;
        if (isatty(2))
            fprintf(stderr, "qdb replay: [%d/%d] ", i + 1, rec->njournal), print_cmdline(stderr, r), fputc('\n', stderr);
        if ((rc = sess_exec(&c, r->argc, r->argv, &en, &journal, e))) {
            qd_err_prefix(e, "qdb replay: entry %d (%s)", i + 1, r->argv[0]);
            break;
        }
        if (!journal || (rc = qd_session_append(s, &en, e))) {
            if (!rc)
                rc = qd_errf(e, QD_EINPUT, "%s: $.journal[%d]: '%s' is not a journaled command", a.pos[0], i, r->argv[0]);
            qd_sess_entry_clear(&en);
            break;
        }
        done++;
        if (o[CHECK].val && compare(r, &en, tol, &dv)) {
            dv.entry = i + 1;
            diverged = 1;
        }
        if (jent) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "entry", i + 1);
            cJSON_AddItemToObject(x, "argv", cJSON_CreateStringArray((const char *const *)r->argv, r->argc));
            cJSON_AddItemToObject(x, "result", qd_sess_result_json(&en));
            cJSON_AddNumberToObject(x, "seconds", en.seconds);
            cJSON_AddItemToArray(jent, x);
        } else {
            sess_entry_print(stdout, i + 1, &en);
        }
        if (diverged)
            dnow = en; /* dv.now points into it */
        else
            qd_sess_entry_clear(&en);
    }
    /* the replayed state must be the recorded one */
    char *t1 = NULL, *t2 = NULL;
    if (!rc && !diverged && o[CHECK].val) {
        qd_session tmp1 = *rec, tmp2 = *s;
        tmp1.njournal = tmp2.njournal = 0;
        t1 = qd_session_print(&tmp1, e);
        t2 = qd_session_print(&tmp2, e);
        if (t1 && t2 && strcmp(t1, t2)) {
            diverged = 1;
            dv = (diverge){.entry = 0, .key = "state"};
        }
    }
    free(t1);
    free(t2);
    if (!rc && o[SAVE].val)
        rc = qd_session_write(s, o[SAVE].val, e);
    if (!rc && diverged && !json) {
        fprintf(stdout, "replay: DIVERGED ");
        if (dv.entry) {
            fprintf(stdout, "at entry %d (", dv.entry);
            print_cmdline(stdout, &rec->journal[dv.entry - 1]);
            fprintf(stdout, "): %s recorded ", dv.key);
            print_val(stdout, dv.was);
            fputs(", now ", stdout);
            if (dv.now)
                print_val(stdout, dv.now);
            else
                fputs("missing", stdout);
            if (dv.tol > 0)
                fprintf(stdout, " (tolerance %g)", dv.tol);
            fputc('\n', stdout);
        } else {
            fputs("after the last entry: the replayed state differs from the recorded one\n", stdout);
        }
    } else if (!rc && !json) {
        printf("replay: %d entr%s replayed%s\n", done, done == 1 ? "y" : "ies",
               o[CHECK].val ? ", every result within tolerance" : "");
    }
    if (!rc && jout) {
        cJSON_AddStringToObject(jout, "session", a.pos[0]);
        cJSON_AddNumberToObject(jout, "replayed", done);
        cJSON_AddBoolToObject(jout, "checked", o[CHECK].val != NULL);
        if (diverged) {
            cJSON *d = cJSON_AddObjectToObject(jout, "divergence");
            cJSON_AddNumberToObject(d, "entry", dv.entry);
            cJSON_AddStringToObject(d, "key", dv.key);
            if (dv.was) {
                qd_sess_entry one = {0};
                qd_sess_result_add(&one, "recorded", dv.was->type, dv.was->num, dv.was->str);
                if (dv.now)
                    qd_sess_result_add(&one, "now", dv.now->type, dv.now->num, dv.now->str);
                cJSON *r = qd_sess_result_json(&one);
                for (cJSON *x = r->child; x; x = x->next)
                    cJSON_AddItemToObject(d, x->string, cJSON_Duplicate(x, 1));
                cJSON_Delete(r);
                qd_sess_entry_clear(&one);
                cJSON_AddNumberToObject(d, "tolerance", dv.tol);
            }
        } else {
            cJSON_AddNullToObject(jout, "divergence");
        }
        cli_print_json(jout);
        jout = NULL;
    }
    cJSON_Delete(jout);
    qd_sess_entry_clear(&dnow);
    if (made_tmp)
        cli_rmtree(outdir);
    qd_session_free(s);
    qd_session_free(rec);
    if (!rc && diverged)
        return qd_errf(e, QD_EDIVERGED, "qdb replay: %s: a result differs from the recorded one", a.pos[0]);
    return rc;
}
