/* viz.c - qdb's plots: a gnuplot script and its data file per plot, side by
 * side, rendered by running gnuplot on the script (see viz.h). */
#include "viz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
    DEF_W = 960, DEF_H = 540,     /* pixels */
    DEF_COLS = 80, DEF_ROWS = 24, /* characters */
    GP_TIMEOUT_MS = 30000,        /* a plot's gnuplot run */
    GP_LIST_TIMEOUT_MS = 10000,   /* `gnuplot -e "set terminal"` */
    NAME_CHARS = 24,              /* longer tic labels are cut in the middle */
    OUT_MAX = 64 << 20,           /* bytes kept of what gnuplot prints */
};

static const struct {
    const char *name, *driver;
} fmts[] = {
    [QV_PNG] = {"png", "pngcairo"}, [QV_SVG] = {"svg", "svg"},
    [QV_PDF] = {"pdf", "pdfcairo"}, [QV_TEXT] = {"text", "dumb"},
    [QV_SIXEL] = {"sixel", "sixelgd"}, [QV_NONE] = {"none", NULL},
};
_Static_assert(sizeof fmts / sizeof fmts[0] == QV_NONE + 1, "one entry per qv_fmt");

/* Line colours (Tableau 10) and point types of linetypes 1.. in every script. */
static const char *const line_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const int line_points[] = {7, 5, 9, 11, 13, 15, 7, 5, 9, 11};
_Static_assert(sizeof line_colors / sizeof *line_colors == sizeof line_points / sizeof *line_points,
               "a point type per colour");
#define C_MARK "#d62728" /* outliers, thresholds, infinities */
#define C_REF "#202020"  /* reference levels (FP32), means */

int qv_fmt_from_path(const char *path)
{
    if (!path)
        return -1;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return -1;
    for (int f = QV_PNG; f <= QV_PDF; f++)
        if (!strcasecmp(dot + 1, fmts[f].name))
            return f;
    return -1;
}

const char *qv_fmt_name(qv_fmt f)
{
    return (unsigned)f <= QV_NONE ? fmts[f].name : "?";
}

const char *qv_gnuplot(void)
{
    const char *s = getenv("QDB_GNUPLOT");
    return s && *s ? s : "gnuplot";
}

/* ---- running a child process ---- */

typedef struct buf {
    char *p; /* malloc'd, NUL-terminated when len > 0 */
    size_t len, cap;
    int full; /* OUT_MAX reached or out of memory: the rest was dropped */
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->full)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = cap <= OUT_MAX ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->full = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* What a child printed and how it ended. */
typedef struct proc {
    buf out, err;  /* stdout (when captured) and stderr */
    int status;    /* waitpid status */
    int timed_out; /* killed after the timeout */
} proc;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the child's pipes until both close or the deadline passes (then
 * kills its process group), and reaps it. */
