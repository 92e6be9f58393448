/* summary.h - the layer table of a model: output shapes, parameters, MACs. */
#ifndef QD_SUMMARY_H
#define QD_SUMMARY_H

#include "exec.h"

typedef struct qd_layer {
    int node;                     /* index in g->nodes */
    int ndim;
    int64_t shape[QD_MAX_DIMS];   /* first output's shape in the run */
    int64_t params;               /* elements of constant float inputs (weights, biases) */
    int64_t macs;                 /* multiply-accumulates of one run (whole batch) */
} qd_layer;

typedef struct qd_summary {
    int n;                        /* one row per node */
    qd_layer *rows;               /* owned */
    int64_t params;               /* distinct constant float tensors, counted once */
    int64_t macs;
} qd_summary;

/* Fill s from x after a run of x's graph. Returns QD_OK or QD_EFAIL (memory). */
int qd_summary_compute(const qd_exec *x, const qd_graph *g, qd_summary *s, qd_err *e);
void qd_summary_free(qd_summary *s);

/* Build zero-filled inputs for g from its declared shapes: a dynamic first
 * dimension becomes batch, other dynamic dims are an error unless shape
 * overrides (rank, dims) are given for input 0. */
int qd_make_inputs(const qd_graph *g, int64_t batch, int ov_ndim, const int64_t *ov_shape,
                   qd_tensor *inputs, qd_err *e);

#endif
