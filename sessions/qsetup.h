/* qsetup.h - builds a calibrated quantization simulation from the options
 * every quantizing command shares (--quant, --per-channel, --range, --calib,
 * --calib-data, --config, --overrides, --set, --encodings, --bias). */
#ifndef QD_QSETUP_H
#define QD_QSETUP_H

#include <stdint.h>

#include "adaround.h"
#include "biascorr.h"
#include "cle.h"
#include "data.h"
#include "eval.h"
#include "sim.h"

/* What the weight fixes did (qd_qsetup.fixes), for reports. */
typedef struct qd_qsetup_fixes {
    int cle_done;
    qd_cle_report cle;        /* when cle_done */
    int bc_done;
    qd_bc_report bc;          /* when bc_done */
    int ada_done;
    qd_adaround_report ada;   /* when ada_done */
} qd_qsetup_fixes;
void qd_qsetup_fixes_free(qd_qsetup_fixes *f);

typedef struct qd_qsetup {
    const char *quant;        /* "w8a8", "w4a8", "w8a16"...; NULL = w8a8 */
    int per_channel;          /* -1: as the config says; 0 per-tensor; 1 per-channel weights */
    const char *range;        /* qd_range_parse syntax; NULL = sqnr (AIMET's tf_enhanced default) */
    int64_t calib;            /* calibration images; 0 = 1000 */
    const char *calib_data;   /* dataset spec; NULL = fashion-mnist:train */
    uint64_t seed;            /* picks the calibration subset */
    const char *config;       /* AIMET runtime config file, or "default" / "per_channel" (built in); NULL = by per_channel */
    const char *overrides;    /* JSON overrides file or NULL */
    const char *const *sets;  /* "PATTERN key=value ..." overrides, applied in order after the file */
    int nsets;
    const char *encodings;    /* AIMET encodings file to import and freeze, or NULL */
    int float_bias;           /* 1: biases stay FP32 (qd_sim_opts.float_bias) */
    /* weight fixes (AIMET white paper ch. 4), in this order: */
    int cle;                  /* cross-layer equalization of the FP32 graph (qd_cle defaults) */
    int cle_keep_relu6;       /* leave ReLU6 alone (those chains are not equalized) */
    int cle_no_hba;           /* no high-bias absorption */
    const char *bias_correct; /* "empirical" or "analytic" after calibration, or NULL */
    int64_t bc_images;        /* empirical: calibration images used (0 = 512, at most --calib) */
    int adaround;             /* AdaRound the Conv/Gemm weights (after bias correction), encodings frozen */
    int adaround_iters;       /* Adam steps per layer; 0 = qd_adaround's default */
    int no_calib;             /* stop after the overrides and encodings: no fixes, no calibration
                                 (to check settings and patterns cheaply) */
    qd_qsetup_fixes *fixes;   /* filled when not NULL (free with qd_qsetup_fixes_free) */
    int nthreads;
    int64_t batch;
    const qd_data_opts *dopts;/* preprocessing of the calibration data (NULL = defaults) */
    qd_progress_fn progress;  /* calibration progress, may be NULL */
    void *user;
} qd_qsetup;

/* "wNaM" (N, M in 2..16 or 32) -> bit-widths; QD_EINPUT naming s. */
int qd_qsetup_parse_quant(const char *s, int *wbits, int *abits, qd_err *e);

/* Load model, equalize it (cle), build the sim, apply config, overrides,
 * encodings, then calibrate what is not frozen; then correct biases and
 * AdaRound the weights, and calibrate the activations again (they
 * move with the biases and weights). *calib_s (may be NULL) gets the calibration
 * wall time in seconds. Errors name the file or option at fault. */
qd_sim *qd_qsetup_build(const char *model, const qd_qsetup *o, double *calib_s, qd_err *e);

#endif
