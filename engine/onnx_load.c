/* onnx_load.c - ONNX ModelProto -> qd_graph. The only file that sees the
 * generated protobuf types (build/gen/onnx.pb-c.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph.h"
#include "ops.h"
#include "onnx.pb-c.h"
#include "util.h"

#define MAX_MODEL_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB limit */

/* ---- name -> value index hash table (open addressing) ---- */

typedef struct names {
    int *slot;   /* value index + 1, 0 = empty */
    size_t cap;  /* power of two */
} names;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int names_find(const names *t, const qd_graph *g, const char *name)
{
    for (size_t i = hash_str(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        int v = t->slot[i] - 1;
        if (v < 0)
            return -1;
        if (strcmp(g->values[v].name, name) == 0)
            return v;
    }
}

static void names_put(names *t, const qd_graph *g, int v)
{
    size_t i = hash_str(g->values[v].name) & (t->cap - 1);
    while (t->slot[i])
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = v + 1;
}

/* ---- loader state ---- */

typedef struct loader {
    qd_graph *g;
    names tab;
    int cap_values;
    qd_err *e;
} loader;

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

/* Add a value named name; returns its index or -1 (out of memory). */
static int add_value(loader *L, const char *name)
{
    qd_graph *g = L->g;
    if (g->nvalues == L->cap_values) {
        int nc = L->cap_values ? 2 * L->cap_values : 64;
        qd_value *nv = realloc(g->values, (size_t)nc * sizeof *nv);
        if (!nv)
            return -1;
        g->values = nv;
        L->cap_values = nc;
    }
    qd_value *v = &g->values[g->nvalues];
    memset(v, 0, sizeof *v);
    v->name = dupstr(name);
    v->ndim = -1;
    v->producer = -1;
    if (!v->name)
        return -1;
    names_put(&L->tab, g, g->nvalues);
    return g->nvalues++;
}

static int find_value(loader *L, const char *name)
{
    return names_find(&L->tab, L->g, name);
}

/* ---- tensors ---- */

static int dtype_ok(int32_t t)
{
    switch (t) {
    case QD_F32: case QD_U8: case QD_I8: case QD_U16: case QD_I16: case QD_I32:
    case QD_I64: case QD_BOOL: case QD_F64: case QD_U32: case QD_U64:
        return 1;
    default:
        return 0;
    }
}

static const char *onnx_dtype_name(int32_t t)
{
    static const char *const n[] = {"undefined", "float", "uint8", "int8", "uint16", "int16",
                                    "int32", "int64", "string", "bool", "float16", "double",
                                    "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return t >= 0 && t < (int32_t)(sizeof n / sizeof n[0]) ? n[t] : "unknown";
}

/* TensorProto -> qd_tensor (owned). what names the tensor in messages. */
static int convert_tensor(const Onnx__TensorProto *tp, qd_tensor *t, const char *what, qd_err *e)
{
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return qd_errf(e, QD_EINPUT, "%s uses external data, which is not supported (save the model with its weights inside)", what);
    if (tp->segment)
        return qd_errf(e, QD_EINPUT, "%s is segmented, which is not supported", what);
    int32_t dt = tp->has_data_type ? tp->data_type : 0;
    if (!dtype_ok(dt))
        return qd_errf(e, QD_EINPUT, "%s has unsupported dtype %s", what, onnx_dtype_name(dt));
    if (tp->n_dims > QD_MAX_DIMS)
        return qd_errf(e, QD_EINPUT, "%s has rank %zu (at most %d supported)", what, tp->n_dims, QD_MAX_DIMS);
    for (size_t i = 0; i < tp->n_dims; i++)
        if (tp->dims[i] < 0)
            return qd_errf(e, QD_EINPUT, "%s has negative dimension %lld", what, (long long)tp->dims[i]);
    /* the data present must match the shape before anything is allocated */
    uint64_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] && n > (UINT64_MAX >> 4) / (uint64_t)tp->dims[i])
            return qd_errf(e, QD_EINPUT, "%s is impossibly large", what);
        n *= (uint64_t)tp->dims[i];
    }
    size_t es = qd_dtype_size((qd_dtype)dt), have;
    if (tp->has_raw_data) {
        if (tp->raw_data.len / es != n || tp->raw_data.len % es)
            return qd_errf(e, QD_EINPUT, "%s has %zu bytes of raw data, its shape needs %llu", what,
                           tp->raw_data.len, (unsigned long long)(n * es));
    } else {
        switch (dt) {
        case QD_F32: have = tp->n_float_data; break;
        case QD_I64: have = tp->n_int64_data; break;
        case QD_F64: have = tp->n_double_data; break;
        case QD_U32: case QD_U64: have = tp->n_uint64_data; break;
        default: have = tp->n_int32_data; break;
        }
        if (have != n)
            return qd_errf(e, QD_EINPUT, "%s has %zu values, its shape needs %llu", what, have, (unsigned long long)n);
    }
    qd_err sub = {0};
    if (qd_tensor_resize(t, (qd_dtype)dt, (int)tp->n_dims, tp->dims, &sub))
        return qd_errf(e, sub.code, "%s: %s", what, sub.msg);
    if (tp->has_raw_data) {
        if (tp->raw_data.len)
            memcpy(t->data, tp->raw_data.data, tp->raw_data.len);
        return QD_OK;
    }
    for (int64_t i = 0; i < (int64_t)n; i++) {
        switch (t->dtype) {
        case QD_F32: ((float *)t->data)[i] = tp->float_data[i]; break;
        case QD_I64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
        case QD_F64: ((double *)t->data)[i] = tp->double_data[i]; break;
        case QD_U32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
        case QD_U64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
        case QD_I32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
        case QD_I16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
        case QD_U16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
        case QD_I8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
        case QD_U8: case QD_BOOL: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
        default: break;
        }
    }
    return QD_OK;
}

