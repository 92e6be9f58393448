/* bundle.c - qdb export bundle: a session's quantization as one directory
 * (AIMET encodings in both formats, the QDQ model, the quantsim config, a
 * copy of the session, the debugging report and a manifest of sha256s).
 *
 * Everything is written into a staging directory inside the bundle's
 * directory and moved into place with rename(2) only when every file was
 * written; a failure removes the staging directory (and the directories
 * --out made), so the user's directory is left as it was. The simulation is
 * built once (calibration and AdaRound can be slow) and gives both
 * encodings files and the QDQ model. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "cliutil.h"
#include "qdq.h"
#include "qjson.h"
#include "session.h"
#include "sesscmd.h"
#include "sha256.h"
#include "util.h"

/* A bundle's names, in the order they are moved into place: the manifest
 * last, so a directory with a manifest holds a complete bundle. */
enum { B_ENC061, B_ENC100, B_QDQ, B_CONFIG, B_SESSION, B_REPORT, B_MANIFEST, B__N };
static const char *const bnames[] = {"encodings_0.6.1.json", "encodings_1.0.0.json", "model_qdq.onnx",
                                     "quantsim_config.json", "session.json",         "report",
                                     "manifest.json"};
_Static_assert(sizeof bnames / sizeof bnames[0] == B__N, "one name per bundle file");

#define STAGE_PREFIX ".bundle.tmp."
#define PATHN 4096

static const char bundle_help[] =
    "usage: qdb export bundle SESSION --out DIR [--force] [--no-report] [--threads T] [--json]\n"
    "       qdb do SESSION export bundle --out DIR [...]      (the same, journaled)\n"
    "Writes the session's quantization into DIR (made when missing):\n"
    "  encodings_0.6.1.json  AIMET encodings, both formats, of one calibration\n"
    "  encodings_1.0.0.json  (the session's calibration seed, as eval)\n"
    "  model_qdq.onnx        the QDQ model for ONNX Runtime; left out, with a warning and\n"
    "                        the reason in manifest.json, when a quantizer is not 8-bit\n"
    "  quantsim_config.json  the AIMET runtime config the session uses\n"
    "  session.json          a copy of the session\n"
    "  report/               qdb debug's report for the session's quantization (report.json,\n"
    "                        summary.md, CSV tables, plots/)\n"
    "  manifest.json         qdb's version, the model's and data's sha256, the quantization\n"
    "                        options, and every file with its size and sha256\n"
    "A session without quantization (FP32) is bundled at the defaults (w8a8).\n"
    "Files are written into DIR/" STAGE_PREFIX "PID first and moved into place only when all\n"
    "are written: a failure leaves DIR as it was.\n"
    "  --out DIR      where the bundle goes (required)\n"
    "  --force        replace a bundle's files in DIR (report/ entirely; with --no-report an\n"
    "                 old report/ is removed, so DIR holds one bundle); else they are refused\n"
    "  --no-report    no report/ (the debugging flowchart is the slow part)\n"
    "  --threads T    threads for calibration and the report (default 1)\n"
    "  --json         print {out, files, enabled, int32_biases, qdq, report, ...} on stdout\n"
    "The quantization is the session's: change it with qdb do SESSION set/eval first.\n";

typedef struct bopts {
    const char *out;    /* --out DIR */
    int force;
    int no_report;
    long threads;
} bopts;

/* What a bundle run wrote. */
typedef struct bres {
    char dir[PATHN];    /* the bundle's directory (replay: under its --out) */
    int written[B__N];
    int nfiles;         /* top-level names written */
} bres;

/* Messages of what bundle.c calls get the command's name in front. */
static int fail(qd_err *e, const char *what)
{
    if (!e->code)
        return qd_errf(e, QD_EFAIL, "qdb export bundle: %s failed", what ? what : "a step");
    if (what)
        qd_err_prefix(e, "qdb export bundle: %s", what);
    else if (strncmp(e->msg, "qdb ", 4))
        qd_err_prefix(e, "qdb export bundle");
    return e->code;
}

