/* qjson.c - AIMET runtime configs, AIMET encodings files and quantizer
 * overrides in JSON (see qjson.h). Every reader parses with cJSON into plain
 * structs, validates, and frees the tree in the same function. */
#include "qjson.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---------------------------------------------------------------------
 * JSON paths, errors and typed getters shared by the three readers.
 * --------------------------------------------------------------------- */

#define JP 320 /* room for one JSON path in messages */

/* The file being read and where errors go. */
typedef struct jctx {
    const char *name;
    qd_err *e;
} jctx;

/* Fill e with "NAME: PATH: message" (or "NAME: message" at the top). */
__attribute__((format(printf, 3, 4)))
static int jfail(const jctx *j, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        return qd_errf(j->e, QD_EINPUT, "%s: %s: %s", j->name, path, msg);
    return qd_errf(j->e, QD_EINPUT, "%s: %s", j->name, msg);
}

static int oom(qd_err *e)
{
    return qd_errf(e, QD_EFAIL, "out of memory");
}

static int is_ident(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* parent.key, or parent["key"] when key is not an identifier. */
static void path_key(char *out, const char *parent, const char *key)
{
    if (is_ident(key))
        snprintf(out, JP, "%s%s%s", parent, *parent ? "." : "", key);
    else
        snprintf(out, JP, "%s[\"%.200s\"]", parent, key);
}

static void path_idx(char *out, const char *parent, int i)
{
    snprintf(out, JP, "%s[%d]", parent, i);
}

static const char *jtype(const cJSON *v)
{
    if (cJSON_IsObject(v))
        return "an object";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    return "an invalid value";
}

static int want_object(const jctx *j, const cJSON *v, const char *path)
{
    if (cJSON_IsObject(v))
        return 0;
    return jfail(j, path, "expected an object, got %s", jtype(v));
}

static int want_array(const jctx *j, const cJSON *v, const char *path)
{
    if (cJSON_IsArray(v))
        return 0;
    return jfail(j, path, "expected an array, got %s", jtype(v));
}

/* Every key of obj is in allowed (NULL-terminated) and appears once. */
static int check_keys(const jctx *j, const cJSON *obj, const char *path, const char *const *allowed)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        char p[JP];
        path_key(p, path, c->string ? c->string : "");
        int known = 0;
        for (int k = 0; allowed[k] && !known; k++)
            known = c->string && strcmp(c->string, allowed[k]) == 0;
        if (!known) {
            char list[256] = "";
            size_t n = 0;
            for (int k = 0; allowed[k] && n < sizeof list; k++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", allowed[k]);
            return jfail(j, p, "unknown key (expected one of: %s)", list);
        }
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return jfail(j, p, "duplicate key");
    }
    return 0;
}

/* Keys of a free-form object (tensor names, op types) appear once. */
static int check_unique(const jctx *j, const cJSON *obj, const char *path)
{
    for (const cJSON *c = obj->child; c; c = c->next)
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0) {
                char p[JP];
                path_key(p, path, c->string);
                return jfail(j, p, "duplicate key");
            }
    return 0;
}

static const cJSON *need(const jctx *j, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        jfail(j, path, "missing required key \"%s\"", key);
    return v;
}

/* AIMET's "True"/"False" strings, or JSON true/false. */
static int get_bool(const jctx *j, const cJSON *v, const char *path, int *out)
{
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "True") == 0) {
        *out = 1;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "False") == 0) {
        *out = 0;
        return 0;
    }
    if (cJSON_IsString(v))
        return jfail(j, path, "expected \"True\" or \"False\", got \"%.60s\"", v->valuestring);
    return jfail(j, path, "expected \"True\" or \"False\", got %s", jtype(v));
}

/* Optional boolean key: *out untouched when absent. */
static int opt_bool(const jctx *j, const cJSON *obj, const char *path, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    char p[JP];
    path_key(p, path, key);
    return get_bool(j, v, p, out);
}

static int get_number(const jctx *j, const cJSON *v, const char *path, double *out)
{
    if (!cJSON_IsNumber(v))
        return jfail(j, path, "expected a number, got %s", jtype(v));
    if (!isfinite(v->valuedouble))
        return jfail(j, path, "number out of range");
    *out = v->valuedouble;
    return 0;
}

/* An integral number in [lo, hi] (AIMET writes some integers as -128.0). */
static int get_int(const jctx *j, const cJSON *v, const char *path, long lo, long hi, long *out)
{
    double d;
    if (get_number(j, v, path, &d))
        return j->e->code;
    if (d != floor(d))
        return jfail(j, path, "expected an integer, got %.17g", d);
    if (d < (double)lo || d > (double)hi)
        return jfail(j, path, "%.17g is outside %ld..%ld", d, lo, hi);
    *out = (long)d;
    return 0;
}

static int get_string(const jctx *j, const cJSON *v, const char *path, const char **out)
{
    if (!cJSON_IsString(v))
        return jfail(j, path, "expected a string, got %s", jtype(v));
    *out = v->valuestring;
    return 0;
}

static char *xstrdup(const char *s, qd_err *e)
{
    char *d = strdup(s);
    if (!d)
        oom(e);
    return d;
}

/* Does text end inside a string or an open object or array? (A parse
 * error is then reported at the end, as a truncated file.) */
static int truncated(const char *text, size_t len)
{
    long depth = 0;
    int in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth < 0) {
            return 0;
        }
    }
    return in_str || depth > 0;
}

/* Parse len bytes as one JSON value. Malformed input is an error with its
 * line, column and byte offset. The caller frees the tree. */
