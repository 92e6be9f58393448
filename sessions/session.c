/* session.c - the session document: JSON in and out, atomic save, lock. */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cJSON.h>

#include "util.h"

/* ---- small lists ---- */

char **qd_strv_dup(char *const *v, int n)
{
    char **r = calloc((size_t)n + 1, sizeof *r);
    for (int i = 0; r && i < n; i++)
        if (!(r[i] = strdup(v[i]))) {
            qd_strv_free(r, i);
            return NULL;
        }
    return r;
}

void qd_strv_free(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int qd_strv_push(char ***v, int *n, const char *str)
{
    char **r = realloc(*v, ((size_t)*n + 2) * sizeof *r);
    if (!r)
        return QD_EFAIL;
    *v = r;
    if (!(r[*n] = strdup(str)))
        return QD_EFAIL;
    r[++*n] = NULL;
    return QD_OK;
}

/* ---- entries ---- */

void qd_sess_entry_clear(qd_sess_entry *en)
{
    qd_strv_free(en->argv, en->argc);
    for (int i = 0; i < en->nresult; i++) {
        free(en->result[i].key);
        free(en->result[i].str);
    }
    free(en->result);
    memset(en, 0, sizeof *en);
}

int qd_sess_result_add(qd_sess_entry *en, const char *key, qd_sess_vtype type, double num, const char *str)
{
    qd_sess_val *r = realloc(en->result, ((size_t)en->nresult + 1) * sizeof *r);
    if (!r)
        return QD_EFAIL;
    en->result = r;
    qd_sess_val *v = &r[en->nresult];
    *v = (qd_sess_val){.key = strdup(key), .type = type, .num = num};
    if (type == QD_SV_STR)
        v->str = strdup(str ? str : "");
    if (!v->key || (type == QD_SV_STR && !v->str)) {
        free(v->key);
        free(v->str);
        return QD_EFAIL;
    }
    en->nresult++;
    return QD_OK;
}

const qd_sess_val *qd_sess_result_get(const qd_sess_entry *en, const char *key)
{
    for (int i = 0; i < en->nresult; i++)
        if (!strcmp(en->result[i].key, key))
            return &en->result[i];
    return NULL;
}

static int entry_copy(qd_sess_entry *d, const qd_sess_entry *s)
{
    *d = (qd_sess_entry){.changes_state = s->changes_state, .undone = s->undone, .seconds = s->seconds};
    memcpy(d->at, s->at, sizeof d->at);
    if (!(d->argv = qd_strv_dup(s->argv, s->argc)))
        return QD_EFAIL;
    d->argc = s->argc;
    for (int i = 0; i < s->nresult; i++)
        if (qd_sess_result_add(d, s->result[i].key, s->result[i].type, s->result[i].num, s->result[i].str)) {
            qd_sess_entry_clear(d);
            return QD_EFAIL;
        }
    return QD_OK;
}

int qd_session_append(qd_session *s, const qd_sess_entry *en, qd_err *e)
{
    qd_sess_entry *j = realloc(s->journal, ((size_t)s->njournal + 1) * sizeof *j);
    if (!j)
        return qd_errf(e, QD_EFAIL, "out of memory");
    s->journal = j;
    if (entry_copy(&j[s->njournal], en))
        return qd_errf(e, QD_EFAIL, "out of memory");
    s->njournal++;
    return QD_OK;
}

/* ---- the session ---- */

qd_session *qd_session_new(void)
{
    qd_session *s = calloc(1, sizeof *s);
    if (s)
        qd_session_reset_state(s);
    return s;
}

void qd_session_reset_state(qd_session *s)
{
    free(s->model);
    free(s->data);
    qd_sess_quant *q = &s->q;
    free(q->quant), free(q->range), free(q->calib_data), free(q->config), free(q->overrides);
    free(q->encodings), free(q->bias);
    qd_strv_free(s->sets, s->nsets);
    free(s->bias_correct);
    int nj = s->njournal;
    qd_sess_entry *j = s->journal;
    memset(s, 0, sizeof *s);
    s->njournal = nj;
    s->journal = j;
    s->limit = -1;
    s->q.per_channel = -1;
}

void qd_session_free(qd_session *s)
{
    if (!s)
        return;
    qd_session_reset_state(s);
    for (int i = 0; i < s->njournal; i++)
        qd_sess_entry_clear(&s->journal[i]);
    free(s->journal);
    free(s);
}

/* ---- parsing: every error names the JSON path ---- */

typedef struct parser {
    const char *name;
    qd_err *e;
} parser;

static const char *type_name(const cJSON *j)
{
    if (!j)
        return "nothing";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsArray(j))
        return "an array";
    return "an object";
}