static int pjoin(char *buf, const char *a, const char *b, qd_err *e)
{
    if (snprintf(buf, PATHN, "%s/%s", a, b) >= PATHN)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: path too long: %s/%s", a, b);
    return QD_OK;
}

/* ---- the directory ---- */

/* Directories --out made (deepest last), removed again on failure. */
typedef struct made {
    char *v[64];
    int n;
} made;

static void made_undo(made *m)
{
    for (int i = m->n - 1; i >= 0; i--) {
        rmdir(m->v[i]);
        free(m->v[i]);
    }
    m->n = 0;
}

static void made_free(made *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->v[i]);
    m->n = 0;
}

/* mkdir -p dir. */
static int mkdirs(const char *dir, made *m, qd_err *e)
{
    char p[PATHN];
    size_t len = strlen(dir);
    if (len >= sizeof p)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: --out: path too long");
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if ((p[i] != '/' && p[i]) || p[i - 1] == '/')
            continue;
        char ch = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) == 0) {
            if (m->n < (int)(sizeof m->v / sizeof m->v[0]) && (m->v[m->n] = strdup(p)))
                m->n++;
        } else if (errno != EEXIST) {
            return qd_errf(e, QD_EINPUT, "qdb export bundle: --out %s: cannot create %s: %s", dir, p, strerror(errno));
        }
        p[i] = ch;
    }
    struct stat st;
    if (stat(dir, &st))
        return qd_errf(e, QD_EINPUT, "qdb export bundle: --out %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return qd_errf(e, QD_EINPUT, "qdb export bundle: --out %s: not a directory", dir);
    return QD_OK;
}

/* Staging directories of bundles whose qdb was killed. */
static void rm_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t n = strlen(STAGE_PREFIX);
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, STAGE_PREFIX, n))
            continue;
        char *end;
        long pid = strtol(de->d_name + n, &end, 10);
        char p[PATHN];
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH ||
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
            continue;
        cli_rmtree(p);
    }
    closedir(d);
}

/* ---- files ---- */

static int write_bytes(const char *path, const void *p, size_t n, qd_err *e)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: %s: %s", path, strerror(errno));
    int bad = fwrite(p, 1, n, f) != n;
    int err = errno;
    if (fclose(f) || bad)
        return qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", path, strerror(bad ? err : errno));
    return QD_OK;
}

static int copy_file(const char *src, const char *what, const char *dst, qd_err *e)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: %s %s: %s", what, src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return qd_errf(e, QD_EINPUT, "qdb export bundle: %s: %s", dst, strerror(errno));
    }
    char buf[65536];
    size_t n;
    int rc = QD_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", dst, strerror(errno));
            break;
        }
    if (!rc && ferror(in))
        rc = qd_errf(e, QD_EINPUT, "qdb export bundle: %s %s: read error", what, src);
    fclose(in);
    if (fclose(out) && !rc)
        rc = qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", dst, strerror(errno));
    return rc;
}

/* The AIMET runtime config the simulation used: the built-in text, or a
 * copy of the user's file. */
static int write_config(const char *cname, const char *dst, qd_err *e)
{
    for (int i = 0; i < qd_qcfg_ntexts; i++)
        if (!strcmp(cname, qd_qcfg_texts[i].name))
            return write_bytes(dst, qd_qcfg_texts[i].text, qd_qcfg_texts[i].len, e);
    return copy_file(cname, "--config", dst, e);
}

/* The regular files under root (relative paths, recursively) into *v. */
static int list_files(const char *root, const char *rel, char ***v, int *n, qd_err *e)
{
    char p[PATHN];
    if (pjoin(p, root, rel ? rel : ".", e))
        return e->code;
    DIR *d = opendir(p);
    if (!d)
        return qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", p, strerror(errno));
    int rc = QD_OK;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char r[PATHN], full[PATHN];
        struct stat st;
        if (rel ? pjoin(r, rel, de->d_name, e) : snprintf(r, sizeof r, "%s", de->d_name) >= (int)sizeof r)
            rc = qd_errf(e, QD_EINPUT, "qdb export bundle: path too long: %s", de->d_name);
        else if (pjoin(full, root, r, e))
            rc = e->code;
        else if (lstat(full, &st))
            rc = qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", full, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = list_files(root, r, v, n, e);
        else if (S_ISREG(st.st_mode) && qd_strv_push(v, n, r))
            rc = qd_errf(e, QD_EFAIL, "out of memory");
    }
    closedir(d);
    return rc;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A text file's bytes and a NUL (malloc'd), or NULL with errno set. */