static cJSON *parse_json(const jctx *j, const char *text, size_t len)
{
    size_t k = 0;
    while (k < len && isspace((unsigned char)text[k]))
        k++;
    if (k == len) {
        jfail(j, NULL, "empty file, expected a JSON object");
        return NULL;
    }
    /* A NUL-terminated copy: cJSON then never reads past the input. */
    char *buf = malloc(len + 1);
    if (!buf) {
        oom(j->e);
        return NULL;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    size_t off = end ? (size_t)(end - buf) : 0;
    if (root) {
        while (off < len && isspace((unsigned char)buf[off]))
            off++;
        if (off < len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        int cut = truncated(buf, len);
        if (off > len || cut)
            off = len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (cut)
            jfail(j, NULL, "malformed JSON: unexpected end of file at line %d, column %d (byte %zu; truncated?)",
                  line, col, off);
        else
            jfail(j, NULL, "malformed JSON at line %d, column %d (byte %zu)", line, col, off);
    }
    free(buf);
    return root;
}

/* ---------------------------------------------------------------------
 * AIMET runtime config
 * --------------------------------------------------------------------- */

static const char *const K_CFG[] = {"defaults", "params", "op_type", "supergroups", "model_input",
                                    "model_output", NULL};
static const char *const K_DEFAULTS[] = {"ops", "params", "strict_symmetric", "unsigned_symmetric",
                                         "per_channel_quantization", "supported_kernels", "hw_version",
                                         NULL};
static const char *const K_OPS[] = {"is_input_quantized", "is_output_quantized", "is_symmetric", NULL};
static const char *const K_PARAM[] = {"is_quantized", "is_symmetric", NULL};
static const char *const K_OPTYPE[] = {"is_input_quantized", "is_output_quantized", "is_symmetric",
                                       "per_channel_quantization", "params", "supported_kernels",
                                       "encoding_constraints", NULL};
static const char *const K_KERNEL[] = {"activation", "param", NULL};
static const char *const K_KSIDE[] = {"bitwidth", "dtype", NULL};
static const char *const K_GROUP[] = {"op_list", NULL};
static const char *const K_MIN[] = {"is_input_quantized", NULL};
static const char *const K_MOUT[] = {"is_output_quantized", NULL};

/* One side of a supported_kernels entry: {"bitwidth": 4|8|16|32, "dtype": "int"|"float"}. */
static int parse_kside(const jctx *j, const cJSON *v, const char *path, int *bits, int *isfloat)
{
    if (want_object(j, v, path) || check_keys(j, v, path, K_KSIDE))
        return j->e->code;
    const cJSON *b = need(j, v, path, "bitwidth"), *d = b ? need(j, v, path, "dtype") : NULL;
    if (!d)
        return j->e->code;
    char p[JP];
    long bw = 0;
    path_key(p, path, "bitwidth");
    if (get_int(j, b, p, 0, 64, &bw))
        return j->e->code;
    if (bw != 4 && bw != 8 && bw != 16 && bw != 32)
        return jfail(j, p, "bitwidth %ld is not one of 4, 8, 16, 32", bw);
    const char *dt = NULL;
    path_key(p, path, "dtype");
    if (get_string(j, d, p, &dt))
        return j->e->code;
    if (strcmp(dt, "int") != 0 && strcmp(dt, "float") != 0)
        return jfail(j, p, "expected \"int\" or \"float\", got \"%.60s\"", dt);
    *bits = (int)bw;
    *isfloat = strcmp(dt, "float") == 0;
    return 0;
}

/* supported_kernels: a non-empty array of {activation, param}; param is
 * required at the defaults level only (AIMET's schema). */
static int parse_kernels(const jctx *j, const cJSON *v, const char *path, int need_param,
                         qd_qcfg_kernel **out, int *nout)
{
    if (want_array(j, v, path))
        return j->e->code;
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        return jfail(j, path, "expected at least one kernel");
    qd_qcfg_kernel *k = calloc((size_t)n, sizeof *k);
    if (!k)
        return oom(j->e);
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char p[JP], q[JP];
        path_idx(p, path, i);
        if (want_object(j, it, p) || check_keys(j, it, p, K_KERNEL))
            goto fail;
        const cJSON *a = need(j, it, p, "activation");
        if (!a)
            goto fail;
        path_key(q, p, "activation");
        if (parse_kside(j, a, q, &k[i].act_bits, &k[i].act_float))
            goto fail;
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(it, "param");
        if (!pr && need_param) {
            need(j, it, p, "param");
            goto fail;
        }
        path_key(q, p, "param");
        if (pr && parse_kside(j, pr, q, &k[i].param_bits, &k[i].param_float))
            goto fail;
    }
    *out = k;
    *nout = n;
    return 0;
fail:
    free(k);
    return j->e->code;
}

/* A {role: {is_quantized, is_symmetric}} object. */
static int parse_params(const jctx *j, const cJSON *v, const char *path, qd_qcfg_param **out, int *nout)
{
    if (want_object(j, v, path) || check_unique(j, v, path))
        return j->e->code;
    int n = cJSON_GetArraySize(v), i = 0;
    qd_qcfg_param *p = n ? calloc((size_t)n, sizeof *p) : NULL;
    if (n && !p)
        return oom(j->e);
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char q[JP];
        path_key(q, path, it->string);
        p[i].is_quantized = p[i].is_symmetric = -1;
        if (want_object(j, it, q) || check_keys(j, it, q, K_PARAM) ||
            opt_bool(j, it, q, "is_quantized", &p[i].is_quantized) ||
            opt_bool(j, it, q, "is_symmetric", &p[i].is_symmetric) ||
            !(p[i].name = xstrdup(it->string, j->e)))
            goto fail;
    }
    *out = p;
    *nout = n;
    return 0;
fail:
    for (int k = 0; k < n; k++)
        free(p[k].name);
    free(p);
    return j->e->code;
}

static int parse_defaults(const jctx *j, const cJSON *d, qd_qcfg *c)
{
    const char *path = "defaults";
    if (want_object(j, d, path) || check_keys(j, d, path, K_DEFAULTS))
        return j->e->code;
    const cJSON *ops = need(j, d, path, "ops"), *params = ops ? need(j, d, path, "params") : NULL;
    if (!params)
        return j->e->code;
    if (want_object(j, ops, "defaults.ops") || check_keys(j, ops, "defaults.ops", K_OPS) ||
        opt_bool(j, ops, "defaults.ops", "is_output_quantized", &c->ops_output_quantized) ||
        opt_bool(j, ops, "defaults.ops", "is_input_quantized", &c->ops_input_quantized) ||
        opt_bool(j, ops, "defaults.ops", "is_symmetric", &c->ops_symmetric))
        return j->e->code;
    if (want_object(j, params, "defaults.params") || check_keys(j, params, "defaults.params", K_PARAM) ||
        opt_bool(j, params, "defaults.params", "is_quantized", &c->params_quantized) ||
        opt_bool(j, params, "defaults.params", "is_symmetric", &c->params_symmetric))
        return j->e->code;
    if (opt_bool(j, d, path, "strict_symmetric", &c->strict_symmetric) ||
        opt_bool(j, d, path, "unsigned_symmetric", &c->unsigned_symmetric) ||
        opt_bool(j, d, path, "per_channel_quantization", &c->per_channel))
        return j->e->code;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "supported_kernels");
    if (k && parse_kernels(j, k, "defaults.supported_kernels", 1, &c->kernels, &c->nkernels))
        return j->e->code;
    const cJSON *hw = cJSON_GetObjectItemCaseSensitive(d, "hw_version");
    const char *s = NULL;
    if (hw && (get_string(j, hw, "defaults.hw_version", &s) || !(c->hw_version = xstrdup(s, j->e))))
        return j->e->code;
    return 0;
}

static int parse_op(const jctx *j, const cJSON *v, const char *path, qd_qcfg_op *op)
{
    op->is_input_quantized = op->is_output_quantized = op->is_symmetric = op->per_channel = -1;
    if (want_object(j, v, path) || check_keys(j, v, path, K_OPTYPE))
        return j->e->code;
    if (cJSON_GetObjectItemCaseSensitive(v, "encoding_constraints")) {
        char p[JP];
        path_key(p, path, "encoding_constraints");
        return jfail(j, p, "not supported by qdb (fix the range with an override: min=F max=F)");
    }
    if (opt_bool(j, v, path, "is_input_quantized", &op->is_input_quantized) ||
        opt_bool(j, v, path, "is_output_quantized", &op->is_output_quantized) ||
        opt_bool(j, v, path, "is_symmetric", &op->is_symmetric) ||
        opt_bool(j, v, path, "per_channel_quantization", &op->per_channel))
        return j->e->code;
    char p[JP];
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(v, "params");
    path_key(p, path, "params");
    if (pr && parse_params(j, pr, p, &op->params, &op->nparams))
        return j->e->code;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(v, "supported_kernels");
    path_key(p, path, "supported_kernels");
    if (k && parse_kernels(j, k, p, 0, &op->kernels, &op->nkernels))
        return j->e->code;
    return 0;
}