static int bad(parser *p, const char *path, const char *what, const cJSON *got)
{
    return qd_errf(p->e, QD_EINPUT, "%s: %s: expected %s, got %s", p->name, path, what, type_name(got));
}

/* path + key as a JSON path: ".key" for plain keys, else ["k\u000a..."] so
 * that a message stays one printable line. */
static void path_key(char *out, size_t n, const char *path, const char *key)
{
    int plain = *key != 0;
    for (const char *k = key; *k && plain; k++)
        plain = (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || strchr("_-.@*/", *k);
    if (plain) {
        snprintf(out, n, "%s.%s", path, key);
        return;
    }
    size_t o = (size_t)snprintf(out, n, "%s[\"", path);
    for (const unsigned char *k = (const unsigned char *)key; *k && o + 8 < n; k++)
        o += (size_t)(*k < 0x20 || *k == '"' || *k == '\\' || *k == 0x7f ? snprintf(out + o, n - o, "\\u%04x", *k)
                                                                       : snprintf(out + o, n - o, "%c", *k));
    snprintf(out + o, n - o, "\"]");
}

/* Refuse keys of object j not in the NULL-terminated list keys. */
static int known_keys(parser *p, const cJSON *j, const char *path, const char *const *keys)
{
    for (const cJSON *c = j->child; c; c = c->next) {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++)
            ok = !strcmp(c->string, keys[i]);
        char pk[600];
        path_key(pk, sizeof pk, path, c->string);
        if (!ok)
            return qd_errf(p->e, QD_EINPUT, "%s: %s: unknown key", p->name, pk);
        for (const cJSON *d = c->next; d; d = d->next)
            if (!strcmp(c->string, d->string))
                return qd_errf(p->e, QD_EINPUT, "%s: %s: key given twice", p->name, pk);
    }
    return QD_OK;
}

/* An optional string (absent or null leaves *out NULL). */
static int get_str(parser *p, const cJSON *o, const char *key, const char *path, int required, char **out)
{
    char pk[512];
    snprintf(pk, sizeof pk, "%s.%s", path, key);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return required ? bad(p, pk, "a string", j) : QD_OK;
    if (!cJSON_IsString(j))
        return bad(p, pk, "a string", j);
    if (!(*out = strdup(j->valuestring)))
        return qd_errf(p->e, QD_EFAIL, "out of memory");
    return QD_OK;
}

/* An integer in [lo, hi]. */
static int get_int(parser *p, const cJSON *o, const char *key, const char *path, int required, int64_t lo,
                   int64_t hi, int64_t *out)
{
    char pk[512];
    snprintf(pk, sizeof pk, "%s.%s", path, key);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return required ? bad(p, pk, "an integer", j) : QD_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return bad(p, pk, "an integer", j);
    if (j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return qd_errf(p->e, QD_EINPUT, "%s: %s: %.17g is out of range [%lld, %lld]", p->name, pk, j->valuedouble,
                       (long long)lo, (long long)hi);
    *out = (int64_t)j->valuedouble;
    return QD_OK;
}

static int get_bool(parser *p, const cJSON *o, const char *key, const char *path, int *out)
{
    char pk[512];
    snprintf(pk, sizeof pk, "%s.%s", path, key);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j)
        return QD_OK;
    if (!cJSON_IsBool(j))
        return bad(p, pk, "true or false", j);
    *out = cJSON_IsTrue(j);
    return QD_OK;
}

