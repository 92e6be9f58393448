/* test_nodes.c - runs the ONNX backend node tests ($ONNX_TESTDATA/{node,
 * pytorch-converted,pytorch-operator,simple}/<case>/) through qdb's loader and
 * executor and compares every output with the reference.
 *
 *   test_nodes [-v] [-n] [FILTER...]
 *     FILTER  run only cases whose name contains one of the substrings
 *     -v      print every case's outcome (and the worst error of passes)
 *     -n      no fork: run cases in this process (for a debugger)
 *     -t      ignore the per-op table: default tolerance for every op (to
 *             see which rows of node_tolerances.h are still needed)
 *
 * Outcomes: PASS; FAIL (a bug: the case's ops load but give a wrong result,
 * an error, a crash or a leak); SKIP (the loader or executor refused with
 * "unsupported"/"not supported": an op, opset, dtype or attribute qdb does
 * not implement); KNOWN (listed in node_tolerances.h with a reason).
 * Each case runs in a forked child so that one crash does not hide the rest;
 * under ASan a leak in the child turns the case into a FAIL.
 * Tolerances: node_tolerances.h. Last line: "N passed, N failed". */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "graph.h"
#include "node_tolerances.h"

enum { R_PASS, R_FAIL, R_SKIP, R_KNOWN };

#define MAX_IO 64
#define REASON_LEN 600

/* What one case produced; sent from the child to the parent over a pipe. */
typedef struct result {
    int kind;
    char ops[120];           /* op types of the graph, "A+B+..." */
    char reason[REASON_LEN]; /* FAIL/SKIP: why; PASS: worst error note */
} result;

static int verbose, nofork, tight;
static const char *known_why(const char *name)
{
    for (const node_known *k = node_known_cases; k->name; k++)
        if (!strcmp(k->name, name))
            return k->why;
    return NULL;
}

/* Does an error say that qdb does not implement something (a SKIP), rather
 * than that something went wrong (a FAIL)? "X supports float32 only" counts. */
static int contains_unsupported(const char *msg)
{
    const char *s = strstr(msg, "supports ");
    return strstr(msg, "unsupported") || strstr(msg, "not supported") ||
           strstr(msg, "Unsupported") || strstr(msg, "not implemented") ||
           (s && strstr(s, " only"));
}

/* ---- tolerance ---- */

static void case_tol(const qd_graph *g, double *atol, double *rtol)
{
    *atol = NODE_TOL_DEFAULT_ATOL;
    *rtol = NODE_TOL_DEFAULT_RTOL;
    for (int i = 0; i < g->nnodes && !tight; i++)
        for (const node_tol *t = node_tols; t->op; t++)
            if (!strcmp(t->op, g->nodes[i].op_type)) {
                if (t->atol > *atol)
                    *atol = t->atol;
                if (t->rtol > *rtol)
                    *rtol = t->rtol;
            }
}

static void graph_ops(const qd_graph *g, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < g->nnodes && o + 1 < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(g->nodes[j].op_type, g->nodes[i].op_type);
        if (!seen)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "+" : "", g->nodes[i].op_type);
    }
    if (o >= n)
        buf[n - 1] = 0;
}

/* ---- comparison ---- */

static double half_to_double(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    double v;
    if (ex == 0)
        v = ldexp(m, -24);
    else if (ex == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m + 1024, ex - 25);
    return s ? -v : v;
}

static int is_float(qd_dtype t) { return t == QD_F32 || t == QD_F64 || t == QD_F16; }

static double get_f(const qd_tensor *t, int64_t i)
{
    if (t->dtype == QD_F16)
        return half_to_double(((const uint16_t *)t->data)[i]);
    return qd_tensor_get_f64(t, i);
}