static qd_tensor *new_tensor(const Onnx__TensorProto *tp, const char *what, qd_err *e)
{
    qd_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        qd_errf(e, QD_EFAIL, "out of memory");
        return NULL;
    }
    if (convert_tensor(tp, t, what, e)) {
        qd_tensor_free(t);
        free(t);
        return NULL;
    }
    return t;
}

/* ---- attributes ---- */

static int convert_attr(const Onnx__AttributeProto *ap, qd_attr *a, const char *node, qd_err *e)
{
    a->name = dupstr(ap->name);
    if (!a->name)
        return qd_errf(e, QD_EFAIL, "out of memory");
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* old models: infer the type from the field set */
        if (ap->has_f) type = QD_ATTR_FLOAT;
        else if (ap->has_i) type = QD_ATTR_INT;
        else if (ap->has_s) type = QD_ATTR_STRING;
        else if (ap->t) type = QD_ATTR_TENSOR;
        else if (ap->n_floats) type = QD_ATTR_FLOATS;
        else if (ap->n_ints) type = QD_ATTR_INTS;
        else if (ap->n_strings) type = QD_ATTR_STRINGS;
        else type = QD_ATTR_OTHER;
    }
    switch (type) {
    case QD_ATTR_FLOAT: a->f = ap->f; break;
    case QD_ATTR_INT: a->i = ap->i; break;
    case QD_ATTR_STRING:
        a->s = malloc(ap->s.len + 1);
        if (!a->s)
            return qd_errf(e, QD_EFAIL, "out of memory");
        if (ap->s.len)
            memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        break;
    case QD_ATTR_TENSOR: {
        if (!ap->t)
            return qd_errf(e, QD_EINPUT, "node '%s' attribute '%s' has no tensor", node, a->name);
        char what[300];
        snprintf(what, sizeof what, "node '%s' attribute '%s'", node, a->name);
        a->t = new_tensor(ap->t, what, e);
        if (!a->t)
            return e->code;
        break;
    }
    case QD_ATTR_FLOATS:
        a->n = (int)ap->n_floats;
        a->floats = malloc((ap->n_floats + 1) * sizeof(float));
        if (!a->floats)
            return qd_errf(e, QD_EFAIL, "out of memory");
        if (ap->n_floats)
            memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        break;
    case QD_ATTR_INTS:
        a->n = (int)ap->n_ints;
        a->ints = malloc((ap->n_ints + 1) * sizeof(int64_t));
        if (!a->ints)
            return qd_errf(e, QD_EFAIL, "out of memory");
        if (ap->n_ints)
            memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        break;
    case QD_ATTR_STRINGS:
        a->strings = calloc(ap->n_strings + 1, sizeof(char *));
        if (!a->strings)
            return qd_errf(e, QD_EFAIL, "out of memory");
        for (size_t i = 0; i < ap->n_strings; i++, a->n++) {
            a->strings[i] = malloc(ap->strings[i].len + 1);
            if (!a->strings[i])
                return qd_errf(e, QD_EFAIL, "out of memory");
            if (ap->strings[i].len)
                memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = 0;
        }
        break;
    default:
        type = QD_ATTR_OTHER;
        break;
    }
    a->type = (qd_attr_type)type;
    return QD_OK;
}