static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    long n = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
    if (n >= 0 && !fseek(f, 0, SEEK_SET) && (s = malloc((size_t)n + 1)) && fread(s, 1, (size_t)n, f) == (size_t)n) {
        s[n] = 0;
    } else {
        free(s);
        s = NULL;
        errno = errno ? errno : EIO;
    }
    fclose(f);
    return s;
}

/* The plots' gnuplot scripts name themselves in a comment ("re-render
 * with: gnuplot PATH"); PATH is the staging directory's until this gives
 * them the bundle's. */
static int fix_scripts(const char *stage, const char *dir, qd_err *e)
{
    char pd[PATHN], p[PATHN], from[PATHN], to[PATHN];
    if (pjoin(pd, stage, "report/plots", e) || pjoin(from, stage, "", e) || pjoin(to, dir, "", e))
        return e->code;
    DIR *d = opendir(pd);
    if (!d)
        return QD_OK; /* no plots */
    int rc = QD_OK;
    size_t nf = strlen(from), nt = strlen(to);
    for (struct dirent *de; !rc && (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 3, ".gp"))
            continue;
        if ((rc = pjoin(p, pd, de->d_name, e)))
            break;
        char *text = read_all(p), *out = NULL;
        size_t olen = 0;
        FILE *o = text ? open_memstream(&out, &olen) : NULL;
        if (!o) {
            rc = qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", p, strerror(errno));
        } else {
            for (const char *t = text, *hit; *t; t = hit + nf) {
                if (!(hit = strstr(t, from))) {
                    fputs(t, o);
                    break;
                }
                fwrite(t, 1, (size_t)(hit - t), o);
                fwrite(to, 1, nt, o);
            }
            rc = fclose(o) ? qd_errf(e, QD_EFAIL, "out of memory") : write_bytes(p, out, olen, e);
        }
        free(text);
        free(out);
    }
    closedir(d);
    return rc;
}

/* ---- options as text ---- */

/* argv as one shell-quoted string (malloc'd; NULL when out of memory). */
static char *join_args(char *const *v, int n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *a = v[i];
        int plain = *a != 0;
        for (const char *p = a; *p && plain; p++)
            plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@+%", *p) != NULL;
        fputs(i ? " " : "", f);
        if (plain) {
            fputs(a, f);
            continue;
        }
        fputc('\'', f);
        for (const char *p = a; *p; p++)
            if (*p == '\'')
                fputs("'\\''", f);
            else
                fputc(*p, f);
        fputc('\'', f);
    }
    if (fclose(f)) {
        free(s);
        return NULL;
    }
    return s;
}

/* What of the session's quantization options (qv[1..qn)) the report does
 * not see: those not among the ones qdb do SESSION debug gives debug
 * (dv[1..dn), see sess_debug_argv), but for --quant, which is its
 * --target. As text into *skipped (NULL when none). */
static int report_skipped(char *const *qv, int qn, char *const *dv, int dn, char **skipped)
{
    char **sk = qd_strv_dup(NULL, 0);
    int nsk = 0, oom = !sk;
    for (int i = 1; i < qn && !oom; i++) {
        int seen = !strncmp(qv[i], "--quant=", 8);
        for (int k = 1; k < dn && !seen; k++)
            seen = !strcmp(qv[i], dv[k]);
        if (!seen)
            oom = qd_strv_push(&sk, &nsk, qv[i]);
    }
    *skipped = !oom && nsk ? join_args(sk, nsk) : NULL;
    qd_strv_free(sk, nsk);
    return oom || (nsk && !*skipped) ? QD_EFAIL : QD_OK;
}

