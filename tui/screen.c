/* screen.c - drawing: title, quantizer table, detail pane (encoding,
 * statistics, a text plot), log, status bar, message or command line, and
 * the help overlay. Reads only the snapshot (app.h) under its mutex. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "calib.h"
#include "util.h"

enum { C_TITLE = 1, C_HEAD, C_SEL, C_OFF, C_BAD, C_GOOD, C_DIM, C_BUSY };

void tui_colors(tui_app *a)
{
    if (a->no_color || !has_colors())
        return;
    start_color();
    use_default_colors();
    init_pair(C_TITLE, COLOR_BLACK, COLOR_CYAN);
    init_pair(C_HEAD, COLOR_CYAN, -1);
    init_pair(C_SEL, COLOR_BLACK, COLOR_YELLOW);
    init_pair(C_OFF, COLOR_BLUE, -1);
    init_pair(C_BAD, COLOR_RED, -1);
    init_pair(C_GOOD, COLOR_GREEN, -1);
    init_pair(C_DIM, COLOR_WHITE, -1);
    init_pair(C_BUSY, COLOR_BLACK, COLOR_GREEN);
}

/* A colour pair, or a monochrome attribute when colours are off. */
static attr_t col(const tui_app *a, int pair, attr_t mono)
{
    return a->no_color || !has_colors() ? mono : COLOR_PAIR(pair);
}

/* text clipped to w columns at (y, x), padded with spaces */
static void put(int y, int x, int w, const char *text)
{
    if (w <= 0)
        return;
    mvprintw(y, x, "%-*.*s", w, w, text);
}

static const char *kind_short(int k)
{
    return k == QD_QK_PARAM ? "W" : k == QD_QK_INPUT ? "I" : "A";
}

static void fmt_num(char *b, size_t n, double x, const char *f)
{
    if (isnan(x))
        snprintf(b, n, "-");
    else if (isinf(x))
        snprintf(b, n, x > 0 ? "inf" : "-inf");
    else
        snprintf(b, n, f, x);
}

/* name in at most w columns: its start and end around a '~' when longer */
static void elide(char *out, size_t n, const char *name, int w)
{
    int len = (int)strlen(name);
    if (len <= w || w < 5)
        snprintf(out, n, "%.*s", w, name);
    else
        snprintf(out, n, "%.*s~%s", w / 2 - 1, name, name + len - (w - w / 2));
}

/* Table columns: name | op | k | bits | sch | gran | range | on | SQNR | drop */
static void draw_table(tui_app *a, int y0, int h, int w)
{
    int namew = w - 55;
    if (namew < 16)
        namew = 16;
    attron(col(a, C_HEAD, A_BOLD));
    char head[512];
    static const char *const sorts[] = {"graph order", "name", "local SQNR", "drop", "bits"};
    snprintf(head, sizeof head, " %-*.*s %-10s %1s %4s %4s %4s %-7s %3s %6s %6s", namew, namew, "quantizer", "op",
             "k", "bits", "sch", "gran", "range", "on", "SQNR", "drop");
    put(y0, 0, w, head);
    attroff(col(a, C_HEAD, A_BOLD));
    snprintf(a->table_tag, sizeof a->table_tag, " %d/%d%s%s%s sorted by %s ", a->nview, a->nrows,
             a->filter[0] ? " matching '" : "", a->filter, a->filter[0] ? "'," : ",", sorts[a->sort]);
    if (a->sel >= a->nview)
        a->sel = a->nview - 1;
    if (a->sel < 0)
        a->sel = 0;
    if (a->sel < a->top)
        a->top = a->sel;
    if (a->sel >= a->top + h)
        a->top = a->sel - h + 1;
    if (a->top < 0)
        a->top = 0;
    for (int i = 0; i < h; i++) {
        int k = a->top + i;
        move(y0 + 1 + i, 0);
        clrtoeol();
        if (k >= a->nview)
            continue;
        const trow *r = &a->rows[a->view[k]];
        char bits[8], sq[16], dr[16], line[640];
        if (r->bits == 32)
            snprintf(bits, sizeof bits, "f32");
        else
            snprintf(bits, sizeof bits, "%d", r->bits);
        fmt_num(sq, sizeof sq, r->sqnr, "%.1f");
        fmt_num(dr, sizeof dr, r->sens, "%.2f");
        char name[256];
        elide(name, sizeof name, r->name, namew);
        snprintf(line, sizeof line, " %-*s %-10.10s %1s %4s %4s %4s %-7.7s %3s %6s %6s", namew, name, r->op,
                 kind_short(r->kind), bits, r->sym ? "sym" : "asym", r->can_pc ? (r->pc ? "chan" : "tens") : "-",
                 r->range == QD_RANGE_PERCENTILE ? "pctl" : qd_range_name((qd_range_method)r->range),
                 r->enabled ? "on" : "off", sq, dr);
        attr_t at = k == a->sel ? col(a, C_SEL, A_REVERSE) : !r->enabled ? col(a, C_OFF, A_DIM) : 0;
        if (at)
            attron(at);
        put(y0 + 1 + i, 0, w, line);
        if (at)
            attroff(at);
        if (k != a->sel && !isnan(r->sens) && r->sens >= 1.0) {
            attron(col(a, C_BAD, A_BOLD));
            mvprintw(y0 + 1 + i, w - 7, "%6s", dr);
            attroff(col(a, C_BAD, A_BOLD));
        }
    }
}

