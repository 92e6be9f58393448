/* live.h - live what-if evaluation: a simulation measured against FP32 over
 * an evaluation set (as qd_qeval_run does), re-evaluated after quantizer
 * changes by running again only the nodes the changes reach.
 *
 * The first evaluation runs every node of every batch and keeps, per batch,
 * the batch's input and every node output in memory. Each later evaluation
 * compares every quantizer with a snapshot taken at the previous one
 * (settings, enabled, encodings, field by field); the quantizers that differ
 * are "changed", and per batch only the nodes they reach run again:
 *   param quantizer       the readers of its tensor and everything downstream
 *                         (the int32 biases of those readers follow the
 *                         weight's scale);
 *   activation quantizer  its producer (the executor holds the quantized
 *                         value, so the producer recomputes it) and
 *                         everything downstream (this covers the int32
 *                         biases on its grid, read through data movement);
 *   input quantizer       the readers of the model input and downstream.
 * A batch's cached tensors are swapped into the sim's executor
 * (qd_exec_swap, no copies), the nodes run (qd_sim_run_some) and the
 * tensors are swapped out again, now holding the new values. With the same
 * batch size the result is bit-identical to qd_qeval_run on the sim as it
 * is (tests/test_live.c checks this over random sequences of changes).
 *
 * Changes a snapshot cannot see need qd_live_invalidate: weights or biases
 * edited in place (qd_sim_fp32 + qd_sim_params_changed: bias correction,
 * AdaRound), qd_sim_set_fp32 toggled. qd_sim_override + qd_sim_update,
 * qd_sim_set_enabled, qd_sim_set_encodings and qd_sim_calibrate are seen.
 * A different graph (CLE runs before the sim is built) is a new sim and
 * needs a new handle.
 *
 * The cache is measured after the first batch; when the whole set would
 * exceed the memory budget, every evaluation runs in full instead (still
 * identical, info->cached = 0). The executor's own buffers are left alone:
 * after qd_live_eval, qd_exec_value on the sim's executor shows what the
 * last ordinary run left there, not the evaluation's values (those are
 * qd_live_value). */
#ifndef QD_LIVE_H
#define QD_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "qeval.h"
#include "sim.h"

typedef struct qd_live qd_live;

typedef struct qd_live_opts {
    int64_t batch;       /* images per run, default 64 */
    size_t mem;          /* cache budget in bytes, default 2 GiB */
} qd_live_opts;

typedef struct qd_live_info {
    int cached;          /* the cache is in use (0: over the budget, every eval is full) */
    int full;            /* this evaluation ran every node of every batch it evaluated */
    int nchanged;        /* quantizers changed since the last evaluation (0 on the first one
                            and after qd_live_invalidate) */
    int64_t nodes_run;   /* node executions of this evaluation */
    int64_t nodes_full;  /* node executions of a full evaluation */
    size_t cache_bytes;  /* bytes the cache holds (inputs and node outputs) */
    double seconds;      /* wall time of this evaluation */
    int stopped;         /* progress asked to stop */
} qd_live_info;

/* s, d and ref are borrowed and must outlive the handle; d must keep its
 * images (no qd_data_limit meanwhile). Evaluates the first ref->n images
 * of d (at most all of d) like qd_qeval_run. The sim must have one input.
 * Nothing runs until qd_live_eval. o may be NULL (defaults). NULL on error
 * (e filled). */
qd_live *qd_live_new(qd_sim *s, qd_dataset *d, const qd_logits *ref, const qd_live_opts *o, qd_err *e);
/* Frees the cache; L may be NULL. */
void qd_live_free(qd_live *L);

/* Evaluate the sim as it is now into res (as qd_qeval_run would; seconds
 * is this call's wall time). The first call, and the first after
 * qd_live_invalidate, runs every node; later calls run what the quantizers
 * changed since the previous call reach (nothing when none changed: the
 * result then comes from the cached outputs). progress (may be NULL) is
 * called after each batch with images done and total; non-zero stops: res
 * covers the batches done, res->stopped and info->stopped are set, and the
 * batches not done remember what they still have to run (the next call
 * catches up). An error leaves the cache consistent as well. info may be
 * NULL. */
int qd_live_eval(qd_live *L, qd_qeval_result *res, qd_live_info *info, qd_progress_fn progress, void *user,
                 qd_err *e);

/* The next qd_live_eval runs every node (for changes a snapshot cannot see,
 * see the header comment). The cache's memory is kept for reuse. */
void qd_live_invalidate(qd_live *L);

/* Batches of the evaluation set and images per batch (the last may hold
 * fewer). */
int64_t qd_live_batches(const qd_live *L);
int64_t qd_live_batch_size(const qd_live *L);

/* Value v of graph qd_sim_graph() (a node output) for batch b as of the last
 * evaluation: the batch's images at b * qd_live_batch_size() on axis 0.
 * NULL when not cached (no cache, v not a node output, or not up to date
 * after a stopped evaluation). Borrowed until the next qd_live_eval,
 * qd_live_invalidate or qd_live_free. */
const qd_tensor *qd_live_value(const qd_live *L, int64_t b, int v);

#endif
