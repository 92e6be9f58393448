/* qeval.h - a quantization simulation measured against FP32 over a dataset:
 * accuracy of both, top-1 agreement, and output SQNR. */
#ifndef QD_QEVAL_H
#define QD_QEVAL_H

#include "eval.h"
#include "sim.h"

/* FP32 reference outputs of a dataset, kept so that many simulations can be
 * compared with one FP32 pass (sweeps, per-quantizer analyses). */
typedef struct qd_logits {
    int64_t n;          /* images */
    int classes;        /* logits per image */
    float *y;           /* n x classes */
    int64_t *labels;    /* n labels (-1 when the data has none) */
    int labeled;
    double seconds;     /* wall time of the FP32 pass (data + inference) */
} qd_logits;

/* Run every sample of d through g (FP32, the first output as N x classes). */
int qd_logits_compute(const qd_graph *g, qd_dataset *d, const qd_eval_opts *o, qd_logits *out, qd_err *e);
void qd_logits_free(qd_logits *l);
/* Images whose top-1 (first maximum) is their label. */
int64_t qd_logits_top1(const qd_logits *l);
/* The FP32 model's metric: top-1 accuracy with labels, else 1 (its
 * agreement with itself); NaN without images. */
double qd_logits_metric(const qd_logits *l);

typedef struct qd_qeval_result {
    int64_t images;
    int labeled;
    int64_t top1;          /* simulated model, correct top-1 (labels only) */
    int64_t fp32_top1;     /* FP32 reference on the same images */
    int64_t agree;         /* images whose simulated top-1 equals FP32's */
    double sqnr_db;        /* 10 log10(sum y^2 / sum (y - yq)^2) over all logits; +inf when equal */
    double seconds;        /* wall time of the simulated pass (data + inference) */
    int stopped;
    double sig, err;       /* sum y^2 and sum (y - yq)^2 behind sqnr_db */
} qd_qeval_result;

/* The metric: top-1 accuracy with labels, else agreement with FP32's
 * top-1; NaN without images. */
double qd_qeval_metric(const qd_qeval_result *r);

/* Add one batch to r: y (n x classes, an output of g) holds the simulated
 * logits of images at..at+n-1 of ref. Start from a zeroed r. */
int qd_qeval_add(qd_qeval_result *r, const qd_logits *ref, int64_t at, const qd_graph *g, const qd_tensor *y,
                 qd_err *e);

/* Run the simulation over d (the same images, in the same order, as ref)
 * and compare with ref. */
int qd_qeval_run(qd_sim *s, qd_dataset *d, const qd_logits *ref, const qd_eval_opts *o, qd_qeval_result *r,
                 qd_err *e);

#endif
