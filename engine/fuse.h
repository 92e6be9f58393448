/* fuse.h - in-place graph rewrites that make FP32 execution faster without
 * changing what it computes (beyond float rounding):
 *   Conv -> BatchNormalization     BN folded into the Conv's weights and bias
 *   Conv -> Relu | Clip            the clamp runs inside the Conv
 * A rewrite happens only where the intermediate value has no other reader and
 * is not a graph output, and the weights are constants used by that Conv
 * alone. The Conv then writes the last absorbed node's output value, so the
 * graph's names for what remains are unchanged. */
#ifndef QD_FUSE_H
#define QD_FUSE_H

#include "graph.h"

typedef struct qd_fuse_stats {
    int bn_folded;   /* BatchNormalization nodes folded into Convs */
    int act_fused;   /* Relu/Clip nodes fused into Convs */
    int removed;     /* nodes removed in all */
} qd_fuse_stats;

/* Rewrite g in place; st may be NULL. QD_EFAIL on out of memory (g is then
 * still valid, possibly partly rewritten). */
int qd_graph_fuse(qd_graph *g, qd_fuse_stats *st, qd_err *e);

#endif