static void proc_drain(pid_t pid, int errfd, int outfd, long long deadline, proc *p)
{
    struct pollfd fds[2] = {{.fd = errfd, .events = POLLIN}, {.fd = outfd, .events = POLLIN}};
    buf *bufs[2] = {&p->err, &p->out};
    int nopen = 1 + (outfd >= 0);
    while (nopen > 0 && !p->timed_out) {
        long long left = deadline - now_ms();
        int r = left > 0 ? poll(fds, 2, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            p->timed_out = 1;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            char chunk[16384];
            ssize_t k = read(fds[i].fd, chunk, sizeof chunk);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                nopen--;
            } else {
                buf_add(bufs[i], chunk, (size_t)k);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    if (p->timed_out)
        kill(-pid, SIGKILL);
    for (;;) {
        pid_t w = waitpid(pid, &p->status, p->timed_out ? 0 : WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (w == 0 && now_ms() >= deadline) {
            p->timed_out = 1;
            kill(-pid, SIGKILL);
        } else if (w == 0) {
            nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
        }
    }
}

/* Runs argv[0] (searched in PATH) with stdin from /dev/null, stdout into
 * p->out when want_out (else /dev/null) and stderr into p->err, killing it
 * after timeout_ms. Returns 0, or the errno of starting it (ENOENT: no such
 * program). p's buffers are the caller's to free either way. */
static int proc_run(char *const argv[], int want_out, int timeout_ms, proc *p)
{
    memset(p, 0, sizeof *p);
    int ep[2], op[2] = {-1, -1}, rc;
    if (pipe2(ep, O_CLOEXEC))
        return errno;
    if (want_out && pipe2(op, O_CLOEXEC)) {
        rc = errno;
        close(ep[0]);
        close(ep[1]);
        return rc;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (want_out)
        posix_spawn_file_actions_adddup2(&fa, op[1], 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
    posix_spawnattr_t at; /* its own process group: a timeout kills what it started too */
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(ep[1]);
    if (want_out)
        close(op[1]);
    if (rc) {
        close(ep[0]);
        if (want_out)
            close(op[0]);
        return rc;
    }
    proc_drain(pid, ep[0], op[0], now_ms() + timeout_ms, p);
    return 0;
}

static int proc_ok(const proc *p)
{
    return !p->timed_out && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
}

int qv_gnuplot_has(qv_fmt f)
{
    /* The listing of the last command asked about: a bit per qv_fmt whose
     * driver it has, QV_NONE's bit when it ran at all. */
    static char cmd[PATH_MAX];
    static int mask = -1;
    if ((unsigned)f > QV_NONE)
        return 0;
    const char *gp = qv_gnuplot();
    if (mask < 0 || strcmp(cmd, gp) != 0) {
        snprintf(cmd, sizeof cmd, "%s", gp);
        mask = 0;
        char *argv[] = {cmd, "-d", "-e", "set terminal", NULL};
        proc p;
        if (proc_run(argv, 0, GP_LIST_TIMEOUT_MS, &p) == 0 && proc_ok(&p)) {
            mask = 1 << QV_NONE;
            /* lines "    pngcairo  png terminal based on cairo" */
            for (char *line = p.err.p; line && *line;) {
                char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                char *w = line + strspn(line, " \t");
                size_t wl = strcspn(w, " \t\n");
                for (int g = QV_PNG; g < QV_NONE; g++)
                    if (w + wl <= line + len && wl == strlen(fmts[g].driver) &&
                        !strncmp(w, fmts[g].driver, wl))
                        mask |= 1 << g;
                line = end ? end + 1 : line + len;
            }
        }
        free(p.out.p);
        free(p.err.p);
    }
    return (mask >> f) & 1;
}

/* ---- terminal query ---- */

/* 1 when the primary device attributes reply in s ("ESC [ ? 62;4;22 c")
 * lists attribute 4. */
static int da_has_sixel(const char *s)
{
    const char *p = strstr(s, "\033[?");
    if (!p)
        return 0;
    for (p += 3; *p && *p != 'c';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return 0;
        if (v == 4)
            return 1;
        p = *end == ';' ? end + 1 : end;
    }
    return 0;
}

int qv_term_sixel(int fd, int timeout_ms)
{
    const char *env = getenv("QDB_SIXEL");
    if (env && *env)
        return strcmp(env, "0") != 0;
    struct termios old, raw;
    if (!isatty(fd) || tcgetattr(fd, &old))
        return 0;
    raw = old;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &raw))
        return 0;
    char reply[256];
    size_t n = 0;
    if (write(fd, "\033[c", 3) == 3) {
        long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        while (n + 1 < sizeof reply) {
            long long left = deadline - now_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            ssize_t k = read(fd, reply + n, 1);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            n++;
            reply[n] = 0;
            if (reply[n - 1] == 'c' && strstr(reply, "\033[?"))
                break;
        }
    }
    reply[n] = 0;
    tcsetattr(fd, TCSANOW, &old);
    return da_has_sixel(reply);
}

/* ---- writing scripts and data ---- */

/* One plot being written: its files, and the plot command being built. */
typedef struct plot {
    char gp[PATH_MAX], dat[PATH_MAX]; /* script and data */
    char out[PATH_MAX];               /* the output file; "" for TEXT/SIXEL */
    char tmp[PATH_MAX];               /* temporary directory of gp/dat, or "" */
    FILE *g, *d;
    qv_fmt fmt;
    int w, h;                         /* pixels, or characters for TEXT */
    double rm;                        /* pixels of the right margin (key_right), else 0 */
    int nclause;                      /* clauses so far in the plot command */
    locale_t c_loc, old_loc;          /* numbers are written in the C locale */
} plot;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* path with its extension (if any) replaced by ext (".gp"); -1 when too long */
static int swap_ext(char *dst, size_t size, const char *path, const char *ext)
{
    const char *base = base_name(path);
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - path) : strlen(path);
    return snprintf(dst, size, "%.*s%s", (int)stem, path, ext) < (int)size ? 0 : -1;
}

/* s as a single-quoted gnuplot string: '' for a quote; line breaks become spaces */
static void gp_str(FILE *g, const char *s)
{
    fputc('\'', g);
    for (s = s ? s : ""; *s; s++) {
        if (*s == '\'')
            fputc('\'', g);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, g);
    }
    fputc('\'', g);
}

/* A printf-style text as a gnuplot string. */
static void gp_vstr(FILE *g, const char *fmt, va_list ap)
{
    char s[512];
    vsnprintf(s, sizeof s, fmt, ap);
    gp_str(g, s);
}

/* s as a double-quoted string of a data file. gnuplot reads no escaped quote
 * there: " becomes ', \ is doubled, control characters become spaces. */
static void dat_str(FILE *d, const char *s)
{
    fputs(" \"", d);
    for (s = s ? s : ""; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\')
            fputs("\\\\", d);
        else
            fputc(c == '"' ? '\'' : c < ' ' || c == 127 ? ' ' : c, d);
    }
    fputc('"', d);
}

/* A number of a data file; NaN (skipped by gnuplot) when not finite. */
static void dat_num(FILE *d, double v)
{
    if (isfinite(v))
        fprintf(d, " %.9g", v);
    else
        fputs(" NaN", d);
}

static double at(const double *v, int i)
{
    return v ? v[i] : NAN;
}

/* The names along x: tic labels leave out the path components that all
 * names share at the start and at the end ("/features/", "/Conv"). */
typedef struct names {
    const char *const *v;
    int n;
    size_t pre, suf; /* bytes left out at the start and at the end */
} names;

static const char *name_at(const names *nm, int i)
{
    return nm->v[i] ? nm->v[i] : "";
}

static names names_of(const char *const *v, int n)
{
    names nm = {v, n, 0, 0};
    if (n < 2)
        return nm;
    const char *a = name_at(&nm, 0);
    size_t la = strlen(a), pre = la, suf = la;
    for (int i = 1; i < n; i++) {
        const char *b = name_at(&nm, i);
        size_t lb = strlen(b), k = 0;
        while (k < pre && a[k] == b[k])
            k++;
        pre = k;
        for (k = 0; k < suf && k < lb && a[la - 1 - k] == b[lb - 1 - k];)
            k++;
        suf = k;
    }
    while (pre > 0 && a[pre - 1] != '/') /* up to and with a '/' */
        pre--;
    while (suf > 0 && a[la - suf] != '/') /* from a '/' on */
        suf--;
    for (int i = 0; i < n; i++) { /* every label keeps something */
        size_t lb = strlen(name_at(&nm, i));
        if (lb <= pre + suf)
            suf = 0;
        if (lb <= pre)
            pre = 0;
    }
    nm.pre = pre;
    nm.suf = suf;
    return nm;
}

/* Name i's tic label: without the common parts, cut in the middle to
 * NAME_CHARS bytes ("features.12..onv_output_0"), not inside a UTF-8
 * sequence. */
static void name_label(char dst[NAME_CHARS + 1], const names *nm, int i)
{
    const char *s = name_at(nm, i) + nm->pre;
    size_t n = strlen(s) - nm->suf;
    if (n <= NAME_CHARS) {
        snprintf(dst, NAME_CHARS + 1, "%.*s", (int)n, s);
        return;
    }
    size_t head = (NAME_CHARS - 2) / 2, tail = NAME_CHARS - 2 - head;
    while (head > 0 && ((unsigned char)s[head] & 0xc0) == 0x80)
        head--;
    const char *t = s + n - tail;
    while (((unsigned char)*t & 0xc0) == 0x80)
        t++;
    snprintf(dst, NAME_CHARS + 1, "%.*s..%.*s", (int)head, s, (int)(s + n - t), t);
}

/* A data row's leading columns: index, full name, tic label. */
static void dat_name_row(FILE *d, const names *nm, int i)
{
    char label[NAME_CHARS + 1];
    name_label(label, nm, i);
    fprintf(d, "%d", i);
    dat_str(d, name_at(nm, i));
    dat_str(d, label);
}

/* v, or top when v is +inf, then 1 or 0 saying which: a column pair */
static void dat_top(FILE *d, double v, double top)
{
    int inf = isinf(v) && v > 0;
    dat_num(d, inf ? top : v);
    fprintf(d, " %d", inf);
}

/* The finite extent of some values. */
typedef struct span {
    double lo, hi;
} span;

static const span SPAN_EMPTY = {INFINITY, -INFINITY};

static void span_add(span *s, double v)
{
    if (isfinite(v)) {
        s->lo = fmin(s->lo, v);
        s->hi = fmax(s->hi, v);
    }
}

static void span_addv(span *s, const double *v, int n)
{
    for (int i = 0; v && i < n; i++)
        span_add(s, v[i]);
}

/* s widened by frac of its width on each side; [0, 1] when empty, +-1 (or
 * +-10%) around a single value. */
static span span_pad(span s, double frac)
{
    if (s.lo > s.hi)
        return (span){0, 1};
    double w = s.hi - s.lo;
    if (w <= 0)
        w = s.lo != 0 ? fabs(s.lo) * 0.2 / frac : 2 / frac;
    return (span){s.lo - frac * w, s.hi + frac * w};
}

/* Positive values' extent widened by a factor for a log axis; [1, 10]
 * when none. */
static span span_pad_log(const span *pos, double factor)
{
    if (pos->lo > pos->hi)
        return (span){1, 10};
    return (span){pos->lo / factor, pos->hi * factor};
}

static void span_add_pos(span *s, double v)
{
    if (v > 0)
        span_add(s, v);
}

/* Starts the next clause of the current plot command. */
static FILE *clause(plot *pl)
{
    fputs(pl->nclause++ ? ", \\\n     " : "plot ", pl->g);
    return pl->g;
}

/* Ends a clause with its key entry (printf-style; NULL: none). */
static void key(plot *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void key(plot *pl, const char *fmt, ...)
{
    if (!fmt) {
        fputs(" notitle", pl->g);
        return;
    }
    fputs(" title ", pl->g);
    va_list ap;
    va_start(ap, fmt);
    gp_vstr(pl->g, fmt, ap);
    va_end(ap);
}

/* Ends the current plot command. */
static void plot_cmd_end(plot *pl)
{
    fputc('\n', pl->g);
    pl->nclause = 0;
}

/* `set NAME 'text'` with the text escaped (printf-style). */
static void gp_set(plot *pl, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void gp_set(plot *pl, const char *name, const char *fmt, ...)
{
    fprintf(pl->g, "set %s ", name);
    va_list ap;
    va_start(ap, fmt);
    gp_vstr(pl->g, fmt, ap);
    va_end(ap);
    fputc('\n', pl->g);
}

/* The y axis label (printf-style); text terminals print it unrotated,
 * from the top of the axis to the right, on a row between the plot and the
 * title (write_preamble moves text titles a row up). */
static void gp_ylabel(plot *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gp_ylabel(plot *pl, const char *fmt, ...)
{
    fputs(pl->fmt == QV_TEXT ? "set label 1 " : "set ylabel ", pl->g);
    va_list ap;
    va_start(ap, fmt);
    gp_vstr(pl->g, fmt, ap);
    va_end(ap);
    fputs(pl->fmt == QV_TEXT ? " at graph 0, graph 1 offset 0,1 left\n" : "\n", pl->g);
}

/* Writes a horizontal reference line clause at y when y is finite. */
static void ref_line(plot *pl, double y, const char *style, const char *what)
{
    if (!isfinite(y))
        return;
    fprintf(clause(pl), "%.9g with lines %s", y, style);
    key(pl, "%s %.4g", what, y);
}

/* Marks the points of column col (dat_top) that stand for +inf. */
static void inf_marks(plot *pl, int col, const char *title)
{
    fprintf(clause(pl), "dat using 1:($%d > 0 ? $%d : NaN) with points pt 8 ps 1.6 lw 2 lc rgb '" C_MARK "'",
            col + 1, col);
    if (title)
        key(pl, "%s", title);
    else
        key(pl, NULL);
}

/* ---- layout ----
 * The graphic terminals draw a font of p points about p pixels high; the
 * widths below are DejaVu Sans's, measured on pngcairo. gnuplot sizes its
 * margins by the terminal font whatever a label's own font, so the margins
 * around smaller text are set here, in pixels (characters on text). */
enum {
    FONT_PT = 11,   /* the terminal's font (gp_terminal) */
    KEY_PT = 9,     /* a key beside the plot */
    NAME_PT = 9,    /* tic labels of names, at most; 7 at least */
    LEFT_PX = 50,   /* the least left margin gnuplot leaves for y tics and label */
    TITLE_PX = 36,  /* a top margin for the title (gnuplot puts it 1.5 lines up) */
};

/* The width of names (paths, digits, underscores), and of words. */
static double text_w(int chars, int pt)
{
    return chars * 0.7 * pt;
}

static double prose_w(int chars, int pt)
{
    return chars * 0.66 * pt;
}

static double text_h(int pt)
{
    return 1.5 * pt;
}

/* 1, 2 or 5 times a power of ten: the smallest such step that puts at
 * most max tics on [lo, hi]; 0 when there is no such range. */
static double tic_step(double lo, double hi, int max)
{
    double raw = (hi - lo) / (max > 1 ? max - 1 : 1);
    if (!(raw > 0) || !isfinite(raw))
        return 0;
    double p = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 5};
    for (int i = 0; i < 3; i++)
        if (m[i] * p >= raw * (1 - 1e-9))
            return m[i] * p;
    return 10 * p;
}

/* Tics on a linear axis `len` pixels (characters) long over [lo, hi], at
 * least `room` apart. */
static void axis_tics(plot *pl, const char *axis, double lo, double hi, double len, double room)
{
    double st = tic_step(lo, hi, len > room ? (int)(len / room) + 1 : 2);
    if (st > 0)
        fprintf(pl->g, "set %s %.9g\n", axis, st);
}

/* The same on a log axis: every decade, or every m-th when they crowd. */
static void log_tics(plot *pl, const char *axis, double lo, double hi, double len, double room)
{
    int max = len > room ? (int)(len / room) : 1;
    double dec = lo > 0 && hi > lo ? log10(hi / lo) : 0;
    if (dec > max)
        fprintf(pl->g, "set %s %.9g\n", axis, pow(10, ceil(dec / max)));
}

/* The key outside the plot at its right, in a column for entries of up to
 * `chars` characters (pl->rm pixels); on a canvas too narrow for that,
 * inside at the top right. Text plots keep theirs below. */
static void key_right(plot *pl, int chars)
{
    if (pl->fmt == QV_TEXT)
        return;
    /* gnuplot's padding, sample and gap come to about 60 pixels; key
     * text is narrower than names */
    pl->rm = 8 + 60 + prose_w(chars, KEY_PT) + 8;
    if (pl->rm > 0.42 * pl->w) {
        pl->rm = 0;
        fprintf(pl->g, "set key inside top right vertical opaque font ',%d'\n", KEY_PT);
        return;
    }
    fprintf(pl->g, "set rmargin at screen %.4f\n", 1 - pl->rm / pl->w);
    fprintf(pl->g, "set key at screen %.4f, graph 1 left top vertical font ',%d'\n",
            1 - (pl->rm - 8) / pl->w, KEY_PT);
}

/* Writes a vertical reference line clause at x, across [ylo, yhi], when x
 * is finite. */
static void vref_line(plot *pl, double x, double ylo, double yhi, const char *style,
                      const char *what)
{
    if (!isfinite(x))
        return;
    fprintf(clause(pl), "[t=%.9g:%.9g] '+' using (%.9g):(t) with lines %s", ylo, yhi, x, style);
    key(pl, "%s %.4g", what, x);
}

/* The title of an axis of names: what, and what the tic labels leave out. */
static void names_title(char *dst, size_t size, const names *nm, const char *what)
{
    const char *a = name_at(nm, 0);
    if (nm->pre || nm->suf)
        snprintf(dst, size, "%s (names without %.*s%s%.*s)", what, (int)nm->pre, a,
                 nm->pre && nm->suf ? " and " : "", (int)nm->suf, a + strlen(a) - nm->suf);
    else
        snprintf(dst, size, "%s", what);
}

/* Characters (not bytes) of the longest tic label; at least 1. */
static int names_width(const names *nm)
{
    int len = 1;
    for (int i = 0; i < nm->n; i++) {
        char label[NAME_CHARS + 1];
        name_label(label, nm, i);
        int c = 0;
        for (const char *s = label; *s; s++)
            c += ((unsigned char)*s & 0xc0) != 0x80;
        len = c > len ? c : len;
    }
    return len;
}

/* Starts the plot command with the tic labels of an axis ("x" or "y")
 * from column 3 of the data (dat_name_row), at the points of `cols`
 * ("1:(NaN)"), every k-th when k > 1. */
static void name_clause(plot *pl, const char *axis, const char *cols, int k)
{
    if (k > 1) {
        fprintf(pl->g, "# every %d-th name (the data has them all)\n", k);
        fprintf(clause(pl), "dat using %s:%stic(int($1) %% %d == 0 ? stringcolumn(3) : '')", cols,
                axis, k);
    } else {
        fprintf(clause(pl), "dat using %s:%stic(3)", cols, axis);
    }
    key(pl, NULL);
}

/* The x axis of names: sets *k for name_clause and returns the height of
 * the plot area left (pixels; characters on text) for the y tics.
 * Graphic: labels level when they fit, else at 45 degrees, 9 to 7 points,
 * in at most a quarter of the height, every k-th when even 7 points crowd
 * them (less than a line apart); the bottom margin is what they take, the
 * axis title goes under them (inside the canvas), and the x range reaches
 * left far enough for the first one. Text: level, every k-th. */
static double name_tics(plot *pl, const names *nm, const char *xlabel, int *k)
{
    int n = nm->n, len = names_width(nm);
    *k = 1;
    char title[600];
    names_title(title, sizeof title, nm, xlabel);
    if (pl->fmt == QV_TEXT) {
        gp_set(pl, "xlabel", "%s", title);
        fprintf(pl->g, "set xrange [-0.5:%d.5]\nset xtics scale 0.5 norotate\n", n - 1);
        int fit = (pl->w - 12) / (len + 1);
        *k = fit > 0 && n > fit ? (n + fit - 1) / fit : 1;
        return pl->h - 10; /* title, tics, label, key */
    }
    double pw = pl->w - LEFT_PX - pl->rm - 10, s = pw / n;
    double lab = 0, ch = 0, ext = 0;
    int pt, rot = 45;
    for (pt = NAME_PT; pt >= 7; pt--) {
        lab = text_w(len, pt);
        ch = 1.25 * pt;
        if (lab + ch <= s) {
            rot = 0;
            ext = ch;
            break;
        }
        ext = (lab + ch) * M_SQRT1_2;
        if (s * M_SQRT1_2 >= text_h(pt) && ext <= 0.25 * pl->h)
            break;
    }
    if (pt < 7) {
        pt = 7;
        *k = (int)ceil(text_h(pt) / (s * M_SQRT1_2));
    }
    /* room before the first name, in names: (0.5 + left) * pw / (n + left) >= over */
    double left = 0, over = (lab + ch / 2) * M_SQRT1_2 - LEFT_PX + 4;
    if (rot && over > 0 && over < pw)
        left = fmax(0, (over * n - 0.5 * pw) / (pw - over));
    double bottom = 8 + ext + 6 + text_h(FONT_PT) + 4, top = TITLE_PX;
    fprintf(pl->g, "set xrange [%.4g:%d.5]\n", -0.5 - left, n - 1);
    fprintf(pl->g, "set xtics scale 0.5 %s font ',%d'\n", rot ? "rotate by 45 right" : "norotate",
            pt);
    fprintf(pl->g, "set bmargin at screen %.4f\nset tmargin at screen %.4f\n", bottom / pl->h,
            1 - top / pl->h);
    /* centred under the plot, shifted to stay inside the canvas */
    double half = text_w((int)strlen(title), FONT_PT) / 2;
    double cx = fmax(half + 6, fmin((LEFT_PX + 20 + pl->w - pl->rm) / 2, pl->w - 6 - half));
    fputs("set label 2 ", pl->g);
    gp_str(pl->g, title);
    fprintf(pl->g, " at screen %.4f, screen %.4f center\n", cx / pl->w,
            (4 + text_h(FONT_PT) / 2) / pl->h);
    return pl->h - bottom - top;
}

/* The terminal's line of the script. */
static void gp_terminal(plot *pl, int color)
{
    qv_fmt f = pl->fmt;
    if (f == QV_NONE) {
        int p = qv_fmt_from_path(pl->out);
        f = p >= 0 ? (qv_fmt)p : QV_PNG;
    }
    FILE *g = pl->g;
    switch (f) {
    case QV_PNG:
        fprintf(g, "set terminal pngcairo size %d,%d noenhanced font 'Sans,11'\n", pl->w, pl->h);
        break;
    case QV_SVG:
        fprintf(g, "set terminal svg size %d,%d fixed noenhanced font 'Sans,11' background '#ffffff'\n",
                pl->w, pl->h);
        break;
    case QV_PDF:
        fprintf(g, "set terminal pdfcairo size %.4gin,%.4gin noenhanced font 'Sans,11'\n",
                pl->w / 72.0, pl->h / 72.0);
        break;
    case QV_TEXT:
        fprintf(g, "set terminal dumb size %d,%d %s noenhanced\n", pl->w, pl->h,
                color ? "ansi256" : "mono");
        break;
    case QV_SIXEL:
        fprintf(g, "set terminal sixelgd size %d,%d truecolor noenhanced\n", pl->w, pl->h);
        break;
    case QV_NONE:
        break;
    }
    if (pl->out[0]) {
        fputs("set output qdb_dir.", g);
        gp_str(g, base_name(pl->out));
        fputc('\n', g);
    }
}

/* The script's and the data's opening: what the plot is, how to run it
 * again, where the files are, the terminal and the common style. */
static void write_preamble(plot *pl, const char *what, const char *columns, int color)
{
    FILE *g = pl->g;
    fprintf(g, "# %s\n", what);
    fprintf(g, "# generated by qdb; re-render with: gnuplot %s\n", pl->gp);
    fprintf(g, "# (from any directory: the data and the %s are found beside this script)\n",
            pl->out[0] ? "output" : "terminal output");
    fputs("qdb_dir = exists('ARG0') ? ARG0 : ''\n"
          "n = strlen(qdb_dir)\n"
          "while (n > 0 && qdb_dir[n:n] ne '/') { n = n - 1 }\n"
          "qdb_dir = qdb_dir[1:n]\n"
          "dat = qdb_dir.",
          g);
    gp_str(g, base_name(pl->dat));
    fputc('\n', g);
    gp_terminal(pl, color);
    fputs("set encoding utf8\n"
          "set border 3 lc rgb '#404040'\n"
          "set tics nomirror out\n"
          "set key noautotitle samplen 2 below horizontal height 1 Left reverse\n",
          g);
    if (pl->fmt != QV_TEXT) /* dots all over a text plot */
        fputs("set grid back lt 1 lc rgb '#e4e4e4' lw 1\n", g);
    else /* into the empty row above it: a row for the y label (gp_ylabel) */
        fputs("set title offset 0,1\n", g);
    size_t nl = sizeof line_colors / sizeof *line_colors;
    for (size_t i = 0; i < nl; i++)
        fprintf(g, "set linetype %zu lc rgb '%s' lw 2 pt %d ps 0.8\n", i + 1, line_colors[i],
                line_points[i]);
    fprintf(g, "set linetype cycle %zu\n", nl);

    fprintf(pl->d, "# qdb: %s\n# columns: %s\n", what, columns);
}

/* Opens the plot's script and data for target t and writes their opening.
 * On failure nothing is left behind. */
static int plot_open(plot *pl, qv_target *t, const char *what, const char *columns, qd_err *e)
{
    memset(pl, 0, sizeof *pl);
    if (!t || (unsigned)t->fmt > QV_NONE)
        return qd_errf(e, QD_EINPUT, "plot: no target or an unknown format");
    t->text = NULL;
    t->text_len = 0;
    pl->fmt = t->fmt;
    int chars = t->fmt == QV_TEXT;
    pl->w = t->width > 0 ? t->width : chars ? DEF_COLS : DEF_W;
    pl->h = t->height > 0 ? t->height : chars ? DEF_ROWS : DEF_H;
    int to_file = t->fmt != QV_TEXT && t->fmt != QV_SIXEL;
    if (to_file && (!t->path || !*t->path))
        return qd_errf(e, QD_EINPUT, "plot: no output file for %s", qv_fmt_name(t->fmt));

    if (t->path && *t->path) {
        if (swap_ext(pl->gp, sizeof pl->gp, t->path, ".gp") ||
            swap_ext(pl->dat, sizeof pl->dat, t->path, ".dat"))
            return qd_errf(e, QD_EINPUT, "%s: path too long", t->path);
        if (to_file) {
            int f = qv_fmt_from_path(t->path);
            if (t->fmt == QV_NONE && f < 0)
                swap_ext(pl->out, sizeof pl->out, t->path, ".png");
            else
                snprintf(pl->out, sizeof pl->out, "%s", t->path);
            if (!strcmp(pl->out, pl->gp) || !strcmp(pl->out, pl->dat))
                return qd_errf(e, QD_EINPUT, "%s: the output would overwrite its script or data",
                               pl->out);
        }
    } else {
        const char *dir = getenv("TMPDIR");
        snprintf(pl->tmp, sizeof pl->tmp, "%s/qdb-viz-XXXXXX", dir && *dir ? dir : "/tmp");
        if (!mkdtemp(pl->tmp))
            return qd_errf(e, QD_EFAIL, "cannot create a directory %s: %s", pl->tmp,
                           strerror(errno));
        snprintf(pl->gp, sizeof pl->gp, "%s/plot.gp", pl->tmp);
        snprintf(pl->dat, sizeof pl->dat, "%s/plot.dat", pl->tmp);
    }

    const char *bad = NULL;
    if (!(pl->g = fopen(pl->gp, "w")))
        bad = pl->gp;
    else if (!(pl->d = fopen(pl->dat, "w")))
        bad = pl->dat;
    if (bad) {
        int err = errno;
        if (pl->g) {
            fclose(pl->g);
            unlink(pl->gp);
        }
        if (pl->tmp[0])
            rmdir(pl->tmp);
        return qd_errf(e, QD_EINPUT, "cannot write %s: %s", bad, strerror(err));
    }
    pl->c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (pl->c_loc)
        pl->old_loc = uselocale(pl->c_loc);
    write_preamble(pl, what, columns, t->color);
    return QD_OK;
}

/* The last non-empty line of s, into dst. */
static void last_line(char *dst, size_t size, const char *s)
{
    dst[0] = 0;
    const char *end = s ? s + strlen(s) : NULL;
    while (end && end > s) {
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
            end--;
        const char *beg = end;
        while (beg > s && beg[-1] != '\n')
            beg--;
        if (end > beg) {
            snprintf(dst, size, "%.*s", (int)(end - beg), beg);
            return;
        }
        end = beg;
    }
}

/* Runs gnuplot on the script; TEXT/SIXEL: what it prints into t->text.
 * On failure the output file is removed. */
static int plot_render(const plot *pl, qv_target *t, qd_err *e)
{
    char *argv[] = {(char *)qv_gnuplot(), "-d", (char *)pl->gp, NULL};
    int want = !pl->out[0];
    char wrote[2 * PATH_MAX + 32] = "";
    if (!pl->tmp[0])
        snprintf(wrote, sizeof wrote, "; wrote %s and %s", pl->gp, pl->dat);
    proc p;
    int rc = proc_run(argv, want, GP_TIMEOUT_MS, &p);
    if (rc == ENOENT || rc == EACCES || rc == ENOTDIR)
        qd_errf(e, QD_EGNUPLOT, "%s: not found (install gnuplot-nox)%s", argv[0], wrote);
    else if (rc)
        qd_errf(e, QD_EGNUPLOT, "cannot run %s: %s%s", argv[0], strerror(rc), wrote);
    else if (p.timed_out)
        qd_errf(e, QD_EGNUPLOT, "gnuplot timed out after %d s on %s", GP_TIMEOUT_MS / 1000,
                pl->gp);
    else if (!proc_ok(&p)) {
        char why[256];
        last_line(why, sizeof why, p.err.p);
        if (!why[0] && WIFSIGNALED(p.status))
            snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(p.status));
        else if (!why[0])
            snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(p.status));
        qd_errf(e, QD_EGNUPLOT, "gnuplot failed on %s: %s", pl->gp, why);
    } else if (p.out.full)
        qd_errf(e, QD_EFAIL, "gnuplot printed more than %d MB or out of memory", OUT_MAX >> 20);
    else if (want) {
        t->text = p.out.p ? p.out.p : calloc(1, 1);
        t->text_len = p.out.len;
        p.out.p = NULL;
        if (!t->text)
            qd_errf(e, QD_EFAIL, "out of memory");
    }
    free(p.out.p);
    free(p.err.p);
    rc = e ? e->code : QD_OK;
    if (rc && pl->out[0])
        unlink(pl->out);
    return rc;
}

/* Closes the files, renders (unless QV_NONE) and removes a temporary
 * directory. */
static int plot_finish(plot *pl, qv_target *t, qd_err *e)
{
    qd_err local = {0};
    e = e ? e : &local;
    int werr = ferror(pl->g) | ferror(pl->d);
    const char *bad = fclose(pl->g) || werr ? pl->gp : NULL;
    if (fclose(pl->d) && !bad)
        bad = pl->dat;
    if (pl->c_loc) {
        uselocale(pl->old_loc);
        freelocale(pl->c_loc);
    }
    if (bad)
        qd_errf(e, QD_EFAIL, "cannot write %s: %s", bad, strerror(errno ? errno : EIO));
    else if (pl->fmt != QV_NONE)
        plot_render(pl, t, e);
    if (pl->tmp[0]) {
        unlink(pl->gp);
        unlink(pl->dat);
        rmdir(pl->tmp);
    }
    return e->code;
}

/* ---- the plots ---- */

static int check_channels(const qv_channels *c, const char *which, qd_err *e)
{
    if (c->n < 0 || (c->n > 0 && (!c->min || !c->max || !c->mean)))
        return qd_errf(e, QD_EINPUT, "ranges plot: %s: %d channels without min, max and mean",
                       which, c->n);
    return QD_OK;
}

/* One panel of the ranges plot: data block idx. */
static void ranges_panel(plot *pl, const qv_channels *c, int idx, const char *title)
{
    gp_set(pl, "title", "%s", title);
    fprintf(pl->g, "set xrange [-0.5:%d.5]\n", c->n - 1);
    int lw = c->n <= 64 ? 4 : c->n <= 256 ? 2 : 1;
    fprintf(clause(pl), "dat index %d using 1:2:(0):($3-$2) with vectors nohead lt %d lw %d", idx,
            idx + 1, lw);
    key(pl, "min to max");
    fprintf(clause(pl), "dat index %d using 1:4 with points pt 7 ps %s lc rgb '" C_REF "'", idx,
            c->n <= 64 ? "0.5" : "0.25");
    key(pl, "mean");
    plot_cmd_end(pl);
}

int qv_plot_ranges(const qv_ranges_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->before.n <= 0)
        return qd_errf(e, QD_EINPUT, "ranges plot: no channels");
    int rc = check_channels(&p->before, "before", e);
    if (rc || (rc = check_channels(&p->after, "after", e)))
        return rc;
    const char *layer = p->layer ? p->layer : "";
    const char *bl = p->before_label ? p->before_label : "before CLE";
    const char *al = p->after_label ? p->after_label : "after CLE";
    const qv_channels *panels[2] = {&p->before, &p->after};
    int npanels = p->after.n > 0 ? 2 : 1;
    char what[512];
    snprintf(what, sizeof what, "Weight ranges per output channel: %s", layer);
    plot pl;
    rc = plot_open(&pl, t, what, "channel min max mean; index 0: before, index 1: after", e);
    if (rc)
        return rc;

    span y = SPAN_EMPTY;
    for (int k = 0; k < npanels; k++) {
        const qv_channels *c = panels[k];
        fprintf(pl.d, "%s# %s\n", k ? "\n\n" : "", k ? al : bl);
        for (int i = 0; i < c->n; i++) {
            fprintf(pl.d, "%d", i);
            dat_num(pl.d, c->min[i]);
            dat_num(pl.d, c->max[i]);
            dat_num(pl.d, c->mean[i]);
            fputc('\n', pl.d);
        }
        span_addv(&y, c->min, c->n);
        span_addv(&y, c->max, c->n);
    }
    y = span_pad(y, 0.05);

    fputs("set xlabel 'output channel'\n", pl.g);
    gp_ylabel(&pl, "weight value");
    fprintf(pl.g, "set yrange [%.9g:%.9g]\n", y.lo, y.hi);
    fputs("set xzeroaxis lt -1 lc rgb '#808080'\n", pl.g);
    if (npanels == 2) {
        fputs("set multiplot layout 1,2 title ", pl.g);
        gp_str(pl.g, what);
        fputc('\n', pl.g);
        ranges_panel(&pl, &p->before, 0, bl);
        ranges_panel(&pl, &p->after, 1, al);
        fputs("unset multiplot\n", pl.g);
    } else {
        ranges_panel(&pl, &p->before, 0, what);
    }
    return plot_finish(&pl, t, e);
}