/* ---- declared types of graph inputs/outputs ---- */

static int set_declared(qd_value *v, const Onnx__ValueInfoProto *vi, qd_err *e)
{
    if (!vi->type)
        return QD_OK;
    if (vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return qd_errf(e, QD_EINPUT, "graph input/output '%s' is not a tensor (sequences, maps and sparse tensors are not supported)", v->name);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (tt->has_elem_type) {
        if (!dtype_ok(tt->elem_type))
            return qd_errf(e, QD_EINPUT, "graph input/output '%s' has unsupported dtype %s", v->name, onnx_dtype_name(tt->elem_type));
        v->dtype = (qd_dtype)tt->elem_type;
    }
    if (tt->shape) {
        if (tt->shape->n_dim > QD_MAX_DIMS)
            return qd_errf(e, QD_EINPUT, "graph input/output '%s' has rank %zu (at most %d supported)", v->name, tt->shape->n_dim, QD_MAX_DIMS);
        v->ndim = (int)tt->shape->n_dim;
        for (size_t i = 0; i < tt->shape->n_dim; i++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
            v->dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0 ? d->dim_value : -1;
        }
    }
    return QD_OK;
}

/* ---- graph construction ---- */

/* The value a Constant node defines, from whichever value* attribute it has. */
static qd_tensor *constant_value(const Onnx__NodeProto *np, const char *node, qd_err *e)
{
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *ap = np->attribute[i];
        const char *an = ap->name ? ap->name : "";
        char what[300];
        snprintf(what, sizeof what, "Constant node '%s'", node);
        if (strcmp(an, "value") == 0 && ap->t)
            return new_tensor(ap->t, what, e);
        qd_tensor *t = calloc(1, sizeof *t);
        if (!t) {
            qd_errf(e, QD_EFAIL, "out of memory");
            return NULL;
        }
        int64_t nn;
        int rc = -1;
        if (strcmp(an, "value_float") == 0) {
            if ((rc = qd_tensor_resize(t, QD_F32, 0, NULL, e)) == 0)
                *(float *)t->data = ap->f;
        } else if (strcmp(an, "value_int") == 0) {
            if ((rc = qd_tensor_resize(t, QD_I64, 0, NULL, e)) == 0)
                *(int64_t *)t->data = ap->i;
        } else if (strcmp(an, "value_floats") == 0) {
            nn = (int64_t)ap->n_floats;
            if ((rc = qd_tensor_resize(t, QD_F32, 1, &nn, e)) == 0 && nn)
                memcpy(t->data, ap->floats, (size_t)nn * sizeof(float));
        } else if (strcmp(an, "value_ints") == 0) {
            nn = (int64_t)ap->n_ints;
            if ((rc = qd_tensor_resize(t, QD_I64, 1, &nn, e)) == 0 && nn)
                memcpy(t->data, ap->ints, (size_t)nn * sizeof(int64_t));
        } else if (strncmp(an, "sparse_value", 12) == 0 || strncmp(an, "value_string", 12) == 0) {
            qd_errf(e, QD_EINPUT, "Constant node '%s' uses attribute '%s', which is not supported", node, an);
        }
        if (rc == 0)
            return t;
        free(t);
        if (e->code)
            return NULL;
    }
    qd_errf(e, QD_EINPUT, "Constant node '%s' has no value attribute", node);
    return NULL;
}

