/* app.c - the TUI's life: opening a session, the worker thread that builds
 * and evaluates the live simulation and runs long commands, autosave, the
 * terminal's setup and its restoration on every way out. */
#include "app.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "cli.h"
#include "cliutil.h"
#include "fuse.h"
#include "tui.h"
#include "util.h"
#include "viz/viz.h"

/* ---- the log ---- */

static void log_line(tui_app *a, const char *line)
{
    pthread_mutex_lock(&a->mu);
    if (a->nlog == TUI_LOG_MAX) {
        free(a->log[0]);
        memmove(a->log, a->log + 1, (TUI_LOG_MAX - 1) * sizeof *a->log);
        a->nlog--;
    }
    a->log[a->nlog++] = strdup(line);
    a->log_gen++;
    a->gen++;
    pthread_mutex_unlock(&a->mu);
}

void tui_log(tui_app *a, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        if ((nl = strchr(p, '\n')))
            *nl = 0;
        log_line(a, p);
    }
}

/* ---- the terminal and the output of commands ---- */

/* While the TUI runs, fds 1 and 2 go to an unlinked file whose new text
 * the UI thread moves into the log pane; ncurses writes to a copy of the
 * original stdout. */
static int cap_fd = -1, saved_out = -1, saved_err = -1;
static off_t cap_off;
static SCREEN *scr;
static FILE *scr_out;
static volatile sig_atomic_t got_signal;

static void restore_fds(void)
{
    if (saved_out >= 0) {
        fflush(stdout);
        dup2(saved_out, 1);
        close(saved_out);
        saved_out = -1;
    }
    if (saved_err >= 0) {
        fflush(stderr);
        dup2(saved_err, 2);
        close(saved_err);
        saved_err = -1;
    }
}

static void term_restore(void)
{
    if (scr) {
        endwin();
        delscreen(scr);
        scr = NULL;
    }
    if (scr_out) {
        fclose(scr_out);
        scr_out = NULL;
    }
    restore_fds();
}

