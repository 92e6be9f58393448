/* test_onnx_save.c - qd_graph_save: a fused graph saved and loaded again
 * computes what it computed before (bundled models, Constant-node weights,
 * Clip fused at opset 13 and 10); attributes of every type survive; bad
 * attributes and unwritable paths fail cleanly. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "fuse.h"
#include "harness.h"
#include "npy.h"
#include "onnx_save.h"

#define OUT "tests/out/onnx_save"

static int find_node(const qd_graph *g, const char *op)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].op_type, op) == 0)
            return i;
    return -1;
}

static int count_op(const qd_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += strcmp(g->nodes[i].op_type, op) == 0;
    return n;
}

/* Run g on x; copy output 0 into y. */
static int run(const qd_graph *g, const qd_tensor *x, qd_tensor *y)
{
    qd_err e = {0};
    qd_exec *ex = qd_exec_new(g, 1, &e);
    int rc = ex ? qd_exec_run(ex, x, 1, &e) : 1;
    if (!rc)
        rc = qd_tensor_copy(y, qd_exec_output(ex, 0), &e);
    if (rc)
        fprintf(stderr, "run %s: %s\n", g->path, e.msg);
    qd_exec_free(ex);
    return rc;
}

/* max |a - b| <= rtol * max |a| */
static void same_outputs(const qd_graph *a, const qd_graph *b, const qd_tensor *x, double rtol, const char *what)
{
    qd_tensor ya = {0}, yb = {0};
    if (run(a, x, &ya) || run(b, x, &yb)) {
        ok(0, "%s: both run", what);
    } else if (qd_tensor_numel(&ya) != qd_tensor_numel(&yb) || ya.ndim != yb.ndim) {
        ok(0, "%s: output shapes differ", what);
    } else {
        double md = 0, mr = 0;
        const float *p = ya.data, *q = yb.data;
        for (int64_t i = 0; i < qd_tensor_numel(&ya); i++) {
            md = fmax(md, fabs((double)p[i] - q[i]));
            mr = fmax(mr, fabs((double)p[i]));
        }
        ok(md <= rtol * mr && mr > 0, "%s: saved vs in-memory max diff %.3g (max %.3g)", what, md, mr);
    }
    qd_tensor_free(&ya);
    qd_tensor_free(&yb);
}

static void random_input(qd_tensor *x, int64_t n, int64_t c, int64_t h, int64_t w, unsigned seed)
{
    int64_t shape[4] = {n, c, h, w};
    qd_err e = {0};
    if (qd_tensor_resize(x, QD_F32, 4, shape, &e))
        abort();
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    float *p = x->data;
    for (int64_t i = 0; i < qd_tensor_numel(x); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((s >> 40) & 0xffffff) / 16777216.0f; /* [0, 1) like the images */
    }
}

/* Save g to path and load it back (NULL on failure, reported). */
static qd_graph *roundtrip(const qd_graph *g, const char *path)
{
    qd_err e = {0};
    int rc = qd_graph_save(g, path, &e);
    ok(rc == 0, "save %s: %s", path, e.msg);
    if (rc)
        return NULL;
    qd_graph *r = qd_graph_load(path, &e);
    ok(r != NULL, "load saved %s: %s", path, e.msg);
    return r;
}