static int add_node(loader *L, const Onnx__NodeProto *np, int idx, int opset)
{
    qd_graph *g = L->g;
    qd_err *e = L->e;
    qd_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    const char *op = np->op_type ? np->op_type : "";
    char defname[96];
    snprintf(defname, sizeof defname, "%s_%d", op, idx);
    n->name = dupstr(np->name && *np->name ? np->name : defname);
    n->op_type = dupstr(op);
    n->opset = opset;
    g->nnodes++; /* owned by g from here, freed with it on failure */
    if (!n->name || !n->op_type)
        return qd_errf(e, QD_EFAIL, "out of memory");
    if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx") != 0)
        return qd_errf(e, QD_EINPUT, "unsupported op '%s' of domain '%s' (node '%s')", op, np->domain, n->name);
    n->op = qd_op_find(op);
    if (!n->op)
        return qd_errf(e, QD_EINPUT, "unsupported op '%s' (node '%s', opset %d)", op, n->name, opset);
    n->nin = (int)np->n_input;
    n->nout = (int)np->n_output;
    n->in = malloc((np->n_input + 1) * sizeof(int));
    n->out = malloc((np->n_output + 1) * sizeof(int));
    n->attrs = calloc(np->n_attribute + 1, sizeof(qd_attr));
    if (!n->in || !n->out || !n->attrs)
        return qd_errf(e, QD_EFAIL, "out of memory");
    for (size_t i = 0; i < np->n_attribute; i++, n->nattr++)
        if (convert_attr(np->attribute[i], &n->attrs[i], n->name, e)) {
            n->nattr++;
            return e->code;
        }
    /* inputs are resolved after all outputs exist (nodes may be unsorted) */
    for (size_t i = 0; i < np->n_output; i++) {
        const char *on = np->output[i];
        if ((!on || !*on) && i == 0) /* only later outputs are optional */
            return qd_errf(e, QD_EINPUT, "node '%s' (%s): its first output has no name", n->name, op);
        if (!on || !*on) {
            n->out[i] = -1;
            continue;
        }
        int v = find_value(L, on);
        if (v >= 0)
            return qd_errf(e, QD_EINPUT, "node '%s' (%s) output '%s' is already defined by %s", n->name, op,
                           on, g->values[v].producer >= 0 ? "another node" : "a graph input or initializer");
        if ((v = add_value(L, on)) < 0)
            return qd_errf(e, QD_EFAIL, "out of memory");
        g->values[v].producer = g->nnodes - 1;
        n->out[i] = v;
    }
    return QD_OK;
}

static int resolve_inputs(loader *L, const Onnx__GraphProto *gp)
{
    qd_graph *g = L->g;
    int k = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->op_type && strcmp(np->op_type, "Constant") == 0 && !(np->domain && *np->domain))
            continue; /* folded into a constant value */
        qd_node *n = &g->nodes[k++];
        for (size_t j = 0; j < np->n_input; j++) {
            const char *in = np->input[j];
            if (!in || !*in) {
                n->in[j] = -1;
                continue;
            }
            int v = find_value(L, in);
            if (v < 0)
                return qd_errf(L->e, QD_EINPUT, "node '%s' (%s) input '%s' is not a graph input, initializer or node output",
                               n->name, n->op_type, in);
            n->in[j] = v;
        }
    }
    return QD_OK;
}

/* Kahn's algorithm; nodes end up in a dependency order that keeps the file's
 * order where it is already valid. */
