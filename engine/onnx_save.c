/* onnx_save.c - qd_graph -> ONNX ModelProto bytes and files. Like
 * onnx_load.c, the only other file that sees the generated protobuf types. */
#include "onnx_save.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

#define MAX_MODEL_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB limit */

/* ---- the saver: an arena for the message tree, and the names in use ---- */

typedef struct saver {
    const qd_graph *g;
    qd_err *e;
    void **mem;            /* every allocation of the message tree */
    size_t nmem, capmem;
    const char **names;    /* open-addressing set of names in use (values, nodes, fresh ones) */
    size_t capnames;       /* power of two, at most half full */
    size_t nnames;
    Onnx__NodeProto **nodes;
    size_t nnodes, capnodes;
    Onnx__TensorProto **inits;
    size_t ninits, capinits;
} saver;

static void *alloc(saver *S, size_t size)
{
    if (S->nmem == S->capmem) {
        size_t nc = S->capmem ? 2 * S->capmem : 256;
        void **nm = realloc(S->mem, nc * sizeof *nm);
        if (!nm)
            return NULL;
        S->mem = nm;
        S->capmem = nc;
    }
    void *p = calloc(1, size ? size : 1);
    if (p)
        S->mem[S->nmem++] = p;
    return p;
}

static void saver_free(saver *S)
{
    for (size_t i = 0; i < S->nmem; i++)
        free(S->mem[i]);
    free(S->mem);
    free(S->names);
    free(S->nodes);
    free(S->inits);
}

