/* node_tolerances.h - per-operator tolerances and the known-differences table
 * for test_nodes.c (the ONNX backend node tests).
 *
 * A float output passes when, for every element, |got - want| <= atol + rtol*|want|
 * (numpy.testing.assert_allclose's rule; NaN equals NaN, inf equals the same inf).
 * Integer and bool outputs must be exactly equal.
 *
 * The ONNX backend runner itself uses rtol 1e-3, atol 1e-7 for every node test
 * (onnx/backend/test/loader/__init__.py). qdb's default is tighter in rtol
 * (1e-4) and looser in atol (1e-5): most node tests are one element-wise op on
 * float32 data whose reference was computed by numpy in float32 or float64,
 * so a correct float32 kernel is within a few ulp (rtol ~1e-6); atol 1e-5
 * covers results that cancel to ~0 (sin(pi), x - x*1.0...). An op gets a
 * looser row only with the reason written next to it, and never looser than
 * the runner's own rtol 1e-3.
 *
 * A case's tolerance is the loosest row among the op types of its graph's
 * nodes (expanded function tests contain several ops). Both tables end with
 * a NULL row. */
#ifndef QD_NODE_TOLERANCES_H
#define QD_NODE_TOLERANCES_H

typedef struct node_tol {
    const char *op;
    double atol, rtol;
    const char *why;
} node_tol;

#define NODE_TOL_DEFAULT_ATOL 1e-5
#define NODE_TOL_DEFAULT_RTOL 1e-4

/* float16 outputs (Cast tests): half has an 11-bit significand, one ulp is
 * 2^-10 relative (~1e-3); allow one ulp plus rounding. */
#define NODE_TOL_F16_ATOL 1e-3
#define NODE_TOL_F16_RTOL 2e-3

/* Rows are added only when a correct kernel measurably needs them: run
 * `test_nodes -t -v` (default tolerance everywhere) and read the "worst error
 * ... of tolerance" of each PASS line. Measured with the default tolerance
 * on 547 passing cases: the worst is 0.0145 of it (test_batchnorm_epsilon),
 * then the expanded LayerNormalization tests (0.012), Conv (0.0097,
 * test_operator_conv), Gemm (0.0074): no op needs a row yet. */
static const node_tol node_tols[] = {
    {NULL, 0, 0, NULL},
};

/* Cases whose expected output qdb deliberately does not reproduce. Keep this
 * short and honest: every row says why; a row whose case starts passing is
 * reported so it can be removed. */
typedef struct node_known {
    const char *name;
    const char *why;
} node_known;

static const node_known node_known_cases[] = {
    /* Dropout in training mode with ratio > 0 draws a random mask; the
     * expected outputs come from numpy's generator with a fixed seed, which
     * no other runtime reproduces. qdb refuses
     * training_mode=true at run time ("qdb runs inference only"). The
     * ratio 0 variants (test_training_dropout_zero_ratio*) are deterministic
     * and run normally. */
    {"test_training_dropout", "random mask (training_mode, ratio 0.75); qdb is inference-only"},
    {"test_training_dropout_default", "random mask (training_mode, ratio 0.5); qdb is inference-only"},
    {"test_training_dropout_default_mask", "random mask (training_mode, ratio 0.5); qdb is inference-only"},
    {"test_training_dropout_mask", "random mask (training_mode, ratio 0.75); qdb is inference-only"},
    {NULL, NULL},
};

#endif