static void on_fatal(int sig)
{
    /* give the terminal back before dying (endwin is what every curses
     * program does here; the fds are restored with async-safe calls) */
    if (scr)
        endwin();
    if (saved_out >= 0)
        dup2(saved_out, 1);
    if (saved_err >= 0)
        dup2(saved_err, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_quit_signal(int sig)
{
    got_signal = sig;
}

static void pump_output(tui_app *a)
{
    if (cap_fd < 0)
        return;
    fflush(stdout);
    fflush(stderr);
    static char part[1024];
    static size_t npart;
    char buf[4096];
    ssize_t n;
    while ((n = pread(cap_fd, buf, sizeof buf, cap_off)) > 0) {
        cap_off += n;
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\r')
                npart = 0; /* a progress bar redraws its line */
            else if (ch == '\n' || npart == sizeof part - 1) {
                part[npart] = 0;
                if (npart)
                    log_line(a, part);
                npart = 0;
            } else
                part[npart++] = ch;
        }
    }
}

static int term_start(tui_app *a, qd_err *e)
{
    if (!getenv("TERM") || !*getenv("TERM"))
        return qd_errf(e, QD_EINPUT, "qdb tui: TERM is not set: cannot drive the terminal");
    int o = dup(1);
    if (o < 0 || !(scr_out = fdopen(o, "w"))) {
        if (o >= 0)
            close(o);
        return qd_errf(e, QD_EFAIL, "qdb tui: stdout: %s", strerror(errno));
    }
    if (!(scr = newterm(NULL, scr_out, stdin))) {
        fclose(scr_out);
        scr_out = NULL;
        return qd_errf(e, QD_EINPUT, "qdb tui: cannot use terminal type '%s'", getenv("TERM"));
    }
    set_term(scr);
    raw();
    noecho();
    keypad(stdscr, TRUE);
    nonl();
    set_escdelay(25);
    curs_set(0);
    wtimeout(stdscr, 50);
    mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_DOUBLE_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    a->no_color = getenv("NO_COLOR") && *getenv("NO_COLOR");
    tui_colors(a);

    char tmpl[] = "/tmp/qdb-tui-XXXXXX";
    cap_fd = mkstemp(tmpl);
    if (cap_fd >= 0) {
        unlink(tmpl);
        fflush(stdout);
        fflush(stderr);
        saved_out = dup(1);
        saved_err = dup(2);
        dup2(cap_fd, 1);
        dup2(cap_fd, 2);
        cap_off = 0;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_quit_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return QD_OK;
}

/* ---- snapshots for the screen ---- */

/* Row i from the sim; a weight's min and max only when weights (they
 * change only when the sim is built). */
static void fill_row(tui_app *a, int i, trow *r, int weights)
{
    qd_quantizer *q = qd_sim_get(a->sim, i);
    const qd_graph *g = qd_sim_graph(a->sim);
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", q->name);
    const char *op = q->kind == QD_QK_INPUT ? "input" : q->node >= 0 ? g->nodes[q->node].op_type : "";
    snprintf(r->op, sizeof r->op, "%s", op);
    r->kind = q->kind;
    r->enabled = q->set.enabled;
    r->bits = q->set.scheme.bits;
    r->sym = q->set.scheme.symmetric;
    r->pc = q->set.per_channel && q->axis >= 0;
    r->can_pc = q->kind == QD_QK_PARAM && q->axis >= 0;
    r->range = q->set.range;
    r->nenc = q->nenc;
    r->nch = q->nch;
    if (q->nenc > 0) {
        r->emin = q->enc[0].min;
        r->emax = q->enc[0].max;
        r->scale = q->enc[0].scale;
        r->offset = q->enc[0].offset;
    }
    r->smin = r->smax = NAN;
    if (q->stats) {
        r->count = qd_stats_count(q->stats);
        r->smin = qd_stats_min(q->stats);
        r->smax = qd_stats_max(q->stats);
    } else if (q->kind == QD_QK_PARAM && weights) {
        qd_tensor *w = qd_sim_fp32(a->sim, q->value);
        if (w && w->dtype == QD_F32) {
            const float *x = w->data;
            int64_t n = qd_tensor_numel(w);
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t k = 0; k < n; k++) {
                lo = fmin(lo, x[k]);
                hi = fmax(hi, x[k]);
            }
            r->count = n;
            r->smin = lo;
            r->smax = hi;
        }
    }
    r->sqnr = r->sens = NAN;
}

/* Rows from the sim, keeping by name the flowchart's columns and (unless
 * weights) the weights' min and max. */
static void snapshot_rows(tui_app *a, int weights)
{
    int n = a->sim ? qd_sim_count(a->sim) : 0;
    trow *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows)
        return;
    for (int i = 0; i < n; i++)
        fill_row(a, i, &rows[i], weights);
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < n; i++) {
        /* the same quantizer is usually at the same index */
        const trow *o = i < a->nrows && !strcmp(a->rows[i].name, rows[i].name) ? &a->rows[i] : NULL;
        for (int k = 0; !o && k < a->nrows; k++)
            if (!strcmp(a->rows[k].name, rows[i].name))
                o = &a->rows[k];
        if (!o)
            continue;
        rows[i].sqnr = o->sqnr;
        rows[i].sens = o->sens;
        if (!weights && rows[i].kind == QD_QK_PARAM) {
            rows[i].smin = o->smin;
            rows[i].smax = o->smax;
            rows[i].count = o->count;
        }
    }
    free(a->rows);
    a->rows = rows;
    a->nrows = n;
    a->gen_rows++;
    a->gen++;
    pthread_mutex_unlock(&a->mu);
}

static void set_metrics(tui_app *a, const qd_qeval_result *r, const char *src, double ms)
{
    pthread_mutex_lock(&a->mu);
    a->have_metrics = r->images > 0;
    a->labeled = r->labeled;
    a->acc = qd_qeval_metric(r);
    a->fp32_acc = r->images ? (double)r->fp32_top1 / (double)r->images : NAN;
    a->agree = r->images ? (double)r->agree / (double)r->images : NAN;
    a->sqnr = r->sqnr_db;
    snprintf(a->metric_src, sizeof a->metric_src, "%s", src);
    a->last_ms = ms;
    a->gen++;
    pthread_mutex_unlock(&a->mu);
}

/* The flowchart's per-quantizer drop and local SQNR, from report.json. */
static void read_report(tui_app *a, int tell)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/report.json", a->report);
    size_t len = 0;
    qd_err e = {0};
    char *text = qd_read_file(p, 256u << 20, &len, &e);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (!j)
        return;
    pthread_mutex_lock(&a->mu);
    const cJSON *pq = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "per_quantizer"), "quantizers"), *it;
    cJSON_ArrayForEach(it, pq) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        const cJSON *d = cJSON_GetObjectItem(it, "enable_one_drop");
        for (int i = 0; name && i < a->nrows; i++)
            if (!strcmp(a->rows[i].name, name))
                a->rows[i].sens = cJSON_IsNumber(d) ? d->valuedouble : NAN;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "tensors")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "local"), "sqnr_db");
        for (int i = 0; name && i < a->nrows; i++)
            if (!strcmp(a->rows[i].name, name))
                a->rows[i].sqnr = cJSON_IsNumber(d) ? d->valuedouble : NAN;
    }
    a->gen_rows++;
    a->gen++;
    pthread_mutex_unlock(&a->mu);
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "recommendations"))
        if (tell && cJSON_IsString(it))
            tui_log(a, "  * %s", it->valuestring);
    cJSON_Delete(j);
}

