/* session.h - a qdb session: the model and data, the quantization state the
 * commands built, and the journal of those commands with their results.
 * Saved as versioned JSON; the format is described in README.md ("Sessions").
 * This module owns the document: parsing with errors that name the JSON path,
 * printing, atomic saving and locking. What the commands mean is in sesscmd.c. */
#ifndef QD_SESSION_H
#define QD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define QD_VERSION "0.1.0"         /* qdb's own version */
#define QD_SESSION_VERSION 1       /* the session file format's */
/* Largest session file read (bytes). */
#define QD_SESSION_MAX_BYTES (256u << 20)

/* One recorded result: a number, a string, a boolean or null, by key
 * ("accuracy", "quantized.metric"). */
typedef enum { QD_SV_NULL, QD_SV_BOOL, QD_SV_NUM, QD_SV_STR } qd_sess_vtype;
typedef struct qd_sess_val {
    char *key;
    qd_sess_vtype type;
    double num;  /* QD_SV_NUM; QD_SV_BOOL: 0 or 1 */
    char *str;   /* QD_SV_STR */
} qd_sess_val;

/* One journal entry: a command run against the session. */
typedef struct qd_sess_entry {
    int argc;
    char **argv;         /* the command as given, e.g. "eval" "--quant" "w8a8" */
    int changes_state;   /* it changed the state (load, set, cle, quantization options...) */
    int undone;          /* a later undo reverted it */
    int nresult;
    qd_sess_val *result; /* what it measured, in order */
    double seconds;      /* wall time it took */
    char at[24];         /* when it ran, UTC "2026-11-22T17:00:00Z" */
} qd_sess_entry;

/* Quantization settings; NULL / -1 / 0 fields are the commands' defaults. */
typedef struct qd_sess_quant {
    char *quant;         /* "w8a8"... (--quant) */
    int per_channel;     /* -1 unset, 0 --per-tensor, 1 --per-channel */
    char *range;         /* --range */
    int64_t calib;       /* --calib N; 0 unset */
    char *calib_data;    /* --calib-data */
    char *config;        /* --config */
    char *overrides;     /* --overrides FILE */
    char *encodings;     /* --encodings FILE */
    char *bias;          /* --bias int32|float */
} qd_sess_quant;

typedef struct qd_session {
    /* model: as given to load, and the sha256 of its bytes (64 hex) */
    char *model;
    char model_sha256[65];
    /* data: spec and subset as given to load, and what was read */
    char *data;
    int64_t limit;       /* -1: all */
    uint64_t seed;       /* picks the subset and the calibration images */
    int64_t images;
    char data_sha256[65];/* of the samples (float32) and labels as read */
    /* quantization: off (FP32) until a command turns it on */
    int quant_on;
    qd_sess_quant q;
    int nsets;
    char **sets;         /* per-quantizer overrides "PATTERN key=value ...", in order */
    /* transforms, applied in this order when set */
    int cle;             /* cross-layer equalization */
    int cle_keep_relu6, cle_no_hba;
    char *bias_correct;  /* NULL, "empirical" or "analytic" */
    int adaround;
    int adaround_iters;  /* 0: the default */
    /* the journal */
    int njournal;
    qd_sess_entry *journal;
} qd_session;

/* A new empty session (nothing loaded); NULL when out of memory. */
qd_session *qd_session_new(void);
/* s may be NULL. */
void qd_session_free(qd_session *s);
/* The state (everything but the journal) back to that of a new session. */
void qd_session_reset_state(qd_session *s);

/* Parse len bytes of session JSON. Every error names name and the JSON path
 * ("s.json: $.journal[2].argv[0]: expected a string, got a number"), or for
 * malformed JSON the line and column; unknown keys, an unknown version and
 * wrong types are QD_EINPUT. Returns NULL on error; the caller frees. */
qd_session *qd_session_parse(const char *text, size_t len, const char *name, qd_err *e);
/* Read and parse the file at path (NULL on error; a missing file is
 * QD_EINPUT naming it). */
qd_session *qd_session_read(const char *path, qd_err *e);
/* The session as JSON text (malloc'd, NUL-terminated, ends with a newline);
 * the same session always prints the same bytes. NULL when out of memory. */
char *qd_session_print(const qd_session *s, qd_err *e);
/* Save atomically: a temporary file beside path, fsync, rename, fsync of
 * the directory. A kill at any moment leaves either the old or the new file. */
int qd_session_write(const qd_session *s, const char *path, qd_err *e);

/* Take the session's lock (an flock on "PATH.lock", made if missing) for
 * the length of a command, and remove temporary files a killed qdb left
 * beside path. Returns the lock's fd, or -1 with QD_EFAIL when another qdb
 * holds it. Release with qd_session_unlock (fd < 0 is ignored). */
int qd_session_lock(const char *path, qd_err *e);
void qd_session_unlock(int fd);

/* Append a copy of an entry (argv and result are copied). QD_EFAIL when
 * out of memory. */
int qd_session_append(qd_session *s, const qd_sess_entry *en, qd_err *e);
void qd_sess_entry_clear(qd_sess_entry *en);
/* Add a result value to en (key and str copied; str used for QD_SV_STR). */
int qd_sess_result_add(qd_sess_entry *en, const char *key, qd_sess_vtype type, double num, const char *str);
/* The value of key in en's result, or NULL. */
const qd_sess_val *qd_sess_result_get(const qd_sess_entry *en, const char *key);

/* en's result as a JSON object (numbers as the session prints them);
 * the caller owns it (cJSON_Delete). */
struct cJSON;
struct cJSON *qd_sess_result_json(const qd_sess_entry *en);

/* Copy a string list (argv style); NULL on out of memory (n == 0 gives a
 * non-NULL empty list). Free with qd_strv_free. */
char **qd_strv_dup(char *const *v, int n);
void qd_strv_free(char **v, int n);
/* Append a copy of str to *v (length *n); QD_EFAIL when out of memory. */
int qd_strv_push(char ***v, int *n, const char *str);

#endif