/* ---- moving into place ---- */

/* rename src to dst, refusing to replace dst. */
static int rename_new(const char *src, const char *dst)
{
    if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    struct stat st; /* a file system without RENAME_NOREPLACE */
    if (lstat(dst, &st) == 0)
        return errno = EEXIST, -1;
    return rename(src, dst);
}

/* Move the staged names into dir. What dir held under a bundle name is
 * moved into stage/.old first (--force; else it is an error), so a failure
 * midway puts every name back as it was. */
static int move_in(const char *stage, const char *dir, const int *want, int force, qd_err *e)
{
    char old[PATHN], src[PATHN], dst[PATHN], bak[PATHN];
    int moved_old[B__N] = {0}, moved_new[B__N] = {0}, rc = QD_OK;
    if (pjoin(old, stage, ".old", e))
        return e->code;
    if (mkdir(old, 0777))
        return qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", old, strerror(errno));
    for (int i = 0; i < B__N && !rc; i++) {
        struct stat st;
        if (pjoin(src, stage, bnames[i], e) || pjoin(dst, dir, bnames[i], e) || pjoin(bak, old, bnames[i], e)) {
            rc = e->code;
            break;
        }
        if (lstat(dst, &st) == 0) {
            if (!force) {
                rc = qd_errf(e, QD_EINPUT, "qdb export bundle: %s exists (--force overwrites)", dst);
                break;
            }
            if (rename(dst, bak)) {
                rc = qd_errf(e, QD_EFAIL, "qdb export bundle: cannot replace %s: %s", dst, strerror(errno));
                break;
            }
            moved_old[i] = 1;
        }
        if (!want[i])
            continue;
        if (rename_new(src, dst)) {
            rc = errno == EEXIST ? qd_errf(e, QD_EINPUT, "qdb export bundle: %s exists (--force overwrites)", dst)
                                 : qd_errf(e, QD_EFAIL, "qdb export bundle: cannot move %s into %s: %s", bnames[i],
                                           dir, strerror(errno));
            break;
        }
        moved_new[i] = 1;
    }
    if (rc) {
        for (int i = B__N - 1; i >= 0; i--) {
            if ((moved_new[i] || moved_old[i]) && (pjoin(src, stage, bnames[i], e) || pjoin(dst, dir, bnames[i], e) ||
                                                  pjoin(bak, old, bnames[i], e)))
                continue;
            if (moved_new[i])
                rename(dst, src);
            if (moved_old[i])
                rename(bak, dst);
        }
    }
    return rc;
}

/* ---- the bundle ---- */

static cJSON *manifest(const sess_ctx *c, const char *model, const char *msha, const char *quant,
                       const qd_sim_counts *cnt, const char *cname, const char *qdq_reason, int report,
                       const char *report_opts, const char *report_skipped)
{
    const qd_session *s = c->s;
    cJSON *j = cJSON_CreateObject(), *o;
    cJSON_AddStringToObject(j, "qdb_version", QD_VERSION);
    cJSON_AddItemToObject(j, "session", c->path ? cJSON_CreateString(c->path) : cJSON_CreateNull());
    o = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(o, "path", model);
    cJSON_AddStringToObject(o, "sha256", msha);
    o = cJSON_AddObjectToObject(j, "data");
    cJSON_AddStringToObject(o, "spec", s->data);
    cJSON_AddItemToObject(o, "limit", s->limit > 0 ? cJSON_CreateNumber((double)s->limit) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "seed", (double)s->seed);
    cJSON_AddNumberToObject(o, "images", (double)s->images);
    cJSON_AddStringToObject(o, "sha256", s->data_sha256);
    cJSON_AddStringToObject(j, "quantization", quant);
    cJSON_AddStringToObject(j, "config", cname);
    o = cJSON_AddObjectToObject(j, "quantizers");
    cJSON_AddNumberToObject(o, "enabled", cnt->enabled);
    cJSON_AddNumberToObject(o, "int32_biases", cnt->int32_biases);
    o = cJSON_AddObjectToObject(j, "qdq");
    cJSON_AddBoolToObject(o, "written", !*qdq_reason);
    cJSON_AddItemToObject(o, "reason", *qdq_reason ? cJSON_CreateString(qdq_reason) : cJSON_CreateNull());
    if (report) {
        o = cJSON_AddObjectToObject(j, "report");
        cJSON_AddStringToObject(o, "options", report_opts);
        cJSON_AddItemToObject(o, "not_applied", report_skipped ? cJSON_CreateString(report_skipped) : cJSON_CreateNull());
    } else {
        cJSON_AddNullToObject(j, "report");
    }
    cJSON_AddArrayToObject(j, "files");
    return j;
}