/* ---- the worker ---- */

static int worker_progress(void *user, int64_t done, int64_t total)
{
    tui_app *a = user;
    pthread_mutex_lock(&a->mu);
    a->done = done;
    a->total = total;
    a->gen++;
    pthread_mutex_unlock(&a->mu);
    return a->cancel != 0;
}

static void free_live(tui_app *a)
{
    qd_live_free(a->live);
    a->live = NULL;
    qd_sim_free(a->sim);
    a->sim = NULL;
}

static sess_ctx ctx(tui_app *a)
{
    return (sess_ctx){.s = a->s, .path = a->path, .quiet = 1};
}

static int live_eval(tui_app *a, qd_err *e)
{
    qd_qeval_result r;
    qd_live_info info;
    double t0 = qd_now_ms();
    int rc = qd_live_eval(a->live, &r, &info, worker_progress, a, e);
    double ms = qd_now_ms() - t0;
    if (rc)
        return rc;
    if (info.stopped)
        return QD_OK; /* Esc, or a newer change: that one evaluates */
    set_metrics(a, &r, "live", ms);
    tui_log(a, "live: %s %.2f%%  agreement %.2f%%  SQNR %.1f dB  (%s%.0f ms, %lld of %lld node runs)",
            r.labeled ? "accuracy" : "agreement", 100 * qd_qeval_metric(&r),
            100.0 * (double)r.agree / (double)(r.images ? r.images : 1), r.sqnr_db, info.full ? "full, " : "", ms,
            (long long)info.nodes_run, (long long)info.nodes_full);
    return QD_OK;
}

/* The session's simulation, its data, the FP32 reference and the live
 * evaluator, from scratch. */
static int build(tui_app *a, qd_err *e)
{
    free_live(a);
    sess_ctx c = ctx(a);
    char mp[4200];
    pthread_mutex_lock(&a->mu);
    snprintf(a->what, sizeof a->what, "calibrating");
    pthread_mutex_unlock(&a->mu);
    if (!(a->sim = sess_sim(&c, "tui", a->threads, 0, e)))
        return e->code;
    if (!a->d) {
        if (!(a->d = qd_data_open(a->s->data, NULL, e)) ||
            (a->s->limit > 0 && qd_data_limit(a->d, a->s->limit, a->s->seed, e)))
            return e->code;
    }
    if (!a->ref.y) {
        pthread_mutex_lock(&a->mu);
        snprintf(a->what, sizeof a->what, "FP32 reference");
        pthread_mutex_unlock(&a->mu);
        qd_graph *g = qd_graph_load(sess_model_path(&c, mp, sizeof mp), e);
        qd_eval_opts eo = {.batch = 64, .nthreads = (int)a->threads, .progress = worker_progress, .user = a};
        int rc = !g || qd_graph_fuse(g, NULL, e) || qd_logits_compute(g, a->d, &eo, &a->ref, e);
        qd_graph_free(g);
        if (rc)
            return e->code ? e->code : QD_EFAIL;
    }
    qd_live_opts lo = {.batch = 64};
    if (!(a->live = qd_live_new(a->sim, a->d, &a->ref, &lo, e)))
        return e->code;
    snapshot_rows(a, 1);
    read_report(a, 0); /* the last flowchart's columns, when there is one */
    pthread_mutex_lock(&a->mu);
    snprintf(a->what, sizeof a->what, "evaluating");
    pthread_mutex_unlock(&a->mu);
    a->stale = 0;
    return live_eval(a, e);
}

static int autosave(tui_app *a, qd_err *e)
{
    return qd_session_write(a->s, a->autosave, e);
}

/* Journal en (when journal), autosave, log its line. */
static int record(tui_app *a, qd_sess_entry *en, int journal, qd_err *e)
{
    int rc = QD_OK;
    if (journal) {
        if (!(rc = qd_session_append(a->s, en, e)))
            rc = autosave(a, e);
        a->unsaved = 1;
        char *line = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&line, &n);
        if (f) {
            sess_entry_print(f, a->s->njournal, &a->s->journal[a->s->njournal - 1]);
            fclose(f);
            tui_log(a, "%s", line);
            free(line);
        }
        if (rc)
            tui_log(a, "autosave failed: %s", e->msg);
    }
    return rc;
}

/* The flowchart's previous report directory is moved aside while it runs
 * (to REPORT.prev): a cancelled or failed run puts it back in place of its
 * partial one, a complete run removes it. A REPORT.prev found here was
 * left by a qdb that was killed during a run: it is kept unless REPORT is
 * whole (has its report.json, written last). */
