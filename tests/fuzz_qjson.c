/* fuzz_qjson.c - libFuzzer harness for the JSON readers of sessions/qjson.c:
 * every input goes to the runtime-config parser, the encodings reader and
 * the overrides reader (both applied to one LeNet sim built at startup),
 * and, as a string, to the CLI override parser. Any bytes give QD_OK or an
 * error, never a crash or a leak. Seed corpus: tests/corpus/qjson/. Built
 * and run by `make fuzz` (from the repository root, for models/lenet.onnx). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qjson.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static qd_sim *sim;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qd_err e = {0};
    qd_qcfg c = {0};
    if (qd_qcfg_builtin("default", &c, &e))
        return 0;
    qd_graph *g = qd_graph_load("models/lenet.onnx", &e);
    qd_sim_opts o = {.cfg = &c, .act_bits = 8, .param_bits = 8, .per_channel = -1, .nthreads = 1};
    sim = g ? qd_sim_new(g, &o, &e) : NULL; /* without it only the config and spec parsers run */
    qd_qcfg_clear(&c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    qd_err e = {0};
    qd_qcfg c = {0};
    if (qd_qcfg_parse(text, size, "fuzz.json", &c, &e) == QD_OK) {
        volatile int n = c.nops + c.ngroups + c.nparams + c.nkernels;
        (void)n;
        qd_qcfg_clear(&c);
    }
    if (sim) {
        qd_err e1 = {0}, e2 = {0};
        qd_encodings_parse(sim, text, size, "fuzz.json", &e1);
        qd_overrides_parse(sim, text, size, "fuzz.json", &e2);
    }
    char *spec = malloc(size + 1);
    if (spec) {
        memcpy(spec, data, size);
        spec[size] = 0;
        char *pat = NULL;
        qd_override ov;
        qd_err e3 = {0};
        if (qd_override_parse(spec, &pat, &ov, &e3) == QD_OK)
            free(pat);
        free(spec);
    }
    return 0;
}