static void index_str(const qd_tensor *t, int64_t flat, char *buf, size_t n)
{
    int64_t idx[QD_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t s = t->shape[d] > 0 ? t->shape[d] : 1;
        idx[d] = flat % s;
        flat /= s;
    }
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

/* Compare got against want; on mismatch write why into msg and return 1.
 * *worst receives max |d| / (atol + rtol|w|) for the verbose report. */
static int compare(const qd_tensor *got, const qd_tensor *want, double atol, double rtol,
                   double *worst, char *msg, size_t n)
{
    char gs[64], ws[64];
    if (got->dtype != want->dtype) {
        snprintf(msg, n, "dtype %s, want %s", qd_dtype_name(got->dtype), qd_dtype_name(want->dtype));
        return 1;
    }
    int same = got->ndim == want->ndim;
    for (int d = 0; same && d < got->ndim; d++)
        same = got->shape[d] == want->shape[d];
    if (!same) {
        snprintf(msg, n, "shape %s, want %s", qd_shape_str(got->ndim, got->shape, gs, sizeof gs),
                 qd_shape_str(want->ndim, want->shape, ws, sizeof ws));
        return 1;
    }
    int64_t numel = qd_tensor_numel(want), bad = 0, at = -1;
    if (numel > 0 && !got->data) {
        snprintf(msg, n, "output has no data");
        return 1;
    }
    if (want->dtype == QD_F16) {
        atol = NODE_TOL_F16_ATOL;
        rtol = NODE_TOL_F16_RTOL;
    }
    double wdiff = -1, wg = 0, ww = 0;
    *worst = 0;
    for (int64_t i = 0; i < numel; i++) {
        if (is_float(want->dtype)) {
            double g = get_f(got, i), w = get_f(want, i);
            int ok;
            double r = 0;
            if (isnan(w) || isnan(g))
                ok = isnan(w) && isnan(g);
            else if (isinf(w) || isinf(g))
                ok = g == w;
            else {
                double lim = atol + rtol * fabs(w);
                r = fabs(g - w) / lim;
                ok = fabs(g - w) <= lim;
            }
            if (r > *worst)
                *worst = r;
            if (!ok) {
                bad++;
                double d = isnan(g - w) ? INFINITY : fabs(g - w);
                if (d > wdiff || at < 0) {
                    wdiff = d;
                    at = i;
                    wg = g;
                    ww = w;
                }
            }
        } else {
            int64_t g = qd_tensor_get_i64(got, i), w = qd_tensor_get_i64(want, i);
            if (want->dtype == QD_U64 ? (uint64_t)g != (uint64_t)w : g != w) {
                if (!bad) {
                    at = i;
                    wg = (double)g;
                    ww = (double)w;
                }
                bad++;
            }
        }
    }
    if (!bad)
        return 0;
    char idx[96];
    index_str(want, at, idx, sizeof idx);
    if (is_float(want->dtype))
        snprintf(msg, n, "%lld/%lld elements differ (atol %g rtol %g); worst at %s: got %.7g want %.7g (diff %.3g)",
                 (long long)bad, (long long)numel, atol, rtol, idx, wg, ww, wdiff);
    else
        snprintf(msg, n, "%lld/%lld elements differ (exact %s); first at %s: got %.0f want %.0f",
                 (long long)bad, (long long)numel, qd_dtype_name(want->dtype), idx, wg, ww);
    return 1;
}

/* ---- one case ---- */

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Loads <dir>/<prefix>_<i>.pb for i = 0.. until one is missing. */
static int load_pbs(const char *dir, const char *prefix, qd_tensor *t, char **names, int *count,
                    result *r)
{
    char path[4096];
    *count = 0;
    for (int i = 0; i < MAX_IO; i++) {
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, i);
        if (!file_exists(path))
            return 0;
        qd_err e = {0};
        if (qd_tensor_load_pb(path, &t[i], &names[i], &e)) {
            qd_tensor_free(&t[i]);
            free(names[i]);
            names[i] = NULL;
            r->kind = contains_unsupported(e.msg) ? R_SKIP : R_FAIL;
            snprintf(r->reason, sizeof r->reason, "%s_%d.pb: %s", prefix, i, e.msg);
            return -1;
        }
        *count = i + 1;
    }
    return 0;
}

static void free_pbs(qd_tensor *t, char **names, int n)
{
    for (int i = 0; i < n; i++) {
        qd_tensor_free(&t[i]);
        free(names[i]);
        names[i] = NULL;
    }
}