static int report_aside(tui_app *a, char *prev, size_t n)
{
    char whole[sizeof a->report + 16];
    snprintf(prev, n, "%s.prev", a->report);
    snprintf(whole, sizeof whole, "%s/report.json", a->report);
    if (access(prev, F_OK) == 0 && access(whole, F_OK) != 0) {
        cli_rmtree(a->report);
        if (rename(prev, a->report))
            return 0; /* leave both alone */
    }
    cli_rmtree(prev);
    return rename(a->report, prev) == 0;
}

static void report_back(tui_app *a, const char *prev, int ok)
{
    if (ok) {
        cli_rmtree(prev);
        return;
    }
    cli_rmtree(a->report);
    if (rename(prev, a->report))
        tui_log(a, "the previous report could not be put back: it is in %s (%s)", prev, strerror(errno));
    else
        tui_log(a, "the previous report is back in %s", a->report);
}

static void run_cmd(tui_app *a, qd_err *e)
{
    sess_ctx c = ctx(a);
    qd_sess_entry en;
    int journal = 0;
    char prev[sizeof a->report + 8];
    int aside = 0;
    for (int i = 1; i + 1 < a->jargc && !strcmp(a->jargv[0], "debug"); i++)
        if (!strcmp(a->jargv[i], "--report") && !strcmp(a->jargv[i + 1], a->report))
            aside = report_aside(a, prev, sizeof prev);
    int rc = sess_exec(&c, a->jargc, a->jargv, &en, &journal, e);
    pump_output(a);
    if (rc) {
        if (strncmp(e->msg, "qdb ", 4) == 0) /* already says which command */
            tui_log(a, "%s", e->msg);
        else
            tui_log(a, "%s: %s", a->jargv[0], e->msg);
    }
    if (aside)
        report_back(a, prev, !rc);
    if (rc)
        return;
    const qd_sess_val *v;
    if (!strcmp(a->jargv[0], "eval") && (v = qd_sess_result_get(&en, "accuracy")) && v->type == QD_SV_NUM) {
        /* eval records fractions, as the status bar shows live ones */
        const qd_sess_val *ag = qd_sess_result_get(&en, "agreement"), *sq = qd_sess_result_get(&en, "sqnr_db"),
                          *fp = qd_sess_result_get(&en, "fp32_accuracy");
        pthread_mutex_lock(&a->mu);
        a->have_metrics = 1;
        a->acc = v->num;
        a->agree = ag && ag->type == QD_SV_NUM ? ag->num : NAN;
        a->sqnr = sq && sq->type == QD_SV_NUM ? sq->num : NAN;
        a->fp32_acc = fp && fp->type == QD_SV_NUM ? fp->num : a->fp32_acc;
        snprintf(a->metric_src, sizeof a->metric_src, "eval");
        a->last_ms = en.seconds * 1e3;
        a->gen++;
        pthread_mutex_unlock(&a->mu);
    }
    int changed = en.changes_state;
    if (record(a, &en, journal, e))
        tui_log(a, "%s", e->msg);
    qd_sess_entry_clear(&en);
    if (!strcmp(a->jargv[0], "debug")) {
        tui_log(a, "flowchart report: %s/summary.md", a->report);
        read_report(a, 1);
    }
    if (changed || a->stale) {
        qd_err e2 = {0};
        if (build(a, &e2))
            tui_log(a, "rebuilding the simulation: %s", e2.msg);
    }
}

/* The detail pane's plot of quantizer jargv[0], w x h characters: a
 * weight's per-channel ranges, or an activation's calibration histogram
 * with its range. */
static void plot_job(tui_app *a)
{
    if (!a->sim || a->jargc < 3)
        return;
    int qi = qd_sim_find(a->sim, a->jargv[0]);
    qd_quantizer *q = qi >= 0 ? qd_sim_get(a->sim, qi) : NULL;
    int w = atoi(a->jargv[1]), h = atoi(a->jargv[2]);
    if (!q || w < 20 || h < 4)
        return;
    qv_target t = {.fmt = QV_TEXT, .width = w, .height = h, .color = 0};
    qd_err e = {0};
    int rc = -1;
    if (q->kind == QD_QK_PARAM && q->axis >= 0) {
        qd_tensor *wt = qd_sim_fp32(a->sim, q->value);
        int64_t co = wt && q->axis < wt->ndim ? wt->shape[q->axis] : 0;
        double *b = co > 0 ? malloc(3 * (size_t)co * sizeof *b) : NULL;
        if (b && qd_tensor_channel_stats(wt, q->axis, b, b + co, b + 2 * co) == co) {
            qv_ranges_plot p = {.layer = q->name, .before = {(int)co, b, b + co, b + 2 * co}, .before_label = "channels"};
            rc = qv_plot_ranges(&p, &t, &e);
        }
        free(b);
    } else if (q->stats) {
        const double *counts;
        double lo, hi;
        int nb = qd_stats_hist(q->stats, &counts, &lo, &hi);
        if (nb > 0) {
            const char *names[] = {qd_range_name(q->set.range)};
            double rmin = q->nenc ? q->enc[0].min : lo, rmax = q->nenc ? q->enc[0].max : hi;
            qv_hist_plot p = {.tensor = q->name, .nbins = nb, .lo = lo, .hi = hi, .count = counts, .nranges = q->nenc ? 1 : 0,
                              .range_names = names, .rmin = &rmin, .rmax = &rmax, .log_y = 1};
            rc = qv_plot_hist(&p, &t, &e);
        }
    }
    pthread_mutex_lock(&a->mu);
    free(a->plot);
    a->plot = rc == 0 ? t.text : NULL;
    if (rc)
        free(t.text);
    snprintf(a->plot_name, sizeof a->plot_name, "%s", q->name);
    a->gen++;
    pthread_mutex_unlock(&a->mu);
}

