/* pool.h - a small fixed thread pool with a blocking parallel-for. */
#ifndef QD_POOL_H
#define QD_POOL_H

#include <stdint.h>

typedef struct qd_pool qd_pool;

/* fn(arg, begin, end, tid) handles items [begin, end); tid is in [0, nthreads). */
typedef void (*qd_range_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* nthreads >= 1; the calling thread is worker 0, so nthreads-1 are spawned. */
qd_pool *qd_pool_new(int nthreads);
void qd_pool_free(qd_pool *p);
int qd_pool_threads(const qd_pool *p);

/* Split [0, n) into contiguous chunks of at least `grain` items and run them
 * on the pool; returns when all are done. p may be NULL (runs inline).
 * Not reentrant: fn must not call qd_pool_for on the same pool. */
void qd_pool_for(qd_pool *p, int64_t n, int64_t grain, qd_range_fn fn, void *arg);

#endif