int qv_plot_spread(const qv_spread_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->n <= 0)
        return qd_errf(e, QD_EINPUT, "spread plot: no layers");
    if (!p->layers || !p->before)
        return qd_errf(e, QD_EINPUT, "spread plot: no layer names or values");
    double thr = p->outlier > 0 ? p->outlier : 10;
    plot pl;
    int rc = plot_open(&pl, t, "relative weight range per layer (largest channel range / smallest)",
                  "layer name label before before_is_inf after after_is_inf "
                       "(infinite values are written as the top of the axis)", e);
    if (rc)
        return rc;

    names nm = names_of(p->layers, p->n);
    span y = SPAN_EMPTY;
    span_add(&y, thr);
    int ninf = 0;
    for (int i = 0; i < p->n; i++) {
        span_add_pos(&y, p->before[i]);
        span_add_pos(&y, at(p->after, i));
        ninf += isinf(p->before[i]) + isinf(at(p->after, i));
    }
    double top = y.hi * 3; /* where +inf (a channel of range 0) is drawn */
    for (int i = 0; i < p->n; i++) {
        dat_name_row(pl.d, &nm, i);
        dat_top(pl.d, p->before[i], top);
        dat_top(pl.d, at(p->after, i), top);
        fputc('\n', pl.d);
    }
    if (ninf)
        span_add(&y, top);
    y = span_pad_log(&y, 2);

    fputs("set title 'Relative weight range per layer (largest channel range / smallest)'\n"
          "set logscale y\n",
          pl.g);
    gp_ylabel(&pl, "relative range (log scale)");
    fprintf(pl.g, "set yrange [%.9g:%.9g]\nthr = %.9g\n", y.lo, y.hi, thr);
    key_right(&pl, 18);
    if (pl.fmt != QV_TEXT)
        fputs("set style textbox opaque noborder margins 1,1\n", pl.g);
    int k;
    double ph = name_tics(&pl, &nm, "layer", &k);
    log_tics(&pl, "ytics", y.lo, y.hi, ph, 2 * (pl.fmt == QV_TEXT ? 1 : text_h(FONT_PT)));
    name_clause(&pl, "x", "1:(NaN)", k);
    fputs("dat using 1:4 with linespoints lt 1", clause(&pl));
    key(&pl, p->after ? "before CLE" : "relative range");
    if (p->after) {
        fputs("dat using 1:6 with linespoints lt 2", clause(&pl));
        key(&pl, "after CLE");
    }
    for (int col = 4; col <= (p->after ? 6 : 4); col += 2) {
        fprintf(clause(&pl),
                "dat using 1:($%d > thr ? $%d : NaN) with points pt 6 ps 2 lw 2 lc rgb '" C_MARK
                "'",
                col, col);
        if (col == 4)
            key(&pl, "outlier (> %.4g)", thr);
        else
            key(&pl, NULL);
        if (ninf)
            inf_marks(&pl, col, col == 4 ? "range 0 (infinite)" : NULL);
    }
    ref_line(&pl, thr, "lt 3 dt 2 lw 1.5 lc rgb '" C_MARK "'", "threshold"); /* text: '$' */
    /* the outliers' names beside them, over the lines, inside the plot:
     * right of the point in the left half, left of it in the right half */
    for (int half = 0; half < 2; half++) {
        fprintf(clause(&pl),
                "dat using 1:($4 > thr && ($1 < %.1f) == %d ? $4 : NaN):3 with labels %s font ',8' "
                "tc rgb '" C_MARK "'%s",
                p->n / 2.0, !half, half ? "right offset -1.2,0" : "left offset 1.2,0",
                pl.fmt == QV_TEXT ? "" : " boxed");
        key(&pl, NULL);
    }
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}