static int oom(saver *S)
{
    return qd_errf(S->e, QD_EFAIL, "out of memory");
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int name_used(const saver *S, const char *s)
{
    for (size_t i = hash_str(s) & (S->capnames - 1); S->names[i]; i = (i + 1) & (S->capnames - 1))
        if (strcmp(S->names[i], s) == 0)
            return 1;
    return 0;
}

/* Add s (borrowed; must outlive the saver) to the set of names in use. */
static int name_add(saver *S, const char *s)
{
    if (2 * (S->nnames + 1) > S->capnames) {
        size_t nc = S->capnames ? 2 * S->capnames : 1024;
        const char **nn = calloc(nc, sizeof *nn);
        if (!nn)
            return oom(S);
        for (size_t i = 0; i < S->capnames; i++) {
            if (!S->names[i])
                continue;
            size_t j = hash_str(S->names[i]) & (nc - 1);
            while (nn[j])
                j = (j + 1) & (nc - 1);
            nn[j] = S->names[i];
        }
        free(S->names);
        S->names = nn;
        S->capnames = nc;
    }
    if (name_used(S, s))
        return QD_OK;
    size_t i = hash_str(s) & (S->capnames - 1);
    while (S->names[i])
        i = (i + 1) & (S->capnames - 1);
    S->names[i] = s;
    S->nnames++;
    return QD_OK;
}

/* A name "<base><suffix>" (then "<base><suffix>_2", "_3", ...) not used in
 * the graph, reserved; NULL on out of memory. */
static char *fresh_name(saver *S, const char *base, const char *suffix)
{
    size_t n = strlen(base) + strlen(suffix) + 24;
    char *s = alloc(S, n);
    if (!s)
        return NULL;
    snprintf(s, n, "%s%s", base, suffix);
    for (int k = 2; name_used(S, s); k++)
        snprintf(s, n, "%s%s_%d", base, suffix, k);
    return name_add(S, s) ? NULL : s;
}

static char *arena_str(saver *S, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = alloc(S, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int push(saver *S, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        void **na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return oom(S);
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = item;
    return QD_OK;
}

static int push_node(saver *S, Onnx__NodeProto *np)
{
    return push(S, (void ***)&S->nodes, &S->nnodes, &S->capnodes, np);
}

static int push_init(saver *S, Onnx__TensorProto *tp)
{
    return push(S, (void ***)&S->inits, &S->ninits, &S->capinits, tp);
}

/* ---- tensors ---- */

static int host_is_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* TensorProto named name holding t's data as little-endian raw_data (t's
 * buffer is borrowed on little-endian hosts). */
static Onnx__TensorProto *tensor_proto(saver *S, const char *name, const qd_tensor *t)
{
    size_t es = qd_dtype_size(t->dtype);
    if (!es || t->dtype == QD_F16) {
        qd_errf(S->e, QD_EINPUT, "tensor '%s' has dtype %s, which qdb cannot save", name, qd_dtype_name(t->dtype));
        return NULL;
    }
    Onnx__TensorProto *tp = alloc(S, sizeof *tp);
    int64_t *dims = alloc(S, (size_t)(t->ndim + 1) * sizeof *dims);
    if (!tp || !dims) {
        oom(S);
        return NULL;
    }
    onnx__tensor_proto__init(tp);
    tp->name = (char *)name;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->n_dims = (size_t)t->ndim;
    tp->dims = dims;
    memcpy(dims, t->shape, (size_t)t->ndim * sizeof *dims);
    size_t nb = qd_tensor_nbytes(t);
    tp->has_raw_data = 1;
    tp->raw_data.len = nb;
    tp->raw_data.data = t->data;
    if (nb && !host_is_le() && es > 1) {
        unsigned char *d = alloc(S, nb);
        if (!d) {
            oom(S);
            return NULL;
        }
        const unsigned char *s = t->data;
        for (size_t i = 0; i < nb; i += es)
            for (size_t b = 0; b < es; b++)
                d[i + b] = s[i + es - 1 - b];
        tp->raw_data.data = d;
    }
    return tp;
}

/* Scalar float initializer named name. */
static int scalar_init(saver *S, const char *name, float v)
{
    qd_tensor *t = alloc(S, sizeof *t);
    float *d = alloc(S, sizeof *d);
    if (!t || !d)
        return oom(S);
    *d = v;
    t->dtype = QD_F32;
    t->ndim = 0;
    t->data = d;
    Onnx__TensorProto *tp = tensor_proto(S, name, t);
    return tp ? push_init(S, tp) : S->e->code;
}

/* ---- value infos ---- */

static Onnx__ValueInfoProto *value_info(saver *S, const qd_value *v)
{
    Onnx__ValueInfoProto *vi = alloc(S, sizeof *vi);
    if (!vi) {
        oom(S);
        return NULL;
    }
    onnx__value_info_proto__init(vi);
    vi->name = v->name;
    qd_dtype dt = v->init ? v->init->dtype : v->dtype;
    int ndim = v->init ? v->init->ndim : v->ndim;
    const int64_t *dims = v->init ? v->init->shape : v->dims;
    if (dt == QD_UNDEF)
        return vi; /* nothing declared */
    Onnx__TypeProto *tp = alloc(S, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(S, sizeof *tt);
    if (!tp || !tt) {
        oom(S);
        return NULL;
    }
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)dt;
    vi->type = tp;
    if (ndim < 0)
        return vi;
    Onnx__TensorShapeProto *sh = alloc(S, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = alloc(S, (size_t)(ndim + 1) * sizeof *dv);
    if (!sh || !dv) {
        oom(S);
        return NULL;
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)ndim;
    sh->dim = dv;
    for (int i = 0; i < ndim; i++) {
        if (!(dv[i] = alloc(S, sizeof *dv[i]))) {
            oom(S);
            return NULL;
        }
        onnx__tensor_shape_proto__dimension__init(dv[i]);
        if (dims[i] >= 0) {
            dv[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dv[i]->dim_value = dims[i];
        }
    }
    tt->shape = sh;
    return vi;
}

/* ---- nodes ---- */

static int convert_attr(saver *S, const qd_node *n, const qd_attr *a, Onnx__AttributeProto *ap)
{
    onnx__attribute_proto__init(ap);
    ap->name = a->name;
    ap->has_type = 1;
    switch (a->type) {
    case QD_ATTR_FLOAT:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        ap->has_f = 1;
        ap->f = a->f;
        break;
    case QD_ATTR_INT:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        ap->has_i = 1;
        ap->i = a->i;
        break;
    case QD_ATTR_STRING:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s;
        ap->s.len = a->s ? strlen(a->s) : 0;
        break;
    case QD_ATTR_TENSOR:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        if (!(ap->t = tensor_proto(S, "", a->t))) {
            qd_err_prefix(S->e, "node '%s' attribute '%s'", n->name, a->name);
            return S->e->code;
        }
        break;
    case QD_ATTR_FLOATS:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        ap->n_floats = (size_t)a->n;
        ap->floats = a->floats;
        break;
    case QD_ATTR_INTS:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        ap->n_ints = (size_t)a->n;
        ap->ints = a->ints;
        break;
    case QD_ATTR_STRINGS:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
        ap->n_strings = (size_t)a->n;
        if (!(ap->strings = alloc(S, (size_t)(a->n + 1) * sizeof *ap->strings)))
            return oom(S);
        for (int i = 0; i < a->n; i++) {
            ap->strings[i].data = (uint8_t *)a->strings[i];
            ap->strings[i].len = strlen(a->strings[i]);
        }
        break;
    default:
        return qd_errf(S->e, QD_EINPUT,
                       "node '%s' (%s) attribute '%s' is a graph, sparse tensor or type, which qdb cannot save",
                       n->name, n->op_type, a->name);
    }
    return QD_OK;
}

/* A NodeProto with room for nin inputs and nout outputs (names to be set). */
static Onnx__NodeProto *new_node(saver *S, const char *name, const char *op_type, int nin, int nout)
{
    Onnx__NodeProto *np = alloc(S, sizeof *np);
    char **in = alloc(S, (size_t)(nin + 1) * sizeof *in), **out = alloc(S, (size_t)(nout + 1) * sizeof *out);
    if (!np || !in || !out) {
        oom(S);
        return NULL;
    }
    onnx__node_proto__init(np);
    np->name = (char *)name;
    np->op_type = (char *)op_type;
    np->n_input = (size_t)nin;
    np->input = in;
    np->n_output = (size_t)nout;
    np->output = out;
    return np;
}

static char *vname(const qd_graph *g, int v)
{
    return v >= 0 ? g->values[v].name : "";
}

/* The Relu or Clip split off a fused Conv: reads x, writes y. */
static int clip_node(saver *S, const qd_node *n, char *x, char *y)
{
    const qd_graph *g = S->g;
    int relu = n->clip_lo == 0.0f && isinf(n->clip_hi) && n->clip_hi > 0;
    int has_lo = !isinf(n->clip_lo), has_hi = !isinf(n->clip_hi);
    char *name = fresh_name(S, n->name, relu ? "_relu" : "_clip");
    if (!name)
        return oom(S);
    int nin = relu || g->opset < 11 ? 1 : has_hi ? 3 : has_lo ? 2 : 1;
    Onnx__NodeProto *np = new_node(S, name, relu ? "Relu" : "Clip", nin, 1);
    if (!np)
        return S->e->code;
    np->input[0] = x;
    np->output[0] = y;
    if (!relu && g->opset >= 11) {
        char *lo = has_lo ? fresh_name(S, name, "_min") : "";
        char *hi = has_hi ? fresh_name(S, name, "_max") : "";
        if (!lo || !hi)
            return oom(S);
        if ((has_lo && scalar_init(S, lo, n->clip_lo)) || (has_hi && scalar_init(S, hi, n->clip_hi)))
            return S->e->code;
        if (nin > 1)
            np->input[1] = lo;
        if (nin > 2)
            np->input[2] = hi;
    } else if (!relu) {
        Onnx__AttributeProto **at = alloc(S, 2 * sizeof *at);
        if (!at)
            return oom(S);
        np->attribute = at;
        const char *an[2] = {"min", "max"};
        float av[2] = {n->clip_lo, n->clip_hi};
        for (int k = 0; k < 2; k++) {
            if (isinf(av[k]))
                continue;
            Onnx__AttributeProto *ap = alloc(S, sizeof *ap);
            if (!ap)
                return oom(S);
            onnx__attribute_proto__init(ap);
            ap->name = (char *)an[k];
            ap->has_type = 1;
            ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
            ap->has_f = 1;
            ap->f = av[k];
            at[np->n_attribute++] = ap;
        }
    }
    return push_node(S, np);
}

static int convert_node(saver *S, const qd_node *n)
{
    const qd_graph *g = S->g;
    Onnx__NodeProto *np = new_node(S, n->name, n->op_type, n->nin, n->nout);
    if (!np)
        return S->e->code;
    for (int j = 0; j < n->nin; j++)
        np->input[j] = vname(g, n->in[j]);
    for (int j = 0; j < n->nout; j++)
        np->output[j] = vname(g, n->out[j]);
    if (n->nattr) {
        np->n_attribute = (size_t)n->nattr;
        if (!(np->attribute = alloc(S, (size_t)n->nattr * sizeof *np->attribute)))
            return oom(S);
        for (int a = 0; a < n->nattr; a++) {
            if (!(np->attribute[a] = alloc(S, sizeof *np->attribute[a])))
                return oom(S);
            if (convert_attr(S, n, &n->attrs[a], np->attribute[a]))
                return S->e->code;
        }
    }
    if (!n->fused_clip || n->nout < 1 || n->out[0] < 0)
        return push_node(S, np);
    /* un-fuse: Conv -> fresh value -> Relu/Clip -> the value the Conv wrote */
    char *mid = fresh_name(S, g->values[n->out[0]].name, "_preact");
    if (!mid)
        return oom(S);
    np->output[0] = mid;
    if (push_node(S, np))
        return S->e->code;
    return clip_node(S, n, mid, g->values[n->out[0]].name);
}

/* ---- the model ---- */

/* Lowest IR version that knows the default-domain opset. */
static int64_t ir_for_opset(int opset)
{
    return opset >= 15 ? 8 : opset >= 12 ? 7 : opset >= 11 ? 6 : opset >= 10 ? 5 : opset >= 9 ? 4 : 3;
}

static int build(saver *S, Onnx__ModelProto *mp)
{
    const qd_graph *g = S->g;
    qd_err *e = S->e;
    for (int v = 0; v < g->nvalues; v++)
        if (name_add(S, g->values[v].name))
            return e->code;
    for (int i = 0; i < g->nnodes; i++)
        if (name_add(S, g->nodes[i].name))
            return e->code;

    /* initializers: constants something reads */
    int *uses = qd_graph_count_uses(g);
    if (!uses)
        return oom(S);
    for (int v = 0; v < g->nvalues; v++) {
        if (!uses[v] || !g->values[v].init)
            continue;
        Onnx__TensorProto *tp = tensor_proto(S, g->values[v].name, g->values[v].init);
        if (!tp || push_init(S, tp)) {
            free(uses);
            return e->code;
        }
    }
    free(uses);
    for (int i = 0; i < g->nnodes; i++)
        if (convert_node(S, &g->nodes[i]))
            return e->code;

    int64_t ir = ir_for_opset(g->opset);
    if (g->ir_version > ir)
        ir = g->ir_version;
    /* before IR 4 every initializer must also be a graph input */
    size_t nin = (size_t)g->ninputs + (ir < 4 ? S->ninits : 0);
    Onnx__GraphProto *gp = alloc(S, sizeof *gp);
    Onnx__ValueInfoProto **ins = alloc(S, (nin + 1) * sizeof *ins);
    Onnx__ValueInfoProto **outs = alloc(S, ((size_t)g->noutputs + 1) * sizeof *outs);
    Onnx__OperatorSetIdProto *os = alloc(S, sizeof *os);
    Onnx__OperatorSetIdProto **osv = alloc(S, sizeof *osv);
    if (!gp || !ins || !outs || !os || !osv)
        return oom(S);
    onnx__graph_proto__init(gp);
    for (int i = 0; i < g->ninputs; i++)
        if (!(ins[i] = value_info(S, &g->values[g->inputs[i]])))
            return e->code;
    for (size_t i = g->ninputs; i < nin; i++) {
        int v = qd_graph_find_value(g, S->inits[i - g->ninputs]->name);
        qd_value fake = {0};
        if (v < 0) { /* a clip bound made here: float scalar */
            fake.name = S->inits[i - g->ninputs]->name;
            fake.dtype = QD_F32;
            fake.ndim = 0;
        }
        if (!(ins[i] = value_info(S, v >= 0 ? &g->values[v] : &fake)))
            return e->code;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (!(outs[i] = value_info(S, &g->values[g->outputs[i]])))
            return e->code;
    gp->name = "qdb";
    gp->n_node = S->nnodes;
    gp->node = S->nodes;
    gp->n_initializer = S->ninits;
    gp->initializer = S->inits;
    gp->n_input = nin;
    gp->input = ins;
    gp->n_output = (size_t)g->noutputs;
    gp->output = outs;

    onnx__operator_set_id_proto__init(os);
    os->domain = "";
    os->has_version = 1;
    os->version = g->opset;
    osv[0] = os;
    mp->has_ir_version = 1;
    mp->ir_version = ir;
    mp->n_opset_import = 1;
    mp->opset_import = osv;
    mp->producer_name = "qdb";
    mp->graph = gp;
    if (g->path && !(mp->doc_string = arena_str(S, g->path)))
        return oom(S);
    return QD_OK;
}

int qd_graph_save_mem(const qd_graph *g, void **buf, size_t *len, qd_err *e)
{
    qd_err local = {0};
    if (!e)
        e = &local;
    *buf = NULL;
    *len = 0;
    saver S = {.g = g, .e = e};
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    int rc = build(&S, &mp);
    if (rc)
        goto out;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    if (n > MAX_MODEL_BYTES) {
        rc = qd_errf(e, QD_EINPUT, "model would be %zu bytes, over protobuf's 2 GiB limit", n);
        goto out;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        rc = qd_errf(e, QD_EFAIL, "out of memory (%zu bytes)", n);
        goto out;
    }
    if (onnx__model_proto__pack(&mp, b) != n) {
        free(b);
        rc = qd_errf(e, QD_EFAIL, "protobuf packing gave an unexpected size");
        goto out;
    }
    *buf = b;
    *len = n;
out:
    saver_free(&S);
    return rc;
}

int qd_graph_save(const qd_graph *g, const char *path, qd_err *e)
{
    void *buf;
    size_t len;
    int rc = qd_graph_save_mem(g, &buf, &len, e);
    if (rc)
        return rc;
    rc = qd_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}