static int get_sha(parser *p, const cJSON *o, const char *path, char out[65])
{
    char *h = NULL;
    if (get_str(p, o, "sha256", path, 1, &h))
        return p->e->code;
    size_t n = strlen(h), ok = n == 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
    if (ok)
        memcpy(out, h, 65);
    free(h);
    return ok ? QD_OK : qd_errf(p->e, QD_EINPUT, "%s: %s.sha256: expected 64 lowercase hex digits", p->name, path);
}

static int get_strv(parser *p, const cJSON *o, const char *key, const char *path, int nonempty, char ***v, int *n)
{
    char pk[512];
    snprintf(pk, sizeof pk, "%s.%s", path, key);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j)
        return QD_OK;
    if (!cJSON_IsArray(j))
        return bad(p, pk, "an array of strings", j);
    int i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            char pi[540];
            snprintf(pi, sizeof pi, "%s[%d]", pk, i);
            return bad(p, pi, "a string", c);
        }
        if (qd_strv_push(v, n, c->valuestring))
            return qd_errf(p->e, QD_EFAIL, "out of memory");
    }
    if (nonempty && !*n)
        return qd_errf(p->e, QD_EINPUT, "%s: %s: is empty", p->name, pk);
    return QD_OK;
}

static const char *const top_keys[] = {"qdb_session", "qdb_version", "model", "data", "quantization", "overrides",
                                       "transforms", "journal", NULL};
static const char *const model_keys[] = {"path", "sha256", NULL};
static const char *const data_keys[] = {"spec", "limit", "seed", "images", "sha256", NULL};
static const char *const quant_keys[] = {"quant", "per_channel", "range", "calib", "calib_data", "config",
                                         "overrides_file", "encodings", "bias", NULL};
static const char *const entry_keys[] = {"argv", "changes_state", "undone", "result", "seconds", "at", NULL};

static int parse_model(parser *p, const cJSON *j, qd_session *s)
{
    if (!cJSON_IsObject(j))
        return bad(p, "$.model", "an object", j);
    return known_keys(p, j, "$.model", model_keys) || get_str(p, j, "path", "$.model", 1, &s->model) ||
                   get_sha(p, j, "$.model", s->model_sha256)
               ? p->e->code
               : QD_OK;
}

static int parse_data(parser *p, const cJSON *j, qd_session *s)
{
    if (!cJSON_IsObject(j))
        return bad(p, "$.data", "an object", j);
    int64_t seed = 0;
    if (known_keys(p, j, "$.data", data_keys) || get_str(p, j, "spec", "$.data", 1, &s->data) ||
        get_int(p, j, "limit", "$.data", 0, 1, INT64_C(1) << 40, &s->limit) ||
        get_int(p, j, "seed", "$.data", 0, 0, INT64_C(1) << 53, &seed) ||
        get_int(p, j, "images", "$.data", 1, 0, INT64_C(1) << 40, &s->images) || get_sha(p, j, "$.data", s->data_sha256))
        return p->e->code;
    s->seed = (uint64_t)seed;
    return QD_OK;
}

static int parse_quant(parser *p, const cJSON *j, qd_session *s)
{
    if (cJSON_IsNull(j))
        return QD_OK;
    if (!cJSON_IsObject(j))
        return bad(p, "$.quantization", "an object or null", j);
    const char *P = "$.quantization";
    qd_sess_quant *q = &s->q;
    int pc = -1;
    const cJSON *pcj = cJSON_GetObjectItemCaseSensitive(j, "per_channel");
    if (known_keys(p, j, P, quant_keys) || get_str(p, j, "quant", P, 0, &q->quant) ||
        get_str(p, j, "range", P, 0, &q->range) || get_int(p, j, "calib", P, 0, 1, INT64_C(1) << 40, &q->calib) ||
        get_str(p, j, "calib_data", P, 0, &q->calib_data) || get_str(p, j, "config", P, 0, &q->config) ||
        get_str(p, j, "overrides_file", P, 0, &q->overrides) || get_str(p, j, "encodings", P, 0, &q->encodings) ||
        get_str(p, j, "bias", P, 0, &q->bias) || (pcj && !cJSON_IsNull(pcj) && get_bool(p, j, "per_channel", P, &pc)))
        return p->e->code;
    q->per_channel = pc;
    s->quant_on = 1;
    return QD_OK;
}

