/* ops.h - the operator interface and the helpers operator files share.
 *
 * Each operator is a row { name, check, infer, run, free_priv } in one of the
 * family tables (op_conv.c, op_math.c, op_shape.c, op_pool.c); ops.c merges
 * them into one sorted table looked up at load time.
 *
 *  check  load time: validate opset, arity, attributes (and constant inputs
 *         where the op needs them constant); may store parsed attributes in
 *         n->priv. An error names what is wrong; the loader adds file/node.
 *  infer  run time, before run: set each out[i]'s dtype and shape with
 *         qd_tensor_resize from the actual inputs (input data is available,
 *         so shape tensors can be read). Must reject bad shapes with QD_EINPUT.
 *  run    compute out[] from in[]. out[] were sized by infer. Everything
 *         that can be wrong with the input is caught in infer; run only
 *         fails on resource exhaustion (returns QD_EFAIL). ctx is never NULL
 *         when called by the executor.
 *
 * in[i] is NULL for an omitted optional input; likewise out[i] for an omitted
 * optional output. Inputs are never modified.
 */
#ifndef QD_OPS_H
#define QD_OPS_H

#include "graph.h"
#include "pool.h"

/* Execution context handed to run(): threads and per-thread scratch. */
typedef struct qd_ctx {
    int nthreads;
    qd_pool *pool;                     /* NULL when nthreads == 1 */
    void *scratch[64];                 /* per-thread scratch, see qd_ctx_scratch */
    size_t scratch_cap[64];
} qd_ctx;

typedef struct qd_op {
    const char *name;
    int (*check)(qd_node *n, const qd_graph *g, qd_err *e);
    int (*infer)(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_err *e);
    int (*run)(const qd_node *n, qd_tensor *const *in, qd_tensor **out, qd_ctx *ctx);
    void (*free_priv)(void *priv);
} qd_op;

/* Look up an operator of the default domain by name; NULL if unsupported. */
const qd_op *qd_op_find(const char *name);
/* All supported operator names, sorted; returns the count. */
int qd_op_names(const char ***names);

/* Family tables, each terminated by a row with name == NULL. */
extern const qd_op qd_ops_conv[];   /* Conv, ConvTranspose, Gemm, MatMul */
extern const qd_op qd_ops_math[];   /* element-wise, activations, BN, Softmax, reductions, Cast */
extern const qd_op qd_ops_shape[];  /* data movement and shape ops, Constant, Identity, Dropout, Pad, Resize */
extern const qd_op qd_ops_pool[];   /* MaxPool, AveragePool, GlobalAveragePool */

/* Scratch memory of at least `bytes` for thread tid, 64-byte aligned; valid
 * until the next call for the same tid. NULL on allocation failure. */
void *qd_ctx_scratch(qd_ctx *ctx, int tid, size_t bytes);
/* Parallel loop over [0, n) on the context's pool (inline when single-threaded). */
void qd_ctx_for(qd_ctx *ctx, int64_t n, int64_t grain, qd_range_fn fn, void *arg);
/* Set OpenBLAS's own thread count (1 inside qd_ctx_for workers). */
void qd_blas_set_threads(int n);
/* Threads worth giving one sgemm of `macs` multiply-adds: waking OpenBLAS's
 * workers costs more than a small product gains (1 below ~4M MACs). */
int qd_blas_threads_for(int nthreads, int64_t macs);

/* numpy broadcasting of a and b into out (rank max(ra, rb)); out may alias
 * a or b. QD_EINPUT when incompatible. */
int qd_broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b,
                       int *rout, int64_t *out, qd_err *e);
/* Normalize axis in [-rank, rank) to [0, rank); QD_EINPUT when out of range. */
int qd_norm_axis(int64_t axis, int rank, int *out, qd_err *e);

#endif
