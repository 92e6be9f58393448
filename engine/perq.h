/* perq.h - per-quantizer analysis of a calibrated simulation (step 4 of the
 * PTQ debugging flowchart, AIMET's QuantAnalyzer):
 *   enable-one:  each quantizer alone at its settings, every other one
 *                bypassed - what that quantizer costs by itself;
 *   disable-one: each quantizer alone bypassed, every other active one on -
 *                what bypassing (or raising) just that one would recover.
 * Each is measured against FP32 reference logits like qd_qeval_run.
 *
 * The naive way runs the whole network once per quantizer. The cached way
 * runs each batch once in the base configuration (enable-one: all bypassed;
 * disable-one: all on) and leaves its values in the executor; per quantizer
 * it re-runs only the readers of the quantizer's tensor and what lies
 * downstream, into spare buffers swapped in for their outputs and swapped
 * out afterwards (no copies). An activation's producer is not re-run: its
 * value is the base value fake-quantized (enable-one) or the producer's
 * output captured during the base run (disable-one). With the same batch
 * size both ways give bit-identical results (tests/test_perq.c checks
 * this). A quantizer whose tensor comes out bit-identical to the base
 * run's, moving no int32 bias, re-runs nothing: its result for that batch
 * is the base run's. The spare buffers hold one batch; when a batch would exceed the
 * memory budget the batch shrinks, and when one image would, the analysis
 * falls back to the naive way. */
#ifndef QD_PERQ_H
#define QD_PERQ_H

#include "qeval.h"
#include "sim.h"

typedef enum qd_perq_mode { QD_PERQ_ENABLE_ONE, QD_PERQ_DISABLE_ONE } qd_perq_mode;

typedef struct qd_perq_opts {
    int64_t batch;            /* images per run, default 64 */
    size_t mem;               /* cache budget in bytes, default 2 GiB */
    int naive;                /* 1: one full evaluation per quantizer, no cache */
    qd_progress_fn progress;  /* done/total in quantizer-batches; non-zero stops */
    void *user;
} qd_perq_opts;

typedef struct qd_perq_info {
    int cached;               /* the cache was used (0: naive, asked or forced by the budget) */
    int64_t batch;            /* images per run used */
    size_t cache_bytes;       /* bytes the cache held */
    size_t image_bytes;       /* bytes the cache needs per image (the budget divided by it gives the batch) */
    int64_t nodes_run;        /* node executions */
    int64_t nodes_full;       /* node executions the naive way needs */
    int64_t unchanged;        /* quantizer-batches whose tensor came out bit-identical to the base
                                 run's, with no int32 bias moved: nothing ran again (cached way) */
    int64_t images;           /* covered by every result (fewer when stopped) */
    qd_qeval_result base;     /* the base configuration (cached way only) */
    double seconds;
    double cpu_seconds;       /* CPU time of the process meanwhile (all threads) */
    int stopped;
} qd_perq_info;

/* Measure quantizers qs[0..n) (indices into s; each must be active, i.e.
 * enabled, not 32-bit, with encodings) in mode on the images of ref (the
 * first ref->n of d). res gets one result per quantizer. The sim's
 * enabled flags are restored afterwards. info may be NULL. */
int qd_perq_run(qd_sim *s, qd_dataset *d, const qd_logits *ref, qd_perq_mode mode, const int *qs, int n,
                const qd_perq_opts *o, qd_qeval_result *res, qd_perq_info *info, qd_err *e);

/* Nodes (run[i] = 1) that must run again when quantizer qi is toggled:
 * the readers of its tensor and everything downstream (an activation's
 * producer is not among them: it computes the same value). run has
 * g->nnodes entries. */
void qd_perq_reach(qd_sim *s, int qi, unsigned char *run);

#endif
