/* ops.c - the merged operator table and helpers shared by operator files. */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

static const qd_op *const families[] = {qd_ops_conv, qd_ops_math, qd_ops_shape, qd_ops_pool};

static const qd_op **table;   /* sorted by name */
static const char **names;
static int ntable;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int cmp_op(const void *a, const void *b)
{
    return strcmp((*(const qd_op *const *)a)->name, (*(const qd_op *const *)b)->name);
}

static void build_table(void)
{
    int n = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const qd_op *o = families[f]; o->name; o++)
            n++;
    table = malloc((size_t)(n ? n : 1) * sizeof *table);
    names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!table || !names)
        return;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const qd_op *o = families[f]; o->name; o++)
            table[ntable++] = o;
    qsort(table, (size_t)ntable, sizeof *table, cmp_op);
    for (int i = 0; i < ntable; i++)
        names[i] = table[i]->name;
}

const qd_op *qd_op_find(const char *name)
{
    pthread_once(&table_once, build_table);
    int lo = 0, hi = ntable - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, table[mid]->name);
        if (c == 0)
            return table[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int qd_op_names(const char ***out)
{
    pthread_once(&table_once, build_table);
    *out = names;
    return ntable;
}

void *qd_ctx_scratch(qd_ctx *ctx, int tid, size_t bytes)
{
    if (tid < 0 || tid >= 64)
        return NULL;
    if (ctx->scratch_cap[tid] < bytes) {
        void *p = NULL;
        size_t sz = (bytes + 4095) & ~(size_t)4095;
        if (posix_memalign(&p, 64, sz))
            return NULL;
        free(ctx->scratch[tid]);
        ctx->scratch[tid] = p;
        ctx->scratch_cap[tid] = sz;
    }
    return ctx->scratch[tid];
}

void qd_ctx_for(qd_ctx *ctx, int64_t n, int64_t grain, qd_range_fn fn, void *arg)
{
    qd_pool_for(ctx ? ctx->pool : NULL, n, grain, fn, arg);
}

void qd_blas_set_threads(int n)
{
    static atomic_int current = -1;
    if (atomic_exchange(&current, n) != n)
        openblas_set_num_threads(n);
}

int qd_blas_threads_for(int nthreads, int64_t macs)
{
    return macs < ((int64_t)4 << 20) ? 1 : nthreads;
}

int qd_broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b,
                       int *rout, int64_t *out, qd_err *e)
{
    int r = ra > rb ? ra : rb;
    int64_t tmp[QD_MAX_DIMS]; /* out may alias a or b */
    if (r > QD_MAX_DIMS)
        return qd_errf(e, QD_EINPUT, "rank %d is above %d", r, QD_MAX_DIMS);
    for (int i = 0; i < r; i++) {
        int64_t da = i < r - ra ? 1 : a[i - (r - ra)];
        int64_t db = i < r - rb ? 1 : b[i - (r - rb)];
        if (da != db && da != 1 && db != 1)
            return qd_errf(e, QD_EINPUT, "shapes cannot broadcast: dim %d is %lld vs %lld",
                           i, (long long)da, (long long)db);
        tmp[i] = da == 1 ? db : da;
    }
    for (int i = 0; i < r; i++)
        out[i] = tmp[i];
    *rout = r;
    return QD_OK;
}

int qd_norm_axis(int64_t axis, int rank, int *out, qd_err *e)
{
    if (axis < -rank || axis >= (rank ? rank : 1))
        return qd_errf(e, QD_EINPUT, "axis %lld out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return QD_OK;
}
