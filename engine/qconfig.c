/* qconfig.c - freeing and lookups of the plain-data runtime config (the
 * parser is sessions/qjson.c). */
#include "qconfig.h"

#include <stdlib.h>
#include <string.h>

static void free_params(qd_qcfg_param *p, int n)
{
    for (int i = 0; i < n; i++)
        free(p[i].name);
    free(p);
}

void qd_qcfg_clear(qd_qcfg *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->kernels);
    free(c->hw_version);
    free_params(c->params, c->nparams);
    for (int i = 0; i < c->nops; i++) {
        free(c->ops[i].op_type);
        free_params(c->ops[i].params, c->ops[i].nparams);
        free(c->ops[i].kernels);
    }
    free(c->ops);
    for (int i = 0; i < c->ngroups; i++) {
        for (int j = 0; j < c->groups[i].n; j++)
            free(c->groups[i].ops[j]);
        free(c->groups[i].ops);
    }
    free(c->groups);
    memset(c, 0, sizeof *c);
}

const qd_qcfg_op *qd_qcfg_find_op(const qd_qcfg *c, const char *op_type)
{
    if (!c || !op_type)
        return NULL;
    for (int i = 0; i < c->nops; i++)
        if (strcmp(c->ops[i].op_type, op_type) == 0)
            return &c->ops[i];
    return NULL;
}