static int parse_groups(const jctx *j, const cJSON *v, qd_qcfg *c)
{
    if (want_array(j, v, "supergroups"))
        return j->e->code;
    int n = cJSON_GetArraySize(v), i = 0;
    if (n && !(c->groups = calloc((size_t)n, sizeof *c->groups)))
        return oom(j->e);
    c->ngroups = n;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char p[JP], q[JP];
        path_idx(p, "supergroups", i);
        if (want_object(j, it, p) || check_keys(j, it, p, K_GROUP))
            return j->e->code;
        const cJSON *l = need(j, it, p, "op_list");
        if (!l)
            return j->e->code;
        path_key(q, p, "op_list");
        if (want_array(j, l, q))
            return j->e->code;
        int m = cJSON_GetArraySize(l), k = 0;
        if (m < 2)
            return jfail(j, q, "a supergroup needs at least 2 ops, got %d", m);
        if (!(c->groups[i].ops = calloc((size_t)m, sizeof(char *))))
            return oom(j->e);
        c->groups[i].n = m;
        for (const cJSON *o = l->child; o; o = o->next, k++) {
            char r[JP];
            const char *s = NULL;
            path_idx(r, q, k);
            if (get_string(j, o, r, &s) || !(c->groups[i].ops[k] = xstrdup(s, j->e)))
                return j->e->code;
        }
    }
    return 0;
}

static int parse_cfg(const jctx *j, const cJSON *root, qd_qcfg *c)
{
    if (!cJSON_IsObject(root))
        return jfail(j, NULL, "expected a JSON object at the top level, got %s", jtype(root));
    if (check_keys(j, root, "", K_CFG))
        return j->e->code;
    for (int k = 0; K_CFG[k]; k++)
        if (!need(j, root, "", K_CFG[k]))
            return j->e->code;
    if (parse_defaults(j, cJSON_GetObjectItemCaseSensitive(root, "defaults"), c) ||
        parse_params(j, cJSON_GetObjectItemCaseSensitive(root, "params"), "params", &c->params, &c->nparams))
        return j->e->code;
    const cJSON *ot = cJSON_GetObjectItemCaseSensitive(root, "op_type");
    if (want_object(j, ot, "op_type") || check_unique(j, ot, "op_type"))
        return j->e->code;
    int n = cJSON_GetArraySize(ot), i = 0;
    if (n && !(c->ops = calloc((size_t)n, sizeof *c->ops)))
        return oom(j->e);
    for (const cJSON *it = ot->child; it; it = it->next, i++) {
        char p[JP];
        path_key(p, "op_type", it->string);
        c->nops = i + 1;
        if (!(c->ops[i].op_type = xstrdup(it->string, j->e)) || parse_op(j, it, p, &c->ops[i]))
            return j->e->code;
    }
    if (parse_groups(j, cJSON_GetObjectItemCaseSensitive(root, "supergroups"), c))
        return j->e->code;
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(root, "model_input");
    if (want_object(j, mi, "model_input") || check_keys(j, mi, "model_input", K_MIN) ||
        opt_bool(j, mi, "model_input", "is_input_quantized", &c->input_quantized))
        return j->e->code;
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(root, "model_output");
    if (want_object(j, mo, "model_output") || check_keys(j, mo, "model_output", K_MOUT) ||
        opt_bool(j, mo, "model_output", "is_output_quantized", &c->output_quantized))
        return j->e->code;
    return 0;
}

int qd_qcfg_parse(const char *text, size_t len, const char *name, qd_qcfg *c, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    jctx j = {name, e};
    qd_qcfg t = {.unsigned_symmetric = 1};
    cJSON *root = parse_json(&j, text, len);
    if (!root)
        return e->code;
    int rc = parse_cfg(&j, root, &t);
    cJSON_Delete(root);
    if (!rc && !(t.name = xstrdup(name, e)))
        rc = e->code;
    if (rc) {
        qd_qcfg_clear(&t);
        return rc;
    }
    *c = t;
    return 0;
}

int qd_qcfg_load(const char *path, qd_qcfg *c, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    size_t len = 0;
    char *text = qd_read_file(path, 0, &len, e);
    if (!text)
        return e->code;
    int rc = qd_qcfg_parse(text, len, path, c, e);
    free(text);
    return rc;
}

