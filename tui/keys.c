/* keys.c - the key table (bindings and the help overlay come from it), the
 * actions, the table's filter and sort, and the command line with history
 * and completion. Runs on the UI thread. */
#include <ctype.h>
#include <curses.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "calib.h"

#define CTRL(c) ((c) & 0x1f)
#define ESC 27

/* ---- the table's view ---- */

static const trow *sort_rows;
static int sort_key;

static double sort_val(const trow *r)
{
    double v = sort_key == 2 ? r->sqnr : sort_key == 3 ? -r->sens : r->bits;
    return isnan(v) ? INFINITY : v;
}

static int cmp_view(const void *x, const void *y)
{
    int i = *(const int *)x, j = *(const int *)y;
    const trow *a = &sort_rows[i], *b = &sort_rows[j];
    if (sort_key == 1) {
        int c = strcmp(a->name, b->name);
        if (c)
            return c;
    } else if (sort_key >= 2) {
        double u = sort_val(a), v = sort_val(b);
        if (u != v)
            return u < v ? -1 : 1;
    }
    return i - j;
}

/* Called with mu held. */
void tui_rebuild_view(tui_app *a)
{
    int cur = a->nview > 0 && a->sel < a->nview && a->view ? a->view[a->sel] : -1;
    free(a->view);
    a->view = malloc(((size_t)a->nrows + 1) * sizeof *a->view);
    a->nview = 0;
    for (int i = 0; a->view && i < a->nrows; i++)
        if (!a->filter[0] || strcasestr(a->rows[i].name, a->filter) || strcasestr(a->rows[i].op, a->filter))
            a->view[a->nview++] = i;
    sort_rows = a->rows;
    sort_key = a->sort;
    if (a->view)
        qsort(a->view, (size_t)a->nview, sizeof *a->view, cmp_view);
    for (int k = 0; k < a->nview; k++)
        if (a->view[k] == cur)
            a->sel = k;
    a->view_gen = a->gen_rows;
}

/* ---- actions ---- */

/* A copy of the selected row (the worker may replace the rows meanwhile),
 * or NULL. */
static const trow *selected(tui_app *a)
{
    static trow copy;
    const trow *r = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->view_gen != a->gen_rows)
        tui_rebuild_view(a);
    if (a->nview > 0 && a->sel >= 0 && a->sel < a->nview) {
        copy = a->rows[a->view[a->sel]];
        r = &copy;
    }
    pthread_mutex_unlock(&a->mu);
    return r;
}

static void say(tui_app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(tui_app *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->msg, sizeof a->msg, fmt, ap);
    va_end(ap);
    a->ui_dirty = 1;
}

/* The worker must be idle to change the session: a live evaluation or a
 * plot is cancelled for the new change; other work is not. */
static int idle(tui_app *a)
{
    pthread_mutex_lock(&a->mu);
    int busy = a->busy;
    tjob r = a->running != J_NONE ? a->running : a->job;
    pthread_mutex_unlock(&a->mu);
    if (!busy)
        return 1;
    if (r == J_LIVE || r == J_PLOT) {
        tui_cancel_wait(a);
        return 1;
    }
    say(a, "busy with %s: Esc cancels it", a->what);
    return 0;
}

static void run4(tui_app *a, const char *w0, const char *w1, const char *w2, const char *w3)
{
    char *v[4] = {(char *)w0, (char *)w1, (char *)w2, (char *)w3};
    int n = w3 ? 4 : w2 ? 3 : w1 ? 2 : 1;
    if (!idle(a))
        return;
    a->msg[0] = 0;
    tui_command(a, n, v);
    a->ui_dirty = 1;
}

/* set KEY NAME VALUE on the selected quantizer, remembered for 'a' */
static void set_sel(tui_app *a, const char *key, const char *val)
{
    const trow *r = selected(a);
    if (!r)
        return;
    char name[sizeof r->name];
    snprintf(name, sizeof name, "%s", r->name);
    snprintf(a->last_set, sizeof a->last_set, "%s=%s", key, val);
    a->last_kind = r->kind;
    run4(a, "set", key, name, val);
}

static const int bit_steps[] = {2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 32};
#define NSTEPS ((int)(sizeof bit_steps / sizeof *bit_steps))

