/* terr.h - per-tensor quantization error of a calibrated simulation: for
 * every quantized tensor, the error its own quantizer makes (local) and the
 * error of the whole simulated model at that tensor (propagated).
 *
 * Rows: one per quantizer of the sim that is active (qd_quantizer_active)
 * and has encodings, in quantizer order. x is the FP32 tensor, xq the one it
 * is compared with:
 *   input quantizer (a graph input): x = the batch fed to the model,
 *       local: xq = fake_quant(x, enc[0]); propagated = local (nothing
 *       precedes a model input).
 *   activation quantizer on value v: x = v in the FP32 reference run
 *       (qd_sim_set_fp32(s, 1): the BN-folded FP32 model),
 *       local: xq = fake_quant(x, enc[0]), its quantizer alone fed FP32;
 *       propagated: xq = v in the simulated run of the same images (already
 *       quantized: activation quantizers act in place).
 *   param quantizer (a weight, or a quantized bias): x = the FP32 weight
 *       (qd_sim_fp32), xq = its fake-quantized copy, per channel along
 *       q->axis with enc[c] when q->nenc > 1, else with enc[0];
 *       propagated = local. Measured once, not per image. A fix that edits
 *       the FP32 weight (AdaRound writes its rounded weight there) is
 *       measured against the edited weight.
 *
 * Metrics over all elements (all images), accumulated in double, e = xq - x:
 *   sqnr_db     10 log10(sum x^2 / sum e^2); +inf when e = 0 everywhere,
 *               -inf when x = 0 everywhere but e is not
 *   mse         mean e^2
 *   cosine      dot(x, xq) / (|x| |xq|); 1 when both are zero, 0 when one is
 *   max_abs     max |e|
 *   rmse_scale  sqrt(mean (e / scale)^2), scale the element's step (its
 *               channel's when per channel). Rounding alone on values spread
 *               over many steps gives 1/sqrt(12) ~ 0.289; values on the grid
 *               (exact zeros after a Relu, 8-bit pixels) lower it, clipping
 *               raises it.
 *   clip_frac   share of elements of x outside [min - scale/2, max + scale/2]
 *               of their encoding (clipped by the quantizer). A property of
 *               the FP32 x: local and propagated hold the same value.
 * A row whose tensor was never computed (or is not float32) has n = 0 and
 * NaN metrics. */
#ifndef QD_TERR_H
#define QD_TERR_H

#include <stdint.h>

#include "data.h"
#include "eval.h"
#include "sim.h"

typedef struct qd_terr_metrics {
    int64_t n;               /* elements compared (over all images) */
    double sqnr_db;          /* dB */
    double mse;              /* in the tensor's units squared */
    double cosine;           /* in [-1, 1] */
    double max_abs;          /* in the tensor's units */
    double rmse_scale;       /* in steps of the quantizer */
    double clip_frac;        /* in [0, 1] */
} qd_terr_metrics;

typedef struct qd_terr_row {
    int q;                   /* quantizer index (qd_sim_get) */
    qd_qkind kind;
    qd_terr_metrics local, prop;
} qd_terr_row;

typedef struct qd_terr {
    int n;                   /* rows */
    qd_terr_row *rows;       /* owned: qd_terr_free */
    int64_t images;          /* images measured (fewer than the data when stopped) */
    int stopped;             /* the progress callback asked to stop */
    double seconds;          /* wall time (data + both runs per batch) */
} qd_terr;

/* Measure s over every image of d (pick them with qd_data_limit), o->batch
 * images at a time (default 64), each batch run once in FP32 mode and once
 * simulated. o may be NULL; o->nthreads is not used (the sim has its own);
 * o->progress is called after each batch (non-zero: stop, keep the rows
 * over the images done). The sim is left in simulation mode (FP32 off) and
 * its encodings untouched. Memory: besides the sim's own buffers, a copy of
 * the FP32 value of every quantized activation for one batch.
 * QD_EINPUT when a quantizer has no encodings (qd_sim_check_encodings), the
 * model has more than one input or the data does not fit it; QD_EFAIL on out
 * of memory. out is zeroed first and holds nothing on error. */
int qd_terr_compute(qd_sim *s, qd_dataset *d, const qd_eval_opts *o, qd_terr *out, qd_err *e);
/* t may be NULL; leaves it empty. */
void qd_terr_free(qd_terr *t);

#endif