int qd_qcfg_builtin(const char *name, qd_qcfg *c, qd_err *e)
{
    for (int i = 0; i < qd_qcfg_ntexts; i++)
        if (strcmp(qd_qcfg_texts[i].name, name) == 0)
            return qd_qcfg_parse(qd_qcfg_texts[i].text, qd_qcfg_texts[i].len, name, c, e);
    char list[256] = "";
    size_t n = 0;
    for (int i = 0; i < qd_qcfg_ntexts && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", qd_qcfg_texts[i].name);
    return qd_errf(e, QD_EINPUT, "unknown built-in config \"%s\" (built-in: %s)", name, list);
}

/* ---------------------------------------------------------------------
 * AIMET encodings: writing
 * --------------------------------------------------------------------- */

/* A growing output buffer; oom is sticky. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* The shortest of %.15g..%.17g that reads back to exactly v (so a written
 * file reads back to the same doubles), with ".0" on integral values, and
 * '.' as the decimal point whatever the locale. v is finite. */
static void sb_num(sbuf *b, double v)
{
    char s[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    for (char *c = s; *c; c++)
        if (*c == ',')
            *c = '.';
    if (!strpbrk(s, ".eE"))
        strcat(s, ".0");
    sb_put(b, s, strlen(s));
}

static void sb_indent(sbuf *b, int level)
{
    static const char sp[] = "                                ";
    sb_put(b, sp, (size_t)(4 * level) < sizeof sp - 1 ? (size_t)(4 * level) : sizeof sp - 1);
}

/* Quantizers whose encodings are written. */
static int exported(const qd_quantizer *q)
{
    return qd_quantizer_active(q) && q->nenc > 0 && q->enc;
}

static int is_act(const qd_quantizer *q)
{
    return q->kind != QD_QK_PARAM;
}

/* AIMET's quant_scheme names where AIMET has the method; qdb's own names
 * (qd_range_name) for the others. */
static const char *quant_scheme_name(qd_range_method m)
{
    switch (m) {
    case QD_RANGE_MINMAX:
        return "post_training_tf";
    case QD_RANGE_SQNR:
        return "post_training_tf_enhanced";
    case QD_RANGE_PERCENTILE:
        return "post_training_percentile";
    default:
        return qd_range_name(m);
    }
}

/* The most common value among n ints (the first on ties); def when n = 0. */
static int mode_of(const int *v, int n, int def)
{
    int best = def, bestc = 0;
    for (int i = 0; i < n; i++) {
        int c = 0;
        for (int k = 0; k < n; k++)
            c += v[k] == v[i];
        if (c > bestc) {
            best = v[i];
            bestc = c;
        }
    }
    return best;
}

/* quantizer_args: AIMET describes the sim's global settings; qdb's are per
 * quantizer, so these are the most common among the written quantizers
 * (act bits, act range method; param bits, param symmetry), and
 * per_channel_quantization is true when any param is per channel. */
static void write_qargs(sbuf *b, qd_sim *s)
{
    int nq = qd_sim_count(s), na = 0, np = 0, pc = 0;
    int *abits = calloc((size_t)nq + 1, sizeof(int)), *arange = calloc((size_t)nq + 1, sizeof(int));
    int *pbits = calloc((size_t)nq + 1, sizeof(int)), *psym = calloc((size_t)nq + 1, sizeof(int));
    if (!abits || !arange || !pbits || !psym) {
        b->oom = 1;
        goto done;
    }
    for (int i = 0; i < nq; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (!exported(q))
            continue;
        if (is_act(q)) {
            abits[na] = q->enc[0].bits;
            arange[na++] = (int)q->set.range;
        } else {
            pbits[np] = q->enc[0].bits;
            psym[np++] = q->enc[0].symmetric;
            pc |= q->nenc > 1 || (q->set.per_channel && q->axis >= 0);
        }
    }
    int sym = mode_of(psym, np, 1);
    sb_printf(b, "    \"quantizer_args\": {\n");
    sb_printf(b, "        \"activation_bitwidth\": %d,\n", mode_of(abits, na, 8));
    sb_printf(b, "        \"dtype\": \"int\",\n");
    sb_printf(b, "        \"is_symmetric\": %s,\n", sym ? "true" : "false");
    sb_printf(b, "        \"param_bitwidth\": %d,\n", mode_of(pbits, np, 8));
    sb_printf(b, "        \"per_channel_quantization\": %s,\n", pc ? "true" : "false");
    sb_printf(b, "        \"quant_scheme\": \"%s\"\n",
              quant_scheme_name((qd_range_method)mode_of(arange, na, QD_RANGE_MINMAX)));
    sb_printf(b, "    },\n");
done:
    free(abits);
    free(arange);
    free(pbits);
    free(psym);
}

/* 0.6.1: "tensor": [ {bitwidth, dtype, is_symmetric, max, min, offset, scale}, ... ] */
static void write_v0_section(sbuf *b, qd_sim *s, int acts)
{
    int first = 1;
    sb_printf(b, "    \"%s_encodings\": {", acts ? "activation" : "param");
    for (int i = 0; i < qd_sim_count(s); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (!exported(q) || is_act(q) != acts)
            continue;
        sb_put(b, first ? "\n" : ",\n", first ? 1 : 2);
        first = 0;
        sb_indent(b, 2);
        sb_str(b, q->name);
        sb_printf(b, ": [\n");
        for (int c = 0; c < q->nenc; c++) {
            const qd_encoding *en = &q->enc[c];
            sb_indent(b, 3);
            sb_printf(b, "{\n");
            sb_indent(b, 4);
            sb_printf(b, "\"bitwidth\": %d,\n", en->bits);
            sb_indent(b, 4);
            sb_printf(b, "\"dtype\": \"int\",\n");
            sb_indent(b, 4);
            sb_printf(b, "\"is_symmetric\": \"%s\",\n", en->symmetric ? "True" : "False");
            sb_indent(b, 4);
            sb_printf(b, "\"max\": ");
            sb_num(b, en->max);
            sb_printf(b, ",\n");
            sb_indent(b, 4);
            sb_printf(b, "\"min\": ");
            sb_num(b, en->min);
            sb_printf(b, ",\n");
            sb_indent(b, 4);
            sb_printf(b, "\"offset\": %d,\n", en->offset);
            sb_indent(b, 4);
            sb_printf(b, "\"scale\": ");
            sb_num(b, en->scale);
            sb_printf(b, "\n");
            sb_indent(b, 3);
            sb_printf(b, "}%s\n", c + 1 < q->nenc ? "," : "");
        }
        sb_indent(b, 2);
        sb_printf(b, "]");
    }
    sb_printf(b, first ? "},\n" : "\n    },\n");
}

/* 1.0.0: [ {name, dtype, enc_type, is_sym, bw, scale[], offset[]}, ... ] */
static void write_v1_section(sbuf *b, qd_sim *s, int acts)
{
    int first = 1;
    sb_printf(b, "    \"%s_encodings\": [", acts ? "activation" : "param");
    for (int i = 0; i < qd_sim_count(s); i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (!exported(q) || is_act(q) != acts)
            continue;
        int pc = q->nenc > 1 || (q->kind == QD_QK_PARAM && q->set.per_channel && q->axis >= 0);
        sb_put(b, first ? "\n" : ",\n", first ? 1 : 2);
        first = 0;
        sb_indent(b, 2);
        sb_printf(b, "{\n");
        sb_indent(b, 3);
        sb_printf(b, "\"name\": ");
        sb_str(b, q->name);
        sb_printf(b, ",\n");
        sb_indent(b, 3);
        sb_printf(b, "\"dtype\": \"INT\",\n");
        sb_indent(b, 3);
        sb_printf(b, "\"enc_type\": \"%s\",\n", pc ? "PER_CHANNEL" : "PER_TENSOR");
        sb_indent(b, 3);
        sb_printf(b, "\"is_sym\": %s,\n", q->enc[0].symmetric ? "true" : "false");
        sb_indent(b, 3);
        sb_printf(b, "\"bw\": %d,\n", q->enc[0].bits);
        sb_indent(b, 3);
        sb_printf(b, "\"scale\": [");
        for (int c = 0; c < q->nenc; c++) {
            if (c)
                sb_printf(b, ", ");
            sb_num(b, q->enc[c].scale);
        }
        sb_printf(b, "],\n");
        sb_indent(b, 3);
        sb_printf(b, "\"offset\": [");
        for (int c = 0; c < q->nenc; c++)
            sb_printf(b, "%s%d", c ? ", " : "", q->enc[c].offset);
        sb_printf(b, "]\n");
        sb_indent(b, 2);
        sb_printf(b, "}");
    }
    sb_printf(b, first ? "],\n" : "\n    ],\n");
}

/* The whole encodings file of s in format "0.6.1" or "1.0.0" into b. */
static int format_encodings(qd_sim *s, const char *format, sbuf *b, qd_err *e)
{
    int v1;
    if (!strcmp(format, "0.6.1"))
        v1 = 0;
    else if (!strcmp(format, "1.0.0"))
        v1 = 1;
    else
        return qd_errf(e, QD_EINPUT, "unknown encodings format \"%s\" (0.6.1 or 1.0.0)", format);
    /* Keys in sorted order, as AIMET writes them (json.dump sort_keys). */
    sb_printf(b, "{\n");
    if (v1)
        write_v1_section(b, s, 1);
    else
        write_v0_section(b, s, 1);
    sb_printf(b, "    \"excluded_layers\": [],\n");
    if (v1)
        write_v1_section(b, s, 0);
    else
        write_v0_section(b, s, 0);
    write_qargs(b, s);
    sb_printf(b, "    \"version\": \"%s\"\n}\n", format);
    return b->oom ? oom(e) : 0;
}

int qd_encodings_write(qd_sim *s, const char *path, const char *format, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    sbuf b = {0};
    int rc = format_encodings(s, format, &b, e);
    if (!rc)
        rc = qd_write_atomic(path, b.p, b.n, e);
    free(b.p);
    return rc;
}

/* ---------------------------------------------------------------------
 * AIMET encodings: reading
 * --------------------------------------------------------------------- */

static const char *const K_ENC[] = {"version", "activation_encodings", "param_encodings", "excluded_layers",
                                    "quantizer_args", NULL};
static const char *const K_QARGS[] = {"activation_bitwidth", "dtype", "is_symmetric", "param_bitwidth",
                                      "per_channel_quantization", "quant_scheme", NULL};
static const char *const K_V0[] = {"bitwidth", "dtype", "is_symmetric", "max", "min", "offset", "scale", NULL};
static const char *const K_V1[] = {"name", "dtype", "enc_type", "bw", "is_sym", "scale", "offset", NULL};

/* One tensor's encodings, validated, waiting to be applied. */
typedef struct enc_item {
    int q;              /* quantizer index */
    int n;
    qd_encoding *enc;
    int strict;         /* strict symmetric as the offsets say, -1 when they do not say */
    int unsig;          /* unsigned symmetric (an offset 0 on a symmetric grid), -1 unknown */
    int per_channel;    /* granularity the file states, -1 when it cannot tell */
} enc_item;

typedef struct enc_read {
    jctx j;
    qd_sim *s;
    int v1;
    int nitems;
    enc_item *items;
    int *seen;          /* per quantizer: listed already */
} enc_read;

/* The quantizer a file names, in the right section, not listed before. */
static int find_tensor(enc_read *r, const char *name, int acts, const char *path, int *qi)
{
    int i = qd_sim_find(r->s, name);
    if (i < 0)
        return jfail(&r->j, path, "no quantizer on a tensor named \"%.120s\"", name);
    const qd_quantizer *q = qd_sim_get(r->s, i);
    if (acts && q->kind == QD_QK_PARAM)
        return jfail(&r->j, path, "\"%.120s\" is a parameter: its encodings belong under param_encodings", name);
    if (!acts && q->kind != QD_QK_PARAM)
        return jfail(&r->j, path, "\"%.120s\" is an activation: its encodings belong under activation_encodings",
                     name);
    if (r->seen[i])
        return jfail(&r->j, path, "\"%.120s\" is listed twice", name);
    r->seen[i] = 1;
    *qi = i;
    return 0;
}

/* n entries for quantizer q: 1, or one per channel of a param. */
static int check_count(enc_read *r, int qi, int n, const char *path)
{
    const qd_quantizer *q = qd_sim_get(r->s, qi);
    if (n == 1 || (q->axis >= 0 && n == q->nch))
        return 0;
    if (n == 0)
        return jfail(&r->j, path, "no encodings");
    if (q->kind != QD_QK_PARAM)
        return jfail(&r->j, path, "%d entries, an activation has one encoding", n);
    if (q->axis < 0)
        return jfail(&r->j, path, "%d entries, the tensor has no channel axis (one encoding)", n);
    return jfail(&r->j, path, "%d entries, the tensor has %lld channels", n, (long long)q->nch);
}

static int get_bits(enc_read *r, const cJSON *v, const char *path, int *bits)
{
    long b = 0;
    if (get_int(&r->j, v, path, -1000000, 1000000, &b))
        return r->j.e->code;
    if (b < QD_BITS_MIN || b > QD_BITS_MAX)
        return jfail(&r->j, path, "bit-width %ld outside %d..%d", b, QD_BITS_MIN, QD_BITS_MAX);
    *bits = (int)b;
    return 0;
}

/* Strict / unsigned symmetric as the offsets of a symmetric tensor tell:
 * -2^(b-1) is the full signed grid, -(2^(b-1) - 1) the strict one, 0 the
 * unsigned one. */
static int infer_grid(enc_item *it, const long *offs, int n, int bits, int sym, const char *path, enc_read *r)
{
    it->strict = it->unsig = -1;
    if (!sym)
        return 0;
    long full = -(1L << (bits - 1)), strict = full + 1;
    for (int c = 0; c < n; c++) {
        int st = offs[c] == strict ? 1 : offs[c] == full ? 0 : -1;
        if (st >= 0 && it->strict >= 0 && st != it->strict)
            return jfail(&r->j, path, "mixes strict (%ld) and full (%ld) symmetric offsets", strict, full);
        if (st >= 0)
            it->strict = st;
        if (offs[c] == 0)
            it->unsig = 1;
    }
    return 0;
}

static int check_enc(enc_read *r, const qd_encoding *en, const char *path)
{
    const char *why = qd_quant_encoding_invalid(en);
    return why ? jfail(&r->j, path, "%s", why) : 0;
}

/* 0.6.1 (and 0.4/0.5): "tensor": [ {bitwidth, dtype, is_symmetric, max, min, offset, scale}, ... ] */
static int read_v0_tensor(enc_read *r, const cJSON *v, const char *path, int acts, enc_item *it)
{
    jctx *j = &r->j;
    if (find_tensor(r, v->string, acts, path, &it->q) || want_array(j, v, path) ||
        check_count(r, it->q, cJSON_GetArraySize(v), path))
        return j->e->code;
    int n = cJSON_GetArraySize(v), c = 0, bits0 = 0, sym0 = 0;
    long *offs = malloc((size_t)n * sizeof *offs);
    if (!(it->enc = calloc((size_t)n, sizeof *it->enc)) || !offs) {
        free(offs);
        return oom(j->e);
    }
    it->n = n;
    for (const cJSON *x = v->child; x; x = x->next, c++) {
        char p[JP], q[JP];
        path_idx(p, path, c);
        if (want_object(j, x, p) || check_keys(j, x, p, K_V0))
            goto fail;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(x, "dtype");
        const char *dts = NULL;
        path_key(q, p, "dtype");
        if (dt && get_string(j, dt, q, &dts))
            goto fail;
        if (dt && strcmp(dts, "int") != 0) {
            jfail(j, q, strcmp(dts, "float") ? "expected \"int\", got \"%.40s\""
                                             : "\"%.40s\" encodings (fp16 simulation) are not supported by qdb",
                  dts);
            goto fail;
        }
        static const char *const req[] = {"bitwidth", "is_symmetric", "max", "min", "offset", "scale"};
        for (size_t k = 0; k < sizeof req / sizeof *req; k++)
            if (!need(j, x, p, req[k]))
                goto fail;
        qd_encoding *en = &it->enc[c];
        long off = 0;
        path_key(q, p, "bitwidth");
        if (get_bits(r, cJSON_GetObjectItemCaseSensitive(x, "bitwidth"), q, &en->bits))
            goto fail;
        if (c && en->bits != bits0) {
            jfail(j, q, "bit-width %d differs from entry 0's %d", en->bits, bits0);
            goto fail;
        }
        path_key(q, p, "is_symmetric");
        if (get_bool(j, cJSON_GetObjectItemCaseSensitive(x, "is_symmetric"), q, &en->symmetric))
            goto fail;
        if (c && en->symmetric != sym0) {
            jfail(j, q, "differs from entry 0's");
            goto fail;
        }
        bits0 = en->bits;
        sym0 = en->symmetric;
        path_key(q, p, "max");
        if (get_number(j, cJSON_GetObjectItemCaseSensitive(x, "max"), q, &en->max))
            goto fail;
        path_key(q, p, "min");
        if (get_number(j, cJSON_GetObjectItemCaseSensitive(x, "min"), q, &en->min))
            goto fail;
        path_key(q, p, "scale");
        if (get_number(j, cJSON_GetObjectItemCaseSensitive(x, "scale"), q, &en->scale))
            goto fail;
        path_key(q, p, "offset");
        if (get_int(j, cJSON_GetObjectItemCaseSensitive(x, "offset"), q, -(1L << QD_BITS_MAX), 0, &off))
            goto fail;
        en->offset = (int)off;
        offs[c] = off;
        if (check_enc(r, en, p))
            goto fail;
    }
    if (infer_grid(it, offs, n, bits0, sym0, path, r))
        goto fail;
    free(offs);
    it->per_channel = -1;
    if (qd_sim_get(r->s, it->q)->nch > 1)
        it->per_channel = n > 1;
    return 0;
fail:
    free(offs);
    return j->e->code;
}

/* 1.0.0: {name, dtype, enc_type, bw, is_sym, scale[], offset[]} */
static int read_v1_entry(enc_read *r, const cJSON *x, const char *path, int acts, enc_item *it)
{
    jctx *j = &r->j;
    char p[JP];
    if (want_object(j, x, path))
        return j->e->code;
    /* enc_type first: per-block keys are reported as unsupported, not unknown */
    const cJSON *et = need(j, x, path, "enc_type");
    const char *ets = NULL, *name = NULL, *dts = NULL;
    path_key(p, path, "enc_type");
    if (!et || get_string(j, et, p, &ets))
        return j->e->code;
    int pc = !strcmp(ets, "PER_CHANNEL");
    if (!pc && strcmp(ets, "PER_TENSOR") != 0) {
        if (!strcmp(ets, "PER_BLOCK") || !strcmp(ets, "LPBQ"))
            return jfail(j, p, "\"%s\" encodings are not supported by qdb (per-tensor and per-channel only)", ets);
        return jfail(j, p, "expected \"PER_TENSOR\" or \"PER_CHANNEL\", got \"%.40s\"", ets);
    }
    if (check_keys(j, x, path, K_V1))
        return j->e->code;
    static const char *const req[] = {"name", "dtype", "bw", "is_sym", "scale", "offset"};
    for (size_t k = 0; k < sizeof req / sizeof *req; k++)
        if (!need(j, x, path, req[k]))
            return j->e->code;
    path_key(p, path, "name");
    if (get_string(j, cJSON_GetObjectItemCaseSensitive(x, "name"), p, &name) || find_tensor(r, name, acts, p, &it->q))
        return j->e->code;
    path_key(p, path, "dtype");
    if (get_string(j, cJSON_GetObjectItemCaseSensitive(x, "dtype"), p, &dts))
        return j->e->code;
    if (strcmp(dts, "INT") != 0)
        return jfail(j, p, strcmp(dts, "FLOAT") ? "expected \"INT\", got \"%.40s\""
                                                : "\"%.40s\" encodings (fp16 simulation) are not supported by qdb",
                     dts);
    int bits = 0, sym = 0;
    path_key(p, path, "bw");
    if (get_bits(r, cJSON_GetObjectItemCaseSensitive(x, "bw"), p, &bits))
        return j->e->code;
    path_key(p, path, "is_sym");
    if (get_bool(j, cJSON_GetObjectItemCaseSensitive(x, "is_sym"), p, &sym))
        return j->e->code;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(x, "scale"), *of = cJSON_GetObjectItemCaseSensitive(x, "offset");
    char ps[JP], po[JP];
    path_key(ps, path, "scale");
    path_key(po, path, "offset");
    if (want_array(j, sc, ps) || want_array(j, of, po))
        return j->e->code;
    int n = cJSON_GetArraySize(sc);
    if (cJSON_GetArraySize(of) != n)
        return jfail(j, po, "%d offsets for %d scales", cJSON_GetArraySize(of), n);
    const qd_quantizer *q = qd_sim_get(r->s, it->q);
    if (pc && q->axis < 0) {
        path_key(p, path, "enc_type");
        return jfail(j, p, "PER_CHANNEL, but \"%.120s\" has no channel axis", name);
    }
    if (!pc && n != 1)
        return jfail(j, ps, "%d entries, PER_TENSOR has one", n);
    if (check_count(r, it->q, n, ps))
        return j->e->code;
    double *scales = malloc((size_t)n * sizeof *scales);
    long *offs = malloc((size_t)n * sizeof *offs);
    if (!scales || !offs || !(it->enc = calloc((size_t)n, sizeof *it->enc))) {
        free(scales);
        free(offs);
        return oom(j->e);
    }
    it->n = n;
    int c = 0;
    for (const cJSON *a = sc->child, *b = of->child; a && b; a = a->next, b = b->next, c++) {
        char qa[JP], qb[JP];
        path_idx(qa, ps, c);
        path_idx(qb, po, c);
        if (get_number(j, a, qa, &scales[c]) || get_int(j, b, qb, -(1L << QD_BITS_MAX), 0, &offs[c]))
            goto fail;
    }
    if (infer_grid(it, offs, n, bits, sym, path, r))
        goto fail;
    /* min/max from scale and offset on the grid the file describes; where
     * the offsets do not tell strict from full, the quantizer's own flag */
    qd_qscheme sch = q->set.scheme;
    sch.bits = bits;
    sch.symmetric = sym;
    if (it->strict >= 0)
        sch.strict_symmetric = it->strict;
    for (c = 0; c < n; c++) {
        char qa[JP];
        path_idx(qa, ps, c);
        it->enc[c] = qd_quant_encoding_so(scales[c], (int)offs[c], &sch);
        if (check_enc(r, &it->enc[c], qa))
            goto fail;
    }
    it->per_channel = q->axis >= 0 ? pc : -1;
    free(scales);
    free(offs);
    return 0;
fail:
    free(scales);
    free(offs);
    return j->e->code;
}

static int read_section(enc_read *r, const cJSON *sec, int acts)
{
    jctx *j = &r->j;
    const char *path = acts ? "activation_encodings" : "param_encodings";
    if (r->v1 ? want_array(j, sec, path) : want_object(j, sec, path))
        return j->e->code;
    int i = 0;
    for (const cJSON *x = sec->child; x; x = x->next, i++) {
        char p[JP];
        enc_item *it = &r->items[r->nitems];
        if (r->v1)
            path_idx(p, path, i);
        else
            path_key(p, path, x->string);
        int rc = r->v1 ? read_v1_entry(r, x, p, acts, it) : read_v0_tensor(r, x, p, acts, it);
        r->nitems++; /* counted also on failure: its enc is freed with the rest */
        if (rc)
            return rc;
    }
    return 0;
}

static int read_qargs(enc_read *r, const cJSON *v)
{
    jctx *j = &r->j;
    const char *path = "quantizer_args";
    if (want_object(j, v, path) || check_keys(j, v, path, K_QARGS))
        return j->e->code;
    for (const cJSON *x = v->child; x; x = x->next) {
        char p[JP];
        long l = 0;
        int b = 0;
        const char *s = NULL;
        path_key(p, path, x->string);
        if (!strcmp(x->string, "activation_bitwidth") || !strcmp(x->string, "param_bitwidth")) {
            if (get_int(j, x, p, 1, 64, &l))
                return j->e->code;
        } else if (!strcmp(x->string, "is_symmetric") || !strcmp(x->string, "per_channel_quantization")) {
            if (get_bool(j, x, p, &b))
                return j->e->code;
        } else if (get_string(j, x, p, &s)) {
            return j->e->code;
        }
    }
    return 0;
}

/* Parse and validate everything into r->items. */
static int read_encodings(enc_read *r, const cJSON *root)
{
    jctx *j = &r->j;
    if (!cJSON_IsObject(root))
        return jfail(j, NULL, "expected a JSON object at the top level, got %s", jtype(root));
    if (check_keys(j, root, "", K_ENC))
        return j->e->code;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_encodings");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(root, "param_encodings");
    if (!act && !par)
        return jfail(j, NULL, "neither activation_encodings nor param_encodings: not an encodings file");
    if (ver) {
        const char *vs = NULL;
        if (get_string(j, ver, "version", &vs))
            return j->e->code;
        if (!strcmp(vs, "1.0.0"))
            r->v1 = 1;
        else if (!strcmp(vs, "0.6.1") || !strcmp(vs, "0.5.0") || !strcmp(vs, "0.4.0"))
            r->v1 = 0;
        else
            return jfail(j, "version", "unsupported version \"%.40s\" (0.6.1 or 1.0.0)", vs);
    } else {
        /* no version: by shape (AIMET's older files have none) */
        const cJSON *any = act ? act : par;
        if (!cJSON_IsObject(any) && !cJSON_IsArray(any))
            return jfail(j, act ? "activation_encodings" : "param_encodings",
                         "expected an object (0.6.1) or an array (1.0.0), got %s", jtype(any));
        r->v1 = cJSON_IsArray(any);
    }
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "excluded_layers");
    if (ex) {
        if (want_array(j, ex, "excluded_layers"))
            return j->e->code;
        int i = 0;
        for (const cJSON *x = ex->child; x; x = x->next, i++) {
            char p[JP];
            const char *s = NULL;
            path_idx(p, "excluded_layers", i);
            if (get_string(j, x, p, &s))
                return j->e->code;
        }
    }
    const cJSON *qa = cJSON_GetObjectItemCaseSensitive(root, "quantizer_args");
    if (qa && read_qargs(r, qa))
        return j->e->code;
    int n = (act ? cJSON_GetArraySize(act) : 0) + (par ? cJSON_GetArraySize(par) : 0);
    if (n && !(r->items = calloc((size_t)n, sizeof *r->items)))
        return oom(j->e);
    if ((act && read_section(r, act, 1)) || (par && read_section(r, par, 0)))
        return j->e->code;
    return 0;
}

/* Apply validated items. Only out of memory can fail here. */
static int apply_encodings(enc_read *r)
{
    for (int i = 0; i < r->nitems; i++) {
        enc_item *it = &r->items[i];
        if (qd_sim_set_encodings(r->s, it->q, it->enc, it->n, r->j.e))
            return r->j.e->code;
        qd_quantizer *q = qd_sim_get(r->s, it->q);
        if (it->strict >= 0)
            q->set.scheme.strict_symmetric = it->strict;
        if (it->unsig >= 0)
            q->set.scheme.unsigned_symmetric = it->unsig;
        if (it->per_channel >= 0)
            q->set.per_channel = it->per_channel;
    }
    return 0;
}

int qd_encodings_parse(qd_sim *s, const char *text, size_t len, const char *name, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    enc_read r = {.j = {name, e}, .s = s};
    cJSON *root = parse_json(&r.j, text, len);
    if (!root)
        return e->code;
    int rc = QD_OK;
    if (!(r.seen = calloc((size_t)qd_sim_count(s) + 1, sizeof *r.seen)))
        rc = oom(e);
    if (!rc)
        rc = read_encodings(&r, root);
    cJSON_Delete(root);
    if (!rc)
        rc = apply_encodings(&r);
    for (int i = 0; i < r.nitems; i++)
        free(r.items[i].enc);
    free(r.items);
    free(r.seen);
    return rc;
}

int qd_encodings_read(qd_sim *s, const char *path, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    size_t len = 0;
    char *text = qd_read_file(path, 0, &len, e);
    if (!text)
        return e->code;
    int rc = qd_encodings_parse(s, text, len, path, e);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------
 * Overrides
 * --------------------------------------------------------------------- */

/* Bit-width of an override: 2..16, or 32 for float (bypassed). */
static int bits_ok(long b)
{
    return (b >= QD_BITS_MIN && b <= QD_BITS_MAX) || b == QD_BITS_FLOAT;
}

static int parse_flag(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

/* One "key=value" of a CLI override into ov; *have tracks min/max given. */
/* Bits of *have beyond QD_OV_*: min= and max= seen. */
#define HAVE_MIN (1u << 28)
#define HAVE_MAX (1u << 29)

static int override_kv(const char *spec, const char *kv, qd_override *ov, unsigned *have, qd_err *e)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || !eq[1])
        return qd_errf(e, QD_EINPUT, "override \"%s\": \"%s\": expected key=value", spec, kv);
    char key[32];
    size_t kl = (size_t)(eq - kv);
    snprintf(key, sizeof key, "%.*s", (int)(kl < sizeof key ? kl : sizeof key - 1), kv);
    const char *v = eq + 1;
    unsigned bit;
    if (!strcmp(key, "enabled")) {
        bit = QD_OV_ENABLED;
        if (parse_flag(v, &ov->enabled))
            goto bad;
    } else if (!strcmp(key, "bits")) {
        bit = QD_OV_BITS;
        char *end;
        long b = strtol(v, &end, 10);
        if (*end || end == v || !bits_ok(b))
            return qd_errf(e, QD_EINPUT, "override \"%s\": %s: bit-width must be %d..%d, or 32 for float", spec, kv,
                           QD_BITS_MIN, QD_BITS_MAX);
        ov->bits = (int)b;
    } else if (!strcmp(key, "scheme")) {
        bit = QD_OV_SYMMETRIC;
        if (!strcmp(v, "sym") || !strcmp(v, "symmetric"))
            ov->symmetric = 1;
        else if (!strcmp(v, "asym") || !strcmp(v, "asymmetric"))
            ov->symmetric = 0;
        else
            goto bad;
    } else if (!strcmp(key, "strict")) {
        bit = QD_OV_STRICT;
        if (parse_flag(v, &ov->strict))
            goto bad;
    } else if (!strcmp(key, "unsigned")) {
        bit = QD_OV_UNSIGNED;
        if (parse_flag(v, &ov->unsigned_sym))
            goto bad;
    } else if (!strcmp(key, "granularity")) {
        bit = QD_OV_PER_CHANNEL;
        if (!strcmp(v, "tensor") || !strcmp(v, "per_tensor"))
            ov->per_channel = 0;
        else if (!strcmp(v, "channel") || !strcmp(v, "per_channel"))
            ov->per_channel = 1;
        else
            goto bad;
    } else if (!strcmp(key, "range")) {
        bit = QD_OV_RANGE;
        qd_err re = {0};
        ov->pct = 0;
        if (qd_range_parse(v, &ov->range, &ov->pct, &re))
            return qd_errf(e, QD_EINPUT, "override \"%s\": %s", spec, re.msg);
    } else if (!strcmp(key, "min") || !strcmp(key, "max")) {
        int ismin = key[1] == 'i';
        bit = ismin ? HAVE_MIN : HAVE_MAX;
        if (parse_double(v, ismin ? &ov->fmin : &ov->fmax))
            return qd_errf(e, QD_EINPUT, "override \"%s\": %s: expected a finite number", spec, kv);
    } else {
        return qd_errf(e, QD_EINPUT,
                       "override \"%s\": unknown setting \"%s\" (enabled, bits, scheme, strict, unsigned, "
                       "granularity, range, min, max)",
                       spec, key);
    }
    if (*have & bit)
        return qd_errf(e, QD_EINPUT, "override \"%s\": %s given twice", spec, key);
    *have |= bit;
    return 0;
bad:;
    static const struct {
        const char *key, *vals;
    } expect[] = {
        {"enabled", "0, 1, on or off"},  {"scheme", "sym or asym"},          {"strict", "0 or 1"},
        {"unsigned", "0 or 1"},          {"granularity", "tensor or channel"},
    };
    const char *vals = "";
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++)
        if (!strcmp(expect[i].key, key))
            vals = expect[i].vals;
    return qd_errf(e, QD_EINPUT, "override \"%s\": %s: expected %s", spec, kv, vals);
}