/* The metric axis of the sensitivity plot: from a bit below the lowest
 * value (0 when they spread over more than half of the highest) to a bit
 * above the highest, the FP32 and quantized levels included. */
static span sens_range(const qv_sens_plot *p)
{
    span v = SPAN_EMPTY;
    span_addv(&v, p->enable_one, p->n);
    span_addv(&v, p->disable_one, p->n);
    span_add(&v, p->fp32);
    span_add(&v, p->quantized);
    if (v.lo > v.hi)
        return (span){0, 1};
    double w = v.hi - v.lo;
    if (w <= 0)
        w = v.lo != 0 ? fabs(v.lo) * 0.2 : 1;
    return (span){v.lo >= 0 && v.lo <= 0.5 * v.hi ? 0 : v.lo - 0.15 * w, v.hi + 0.05 * w};
}

/* Where the rows of the sensitivity plot go: quantizer i at y = y0 + dy * i,
 * its two bars centred at ybar[] from there and 2 * half tall. */
typedef struct sens_rows {
    double y0, dy, ybar[2], half;
    double ylo, yhi; /* the y range, top to bottom */
    double pw;       /* width of the plot area, pixels (characters) */
    int k;           /* every k-th name */
} sens_rows;

/* Lays out the sensitivity plot (margins, title, the heading of the names)
 * for n names of up to len characters, with both bars or one. Graphic: a
 * row per quantizer, names in 9 to 7 points, every k-th when even 7
 * crowd them. Text: a row per bar and a blank row between quantizers when
 * the height allows, else the bars of one on one row; y counts rows. */