static void draw_detail(tui_app *a, int y0, int h, int w)
{
    attron(col(a, C_HEAD, A_BOLD));
    mvhline(y0, 0, '-', w);
    const trow *r = a->nview > 0 && a->sel < a->nview ? &a->rows[a->view[a->sel]] : NULL;
    int tl = (int)strlen(a->table_tag);
    mvprintw(y0, 2, " %.*s ", w - tl - 8 > 0 ? w - tl - 8 : 0, r ? r->name : "no quantizer");
    if (tl < w - 10)
        mvprintw(y0, w - tl - 1, "%s", a->table_tag);
    attroff(col(a, C_HEAD, A_BOLD));
    for (int i = 1; i < h; i++) {
        move(y0 + i, 0);
        clrtoeol();
    }
    if (!r)
        return;
    int lw = w >= 100 ? 46 : w;
    char b[512], s1[32], s2[32];
    snprintf(b, sizeof b, " %s %s (%s)", r->kind == QD_QK_PARAM ? "weight of" : r->kind == QD_QK_INPUT ? "model input" : "output of",
             r->op, r->enabled ? "on" : "bypassed");
    put(y0 + 1, 0, lw, b);
    snprintf(b, sizeof b, " %s%d bits, %s, %s, range %s", r->bits == 32 ? "float " : "", r->bits,
             r->sym ? "symmetric" : "asymmetric", r->can_pc ? (r->pc ? "per channel" : "per tensor") : "per tensor",
             qd_range_name((qd_range_method)r->range));
    put(y0 + 2, 0, lw, b);
    if (r->nenc > 0)
        snprintf(b, sizeof b, " encoding%s: [%.5g, %.5g] scale %.4g offset %d", r->nenc > 1 ? " (channel 0)" : "",
                 r->emin, r->emax, r->scale, r->offset);
    else
        snprintf(b, sizeof b, " encoding: none yet");
    put(y0 + 3, 0, lw, b);
    fmt_num(s1, sizeof s1, r->smin, "%.5g");
    fmt_num(s2, sizeof s2, r->smax, "%.5g");
    snprintf(b, sizeof b, " %s: min %s max %s over %lld values%s", r->kind == QD_QK_PARAM ? "weights" : "calibration", s1,
             s2, (long long)r->count, r->nch > 1 ? "" : "");
    put(y0 + 4, 0, lw, b);
    if (r->nch > 1) {
        snprintf(b, sizeof b, " channels: %lld (%s)", (long long)r->nch, r->pc ? "one encoding each" : "one encoding");
        put(y0 + 5, 0, lw, b);
    }
    fmt_num(s1, sizeof s1, r->sqnr, "%.1f dB");
    fmt_num(s2, sizeof s2, r->sens, "%.2f points");
    snprintf(b, sizeof b, " local SQNR %s, alone costs %s%s", s1, s2, isnan(r->sens) ? " (f: flowchart)" : "");
    put(y0 + 6, 0, lw, b);
    if (lw == w || h < 3)
        return;
    /* the plot beside it */
    int pw = w - lw - 1, ph = h - 1;
    if (a->plot && !strcmp(a->plot_name, r->name)) {
        const char *p = a->plot;
        while (*p == '\f' || *p == '\n' || *p == '\r')
            p++;
        for (int i = 0; i < ph && *p; i++) {
            const char *nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);
            mvprintw(y0 + 1 + i, lw + 1, "%.*s", n < pw ? n : pw, p);
            p = nl ? nl + 1 : p + n;
        }
    } else {
        attron(col(a, C_DIM, A_DIM));
        mvprintw(y0 + 1 + ph / 2, lw + 1 + (pw > 24 ? (pw - 24) / 2 : 0), "%.*s", pw, "(plot when idle)");
        attroff(col(a, C_DIM, A_DIM));
    }
    a->plot_w = pw;
    a->plot_h = ph;
}