/* The files of stage (but the manifest) into the manifest's "files". */
static int manifest_files(cJSON *j, const char *stage, qd_err *e)
{
    char **v = qd_strv_dup(NULL, 0);
    int n = 0, rc = v ? list_files(stage, NULL, &v, &n, e) : qd_errf(e, QD_EFAIL, "out of memory");
    if (!rc)
        qsort(v, (size_t)n, sizeof *v, by_name);
    cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    for (int i = 0; i < n && !rc; i++) {
        char p[PATHN], h[65];
        struct stat st;
        if (!strcmp(v[i], bnames[B_MANIFEST]))
            continue;
        if (pjoin(p, stage, v[i], e) || qd_sha256_file(p, h, e)) {
            rc = fail(e, NULL);
            break;
        }
        if (stat(p, &st)) {
            rc = qd_errf(e, QD_EFAIL, "qdb export bundle: %s: %s", p, strerror(errno));
            break;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", v[i]);
        cJSON_AddNumberToObject(f, "bytes", (double)st.st_size);
        cJSON_AddStringToObject(f, "sha256", h);
        cJSON_AddItemToArray(files, f);
    }
    qd_strv_free(v, n);
    return rc;
}

/* Build the simulation once and write every file of the bundle into
 * stage (want[] says which); en gets the results. */
static int fill_stage(sess_ctx *c, const bopts *o, const char *stage, const char *dir, int *want, qd_sess_entry *en,
                      qd_err *e)
{
    qd_session *s = c->s;
    char **qv = NULL, *quant = NULL, *ropts = NULL, *rskip = NULL, *mtext = NULL;
    int qn = 0, rc;
    char p[PATHN], mbuf[PATHN], msha[65], mh[65], qdq_reason[sizeof e->msg] = "";
    qd_sim *sim = NULL;
    cJSON *man = NULL;
    qd_sess_entry rep = {0};
    const char *model = sess_model_path(c, mbuf, sizeof mbuf);
    if ((rc = sess_verify(c, !o->no_report, msha, e))) /* the recorded model and data are the ones bundled */
        goto out;
    if (sess_quant_argv(s, "bundle", &qv, &qn) ||
        !(quant = s->quant_on ? join_args(qv + 1, qn - 1) : strdup("w8a8 (default: the session is FP32)"))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }

    /* the simulation, as eval builds it */
    if (!(sim = sess_sim(c, "export bundle", o->threads, 0, e))) {
        rc = fail(e, NULL);
        goto out;
    }
    qd_sim_counts cnt;
    qd_sim_get_counts(sim, &cnt);
    const qd_sess_quant *sq = s->quant_on ? &s->q : NULL; /* the config the simulation used */
    const char *cname = sq && sq->config ? sq->config : sq && sq->per_channel == 1 ? "per_channel" : "default";

    /* encodings, the QDQ model (when QDQ can express the sim), the config, the session */
    if ((rc = pjoin(p, stage, bnames[B_ENC061], e)) || (rc = qd_encodings_write(sim, p, "0.6.1", e)) ||
        (rc = pjoin(p, stage, bnames[B_ENC100], e)) || (rc = qd_encodings_write(sim, p, "1.0.0", e))) {
        rc = fail(e, NULL);
        goto out;
    }
    want[B_ENC061] = want[B_ENC100] = 1;
    qd_err qe = {0};
    qd_graph *qg = qd_qdq_graph(sim, &qe);
    qd_graph_free(qg);
    if (!qg && qe.code != QD_EINPUT) {
        *e = qe;
        rc = fail(e, "QDQ model");
        goto out;
    }
    if (!qg) {
        snprintf(qdq_reason, sizeof qdq_reason, "%s", qe.msg);
        if (!c->quiet)
            fprintf(stderr, "qdb export bundle: warning: no %s: %s\n", bnames[B_QDQ], qdq_reason);
    } else {
        if ((rc = pjoin(p, stage, bnames[B_QDQ], e)) || (rc = qd_qdq_export(sim, p, e))) {
            rc = fail(e, NULL);
            goto out;
        }
        want[B_QDQ] = 1;
    }
    if ((rc = pjoin(p, stage, bnames[B_CONFIG], e)) || (rc = write_config(cname, p, e)))
        goto out;
    want[B_CONFIG] = 1;
    if ((rc = pjoin(p, stage, bnames[B_SESSION], e)) || (rc = qd_session_write(s, p, e))) {
        rc = fail(e, NULL);
        goto out;
    }
    want[B_SESSION] = 1;
    qd_sim_free(sim);
    sim = NULL;

    /* the report, through the session layer as qdb do SESSION debug runs it */
    if (!o->no_report) {
        char rdir[PATHN], threads[24];
        snprintf(threads, sizeof threads, "%ld", o->threads);
        char *dv[] = {"debug", "--report", rdir, "--threads", threads};
        if ((rc = pjoin(rdir, stage, bnames[B_REPORT], e)))
            goto out;
        char **sv = NULL; /* what the session layer gives debug */
        int sn = 0;
        int oom = sess_debug_argv(s, "debug", &sv, &sn) || report_skipped(qv, qn, sv, sn, &rskip) ||
                  !(ropts = sn > 1 ? join_args(sv + 1, sn - 1) : strdup("--target=w8a8"));
        qd_strv_free(sv, sn);
        if (oom) {
            rc = qd_errf(e, QD_EFAIL, "out of memory");
            goto out;
        }
        sess_ctx c2 = *c; /* its files go where they are told (not under replay's --out); nothing printed */
        c2.outdir = NULL;
        c2.expect = NULL;
        c2.json = 0;
        c2.quiet = 1;
        int journal;
        if ((rc = sess_exec(&c2, 5, dv, &rep, &journal, e))) {
            rc = fail(e, "report");
            goto out;
        }
        if ((rc = fix_scripts(stage, dir, e)))
            goto out;
        want[B_REPORT] = 1;
    }

    /* the manifest, last */
    size_t mlen;
    if (!(man = manifest(c, model, msha, quant, &cnt, cname, qdq_reason, !o->no_report, ropts, rskip))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    if ((rc = manifest_files(man, stage, e)) || (rc = pjoin(p, stage, bnames[B_MANIFEST], e)))
        goto out;
    if (!(mtext = cJSON_Print(man))) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    mlen = strlen(mtext);
    mtext[mlen] = '\n'; /* the NUL becomes the file's last newline */
    if ((rc = write_bytes(p, mtext, mlen + 1, e)))
        goto out;
    want[B_MANIFEST] = 1;
    if (qd_sha256_file(p, mh, e)) {
        rc = fail(e, NULL);
        goto out;
    }

    /* the results: what was written, the report's key numbers */
    int nfiles = 0;
    for (int i = 0; i < B__N; i++)
        nfiles += want[i];
    static const char *const rkeys[] = {"target", "metric", "fp32", "quantized.accuracy", "quantized.agreement",
                                        "quantized.sqnr_db", "quantized.drop_points", "sanity.ok", NULL};
    int oom = qd_sess_result_add(en, "files", QD_SV_NUM, nfiles, NULL) ||
              qd_sess_result_add(en, "enabled", QD_SV_NUM, cnt.enabled, NULL) ||
              qd_sess_result_add(en, "int32_biases", QD_SV_NUM, cnt.int32_biases, NULL) ||
              qd_sess_result_add(en, "qdq", QD_SV_BOOL, !*qdq_reason, NULL) ||
              qd_sess_result_add(en, "report", QD_SV_BOOL, !o->no_report, NULL) ||
              (*qdq_reason && qd_sess_result_add(en, "qdq_skipped", QD_SV_STR, 0, qdq_reason));
    for (int k = 0; rkeys[k] && !oom; k++) {
        const qd_sess_val *v = qd_sess_result_get(&rep, rkeys[k]);
        oom = v && qd_sess_result_add(en, v->key, v->type, v->num, v->str);
    }
    if (oom || qd_sess_result_add(en, "manifest_sha256", QD_SV_STR, 0, mh))
        rc = qd_errf(e, QD_EFAIL, "out of memory");
out:
    qd_sim_free(sim);
    qd_sess_entry_clear(&rep);
    cJSON_Delete(man);
    free(mtext);
    free(quant);
    free(ropts);
    free(rskip);
    qd_strv_free(qv, qn);
    return rc;
}

static int bundle_make(sess_ctx *c, const bopts *o, qd_sess_entry *en, bres *r, qd_err *e)
{
    if (!c->s->model)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: the session has no model yet: start with load MODEL --data SPEC");
    /* replay puts output files under its --out, by their own names */
    int over;
    if (c->outdir) {
        char *d = strdup(o->out);
        if (!d)
            return qd_errf(e, QD_EFAIL, "out of memory");
        over = snprintf(r->dir, sizeof r->dir, "%s/%s", c->outdir, basename(d)) >= (int)sizeof r->dir;
        free(d);
    } else {
        over = snprintf(r->dir, sizeof r->dir, "%s", o->out) >= (int)sizeof r->dir;
    }
    if (over)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: --out: path too long");
    const char *dir = r->dir;
    char p[PATHN], stage[PATHN];
    /* refuse to overwrite, before any work */
    for (int i = 0; i < B__N && !o->force; i++) {
        struct stat st;
        if (pjoin(p, dir, bnames[i], e))
            return e->code;
        if (lstat(p, &st) == 0)
            return qd_errf(e, QD_EINPUT, "qdb export bundle: %s exists (--force overwrites)", p);
    }
    made m = {0};
    int rc = mkdirs(dir, &m, e);
    if (!rc && snprintf(stage, sizeof stage, "%s/" STAGE_PREFIX "%ld", dir, (long)getpid()) >= (int)sizeof stage)
        rc = qd_errf(e, QD_EINPUT, "qdb export bundle: --out: path too long");
    if (!rc) {
        rm_stale(dir);
        cli_rmtree(stage);
        if (mkdir(stage, 0777))
            rc = qd_errf(e, QD_EINPUT, "qdb export bundle: cannot write into %s: %s", dir, strerror(errno));
    }
    if (rc) {
        made_undo(&m);
        return rc;
    }
    rc = fill_stage(c, o, stage, dir, r->written, en, e);
    if (!rc)
        rc = move_in(stage, dir, r->written, o->force, e);
    cli_rmtree(stage);
    if (rc) {
        made_undo(&m);
        qd_sess_entry_clear(en);
        memset(r->written, 0, sizeof r->written);
        return rc;
    }
    made_free(&m);
    for (int i = 0; i < B__N; i++)
        r->nfiles += r->written[i];
    return QD_OK;
}

/* Options shared by both entry points; argv[0] is "bundle". */
static int parse_opts(int argc, char **argv, int maxpos, bopts *bo, args *a, int *help, qd_err *e)
{
    opt o[] = {{.name = "--out", .has_arg = 1},     {.name = "--force", .has_arg = 0}, {.name = "--no-report", .has_arg = 0},
               {.name = "--threads", .has_arg = 1}, {.name = "--json", .has_arg = 0},  {.name = "--help", .has_arg = 0},
               {.name = "-h", .has_arg = 0},        {0}};
    enum { OUT, FORCE, NOREP, THREADS, JSON, HELP, H };
    *bo = (bopts){.threads = 1};
    if (cli_parse("export bundle", argc, argv, o, maxpos, a, e))
        return e->code;
    *help = o[HELP].val || o[H].val;
    if (*help)
        return QD_OK;
    if (o[THREADS].val && cli_parse_int("export bundle", "--threads", o[THREADS].val, 1, 64, &bo->threads, e))
        return e->code;
    if (!o[OUT].val || !*o[OUT].val)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: --out DIR is required (qdb export bundle --help)");
    bo->out = o[OUT].val;
    bo->force = o[FORCE].val != NULL;
    bo->no_report = o[NOREP].val != NULL;
    return QD_OK;
}

int sess_bundle(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e)
{
    bopts bo;
    args a;
    int help;
    if (parse_opts(argc, argv, 0, &bo, &a, &help, e))
        return e->code;
    if (help) /* not journaled: a help text is no result */
        return qd_errf(e, QD_EINPUT, "qdb do export bundle: --help: see qdb export bundle --help");
    bres r = {0};
    int rc = bundle_make(c, &bo, en, &r, e);
    if (!rc && !c->quiet)
        fprintf(stderr, "qdb export: wrote bundle %s (%d files)\n", r.dir, r.nfiles);
    return rc;
}

/* "a.b" keys of en as nested objects of j. */
static void add_results(cJSON *j, const qd_sess_entry *en)
{
    for (int k = 0; k < en->nresult; k++) {
        const qd_sess_val *v = &en->result[k];
        if (!strcmp(v->key, "files")) /* the list of names says it */
            continue;
        cJSON *obj = j;
        const char *key = v->key, *dot;
        char part[256];
        while ((dot = strchr(key, '.')) && (size_t)(dot - key) < sizeof part) {
            snprintf(part, sizeof part, "%.*s", (int)(dot - key), key);
            cJSON *sub = cJSON_GetObjectItemCaseSensitive(obj, part);
            obj = cJSON_IsObject(sub) ? sub : cJSON_AddObjectToObject(obj, part);
            key = dot + 1;
        }
        cJSON *x = v->type == QD_SV_NUM    ? cJSON_CreateNumber(v->num)
                   : v->type == QD_SV_BOOL ? cJSON_CreateBool(v->num != 0)
                   : v->type == QD_SV_STR  ? cJSON_CreateString(v->str)
                                           : cJSON_CreateNull();
        cJSON_AddItemToObject(obj, key, x);
    }
}

int cli_export_bundle(int argc, char **argv, qd_err *e)
{
    bopts bo;
    args a;
    int help, json = 0;
    for (int i = 1; i < argc; i++)
        json |= !strcmp(argv[i], "--json");
    if (parse_opts(argc, argv, 1, &bo, &a, &help, e))
        return e->code;
    if (help)
        return fputs(bundle_help, stdout), QD_OK;
    if (a.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb export bundle: give one SESSION (qdb export bundle --help)");
    qd_session *s = qd_session_read(a.pos[0], e); /* read-only: no lock */
    if (!s)
        return e->code;
    sess_ctx c = {.s = s, .path = a.pos[0], .json = json};
    qd_sess_entry en = {0};
    bres r = {0};
    int rc = bundle_make(&c, &bo, &en, &r, e);
    if (!rc) {
        fprintf(stderr, "qdb export: wrote bundle %s (%d files)\n", r.dir, r.nfiles);
        if (json) {
            cJSON *j = cJSON_CreateObject(), *f;
            cJSON_AddStringToObject(j, "out", r.dir);
            f = cJSON_AddArrayToObject(j, "files");
            for (int i = 0; i < B__N; i++)
                if (r.written[i])
                    cJSON_AddItemToArray(f, cJSON_CreateString(bnames[i]));
            add_results(j, &en);
            rc = cli_print_json(j);
        }
    }
    qd_sess_entry_clear(&en);
    qd_session_free(s);
    return rc;
}