static sens_rows sens_layout(plot *pl, int n, int len, int both, const char *heading)
{
    sens_rows r = {.k = 1};
    if (pl->fmt == QV_TEXT) {
        int rows = pl->h - 3 - 6 - 1, per = both ? 2 : 1; /* margins, border */
        double fit = n > 1 ? (rows - 1.0 - per) / (n - 1) : per; /* the last bar inside */
        if (fit >= per)
            r.dy = fmin(floor(fit), per + 1);
        else
            r.dy = fmin(n > 1 ? (rows - 2.0) / (n - 1) : 1, 1);
        r.k = r.dy >= 1 ? 1 : (int)ceil(1 / r.dy);
        r.y0 = 1;
        r.ybar[1] = both && r.dy >= 2;
        r.half = 0.1;
        r.yhi = rows;
        r.pw = pl->w - len - 6;
        fputs("set tmargin 3\nset bmargin 6\nset key height 0\nset label 1 ", pl->g);
        gp_str(pl->g, heading);
        fputs(" at screen 0, graph 1 offset 1,1 left\nset ytics scale 0\n", pl->g);
        return r;
    }
    /* the title (gnuplot puts it 1.5 lines up), then the heading */
    double top = 10 + text_h(FONT_PT) + text_h(KEY_PT), bottom = 3.6 * text_h(FONT_PT);
    double row = (pl->h - top - bottom) / n;
    int pt = row >= 1.35 * NAME_PT ? NAME_PT : row >= 1.35 * 8 ? 8 : 7;
    r.k = row >= 1.25 * pt ? 1 : (int)ceil(1.25 * pt / row);
    r.dy = 1;
    r.ybar[0] = both ? -0.2 : 0;
    r.ybar[1] = both ? 0.2 : 0;
    r.half = both ? 0.18 : 0.35;
    r.ylo = -0.5;
    r.yhi = n - 0.5;
    double lm = 10 + text_w(len, pt) + 12;
    r.pw = pl->w - lm - pl->rm;
    fprintf(pl->g, "set lmargin at screen %.4f\nset tmargin at screen %.4f\n"
                   "set bmargin at screen %.4f\nset label 1 ",
            lm / pl->w, 1 - top / pl->h, bottom / pl->h);
    gp_str(pl->g, heading);
    fprintf(pl->g, " at screen %.4f, graph 1 offset 0,0.7 left font ',%d'\n", 12 / (double)pl->w,
            KEY_PT);
    fprintf(pl->g, "set ytics scale 0 font ',%d'\n", pt);
    return r;
}