static int parse_transforms(parser *p, const cJSON *j, qd_session *s)
{
    if (!cJSON_IsArray(j))
        return bad(p, "$.transforms", "an array", j);
    int i = 0, last = -1;
    for (const cJSON *t = j->child; t; t = t->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "$.transforms[%d]", i);
        if (!cJSON_IsObject(t))
            return bad(p, path, "an object", t);
        char *name = NULL;
        if (get_str(p, t, "name", path, 1, &name))
            return p->e->code;
        int order = !strcmp(name, "cle") ? 0 : !strcmp(name, "bias_correction") ? 1 : !strcmp(name, "adaround") ? 2 : -1;
        free(name);
        if (order < 0)
            return qd_errf(p->e, QD_EINPUT, "%s: %s.name: expected cle, bias_correction or adaround", p->name, path);
        if (order <= last)
            return qd_errf(p->e, QD_EINPUT, "%s: %s: transforms are cle, bias_correction, adaround, each at most once and in that order",
                           p->name, path);
        last = order;
        if (order == 0) {
            static const char *const k[] = {"name", "keep_relu6", "hba", NULL};
            int hba = 1;
            s->cle = 1;
            if (known_keys(p, t, path, k) || get_bool(p, t, "keep_relu6", path, &s->cle_keep_relu6) ||
                get_bool(p, t, "hba", path, &hba))
                return p->e->code;
            s->cle_no_hba = !hba;
        } else if (order == 1) {
            static const char *const k[] = {"name", "method", NULL};
            if (known_keys(p, t, path, k) || get_str(p, t, "method", path, 1, &s->bias_correct))
                return p->e->code;
            if (strcmp(s->bias_correct, "empirical") && strcmp(s->bias_correct, "analytic"))
                return qd_errf(p->e, QD_EINPUT, "%s: %s.method: expected empirical or analytic", p->name, path);
        } else {
            static const char *const k[] = {"name", "iterations", NULL};
            int64_t it = 0;
            s->adaround = 1;
            if (known_keys(p, t, path, k) || get_int(p, t, "iterations", path, 0, 0, 1000000, &it))
                return p->e->code;
            s->adaround_iters = (int)it;
        }
    }
    return QD_OK;
}

static int parse_result(parser *p, const cJSON *j, const char *path, qd_sess_entry *en)
{
    if (!cJSON_IsObject(j))
        return bad(p, path, "an object", j);
    for (const cJSON *c = j->child; c; c = c->next) {
        int rc;
        char pk[600];
        path_key(pk, sizeof pk, path, c->string);
        for (const cJSON *d = c->next; d; d = d->next)
            if (!strcmp(c->string, d->string))
                return qd_errf(p->e, QD_EINPUT, "%s: %s: key given twice", p->name, pk);
        if (cJSON_IsNull(c) || (cJSON_IsNumber(c) && !isfinite(c->valuedouble)))
            rc = qd_sess_result_add(en, c->string, QD_SV_NULL, 0, NULL);
        else if (cJSON_IsBool(c))
            rc = qd_sess_result_add(en, c->string, QD_SV_BOOL, cJSON_IsTrue(c), NULL);
        else if (cJSON_IsNumber(c))
            rc = qd_sess_result_add(en, c->string, QD_SV_NUM, c->valuedouble, NULL);
        else if (cJSON_IsString(c))
            rc = qd_sess_result_add(en, c->string, QD_SV_STR, 0, c->valuestring);
        else
            return bad(p, pk, "a number, string, boolean or null", c);
        if (rc)
            return qd_errf(p->e, QD_EFAIL, "out of memory");
    }
    return QD_OK;
}

