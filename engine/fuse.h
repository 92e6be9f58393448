/* fuse.h - in-place graph rewrites that make FP32 execution faster without
 * changing what it computes (beyond float rounding):
 *   Conv|Gemm -> BatchNormalization   BN folded into the weights and bias
 *   BatchNormalization -> Conv|Gemm   BN folded forward, where the Conv has no padding
 *   Conv -> Relu | Clip            the clamp runs inside the Conv
 *   Identity(constant)             readers read the constant (with BN folding:
 *                                  exporters share BN parameters that way)
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
    int removed_identity; /* Identity nodes of constants bypassed (with QD_FUSE_BN) */
    int removed;     /* nodes removed in all */
} qd_fuse_stats;

enum { QD_FUSE_BN = 1, QD_FUSE_ACT = 2 };

/* Rewrites picked by flags (QD_FUSE_*). keep, when not NULL, has one entry
 * per value of g: a non-zero entry keeps that value computed (no rewrite
 * absorbs it), e.g. because a quantizer sits on it. */
int qd_graph_fuse_ex(qd_graph *g, unsigned flags, const unsigned char *keep, qd_fuse_stats *st, qd_err *e);

/* Give node ni a zero FP32 bias "<node>.folded_bias" when it is a Conv,
 * ConvTranspose or Gemm (no transA) with a constant FP32 weight and no bias.
 * Returns 1 when it added one, 0 when the node needs none, -1 on out of
 * memory (in e). */
int qd_graph_add_bias(qd_graph *g, int ni, qd_err *e);

/* All rewrites. Rewrite g in place; st may be NULL. QD_EFAIL on out of memory (g is then
 * still valid, possibly partly rewritten). */
int qd_graph_fuse(qd_graph *g, qd_fuse_stats *st, qd_err *e);

#endif
