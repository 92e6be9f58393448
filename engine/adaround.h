/* adaround.h - AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding
 * for Post-Training Quantization"; AIMET white paper 4.6): each Conv and
 * Gemm weight is rounded up or down, as learned on calibration data, instead
 * of to nearest.
 *
 * Layer by layer, in topological order, for a weight W with encodings
 * (scale s, integer grid [lo, hi] = [offset, offset + steps], per tensor or
 * per output channel) a tensor V of W's shape is learned:
 *   h(V)  = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1), zeta 1.1, gamma -0.1
 *   W~    = s clamp(floor(W / s) + h(V), lo, hi)
 *   loss  = sum_rows || f(W~ x_q + b) - f(W x_fp + b) ||^2 / rows
 *           + lambda sum (1 - |2 h(V) - 1|^beta)
 * where a row is one output position (Conv: image, y, x; Gemm: a row of A),
 * x_q the layer's input in the simulation (earlier layers already
 * AdaRounded), x_fp its input in the FP32 model, b the FP32 bias and f the
 * activation after the layer (a fused Relu/Clip, or a Relu/Clip that is the
 * output's only reader; else none). V starts where h(V) = W/s - floor(W/s)
 * (so W~ = W); Adam updates V on random batches of rows; the regularizer is
 * off for the first warm_start of the iterations, then beta anneals from
 * beta_start to beta_end (cosine, as AIMET). Finally h >= 0.5 rounds up.
 *
 * The rows: a seeded random set of output positions of the first `images`
 * samples of the data, the same positions per image in the FP32 and
 * simulated passes, at most 16384 per layer (fewer when a layer's input
 * columns would exceed 256 MB). Each layer costs one simulated pass over
 * the images (plus one FP32 pass for all layers) and iterations x batch x
 * 2 x weights multiply-adds. Memory: at most 256 MB of FP32 outputs, 256 MB
 * of columns and 40 bytes per weight of the layer being rounded.
 *
 * Defaults: AIMET's lambda, beta and warm start, but 500 iterations of 256
 * sampled output positions at lr 0.01 instead of 10000 iterations of 32
 * images at lr 0.001, so that a model takes minutes on 2 cores rather than
 * hours; on the bundled models more iterations gain nothing measurable
 * (see adaround.c). */
#ifndef QD_ADAROUND_H
#define QD_ADAROUND_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "sim.h"

typedef struct qd_adaround_opts {
    int iterations;      /* Adam steps per layer, >= 1; default 500 (AIMET: 10000) */
    int64_t images;      /* calibration images used (the first of d, all if fewer), >= 1; default 1024 */
    int batch;           /* rows (output positions) per step, >= 1; default 256 */
    double reg_weight;   /* lambda, >= 0; default 0.01 */
    double beta_start;   /* regularizer exponent, annealed start -> end, both >= 1; default 20 */
    double beta_end;     /* default 2 */
    double warm_start;   /* fraction of the iterations without the regularizer, [0, 1); default 0.2 */
    double lr;           /* Adam's learning rate, > 0; default 0.01 (AIMET: 0.001) */
    uint64_t seed;       /* picks rows and batches; default 1 */
    int nthreads;        /* threads of the optimizer, 1..64 (the sim's passes use the sim's); default 1 */
} qd_adaround_opts;

/* One AdaRounded weight. */
typedef struct qd_adaround_layer {
    int q;               /* its weight quantizer (qd_sim_get) */
    int node;            /* its Conv/Gemm in qd_sim_graph() */
    int64_t weights;     /* elements of W */
    int64_t rows;        /* output positions it was fitted on */
    double seconds;      /* wall time: data, optimization and write-back */
    double loss_nearest; /* mean squared error of the layer's output over its rows, nearest rounding */
    double loss_adaround;/* the same with the chosen rounding */
    double target_power; /* mean square of the FP32 outputs over the rows (the losses' scale) */
    double frac_flipped; /* fraction of weights not on their nearest grid point */
    int kept_nearest;    /* the learned rounding did worse than nearest on the rows: nearest kept */
} qd_adaround_layer;

typedef struct qd_adaround_report {
    int nlayers;                /* layers done (all eligible ones unless stopped or failed) */
    qd_adaround_layer *layers;  /* nlayers entries, owned (qd_adaround_report_free) */
    int skipped;                /* enabled weight quantizers left alone: ConvTranspose, MatMul,
                                 * weights read by several nodes, Gemm with transA or with a
                                 * C that is not per output or scalar */
    double seconds;             /* wall time of the whole call */
} qd_adaround_report;

/* Called before each layer (layer in [0, nlayers), name the node's);
 * non-zero stops AdaRound (QD_EINPUT "stopped"; layers done stay done). */
typedef int (*qd_adaround_progress)(void *user, int layer, int nlayers, const char *name);

/* The defaults above. */
void qd_adaround_defaults(qd_adaround_opts *o);

/* AdaRound every enabled Conv/Gemm weight quantizer of s. s and d are
 * borrowed for the call; d serves the images (the model's one input, run
 * in batches of 1 to 64). s must be calibrated: every enabled quantizer
 * has encodings, else QD_EINPUT naming the first that has none. o NULL
 * means the defaults; a value out of range is QD_EINPUT naming it. For each
 * layer the rounded weight is written as exact grid values s * q into
 * qd_sim_fp32(s, W) and the quantizer's encodings are frozen as they were
 * (qd_sim_set_encodings), so fake quant reproduces the chosen rounding.
 * Activation encodings are left as calibrated (qd_sim_calibrate again to
 * refit them; frozen weights keep theirs). The sim is left in simulation
 * mode (qd_sim_set_fp32(s, 0)). r (may be NULL) is filled with the layers
 * done, also on failure; free it with qd_adaround_report_free. cb may be
 * NULL. */
int qd_adaround(qd_sim *s, qd_dataset *d, const qd_adaround_opts *o, qd_adaround_progress cb, void *user,
                qd_adaround_report *r, qd_err *e);
/* r may be NULL; leaves *r empty. */
void qd_adaround_report_free(qd_adaround_report *r);

/* The rectified sigmoid of n values: h[i] = h(v[i]) and, when dh is not
 * NULL, dh[i] = dh/dv (0 where the clip is active). The optimizer's own
 * (float, vectorized) kernel, for tests. */
void qd_adaround_h(const float *v, float *h, float *dh, size_t n);

#endif