static int parse_entry(parser *p, const cJSON *j, int i, qd_sess_entry *en)
{
    char path[64];
    snprintf(path, sizeof path, "$.journal[%d]", i);
    if (!cJSON_IsObject(j))
        return bad(p, path, "an object", j);
    char *at = NULL;
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "seconds");
    if (known_keys(p, j, path, entry_keys) || get_strv(p, j, "argv", path, 1, &en->argv, &en->argc) ||
        get_bool(p, j, "changes_state", path, &en->changes_state) || get_bool(p, j, "undone", path, &en->undone) ||
        get_str(p, j, "at", path, 1, &at))
        return free(at), p->e->code;
    if (!cJSON_GetObjectItemCaseSensitive(j, "argv")) {
        char pk[80];
        snprintf(pk, sizeof pk, "%s.argv", path);
        return free(at), bad(p, pk, "an array of strings", NULL);
    }
    size_t n = strlen(at);
    if (n >= sizeof en->at) {
        free(at);
        return qd_errf(p->e, QD_EINPUT, "%s: %s.at: expected a time like 2026-11-22T17:00:00Z", p->name, path);
    }
    memcpy(en->at, at, n + 1);
    free(at);
    if (!cJSON_IsNumber(sec) || !isfinite(sec->valuedouble) || sec->valuedouble < 0) {
        char pk[80];
        snprintf(pk, sizeof pk, "%s.seconds", path);
        return bad(p, pk, "a number of seconds", sec);
    }
    en->seconds = sec->valuedouble;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
    if (r && !cJSON_IsNull(r)) {
        char pk[80];
        snprintf(pk, sizeof pk, "%s.result", path);
        return parse_result(p, r, pk, en);
    }
    return QD_OK;
}

static int parse_doc(parser *p, const cJSON *root, qd_session *s)
{
    if (!cJSON_IsObject(root))
        return bad(p, "$", "an object", root);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "qdb_session");
    if (!cJSON_IsNumber(v))
        return bad(p, "$.qdb_session", "the session format version (a number)", v);
    if (v->valuedouble != QD_SESSION_VERSION)
        return qd_errf(p->e, QD_EINPUT, "%s: $.qdb_session: version %g is not one this qdb reads (it reads %d)", p->name,
                       v->valuedouble, QD_SESSION_VERSION);
    if (known_keys(p, root, "$", top_keys))
        return p->e->code;
    const cJSON *qv = cJSON_GetObjectItemCaseSensitive(root, "qdb_version");
    if (qv && !cJSON_IsString(qv))
        return bad(p, "$.qdb_version", "a string", qv);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model"), *d = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (m && !cJSON_IsNull(m) && parse_model(p, m, s))
        return p->e->code;
    if (d && !cJSON_IsNull(d) && parse_data(p, d, s))
        return p->e->code;
    if (!s->model != !s->data)
        return qd_errf(p->e, QD_EINPUT, "%s: $: model and data are set together (by load), or neither", p->name);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization");
    if (q && parse_quant(p, q, s))
        return p->e->code;
    if (get_strv(p, root, "overrides", "$", 0, &s->sets, &s->nsets))
        return p->e->code;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "transforms");
    if (t && parse_transforms(p, t, s))
        return p->e->code;
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(root, "journal");
    if (!cJSON_IsArray(jr))
        return bad(p, "$.journal", "an array", jr);
    int n = cJSON_GetArraySize(jr), i = 0;
    if (n && !(s->journal = calloc((size_t)n, sizeof *s->journal)))
        return qd_errf(p->e, QD_EFAIL, "out of memory");
    for (const cJSON *c = jr->child; c; c = c->next, i++) {
        s->njournal = i + 1;
        if (parse_entry(p, c, i, &s->journal[i]))
            return p->e->code;
    }
    return QD_OK;
}