static int k_bits(tui_app *a, int up)
{
    const trow *r = selected(a);
    if (!r)
        return 0;
    int b = r->bits, nb = b;
    if (up) {
        for (int i = 0; i < NSTEPS && nb == b; i++)
            if (bit_steps[i] > b)
                nb = bit_steps[i];
    } else
        for (int i = NSTEPS - 1; i >= 0 && nb == b; i--)
            if (bit_steps[i] < b)
                nb = bit_steps[i];
    if (nb == b)
        return say(a, "%s bits: already at the %s", r->name, up ? "top (float)" : "bottom (2)"), 0;
    char v[8];
    snprintf(v, sizeof v, "%d", nb);
    set_sel(a, "bits", v);
    return 0;
}

static int k_up_bits(tui_app *a) { return k_bits(a, 1); }
static int k_down_bits(tui_app *a) { return k_bits(a, 0); }

static int k_toggle(tui_app *a)
{
    const trow *r = selected(a);
    if (r) {
        snprintf(a->last_set, sizeof a->last_set, "enabled=%d", !r->enabled);
        a->last_kind = r->kind;
        char name[sizeof r->name];
        snprintf(name, sizeof name, "%s", r->name);
        run4(a, "set", r->enabled ? "off" : "on", name, NULL);
    }
    return 0;
}

static int k_scheme(tui_app *a)
{
    const trow *r = selected(a);
    if (r)
        set_sel(a, "scheme", r->sym ? "asym" : "sym");
    return 0;
}

static int k_channel(tui_app *a)
{
    const trow *r = selected(a);
    if (r && !r->can_pc)
        return say(a, "%s: per-channel applies to weights with an output-channel axis", r->name), 0;
    if (r)
        set_sel(a, "granularity", r->pc ? "tensor" : "channel");
    return 0;
}

static int k_range(tui_app *a)
{
    const trow *r = selected(a);
    if (r)
        set_sel(a, "range", qd_range_name((qd_range_method)((r->range + 1) % QD_RANGE__COUNT)));
    return 0;
}

static int k_all(tui_app *a)
{
    if (!a->last_set[0])
        return say(a, "a applies your last change to every quantizer of its kind: change one first"), 0;
    char kv[sizeof a->last_set];
    snprintf(kv, sizeof kv, "%s", a->last_set);
    run4(a, "set", a->last_kind == QD_QK_PARAM ? "@weights" : "@activations", kv, NULL);
    return 0;
}

static void job(tui_app *a, const char *what, int argc, char **argv)
{
    if (!idle(a))
        return;
    a->msg[0] = 0;
    if (tui_submit(a, J_CMD, argc, argv, what))
        say(a, "busy: Esc cancels the running work");
}

/* A one-word session command on the worker. */
static int job1(tui_app *a, const char *cmd, const char *what)
{
    char *v[] = {(char *)cmd};
    job(a, what, 1, v);
    return 0;
}

static int k_eval(tui_app *a) { return job1(a, "eval", "eval"); }
static int k_cle(tui_app *a) { return job1(a, "cle", "CLE"); }
static int k_bc(tui_app *a) { return job1(a, "bias-correct", "bias correction"); }
static int k_ada(tui_app *a) { return job1(a, "adaround", "AdaRound"); }

static int k_flow(tui_app *a)
{
    char *v[] = {"debug", "--report", a->report};
    job(a, "flowchart", 3, v);
    return 0;
}

/* The selected quantizer's plot as a PNG beside the session. */
static int k_plot(tui_app *a)
{
    const trow *r = selected(a);
    if (!r)
        return 0;
    if (r->kind == QD_QK_PARAM && r->nch <= 1)
        return say(a, "%s: no channels to plot", r->name), 0;
    static char out[4200], name[160];
    char safe[128];
    snprintf(name, sizeof name, "%s", r->name);
    int k = 0;
    for (const char *p = r->name; *p && k < (int)sizeof safe - 1; p++)
        safe[k++] = isalnum((unsigned char)*p) || *p == '.' || *p == '-' ? *p : '_';
    safe[k] = 0;
    snprintf(out, sizeof out, "%s.%s.png", a->report, safe[0] == '_' ? safe + 1 : safe);
    char *v[] = {"plot", r->kind == QD_QK_PARAM ? "ranges" : "hist", "--layer", name, "-o", out};
    job(a, "plot", 6, v);
    return 0;
}

static int k_export(tui_app *a)
{
    static char out[4200];
    snprintf(out, sizeof out, "%s.bundle", a->report);
    char *v[] = {"export", "bundle", "--out", out, "--force"};
    job(a, "export", 5, v);
    return 0;
}

