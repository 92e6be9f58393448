/* cle.h - cross-layer equalization (Nagel et al. 2019, "Data-Free
 * Quantization Through Weight Equalization and Bias Correction"; AIMET white
 * paper section 4.3) of an FP32 graph, in place:
 *
 *  1. BatchNormalizations are folded into the Conv/Gemm before them
 *     (qd_graph_fuse_ex, QD_FUSE_BN only), which keeps each BN's beta and
 *     |gamma| on its Conv (qd_node.bn_mean).
 *  2. Chains are found: layer -> [act] -> layer, where a layer is a Conv
 *     (group 1, or depthwise: group == Cin == Cout) or a Gemm (alpha = beta
 *     = 1, no transA) with constant FP32 weights used by it alone; act is
 *     absent or positively homogeneous (Relu, PRelu, LeakyRelu, Clip(0, inf),
 *     and Clip(0, 6) = ReLU6 when opts->relu6_to_relu replaces it by Relu);
 *     every value between has exactly one reader and is not a graph output.
 *     A chain is cut into sets as AIMET does: a depthwise layer with a layer
 *     after it forms a triplet L1 -> DW -> L3, any other link a pair; sets
 *     of a chain share their end layers.
 *  3. Per channel i of the value between two layers, positive scales move
 *     range between them without changing what the graph computes:
 *       pair     s = sqrt(r1 / r2): W1[i] /= s, b1[i] /= s, W2[:, i] *= s,
 *                so both ranges become sqrt(r1 r2);
 *       triplet  c = cbrt(r1 rd r3), s12 = r1 / c, s23 = c / r3:
 *                W1[i] /= s12, Wd[i] *= s12 / s23, bd[i] /= s23, W3[:, i] *= s23,
 *                so all three ranges become c;
 *     r1 is max |W| of the first layer's output channel i, r2 (r3) max |W|
 *     over the last layer's weights reading channel i, rd the depthwise
 *     layer's channel i. A channel with a zero (or non-finite) range, or one
 *     whose bias would overflow, keeps s = 1. The BN statistics of a scaled
 *     output channel are scaled with it.
 *     Sets are equalized in graph order, one pass after another, from the
 *     current weights (a layer shared by two sets is rebalanced by both),
 *     until a pass's largest |ln s| is below 1e-5 or opts->max_iter passes
 *     ran (max_iter = 1 is AIMET's single pass; the paper iterates to
 *     convergence). Scales within 1e-6 of 1 are not applied, so passes
 *     after convergence add no rounding.
 *  4. High-bias absorption (opts->hba): for a link L1 -> Relu -> L2 where L1
 *     has BN statistics (beta, |gamma|, already scaled by step 3),
 *       c_i = max(0, beta_i - 3 |gamma_i|),  b1[i] -= c_i,  beta_i -= c_i,
 *       b2[o] += sum over (i, taps) of W2[o, i, taps] * c_i
 *     (a depthwise L2 reads only its own channel). Exact only where L1's
 *     pre-activation output stays >= c_i and L2 sees no zero padding;
 *     otherwise an approximation that shrinks the range of L1's output.
 *
 * Without ReLU6 replacement and HBA the graph computes what it computed
 * before, up to float rounding. Replacing ReLU6 changes the FP32 function:
 * the caller should measure it. */
#ifndef QD_CLE_H
#define QD_CLE_H

#include <stdint.h>

#include "graph.h"

typedef struct qd_cle_opts {
    int relu6_to_relu; /* 1: Clip(0, 6) between two layers of a chain becomes Relu (the chain is then equalized) */
    int hba;           /* 1: high-bias absorption after equalization */
    int max_iter;      /* passes over all sets at most; 0 = 100 */
} qd_cle_opts;

/* What qd_cle uses when opts is NULL: ReLU6 replaced, HBA on, 100 passes. */
#define QD_CLE_OPTS_DEFAULT ((qd_cle_opts){.relu6_to_relu = 1, .hba = 1, .max_iter = 0})

/* One Conv/Gemm with a constant FP32 weight. Ranges are max |W| per output
 * channel. Spread is max range / min non-zero range over the output
 * channels (0 when every range is 0): how much per-tensor quantization of
 * the weight loses to its widest channel. */
typedef struct qd_cle_layer {
    char *name;            /* node name, owned by the report */
    int node;              /* index in g->nodes after qd_cle */
    int64_t nch;           /* output channels */
    float *range_before;   /* nch: after BN folding, before equalization; owned */
    float *range_after;    /* nch: after equalization; owned */
    double spread_before, spread_after;
    int depthwise;         /* Conv with group == Cin == Cout */
    int equalized;         /* in at least one pair or triplet */
} qd_cle_layer;

/* A pair (n = 2) or triplet (n = 3): indices into report->layers, in chain order. */
typedef struct qd_cle_set {
    int n;
    int layer[3];
} qd_cle_set;

typedef struct qd_cle_report {
    int bn_folded;         /* BatchNormalizations folded in step 1 */
    int relu6_replaced;    /* Clip(0, 6) nodes (or fused clamps) made Relu */
    int pairs, triplets;
    int hba_absorbed;      /* channels whose bias was lowered (c_i > 0) */
    int iterations;        /* passes run */
    int converged;         /* the last pass's largest |ln s| was below 1e-5 */
    double last_change;    /* that largest |ln s| */
    int nlayers;
    qd_cle_layer *layers;  /* every Conv/Gemm with a constant FP32 weight, in graph order */
    int nsets;
    qd_cle_set *sets;      /* in the order they were equalized */
    int nskipped;
    char **skipped;        /* "<node>: not equalized: <reason>", one per Conv/Gemm in no set */
} qd_cle_report;

/* Equalize g in place (see above). o may be NULL (QD_CLE_OPTS_DEFAULT);
 * r may be NULL, else it is filled (the caller frees it with
 * qd_cle_report_free, also after a failure). Returns QD_OK, or QD_EFAIL on
 * out of memory (e says where); g is then still valid but may be partly
 * folded and equalized. A graph with nothing to equalize is not an error. */
int qd_cle(qd_graph *g, const qd_cle_opts *o, qd_cle_report *r, qd_err *e);

/* Release what a report owns and zero it; r may be NULL. */
void qd_cle_report_free(qd_cle_report *r);

#endif