/* A fixed range needs both ends and min < max. */
static int fixed_range(qd_override *ov, int have_min, int have_max, const char **why)
{
    if (have_min != have_max) {
        *why = have_min ? "min without max" : "max without min";
        return -1;
    }
    if (have_min) {
        if (!(ov->fmin < ov->fmax)) {
            *why = "min must be less than max";
            return -1;
        }
        ov->set |= QD_OV_FIXED;
    }
    return 0;
}

int qd_override_parse(const char *spec, char **pattern, qd_override *ov, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    char *copy = strdup(spec);
    if (!copy)
        return oom(e);
    qd_override o = {0};
    unsigned have = 0;
    char *save = NULL, *pat = strtok_r(copy, " \t\n", &save);
    int rc = 0;
    if (!pat) {
        rc = qd_errf(e, QD_EINPUT, "override \"%s\": expected PATTERN key=value ...", spec);
        goto done;
    }
    for (char *kv = strtok_r(NULL, " \t\n", &save); kv; kv = strtok_r(NULL, " \t\n", &save))
        if ((rc = override_kv(spec, kv, &o, &have, e)))
            goto done;
    o.set = have & ~(HAVE_MIN | HAVE_MAX);
    const char *why;
    if (fixed_range(&o, !!(have & HAVE_MIN), !!(have & HAVE_MAX), &why)) {
        rc = qd_errf(e, QD_EINPUT, "override \"%s\": %s", spec, why);
        goto done;
    }
    if (!o.set) {
        rc = qd_errf(e, QD_EINPUT, "override \"%s\": no settings (e.g. bits=4 scheme=sym range=mse)", spec);
        goto done;
    }
    if (!(*pattern = strdup(pat))) {
        rc = oom(e);
        goto done;
    }
    *ov = o;
done:
    free(copy);
    return rc;
}