static int k_undo(tui_app *a)
{
    run4(a, "undo", NULL, NULL, NULL);
    return 0;
}

static int k_save(tui_app *a)
{
    tui_save(a);
    a->ui_dirty = 1;
    return 0;
}

static int k_quit(tui_app *a)
{
    if (!a->unsaved)
        return 1;
    a->asking = 1;
    say(a, "save %s before quitting? y save and quit, n quit without saving, c cancel", a->path);
    return 0;
}

static void move_sel(tui_app *a, int d)
{
    a->sel += d;
    if (a->sel >= a->nview)
        a->sel = a->nview - 1;
    if (a->sel < 0)
        a->sel = 0;
    a->ui_dirty = 1;
    a->msg[0] = 0;
}

static int k_down(tui_app *a) { return move_sel(a, 1), 0; }
static int k_up(tui_app *a) { return move_sel(a, -1), 0; }
static int k_pgdn(tui_app *a) { return move_sel(a, a->table_h > 1 ? a->table_h - 1 : 1), 0; }
static int k_pgup(tui_app *a) { return move_sel(a, -(a->table_h > 1 ? a->table_h - 1 : 1)), 0; }
static int k_top(tui_app *a) { return move_sel(a, -a->nview), 0; }
static int k_bottom(tui_app *a) { return move_sel(a, a->nview), 0; }

static int k_sort(tui_app *a)
{
    pthread_mutex_lock(&a->mu);
    a->sort = (a->sort + 1) % 5;
    tui_rebuild_view(a);
    pthread_mutex_unlock(&a->mu);
    a->ui_dirty = 1;
    return 0;
}

static int k_filter(tui_app *a)
{
    a->cmd_on = '/';
    snprintf(a->filter_was, sizeof a->filter_was, "%s", a->filter);
    snprintf(a->cmd, sizeof a->cmd, "%s", a->filter);
    a->cmd_len = a->cmd_pos = (int)strlen(a->cmd);
    a->ui_dirty = 1;
    return 0;
}

static int k_command(tui_app *a)
{
    a->cmd_on = ':';
    a->cmd[0] = 0;
    a->cmd_len = a->cmd_pos = 0;
    a->hist_at = a->nhist;
    a->ui_dirty = 1;
    return 0;
}

static int k_help(tui_app *a)
{
    a->help = !a->help;
    a->help_top = 0;
    a->ui_dirty = 1;
    return 0;
}

static int k_esc(tui_app *a)
{
    if (a->help) {
        a->help = 0;
    } else if (tui_busy(a)) {
        say(a, "cancelling %s...", a->what);
        tui_draw(a);
        tui_cancel_wait(a);
        say(a, "cancelled");
    } else
        a->msg[0] = 0;
    a->ui_dirty = 1;
    return 0;
}

static int k_redraw(tui_app *a)
{
    clearok(curscr, TRUE);
    a->ui_dirty = 1;
    return 0;
}

typedef struct tkey {
    int key, key2, key3;      /* bindings (0: none) */
    const char *label;        /* as the help shows them */
    const char *help;
    int (*fn)(tui_app *a);    /* returns 1 to quit */
} tkey;

