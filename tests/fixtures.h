/* fixtures.h - what the model-level tests build: a seeded subset of a
 * dataset, and a sim of a model with the built-in default config. Failures
 * print why and return NULL (the test's ok() then fails). */
#ifndef QD_FIXTURES_H
#define QD_FIXTURES_H

#include <stdio.h>

#include "data.h"
#include "qjson.h"
#include "sim.h"

/* n images of spec picked with seed (qd_data_limit). */
static inline qd_dataset *th_data(const char *spec, int64_t n, uint64_t seed)
{
    qd_err e = {0};
    qd_dataset *d = qd_data_open(spec, NULL, &e);
    if (!d || qd_data_limit(d, n, seed, &e)) {
        fprintf(stderr, "data %s: %s\n", spec, e.msg);
        qd_data_free(d);
        return NULL;
    }
    return d;
}

/* model under the built-in "default" config with the options o (o.cfg is
 * filled in). */
static inline qd_sim *th_sim(const char *model, qd_sim_opts o)
{
    qd_err e = {0};
    qd_qcfg cfg = {0};
    qd_graph *g = qd_qcfg_builtin("default", &cfg, &e) ? NULL : qd_graph_load(model, &e);
    qd_sim *s = NULL;
    if (g) {
        o.cfg = &cfg;
        s = qd_sim_new(g, &o, &e);
    }
    if (!s)
        fprintf(stderr, "sim of %s: %s\n", model, e.msg);
    qd_qcfg_clear(&cfg);
    return s;
}

#endif
