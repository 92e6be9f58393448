/* fuzz_load.c - libFuzzer harness for the ONNX loader and executor: the bytes
 * are a model; when it loads, it runs once on small inputs of the declared
 * shapes (dynamic dims = 1), then everything is freed.
 * Seed corpus: tests/corpus/load/. Built and run by `make fuzz`.
 * QD_FUZZ_VERBOSE=1 prints what happened to each input (to check that the
 * seeds get as far as running): build/fuzz/fuzz_load -runs=0 tests/corpus/load */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "graph.h"

#define MAX_ELEMS 4096 /* per input; larger declared inputs are not run */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Deterministic small values: floats in [-1.5, 1.5], integers in {0, 1, 2}
 * (valid indices, axes and counts for most ops), bools alternating. */
static void fill(qd_tensor *t)
{
    int64_t n = qd_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case QD_F32: ((float *)t->data)[i] = (float)(i % 7 - 3) * 0.5f; break;
        case QD_F64: ((double *)t->data)[i] = (double)(i % 7 - 3) * 0.5; break;
        case QD_I64: ((int64_t *)t->data)[i] = i % 3; break;
        case QD_I32: ((int32_t *)t->data)[i] = (int32_t)(i % 3); break;
        default: memset((char *)t->data + (size_t)i * qd_dtype_size(t->dtype), (int)(i & 1),
                        qd_dtype_size(t->dtype));
        }
    }
}

/* Builds one tensor per graph input; returns 0 when any input cannot be made
 * small (unknown rank, unsupported dtype, too many elements). */
static int make_inputs(const qd_graph *g, qd_tensor *in)
{
    for (int i = 0; i < g->ninputs; i++) {
        const qd_value *v = &g->values[g->inputs[i]];
        qd_dtype dt = v->dtype == QD_UNDEF ? QD_F32 : v->dtype;
        if (v->ndim < 0 || v->ndim > QD_MAX_DIMS || !qd_dtype_size(dt))
            return 0;
        int64_t shape[QD_MAX_DIMS], n = 1;
        for (int d = 0; d < v->ndim; d++) {
            shape[d] = v->dims[d] < 0 ? 1 : v->dims[d];
            if (shape[d] > MAX_ELEMS || (n *= shape[d]) > MAX_ELEMS)
                return 0;
        }
        qd_err e = {0};
        if (qd_tensor_resize(&in[i], dt, v->ndim, shape, &e))
            return 0;
        fill(&in[i]);
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("QD_FUZZ_VERBOSE") != NULL;
    qd_err e = {0};
    qd_graph *g = qd_graph_load_mem(data, size, "fuzz.onnx", &e);
    if (!g) {
        if (verbose)
            fprintf(stderr, "fuzz_load: load: %s\n", e.msg);
        return 0;
    }
    qd_tensor *in = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *in);
    if (in && make_inputs(g, in)) {
        memset(&e, 0, sizeof e);
        qd_exec *x = qd_exec_new(g, 1, &e);
        if (x) {
            qd_exec_set_max_bytes(x, 1 << 20); /* keep each run fast */
            memset(&e, 0, sizeof e);
            int rc = qd_exec_run(x, in, g->ninputs, &e);
            if (rc == QD_OK)
                for (int i = 0; i < g->noutputs; i++)
                    (void)qd_exec_output(x, i);
            if (verbose)
                fprintf(stderr, "fuzz_load: run: %s\n", rc ? e.msg : "ok");
            qd_exec_free(x);
        } else if (verbose) {
            fprintf(stderr, "fuzz_load: exec_new: %s\n", e.msg);
        }
    } else if (verbose) {
        fprintf(stderr, "fuzz_load: inputs not made small (unknown rank/dtype or > %d elements)\n",
                MAX_ELEMS);
    }
    for (int i = 0; in && i < g->ninputs; i++)
        qd_tensor_free(&in[i]);
    free(in);
    qd_graph_free(g);
    return 0;
}