static const tkey keys[] = {
    {'j', KEY_DOWN, 0, "j  Down", "next quantizer", k_down},
    {'k', KEY_UP, 0, "k  Up", "previous quantizer", k_up},
    {CTRL('d'), KEY_NPAGE, 0, "^D PgDn", "page down", k_pgdn},
    {CTRL('u'), KEY_PPAGE, 0, "^U PgUp", "page up", k_pgup},
    {'g', KEY_HOME, 0, "g  Home", "first quantizer", k_top},
    {'G', KEY_END, 0, "G  End", "last quantizer", k_bottom},
    {'/', 0, 0, "/", "filter the table by name or op (Enter keeps it, empty clears)", k_filter},
    {'o', 0, 0, "o", "sort: graph order, name, local SQNR, drop, bits", k_sort},
    {' ', 0, 0, "space", "quantizer on/off (bypass)", k_toggle},
    {'+', '=', 0, "+  =", "more bits (2..8, 10, 12, 16, float)", k_up_bits},
    {'-', 0, 0, "-", "fewer bits", k_down_bits},
    {'s', 0, 0, "s", "scheme: symmetric / asymmetric", k_scheme},
    {'c', 0, 0, "c", "weights: per-channel / per-tensor", k_channel},
    {'r', 0, 0, "r", "range method: minmax, sqnr, percentile, mse, kl", k_range},
    {'a', 0, 0, "a", "apply the last change to every quantizer of that kind", k_all},
    {'e', 0, 0, "e", "evaluate (journaled eval, recalibrated from scratch)", k_eval},
    {'f', 0, 0, "f", "run the debugging flowchart (fills SQNR and drop)", k_flow},
    {'C', 0, 0, "C", "cross-layer equalization", k_cle},
    {'B', 0, 0, "B", "bias correction", k_bc},
    {'A', 0, 0, "A", "AdaRound", k_ada},
    {'p', 0, 0, "p", "plot the quantizer to a PNG file (ranges or histogram)", k_plot},
    {'x', 0, 0, "x", "export the bundle: encodings, QDQ model, config, report", k_export},
    {'u', 0, 0, "u", "undo the last change", k_undo},
    {'w', 0, 0, "w", "save the session", k_save},
    {':', 0, 0, ":", "command line: session commands (Tab completes, Up/Down history)", k_command},
    {'?', KEY_F(1), 0, "?  F1", "this help", k_help},
    {ESC, 0, 0, "Esc", "cancel the running work; close help", k_esc},
    {CTRL('l'), 0, 0, "^L", "redraw", k_redraw},
    {'q', 0, 0, "q", "quit (asks when there are unsaved changes)", k_quit},
};
#define NKEYS ((int)(sizeof keys / sizeof *keys))

int tui_help_lines(const char ***lines)
{
    static const char *out[NKEYS + 16];
    static char buf[NKEYS][128];
    static int n;
    if (!n) {
        for (int i = 0; i < NKEYS; i++) {
            snprintf(buf[i], sizeof buf[i], "  %-10s %s", keys[i].label, keys[i].help);
            out[n++] = buf[i];
        }
        out[n++] = "";
        out[n++] = "  mouse      click selects a row, the wheel scrolls";
        out[n++] = "  Changes re-evaluate live from cached activations (ranges kept";
        out[n++] = "  from calibration); e re-evaluates from scratch. Every change is";
        out[n++] = "  journaled and autosaved; w saves the session file.";
    }
    *lines = out;
    return n;
}

/* ---- the command line ---- */

static void hist_push(tui_app *a, const char *s)
{
    if (!*s || (a->nhist && !strcmp(a->hist[a->nhist - 1], s)))
        return;
    if (a->nhist == TUI_HIST_MAX) {
        free(a->hist[0]);
        memmove(a->hist, a->hist + 1, (TUI_HIST_MAX - 1) * sizeof *a->hist);
        a->nhist--;
    }
    a->hist[a->nhist++] = strdup(s);
}

/* Split a command line into words ('...' and "..." quote). */
static int split(char *s, char **v, int max)
{
    int n = 0;
    while (*s && n < max) {
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        char *w = s, *o = s;
        char q = 0;
        while (*s && (q || !isspace((unsigned char)*s))) {
            if (!q && (*s == '\'' || *s == '"'))
                q = *s++;
            else if (q && *s == q)
                q = 0, s++;
            else
                *o++ = *s++;
        }
        if (*s)
            s++;
        *o = 0;
        v[n++] = w;
    }
    return n;
}

static void run_line(tui_app *a, const char *line)
{
    char buf[sizeof a->cmd];
    snprintf(buf, sizeof buf, "%s", line);
    char *v[64];
    int n = split(buf, v, 64);
    if (!n)
        return;
    tui_log(a, ":%s", line);
    if (!strcmp(v[0], "q") || !strcmp(v[0], "quit"))
        return;
    if (!strcmp(v[0], "w") || !strcmp(v[0], "write")) {
        tui_save(a);
        return;
    }
    /* quick state changes here; measuring and fixing on the worker */
    if (!strcmp(v[0], "set") || !strcmp(v[0], "unset") || !strcmp(v[0], "undo") || !strcmp(v[0], "show") ||
        !strcmp(v[0], "help")) {
        if (!idle(a))
            return;
        tui_command(a, n, v);
        return;
    }
    job(a, v[0], n, v);
}

/* Tab: complete the word before the cursor from the session commands, the
 * set keys, or the quantizer names. */
