/* sim.h - quantization simulation of a graph: quantizers placed per an
 * AIMET runtime config, calibrated on data, and fake-quant inference.
 *
 * Placement (AIMET conventions, white paper ch. 3) on the graph after its
 * BatchNormalizations are folded into neighbouring Conv/Gemm nodes:
 *   - an input quantizer on each float model input (model_input);
 *   - an output quantizer on each op output (defaults.ops / op_type), except
 *     inside a supergroup chain (its last op keeps it) and after ops that
 *     only move data (Reshape, Flatten, Transpose, Squeeze, MaxPool, ...),
 *     unless op_type asks for one explicitly; model_output forces one on
 *     graph outputs;
 *   - a param quantizer on the weight (input 1) of Conv, ConvTranspose, Gemm
 *     and MatMul, and on the bias (input 2) when the config quantizes biases.
 *   - other biases of Conv, ConvTranspose and Gemm are held as integer
 *     kernels hold them (QLinearConv, TFLite, NPUs): int32 on the grid
 *     s_in * s_w[c], where s_in is the scale of the quantizer the node's
 *     input comes from (through data-movement ops) and s_w[c] the weight's
 *     (per channel or not). Only when both are enabled and the input has at
 *     most QD_INT32_BIAS_MAX_ACT_BITS bits: kernels on wider activations hold
 *     wider biases (TFLite's 16x8 mode: int64), and an int32 grid of s_in * s_w
 *     would saturate at W16A16; such biases stay FP32. float_bias turns it
 *     off (AIMET's own sim keeps such biases in FP32).
 * Quantizers are named by the ONNX tensor they quantize.
 *
 * Activation quantizers act in place on the tensor right after the node that
 * produces it, so every consumer sees the quantized values; param quantizers
 * rewrite the sim's copy of the weight (the original is kept). */
#ifndef QD_SIM_H
#define QD_SIM_H

#include <stdint.h>

#include "calib.h"
#include "data.h"
#include "eval.h"
#include "exec.h"
#include "graph.h"
#include "qconfig.h"
#include "quant.h"

/* Widest input activation whose Conv/Gemm biases are simulated as int32. */
#define QD_INT32_BIAS_MAX_ACT_BITS 8

typedef enum qd_qkind { QD_QK_INPUT, QD_QK_ACT, QD_QK_PARAM } qd_qkind;

/* A quantizer's settings (what the user controls). */
typedef struct qd_qsettings {
    int enabled;             /* 0 = bypassed */
    qd_qscheme scheme;       /* bits (QD_BITS_FLOAT = bypassed), symmetric... */
    int per_channel;         /* params with an axis only */
    qd_range_method range;
    double pct;              /* percentile for QD_RANGE_PERCENTILE */
    int fixed;               /* use [fmin, fmax] instead of statistics */
    double fmin, fmax;
} qd_qsettings;

typedef struct qd_quantizer {
    char *name;              /* ONNX tensor name */
    qd_qkind kind;
    int value;               /* value index in qd_sim_graph() */
    int node;                /* params: consuming node; acts: producer; inputs: -1 */
    int axis;                /* params: output-channel axis of the tensor, -1 if none */
    int64_t nch;             /* channels along axis (1 when axis < 0) */
    qd_qsettings set;
    int nenc;                /* encodings held: 0 (none yet), 1 (per tensor) or nch */
    qd_encoding *enc;
    int frozen;              /* encodings imported: calibration keeps them */
    qd_stats *stats;         /* activation/input statistics from calibration, or NULL */
} qd_quantizer;

/* Fields an override sets (bits of qd_override.set). */
enum {
    QD_OV_ENABLED = 1 << 0,
    QD_OV_BITS = 1 << 1,
    QD_OV_SYMMETRIC = 1 << 2,
    QD_OV_PER_CHANNEL = 1 << 3,
    QD_OV_RANGE = 1 << 4,
    QD_OV_FIXED = 1 << 5,     /* fmin, fmax */
    QD_OV_STRICT = 1 << 6,
    QD_OV_UNSIGNED = 1 << 7,
};

typedef struct qd_override {
    unsigned set;            /* QD_OV_* of the fields given */
    int enabled, bits, symmetric, per_channel, strict, unsigned_sym;
    qd_range_method range;
    double pct;
    double fmin, fmax;
} qd_override;

typedef struct qd_sim_opts {
    const qd_qcfg *cfg;      /* placement and default schemes (borrowed for qd_sim_new only) */
    int act_bits;            /* activations and inputs, default 8 */
    int param_bits;          /* weights (and quantized biases), default 8 */
    qd_range_method range;   /* default range method of every quantizer */
    double pct;
    int per_channel;         /* -1: as the config says; 0/1 force per-tensor/per-channel weights */
    int nthreads;            /* default 1 */
    int float_bias;          /* 1: unquantized biases stay FP32; 0: int32 at s_in * s_w (default) */
} qd_sim_opts;

typedef struct qd_sim qd_sim;

/* Take ownership of g (freed with the sim, also on failure), fold its
 * batch norms, give every Conv/ConvTranspose/Gemm a (zero) bias if it has
 * none, place quantizers. QD_EINPUT when the config does not fit
 * (e.g. bit-widths out of range). */
qd_sim *qd_sim_new(qd_graph *g, const qd_sim_opts *o, qd_err *e);
void qd_sim_free(qd_sim *s);

/* The simulated graph (BN folded; activations fused only inside supergroups).
 * Its weights hold the fake-quantized values while the sim is applied. */
const qd_graph *qd_sim_graph(const qd_sim *s);