static void draw_log(tui_app *a, int y0, int h, int w)
{
    attron(col(a, C_HEAD, A_BOLD));
    mvhline(y0, 0, '-', w);
    mvprintw(y0, 2, " log ");
    attroff(col(a, C_HEAD, A_BOLD));
    for (int i = 0; i < h - 1; i++) {
        int k = a->nlog - (h - 1) + i;
        put(y0 + 1 + i, 0, w, k >= 0 ? a->log[k] : "");
    }
}

static void draw_status(tui_app *a, int y, int w)
{
    char b[512], m[64];
    int o = 0;
    if (a->have_metrics) {
        o += snprintf(b + o, sizeof b - o, " %s %.2f%% (%s", a->labeled ? "acc" : "agreement", 100 * a->acc,
                      a->metric_src);
        if (a->last_ms > 0)
            o += snprintf(b + o, sizeof b - o, ", %.0f ms", a->last_ms);
        o += snprintf(b + o, sizeof b - o, ")  FP32 %.2f%%  agree %.2f%%  SQNR %.1f dB", 100 * a->fp32_acc,
                      100 * a->agree, a->sqnr);
    } else
        o += snprintf(b + o, sizeof b - o, " no evaluation yet");
    if (a->unsaved)
        o += snprintf(b + o, sizeof b - o, "  [unsaved]");
    attron(col(a, C_TITLE, A_REVERSE));
    put(y, 0, w, b);
    attroff(col(a, C_TITLE, A_REVERSE));
    if (a->busy) {
        double el = (qd_now_ms() - a->t0) / 1e3;
        int n = 0;
        if (a->total > 0) {
            double f = (double)a->done / (double)a->total;
            int bw = 10, fill = (int)(bw * f);
            double eta = f > 0 ? el / f - el : 0;
            n = snprintf(m, sizeof m, " %s [%.*s%*s] %.0f%% ETA %.0fs ", a->what, fill, "##########", bw - fill, "",
                         100 * f, eta);
        } else
            n = snprintf(m, sizeof m, " %s %.1fs ", a->what, el);
        if (n < w / 2) {
            attron(col(a, C_BUSY, A_BOLD | A_REVERSE));
            mvprintw(y, w - n, "%s", m);
            attroff(col(a, C_BUSY, A_BOLD | A_REVERSE));
        }
    }
}