/* Per-quantizer sensitivity as horizontal bars, a row per quantizer down
 * the y axis in the caller's order (the most harmful at the top), the names
 * level beside them; the FP32 and quantized levels as lines across. */
int qv_plot_sensitivity(const qv_sens_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->n <= 0)
        return qd_errf(e, QD_EINPUT, "sensitivity plot: no quantizers");
    if (!p->names || (!p->enable_one && !p->disable_one))
        return qd_errf(e, QD_EINPUT, "sensitivity plot: no names, or neither enable-one nor "
                                     "disable-one values");
    const char *metric = p->metric && *p->metric ? p->metric : "metric";
    plot pl;
    int rc = plot_open(&pl, t, "per-quantizer sensitivity (enable-one and disable-one)",
                       "quantizer name label enable_one disable_one", e);
    if (rc)
        return rc;

    names nm = names_of(p->names, p->n);
    for (int i = 0; i < p->n; i++) {
        dat_name_row(pl.d, &nm, i);
        dat_num(pl.d, at(p->enable_one, i));
        dat_num(pl.d, at(p->disable_one, i));
        fputc('\n', pl.d);
    }
    int text = pl.fmt == QV_TEXT, both = p->enable_one && p->disable_one;
    char heading[600];
    names_title(heading, sizeof heading, &nm, "quantizer");
    fputs("set title 'Per-quantizer sensitivity'\n", pl.g);
    key_right(&pl, 16);
    sens_rows r = sens_layout(&pl, p->n, names_width(&nm), both, heading);

    const char *with = both ? "only this quantizer on (enable-one) or all but it (disable-one)"
                       : p->enable_one ? "only this quantizer on (enable-one)"
                                       : "all but this quantizer on (disable-one)";
    int xl = (int)(strlen(metric) + 6 + strlen(with));
    if ((text ? xl : prose_w(xl, FONT_PT)) < pl.w - 4)
        gp_set(&pl, "xlabel", "%s with %s", metric, with);
    else /* the key says which bar is which */
        gp_set(&pl, "xlabel", "%s", metric);
    span x = sens_range(p);
    fprintf(pl.g, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\nxlo = %.9g\n", x.lo, x.hi,
            r.yhi, r.ylo, x.lo);
    fprintf(pl.g, "yrow(i) = %.9g + %.9g * i\n", r.y0, r.dy);
    axis_tics(&pl, "xtics", x.lo, x.hi, r.pw, text ? 8 : 50);
    if (!text)
        fputs("set grid xtics noytics\n", pl.g);
    fputs("set style fill solid 0.85 noborder\n", pl.g);
    name_clause(&pl, "y", "(NaN):(yrow($1))", r.k);
    /* a bar pair per quantizer: enable-one above, disable-one below */
    for (int b = 0; b < 2; b++) {
        if (!(b ? p->disable_one : p->enable_one))
            continue;
        fprintf(clause(&pl),
                "dat using (xlo):(yrow($1)):(xlo):%d:(yrow($1)%+.9g):(yrow($1)%+.9g) "
                "with boxxyerror lt %d",
                4 + b, r.ybar[b] - r.half, r.ybar[b] + r.half, 1 + b);
        key(&pl, b ? "disable-one" : "enable-one");
    }
    vref_line(&pl, p->fp32, r.ylo, r.yhi, "dt 2 lw 2 lc rgb '" C_REF "'", "FP32");
    vref_line(&pl, p->quantized, r.ylo, r.yhi, "dt 4 lw 2 lc rgb '" C_MARK "'", "quantized");
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}