/* Maps n tensors (names[]) onto the graph's list idx[0..nidx): by name when
 * every name matches a listed value, else by position when the counts agree.
 * map[k] = position in the graph list of tensor k. Returns 0 or -1. */
static int map_io(const qd_graph *g, const int *idx, int nidx, char **names, int n, int *map)
{
    int byname = n > 0;
    for (int k = 0; k < n && byname; k++) {
        map[k] = -1;
        for (int j = 0; j < nidx; j++)
            if (names[k] && names[k][0] && !strcmp(g->values[idx[j]].name, names[k]))
                map[k] = j;
        byname = map[k] >= 0;
    }
    if (byname)
        return 0;
    if (n != nidx)
        return -1;
    for (int k = 0; k < n; k++)
        map[k] = k;
    return 0;
}

/* Runs all data sets of the case with nthreads; fills r on failure. */
static void run_sets(const char *casedir, const qd_graph *g, int nthreads, double atol,
                     double rtol, double *worst, result *r)
{
    qd_err e = {0};
    qd_exec *x = qd_exec_new(g, nthreads, &e);
    if (!x) {
        r->kind = contains_unsupported(e.msg) ? R_SKIP : R_FAIL;
        snprintf(r->reason, sizeof r->reason, "qd_exec_new(%d threads): %s", nthreads, e.msg);
        return;
    }
    char dir[4096];
    qd_tensor *in = calloc(MAX_IO, sizeof *in), *out = calloc(MAX_IO, sizeof *out);
    qd_tensor *args = calloc(MAX_IO, sizeof *args);
    char *inames[MAX_IO] = {0}, *onames[MAX_IO] = {0};
    int map[MAX_IO];
    if (!in || !out || !args) {
        r->kind = R_FAIL;
        snprintf(r->reason, sizeof r->reason, "out of memory in the test");
        goto done;
    }
    for (int s = 0;; s++) {
        snprintf(dir, sizeof dir, "%s/test_data_set_%d", casedir, s);
        if (!file_exists(dir)) {
            if (s == 0) {
                r->kind = R_FAIL;
                snprintf(r->reason, sizeof r->reason, "no test_data_set_0");
            }
            break;
        }
        int nin = 0, nout = 0;
        if (load_pbs(dir, "input", in, inames, &nin, r) ||
            load_pbs(dir, "output", out, onames, &nout, r)) {
            free_pbs(in, inames, nin);
            free_pbs(out, onames, nout);
            break;
        }
        int bad = 0;
        if (map_io(g, g->inputs, g->ninputs, inames, nin, map)) {
            r->kind = R_FAIL;
            snprintf(r->reason, sizeof r->reason, "set %d: %d input files for %d graph inputs", s,
                     nin, g->ninputs);
            bad = 1;
        } else if (nin != g->ninputs) {
            r->kind = R_FAIL;
            snprintf(r->reason, sizeof r->reason, "set %d: %d input files for %d graph inputs "
                     "(optional inputs?)", s, nin, g->ninputs);
            bad = 1;
        }
        if (!bad) {
            for (int k = 0; k < nin; k++)
                args[map[k]] = in[k];
            memset(&e, 0, sizeof e);
            if (qd_exec_run(x, args, nin, &e)) {
                r->kind = contains_unsupported(e.msg) ? R_SKIP : R_FAIL;
                snprintf(r->reason, sizeof r->reason, "set %d run (%d thr): %s", s, nthreads, e.msg);
                bad = 1;
            }
        }
        if (!bad && map_io(g, g->outputs, g->noutputs, onames, nout, map)) {
            if (nout > g->noutputs) {
                r->kind = R_FAIL;
                snprintf(r->reason, sizeof r->reason, "set %d: %d output files for %d graph outputs",
                         s, nout, g->noutputs);
                bad = 1;
            }
            for (int k = 0; k < nout; k++)
                map[k] = k; /* fewer files than outputs: the first ones */
        }
        for (int k = 0; k < nout && !bad; k++) {
            int j = map[k];
            const qd_tensor *got = qd_exec_output(x, j);
            const char *oname = g->values[g->outputs[j]].name;
            char msg[400];
            double w = 0;
            if (!got) {
                r->kind = R_FAIL;
                snprintf(r->reason, sizeof r->reason, "set %d (%d thr): output %d '%s' not computed",
                         s, nthreads, j, oname);
                bad = 1;
            } else if (compare(got, &out[k], atol, rtol, &w, msg, sizeof msg)) {
                r->kind = R_FAIL;
                snprintf(r->reason, sizeof r->reason, "set %d (%d thr): output %d '%s': %s", s,
                         nthreads, j, oname, msg);
                bad = 1;
            }
            if (w > *worst)
                *worst = w;
        }
        memset(args, 0, MAX_IO * sizeof *args);
        free_pbs(in, inames, nin);
        free_pbs(out, onames, nout);
        if (bad)
            break;
    }
done:
    free(in);
    free(out);
    free(args);
    qd_exec_free(x);
}

