/* err.h - error values that library code fills instead of printing. */
#ifndef QD_ERR_H
#define QD_ERR_H

/* Status codes; they double as the CLI's exit codes. */
enum {
    QD_OK = 0,
    QD_EFAIL = 1,   /* failure while working (out of memory, runtime fault) */
    QD_EINPUT = 2,  /* bad input: file, model, flag, shape */
};

typedef struct qd_err {
    int code;       /* QD_OK when nothing went wrong */
    char msg[512];  /* one line: where and why, no trailing newline */
} qd_err;

/* Fill e (if not NULL) with code and a printf-style message; returns code.
 * An error already set is kept: the first, innermost reason wins. */
int qd_errf(qd_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with "prefix: " (e.g. the file name). */
void qd_err_prefix(qd_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
