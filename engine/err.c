/* err.c - formatting of qd_err messages. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int qd_errf(qd_err *e, int code, const char *fmt, ...)
{
    if (!e || e->code != QD_OK)
        return e ? e->code : code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

void qd_err_prefix(qd_err *e, const char *fmt, ...)
{
    if (!e || e->code == QD_OK)
        return;
    char pre[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
}
