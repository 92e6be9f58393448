/* eval.h - FP32 evaluation of a classifier over a dataset: top-1/top-5. */
#ifndef QD_EVAL_H
#define QD_EVAL_H

#include "data.h"
#include "exec.h"

/* Progress: called after each batch; return non-zero to stop (the result
 * then covers the images done so far). */
typedef int (*qd_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct qd_eval_opts {
    int64_t batch;            /* images per run, default 64 */
    int nthreads;             /* default 1 */
    qd_progress_fn progress;  /* may be NULL */
    void *user;
} qd_eval_opts;

typedef struct qd_eval_result {
    int64_t images;           /* evaluated */
    int64_t top1, top5;       /* correct predictions (labels only) */
    int labeled;              /* the dataset has labels */
    int classes;              /* width of the model's output */
    double seconds;           /* wall time of data + inference */
    int stopped;              /* progress asked to stop */
} qd_eval_result;

/* Run every sample of d through g's first output (logits N x classes).
 * Checks that the data's sample shape fits the model input (QD_EINPUT naming
 * both). g is not modified. */
int qd_eval_run(const qd_graph *g, qd_dataset *d, const qd_eval_opts *o, qd_eval_result *r, qd_err *e);

#endif
