/* test_shape.c - shape/data-movement operators (op_shape.c) and pooling
 * (op_pool.c) on hand-built nodes, against values worked out independently
 * (by hand, by naive loops here, or from the ONNX backend node test data). */
#include "harness.h"
#include "ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S(...) ((int64_t[]){__VA_ARGS__})
#define F(...) ((float[]){__VA_ARGS__})
#define I64(...) ((int64_t[]){__VA_ARGS__})
#define NA 12

static qd_ctx ctx;

/* ---- node building ---------------------------------------------------------- */

typedef struct tn {
    qd_node n;
    qd_attr a[NA];
    int64_t ints[NA][16];
    float floats[NA][16];
    int in[NA], out[NA];
} tn;

static void mk(tn *t, const char *op, int opset)
{
    memset(t, 0, sizeof *t);
    t->n.op_type = (char *)op;
    t->n.name = (char *)op;
    t->n.opset = opset;
    t->n.attrs = t->a;
    t->n.in = t->in;
    t->n.out = t->out;
}

static qd_attr *add(tn *t, const char *name, qd_attr_type type)
{
    qd_attr *a = &t->a[t->n.nattr++];
    a->name = (char *)name;
    a->type = type;
    return a;
}

static void ai(tn *t, const char *name, int64_t v) { add(t, name, QD_ATTR_INT)->i = v; }
static void af(tn *t, const char *name, float v) { add(t, name, QD_ATTR_FLOAT)->f = v; }
static void as(tn *t, const char *name, const char *v) { add(t, name, QD_ATTR_STRING)->s = (char *)v; }
static void at(tn *t, const char *name, qd_tensor *v) { add(t, name, QD_ATTR_TENSOR)->t = v; }

static void aints(tn *t, const char *name, int n, const int64_t *v)
{
    int k = t->n.nattr;
    qd_attr *a = add(t, name, QD_ATTR_INTS);
    memcpy(t->ints[k], v, (size_t)n * sizeof *v);
    a->ints = t->ints[k];
    a->n = n;
}

static void afloats(tn *t, const char *name, int n, const float *v)
{
    int k = t->n.nattr;
    qd_attr *a = add(t, name, QD_ATTR_FLOATS);
    memcpy(t->floats[k], v, (size_t)n * sizeof *v);
    a->floats = t->floats[k];
    a->n = n;
}

/* check + infer + run with nin inputs (NULL = omitted) and nout outputs. */
static int run(tn *t, int nin, qd_tensor **in, int nout, qd_tensor **out, qd_err *e)
{
    memset(e, 0, sizeof *e);
    t->n.nin = nin;
    t->n.nout = nout;
    for (int i = 0; i < nin; i++)
        t->in[i] = in[i] ? i : -1;
    for (int i = 0; i < nout; i++)
        t->out[i] = out[i] ? 100 + i : -1;
    const qd_op *op = qd_op_find(t->n.op_type);
    if (!op)
        return qd_errf(e, QD_EINPUT, "no operator %s", t->n.op_type);
    t->n.op = op;
    int rc = op->check(&t->n, NULL, e);
    if (!rc)
        rc = op->infer(&t->n, in, out, e);
    if (!rc)
        rc = op->run(&t->n, in, out, &ctx);
    return rc;
}

/* Runs and expects failure with code QD_EINPUT and `needle` in the message. */
static void fails(tn *t, int nin, qd_tensor **in, int nout, qd_tensor **out, const char *needle, const char *what)
{
    qd_err e;
    int rc = run(t, nin, in, nout, out, &e);
    ok(rc == QD_EINPUT && strstr(e.msg, needle), "%s: expected error with '%s', got rc=%d '%s'",
       what, needle, rc, e.msg);
}

/* ---- tensors ------------------------------------------------------------------ */

#define MAXT 2048
static qd_tensor pool_t[MAXT];
static int npool;

/* A tensor from the test's tensor pool, freed at the end. */
static qd_tensor *T(qd_dtype dt, int nd, const int64_t *shape, const void *data)
{
    if (npool == MAXT) {
        fprintf(stderr, "test_shape: tensor pool exhausted\n");
        exit(1);
    }
    qd_tensor *t = &pool_t[npool++];
    qd_err e = {0};
    qd_tensor_resize(t, dt, nd, shape, &e);
    if (data)
        memcpy(t->data, data, qd_tensor_nbytes(t));
    return t;
}

static qd_tensor *out_t(void) { return T(QD_F32, 0, NULL, NULL); }

/* Float tensor 0, 1, 2, ... */
static qd_tensor *iota(int nd, const int64_t *shape)
{
    qd_tensor *t = T(QD_F32, nd, shape, NULL);
    for (int64_t i = 0; i < qd_tensor_numel(t); i++)
        ((float *)t->data)[i] = (float)i;
    return t;
}

static int same_shape(const qd_tensor *t, qd_dtype dt, int nd, const int64_t *shape, const char *what)
{
    char b1[96], b2[96];
    int good = t->dtype == dt && t->ndim == nd && (nd == 0 || !memcmp(t->shape, shape, (size_t)nd * 8));
    ok(good, "%s: got %s %s, want %s %s", what, qd_dtype_name(t->dtype), qd_shape_str(t->ndim, t->shape, b1, 96),
       qd_dtype_name(dt), qd_shape_str(nd, shape, b2, 96));
    return good;
}

/* Output equals want (any numeric dtype, compared as double within tol). */
static void expect(const qd_tensor *t, qd_dtype dt, int nd, const int64_t *shape, const void *want, double tol,
                   const char *what)
{
    if (!same_shape(t, dt, nd, shape, what))
        return;
    qd_tensor w = {.dtype = dt, .ndim = nd, .data = (void *)want};
    for (int i = 0; i < nd; i++)
        w.shape[i] = shape[i];
    int64_t n = qd_tensor_numel(t), bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        double a = qd_tensor_get_f64(t, i), b = qd_tensor_get_f64(&w, i);
        if (!(fabs(a - b) <= tol + tol * fabs(b)))
            bad = i;
    }
    ok(bad < 0, "%s: element %lld is %.9g, want %.9g", what, (long long)bad,
       bad < 0 ? 0 : qd_tensor_get_f64(t, bad), bad < 0 ? 0 : qd_tensor_get_f64(&w, bad));
}

#define STR2(x) #x
#define STR(x) STR2(x)
#define EXPECT_F(t, nd, shape, ...) expect(t, QD_F32, nd, shape, F(__VA_ARGS__), 1e-5, "line " STR(__LINE__))

/* ---- Slice ---------------------------------------------------------------------- */