qd_session *qd_session_parse(const char *text, size_t len, const char *name, qd_err *e)
{
    parser p = {name, e};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* cJSON points at where it stopped: report line and column */
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (!end && ep && ep >= text && ep <= text + len)
            off = (size_t)(ep - text);
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++, col++)
            if (text[i] == '\n')
                line++, col = 0;
        qd_errf(e, QD_EINPUT, "%s: line %d, column %d: malformed JSON", name, line, col);
        return NULL;
    }
    /* nothing but white space may follow the document */
    const char *rest = end ? end : text + len;
    while (rest < text + len && (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r'))
        rest++;
    if (rest < text + len) {
        cJSON_Delete(root);
        int line = 1, col = 1;
        for (const char *q = text; q < rest; q++, col++)
            if (*q == '\n')
                line++, col = 0;
        qd_errf(e, QD_EINPUT, "%s: line %d, column %d: text after the JSON document", name, line, col);
        return NULL;
    }
    qd_session *s = qd_session_new();
    if (!s) {
        cJSON_Delete(root);
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    int rc = parse_doc(&p, root, s);
    cJSON_Delete(root);
    if (rc) {
        qd_session_free(s);
        return NULL;
    }
    return s;
}

qd_session *qd_session_read(const char *path, qd_err *e)
{
    size_t len;
    char *text = qd_read_file(path, QD_SESSION_MAX_BYTES, &len, e);
    if (!text)
        return NULL;
    qd_session *s = qd_session_parse(text, len, path, e);
    free(text);
    return s;
}

/* ---- printing ---- */

static cJSON *strv_json(char *const *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* A number that reads back as the same double: integers in full, others in
 * the fewest digits (15 to 17) that strtod turns back into v; cJSON's own
 * printing can lose the last ulp. Not finite: null. */
static cJSON *num(double v)
{
    char b[40];
    if (!isfinite(v))
        return cJSON_CreateNull();
    if (v == floor(v) && fabs(v) < 9.2e18)
        snprintf(b, sizeof b, "%lld", (long long)v);
    else
        for (int d = 15; d <= 17; d++) {
            snprintf(b, sizeof b, "%.*g", d, v);
            if (strtod(b, NULL) == v)
                break;
        }
    return cJSON_CreateRaw(b);
}

static void add_num(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, num(v)); }

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
}

cJSON *qd_sess_result_json(const qd_sess_entry *en)
{
    cJSON *r = cJSON_CreateObject();
    for (int k = 0; r && k < en->nresult; k++) {
        const qd_sess_val *v = &en->result[k];
        if (v->type == QD_SV_NUM)
            add_num(r, v->key, v->num);
        else if (v->type == QD_SV_BOOL)
            cJSON_AddBoolToObject(r, v->key, v->num != 0);
        else if (v->type == QD_SV_STR)
            cJSON_AddStringToObject(r, v->key, v->str);
        else
            cJSON_AddNullToObject(r, v->key);
    }
    return r;
}

static cJSON *doc_json(const qd_session *s)
{
    cJSON *j = cJSON_CreateObject();
    add_num(j, "qdb_session", QD_SESSION_VERSION);
    cJSON_AddStringToObject(j, "qdb_version", QD_VERSION);
    if (s->model) {
        cJSON *m = cJSON_AddObjectToObject(j, "model");
        cJSON_AddStringToObject(m, "path", s->model);
        cJSON_AddStringToObject(m, "sha256", s->model_sha256);
        cJSON *d = cJSON_AddObjectToObject(j, "data");
        cJSON_AddStringToObject(d, "spec", s->data);
        if (s->limit > 0)
            add_num(d, "limit", (double)s->limit);
        add_num(d, "seed", (double)s->seed);
        add_num(d, "images", (double)s->images);
        cJSON_AddStringToObject(d, "sha256", s->data_sha256);
    } else {
        cJSON_AddNullToObject(j, "model");
        cJSON_AddNullToObject(j, "data");
    }
    if (s->quant_on) {
        const qd_sess_quant *q = &s->q;
        cJSON *o = cJSON_AddObjectToObject(j, "quantization");
        add_str(o, "quant", q->quant);
        if (q->per_channel >= 0)
            cJSON_AddBoolToObject(o, "per_channel", q->per_channel);
        add_str(o, "range", q->range);
        if (q->calib > 0)
            add_num(o, "calib", (double)q->calib);
        add_str(o, "calib_data", q->calib_data);
        add_str(o, "config", q->config);
        add_str(o, "overrides_file", q->overrides);
        add_str(o, "encodings", q->encodings);
        add_str(o, "bias", q->bias);
    } else {
        cJSON_AddNullToObject(j, "quantization");
    }
    cJSON_AddItemToObject(j, "overrides", strv_json(s->sets, s->nsets));
    cJSON *t = cJSON_AddArrayToObject(j, "transforms");
    if (s->cle) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "cle");
        cJSON_AddBoolToObject(o, "keep_relu6", s->cle_keep_relu6);
        cJSON_AddBoolToObject(o, "hba", !s->cle_no_hba);
        cJSON_AddItemToArray(t, o);
    }
    if (s->bias_correct) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "bias_correction");
        cJSON_AddStringToObject(o, "method", s->bias_correct);
        cJSON_AddItemToArray(t, o);
    }
    if (s->adaround) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "adaround");
        add_num(o, "iterations", s->adaround_iters);
        cJSON_AddItemToArray(t, o);
    }
    cJSON *jr = cJSON_AddArrayToObject(j, "journal");
    for (int i = 0; i < s->njournal; i++) {
        const qd_sess_entry *en = &s->journal[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "argv", strv_json(en->argv, en->argc));
        cJSON_AddBoolToObject(o, "changes_state", en->changes_state);
        if (en->undone)
            cJSON_AddBoolToObject(o, "undone", 1);
        cJSON_AddItemToObject(o, "result", qd_sess_result_json(en));
        add_num(o, "seconds", en->seconds);
        cJSON_AddStringToObject(o, "at", en->at);
        cJSON_AddItemToArray(jr, o);
    }
    return j;
}