static void *worker(void *arg)
{
    tui_app *a = arg;
    cli_progress_set_hook(worker_progress, a);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->job == J_NONE && !a->quit_worker)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->quit_worker)
            break;
        tjob j = a->job;
        a->job = J_NONE;
        a->running = j;
        a->t0 = qd_now_ms();
        a->done = a->total = 0;
        pthread_mutex_unlock(&a->mu);
        qd_err e = {0};
        int rc = QD_OK;
        if (j == J_BUILD)
            rc = build(a, &e);
        else if (j == J_LIVE) {
            if (!a->live || a->stale)
                rc = build(a, &e);
            else if (!(rc = qd_sim_update(a->sim, &e))) {
                snapshot_rows(a, 0);
                rc = live_eval(a, &e);
            }
        } else if (j == J_CMD)
            run_cmd(a, &e);
        else if (j == J_PLOT)
            plot_job(a);
        if (rc) {
            tui_log(a, "%s", e.msg);
            if (j != J_CMD)
                a->stale = 1;
        }
        pump_output(a);
        pthread_mutex_lock(&a->mu);
        qd_strv_free(a->jargv, a->jargc);
        a->jargv = NULL;
        a->jargc = 0;
        a->busy = 0;
        a->running = J_NONE;
        a->what[0] = 0;
        a->gen++;
    }
    pthread_mutex_unlock(&a->mu);
    cli_progress_set_hook(NULL, NULL);
    return NULL;
}

int tui_busy(tui_app *a)
{
    pthread_mutex_lock(&a->mu);
    int b = a->busy;
    pthread_mutex_unlock(&a->mu);
    return b;
}