static void test_slice(void)
{
    qd_tensor *x = iota(2, S(4, 5)), *y = out_t();
    qd_err e;
    tn t;

    /* negative steps, starts/ends far out of range clamp to the ends */
    mk(&t, "Slice", 13);
    qd_tensor *in[5] = {x, T(QD_I64, 1, S(2), I64(3, 4)), T(QD_I64, 1, S(2), I64(INT64_MIN, -INT64_MAX)),
                        T(QD_I64, 1, S(2), I64(0, 1)), T(QD_I64, 1, S(2), I64(-1, -2))};
    ok(!run(&t, 5, in, 1, &y, &e), "slice neg steps: %s", e.msg);
    EXPECT_F(y, 2, S(4, 3), 19, 17, 15, 14, 12, 10, 9, 7, 5, 4, 2, 0);

    /* negative axis, start -1000 -> 0, end 1000 -> 5, step 3 */
    qd_tensor *in2[5] = {x, T(QD_I64, 1, S(1), I64(-1000)), T(QD_I64, 1, S(1), I64(1000)),
                         T(QD_I64, 1, S(1), I64(-1)), T(QD_I64, 1, S(1), I64(3))};
    ok(!run(&t, 5, in2, 1, &y, &e), "slice step 3: %s", e.msg);
    EXPECT_F(y, 2, S(4, 2), 0, 3, 5, 8, 10, 13, 15, 18);

    /* start beyond the end: empty */
    qd_tensor *in3[4] = {x, T(QD_I64, 1, S(1), I64(INT64_MAX)), T(QD_I64, 1, S(1), I64(INT64_MAX)),
                         T(QD_I64, 1, S(1), I64(0))};
    ok(!run(&t, 4, in3, 1, &y, &e), "slice empty: %s", e.msg);
    same_shape(y, QD_F32, 2, S(0, 5), "slice empty");

    /* reverse with start 10 (clamps to 3) and end -10 (clamps to -1); int32 args */
    int32_t s10 = 10, em10 = -10, m1 = -1, a0 = 0;
    qd_tensor *in4[5] = {x, T(QD_I32, 1, S(1), &s10), T(QD_I32, 1, S(1), &em10), T(QD_I32, 1, S(1), &a0),
                         T(QD_I32, 1, S(1), &m1)};
    ok(!run(&t, 5, in4, 1, &y, &e), "slice reverse: %s", e.msg);
    EXPECT_F(y, 2, S(4, 5), 15, 16, 17, 18, 19, 10, 11, 12, 13, 14, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4);

    /* steps omitted, axes given; and steps as an omitted (NULL) input */
    qd_tensor *in5[5] = {x, T(QD_I64, 1, S(1), I64(1)), T(QD_I64, 1, S(1), I64(3)), T(QD_I64, 1, S(1), I64(1)), NULL};
    ok(!run(&t, 5, in5, 1, &y, &e), "slice no steps: %s", e.msg);
    EXPECT_F(y, 2, S(4, 2), 1, 2, 6, 7, 11, 12, 16, 17);

    /* opset 9: attributes, axes default to 0..k-1 */
    mk(&t, "Slice", 9);
    aints(&t, "starts", 2, I64(1, 0));
    aints(&t, "ends", 2, I64(3, -1));
    ok(!run(&t, 1, &x, 1, &y, &e), "slice opset 9: %s", e.msg);
    EXPECT_F(y, 2, S(2, 4), 5, 6, 7, 8, 10, 11, 12, 13);

    /* bool data reversed */
    uint8_t bits[5] = {1, 0, 1, 1, 0}, rev[5] = {0, 1, 1, 0, 1};
    mk(&t, "Slice", 13);
    qd_tensor *in6[5] = {T(QD_BOOL, 1, S(5), bits), T(QD_I64, 1, S(1), I64(-1)), T(QD_I64, 1, S(1), I64(INT64_MIN)),
                         T(QD_I64, 1, S(1), I64(0)), T(QD_I64, 1, S(1), I64(-1))};
    ok(!run(&t, 5, in6, 1, &y, &e), "slice bool: %s", e.msg);
    ok(y->dtype == QD_BOOL && y->shape[0] == 5 && !memcmp(y->data, rev, 5), "slice bool reversed");

    /* errors */
    qd_tensor *bad[5] = {x, T(QD_I64, 1, S(1), I64(0)), T(QD_I64, 1, S(1), I64(2)), T(QD_I64, 1, S(1), I64(0)),
                         T(QD_I64, 1, S(1), I64(0))};
    fails(&t, 5, bad, 1, &y, "step for axis 0 is 0", "slice step 0");
    qd_tensor *bad2[4] = {x, T(QD_I64, 1, S(2), I64(0, 0)), T(QD_I64, 1, S(2), I64(1, 1)),
                          T(QD_I64, 1, S(2), I64(1, -1))};
    fails(&t, 4, bad2, 1, &y, "repeated", "slice repeated axis");
    qd_tensor *bad3[3] = {x, T(QD_I64, 1, S(2), I64(0, 0)), T(QD_I64, 1, S(1), I64(1))};
    fails(&t, 3, bad3, 1, &y, "ends has 1 values", "slice length mismatch");
    qd_tensor *bad4[4] = {x, T(QD_I64, 1, S(1), I64(0)), T(QD_I64, 1, S(1), I64(1)), T(QD_I64, 1, S(1), I64(2))};
    fails(&t, 4, bad4, 1, &y, "out of range", "slice axis out of range");
    mk(&t, "Slice", 9);
    aints(&t, "starts", 1, I64(0));
    fails(&t, 1, &x, 1, &y, "starts and ends are required", "slice opset 9 missing ends");
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---------------------------------------- */

static void test_reshape(void)
{
    qd_tensor *x = iota(3, S(2, 3, 4)), *y = out_t();
    qd_err e;
    tn t;
    mk(&t, "Reshape", 13);
    qd_tensor *in[2] = {x, T(QD_I64, 1, S(2), I64(0, -1))};
    ok(!run(&t, 2, in, 1, &y, &e), "reshape 0,-1: %s", e.msg);
    if (same_shape(y, QD_F32, 2, S(2, 12), "reshape 0,-1"))
        ok(!memcmp(y->data, x->data, 24 * 4), "reshape copies the data");
    in[1] = T(QD_I64, 1, S(3), I64(-1, 0, 2));
    ok(!run(&t, 2, in, 1, &y, &e), "reshape -1,0,2: %s", e.msg);
    same_shape(y, QD_F32, 3, S(4, 3, 2), "reshape -1,0,2");
    in[1] = T(QD_I64, 1, S(2), I64(-1, -1));
    fails(&t, 2, in, 1, &y, "more than one -1", "reshape two -1");
    in[1] = T(QD_I64, 1, S(2), I64(5, -1));
    fails(&t, 2, in, 1, &y, "do not divide by 5", "reshape -1 indivisible");
    in[1] = T(QD_I64, 1, S(1), I64(7));
    fails(&t, 2, in, 1, &y, "cannot reshape 2x3x4 (24 elements) to 7", "reshape count mismatch");
    in[1] = T(QD_I64, 1, S(4), I64(1, 1, 1, 0));
    fails(&t, 2, in, 1, &y, "copies input dim 3", "reshape 0 beyond rank");

    /* allowzero: 0 is a real zero dim (opset 14) */
    qd_tensor *z = T(QD_F32, 3, S(0, 3, 4), NULL);
    qd_tensor *in2[2] = {z, T(QD_I64, 1, S(3), I64(3, 4, 0))};
    mk(&t, "Reshape", 14);
    ai(&t, "allowzero", 1);
    ok(!run(&t, 2, in2, 1, &y, &e), "reshape allowzero: %s", e.msg);
    same_shape(y, QD_F32, 3, S(3, 4, 0), "reshape allowzero");
    in2[1] = T(QD_I64, 1, S(2), I64(0, -1));
    fails(&t, 2, in2, 1, &y, "both 0 and -1", "reshape allowzero with -1");
    mk(&t, "Reshape", 14); /* allowzero=0: the 0 copies dim 2 (4) -> 48 elements */
    in2[1] = T(QD_I64, 1, S(3), I64(3, 4, 0));
    fails(&t, 2, in2, 1, &y, "cannot reshape 0x3x4 (0 elements) to 3x4x4", "reshape 0 copies");

    mk(&t, "Flatten", 13);
    ai(&t, "axis", 0);
    ok(!run(&t, 1, &x, 1, &y, &e), "flatten 0: %s", e.msg);
    same_shape(y, QD_F32, 2, S(1, 24), "flatten axis 0");
    t.a[0].i = -1;
    ok(!run(&t, 1, &x, 1, &y, &e), "flatten -1: %s", e.msg);
    same_shape(y, QD_F32, 2, S(6, 4), "flatten axis -1");
    t.a[0].i = 3;
    ok(!run(&t, 1, &x, 1, &y, &e), "flatten 3: %s", e.msg);
    same_shape(y, QD_F32, 2, S(24, 1), "flatten axis = rank");
    t.a[0].i = 4;
    fails(&t, 1, &x, 1, &y, "out of range", "flatten axis 4");
    mk(&t, "Flatten", 9);
    ok(!run(&t, 1, &x, 1, &y, &e) && !memcmp(y->data, x->data, 96), "flatten default axis 1");
    same_shape(y, QD_F32, 2, S(2, 12), "flatten default");

    qd_tensor *s = iota(4, S(1, 3, 1, 2));
    mk(&t, "Squeeze", 11);
    aints(&t, "axes", 2, I64(0, 2));
    ok(!run(&t, 1, &s, 1, &y, &e), "squeeze 11: %s", e.msg);
    same_shape(y, QD_F32, 2, S(3, 2), "squeeze opset 11 axes");
    mk(&t, "Squeeze", 13);
    ok(!run(&t, 1, &s, 1, &y, &e), "squeeze all: %s", e.msg);
    same_shape(y, QD_F32, 2, S(3, 2), "squeeze all 1-dims");
    qd_tensor *sin[2] = {s, T(QD_I64, 1, S(1), I64(-2))};
    ok(!run(&t, 2, sin, 1, &y, &e), "squeeze -2: %s", e.msg);
    same_shape(y, QD_F32, 3, S(1, 3, 2), "squeeze opset 13 axes input");
    sin[1] = T(QD_I64, 1, S(0), NULL);
    ok(!run(&t, 2, sin, 1, &y, &e), "squeeze empty axes: %s", e.msg);
    same_shape(y, QD_F32, 2, S(3, 2), "squeeze empty axes squeezes all");
    sin[1] = T(QD_I64, 1, S(1), I64(1));
    fails(&t, 2, sin, 1, &y, "axis 1 of 1x3x1x2 has size 3", "squeeze non-1 axis");
    qd_tensor *sc[2] = {T(QD_F32, 0, NULL, F(1)), T(QD_I64, 1, S(1), I64(0))};
    fails(&t, 2, sc, 1, &y, "scalar", "squeeze a scalar");

    qd_tensor *u = iota(2, S(3, 2));
    mk(&t, "Unsqueeze", 11);
    aints(&t, "axes", 2, I64(0, 3));
    ok(!run(&t, 1, &u, 1, &y, &e), "unsqueeze 11: %s", e.msg);
    same_shape(y, QD_F32, 4, S(1, 3, 2, 1), "unsqueeze opset 11");
    mk(&t, "Unsqueeze", 13);
    qd_tensor *uin[2] = {u, T(QD_I64, 1, S(2), I64(2, 0))};
    ok(!run(&t, 2, uin, 1, &y, &e), "unsqueeze 13: %s", e.msg);
    same_shape(y, QD_F32, 4, S(1, 3, 1, 2), "unsqueeze unsorted axes");
    uin[1] = T(QD_I64, 1, S(1), I64(-1));
    ok(!run(&t, 2, uin, 1, &y, &e), "unsqueeze -1: %s", e.msg);
    same_shape(y, QD_F32, 3, S(3, 2, 1), "unsqueeze -1");
    uin[1] = T(QD_I64, 1, S(2), I64(1, -3));
    fails(&t, 2, uin, 1, &y, "repeated", "unsqueeze repeated axis");
    mk(&t, "Unsqueeze", 11);
    fails(&t, 1, &u, 1, &y, "axes is required", "unsqueeze 11 without axes");
}

/* ---- Split, Concat ------------------------------------------------------------------ */

static void test_split_concat(void)
{
    qd_tensor *x = iota(2, S(2, 4)), *o[4] = {out_t(), out_t(), out_t(), out_t()};
    qd_err e;
    tn t;
    mk(&t, "Split", 11);
    ai(&t, "axis", 1);
    aints(&t, "split", 2, I64(1, 3));
    ok(!run(&t, 1, &x, 2, o, &e), "split 11: %s", e.msg);
    EXPECT_F(o[0], 2, S(2, 1), 0, 4);
    EXPECT_F(o[1], 2, S(2, 3), 1, 2, 3, 5, 6, 7);

    mk(&t, "Split", 13);
    ai(&t, "axis", -1);
    qd_tensor *in[2] = {x, T(QD_I64, 1, S(2), I64(3, 1))};
    ok(!run(&t, 2, in, 2, o, &e), "split 13: %s", e.msg);
    EXPECT_F(o[0], 2, S(2, 3), 0, 1, 2, 4, 5, 6);
    EXPECT_F(o[1], 2, S(2, 1), 3, 7);

    qd_tensor *v = iota(1, S(6));
    mk(&t, "Split", 13);
    ok(!run(&t, 1, &v, 3, o, &e), "split equal: %s", e.msg);
    EXPECT_F(o[0], 1, S(2), 0, 1);
    EXPECT_F(o[2], 1, S(2), 4, 5);
    fails(&t, 1, &v, 4, o, "does not split into 4 equal parts", "split indivisible");
    qd_tensor *in2[2] = {v, T(QD_I64, 1, S(2), I64(2, 3))};
    fails(&t, 2, in2, 2, o, "sizes sum to 5 but axis 0 has 6", "split bad sum");
    in2[1] = T(QD_I64, 1, S(3), I64(2, 0, 4)); /* zero-size part */
    ok(!run(&t, 2, in2, 3, o, &e), "split zero part: %s", e.msg);
    same_shape(o[1], QD_F32, 1, S(0), "split zero part");
    EXPECT_F(o[2], 1, S(4), 2, 3, 4, 5);
    qd_tensor *o2[3] = {o[0], NULL, o[2]}; /* an omitted output keeps its slot */
    in2[1] = T(QD_I64, 1, S(3), I64(1, 2, 3));
    ok(!run(&t, 2, in2, 3, o2, &e), "split omitted output: %s", e.msg);
    EXPECT_F(o[2], 1, S(3), 3, 4, 5);
    mk(&t, "Split", 13);
    aints(&t, "split", 2, I64(3, 3));
    fails(&t, 1, &v, 2, o, "not an attribute", "split 13 with attribute");

    int64_t a[2] = {1, 2}, b[4] = {3, 4, 5, 6};
    qd_tensor *cin[2] = {T(QD_I64, 2, S(2, 1), a), T(QD_I64, 2, S(2, 2), b)}, *y = out_t();
    mk(&t, "Concat", 13);
    ai(&t, "axis", -1);
    ok(!run(&t, 2, cin, 1, &y, &e), "concat: %s", e.msg);
    expect(y, QD_I64, 2, S(2, 3), I64(1, 3, 4, 2, 5, 6), 0, "concat int64 axis -1");
    t.a[0].i = 0;
    fails(&t, 2, cin, 1, &y, "incompatible with input 0", "concat mismatched dims");
    mk(&t, "Concat", 13);
    fails(&t, 2, cin, 1, &y, "axis is required", "concat without axis");
    uint8_t b1[2] = {1, 0}, b2[1] = {1};
    qd_tensor *bin[3] = {T(QD_BOOL, 1, S(2), b1), T(QD_BOOL, 1, S(0), NULL), T(QD_BOOL, 1, S(1), b2)};
    mk(&t, "Concat", 13);
    ai(&t, "axis", 0);
    ok(!run(&t, 3, bin, 1, &y, &e), "concat bool: %s", e.msg);
    expect(y, QD_BOOL, 1, S(3), (uint8_t[]){1, 0, 1}, 0, "concat bool with an empty input");
}

/* ---- Transpose, Gather, Expand, Tile, DepthToSpace ------------------------------------ */

static void test_transpose(void)
{
    qd_err e;
    tn t;
    qd_tensor *x = iota(2, S(2, 3)), *y = out_t();
    mk(&t, "Transpose", 13);
    ok(!run(&t, 1, &x, 1, &y, &e), "transpose default: %s", e.msg);
    EXPECT_F(y, 2, S(3, 2), 0, 3, 1, 4, 2, 5);

    /* 3-D permutations (incl. the tiled inner path) checked against naive loops */
    static const int64_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int64_t d[3] = {5, 37, 41};
    qd_tensor *big = iota(3, d);
    for (int p = 0; p < 6; p++) {
        mk(&t, "Transpose", 13);
        aints(&t, "perm", 3, perms[p]);
        ok(!run(&t, 1, &big, 1, &y, &e), "transpose perm %d: %s", p, e.msg);
        int64_t od[3] = {d[perms[p][0]], d[perms[p][1]], d[perms[p][2]]}, bad = 0, idx[3];
        same_shape(y, QD_F32, 3, od, "transpose 3-D shape");
        for (idx[0] = 0; idx[0] < od[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < od[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < od[2]; idx[2]++) {
                    int64_t src[3];
                    for (int k = 0; k < 3; k++)
                        src[perms[p][k]] = idx[k];
                    float want = (float)((src[0] * d[1] + src[1]) * d[2] + src[2]);
                    bad += ((float *)y->data)[(idx[0] * od[1] + idx[1]) * od[2] + idx[2]] != want;
                }
        ok(bad == 0, "transpose perm %d: %lld wrong elements", p, (long long)bad);
    }

    uint8_t u[6] = {1, 2, 3, 4, 5, 6};
    qd_tensor *ux = T(QD_U8, 3, S(1, 2, 3), u);
    mk(&t, "Transpose", 13);
    aints(&t, "perm", 3, I64(2, 0, 1));
    ok(!run(&t, 1, &ux, 1, &y, &e), "transpose u8: %s", e.msg);
    expect(y, QD_U8, 3, S(3, 1, 2), (uint8_t[]){1, 4, 2, 5, 3, 6}, 0, "transpose uint8");
    mk(&t, "Transpose", 13);
    aints(&t, "perm", 3, I64(0, 0, 1));
    fails(&t, 1, &ux, 1, &y, "not a permutation", "transpose bad perm");
    mk(&t, "Transpose", 13);
    aints(&t, "perm", 2, I64(1, 0));
    fails(&t, 1, &ux, 1, &y, "rank 3", "transpose perm length");
}

static void test_gather(void)
{
    qd_err e;
    tn t;
    qd_tensor *x = iota(2, S(2, 3)), *y = out_t();
    mk(&t, "Gather", 13);
    ai(&t, "axis", 1);
    qd_tensor *in[2] = {x, T(QD_I64, 1, S(2), I64(-1, 0))};
    ok(!run(&t, 2, in, 1, &y, &e), "gather axis 1: %s", e.msg);
    EXPECT_F(y, 2, S(2, 2), 2, 0, 5, 3);
    mk(&t, "Gather", 13);
    in[1] = T(QD_I64, 2, S(2, 2), I64(1, 0, 0, 1));
    ok(!run(&t, 2, in, 1, &y, &e), "gather 2-D indices: %s", e.msg);
    EXPECT_F(y, 3, S(2, 2, 3), 3, 4, 5, 0, 1, 2, 0, 1, 2, 3, 4, 5);
    int32_t m1 = -1;
    in[1] = T(QD_I32, 0, NULL, &m1);
    ok(!run(&t, 2, in, 1, &y, &e), "gather scalar: %s", e.msg);
    EXPECT_F(y, 1, S(3), 3, 4, 5);
    uint8_t u[4] = {10, 20, 30, 40};
    qd_tensor *uin[2] = {T(QD_U8, 1, S(4), u), T(QD_I64, 1, S(3), I64(3, -4, 1))};
    ok(!run(&t, 2, uin, 1, &y, &e), "gather u8: %s", e.msg);
    expect(y, QD_U8, 1, S(3), (uint8_t[]){40, 10, 20}, 0, "gather uint8");
    in[1] = T(QD_I64, 1, S(1), I64(2));
    fails(&t, 2, in, 1, &y, "index 2 is out of range for axis 0 of 2x3", "gather index too big");
    in[1] = T(QD_I64, 1, S(1), I64(-3));
    fails(&t, 2, in, 1, &y, "index -3", "gather index too negative");
    in[1] = T(QD_F32, 1, S(1), F(0));
    fails(&t, 2, in, 1, &y, "int64 or int32", "gather float indices");
}

static void test_expand_tile(void)
{
    qd_err e;
    tn t;
    qd_tensor *y = out_t();
    qd_tensor *in[2] = {T(QD_F32, 2, S(3, 1), F(1, 2, 3)), T(QD_I64, 1, S(3), I64(2, 1, 4))};
    mk(&t, "Expand", 13);
    ok(!run(&t, 2, in, 1, &y, &e), "expand: %s", e.msg);
    EXPECT_F(y, 3, S(2, 3, 4), 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    in[1] = T(QD_I64, 1, S(1), I64(2));
    ok(!run(&t, 2, in, 1, &y, &e), "expand to smaller rank: %s", e.msg);
    EXPECT_F(y, 2, S(3, 2), 1, 1, 2, 2, 3, 3);
    in[1] = T(QD_I64, 1, S(2), I64(2, 2));
    fails(&t, 2, in, 1, &y, "cannot broadcast", "expand incompatible");

    int32_t v[4] = {1, 2, 3, 4};
    qd_tensor *tin[2] = {T(QD_I32, 2, S(2, 2), v), T(QD_I64, 1, S(2), I64(2, 3))};
    mk(&t, "Tile", 13);
    ok(!run(&t, 2, tin, 1, &y, &e), "tile: %s", e.msg);
    expect(y, QD_I32, 2, S(4, 6),
           (int32_t[]){1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}, 0, "tile int32");
    tin[1] = T(QD_I64, 1, S(1), I64(2));
    fails(&t, 2, tin, 1, &y, "1 repeats for an input of rank 2", "tile repeats length");

    mk(&t, "ConstantOfShape", 13);
    int32_t seven = 7;
    at(&t, "value", T(QD_I32, 1, S(1), &seven));
    qd_tensor *shape = T(QD_I64, 1, S(2), I64(2, 3));
    ok(!run(&t, 1, &shape, 1, &y, &e), "constantofshape: %s", e.msg);
    expect(y, QD_I32, 2, S(2, 3), (int32_t[]){7, 7, 7, 7, 7, 7}, 0, "constantofshape int32 7");
    mk(&t, "ConstantOfShape", 13);
    shape = T(QD_I64, 1, S(1), I64(0));
    ok(!run(&t, 1, &shape, 1, &y, &e), "constantofshape empty: %s", e.msg);
    same_shape(y, QD_F32, 1, S(0), "constantofshape default float, empty");

    mk(&t, "Range", 13);
    qd_tensor *rin[3] = {T(QD_F32, 0, NULL, F(1)), T(QD_F32, 0, NULL, F(5)), T(QD_F32, 0, NULL, F(2))};
    ok(!run(&t, 3, rin, 1, &y, &e), "range float: %s", e.msg);
    EXPECT_F(y, 1, S(2), 1, 3);
    int32_t a = 10, b = 6, c = -3;
    qd_tensor *rin2[3] = {T(QD_I32, 0, NULL, &a), T(QD_I32, 0, NULL, &b), T(QD_I32, 0, NULL, &c)};
    ok(!run(&t, 3, rin2, 1, &y, &e), "range int32: %s", e.msg);
    expect(y, QD_I32, 1, S(2), (int32_t[]){10, 7}, 0, "range int32 negative delta");
    qd_tensor *rin3[3] = {T(QD_I64, 0, NULL, I64(0)), T(QD_I64, 0, NULL, I64(10)), T(QD_I64, 0, NULL, I64(3))};
    ok(!run(&t, 3, rin3, 1, &y, &e), "range int64: %s", e.msg);
    expect(y, QD_I64, 1, S(4), I64(0, 3, 6, 9), 0, "range int64");
    rin3[2] = T(QD_I64, 0, NULL, I64(0));
    fails(&t, 3, rin3, 1, &y, "delta is 0", "range delta 0");
}

static void test_depth_space(void)
{
    qd_err e;
    tn t;
    int64_t N = 2, C = 8, H = 2, W = 3, bs = 2, c = C / (bs * bs);
    qd_tensor *x = iota(4, S(N, C, H, W)), *y = out_t(), *z = out_t();
    for (int crd = 0; crd < 2; crd++) {
        mk(&t, "DepthToSpace", 13);
        ai(&t, "blocksize", bs);
        as(&t, "mode", crd ? "CRD" : "DCR");
        ok(!run(&t, 1, &x, 1, &y, &e), "depthtospace: %s", e.msg);
        same_shape(y, QD_F32, 4, S(N, c, H * bs, W * bs), "depthtospace shape");
        int64_t bad = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < c; k++)
                for (int64_t i = 0; i < H * bs; i++)
                    for (int64_t j = 0; j < W * bs; j++) {
                        int64_t bi = i % bs, bj = j % bs;
                        int64_t ch = crd ? k * bs * bs + bi * bs + bj : (bi * bs + bj) * c + k;
                        float want = (float)(((n * C + ch) * H + i / bs) * W + j / bs);
                        bad += ((float *)y->data)[((n * c + k) * H * bs + i) * W * bs + j] != want;
                    }
        ok(bad == 0, "depthtospace %s: %lld wrong", crd ? "CRD" : "DCR", (long long)bad);
    }
    /* SpaceToDepth inverts DCR DepthToSpace */
    mk(&t, "DepthToSpace", 13);
    ai(&t, "blocksize", bs);
    ok(!run(&t, 1, &x, 1, &y, &e), "d2s: %s", e.msg);
    mk(&t, "SpaceToDepth", 13);
    ai(&t, "blocksize", bs);
    ok(!run(&t, 1, &y, 1, &z, &e), "s2d: %s", e.msg);
    if (same_shape(z, QD_F32, 4, x->shape, "spacetodepth shape"))
        ok(!memcmp(z->data, x->data, qd_tensor_nbytes(x)), "spacetodepth inverts depthtospace");
    mk(&t, "SpaceToDepth", 13);
    ai(&t, "blocksize", 4);
    fails(&t, 1, &x, 1, &z, "do not divide by blocksize 4", "spacetodepth indivisible");
}

/* ---- Shape, Size, Constant, Identity, Dropout ---------------------------------------- */

static void test_misc(void)
{
    qd_err e;
    tn t;
    qd_tensor *x = iota(3, S(2, 3, 4)), *y = out_t(), *m = out_t();
    mk(&t, "Shape", 15);
    ai(&t, "start", 1);
    ok(!run(&t, 1, &x, 1, &y, &e), "shape: %s", e.msg);
    expect(y, QD_I64, 1, S(2), I64(3, 4), 0, "shape start 1");
    mk(&t, "Shape", 15);
    ai(&t, "start", -10);
    ai(&t, "end", -1);
    ok(!run(&t, 1, &x, 1, &y, &e), "shape: %s", e.msg);
    expect(y, QD_I64, 1, S(2), I64(2, 3), 0, "shape clipped start, end -1");
    mk(&t, "Shape", 13);
    ok(!run(&t, 1, &x, 1, &y, &e), "shape 13: %s", e.msg);
    expect(y, QD_I64, 1, S(3), I64(2, 3, 4), 0, "shape opset 13");
    mk(&t, "Size", 13);
    ok(!run(&t, 1, &x, 1, &y, &e), "size: %s", e.msg);
    expect(y, QD_I64, 0, NULL, I64(24), 0, "size");

    mk(&t, "Constant", 13);
    at(&t, "value", T(QD_I64, 2, S(1, 2), I64(5, 6)));
    ok(!run(&t, 0, NULL, 1, &y, &e), "constant: %s", e.msg);
    expect(y, QD_I64, 2, S(1, 2), I64(5, 6), 0, "constant tensor");
    mk(&t, "Constant", 13);
    aints(&t, "value_ints", 3, I64(1, 2, 3));
    ok(!run(&t, 0, NULL, 1, &y, &e), "constant ints: %s", e.msg);
    expect(y, QD_I64, 1, S(3), I64(1, 2, 3), 0, "constant value_ints");
    mk(&t, "Constant", 13);
    af(&t, "value_float", 2.5f);
    ok(!run(&t, 0, NULL, 1, &y, &e), "constant float: %s", e.msg);
    EXPECT_F(y, 0, NULL, 2.5);
    mk(&t, "Constant", 13);
    afloats(&t, "value_floats", 2, F(1.5f, -2));
    ok(!run(&t, 0, NULL, 1, &y, &e), "constant floats: %s", e.msg);
    EXPECT_F(y, 1, S(2), 1.5, -2);
    mk(&t, "Constant", 13);
    fails(&t, 0, NULL, 1, &y, "exactly one value", "constant without value");

    mk(&t, "Identity", 13);
    ok(!run(&t, 1, &x, 1, &y, &e) && !memcmp(y->data, x->data, 96), "identity copies");

    qd_tensor *outs[2] = {y, m};
    mk(&t, "Dropout", 13);
    ok(!run(&t, 1, &x, 2, outs, &e), "dropout 13: %s", e.msg);
    ok(!memcmp(y->data, x->data, 96), "dropout is identity");
    uint8_t ones[24];
    memset(ones, 1, 24);
    expect(m, QD_BOOL, 3, x->shape, ones, 0, "dropout mask is all true (bool)");
    mk(&t, "Dropout", 7);
    af(&t, "ratio", 0.3f);
    ok(!run(&t, 1, &x, 2, outs, &e), "dropout 7: %s", e.msg);
    float f1[24];
    for (int i = 0; i < 24; i++)
        f1[i] = 1;
    expect(m, QD_F32, 3, x->shape, f1, 0, "dropout-7 mask has the data type");
    uint8_t tr = 1;
    qd_tensor *din[3] = {x, T(QD_F32, 0, NULL, F(0.5f)), T(QD_BOOL, 0, NULL, &tr)};
    mk(&t, "Dropout", 13);
    fails(&t, 3, din, 1, outs, "training_mode=true", "dropout training");
    din[1] = T(QD_F32, 0, NULL, F(0));
    ok(!run(&t, 3, din, 1, outs, &e), "dropout training with ratio 0 is identity: %s", e.msg);
    din[1] = NULL;
    fails(&t, 3, din, 1, outs, "ratio 0.5", "dropout training default ratio");
}

/* ---- Pad ---------------------------------------------------------------------------------- */

static void test_pad(void)
{
    qd_err e;
    tn t;
    qd_tensor *x = T(QD_F32, 2, S(2, 2), F(1, 2, 3, 4)), *y = out_t();
    mk(&t, "Pad", 2);
    aints(&t, "pads", 4, I64(0, 1, 0, 2));
    af(&t, "value", 9);
    ok(!run(&t, 1, &x, 1, &y, &e), "pad 2: %s", e.msg);
    EXPECT_F(y, 2, S(2, 5), 9, 1, 2, 9, 9, 9, 3, 4, 9, 9);

    mk(&t, "Pad", 11);
    qd_tensor *in[3] = {x, T(QD_I64, 1, S(4), I64(1, 0, 0, 0)), T(QD_F32, 0, NULL, F(7))};
    ok(!run(&t, 3, in, 1, &y, &e), "pad 11: %s", e.msg);
    EXPECT_F(y, 2, S(3, 2), 7, 7, 1, 2, 3, 4);
    ok(!run(&t, 2, in, 1, &y, &e), "pad 11 default value: %s", e.msg);
    EXPECT_F(y, 2, S(3, 2), 0, 0, 1, 2, 3, 4);

    /* negative pads crop */
    qd_tensor *x23 = T(QD_F32, 2, S(2, 3), F(1, 2, 3, 4, 5, 6));
    qd_tensor *cin[2] = {x23, T(QD_I64, 1, S(4), I64(0, -1, 0, -1))};
    ok(!run(&t, 2, cin, 1, &y, &e), "pad crop: %s", e.msg);
    EXPECT_F(y, 2, S(2, 1), 2, 5);
    cin[1] = T(QD_I64, 1, S(4), I64(-1, 1, 0, 0));
    ok(!run(&t, 2, cin, 1, &y, &e), "pad crop + pad: %s", e.msg);
    EXPECT_F(y, 2, S(1, 4), 0, 4, 5, 6);

    int32_t v[3] = {1, 2, 3};
    qd_tensor *vin[2] = {T(QD_I32, 1, S(3), v), T(QD_I64, 1, S(2), I64(2, 2))};
    mk(&t, "Pad", 13);
    as(&t, "mode", "reflect");
    ok(!run(&t, 2, vin, 1, &y, &e), "pad reflect: %s", e.msg);
    expect(y, QD_I32, 1, S(7), (int32_t[]){3, 2, 1, 2, 3, 2, 1}, 0, "pad reflect 1-D");
    vin[1] = T(QD_I64, 1, S(2), I64(4, 0));
    ok(!run(&t, 2, vin, 1, &y, &e), "pad reflect big: %s", e.msg);
    expect(y, QD_I32, 1, S(7), (int32_t[]){1, 2, 3, 2, 1, 2, 3}, 0, "pad reflect beyond length (numpy)");
    qd_tensor *rin[2] = {x23, T(QD_I64, 1, S(4), I64(1, 1, 1, 1))};
    ok(!run(&t, 2, rin, 1, &y, &e), "pad reflect 2-D: %s", e.msg);
    EXPECT_F(y, 2, S(4, 5), 5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 2, 1, 2, 3, 2);
    mk(&t, "Pad", 13);
    as(&t, "mode", "edge");
    vin[1] = T(QD_I64, 1, S(2), I64(2, 2));
    ok(!run(&t, 2, vin, 1, &y, &e), "pad edge: %s", e.msg);
    expect(y, QD_I32, 1, S(7), (int32_t[]){1, 1, 1, 2, 3, 3, 3}, 0, "pad edge 1-D");
    ok(!run(&t, 2, rin, 1, &y, &e), "pad edge 2-D: %s", e.msg);
    EXPECT_F(y, 2, S(4, 5), 1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 4, 4, 5, 6, 6);

    mk(&t, "Pad", 13);
    as(&t, "mode", "wrap");
    fails(&t, 2, rin, 1, &y, "mode 'wrap' is not supported", "pad wrap");
    mk(&t, "Pad", 13);
    rin[1] = T(QD_I64, 1, S(2), I64(1, 1));
    fails(&t, 2, rin, 1, &y, "2 pads for input 2x3 of rank 2 (need 4)", "pad count");
    rin[1] = T(QD_I64, 1, S(4), I64(0, -2, 0, -2));
    fails(&t, 2, rin, 1, &y, "negative size", "pad negative size");
    mk(&t, "Pad", 9);
    fails(&t, 1, &x, 1, &y, "pads is required", "pad-9 without pads");
}

/* ---- Resize, Upsample ------------------------------------------------------------------ */

/* out[i][j] = x[ri[i]][rj[j]] for a nearest resize check */
static void expect_nearest(const qd_tensor *y, const float *x, int64_t W, int64_t OH, int64_t OW, const int *ri,
                           const int *rj, const char *what)
{
    if (!same_shape(y, QD_F32, 4, S(1, 1, OH, OW), what))
        return;
    int bad = 0;
    for (int64_t i = 0; i < OH; i++)
        for (int64_t j = 0; j < OW; j++)
            bad += ((float *)y->data)[i * OW + j] != x[ri[i] * W + rj[j]];
    ok(!bad, "%s: %d wrong", what, bad);
}

static void test_resize(void)
{
    qd_err e;
    tn t;
    qd_tensor *y = out_t();
    qd_tensor *x22 = T(QD_F32, 4, S(1, 1, 2, 2), F(1, 2, 3, 4));
    qd_tensor *x24 = T(QD_F32, 4, S(1, 1, 2, 4), F(1, 2, 3, 4, 5, 6, 7, 8));
    float v44[16];
    for (int i = 0; i < 16; i++)
        v44[i] = (float)(i + 1);
    qd_tensor *x44 = T(QD_F32, 4, S(1, 1, 4, 4), v44);

    /* ONNX test_resize_upsample_scales_nearest */
    mk(&t, "Resize", 13);
    as(&t, "mode", "nearest");
    qd_tensor *in[4] = {x22, NULL, T(QD_F32, 1, S(4), F(1, 1, 2, 3)), NULL};
    ok(!run(&t, 3, in, 1, &y, &e), "resize nearest: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 6), 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4);
    /* test_resize_downsample_scales_nearest */
    in[0] = x24;
    in[2] = T(QD_F32, 1, S(4), F(1, 1, 0.6f, 0.6f));
    ok(!run(&t, 3, in, 1, &y, &e), "resize nearest down: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 1, 2), 1, 3);

    /* test_resize_upsample_scales_linear (half_pixel) */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    in[0] = x22;
    in[2] = T(QD_F32, 1, S(4), F(1, 1, 2, 2));
    ok(!run(&t, 3, in, 1, &y, &e), "resize linear: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 4), 1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4);
    /* test_resize_downsample_scales_linear */
    in[0] = x24;
    in[2] = T(QD_F32, 1, S(4), F(1, 1, 0.6f, 0.6f));
    ok(!run(&t, 3, in, 1, &y, &e), "resize linear down: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 1, 2), 2.6666665, 4.3333330);

    /* align_corners: fractional resized length when scales are given */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    as(&t, "coordinate_transformation_mode", "align_corners");
    ok(!run(&t, 3, in, 1, &y, &e), "resize align_corners down: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 1, 2), 1, 3.142857);
    in[0] = x22;
    in[2] = T(QD_F32, 1, S(4), F(1, 1, 2, 2));
    ok(!run(&t, 3, in, 1, &y, &e), "resize align_corners up: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 4), 1, 4 / 3., 5 / 3., 2, 5 / 3., 2, 7 / 3., 8 / 3., 7 / 3., 8 / 3., 3, 10 / 3., 3,
             10 / 3., 11 / 3., 4);

    /* asymmetric linear: x = o / 2 */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    as(&t, "coordinate_transformation_mode", "asymmetric");
    in[0] = T(QD_F32, 4, S(1, 1, 1, 2), F(1, 3));
    in[2] = T(QD_F32, 1, S(4), F(1, 1, 1, 2));
    ok(!run(&t, 3, in, 1, &y, &e), "resize asymmetric: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 1, 4), 1, 2, 3, 3);

    /* test_resize_downsample_sizes_linear_pytorch_half_pixel */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    as(&t, "coordinate_transformation_mode", "pytorch_half_pixel");
    qd_tensor *sin[4] = {x44, NULL, NULL, T(QD_I64, 1, S(4), I64(1, 1, 3, 1))};
    ok(!run(&t, 4, sin, 1, &y, &e), "resize pytorch_half_pixel: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 1), 1.6666666, 7, 12.333333);

    /* opset 11 style: empty roi/scales tensors, sizes given (tf_half_pixel_for_nn) */
    mk(&t, "Resize", 11);
    as(&t, "mode", "nearest");
    as(&t, "coordinate_transformation_mode", "tf_half_pixel_for_nn");
    qd_tensor *s11[4] = {x44, T(QD_F32, 1, S(0), NULL), T(QD_F32, 1, S(0), NULL), T(QD_I64, 1, S(4), I64(1, 1, 3, 2))};
    ok(!run(&t, 4, s11, 1, &y, &e), "resize tf_half_pixel_for_nn: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 2), 6, 8, 10, 12, 14, 16);

    /* nearest modes on 4x4 -> 8x8; index tables worked out by hand */
    static const struct {
        const char *ctm, *nm;
        int idx[8];
    } nm[] = {
        {"asymmetric", "round_prefer_ceil", {0, 1, 1, 2, 2, 3, 3, 3}}, /* floor(o/2 + 0.5) */
        {"asymmetric", "round_prefer_floor", {0, 0, 1, 1, 2, 2, 3, 3}}, /* ceil(o/2 - 0.5) */
        {"align_corners", "floor", {0, 0, 0, 1, 1, 2, 2, 3}},          /* floor(o*3/7) */
        {"half_pixel", "ceil", {0, 1, 1, 2, 2, 3, 3, 3}},              /* ceil(o/2 - 0.25) */
        {"half_pixel", "round_prefer_floor", {0, 0, 1, 1, 2, 2, 3, 3}},
    };
    for (size_t i = 0; i < sizeof nm / sizeof nm[0]; i++) {
        mk(&t, "Resize", 13);
        as(&t, "mode", "nearest");
        as(&t, "coordinate_transformation_mode", nm[i].ctm);
        as(&t, "nearest_mode", nm[i].nm);
        qd_tensor *n8[4] = {x44, NULL, NULL, T(QD_I64, 1, S(4), I64(1, 1, 8, 8))};
        ok(!run(&t, 4, n8, 1, &y, &e), "resize %s %s: %s", nm[i].ctm, nm[i].nm, e.msg);
        expect_nearest(y, v44, 4, 8, 8, nm[i].idx, nm[i].idx, nm[i].nm);
    }

    /* test_resize_tf_crop_and_resize */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    as(&t, "coordinate_transformation_mode", "tf_crop_and_resize");
    af(&t, "extrapolation_value", 10);
    qd_tensor *cr[4] = {x44, T(QD_F32, 1, S(8), F(0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f)), NULL,
                        T(QD_I64, 1, S(4), I64(1, 1, 3, 3))};
    ok(!run(&t, 4, cr, 1, &y, &e), "resize crop: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 7.6, 10, 10, 12.4, 10, 10, 10, 10, 10);

    /* linear over a non-spatial axis (N-D path): C 2 -> 4, half_pixel */
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    qd_tensor *nd[4] = {T(QD_F32, 4, S(1, 2, 1, 1), F(0, 10)), NULL, NULL, T(QD_I64, 1, S(4), I64(1, 4, 1, 1))};
    ok(!run(&t, 4, nd, 1, &y, &e), "resize linear C: %s", e.msg);
    EXPECT_F(y, 4, S(1, 4, 1, 1), 0, 2.5, 7.5, 10);

    /* nearest is dtype-generic: int64, rank 1 */
    mk(&t, "Resize", 13);
    qd_tensor *ni[4] = {T(QD_I64, 1, S(2), I64(1, 2)), NULL, NULL, T(QD_I64, 1, S(1), I64(4))};
    ok(!run(&t, 4, ni, 1, &y, &e), "resize int64: %s", e.msg);
    expect(y, QD_I64, 1, S(4), I64(1, 1, 2, 2), 0, "resize nearest int64");

    /* Resize-10 and Upsample: asymmetric; nearest floors when upsampling */
    mk(&t, "Resize", 10);
    as(&t, "mode", "nearest");
    qd_tensor *r10[2] = {x22, T(QD_F32, 1, S(4), F(1, 1, 2, 3))};
    ok(!run(&t, 2, r10, 1, &y, &e), "resize 10: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 6), 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4);
    mk(&t, "Upsample", 7);
    afloats(&t, "scales", 4, F(1, 1, 2, 3));
    ok(!run(&t, 1, &x22, 1, &y, &e), "upsample 7: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 6), 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4);
    mk(&t, "Upsample", 9);
    as(&t, "mode", "linear");
    qd_tensor *u9[2] = {x22, T(QD_F32, 1, S(4), F(1, 1, 2, 2))};
    ok(!run(&t, 2, u9, 1, &y, &e), "upsample 9 linear: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 4, 4), 1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4);

    /* errors */
    mk(&t, "Resize", 13);
    as(&t, "mode", "cubic");
    fails(&t, 3, in, 1, &y, "mode 'cubic' is not supported", "resize cubic");
    mk(&t, "Resize", 13);
    qd_tensor *both[4] = {x22, NULL, T(QD_F32, 1, S(4), F(1, 1, 2, 2)), T(QD_I64, 1, S(4), I64(1, 1, 4, 4))};
    fails(&t, 4, both, 1, &y, "not both", "resize scales and sizes");
    qd_tensor *none[3] = {x22, NULL, NULL};
    fails(&t, 3, none, 1, &y, "scales or sizes is required", "resize neither");
    qd_tensor *len[4] = {x22, NULL, NULL, T(QD_I64, 1, S(2), I64(4, 4))};
    fails(&t, 4, len, 1, &y, "2 sizes for input 1x1x2x2 of rank 4", "resize sizes length");
    mk(&t, "Resize", 13);
    as(&t, "mode", "linear");
    qd_tensor *li[3] = {T(QD_I32, 1, S(2), (int32_t[]){1, 2}), NULL, T(QD_F32, 1, S(1), F(2))};
    fails(&t, 3, li, 1, &y, "linear supports float32 only", "resize linear int");
    mk(&t, "Resize", 13);
    as(&t, "coordinate_transformation_mode", "bogus");
    fails(&t, 3, in, 1, &y, "'bogus' is not supported", "resize bad ctm");
}

/* Bilinear half_pixel resize of every plane, computed directly per pixel,
 * against the table + row-cache kernel (threaded, and with no ctx). */
static void test_resize_bilinear_big(void)
{
    qd_err e;
    tn t;
    int64_t N = 2, C = 3, H = 7, W = 9;
    qd_tensor *x = iota(4, S(N, C, H, W)), *y = out_t();
    for (int64_t i = 0; i < qd_tensor_numel(x); i++) /* non-linear data */
        ((float *)x->data)[i] = (float)((i * 37) % 101) / 7.0f;
    static const float sc[][2] = {{2.5f, 0.6f}, {3, 3}, {0.5f, 1.75f}};
    for (int c = 0; c < 3; c++) {
        for (int noctx = 0; noctx < 2; noctx++) {
            mk(&t, "Resize", 13);
            as(&t, "mode", "linear");
            qd_tensor *in[3] = {x, NULL, T(QD_F32, 1, S(4), F(1, 1, sc[c][0], sc[c][1]))};
            if (noctx) {
                const qd_op *op = qd_op_find("Resize");
                t.n.nin = 3;
                t.n.nout = 1;
                t.in[1] = -1;
                ok(!op->infer(&t.n, in, &y, &e) && !op->run(&t.n, in, &y, NULL), "resize without ctx");
            } else {
                ok(!run(&t, 3, in, 1, &y, &e), "resize big: %s", e.msg);
            }
            int64_t OH = (int64_t)floor(H * (double)sc[c][0]), OW = (int64_t)floor(W * (double)sc[c][1]);
            if (!same_shape(y, QD_F32, 4, S(N, C, OH, OW), "resize big shape"))
                continue;
            double maxerr = 0;
            for (int64_t p = 0; p < N * C; p++)
                for (int64_t i = 0; i < OH; i++)
                    for (int64_t j = 0; j < OW; j++) {
                        double fy = (i + 0.5) / sc[c][0] - 0.5, fx = (j + 0.5) / sc[c][1] - 0.5;
                        fy = fy < 0 ? 0 : fy > H - 1 ? H - 1 : fy;
                        fx = fx < 0 ? 0 : fx > W - 1 ? W - 1 : fx;
                        int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
                        int64_t y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
                        const float *pl = (const float *)x->data + p * H * W;
                        double ay = fy - y0, ax = fx - x0;
                        double want = (1 - ay) * ((1 - ax) * pl[y0 * W + x0] + ax * pl[y0 * W + x1]) +
                                      ay * ((1 - ax) * pl[y1 * W + x0] + ax * pl[y1 * W + x1]);
                        maxerr = fmax(maxerr, fabs(want - ((float *)y->data)[(p * OH + i) * OW + j]));
                    }
            ok(maxerr < 1e-4, "resize bilinear scales %g,%g ctx %d: max error %g", sc[c][0], sc[c][1], !noctx,
               maxerr);
        }
    }
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* Naive pool over an explicitly padded plane: pad cells are skipped (max,
 * avg without count_include_pad) or count as 0 (avg with it). No ceil mode. */
static void naive_pool(const float *x, int64_t H, int64_t W, int64_t k, int64_t s, const int64_t *pads, int max,
                       int incl, float *y, int64_t *OH, int64_t *OW)
{
    int64_t PH = H + pads[0] + pads[2], PW = W + pads[1] + pads[3];
    *OH = (PH - k) / s + 1;
    *OW = (PW - k) / s + 1;
    for (int64_t oy = 0; oy < *OH; oy++)
        for (int64_t ox = 0; ox < *OW; ox++) {
            double m = -INFINITY, sum = 0;
            int cnt = 0;
            for (int64_t i = 0; i < k; i++)
                for (int64_t j = 0; j < k; j++) {
                    int64_t py = oy * s + i - pads[0], px = ox * s + j - pads[1];
                    if (py < 0 || py >= H || px < 0 || px >= W)
                        continue;
                    double v = x[py * W + px];
                    m = v > m ? v : m;
                    sum += v;
                    cnt++;
                }
            y[oy * *OW + ox] = (float)(max ? m : sum / (incl ? k * k : cnt));
        }
}

static void test_pool_random(void)
{
    qd_err e;
    tn t;
    int64_t H = 13, W = 17, C = 3;
    qd_tensor *x = T(QD_F32, 4, S(2, C, H, W), NULL), *y = out_t();
    uint32_t r = 12345;
    for (int64_t i = 0; i < qd_tensor_numel(x); i++) {
        r = r * 1664525u + 1013904223u;
        ((float *)x->data)[i] = (float)(r >> 8) / (float)(1 << 24) * 2 - 1;
    }
    static const int64_t cfg[][6] = {/* k, s, pads */
                                     {2, 2, 0, 0, 0, 0}, {3, 1, 1, 1, 1, 1}, {3, 2, 1, 0, 0, 1},
                                     {2, 1, 1, 0, 1, 0}, {5, 3, 2, 2, 2, 2}, {3, 3, 0, 2, 1, 0}};
    float ref[32 * 32];
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
        for (int kind = 0; kind < 3; kind++) { /* max, avg, avg include pad */
            mk(&t, kind ? "AveragePool" : "MaxPool", 11);
            aints(&t, "kernel_shape", 2, I64(cfg[c][0], cfg[c][0]));
            aints(&t, "strides", 2, I64(cfg[c][1], cfg[c][1]));
            aints(&t, "pads", 4, cfg[c] + 2);
            if (kind == 2)
                ai(&t, "count_include_pad", 1);
            ok(!run(&t, 1, &x, 1, &y, &e), "pool cfg %zu kind %d: %s", c, kind, e.msg);
            int64_t OH, OW;
            double maxerr = 0;
            for (int64_t p = 0; p < 2 * C; p++) {
                naive_pool((float *)x->data + p * H * W, H, W, cfg[c][0], cfg[c][1], cfg[c] + 2, kind == 0,
                           kind == 2, ref, &OH, &OW);
                if (p == 0 && !same_shape(y, QD_F32, 4, S(2, C, OH, OW), "pool random shape"))
                    break;
                for (int64_t i = 0; i < OH * OW; i++)
                    maxerr = fmax(maxerr, fabs(ref[i] - ((float *)y->data)[p * OH * OW + i]));
            }
            ok(maxerr < 1e-5, "pool cfg %zu kind %d: max error %g", c, kind, maxerr);
        }
}

static void test_pool(void)
{
    qd_err e;
    tn t;
    qd_tensor *y = out_t();
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (float)(i + 1);
    qd_tensor *x44 = T(QD_F32, 4, S(1, 1, 4, 4), v), *x33 = T(QD_F32, 4, S(1, 1, 3, 3), v);

    /* test_maxpool_2d_ceil */
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(3, 3));
    aints(&t, "strides", 2, I64(2, 2));
    ai(&t, "ceil_mode", 1);
    ok(!run(&t, 1, &x44, 1, &y, &e), "maxpool ceil: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 11, 12, 15, 16);
    /* test_averagepool_2d_ceil: the clipped windows average only real cells */
    t.n.op_type = "AveragePool";
    ok(!run(&t, 1, &x44, 1, &y, &e), "avgpool ceil: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 6, 7.5, 12, 13.5);

    /* test_maxpool_2d_dilations */
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    aints(&t, "dilations", 2, I64(2, 2));
    ok(!run(&t, 1, &x44, 1, &y, &e), "maxpool dilations: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 11, 12, 15, 16);

    /* ceil_mode drops a last window that would start in the end padding:
     * 1-D [1..5], k 2, s 2, pads (0, 2): windows at 0, 2, 4 (not 6) */
    qd_tensor *x5 = T(QD_F32, 3, S(1, 1, 5), v);
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 1, I64(2));
    aints(&t, "strides", 1, I64(2));
    aints(&t, "pads", 2, I64(0, 2));
    ai(&t, "ceil_mode", 1);
    ok(!run(&t, 1, &x5, 1, &y, &e), "maxpool ceil 1-D: %s", e.msg);
    EXPECT_F(y, 3, S(1, 1, 3), 2, 4, 5);

    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    as(&t, "auto_pad", "SAME_UPPER");
    ok(!run(&t, 1, &x33, 1, &y, &e), "maxpool same_upper: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 5, 6, 6, 8, 9, 9, 8, 9, 9);
    t.a[1].s = "SAME_LOWER";
    ok(!run(&t, 1, &x33, 1, &y, &e), "maxpool same_lower: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9);
    t.a[1].s = "VALID";
    ok(!run(&t, 1, &x33, 1, &y, &e), "maxpool valid: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 5, 6, 8, 9);
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(3, 3));
    aints(&t, "pads", 4, I64(1, 1, 1, 1));
    ok(!run(&t, 1, &x33, 1, &y, &e), "maxpool pads: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 5, 6, 6, 8, 9, 9, 8, 9, 9);

    /* AveragePool with pads, with and without count_include_pad */
    qd_tensor *x22 = T(QD_F32, 4, S(1, 1, 2, 2), F(1, 2, 3, 4));
    mk(&t, "AveragePool", 11);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    aints(&t, "pads", 4, I64(1, 1, 1, 1));
    ok(!run(&t, 1, &x22, 1, &y, &e), "avgpool pads: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4);
    ai(&t, "count_include_pad", 1);
    ok(!run(&t, 1, &x22, 1, &y, &e), "avgpool include pad: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 3, 3), 0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1);
    /* asymmetric pads: end only */
    mk(&t, "AveragePool", 11);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    aints(&t, "pads", 4, I64(0, 0, 1, 1));
    ok(!run(&t, 1, &x22, 1, &y, &e), "avgpool asym: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 2.5, 3, 3.5, 4);
    ai(&t, "count_include_pad", 1);
    ok(!run(&t, 1, &x22, 1, &y, &e), "avgpool asym include: %s", e.msg);
    EXPECT_F(y, 4, S(1, 1, 2, 2), 2.5, 1.5, 1.75, 1);
    /* 1-D default */
    qd_tensor *x4 = T(QD_F32, 3, S(1, 1, 4), v);
    mk(&t, "AveragePool", 11);
    aints(&t, "kernel_shape", 1, I64(2));
    ok(!run(&t, 1, &x4, 1, &y, &e), "avgpool 1-D: %s", e.msg);
    EXPECT_F(y, 3, S(1, 1, 3), 1.5, 2.5, 3.5);

    /* global pools, including 3-D spatial */
    qd_tensor *g = T(QD_F32, 4, S(1, 2, 2, 2), v);
    mk(&t, "GlobalAveragePool", 13);
    ok(!run(&t, 1, &g, 1, &y, &e), "gap: %s", e.msg);
    EXPECT_F(y, 4, S(1, 2, 1, 1), 2.5, 6.5);
    mk(&t, "GlobalMaxPool", 13);
    ok(!run(&t, 1, &g, 1, &y, &e), "gmp: %s", e.msg);
    EXPECT_F(y, 4, S(1, 2, 1, 1), 4, 8);
    qd_tensor *g3 = T(QD_F32, 5, S(1, 1, 2, 2, 2), v);
    ok(!run(&t, 1, &g3, 1, &y, &e), "gmp 3-D: %s", e.msg);
    EXPECT_F(y, 5, S(1, 1, 1, 1, 1), 8);

    /* rejections */
    qd_tensor *outs[2] = {y, out_t()};
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    fails(&t, 1, &x44, 2, outs, "Indices output is not supported", "maxpool indices");
    qd_tensor *x5d = T(QD_F32, 5, S(1, 1, 2, 2, 2), v);
    fails(&t, 1, &x5d, 1, &y, "3-D pooling is not supported", "maxpool 3-D input");
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 3, I64(2, 2, 2));
    fails(&t, 1, &x5d, 1, &y, "3-D pooling is not supported", "maxpool 3-D kernel");
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(5, 5));
    fails(&t, 1, &x44, 1, &y, "larger than the padded input", "maxpool kernel too big");
    uint8_t u[16] = {0};
    qd_tensor *xu = T(QD_U8, 4, S(1, 1, 4, 4), u);
    mk(&t, "MaxPool", 12);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    fails(&t, 1, &xu, 1, &y, "float32 only, got uint8", "maxpool uint8");
    mk(&t, "MaxPool", 12);
    fails(&t, 1, &x44, 1, &y, "kernel_shape is required", "maxpool no kernel");
    mk(&t, "AveragePool", 11);
    aints(&t, "kernel_shape", 2, I64(2, 2));
    as(&t, "auto_pad", "SAME");
    fails(&t, 1, &x44, 1, &y, "auto_pad 'SAME' is unknown", "avgpool bad auto_pad");
}

/* qd_tensor_channel_stats on a 2x3x2 tensor of 0..11, worked out by hand. */
static void test_channel_stats(void)
{
    qd_err e = {0};
    qd_tensor t = {0};
    ok(!qd_tensor_resize(&t, QD_F32, 3, S(2, 3, 2), &e), "channel stats: tensor");
    for (int i = 0; i < 12; i++)
        ((float *)t.data)[i] = (float)i;
    static const struct { int axis; int64_t n; double mn[3], mx[3], mean[3]; } cases[] = {
        {0, 2, {0, 6}, {5, 11}, {2.5, 8.5}},
        {1, 3, {0, 2, 4}, {7, 9, 11}, {3.5, 5.5, 7.5}},
        {2, 2, {0, 1}, {10, 11}, {5, 6}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        double mn[3], mx[3], mean[3];
        int64_t n = qd_tensor_channel_stats(&t, cases[k].axis, mn, mx, mean);
        int good = n == cases[k].n;
        for (int64_t c = 0; good && c < n; c++)
            good = mn[c] == cases[k].mn[c] && mx[c] == cases[k].mx[c] && mean[c] == cases[k].mean[c];
        ok(good, "channel stats along axis %d: %lld channels", cases[k].axis, (long long)n);
    }
    double d[3];
    ok(qd_tensor_channel_stats(&t, 3, d, d, d) == -1 && qd_tensor_channel_stats(&t, -1, d, d, d) == -1,
       "channel stats: an axis out of range is -1");
    qd_tensor_free(&t);
    ok(!qd_tensor_resize(&t, QD_I64, 1, S(3), &e) && qd_tensor_channel_stats(&t, 0, d, d, d) == -1,
       "channel stats: an int64 tensor is -1");
    qd_tensor_free(&t);
}

int main(void)
{
    test_channel_stats();
    ctx.nthreads = 4;
    ctx.pool = qd_pool_new(4);
    test_slice();
    test_reshape();
    test_split_concat();
    test_transpose();
    test_gather();
    test_expand_tile();
    test_depth_space();
    test_misc();
    test_pad();
    test_resize();
    test_resize_bilinear_big();
    test_pool();
    test_pool_random();
    for (int i = 0; i < MAXT; i++)
        qd_tensor_free(&pool_t[i]);
    for (int i = 0; i < 64; i++)
        free(ctx.scratch[i]);
    qd_pool_free(ctx.pool);
    return th_summary();
}
