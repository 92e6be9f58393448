/* pool.c - fixed thread pool: workers wait on a condition variable for a
 * range job, take chunks with an atomic counter, and report completion. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct qd_pool {
    int n;                       /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;                /* job generation, bumped per job */
    int quit;
    int active;                  /* workers still on the current job */
    /* current job */
    qd_range_fn fn;
    void *arg;
    int64_t total, chunk;
    atomic_llong next;
};

static void run_chunks(qd_pool *p, int tid)
{
    for (;;) {
        int64_t b = atomic_fetch_add(&p->next, p->chunk);
        if (b >= p->total)
            break;
        int64_t e = b + p->chunk < p->total ? b + p->chunk : p->total;
        p->fn(p->arg, b, e, tid);
    }
}

struct worker_arg { qd_pool *p; int tid; };

static void *worker(void *a)
{
    struct worker_arg wa = *(struct worker_arg *)a;
    free(a);
    qd_pool *p = wa.p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, wa.tid);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

qd_pool *qd_pool_new(int nthreads)
{
    if (nthreads < 1)
        nthreads = 1;
    qd_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = calloc((size_t)nthreads, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < nthreads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->p = p, wa->tid = i, pthread_create(&p->th[i], NULL, worker, wa))) {
            free(wa);
            p->n = i; /* run with the threads we got */
            break;
        }
    }
    return p;
}

void qd_pool_free(qd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int qd_pool_threads(const qd_pool *p)
{
    return p ? p->n : 1;
}

void qd_pool_for(qd_pool *p, int64_t n, int64_t grain, qd_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (!p || p->n == 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    /* about 4 chunks per thread for balance, never below grain */
    int64_t chunk = (n + 4 * p->n - 1) / (4 * p->n);
    if (chunk < grain)
        chunk = grain;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    p->active = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