/* Enabled and not bypassed as 32-bit float. */
static inline int qd_quantizer_active(const qd_quantizer *q)
{
    return q->set.enabled && q->set.scheme.bits != QD_BITS_FLOAT;
}

/* QD_EINPUT naming the first active quantizer without encodings. */
int qd_sim_check_encodings(const qd_sim *s, qd_err *e);

int qd_sim_count(const qd_sim *s);
qd_quantizer *qd_sim_get(qd_sim *s, int i);
/* Index of the quantizer on the tensor named name, or -1. */
int qd_sim_find(const qd_sim *s, const char *name);

/* Apply ov to every quantizer matching pattern: a tensor name, an fnmatch(3)
 * glob, or a group: "@all", "@weights" (params), "@activations" (acts and
 * inputs), "@inputs". *matched (may be NULL) gets the count; no match is
 * QD_EINPUT naming the pattern. Encodings affected are recomputed from the
 * kept statistics (params: from the weights) on the next run. */
int qd_sim_override(qd_sim *s, const char *pattern, const qd_override *ov, int *matched, qd_err *e);

/* Enable or bypass quantizer qi (its encodings are kept); the next run
 * rewrites only what that changes (its weight, the int32 biases). */
void qd_sim_set_enabled(qd_sim *s, int qi, int on);

/* Set and freeze quantizer q's encodings (n = 1 or its channel count). */
int qd_sim_set_encodings(qd_sim *s, int q, const qd_encoding *enc, int n, qd_err *e);

/* Calibration: params' encodings from their weights; then n images of d
 * (from its start; use qd_data_limit to pick them) run with weights
 * fake-quantized and activations passing through unquantized while their
 * statistics are gathered; then activation encodings. Frozen quantizers
 * keep their encodings. */
int qd_sim_calibrate(qd_sim *s, qd_dataset *d, int64_t batch, qd_progress_fn progress, void *user,
                     qd_err *e);
/* Recompute encodings from the kept statistics (after qd_sim_override). */
int qd_sim_update(qd_sim *s, qd_err *e);

/* Run fake-quant inference (like qd_exec_run). Every enabled quantizer must
 * have encodings (QD_EINPUT naming the first that has none). */
int qd_sim_run(qd_sim *s, const qd_tensor *inputs, int ninputs, qd_err *e);
/* Run only the nodes with nodes[i] set (qd_exec_run_some): an analysis
 * that toggled one quantizer re-runs what lies downstream of it, the other
 * values staying as the last run left them. */
int qd_sim_run_some(qd_sim *s, const qd_tensor *inputs, int ninputs, const unsigned char *nodes, qd_err *e);
/* While store is set, every run copies each node output v with want[v]
 * (want and store have g->nvalues entries and stay the caller's) into
 * store[v] before its quantizer fake-quantizes it: the value as the
 * producer computed it. store NULL stops. */
void qd_sim_capture(qd_sim *s, const unsigned char *want, qd_tensor *store);
/* dst = src as activation or input quantizer qi would leave it in a run:
 * fake-quantized when qi is active (a copy otherwise, or in FP32 mode). */
int qd_sim_quantize(qd_sim *s, int qi, const qd_tensor *src, qd_tensor *dst, qd_err *e);
const qd_tensor *qd_sim_output(const qd_sim *s, int i);
/* FP32 reference mode (on = 1): runs bypass every quantizer and use the
 * FP32 weights and biases (the sim's graph then computes the BN-folded FP32
 * model), so that a fix can compare FP32 and simulated values of any tensor
 * (qd_exec_value on qd_sim_exec) in one graph. on = 0 returns to simulation.
 * Calibration observes in whichever mode is set. */
void qd_sim_set_fp32(qd_sim *s, int on);

/* Write the weights and int32 biases for the current encodings if they
 * changed since last written (qd_sim_run does this itself). */
void qd_sim_apply(qd_sim *s);
qd_exec *qd_sim_exec(qd_sim *s);

/* A bias that may be simulated as int32 (see the header comment). */
typedef struct qd_sim_bias {
    int value;                   /* the bias initializer in qd_sim_graph() */
    int node;                    /* the Conv/Gemm reading it */
    int on;                      /* held as int32 since the weights were last written */
    int n;                       /* scales: 1 (per tensor) or one per element (per channel) */
    const float *scale;          /* s_in * s_w[c] when on; valid until the sim changes */
} qd_sim_bias;

/* Biases that can be int32 (FP32, unquantized, on a quantized weight's
 * node); qd_sim_bias_get fills b with bias i (0 <= i < count), the int32
 * grid as of the last qd_sim_update, calibration, run or qd_sim_apply. */
int qd_sim_bias_count(const qd_sim *s);
void qd_sim_bias_get(const qd_sim *s, int i, qd_sim_bias *b);
/* Index of the bias read by node (a Conv/Gemm), or -1. */
int qd_sim_bias_find(const qd_sim *s, int node);

/* The FP32 original of value v when the sim keeps one (a weight or bias with
 * a param quantizer, or a bias of qd_sim_bias), else NULL. Fixes (bias
 * correction, AdaRound) edit it in place and then call
 * qd_sim_params_changed, so that the next run writes the simulated copy
 * again; encodings not frozen are recomputed only by qd_sim_update. */
qd_tensor *qd_sim_fp32(qd_sim *s, int v);
void qd_sim_params_changed(qd_sim *s);

/* Counts for reports. */
typedef struct qd_sim_counts {
    int inputs, acts, params;    /* quantizers by kind */
    int enabled;                 /* of all kinds */
    int int32_biases;            /* biases simulated as int32 */
    int bn_folded, act_fused;
} qd_sim_counts;
void qd_sim_get_counts(const qd_sim *s, qd_sim_counts *c);

#endif