static int topo_sort(loader *L)
{
    qd_graph *g = L->g;
    int nn = g->nnodes, rc = QD_OK;
    int *pending = calloc((size_t)nn + 1, sizeof(int));
    int *order = malloc(((size_t)nn + 1) * sizeof(int));
    int *done = calloc((size_t)g->nvalues + 1, sizeof(int));
    qd_node *sorted = malloc(((size_t)nn + 1) * sizeof(qd_node));
    if (!pending || !order || !done || !sorted) {
        rc = qd_errf(L->e, QD_EFAIL, "out of memory");
        goto out;
    }
    for (int v = 0; v < g->nvalues; v++)
        done[v] = g->values[v].producer < 0;
    int count = 0;
    /* repeated sweeps: simple, and graphs from exporters are nearly sorted */
    for (int progress = 1; progress && count < nn;) {
        progress = 0;
        for (int i = 0; i < nn; i++) {
            if (pending[i])
                continue;
            qd_node *n = &g->nodes[i];
            int ready = 1;
            for (int j = 0; j < n->nin && ready; j++)
                ready = n->in[j] < 0 || done[n->in[j]];
            if (!ready)
                continue;
            pending[i] = 1;
            order[count++] = i;
            for (int j = 0; j < n->nout; j++)
                if (n->out[j] >= 0)
                    done[n->out[j]] = 1;
            progress = 1;
        }
    }
    if (count < nn) {
        for (int i = 0; i < nn; i++)
            if (!pending[i]) {
                rc = qd_errf(L->e, QD_EINPUT, "graph is cyclic: node '%s' (%s) depends on its own output",
                             g->nodes[i].name, g->nodes[i].op_type);
                break;
            }
        goto out;
    }
    int *newidx = pending; /* reuse: old index -> new index */
    for (int i = 0; i < nn; i++) {
        sorted[i] = g->nodes[order[i]];
        newidx[order[i]] = i;
    }
    memcpy(g->nodes, sorted, (size_t)nn * sizeof(qd_node));
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].producer >= 0)
            g->values[v].producer = newidx[g->values[v].producer];
out:
    free(pending);
    free(order);
    free(done);
    free(sorted);
    return rc;
}

static int build_graph(loader *L, const Onnx__ModelProto *mp)
{
    qd_graph *g = L->g;
    qd_err *e = L->e;
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp)
        return qd_errf(e, QD_EINPUT, "not an ONNX model (no graph)");
    g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    g->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0)
            g->opset = o->has_version ? (int)o->version : 1;
    }
    if (g->opset < 0)
        g->opset = mp->n_opset_import ? QD_OPSET_MIN - 1 : 1; /* only other domains, or ir<3 */
    if (g->opset < QD_OPSET_MIN || g->opset > QD_OPSET_MAX)
        return qd_errf(e, QD_EINPUT, "opset %d is not supported (qdb supports opsets %d to %d)",
                       g->opset, QD_OPSET_MIN, QD_OPSET_MAX);
    char prod[256];
    snprintf(prod, sizeof prod, "%s%s%s", mp->producer_name ? mp->producer_name : "",
             mp->producer_version && *mp->producer_version ? " " : "",
             mp->producer_version ? mp->producer_version : "");
    g->producer = dupstr(prod);

    size_t nvals = gp->n_input + gp->n_initializer + 16;
    for (size_t i = 0; i < gp->n_node; i++)
        nvals += gp->node[i]->n_output;
    L->tab.cap = 64;
    while (L->tab.cap < 2 * nvals)
        L->tab.cap *= 2;
    L->tab.slot = calloc(L->tab.cap, sizeof(int));
    g->nodes = calloc(gp->n_node + 1, sizeof(qd_node));
    g->inputs = malloc((gp->n_input + 1) * sizeof(int));
    g->outputs = malloc((gp->n_output + 1) * sizeof(int));
    if (!L->tab.slot || !g->nodes || !g->inputs || !g->outputs || !g->producer)
        return qd_errf(e, QD_EFAIL, "out of memory");
    /* hash table never fills: values are bounded by nvals */

    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        const char *nm = tp->name ? tp->name : "";
        if (!*nm)
            return qd_errf(e, QD_EINPUT, "initializer %zu has no name", i);
        if (find_value(L, nm) >= 0)
            return qd_errf(e, QD_EINPUT, "initializer '%s' is defined twice", nm);
        int v = add_value(L, nm);
        if (v < 0)
            return qd_errf(e, QD_EFAIL, "out of memory");
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'", nm);
        if (!(g->values[v].init = new_tensor(tp, what, e)))
            return e->code;
        g->values[v].dtype = g->values[v].init->dtype;
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *nm = vi->name ? vi->name : "";
        int v = find_value(L, nm);
        if (v >= 0 && g->values[v].init)
            continue; /* an initializer also listed as input: treated as a constant */
        if (v >= 0)
            return qd_errf(e, QD_EINPUT, "graph input '%s' is listed twice", nm);
        if (!*nm)
            return qd_errf(e, QD_EINPUT, "graph input %zu has no name", i);
        if ((v = add_value(L, nm)) < 0)
            return qd_errf(e, QD_EFAIL, "out of memory");
        if (set_declared(&g->values[v], vi, e))
            return e->code;
        g->inputs[g->ninputs++] = v;
    }
    int idx = 0;
    for (size_t i = 0; i < gp->n_node; i++, idx++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->op_type && strcmp(np->op_type, "Constant") == 0 && !(np->domain && *np->domain)) {
            const char *nm = np->name && *np->name ? np->name : "Constant";
            if (np->n_output != 1 || !np->output[0] || !*np->output[0])
                return qd_errf(e, QD_EINPUT, "Constant node '%s' must have one output", nm);
            if (find_value(L, np->output[0]) >= 0)
                return qd_errf(e, QD_EINPUT, "Constant node '%s' output '%s' is already defined", nm, np->output[0]);
            int v = add_value(L, np->output[0]);
            if (v < 0)
                return qd_errf(e, QD_EFAIL, "out of memory");
            if (!(g->values[v].init = constant_value(np, nm, e)))
                return e->code;
            g->values[v].dtype = g->values[v].init->dtype;
            continue;
        }
        if (add_node(L, np, idx, g->opset))
            return e->code;
    }
    if (resolve_inputs(L, gp))
        return e->code;
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *nm = gp->output[i]->name ? gp->output[i]->name : "";
        int v = find_value(L, nm);
        if (v < 0)
            return qd_errf(e, QD_EINPUT, "graph output '%s' is not produced by any node", nm);
        if (set_declared(&g->values[v], gp->output[i], e))
            return e->code;
        g->outputs[g->noutputs++] = v;
    }
    if (g->noutputs == 0)
        return qd_errf(e, QD_EINPUT, "graph has no outputs");
    if (topo_sort(L))
        return e->code;
    for (int i = 0; i < g->nnodes; i++) {
        qd_node *n = &g->nodes[i];
        if (n->op->check && n->op->check(n, g, e)) {
            qd_err_prefix(e, "node '%s' (%s, opset %d)", n->name, n->op_type, n->opset);
            return e->code;
        }
    }
    return QD_OK;
}