static void run_case(const char *casedir, const char *name, result *r)
{
    char path[4096];
    memset(r, 0, sizeof *r);
    snprintf(path, sizeof path, "%s/model.onnx", casedir);
    if (!file_exists(path)) {
        r->kind = R_SKIP;
        snprintf(r->reason, sizeof r->reason, "no model.onnx (downloaded model)");
        return;
    }
    qd_err e = {0};
    qd_graph *g = qd_graph_load(path, &e);
    if (!g) {
        /* A valid ONNX test model that fails to load is a bug unless the
         * loader says it is something qdb does not support. */
        r->kind = e.code == QD_EINPUT && contains_unsupported(e.msg) ? R_SKIP : R_FAIL;
        snprintf(r->reason, sizeof r->reason, "load: %s", e.msg);
        return;
    }
    graph_ops(g, r->ops, sizeof r->ops);
    double atol, rtol, worst = 0;
    case_tol(g, &atol, &rtol);
    r->kind = R_PASS;
    run_sets(casedir, g, 1, atol, rtol, &worst, r);
    if (r->kind == R_PASS)
        run_sets(casedir, g, 2, atol, rtol, &worst, r);
    if (r->kind == R_PASS)
        snprintf(r->reason, sizeof r->reason, "worst error %.3g of tolerance (atol %g rtol %g)",
                 worst, atol, rtol);
    (void)name;
    qd_graph_free(g);
}