static const char *const K_OVFILE[] = {"quantizers", NULL};
static const char *const K_OV[] = {"match", "enabled", "bits", "symmetric", "strict", "unsigned",
                                   "per_channel", "range", "min", "max", NULL};

/* One {"match": ..., settings...} entry. *pattern points into the tree. */
static int read_override(const jctx *j, const cJSON *x, const char *path, const char **pattern, qd_override *ov)
{
    char p[JP];
    if (want_object(j, x, path) || check_keys(j, x, path, K_OV))
        return j->e->code;
    const cJSON *m = need(j, x, path, "match");
    path_key(p, path, "match");
    if (!m || get_string(j, m, p, pattern))
        return j->e->code;
    if (!**pattern)
        return jfail(j, p, "empty pattern");
    static const struct {
        const char *key;
        unsigned bit;
        size_t off;
    } flags[] = {
        {"enabled", QD_OV_ENABLED, offsetof(qd_override, enabled)},
        {"symmetric", QD_OV_SYMMETRIC, offsetof(qd_override, symmetric)},
        {"strict", QD_OV_STRICT, offsetof(qd_override, strict)},
        {"unsigned", QD_OV_UNSIGNED, offsetof(qd_override, unsigned_sym)},
        {"per_channel", QD_OV_PER_CHANNEL, offsetof(qd_override, per_channel)},
    };
    for (size_t k = 0; k < sizeof flags / sizeof *flags; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, flags[k].key);
        if (!v)
            continue;
        path_key(p, path, flags[k].key);
        if (get_bool(j, v, p, (int *)((char *)ov + flags[k].off)))
            return j->e->code;
        ov->set |= flags[k].bit;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "bits");
    if (v) {
        long b = 0;
        path_key(p, path, "bits");
        if (get_int(j, v, p, -1000000, 1000000, &b))
            return j->e->code;
        if (!bits_ok(b))
            return jfail(j, p, "bit-width %ld outside %d..%d (or 32 for float)", b, QD_BITS_MIN, QD_BITS_MAX);
        ov->bits = (int)b;
        ov->set |= QD_OV_BITS;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(x, "range"))) {
        const char *s = NULL;
        qd_err re = {0};
        path_key(p, path, "range");
        if (get_string(j, v, p, &s))
            return j->e->code;
        if (qd_range_parse(s, &ov->range, &ov->pct, &re))
            return jfail(j, p, "%s", re.msg);
        ov->set |= QD_OV_RANGE;
    }
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(x, "min"), *mx = cJSON_GetObjectItemCaseSensitive(x, "max");
    path_key(p, path, "min");
    if (mn && get_number(j, mn, p, &ov->fmin))
        return j->e->code;
    path_key(p, path, "max");
    if (mx && get_number(j, mx, p, &ov->fmax))
        return j->e->code;
    const char *why;
    if (fixed_range(ov, !!mn, !!mx, &why))
        return jfail(j, path, "%s", why);
    if (!ov->set)
        return jfail(j, path, "no settings besides \"match\"");
    return 0;
}