int tui_submit(tui_app *a, tjob job, int argc, char **argv, const char *what)
{
    pthread_mutex_lock(&a->mu);
    if (a->busy) {
        pthread_mutex_unlock(&a->mu);
        return -1;
    }
    a->jargv = argc ? qd_strv_dup(argv, argc) : NULL;
    a->jargc = a->jargv ? argc : 0;
    a->job = job;
    a->busy = 1;
    a->cancel = 0;
    snprintf(a->what, sizeof a->what, "%s", what);
    a->t0 = qd_now_ms();
    a->done = a->total = 0;
    a->gen++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

void tui_cancel_wait(tui_app *a)
{
    a->cancel = 1;
    cli_debug_stop();
    while (tui_busy(a))
        usleep(2000);
    a->cancel = 0;
}

int tui_command(tui_app *a, int argc, char **argv)
{
    if (tui_busy(a))
        return -1;
    sess_ctx c = ctx(a);
    c.sim = a->stale ? NULL : a->sim;
    qd_sess_entry en;
    int journal = 0;
    qd_err e = {0};
    int rc = sess_exec(&c, argc, argv, &en, &journal, &e);
    pump_output(a);
    if (rc) {
        tui_log(a, "%s", e.msg);
        snprintf(a->msg, sizeof a->msg, "%s", e.msg);
        return rc;
    }
    int changed = en.changes_state;
    if (record(a, &en, journal, &e))
        snprintf(a->msg, sizeof a->msg, "%s", e.msg);
    qd_sess_entry_clear(&en);
    if (c.sim_applied) {
        snapshot_rows(a, 0); /* the worker is idle: the table shows the new settings at once */
        tui_submit(a, J_LIVE, 0, NULL, "re-evaluating");
    }
    else if (changed) {
        a->stale = 1;
        tui_submit(a, J_BUILD, 0, NULL, "rebuilding");
    }
    return QD_OK;
}

int tui_save(tui_app *a)
{
    qd_err e = {0};
    if (tui_busy(a)) {
        snprintf(a->msg, sizeof a->msg, "busy: save when the work is done (Esc cancels it)");
        return -1;
    }
    if (qd_session_write(a->s, a->path, &e)) {
        snprintf(a->msg, sizeof a->msg, "%s", e.msg);
        tui_log(a, "%s", e.msg);
        return -1;
    }
    a->unsaved = 0;
    snprintf(a->msg, sizeof a->msg, "saved %s (%d journal entries)", a->path, a->s->njournal);
    tui_log(a, "%s", a->msg);
    return 0;
}

/* ---- the main loop ---- */

/* When idle and the selection rests, plot it for the detail pane. */
static void want_plot(tui_app *a)
{
    static int has_gnuplot = -1;
    if (has_gnuplot < 0)
        has_gnuplot = qv_gnuplot_has(QV_TEXT);
    if (!has_gnuplot || a->help || a->cmd_on || a->plot_w < 20 || a->stale || !a->sim)
        return;
    pthread_mutex_lock(&a->mu);
    const trow *r = a->nview > 0 && a->sel < a->nview ? &a->rows[a->view[a->sel]] : NULL;
    char name[sizeof r->name];
    int want = r && !a->busy && (strcmp(a->plot_name, r->name) || a->plot_gen != a->gen_rows || a->plot_size != a->plot_w * 1000 + a->plot_h);
    if (want)
        snprintf(name, sizeof name, "%s", r->name);
    pthread_mutex_unlock(&a->mu);
    if (!want)
        return;
    char w[16], h[16];
    snprintf(w, sizeof w, "%d", a->plot_w);
    snprintf(h, sizeof h, "%d", a->plot_h);
    char *v[] = {name, w, h};
    a->plot_gen = a->gen_rows;
    a->plot_size = a->plot_w * 1000 + a->plot_h;
    tui_submit(a, J_PLOT, 3, v, "plotting");
}

static int loop(tui_app *a)
{
    int quit = 0;
    while (!quit && !got_signal) {
        pump_output(a);
        tui_draw(a);
        int ch = wgetch(stdscr);
        if (ch == ERR) {
            want_plot(a);
            continue;
        }
        quit = tui_key(a, ch);
    }
    return got_signal ? 128 + got_signal : 0;
}

static void app_free(tui_app *a)
{
    if (a->started) {
        a->cancel = 1;
        cli_debug_stop();
        pthread_mutex_lock(&a->mu);
        a->quit_worker = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->th, NULL);
    }
    free_live(a);
    qd_data_free(a->d);
    qd_logits_free(&a->ref);
    qd_session_free(a->s);
    free(a->path);
    free(a->autosave);
    free(a->rows);
    free(a->view);
    free(a->plot);
    for (int i = 0; i < a->nlog; i++)
        free(a->log[i]);
    for (int i = 0; i < a->nhist; i++)
        free(a->hist[i]);
    qd_strv_free(a->jargv, a->jargc);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

/* Run the TUI on a->s (its path and autosave set); frees a. */
static int run_app(tui_app *a, int lock, qd_err *e)
{
    int rc = QD_OK;
    if (autosave(a, e)) {
        rc = e->code;
        goto out;
    }
    const char *b = strrchr(a->s->model, '/');
    snprintf(a->title_model, sizeof a->title_model, "%s", b ? b + 1 : a->s->model);
    snprintf(a->title_data, sizeof a->title_data, "%s, %lld images", a->s->data, (long long)a->s->images);
    if ((rc = term_start(a, e))) {
        unlink(a->autosave);
        goto out;
    }
    tui_log(a, "qdb %s: %s on %s; session %s (autosaved to %s)", QD_VERSION, a->s->model, a->s->data, a->path,
            a->autosave);
    tui_log(a, "? help   : command   / filter   e evaluate   f flowchart   q quit");
    if (pthread_create(&a->th, NULL, worker, a)) {
        rc = qd_errf(e, QD_EFAIL, "qdb tui: cannot start the worker thread");
        term_restore();
        goto out;
    }
    a->started = 1;
    tui_submit(a, J_BUILD, 0, NULL, "building the simulation");
    int sig = loop(a);
    a->cancel = 1;
    cli_debug_stop();
    term_restore();
    if (sig) {
        /* killed: the journal is in the autosave file */
        fprintf(stderr, "qdb tui: stopped by signal %d; every change is in %s\n", sig - 128, a->autosave);
        /* no waiting for the worker: the autosave is complete (atomic
         * writes) and the lock goes with the process */
        fflush(NULL);
        _exit(sig);
    } else if (a->unsaved != 1) { /* saved, or the user chose to quit without saving */
        unlink(a->autosave);
    } else {
        fprintf(stderr, "qdb tui: quit without saving %s; the journal stays in %s\n", a->path, a->autosave);
    }
out:
    app_free(a);
    qd_session_unlock(lock);
    return rc;
}

static int app_init(tui_app *a, const char *path, long threads, qd_err *e)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->threads = threads;
    size_t n = strlen(path);
    a->path = strdup(path);
    a->autosave = malloc(n + 16);
    if (!a->path || !a->autosave)
        return qd_errf(e, QD_EFAIL, "out of memory");
    snprintf(a->autosave, n + 16, "%s.autosave", path);
    snprintf(a->report, sizeof a->report, "%.*s.report", (int)(n > 5 && !strcmp(path + n - 5, ".json") ? n - 5 : n),
             path);
    a->sort = 0;
    return QD_OK;
}