static void bundled(const char *arch)
{
    char src[256], dst[256];
    snprintf(src, sizeof src, "models/%s.onnx", arch);
    snprintf(dst, sizeof dst, OUT "/%s.onnx", arch);
    qd_err e = {0};
    qd_graph *g = qd_graph_load(src, &e);
    ok(g != NULL, "load %s: %s", src, e.msg);
    if (!g)
        return;
    qd_fuse_stats st;
    ok(qd_graph_fuse(g, &st, &e) == 0, "fuse %s: %s", arch, e.msg);
    qd_graph *r = roundtrip(g, dst);
    if (r) {
        ok(r->nnodes == g->nnodes + st.act_fused, "%s: %d nodes = %d fused + %d split activations", arch,
           r->nnodes, g->nnodes, st.act_fused);
        ok(count_op(r, "BatchNormalization") == count_op(g, "BatchNormalization"), "%s: BNs stay folded", arch);
        ok(r->opset == g->opset && r->ninputs == 1 && r->noutputs == 1, "%s: opset, one input, one output", arch);
        const qd_value *in = &r->values[r->inputs[0]], *out = &r->values[r->outputs[0]];
        ok(strcmp(in->name, "image") == 0 && in->dtype == QD_F32 && in->ndim == 4 && in->dims[0] == -1 &&
               in->dims[1] == 1 && in->dims[2] == 28 && in->dims[3] == 28,
           "%s: input image Nx1x28x28 float", arch);
        ok(strcmp(out->name, "logits") == 0 && out->dtype == QD_F32 && out->ndim == 2 && out->dims[1] == 10,
           "%s: output logits Nx10 float", arch);
        qd_tensor x = {0};
        random_input(&x, 3, 1, 28, 28, 7);
        same_outputs(g, r, &x, 1e-6, arch);
        /* fusing the saved graph again gives the graph we saved */
        qd_fuse_stats st2;
        ok(qd_graph_fuse(r, &st2, &e) == 0 && st2.act_fused == st.act_fused && st2.bn_folded == 0 &&
               r->nnodes == g->nnodes,
           "%s: refusing the saved graph fuses the same %d activations", arch, st.act_fused);
        qd_tensor_free(&x);
    }
    if (strcmp(arch, "mobilenet_v2") == 0 && r) {
        qd_graph_free(r);
        r = qd_graph_load(dst, &e);
        int c = r ? find_node(r, "Clip") : -1;
        const qd_tensor *lo = c >= 0 ? qd_node_const_input(r, &r->nodes[c], 1) : NULL;
        const qd_tensor *hi = c >= 0 ? qd_node_const_input(r, &r->nodes[c], 2) : NULL;
        ok(lo && hi && *(float *)lo->data == 0.0f && *(float *)hi->data == 6.0f,
           "mobilenet_v2: fused ReLU6 saved as Clip with constant min 0, max 6");
        ok(c >= 0 && r->nodes[c].in[0] >= 0 && r->values[r->nodes[c].in[0]].producer >= 0 &&
               strcmp(r->nodes[r->values[r->nodes[c].in[0]].producer].op_type, "Conv") == 0,
           "mobilenet_v2: the Clip reads its Conv");
    }
    qd_graph_free(r);
    qd_graph_free(g);
}

static void constants(void)
{
    qd_err e = {0};
    const char *src = "tests/data/const_weights.onnx";
    qd_graph *g = qd_graph_load(src, &e), *raw = qd_graph_load(src, &e);
    qd_tensor x = {0};
    ok(g && raw && qd_npy_read("tests/data/const_weights_in.npy", &x, &e) == 0, "load %s: %s", src, e.msg);
    if (!g || !raw || e.code)
        goto out;
    /* unfused: every Constant comes back as an initializer */
    qd_graph *r = roundtrip(raw, OUT "/const_raw.onnx");
    if (r) {
        ok(r->nnodes == raw->nnodes, "constants: %d nodes as before", r->nnodes);
        int w = qd_graph_find_value(r, "w");
        ok(w < 0 || r->values[w].init, "constants: weights are constants");
        same_outputs(raw, r, &x, 1e-6, "constants, unfused");
    }
    qd_graph_free(r);
    ok(qd_graph_fuse(g, NULL, &e) == 0, "fuse constants: %s", e.msg);
    r = roundtrip(g, OUT "/const_fused.onnx");
    if (r) {
        ok(count_op(r, "Relu") == 1 && count_op(r, "BatchNormalization") == 0, "constants: BN folded, Relu split");
        same_outputs(raw, r, &x, 1e-5, "constants, fused then saved vs original");
    }
    qd_graph_free(r);
out:
    qd_tensor_free(&x);
    qd_graph_free(g);
    qd_graph_free(raw);
}

/* Clip fused at opset 13 and saved at opset 10 (bounds as attributes); a
 * clamp with no lower bound. */