/* Runs the case in a child; a crash, timeout or sanitizer exit is a FAIL. */
static void run_isolated(const char *casedir, const char *name, result *r)
{
    if (nofork) {
        run_case(casedir, name, r);
        return;
    }
    int fd[2];
    fflush(NULL);
    if (pipe(fd)) {
        run_case(casedir, name, r);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        run_case(casedir, name, r);
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        const char *tm = getenv("QD_NODE_TIMEOUT");
        alarm(tm ? (unsigned)atoi(tm) : 300);
        result cr;
        run_case(casedir, name, &cr);
        size_t off = 0;
        while (off < sizeof cr) {
            ssize_t k = write(fd[1], (char *)&cr + off, sizeof cr - off);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
        close(fd[1]);
        exit(0); /* not _exit: LeakSanitizer checks the child at exit */
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    size_t off = 0;
    while (off < sizeof *r) {
        ssize_t k = read(fd[0], (char *)r + off, sizeof *r - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r->reason[sizeof r->reason - 1] = 0;
    r->ops[sizeof r->ops - 1] = 0;
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        r->kind = R_FAIL;
        snprintf(r->reason, sizeof r->reason, "%s (signal %d)",
                 sig == SIGALRM ? "timed out" : "crashed", sig);
    } else if (off < sizeof *r) {
        r->kind = R_FAIL;
        snprintf(r->reason, sizeof r->reason, "child exited with status %d before reporting",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        char was[80];
        snprintf(was, sizeof was, "%s", r->kind == R_PASS ? "passed" : r->kind == R_SKIP ? "skipped" : "failed");
        r->kind = R_FAIL;
        snprintf(r->reason, sizeof r->reason, "exit status %d after the case %s (sanitizer: leak?)",
                 WEXITSTATUS(st), was);
    }
}

/* ---- skip reasons, grouped ---- */

typedef struct reason_count {
    char key[160];
    int n;
    char example[64];
} reason_count;

static reason_count *reasons;
static int nreasons, capreasons;

/* The part of a message worth grouping on: from the segment that says
 * "unsupported" (messages are "where: where: why"), without the node name
 * and opset that follow an op's name. */
static void reason_key(const char *msg, char *key, size_t n)
{
    const char *p = msg, *hit = NULL;
    const char *kw[] = {"unsupported", "not supported", "Unsupported", "not implemented",
                        "supports "};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0] && !hit; k++)
        hit = strstr(msg, kw[k]);
    if (hit) {
        /* back to the start of this ": "-separated segment */
        const char *s = msg;
        for (const char *q = msg; q < hit; q++)
            if (q[0] == ':' && q[1] == ' ')
                s = q + 2;
        p = s;
    }
    size_t o = 0;
    for (; *p && o + 1 < n; p++)
        key[o++] = *p;
    key[o] = 0;
    /* "unsupported op 'X' (node 'X_0', opset 13)": group by op only */
    char *paren = strstr(key, " (node ");
    if (paren)
        *paren = 0;
}

static void add_reason(const char *msg, const char *name)
{
    char key[160];
    reason_key(msg, key, sizeof key);
    for (int i = 0; i < nreasons; i++)
        if (!strcmp(reasons[i].key, key)) {
            reasons[i].n++;
            return;
        }
    if (nreasons == capreasons) {
        capreasons = capreasons ? capreasons * 2 : 64;
        reason_count *nr = realloc(reasons, (size_t)capreasons * sizeof *nr);
        if (!nr)
            return;
        reasons = nr;
    }
    reason_count *rc = &reasons[nreasons++];
    snprintf(rc->key, sizeof rc->key, "%s", key);
    snprintf(rc->example, sizeof rc->example, "%s", name);
    rc->n = 1;
}

static int cmp_reason(const void *a, const void *b)
{
    const reason_count *x = a, *y = b;
    return x->n != y->n ? y->n - x->n : strcmp(x->key, y->key);
}

/* ---- failures, grouped by op for the summary ---- */

typedef struct failure {
    char ops[120];
    char line[REASON_LEN + 200];
} failure;

static failure *fails;
static int nfails, capfails;

static void add_failure(const char *ops, const char *line)
{
    if (nfails == capfails) {
        capfails = capfails ? capfails * 2 : 32;
        failure *nf = realloc(fails, (size_t)capfails * sizeof *nf);
        if (!nf)
            return;
        fails = nf;
    }
    snprintf(fails[nfails].ops, sizeof fails[nfails].ops, "%s", ops[0] ? ops : "(not loaded)");
    snprintf(fails[nfails].line, sizeof fails[nfails].line, "%s", line);
    nfails++;
}

static int cmp_failure(const void *a, const void *b)
{
    const failure *x = a, *y = b;
    int c = strcmp(x->ops, y->ops);
    return c ? c : strcmp(x->line, y->line);
}

/* ---- main ---- */

static int matches(const char *name, char **filters, int nfilters)
{
    if (!nfilters)
        return 1;
    for (int i = 0; i < nfilters; i++)
        if (strstr(name, filters[i]))
            return 1;
    return 0;
}

static int only_dirs(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    const char *root = getenv("ONNX_TESTDATA");
    if (!root || !*root)
        root = "/usr/include/onnx/backend/test/data";
    char **filters = calloc((size_t)argc, sizeof *filters);
    int nfilters = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "-n"))
            nofork = 1;
        else if (!strcmp(argv[i], "-t"))
            tight = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: test_nodes [-v] [-n] [-t] [FILTER...]   (env ONNX_TESTDATA=%s)\n", root);
            free(filters);
            return 0;
        } else
            filters[nfilters++] = argv[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *cats[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    int tot[4] = {0}, found_any = 0; /* pass fail skip known */
    for (size_t c = 0; c < sizeof cats / sizeof cats[0]; c++) {
        char cdir[4096];
        snprintf(cdir, sizeof cdir, "%s/%s", root, cats[c]);
        struct dirent **ents = NULL;
        int n = scandir(cdir, &ents, only_dirs, alphasort);
        if (n < 0) {
            printf("%s: cannot read %s: %s\n", cats[c], cdir, strerror(errno));
            continue;
        }
        found_any = 1;
        int cnt[4] = {0}, ran = 0;
        for (int i = 0; i < n; i++) {
            const char *name = ents[i]->d_name;
            char casedir[4096 + 256];
            snprintf(casedir, sizeof casedir, "%s/%s", cdir, name);
            struct stat st;
            if (!matches(name, filters, nfilters) || stat(casedir, &st) || !S_ISDIR(st.st_mode))
                continue;
            result r;
            run_isolated(casedir, name, &r);
            const char *kw = known_why(name);
            if (kw && r.kind == R_FAIL) {
                r.kind = R_KNOWN;
                if (verbose)
                    printf("KNOWN %s/%s: %s (was: %s)\n", cats[c], name, kw, r.reason);
            } else if (kw && r.kind == R_PASS) {
                printf("NOTE %s/%s passes now: remove it from node_known_cases\n", cats[c], name);
            }
            if (r.kind != R_SKIP)
                ran++;
            cnt[r.kind]++;
            if (r.kind == R_FAIL) {
                char line[REASON_LEN + 200];
                snprintf(line, sizeof line, "%s/%s: %s", cats[c], name, r.reason);
                printf("FAIL %s\n", line);
                add_failure(r.ops, line);
            } else if (r.kind == R_SKIP) {
                add_reason(r.reason, name);
                if (verbose)
                    printf("SKIP %s/%s: %s\n", cats[c], name, r.reason);
            } else if (r.kind == R_PASS && verbose) {
                printf("PASS %s/%s [%s] %s\n", cats[c], name, r.ops, r.reason);
            }
        }
        for (int i = 0; i < n; i++)
            free(ents[i]);
        free(ents);
        printf("%s: %d cases, ran %d, passed %d, failed %d, skipped %d, known %d\n", cats[c],
               cnt[0] + cnt[1] + cnt[2] + cnt[3], ran, cnt[R_PASS], cnt[R_FAIL], cnt[R_SKIP],
               cnt[R_KNOWN]);
        for (int k = 0; k < 4; k++)
            tot[k] += cnt[k];
    }
    if (nreasons) {
        qsort(reasons, (size_t)nreasons, sizeof *reasons, cmp_reason);
        printf("skipped by reason (%d distinct):\n", nreasons);
        int show = verbose ? nreasons : (nreasons < 40 ? nreasons : 40);
        for (int i = 0; i < show; i++)
            printf("  %4d  %s  (e.g. %s)\n", reasons[i].n, reasons[i].key, reasons[i].example);
        if (show < nreasons)
            printf("  ... %d more (-v lists all)\n", nreasons - show);
    }
    if (nfails) {
        qsort(fails, (size_t)nfails, sizeof *fails, cmp_failure);
        printf("failures by op:\n");
        for (int i = 0; i < nfails; i++) {
            if (!i || strcmp(fails[i].ops, fails[i - 1].ops))
                printf("  %s:\n", fails[i].ops);
            printf("    %s\n", fails[i].line);
        }
    }
    printf("total: passed %d, failed %d, skipped %d, known %d\n", tot[R_PASS], tot[R_FAIL],
           tot[R_SKIP], tot[R_KNOWN]);
    if (!found_any) {
        printf("no test data under %s (set ONNX_TESTDATA)\n", root);
        tot[R_FAIL]++;
    }
    free(reasons);
    free(fails);
    free(filters);
    printf("%d passed, %d failed\n", tot[R_PASS], tot[R_FAIL]);
    return tot[R_FAIL] ? 1 : 0;
}