/* The autosave of an earlier run that did not end cleanly is the user's
 * work: never overwrite it. */
static int check_autosave(tui_app *a, qd_err *e)
{
    if (access(a->autosave, F_OK) == 0)
        return qd_errf(e, QD_EINPUT,
                       "%s: left by a qdb tui that did not quit cleanly: recover it with qdb open %s (or remove it)",
                       a->autosave, a->autosave);
    return QD_OK;
}

static int exec_journal(tui_app *a, int argc, char **argv, qd_err *e)
{
    sess_ctx c = ctx(a);
    qd_sess_entry en;
    int journal;
    if (sess_exec(&c, argc, argv, &en, &journal, e))
        return e->code;
    int rc = journal ? qd_session_append(a->s, &en, e) : QD_OK;
    qd_sess_entry_clear(&en);
    return rc;
}

/* Before the TUI runs: free a, release the lock, the error code. */
static int give_up(tui_app *a, int rc, int lock, qd_err *e)
{
    app_free(a);
    free(a);
    qd_session_unlock(lock);
    return rc ? rc : e->code ? e->code : QD_EFAIL;
}

/* The lock file beside a session never saved is ours to remove. */
static void drop_lock_file(const char *path)
{
    char lp[PATH_MAX + 8];
    snprintf(lp, sizeof lp, "%s.lock", path);
    if (access(path, F_OK) != 0)
        unlink(lp);
}

int tui_open(const char *path, int force, qd_err *e)
{
    tui_app *a = calloc(1, sizeof *a);
    if (!a)
        return qd_errf(e, QD_EFAIL, "out of memory");
    int lock = -1, rc;
    if ((rc = app_init(a, path, 2, e)) || (lock = qd_session_lock(path, e)) < 0 || (rc = check_autosave(a, e)))
        goto fail;
    if (!(a->s = qd_session_read(path, e))) {
        rc = e->code;
        goto fail;
    }
    sess_ctx c = ctx(a);
    c.force = force;
    char msha[65];
    if (!a->s->model) {
        rc = qd_errf(e, QD_EINPUT, "%s: the session has no model yet (qdb do %s load MODEL --data SPEC)", path, path);
        goto fail;
    }
    if ((rc = sess_verify(&c, 1, msha, e)))
        goto fail;
    if (!a->s->quant_on) {
        char *v[] = {"set", "quant", "w8a8"};
        if ((rc = exec_journal(a, 3, v, e)))
            goto fail;
        a->unsaved = 1;
    }
    rc = run_app(a, lock, e);
    free(a);
    return rc;
fail:
    return give_up(a, rc, lock, e);
}

static const char tui_help[] =
    "usage: qdb tui MODEL --data SPEC [options]\n"
    "The interactive debugger on a new session (press ? inside for the keys).\n"
    "  --data SPEC        dataset (e.g. fashion-mnist)\n"
    "  --limit N          evaluation images (default 1000, a seeded subset)\n"
    "  --seed S           picks the subset and the calibration images (default 0)\n"
    "  --quant wNaM       starting quantization (default w8a8)\n"
    "  --session FILE     where w saves the session (default MODEL.qdb.json here;\n"
    "                     every change is autosaved to FILE.autosave until then)\n"
    "  --threads T        worker threads (default 2)\n"
    "Reopen a saved session with qdb open FILE.\n";

static int start_new(const char *model, const char *data, long limit, long seed, const char *quant,
                     const char *session, long threads, qd_err *e)
{
    char path[PATH_MAX];
    if (session)
        snprintf(path, sizeof path, "%s", session);
    else {
        /* MODEL's name here, not over an existing file */
        const char *b = strrchr(model, '/');
        b = b ? b + 1 : model;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".onnx"))
            n -= 5;
        snprintf(path, sizeof path, "%.*s.qdb.json", (int)n, b);
        for (int k = 2; access(path, F_OK) == 0 && k < 1000; k++)
            snprintf(path, sizeof path, "%.*s-%d.qdb.json", (int)n, b, k);
    }
    if (session && access(path, F_OK) == 0)
        return qd_errf(e, QD_EINPUT, "qdb tui: %s exists: open it with qdb open %s, or give another --session",
                       path, path);
    tui_app *a = calloc(1, sizeof *a);
    if (!a)
        return qd_errf(e, QD_EFAIL, "out of memory");
    int lock = -1, rc;
    if ((rc = app_init(a, path, threads, e)) || (lock = qd_session_lock(path, e)) < 0 || (rc = check_autosave(a, e)))
        goto fail;
    if (!(a->s = qd_session_new())) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto fail;
    }
    char lim[32], sd[32];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(sd, sizeof sd, "%ld", seed);
    char *load[] = {"load", (char *)model, "--data", (char *)data, "--limit", lim, "--seed", sd};
    char *q[] = {"set", "quant", (char *)quant};
    if ((rc = exec_journal(a, 8, load, e)) || (rc = exec_journal(a, 3, q, e)))
        goto fail;
    a->unsaved = 1;
    rc = run_app(a, lock, e);
    free(a);
    drop_lock_file(path);
    return rc;