static void clips(void)
{
    qd_err e = {0};
    qd_graph *g = qd_graph_load("tests/data/fuse.onnx", &e);
    qd_tensor x = {0};
    ok(g && qd_npy_read("tests/data/fuse_in.npy", &x, &e) == 0, "load fuse.onnx: %s", e.msg);
    if (!g || e.code)
        goto out;
    ok(qd_graph_fuse(g, NULL, &e) == 0, "fuse: %s", e.msg);
    qd_graph *r = roundtrip(g, OUT "/fuse13.onnx");
    if (r) {
        same_outputs(g, r, &x, 1e-6, "fuse.onnx, opset 13");
        int c = find_node(r, "Clip");
        ok(c >= 0 && r->nodes[c].nin == 3 && qd_node_const_input(r, &r->nodes[c], 1), "opset 13: Clip bounds are inputs");
    }
    qd_graph_free(r);
    g->opset = 10; /* Conv, Relu, Add, Concat mean the same at 10 */
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i].opset = 10;
    r = roundtrip(g, OUT "/fuse10.onnx");
    if (r) {
        int c = find_node(r, "Clip");
        ok(r->opset == 10 && c >= 0 && r->nodes[c].nin == 1 && qd_attr_float(&r->nodes[c], "min", -1) == 0.0f &&
               qd_attr_float(&r->nodes[c], "max", -1) == 6.0f,
           "opset 10: Clip bounds are attributes");
        same_outputs(g, r, &x, 1e-6, "fuse.onnx, opset 10");
    }
    qd_graph_free(r);
    g->opset = 13;
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i].opset = 13;
    int b = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].fused_clip && g->nodes[i].clip_hi == 6.0f)
            b = i;
    ok(b >= 0, "fuse.onnx has a Conv clamped to [0, 6]");
    if (b >= 0) {
        g->nodes[b].clip_lo = -INFINITY;
        g->nodes[b].clip_hi = 0.5f;
        r = roundtrip(g, OUT "/fuse_hi.onnx");
        if (r) {
            int c = find_node(r, "Clip");
            ok(c >= 0 && r->nodes[c].nin == 3 && r->nodes[c].in[1] < 0 && qd_node_const_input(r, &r->nodes[c], 2),
               "Clip without a lower bound leaves min empty");
            same_outputs(g, r, &x, 1e-6, "clamp (-inf, 0.5]");
        }
        qd_graph_free(r);
    }
out:
    qd_tensor_free(&x);
    qd_graph_free(g);
}

