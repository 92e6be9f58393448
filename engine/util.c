/* util.c - small helpers shared across the engine and its callers. */
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

FILE *qd_open_regular(const char *path, uint64_t *size, qd_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        qd_errf(e, QD_EINPUT, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        qd_errf(e, QD_EINPUT, "%s: not a regular file%s", path,
                fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode) ? " (a directory)" : "");
        fclose(f);
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    return f;
}

double qd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
