/* biascorr.h - bias correction (Nagel et al. 2019, "Data-Free Quantization"
 * sec. 4.2; AIMET white paper sec. 4.5): shift the bias of every Conv/Gemm
 * whose weights are quantized so that the mean of its pre-activation output
 * y = W x + b per output channel is the FP32 model's again.
 *
 *   empirical  E[W x] of both models measured on data, layer after layer in
 *              topological order so that each correction is seen by the
 *              layers after it:  b += E[W_fp32 x_fp32] - E[W_q x_q]
 *              (x_q: the simulated input, quantized and behind the layers
 *              already corrected). A run that computes a layer's input
 *              corrects every layer whose input depends on no uncorrected
 *              layer, so the cost is (1 + depth) passes over the images,
 *              depth = the longest chain of corrected layers.
 *   analytic   data-free: the layer's input channel ci is f(z), z ~ N(beta,
 *              gamma^2) from the BatchNormalization folded into the Conv
 *              that produces it and f its activation (none, Relu, Clip);
 *              b -= sum over taps (W_q - W_fp32)[c, ci, ...] E[f(z)] p,
 *              p the share of output positions at which the tap reads
 *              inside the input (not padding; the input's size is taken
 *              from the sim's last run, e.g. calibration; p = 1 without
 *              one). At small feature maps (a 3x3 tap on 2x2) p matters.
 *              Layers whose input has no such statistics (the first layer,
 *              after an Add, a MaxPool or a Concat) are skipped.
 *
 * E[W x] per output channel is computed from the mean of the input: each
 * tap (ci, ky, kx) reads, over the images and output positions, the mean
 * M[ci, ky, kx] of the pixels it touches (padding reads zero), and
 * E[(W x)_c] = sum over taps W[c, ci, ky, kx] M[ci, ky, kx]. So a Relu/Clip
 * fused into the Conv (its output is then post-activation) does not matter.
 *
 * Only the FP32 biases change (qd_sim_fp32, then qd_sim_params_changed);
 * encodings are left alone. The FP32 reference mode of the sim
 * (qd_sim_set_fp32) computes with the corrected biases afterwards. */
#ifndef QD_BIASCORR_H
#define QD_BIASCORR_H

#include <stdint.h>

#include "data.h"
#include "graph.h"
#include "sim.h"

typedef enum qd_bc_mode { QD_BC_EMPIRICAL, QD_BC_ANALYTIC } qd_bc_mode;

/* One Conv/Gemm with an enabled, encoded weight quantizer. */
typedef struct qd_bc_layer {
    int node;                /* in qd_sim_graph() */
    int corrected;           /* 0: skipped */
    const char *why;         /* static string when skipped, else NULL */
    double mean_abs_shift;   /* mean |bias change| over output channels */
    double max_abs_shift;    /* largest |bias change| */
} qd_bc_layer;

typedef struct qd_bc_report {
    int layers;              /* corrected */
    int skipped;             /* candidates left alone */
    int passes;              /* runs over the images (empirical: 1 FP32 + depth) */
    int64_t images;          /* images per pass (empirical) */
    double seconds;          /* wall time */
    int n;                   /* entries of per_layer: layers + skipped, topological order */
    qd_bc_layer *per_layer;  /* owned, freed by qd_bc_report_free */
} qd_bc_report;

/* Correct the biases of s, which must be calibrated (QD_EINPUT otherwise:
 * empirical needs every enabled quantizer's encodings, analytic the weight
 * quantizers'). Empirical mode runs the first nimages images of d (all when
 * nimages <= 0 or more than d has; use qd_data_limit to pick them) in
 * batches of batch (32 when < 1); analytic mode ignores d, nimages and batch
 * (d may be NULL). r (may be NULL) is filled also on failure, and then holds
 * the layers done so far (its old contents are overwritten, not freed); free
 * it with qd_bc_report_free. Leaves s in simulation mode
 * (qd_sim_set_fp32(s, 0)). On failure the biases already corrected stay so. */
int qd_bias_correct(qd_sim *s, qd_bc_mode mode, qd_dataset *d, int64_t nimages, int64_t batch,
                    qd_bc_report *r, qd_err *e);
/* r may be NULL. Leaves r zeroed. */
void qd_bc_report_free(qd_bc_report *r);

/* "empirical", "analytic". */
const char *qd_bc_mode_name(qd_bc_mode m);

/* Building blocks, exported for tests. */

/* E[min(max(z, lo), hi)] for z ~ N(mu, sigma^2), sigma >= 0; lo may be
 * -INFINITY and hi INFINITY (none: mu; Relu: lo = 0; ReLU6: [0, 6]). */
double qd_bc_clip_mean(double mu, double sigma, double lo, double hi);

/* Per output channel c of Conv or Gemm node `node` of g, the mean of (w x)_c
 * (no bias) over the images of x and the output positions: x is the node's
 * input (N x C x [H x] W for a Conv, N x K for a Gemm), w a weight of the
 * shape of the node's (e.g. FP32 or simulated). out gets one entry per
 * output channel. QD_EINPUT when the shapes do not fit the node. */
int qd_bc_wx_mean(const qd_graph *g, int node, const qd_tensor *x, const qd_tensor *w, double *out, qd_err *e);

#endif
