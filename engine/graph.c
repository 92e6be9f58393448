/* graph.c - graph ownership, value lookup and attribute getters. */
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static void attr_free(qd_attr *a)
{
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    for (int i = 0; a->strings && i < a->n; i++)
        free(a->strings[i]);
    free(a->strings);
    if (a->t) {
        qd_tensor_free(a->t);
        free(a->t);
    }
}

void qd_node_clear(qd_node *n)
{
    if (!n)
        return;
    if (n->priv && n->op && n->op->free_priv)
        n->op->free_priv(n->priv);
    for (int a = 0; a < n->nattr; a++)
        attr_free(&n->attrs[a]);
    free(n->attrs);
    free(n->name);
    free(n->op_type);
    free(n->in);
    free(n->out);
    free(n->bn_mean);
    memset(n, 0, sizeof *n);
}

void qd_graph_free(qd_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nnodes; i++)
        qd_node_clear(&g->nodes[i]);
    for (int i = 0; i < g->nvalues; i++) {
        free(g->values[i].name);
        if (g->values[i].init) {
            qd_tensor_free(g->values[i].init);
            free(g->values[i].init);
        }
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->path);
    free(g->producer);
    free(g);
}

int qd_graph_find_value(const qd_graph *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

const qd_attr *qd_attr_find(const qd_node *n, const char *name)
{
    for (int i = 0; i < n->nattr; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t qd_attr_int(const qd_node *n, const char *name, int64_t def)
{
    const qd_attr *a = qd_attr_find(n, name);
    return a && a->type == QD_ATTR_INT ? a->i : def;
}

float qd_attr_float(const qd_node *n, const char *name, float def)
{
    const qd_attr *a = qd_attr_find(n, name);
    return a && a->type == QD_ATTR_FLOAT ? a->f : def;
}

const char *qd_attr_str(const qd_node *n, const char *name, const char *def)
{
    const qd_attr *a = qd_attr_find(n, name);
    return a && a->type == QD_ATTR_STRING ? a->s : def;
}

int qd_attr_ints(const qd_node *n, const char *name, const int64_t **v)
{
    const qd_attr *a = qd_attr_find(n, name);
    if (!a || a->type != QD_ATTR_INTS) {
        *v = NULL;
        return 0;
    }
    *v = a->ints;
    return a->n;
}

int qd_attr_floats(const qd_node *n, const char *name, const float **v)
{
    const qd_attr *a = qd_attr_find(n, name);
    if (!a || a->type != QD_ATTR_FLOATS) {
        *v = NULL;
        return 0;
    }
    *v = a->floats;
    return a->n;
}

const qd_tensor *qd_node_const_input(const qd_graph *g, const qd_node *n, int i)
{
    if (!g || !qd_node_has_input(n, i))
        return NULL;
    return g->values[n->in[i]].init;
}

int *qd_graph_count_uses(const qd_graph *g)
{
    int *uses = calloc((size_t)g->nvalues + 1, sizeof *uses);
    if (!uses)
        return NULL;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            if (g->nodes[i].in[j] >= 0)
                uses[g->nodes[i].in[j]]++;
    for (int i = 0; i < g->noutputs; i++)
        uses[g->outputs[i]]++;
    return uses;
}

int qd_graph_sole_consumer(const qd_graph *g, const int *uses, int v)
{
    if (uses[v] != 1)
        return -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            if (g->nodes[i].in[j] == v)
                return i;
    return -1; /* a graph output */
}

void qd_graph_mark_readers(const qd_graph *g, int v, unsigned char *nodes)
{
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin && !nodes[i]; j++)
            nodes[i] = g->nodes[i].in[j] == v;
}

void qd_graph_mark_downstream(const qd_graph *g, unsigned char *nodes)
{
    for (int i = 0; i < g->nnodes; i++) {
        const qd_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->nin && !nodes[i]; j++) {
            int v = nd->in[j], p = v >= 0 ? g->values[v].producer : -1;
            nodes[i] = p >= 0 && nodes[p];
        }
    }
}

int qd_act_bounds(const qd_graph *g, const qd_node *n, float *lo, float *hi)
{
    float a = -INFINITY, b = INFINITY;
    if (!strcmp(n->op_type, "Relu")) {
        a = 0.0f;
    } else if (strcmp(n->op_type, "Clip") != 0) {
        return 0;
    } else if (n->opset < 11) {
        a = qd_attr_float(n, "min", -INFINITY);
        b = qd_attr_float(n, "max", INFINITY);
    } else {
        for (int j = 1; j < 3 && j < n->nin; j++) {
            if (!qd_node_has_input(n, j))
                continue;
            const qd_tensor *t = qd_node_const_input(g, n, j);
            if (!t || t->dtype != QD_F32 || qd_tensor_numel(t) != 1)
                return 0;
            *(j == 1 ? &a : &b) = *(const float *)t->data;
        }
    }
    *lo = a;
    *hi = b;
    return 1;
}