fail:
    if (lock >= 0)
        drop_lock_file(path);
    return give_up(a, rc, lock, e);
}

int tui_cmd(int argc, char **argv, qd_err *e)
{
    opt opts[] = {{.name = "--data", .has_arg = 1},    {.name = "--limit", .has_arg = 1},
                  {.name = "--seed", .has_arg = 1},    {.name = "--quant", .has_arg = 1},
                  {.name = "--session", .has_arg = 1}, {.name = "--threads", .has_arg = 1},
                  {.name = "--help", .has_arg = 0},    {.name = "-h", .has_arg = 0},
                  {0}};
    enum { DATA, LIMIT, SEED, QUANT, SESSION, THREADS, HELP, H };
    args pa;
    if (cli_parse("tui", argc, argv, opts, 1, &pa, e))
        return e->code;
    if (opts[HELP].val || opts[H].val)
        return fputs(tui_help, stdout), QD_OK;
    if (pa.npos != 1)
        return qd_errf(e, QD_EINPUT, "qdb tui: give one MODEL (see qdb tui --help)");
    if (!opts[DATA].val)
        return qd_errf(e, QD_EINPUT, "qdb tui: --data SPEC is required (e.g. --data fashion-mnist)");
    long limit = 1000, seed = 0, threads = 2;
    int wb, ab;
    const char *quant = opts[QUANT].val ? opts[QUANT].val : "w8a8";
    if ((opts[LIMIT].val && cli_parse_int("tui", "--limit", opts[LIMIT].val, 1, 1L << 40, &limit, e)) ||
        (opts[SEED].val && cli_parse_int("tui", "--seed", opts[SEED].val, 0, 1L << 62, &seed, e)) ||
        (opts[THREADS].val && cli_parse_int("tui", "--threads", opts[THREADS].val, 1, 64, &threads, e)) ||
        qd_qsetup_parse_quant(quant, &wb, &ab, e))
        return e->code;
    if (!isatty(0) || !isatty(1))
        return qd_errf(e, QD_EINPUT, "qdb tui: needs a terminal (stdin and stdout); for scripts use qdb do or qdb debug");
    return start_new(pa.pos[0], opts[DATA].val, limit, seed, quant, opts[SESSION].val, threads, e);
}

/* The bundled demo model: in models/ beside the executable or up to two
 * directories above it (build/VARIANT/qdb), else here. */
static const char *demo_model(char *buf, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    for (int up = 0; k > 0 && up < 3; up++) {
        exe[k] = 0;
        char *sl = strrchr(exe, '/');
        if (!sl)
            break;
        *sl = 0;
        k = sl - exe;
        snprintf(buf, n, "%s/models/mobilenet_v2.onnx", exe);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    snprintf(buf, n, "models/mobilenet_v2.onnx");
    return buf;
}

int tui_demo(qd_err *e)
{
    char model[PATH_MAX + 32];
    const char *env = getenv("QDB_DEMO"); /* another demo model (the tests use LeNet) */
    if (env && *env)
        snprintf(model, sizeof model, "%s", env);
    else
        demo_model(model, sizeof model);
    if (access(model, R_OK) != 0)
        return qd_errf(e, QD_EINPUT, "qdb: no bundled demo model at %s (run qdb COMMAND; qdb --help lists them)", model);
    if (isatty(0) && isatty(1))
        return start_new(model, "fashion-mnist", 1000, 0, "w8a8", NULL, 2, e);
    /* no terminal: the flowchart on the demo, its summary on stdout */
    cli_fn debug = cli_command("debug");
    fprintf(stderr, "qdb: no terminal: running the debugging flowchart on the demo (%s, fashion-mnist, 1000 "
                    "images, w8a8) in batch mode; qdb --help lists the commands\n",
            model);
    char *v[] = {"debug", model, "--data", "fashion-mnist", "--limit", "1000", "--target", "w8a8", "--threads", "2"};
    return debug(10, v, e);
}