qd_graph *qd_graph_load_mem(const void *buf, size_t len, const char *name, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) {
        qd_errf(e, QD_EINPUT, "%s: not a valid ONNX model (protobuf parse failed: file truncated or corrupt)", name);
        return NULL;
    }
    loader L = {0};
    L.e = e;
    L.g = calloc(1, sizeof *L.g);
    if (!L.g || !(L.g->path = dupstr(name))) {
        qd_errf(e, QD_EFAIL, "%s: out of memory", name);
        goto fail;
    }
    if (build_graph(&L, mp)) {
        qd_err_prefix(e, "%s", name);
        goto fail;
    }
    free(L.tab.slot);
    onnx__model_proto__free_unpacked(mp, NULL);
    return L.g;
fail:
    free(L.tab.slot);
    qd_graph_free(L.g);
    onnx__model_proto__free_unpacked(mp, NULL);
    return NULL;
}

qd_graph *qd_graph_load(const char *path, qd_err *e)
{
    size_t len = 0;
    void *buf = qd_read_file(path, MAX_MODEL_BYTES, &len, e);
    if (!buf)
        return NULL;
    qd_graph *g = qd_graph_load_mem(buf, len, path, e);
    free(buf);
    return g;
}

int qd_tensor_load_pb(const char *path, qd_tensor *t, char **name, qd_err *e)
{
    size_t len = 0;
    void *buf = qd_read_file(path, MAX_MODEL_BYTES, &len, e);
    if (!buf)
        return e ? e->code : QD_EINPUT;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp)
        return qd_errf(e, QD_EINPUT, "%s: not a valid ONNX TensorProto (truncated or corrupt)", path);
    int rc = convert_tensor(tp, t, "tensor", e);
    if (rc) {
        qd_err_prefix(e, "%s", path);
        qd_tensor_free(t);
    }
    else if (name && !(*name = dupstr(tp->name)))
        rc = qd_errf(e, QD_EFAIL, "out of memory");
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
