/* exec.h - runs a loaded graph on input tensors.
 *
 * Shapes are inferred node by node from the actual inputs, so one graph runs
 * at any batch size and input size its operators accept. Buffers are kept and
 * reused between runs with the same shapes. */
#ifndef QD_EXEC_H
#define QD_EXEC_H

#include "graph.h"
#include "ops.h"

typedef struct qd_exec qd_exec;

/* Called after each node has run; return non-zero to stop the run (that code
 * is returned by qd_exec_run). outs are the node's outputs, writable. */
typedef int (*qd_node_hook)(void *user, const qd_graph *g, int node, qd_tensor **outs);

/* g is borrowed and must outlive the executor. nthreads >= 1. */
qd_exec *qd_exec_new(const qd_graph *g, int nthreads, qd_err *e);
void qd_exec_free(qd_exec *x);
void qd_exec_set_hook(qd_exec *x, qd_node_hook hook, void *user);
/* Refuse (QD_EINPUT) to run a node whose outputs would exceed max_bytes each;
 * 0 = no limit beyond QD_TENSOR_MAX_BYTES (the default). For fuzzing and
 * for untrusted models. */
void qd_exec_set_max_bytes(qd_exec *x, size_t max_bytes);

/* Run with one tensor per graph input, in g->inputs order (borrowed for the
 * duration of the call). Inputs are checked against the declared dtype, rank
 * and fixed dims (QD_EINPUT naming the input on mismatch). */
int qd_exec_run(qd_exec *x, const qd_tensor *inputs, int ninputs, qd_err *e);

/* Run only the nodes i with run[i] set (run NULL: all), in order; the
 * others keep the values of earlier runs, which the nodes run may read. The
 * caller decides which nodes a change reaches (an analysis re-running what
 * lies downstream of one quantizer). */
int qd_exec_run_some(qd_exec *x, const qd_tensor *inputs, int ninputs, const unsigned char *run, qd_err *e);

/* Exchange node output v's tensor with *t, without copying: a caller sets
 * a value aside while qd_exec_run_some recomputes it into t's buffer, and
 * swaps back to restore it. QD_EINPUT when v is not a node output. */
int qd_exec_swap(qd_exec *x, int v, qd_tensor *t, qd_err *e);

/* Wall time node i took in the last run, milliseconds (infer + run). */
double qd_exec_node_ms(const qd_exec *x, int i);

/* Value v's tensor after the last run (NULL if never computed); borrowed
 * until the next run or free. */
const qd_tensor *qd_exec_value(const qd_exec *x, int v);
/* Output i (g->outputs order). */
const qd_tensor *qd_exec_output(const qd_exec *x, int i);

#endif