static void complete(tui_app *a)
{
    static const char *const extra[] = {"bits", "scheme", "granularity", "range", "enabled", "on", "off", "quant",
                                        "per-channel", "@weights", "@activations", "@inputs", "@all", "w", "q", NULL};
    int st = a->cmd_pos;
    while (st > 0 && !isspace((unsigned char)a->cmd[st - 1]))
        st--;
    char word[256];
    snprintf(word, sizeof word, "%.*s", a->cmd_pos - st, a->cmd + st);
    size_t wl = strlen(word);
    int first = 1;
    for (int i = 0; i < st; i++)
        first &= isspace((unsigned char)a->cmd[i]) != 0;
    const char *cand[512];
    int nc = 0;
    for (int i = 0; sess_command_name(i) && nc < 512; i++)
        if (!strncmp(sess_command_name(i), word, wl))
            cand[nc++] = sess_command_name(i);
    if (!first) {
        for (int i = 0; extra[i] && nc < 512; i++)
            if (!strncmp(extra[i], word, wl))
                cand[nc++] = extra[i];
        pthread_mutex_lock(&a->mu);
        for (int i = 0; i < a->nrows && nc < 512; i++)
            if (!strncmp(a->rows[i].name, word, wl))
                cand[nc++] = a->rows[i].name;
        pthread_mutex_unlock(&a->mu);
    }
    if (!nc)
        return;
    /* the longest common prefix */
    size_t l = strlen(cand[0]);
    for (int i = 1; i < nc; i++) {
        size_t k = 0;
        while (k < l && cand[i][k] == cand[0][k])
            k++;
        l = k;
    }
    if (l > wl) {
        char rest[sizeof a->cmd];
        snprintf(rest, sizeof rest, "%s", a->cmd + a->cmd_pos);
        int add = (int)(l - wl);
        if (a->cmd_len + add + (nc == 1) < (int)sizeof a->cmd - 1) {
            memcpy(a->cmd + a->cmd_pos, cand[0] + wl, (size_t)add);
            a->cmd_pos += add;
            if (nc == 1)
                a->cmd[a->cmd_pos++] = ' ';
            snprintf(a->cmd + a->cmd_pos, sizeof a->cmd - (size_t)a->cmd_pos, "%s", rest);
            a->cmd_len = (int)strlen(a->cmd);
        }
    } else if (nc > 1) {
        char b[256];
        int o = 0;
        for (int i = 0; i < nc && o < (int)sizeof b - 40; i++)
            o += snprintf(b + o, sizeof b - (size_t)o, "%s ", cand[i]);
        if (nc > 1)
            snprintf(a->msg, sizeof a->msg, "%d: %s", nc, b);
        tui_log(a, "completions: %s", b);
    }
}