static void draw_cmdline(tui_app *a, int y, int w)
{
    move(y, 0);
    clrtoeol();
    if (a->cmd_on) {
        char b[600];
        snprintf(b, sizeof b, "%c%s", a->cmd_on, a->cmd);
        int off = a->cmd_pos + 1 >= w ? a->cmd_pos + 2 - w : 0;
        put(y, 0, w, b + off);
        curs_set(1);
        move(y, a->cmd_pos + 1 - off);
        return;
    }
    curs_set(0);
    if (a->asking)
        put(y, 0, w, a->msg);
    else if (a->msg[0])
        put(y, 0, w, a->msg);
    else {
        attron(col(a, C_DIM, A_DIM));
        put(y, 0, w, " ? help  j/k move  space on/off  +/- bits  s scheme  c channel  r range  e eval  f flowchart  : command  q quit");
        attroff(col(a, C_DIM, A_DIM));
    }
}

static void draw_help(tui_app *a, int lines, int cols)
{
    const char **text;
    int n = tui_help_lines(&text);
    int w = cols - 8 < 76 ? cols - 8 : 76, h = lines - 4;
    int x0 = (cols - w) / 2, y0 = 2;
    if (a->help_top > n - (h - 2))
        a->help_top = n - (h - 2);
    if (a->help_top < 0)
        a->help_top = 0;
    attron(A_REVERSE);
    for (int i = 0; i < h; i++)
        mvprintw(y0 + i, x0, "%*s", w, "");
    mvprintw(y0, x0 + 2, " qdb keys (j/k scroll, ? or Esc closes) ");
    for (int i = 0; i < h - 2 && a->help_top + i < n; i++)
        mvprintw(y0 + 1 + i, x0 + 1, "%-*.*s", w - 2, w - 2, text[a->help_top + i]);
    attroff(A_REVERSE);
}

void tui_draw(tui_app *a)
{
    static int drawn_gen = -1, drawn_lines, drawn_cols, drawn_busy;
    static double drawn_at;
    pthread_mutex_lock(&a->mu);
    int lines = LINES, cols = COLS;
    /* redraw on change, on resize, and while busy (progress) every 200 ms */
    int again = a->gen != drawn_gen || lines != drawn_lines || cols != drawn_cols || a->busy != drawn_busy ||
                a->ui_dirty || (a->busy && qd_now_ms() - drawn_at > 200);
    if (!again) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    drawn_gen = a->gen;
    drawn_lines = lines;
    drawn_cols = cols;
    drawn_busy = a->busy;
    drawn_at = qd_now_ms();
    a->ui_dirty = 0;
    if (a->view_gen != a->gen_rows)
        tui_rebuild_view(a);
    erase();
    if (cols < 80 || lines < 24) {
        char b[96];
        snprintf(b, sizeof b, "qdb needs at least 80x24 (this is %dx%d)", cols, lines);
        mvprintw(lines / 2, cols > (int)strlen(b) ? (cols - (int)strlen(b)) / 2 : 0, "%.*s", cols, b);
        mvprintw(lines / 2 + 1, 0, "%.*s", cols, "q quits");
        if (a->asking) /* q's question must be seen at any size */
            mvprintw(lines - 1, 0, "%.*s", cols, a->msg);
        pthread_mutex_unlock(&a->mu);
        refresh();
        return;
    }
    char t[600];
    snprintf(t, sizeof t, " qdb %s  %s  |  %s  |  %s%s", QD_VERSION, a->title_model, a->title_data, a->path,
             a->unsaved ? " [+]" : "");
    attron(col(a, C_TITLE, A_REVERSE | A_BOLD));
    put(0, 0, cols, t);
    attroff(col(a, C_TITLE, A_REVERSE | A_BOLD));
    int logh = 5 + (lines - 24) / 4, deth = 8;
    int tabh = lines - 1 - logh - deth - 2;
    draw_table(a, 1, tabh - 1, cols);
    draw_detail(a, 1 + tabh, deth, cols);
    draw_log(a, 1 + tabh + deth, logh, cols);
    draw_status(a, lines - 2, cols);
    if (a->help)
        draw_help(a, lines, cols);
    draw_cmdline(a, lines - 1, cols);
    a->table_y0 = 2;
    a->table_h = tabh - 1;
    pthread_mutex_unlock(&a->mu);
    refresh();
}