/* Extra attributes of every type on a node survive a save and load. */
static void attributes(void)
{
    qd_err e = {0};
    qd_graph *g = qd_graph_load("models/lenet.onnx", &e);
    ok(g != NULL, "load lenet: %s", e.msg);
    if (!g)
        return;
    int k = find_node(g, "Flatten");
    qd_node *n = &g->nodes[k];
    qd_attr *na = realloc(n->attrs, (size_t)(n->nattr + 7) * sizeof *na);
    if (!na)
        abort();
    n->attrs = na;
    qd_attr *a = &n->attrs[n->nattr];
    memset(a, 0, 7 * sizeof *a);
    static const char *names[7] = {"t_f", "t_i", "t_s", "t_t", "t_fs", "t_is", "t_ss"};
    for (int i = 0; i < 7; i++)
        a[i].name = strdup(names[i]);
    a[0].type = QD_ATTR_FLOAT, a[0].f = 1.5f;
    a[1].type = QD_ATTR_INT, a[1].i = -1234567890123ll;
    a[2].type = QD_ATTR_STRING, a[2].s = strdup("hello");
    a[3].type = QD_ATTR_TENSOR, a[3].t = calloc(1, sizeof(qd_tensor));
    int64_t sh[2] = {2, 3};
    qd_tensor_resize(a[3].t, QD_I64, 2, sh, &e);
    for (int i = 0; i < 6; i++)
        ((int64_t *)a[3].t->data)[i] = i * 1000000000000ll - 7;
    a[4].type = QD_ATTR_FLOATS, a[4].n = 2, a[4].floats = malloc(2 * sizeof(float));
    a[4].floats[0] = -0.25f, a[4].floats[1] = 3e38f;
    a[5].type = QD_ATTR_INTS, a[5].n = 3, a[5].ints = malloc(3 * sizeof(int64_t));
    a[5].ints[0] = 1, a[5].ints[1] = -2, a[5].ints[2] = 3;
    a[6].type = QD_ATTR_STRINGS, a[6].n = 2, a[6].strings = calloc(2, sizeof(char *));
    a[6].strings[0] = strdup("a"), a[6].strings[1] = strdup("bc");
    n->nattr += 7;
    void *buf;
    size_t len;
    ok(qd_graph_save_mem(g, &buf, &len, &e) == 0, "save_mem: %s", e.msg);
    qd_graph *r = e.code ? NULL : qd_graph_load_mem(buf, len, "mem", &e);
    ok(r != NULL, "load saved bytes: %s", e.msg);
    if (r) {
        const qd_node *m = &r->nodes[find_node(r, "Flatten")];
        const qd_attr *t = qd_attr_find(m, "t_t");
        const int64_t *is;
        const float *fs;
        const qd_attr *ss = qd_attr_find(m, "t_ss");
        ok(qd_attr_float(m, "t_f", 0) == 1.5f, "float attribute");
        ok(qd_attr_int(m, "t_i", 0) == -1234567890123ll, "int attribute");
        ok(strcmp(qd_attr_str(m, "t_s", ""), "hello") == 0, "string attribute");
        ok(t && t->type == QD_ATTR_TENSOR && t->t->dtype == QD_I64 && t->t->ndim == 2 && t->t->shape[1] == 3 &&
               ((int64_t *)t->t->data)[5] == 5000000000000ll - 7,
           "tensor attribute");
        ok(qd_attr_floats(m, "t_fs", &fs) == 2 && fs[0] == -0.25f && fs[1] == 3e38f, "floats attribute");
        ok(qd_attr_ints(m, "t_is", &is) == 3 && is[1] == -2, "ints attribute");
        ok(ss && ss->type == QD_ATTR_STRINGS && ss->n == 2 && strcmp(ss->strings[0], "a") == 0 && strcmp(ss->strings[1], "bc") == 0,
           "strings attribute");
        ok(qd_attr_int(m, "axis", 0) == qd_attr_int(n, "axis", 0), "the node's own attribute");
    }
    qd_graph_free(r);
    free(buf);

    /* an attribute qdb keeps by name only cannot be saved */
    a[6].type = QD_ATTR_OTHER;
    e = (qd_err){0};
    ok(qd_graph_save(g, OUT "/other.onnx", &e) == QD_EINPUT && strstr(e.msg, n->name) && strstr(e.msg, "t_ss"),
       "OTHER attribute: QD_EINPUT naming node and attribute (%s)", e.msg);
    ok(access(OUT "/other.onnx", F_OK) != 0, "OTHER attribute: no file written");
    a[6].type = QD_ATTR_STRINGS;
    qd_graph_free(g);
}

static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += strstr(de->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void bad_paths(void)
{
    qd_err e = {0};
    qd_graph *g = qd_graph_load("models/lenet.onnx", &e);
    if (!g)
        return;
    const char *p = OUT "/no/such/dir/m.onnx";
    ok(qd_graph_save(g, p, &e) == QD_EINPUT && strstr(e.msg, p), "missing folder: QD_EINPUT naming the path (%s)", e.msg);
    e = (qd_err){0};
    ok(qd_graph_save(g, OUT, &e) != 0 && strstr(e.msg, OUT), "path is a folder: error naming it (%s)", e.msg);
    ok(leftovers(OUT) == 0 && leftovers("tests/out") == 0, "no temporary files left behind");
    /* overwriting keeps the file whole */
    e = (qd_err){0};
    ok(qd_graph_save(g, OUT "/lenet_twice.onnx", &e) == 0 && qd_graph_save(g, OUT "/lenet_twice.onnx", &e) == 0,
       "save over an existing file: %s", e.msg);
    qd_graph *r = qd_graph_load(OUT "/lenet_twice.onnx", &e);
    ok(r && r->nnodes == g->nnodes, "overwritten file loads: %s", e.msg);
    qd_graph_free(r);
    qd_graph_free(g);
}

int main(void)
{
    if (system("mkdir -p " OUT) != 0)
        return 1;
    const char *archs[] = {"lenet", "resnet18", "mobilenet_v2", "shufflenet_v2"};
    for (int i = 0; i < 4; i++)
        bundled(archs[i]);
    constants();
    clips();
    attributes();
    bad_paths();
    return th_summary();
}
