/* util.c - small helpers shared across the engine and its callers. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

double qd_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int qd_write_atomic(const char *path, const void *buf, size_t len, qd_err *e)
{
    static unsigned counter;
    char tmp[4200];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return qd_errf(e, QD_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    const char *p = buf;
    size_t left = len;
    int err = 0;
    while (left && !err) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
        } else {
            p += w;
            left -= (size_t)w;
        }
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (err) {
        unlink(tmp);
        return qd_errf(e, QD_EFAIL, "%s: write failed: %s", path, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return qd_errf(e, QD_EINPUT, "%s: cannot write: %s", path, strerror(err));
    }
    return QD_OK;
}

char *qd_read_file(const char *path, uint64_t max, size_t *len, qd_err *e)
{
    uint64_t size;
    FILE *f = qd_open_regular(path, &size, e);
    if (!f)
        return NULL;
    char *buf = NULL;
    if ((max && size > max) || size >= SIZE_MAX) {
        qd_errf(e, QD_EINPUT, "%s: file is larger than %llu bytes", path, (unsigned long long)(max ? max : SIZE_MAX));
    } else if (!(buf = malloc((size_t)size + 1))) {
        qd_errf(e, QD_EFAIL, "%s: out of memory reading %llu bytes", path, (unsigned long long)size);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size || ferror(f)) {
        qd_errf(e, QD_EINPUT, "%s: read error", path);
        free(buf);
        buf = NULL;
    } else {
        buf[size] = 0;
        *len = (size_t)size;
    }
    fclose(f);
    return buf;
}
