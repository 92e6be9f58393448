/* sesscmd.h - running commands against a session (the command layer that
 * qdb do, qdb replay and the TUI share). */
#ifndef QD_SESSCMD_H
#define QD_SESSCMD_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "session.h"

typedef struct sess_ctx {
    qd_session *s;               /* the session the command works on (borrowed) */
    const char *path;            /* its file (relative model paths resolve beside it); may be NULL */
    int json;                    /* the user asked for --json */
    int quiet;                   /* print nothing of the commands' own output (replay) */
    const char *outdir;          /* when set, output files (-o, --report, --out) go here under their own names */
    const qd_sess_entry *expect; /* replay: the recorded entry (load checks the fingerprints against it) */
    int force;                   /* go on when the model or data changed */
    int printed;                 /* set when the command printed its JSON */
    struct qd_sim *sim;          /* the caller's live simulation (the TUI), or NULL: a set that adds
                                    a per-quantizer override applies it to sim instead of checking it
                                    on a fresh build, and sets sim_applied */
    int sim_applied;
} sess_ctx;

/* Run one session command (argv[0] is its name). On success *en holds the
 * entry to journal (the caller owns it: qd_sess_entry_clear) and *journal
 * says whether it belongs in the journal; the session's state is updated.
 * On failure the state is what the journal says and *en is empty. */
int sess_exec(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, int *journal, qd_err *e);

/* The model file of c's session: as recorded when it exists from here (or
 * is absolute), else relative to the session file's directory (into buf). */
const char *sess_model_path(const sess_ctx *c, char *buf, size_t n);
/* Name of session command i (0, 1, ...), NULL past the last: for completion. */
const char *sess_command_name(int i);
/* One line for journal entry en, numbered n: "[3] eval --quant w8a8: accuracy 0.865, ..." */
void sess_entry_print(FILE *f, int n, const qd_sess_entry *en);

/* The session's quantization state as options (--quant=w8a8 --set ...)
 * after a first word cmd, for cli_parse2 with QUANT_OPTS; *argv is owned by
 * the caller (qd_strv_free(*argv, *argc)). Empty (but cmd) when quantization
 * is off. QD_EFAIL when out of memory. */
int sess_quant_argv(const qd_session *s, const char *cmd, char ***argv, int *argc);
/* The same as qdb do SESSION debug gets them: --target=wNaM and what debug
 * takes (not --encodings, --per-tensor or the transforms, which the
 * flowchart tries itself). */
int sess_debug_argv(const qd_session *s, const char *cmd, char ***argv, int *argc);

/* The simulation of c's session as eval builds it (its seed, threads,
 * batch 64), or with no_calib only its structure (no CLE, fixes or
 * calibration: to check settings and patterns). Progress on stderr when
 * it is a terminal and c is not quiet. NULL on error. */
struct qd_sim;
struct qd_sim *sess_sim(const sess_ctx *c, const char *cmd, long threads, int no_calib, qd_err *e);

/* The session's model (and, when data, its data) still have the recorded
 * sha256, unless c->force; msha gets the model's. QD_EINPUT naming the file
 * that changed or cannot be read. */
int sess_verify(const sess_ctx *c, int data, char msha[65], qd_err *e);

/* export bundle --out DIR [--force] [--no-report] for the session of c
 * (bundle.c); fills en's result with what it wrote. */
int sess_bundle(sess_ctx *c, int argc, char **argv, qd_sess_entry *en, qd_err *e);

#endif