/* Adds v to the sorted distinct values vals[0..*n) (at most max). */
static void add_distinct(double *vals, int *n, int max, double v)
{
    int i = 0;
    while (i < *n && vals[i] < v)
        i++;
    if ((i < *n && vals[i] == v) || !isfinite(v) || *n >= max)
        return;
    memmove(vals + i + 1, vals + i, (size_t)(*n - i) * sizeof *vals);
    vals[i] = v;
    (*n)++;
}

int qv_plot_sweep(const qv_sweep_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->ncurves <= 0 || !p->curves)
        return qd_errf(e, QD_EINPUT, "sweep plot: no curves");
    for (int c = 0; c < p->ncurves; c++) {
        const qv_curve *cv = &p->curves[c];
        if (cv->n < 0 || (cv->n > 0 && (!cv->x || !cv->y)))
            return qd_errf(e, QD_EINPUT, "sweep plot: curve %d (%s): %d points without x and y",
                           c, cv->title ? cv->title : "", cv->n);
    }
    const char *title = p->title && *p->title ? p->title : "Bit-width sweep";
    plot pl;
    char what[600];
    snprintf(what, sizeof what, "sweep: %s", title);
    int rc = plot_open(&pl, t, what, "x y; index i: curve i", e);
    if (rc)
        return rc;

    enum { MAX_TICS = 16 };
    double tics[MAX_TICS + 1];
    int ntics = 0;
    span x = SPAN_EMPTY, y = SPAN_EMPTY;
    for (int c = 0; c < p->ncurves; c++) {
        const qv_curve *cv = &p->curves[c];
        fprintf(pl.d, "%s# curve %d:", c ? "\n\n" : "", c);
        dat_str(pl.d, cv->title);
        fputc('\n', pl.d);
        for (int i = 0; i < cv->n; i++) {
            dat_num(pl.d, cv->x[i]);
            dat_num(pl.d, cv->y[i]);
            fputc('\n', pl.d);
            add_distinct(tics, &ntics, MAX_TICS + 1, cv->x[i]);
        }
        if (cv->n == 0)
            fputs(" NaN NaN\n", pl.d);
        span_addv(&x, cv->x, cv->n);
        span_addv(&y, cv->y, cv->n);
    }
    span_add(&y, p->fp32);
    x = span_pad(x, 0.05);
    y = span_pad(y, 0.08);

    gp_set(&pl, "title", "%s", title);
    gp_set(&pl, "xlabel", "%s", p->xlabel ? p->xlabel : "bits");
    gp_ylabel(&pl, "%s", p->ylabel ? p->ylabel : "metric");
    fprintf(pl.g, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n", x.lo, x.hi, y.lo, y.hi);
    if (ntics > 0 && ntics <= MAX_TICS) {
        fputs("set xtics (", pl.g);
        for (int i = 0; i < ntics; i++)
            fprintf(pl.g, "%s%.9g", i ? ", " : "", tics[i]);
        fputs(")\n", pl.g);
    }
    for (int c = 0; c < p->ncurves; c++) {
        fprintf(clause(&pl), "dat index %d using 1:2 with linespoints lt %d", c, c + 1);
        key(&pl, "%s", p->curves[c].title ? p->curves[c].title : "");
    }
    ref_line(&pl, p->fp32, "dt 2 lw 1.5 lc rgb '" C_REF "'", "FP32");
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}

/* `set xtics ('16' 0, '8' 1)`: integer labels at 0..n-1 */
static void int_tics(FILE *g, const char *axis, const int *v, int n)
{
    fprintf(g, "set %s (", axis);
    for (int i = 0; i < n; i++)
        fprintf(g, "%s'%d' %d", i ? ", " : "", v[i], i);
    fputs(")\n", g);
}

int qv_plot_grid(const qv_grid_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->nw <= 0 || p->na <= 0)
        return qd_errf(e, QD_EINPUT, "grid plot: no bit widths");
    if (!p->wbits || !p->abits || !p->value)
        return qd_errf(e, QD_EINPUT, "grid plot: no bit widths or values");
    const char *metric = p->metric && *p->metric ? p->metric : "metric";
    char what[600];
    snprintf(what, sizeof what, "%s for each weight and activation bit width", metric);
    plot pl;
    int rc = plot_open(&pl, t, what, "iw ia wbits abits value label label_rgb", e);
    if (rc)
        return rc;

    span v = SPAN_EMPTY;
    span_addv(&v, p->value, p->nw * p->na);
    /* cell labels with the same decimals: 0.873, 87.3 */
    double big = fmax(fabs(v.lo), fabs(v.hi));
    const char *lfmt = big < 10 ? "%.3f" : big < 1000 ? "%.1f" : "%.4g";
    if (!(v.lo < v.hi))
        v = span_pad(v, 0.5);
    for (int iw = 0; iw < p->nw; iw++)
        for (int ia = 0; ia < p->na; ia++) {
            double x = p->value[iw * p->na + ia];
            char label[32] = "";
            if (isfinite(x))
                snprintf(label, sizeof label, lfmt, x);
            fprintf(pl.d, "%d %d %d %d", iw, ia, p->wbits[iw], p->abits[ia]);
            dat_num(pl.d, x);
            dat_str(pl.d, label);
            /* dark text on the light (high) end of the palette */
            fprintf(pl.d, " %s\n", (x - v.lo) / (v.hi - v.lo) > 0.6 ? "0x000000" : "0xffffff");
        }

    gp_set(&pl, "title", "%s by weight and activation bits", metric);
    fputs("set xlabel 'A bits'\n", pl.g);
    gp_ylabel(&pl, "W bits");
    gp_set(&pl, "cblabel", "%s", metric);
    int_tics(pl.g, "xtics", p->abits, p->na);
    int_tics(pl.g, "ytics", p->wbits, p->nw);
    fprintf(pl.g, "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n", p->na - 1, p->nw - 1);
    fprintf(pl.g, "set cbrange [%.9g:%.9g]\n", v.lo, v.hi);
    fputs("set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', "
          "1 '#fde725')\n"
          "set style fill solid 1.0 noborder\nunset grid\nset border 15\nset tics scale 0\n",
          pl.g);
    if (pl.fmt == QV_TEXT) { /* no filled cells: a table of values */
        fputs("unset colorbox\n", pl.g);
    } else {
        fputs("dat using 2:1:(0.5):(0.5):5 with boxxyerror fc palette", clause(&pl));
        key(&pl, NULL);
    }
    fputs("dat using 2:1:6:7 with labels tc rgb variable font ',12'", clause(&pl));
    key(&pl, NULL);
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}

