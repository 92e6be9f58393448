/* app.h - the TUI's state, shared by app.c (session, worker thread),
 * screen.c (drawing) and keys.c (the key table and its actions).
 *
 * Threads: the UI thread owns the screen and reads only the snapshot
 * below (rows, metrics, log, progress) under mu. The worker thread owns
 * the session, the simulation and the live evaluator while a job runs
 * (busy); the UI thread touches them only when the worker is idle. */
#ifndef QD_TUI_APP_H
#define QD_TUI_APP_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "live.h"
#include "qeval.h"
#include "sesscmd.h"
#include "sim.h"

#define TUI_LOG_MAX 400
#define TUI_HIST_MAX 100

/* One quantizer as the table shows it (a snapshot taken by the worker). */
typedef struct trow {
    char name[128];
    char op[32];              /* the node it belongs to (producer or consumer) */
    int kind;                 /* qd_qkind */
    int enabled, bits, sym, pc, can_pc;
    int range;                /* qd_range_method */
    int nenc;                 /* 0: no encoding yet */
    double emin, emax, scale; /* the first encoding (per channel: channel 0) */
    int offset;
    int64_t nch, count;       /* channels; values seen in calibration (activations) */
    double smin, smax;        /* statistics: calibration min/max or the weight's */
    double sqnr, sens;        /* local SQNR (dB) and enable-one drop from the flowchart; NaN unknown */
} trow;

typedef enum tjob { J_NONE, J_BUILD, J_LIVE, J_CMD, J_PLOT } tjob;

typedef struct tui_app {
    /* the session (worker-owned while busy) */
    qd_session *s;
    char *path;               /* where w saves */
    char *autosave;           /* path.autosave: every change lands here first */
    int unsaved;              /* journaled changes since the last w (or open) */
    long threads;
    /* the live simulation (worker-owned while busy) */
    qd_sim *sim;
    qd_dataset *d;
    qd_logits ref;
    qd_live *live;
    int stale;                /* the session changed in a way the sim cannot follow: rebuild */
    char report[4096];        /* the flowchart's report directory */

    /* snapshot for the screen (under mu) */
    pthread_mutex_t mu;
    trow *rows;
    int nrows;
    int have_metrics;
    double acc, fp32_acc, agree, sqnr;
    int labeled;
    char metric_src[24];      /* "live", "eval", "built" */
    double last_ms;           /* wall time of the last evaluation */
    char *log[TUI_LOG_MAX];
    int nlog, log_gen;
    char *plot;               /* text plot of plot_row (gnuplot dumb) or NULL */
    char plot_name[128];
    int plot_w, plot_h;
    int plot_gen, plot_size;  /* rows and size the plot was made for */
    int gen;                  /* bumped on every snapshot change: redraw */

    /* the worker */
    pthread_t th;
    pthread_cond_t cv;
    int started;
    tjob job;                 /* pending */
    int busy;                 /* a job runs (or is pending) */
    char **jargv;
    int jargc;
    int jrebuild;             /* J_CMD: rebuild afterwards when the state changed */
    char what[96];            /* what runs, for the status bar */
    int64_t done, total;
    double t0;                /* start of the running job (ms) */
    volatile sig_atomic_t cancel;
    int quit_worker;

    /* the UI (UI thread only) */
    int *view;                /* rows shown, in order (filter, sort) */
    int nview;
    int sel, top;             /* index into view, first shown */
    int sort;                 /* 0 graph order, 1 name, 2 sqnr, 3 sensitivity, 4 bits */
    char filter[128];
    char filter_was[128];     /* before / (Esc restores it) */
    int help;                 /* help overlay shown */
    int help_top;
    char msg[256];            /* the message line */
    int asking;               /* 'q' asked: y/n/c */
    char last_set[160];       /* last per-quantizer key=value (for 'a') */
    int last_kind;
    /* the command line */
    int cmd_on;               /* 0 off, ':' command, '/' filter, '?' none */
    char cmd[512];
    int cmd_len, cmd_pos;
    char *hist[TUI_HIST_MAX];
    int nhist, hist_at;
    int no_color;
    int view_gen;             /* gen_rows the view was built for */
    int gen_rows;             /* bumped when rows change (under mu) */
    int ui_dirty;             /* the UI state changed: redraw */
    tjob running;             /* the job the worker runs */
    char title_model[128], title_data[160];
    int table_y0, table_h;
    char table_tag[200];      /* "13/13, sorted by graph order" */    /* where the table's rows are (mouse) */
    int plot_want;            /* row index the detail plot should show */
    double plot_at;           /* when the selection last moved (ms) */
} tui_app;

/* app.c */
void tui_log(tui_app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue a job for the worker; 0 when it was idle and takes it. */
int tui_submit(tui_app *a, tjob job, int argc, char **argv, const char *what);
int tui_busy(tui_app *a);
/* Stop the running job (Esc) and wait until the worker is idle. */
void tui_cancel_wait(tui_app *a);
/* Run a session command that is quick (set, unset, undo) on the UI thread
 * when idle: journal it, autosave, then re-evaluate (live or rebuild). */
int tui_command(tui_app *a, int argc, char **argv);
/* w: save the session to a->path. */
int tui_save(tui_app *a);
void tui_rebuild_view(tui_app *a);

/* screen.c */
void tui_draw(tui_app *a);
void tui_colors(tui_app *a);

/* keys.c */
/* Handle one key (or mouse event); returns 1 to quit. */
int tui_key(tui_app *a, int ch);
/* The help text lines from the key table (static storage). */
int tui_help_lines(const char ***lines);

#endif