static int cmd_key(tui_app *a, int ch)
{
    a->ui_dirty = 1;
    if (ch == ESC || ch == CTRL('c')) {
        if (a->cmd_on == '/') { /* the filter as it was before / */
            pthread_mutex_lock(&a->mu);
            snprintf(a->filter, sizeof a->filter, "%s", a->filter_was);
            tui_rebuild_view(a);
            pthread_mutex_unlock(&a->mu);
        }
        a->cmd_on = 0;
        return 0;
    }
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        int kind = a->cmd_on;
        a->cmd_on = 0;
        if (kind == '/') {
            pthread_mutex_lock(&a->mu);
            snprintf(a->filter, sizeof a->filter, "%s", a->cmd);
            tui_rebuild_view(a);
            a->sel = 0;
            pthread_mutex_unlock(&a->mu);
            return 0;
        }
        hist_push(a, a->cmd);
        a->msg[0] = 0; /* completions listed while typing */
        char line[sizeof a->cmd];
        snprintf(line, sizeof line, "%s", a->cmd);
        if (!strcmp(line, "q") || !strcmp(line, "quit"))
            return k_quit(a);
        if (!strcmp(line, "q!")) {
            a->unsaved = a->unsaved ? 2 : 0; /* quit without saving, as q then n */
            return 1;
        }
        run_line(a, line);
        return 0;
    }
    if (ch == KEY_BACKSPACE || ch == 127 || ch == CTRL('h')) {
        if (a->cmd_pos > 0) {
            memmove(a->cmd + a->cmd_pos - 1, a->cmd + a->cmd_pos, (size_t)(a->cmd_len - a->cmd_pos + 1));
            a->cmd_pos--;
            a->cmd_len--;
        } else if (!a->cmd_len)
            a->cmd_on = 0;
    } else if (ch == KEY_DC) {
        if (a->cmd_pos < a->cmd_len) {
            memmove(a->cmd + a->cmd_pos, a->cmd + a->cmd_pos + 1, (size_t)(a->cmd_len - a->cmd_pos));
            a->cmd_len--;
        }
    } else if (ch == KEY_LEFT) {
        a->cmd_pos -= a->cmd_pos > 0;
    } else if (ch == KEY_RIGHT) {
        a->cmd_pos += a->cmd_pos < a->cmd_len;
    } else if (ch == KEY_HOME || ch == CTRL('a')) {
        a->cmd_pos = 0;
    } else if (ch == KEY_END || ch == CTRL('e')) {
        a->cmd_pos = a->cmd_len;
    } else if (ch == CTRL('u')) {
        a->cmd[0] = 0;
        a->cmd_len = a->cmd_pos = 0;
    } else if ((ch == KEY_UP || ch == KEY_DOWN) && a->cmd_on == ':') {
        int at = a->hist_at + (ch == KEY_UP ? -1 : 1);
        if (at >= 0 && at <= a->nhist) {
            a->hist_at = at;
            snprintf(a->cmd, sizeof a->cmd, "%s", at < a->nhist ? a->hist[at] : "");
            a->cmd_len = a->cmd_pos = (int)strlen(a->cmd);
        }
    } else if (ch == '\t' && a->cmd_on == ':') {
        complete(a);
    } else if (ch >= 32 && ch < 256 && a->cmd_len < (int)sizeof a->cmd - 1) {
        memmove(a->cmd + a->cmd_pos + 1, a->cmd + a->cmd_pos, (size_t)(a->cmd_len - a->cmd_pos + 1));
        a->cmd[a->cmd_pos++] = (char)ch;
        a->cmd_len++;
    }
    if (a->cmd_on == '/') { /* the filter follows the typing */
        pthread_mutex_lock(&a->mu);
        snprintf(a->filter, sizeof a->filter, "%s", a->cmd);
        tui_rebuild_view(a);
        pthread_mutex_unlock(&a->mu);
    }
    return 0;
}

static int mouse(tui_app *a)
{
    MEVENT ev;
    if (getmouse(&ev) != OK)
        return 0;
    if (ev.bstate & BUTTON4_PRESSED)
        move_sel(a, -3);
    else if (ev.bstate & BUTTON5_PRESSED)
        move_sel(a, 3);
    else if (ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_DOUBLE_CLICKED)) {
        int k = a->top + ev.y - a->table_y0;
        if (ev.y >= a->table_y0 && ev.y < a->table_y0 + a->table_h && k < a->nview) {
            a->sel = k;
            a->ui_dirty = 1;
        }
    }
    return 0;
}

int tui_key(tui_app *a, int ch)
{
    if (ch == KEY_RESIZE) {
        a->ui_dirty = 1;
        return 0;
    }
    if (a->cmd_on)
        return cmd_key(a, ch);
    if (a->asking) {
        a->asking = 0;
        a->msg[0] = 0;
        a->ui_dirty = 1;
        if (ch == 'y' || ch == 'Y')
            return tui_save(a) == 0;
        if (ch == 'n' || ch == 'N') {
            a->unsaved = 2; /* quit without saving: the autosave goes too */
            return 1;
        }
        say(a, "quit cancelled");
        return 0;
    }
    if (ch == KEY_MOUSE)
        return mouse(a);
    if (a->help && (ch == 'j' || ch == KEY_DOWN || ch == 'k' || ch == KEY_UP)) {
        a->help_top += ch == 'j' || ch == KEY_DOWN ? 1 : -1;
        a->ui_dirty = 1;
        return 0;
    }
    if (ch == CTRL('c'))
        return tui_busy(a) ? k_esc(a) : k_quit(a);
    for (int i = 0; i < NKEYS; i++)
        if (ch == keys[i].key || (keys[i].key2 && ch == keys[i].key2) || (keys[i].key3 && ch == keys[i].key3)) {
            if (a->help && keys[i].fn != k_help && keys[i].fn != k_esc)
                a->help = 0;
            return keys[i].fn(a);
        }
    say(a, "unbound key (? lists the keys)");
    return 0;
}
