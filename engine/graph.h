/* graph.h - qdb's graph IR: values (tensors by name), nodes in topological
 * order, attributes. Loaded from ONNX by onnx_load.c; owned by qd_graph. */
#ifndef QD_GRAPH_H
#define QD_GRAPH_H

#include <stdint.h>

#include "err.h"
#include "tensor.h"

/* Model opsets (default domain) that qdb accepts; each operator checks its
 * own version differences (see ops.h). */
#define QD_OPSET_MIN 6
#define QD_OPSET_MAX 17

typedef enum qd_attr_type {
    QD_ATTR_FLOAT = 1,
    QD_ATTR_INT = 2,
    QD_ATTR_STRING = 3,
    QD_ATTR_TENSOR = 4,
    QD_ATTR_FLOATS = 6,
    QD_ATTR_INTS = 7,
    QD_ATTR_STRINGS = 8,
    QD_ATTR_OTHER = 99, /* graphs, sparse tensors, type protos: kept by name only */
} qd_attr_type;

typedef struct qd_attr {
    char *name;
    qd_attr_type type;
    float f;
    int64_t i;
    char *s;          /* STRING */
    int n;            /* element count of floats/ints/strings */
    float *floats;
    int64_t *ints;
    char **strings;
    qd_tensor *t;     /* TENSOR, owned */
} qd_attr;

/* A named value: graph input, initializer, or node output. */
typedef struct qd_value {
    char *name;
    qd_dtype dtype;            /* declared type, QD_UNDEF when not declared */
    int ndim;                  /* declared rank, -1 when unknown */
    int64_t dims[QD_MAX_DIMS]; /* declared dims, -1 for a dynamic (symbolic) dim */
    qd_tensor *init;           /* constant data (initializer or Constant), owned; else NULL */
    int producer;              /* index of the producing node, -1 for inputs/constants */
} qd_value;

struct qd_op;

typedef struct qd_node {
    char *name;          /* ONNX node name, or "<op_type>_<index>" when empty */
    char *op_type;
    int opset;           /* opset version of the node's domain */
    int nin, nout;
    int *in, *out;       /* value indices; -1 for an omitted optional input/output */
    int nattr;
    qd_attr *attrs;
    const struct qd_op *op;  /* resolved at load time, never NULL in a loaded graph */
    void *priv;              /* op-private parsed state, freed with op->free_priv */
    int fused_clip;          /* set by qd_graph_fuse: clamp outputs to [clip_lo, clip_hi] */
    float clip_lo, clip_hi;
    /* Set when a BatchNormalization after this Conv/Gemm was folded into it:
     * per output channel the mean (beta) and standard deviation (|gamma|) of
     * its output before any activation, bn_mean[c] and bn_mean[bn_nch + c].
     * For cross-layer equalization and analytic bias correction. */
    int64_t bn_nch;
    float *bn_mean;
} qd_node;

typedef struct qd_graph {
    char *path;          /* file it came from (for messages) */
    char *producer;      /* producer_name + version, may be "" */
    int opset;           /* default-domain opset */
    int64_t ir_version;
    int nvalues, nnodes;
    qd_value *values;
    qd_node *nodes;      /* topologically sorted */
    int ninputs, noutputs;
    int *inputs;         /* value indices of real inputs (initializers excluded) */
    int *outputs;
} qd_graph;

/* Load an ONNX model. Returns NULL and fills e (QD_EINPUT for bad files,
 * naming the file and the reason) on failure. The caller frees the graph. */
qd_graph *qd_graph_load(const char *path, qd_err *e);
/* Same from memory (buf is not kept); name is used in messages. */
qd_graph *qd_graph_load_mem(const void *buf, size_t len, const char *name, qd_err *e);
void qd_graph_free(qd_graph *g);
/* Release everything a node owns (attributes, names, priv); n may be NULL. */
void qd_node_clear(qd_node *n);

/* Read a serialized ONNX TensorProto file (the backend tests' input_N.pb)
 * into t (t owns the data). name, if not NULL, receives a malloc'd copy of
 * the tensor's name (may be ""). */
int qd_tensor_load_pb(const char *path, qd_tensor *t, char **name, qd_err *e);

/* uses[v] for every value: how many node inputs and graph outputs read it.
 * malloc'd (nvalues + 1 entries, the caller frees); NULL on out of memory. */
int *qd_graph_count_uses(const qd_graph *g);
/* The one node that reads value v, or -1 when v has no reader, several, or
 * is a graph output (uses from qd_graph_count_uses). */
int qd_graph_sole_consumer(const qd_graph *g, const int *uses, int v);
/* Set nodes[i] (g->nnodes flags) for every node that reads value v. */
void qd_graph_mark_readers(const qd_graph *g, int v, unsigned char *nodes);
/* Add to the marked nodes everything downstream of them: every node that
 * reads an output of a marked node (nodes are in topological order). */
void qd_graph_mark_downstream(const qd_graph *g, unsigned char *nodes);

/* Look up a value by name; -1 if absent. */
int qd_graph_find_value(const qd_graph *g, const char *name);

/* Attributes: lookup by name (NULL if absent) and typed getters with a
 * default for an absent attribute. */
const qd_attr *qd_attr_find(const qd_node *n, const char *name);
int64_t qd_attr_int(const qd_node *n, const char *name, int64_t def);
float qd_attr_float(const qd_node *n, const char *name, float def);
const char *qd_attr_str(const qd_node *n, const char *name, const char *def);
/* ints attribute: returns count (0 when absent) and sets *v (borrowed). */
int qd_attr_ints(const qd_node *n, const char *name, const int64_t **v);
int qd_attr_floats(const qd_node *n, const char *name, const float **v);
/* The clamp an activation node applies: Relu [0, +inf), Clip [min, max]
 * from its constant inputs (opset >= 11) or attributes (absent: +-inf).
 * Returns 0 (lo, hi untouched) when n is neither, or a Clip whose bounds
 * are not float32 scalar constants. */
int qd_act_bounds(const qd_graph *g, const qd_node *n, float *lo, float *hi);

/* Input i of node n as a constant tensor, or NULL when the input is absent or
 * not constant (borrowed from the graph). */
const qd_tensor *qd_node_const_input(const qd_graph *g, const qd_node *n, int i);
static inline int qd_node_has_input(const qd_node *n, int i) { return i < n->nin && n->in[i] >= 0; }

#endif