/* What qd_sim_override changes in a quantizer, to undo a failed file. */
typedef struct qsave {
    qd_qsettings set;
    int frozen, nenc;
} qsave;

int qd_overrides_parse(qd_sim *s, const char *text, size_t len, const char *name, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    jctx j = {name, e};
    cJSON *root = parse_json(&j, text, len);
    if (!root)
        return e->code;
    int rc = 0, n = 0, nq = qd_sim_count(s);
    const char **pats = NULL;
    qd_override *ovs = NULL;
    qsave *saved = NULL;
    const cJSON *list = NULL;
    if (!cJSON_IsObject(root)) {
        rc = jfail(&j, NULL, "expected a JSON object at the top level, got %s", jtype(root));
        goto done;
    }
    if (check_keys(&j, root, "", K_OVFILE) || !(list = need(&j, root, "", "quantizers")) ||
        want_array(&j, list, "quantizers")) {
        rc = e->code;
        goto done;
    }
    n = cJSON_GetArraySize(list);
    pats = calloc((size_t)n + 1, sizeof *pats);
    ovs = calloc((size_t)n + 1, sizeof *ovs);
    saved = calloc((size_t)nq + 1, sizeof *saved);
    if (!pats || !ovs || !saved) {
        rc = oom(e);
        goto done;
    }
    int i = 0;
    for (const cJSON *x = list->child; x; x = x->next, i++) {
        char p[JP];
        path_idx(p, "quantizers", i);
        if ((rc = read_override(&j, x, p, &pats[i], &ovs[i])))
            goto done;
    }
    for (int k = 0; k < nq; k++) {
        const qd_quantizer *q = qd_sim_get(s, k);
        saved[k] = (qsave){q->set, q->frozen, q->nenc};
    }
    for (i = 0; i < n; i++) {
        qd_err oe = {0};
        if (qd_sim_override(s, pats[i], &ovs[i], NULL, &oe)) {
            char p[JP];
            path_idx(p, "quantizers", i);
            strcat(p, ".match");
            rc = qd_errf(e, oe.code, "%s: %s: %s", name, p, oe.msg);
            for (int k = 0; k < nq; k++) {
                qd_quantizer *q = qd_sim_get(s, k);
                q->set = saved[k].set;
                q->frozen = saved[k].frozen;
                q->nenc = saved[k].nenc;
            }
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    free(pats);
    free(ovs);
    free(saved);
    return rc;
}

int qd_overrides_load(qd_sim *s, const char *path, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    size_t len = 0;
    char *text = qd_read_file(path, 0, &len, e);
    if (!text)
        return e->code;
    int rc = qd_overrides_parse(s, text, len, path, e);
    free(text);
    return rc;
}