char *qd_session_print(const qd_session *s, qd_err *e)
{
    cJSON *j = doc_json(s);
    char *t = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    char *r = t ? realloc(t, strlen(t) + 2) : NULL;
    if (!r) {
        free(t);
        qd_errf(e, QD_EFAIL, "out of memory printing the session");
        return NULL;
    }
    strcat(r, "\n");
    return r;
}

int qd_session_write(const qd_session *s, const char *path, qd_err *e)
{
    char *t = qd_session_print(s, e);
    if (!t)
        return e->code;
    int rc = qd_write_atomic(path, t, strlen(t), e);
    free(t);
    if (rc)
        return rc;
    /* the rename is durable once the directory is on disk */
    char *dup = strdup(path);
    int dfd = dup ? open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dup);
    return QD_OK;
}

/* ---- lock ---- */

int qd_session_lock(const char *path, qd_err *e)
{
    char lk[4200];
    snprintf(lk, sizeof lk, "%s.lock", path);
    int fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return qd_errf(e, QD_EINPUT, "%s: cannot make the lock file: %s", lk, strerror(errno)), -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK)
            return qd_errf(e, QD_EFAIL, "%s: another qdb is working on this session", path), -1;
        return qd_errf(e, QD_EFAIL, "%s: cannot lock: %s", lk, strerror(err)), -1;
    }
    /* a qdb killed while saving leaves PATH.tmp.PID.N; none is in use now */
    char *d1 = strdup(path), *d2 = strdup(path);
    const char *dn = d1 ? dirname(d1) : NULL;
    DIR *dir = dn ? opendir(dn) : NULL;
    const char *base = d2 ? basename(d2) : NULL;
    size_t nb = base ? strlen(base) : 0;
    for (struct dirent *de; dir && base && (de = readdir(dir));) {
        if (strncmp(de->d_name, base, nb) || strncmp(de->d_name + nb, ".tmp.", 5))
            continue;
        char full[8400];
        snprintf(full, sizeof full, "%s/%s", dn, de->d_name);
        unlink(full);
    }
    if (dir)
        closedir(dir);
    free(d1);
    free(d2);
    return fd;
}

void qd_session_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}