int qv_plot_hist(const qv_hist_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->nbins <= 0 || !p->count)
        return qd_errf(e, QD_EINPUT, "histogram plot: no bins");
    if (!isfinite(p->lo) || !isfinite(p->hi) || !(p->lo < p->hi))
        return qd_errf(e, QD_EINPUT, "histogram plot: bad bin range [%g, %g]", p->lo, p->hi);
    if (p->nranges < 0 || (p->nranges > 0 && (!p->rmin || !p->rmax)))
        return qd_errf(e, QD_EINPUT, "histogram plot: %d ranges without min and max",
                       p->nranges);
    const char *tensor = p->tensor ? p->tensor : "";
    int grid = p->nranges > 0 && p->grid_levels >= 2 && p->grid_levels <= 64 &&
               isfinite(p->rmin[0]) && isfinite(p->rmax[0]);
    char what[600];
    snprintf(what, sizeof what, "histogram of %s with the quantization ranges", tensor);
    plot pl;
    int rc = plot_open(&pl, t, what,
                       "index 0: bin_center count; index 1: range name bound value; "
                       "index 2: level value (grid of range 0)",
                       e);
    if (rc)
        return rc;

    double w = (p->hi - p->lo) / p->nbins;
    span x = {p->lo, p->hi}, y = SPAN_EMPTY;
    fputs("# histogram\n", pl.d);
    for (int i = 0; i < p->nbins; i++) {
        dat_num(pl.d, p->lo + (i + 0.5) * w);
        dat_num(pl.d, p->count[i]);
        fputc('\n', pl.d);
        if (p->log_y)
            span_add_pos(&y, p->count[i]);
        else
            span_add(&y, p->count[i]);
    }
    fputs("\n\n# ranges\n", pl.d);
    for (int r = 0; r < p->nranges; r++)
        for (int b = 0; b < 2; b++) {
            fprintf(pl.d, "%d", r);
            dat_str(pl.d, p->range_names ? p->range_names[r] : NULL);
            fprintf(pl.d, " %s", b ? "max" : "min");
            dat_num(pl.d, b ? p->rmax[r] : p->rmin[r]);
            fputc('\n', pl.d);
            span_add(&x, b ? p->rmax[r] : p->rmin[r]);
        }
    if (grid) {
        fputs("\n\n# grid\n", pl.d);
        double step = (p->rmax[0] - p->rmin[0]) / (p->grid_levels - 1);
        for (int k = 0; k < p->grid_levels; k++) {
            fprintf(pl.d, "%d", k);
            dat_num(pl.d, p->rmin[0] + k * step);
            fputc('\n', pl.d);
        }
    }
    x = span_pad(x, 0.03);
    if (p->log_y)
        y = (span){y.lo <= y.hi ? y.lo / 2 : 0.5, y.lo <= y.hi ? y.hi * 3 : 10};
    else
        y = (span){0, y.lo <= y.hi && y.hi > 0 ? y.hi * 1.1 : 1};

    gp_set(&pl, "title", "Histogram of %s", tensor);
    fputs("set xlabel 'value'\n", pl.g);
    gp_ylabel(&pl, "count%s", p->log_y ? " (log scale)" : "");
    if (p->log_y)
        fputs("set logscale y\n", pl.g);
    fprintf(pl.g, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n", x.lo, x.hi, y.lo, y.hi);
    /* grid levels: dark ticks up from the bottom axis, over the boxes; on
     * text, marks on the axis */
    double gtop = p->log_y ? y.lo * pow(y.hi / y.lo, 0.06) : y.lo + 0.06 * (y.hi - y.lo);
    fprintf(pl.g, "ylo = %.9g\nyhi = %.9g\ngtop = %.9g\n", y.lo, y.hi, gtop);
    fprintf(pl.g, "set boxwidth %.9g absolute\nset style fill solid 0.6 noborder\n", w);
    if (grid && pl.fmt == QV_TEXT)
        fputs("set border back\n", pl.g); /* under the marks */
    fputs("dat index 0 using 1:2 with boxes lc rgb '#4c72b0'", clause(&pl));
    key(&pl, NULL);
    if (grid) {
        fputs(pl.fmt == QV_TEXT ? "dat index 2 using 2:(ylo) with points pt '^' lc rgb '" C_REF "'"
                                : "dat index 2 using 2:(ylo):(0):(gtop-ylo) with vectors nohead "
                                  "lw 1.5 lc rgb '" C_REF "'",
              clause(&pl));
        key(&pl, "%d-level grid of %s", p->grid_levels,
            p->range_names && p->range_names[0] ? p->range_names[0] : "range 0");
    }
    for (int r = 0; r < p->nranges; r++) {
        fprintf(clause(&pl),
                "dat index 1 every ::%d::%d using 4:(ylo):(0):(yhi-ylo) with vectors nohead "
                "lt %d lw 2",
                2 * r, 2 * r + 1, r + 2);
        const char *name = p->range_names && p->range_names[r] ? p->range_names[r] : "";
        key(&pl, "%s%s[%.4g, %.4g]", name, *name ? ": " : "", p->rmin[r], p->rmax[r]);
    }
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}

int qv_plot_sqnr(const qv_sqnr_plot *p, qv_target *t, qd_err *e)
{
    if (!p || p->n <= 0)
        return qd_errf(e, QD_EINPUT, "SQNR plot: no tensors");
    if (!p->names || (!p->local && !p->prop))
        return qd_errf(e, QD_EINPUT, "SQNR plot: no names, or neither local nor propagated SQNR");
    plot pl;
    int rc = plot_open(&pl, t, "SQNR (dB) of each quantized tensor along the network",
                       "tensor name label local local_is_inf prop prop_is_inf "
                       "(infinite values are written as the top of the axis)",
                       e);
    if (rc)
        return rc;

    names nm = names_of(p->names, p->n);
    span y = SPAN_EMPTY;
    int ninf = 0;
    for (int i = 0; i < p->n; i++) {
        span_add(&y, at(p->local, i));
        span_add(&y, at(p->prop, i));
        ninf += isinf(at(p->local, i)) + isinf(at(p->prop, i));
    }
    if (y.lo > y.hi)
        y = (span){0, 0};
    double top = y.hi + 10;
    for (int i = 0; i < p->n; i++) {
        dat_name_row(pl.d, &nm, i);
        dat_top(pl.d, at(p->local, i), top);
        dat_top(pl.d, at(p->prop, i), top);
        fputc('\n', pl.d);
    }
    double ytop = ninf ? top : y.hi, h = ytop > y.lo ? ytop - y.lo : 10;
    double ylo = y.lo - 0.05 * h, yhi = ytop + 0.08 * h;
    fputs("set title 'SQNR of each quantized tensor along the network'\n", pl.g);
    gp_ylabel(&pl, "SQNR (dB)");
    fprintf(pl.g, "set yrange [%.9g:%.9g]\n", ylo, yhi);
    key_right(&pl, 21);
    int k;
    double ph = name_tics(&pl, &nm, "quantized tensor (by depth)", &k);
    axis_tics(&pl, "ytics", ylo, yhi, ph, 2 * (pl.fmt == QV_TEXT ? 1 : text_h(FONT_PT)));
    name_clause(&pl, "x", "1:(NaN)", k);
    if (p->local) {
        fputs("dat using 1:4 with linespoints lt 1", clause(&pl));
        key(&pl, "local (only this one)");
    }
    if (p->prop) {
        fputs("dat using 1:6 with linespoints lt 2", clause(&pl));
        key(&pl, "propagated (all on)");
    }
    if (ninf) {
        char note[64];
        snprintf(note, sizeof note, "infinite, at %.4g dB", top);
        inf_marks(&pl, 4, note);
        inf_marks(&pl, 6, NULL);
    }
    plot_cmd_end(&pl);
    return plot_finish(&pl, t, e);
}
