/* test_math.c - op_math.c's operators called directly: broadcasting,
 * integer arithmetic, opset differences, BatchNormalization, reductions,
 * Cast, rejections, and thread-count independence. Expected values are
 * hand-computed or come from plain multi-index loops in this file. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops.h"

/* ---- building nodes and tensors by hand ---- */

typedef struct tnode {
    qd_node n;
    qd_attr attrs[8];
    int in[8], out[8];
} tnode;

static tnode node(const char *op, int opset, int nin, int nout)
{
    tnode t;
    memset(&t, 0, sizeof t);
    t.n.name = (char *)"test";
    t.n.op_type = (char *)op;
    t.n.opset = opset;
    t.n.nin = nin;
    t.n.nout = nout;
    for (int i = 0; i < 8; i++) {
        t.in[i] = i;
        t.out[i] = 8 + i;
    }
    return t;
}

/* Pointers into t must be refreshed after a copy. */
static qd_node *nd(tnode *t)
{
    t->n.in = t->in;
    t->n.out = t->out;
    t->n.attrs = t->attrs;
    return &t->n;
}

static void attr_i(tnode *t, const char *name, int64_t v)
{
    qd_attr *a = &t->attrs[t->n.nattr++];
    a->name = (char *)name;
    a->type = QD_ATTR_INT;
    a->i = v;
}

static void attr_f(tnode *t, const char *name, float v)
{
    qd_attr *a = &t->attrs[t->n.nattr++];
    a->name = (char *)name;
    a->type = QD_ATTR_FLOAT;
    a->f = v;
}

static void attr_is(tnode *t, const char *name, int n, int64_t *v)
{
    qd_attr *a = &t->attrs[t->n.nattr++];
    a->name = (char *)name;
    a->type = QD_ATTR_INTS;
    a->n = n;
    a->ints = v;
}

/* A tensor owning a copy of data (or uninitialized when data is NULL). */
static qd_tensor tens(qd_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    qd_tensor t;
    memset(&t, 0, sizeof t);
    qd_err e = {0};
    if (qd_tensor_resize(&t, dt, ndim, shape, &e))
        abort();
    if (data)
        memcpy(t.data, data, qd_tensor_nbytes(&t));
    return t;
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define F32(...) ((const float[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define I32(...) ((const int32_t[]){__VA_ARGS__})

static qd_ctx ctx1 = {.nthreads = 1};

/* check + infer + run; returns the first error code, message in *e. */
static int run_op(tnode *t, qd_tensor **in, qd_tensor **out, qd_ctx *ctx, qd_err *e)
{
    qd_node *n = nd(t);
    const qd_op *op = qd_op_find(n->op_type);
    memset(e, 0, sizeof *e);
    if (!op)
        return qd_errf(e, QD_EINPUT, "no op %s", n->op_type);
    int rc = op->check(n, NULL, e);
    if (!rc)
        rc = op->infer(n, in, out, e);
    if (!rc)
        rc = op->run(n, in, out, ctx);
    return rc;
}

/* Run a one-output op on inputs; returns the code and fills *y. */
static int run1(tnode t, int nin, qd_tensor *ins, qd_tensor *y, qd_ctx *ctx, qd_err *e)
{
    qd_tensor *in[8];
    for (int i = 0; i < nin; i++)
        in[i] = ins ? &ins[i] : NULL;
    qd_tensor *out[1] = {y};
    return run_op(&t, in, out, ctx ? ctx : &ctx1, e);
}

static uint32_t rng = 12345;
static float frand(void) /* [-1, 1) */
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_tensor trand(int ndim, const int64_t *shape, float scale, float offset)
{
    qd_tensor t = tens(QD_F32, ndim, shape, NULL);
    float *p = t.data;
    for (int64_t i = 0; i < qd_tensor_numel(&t); i++)
        p[i] = frand() * scale + offset;
    return t;
}

static int shape_is(const qd_tensor *t, int ndim, const int64_t *s)
{
    if (t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != s[i])
            return 0;
    return 1;
}

/* ---- reference broadcasting: offset of output multi-index idx in an input */

static int64_t boff(int ro, const int64_t *idx, int r, const int64_t *s)
{
    int64_t off = 0;
    for (int i = 0; i < r; i++)
        off = off * s[i] + (s[i] == 1 ? 0 : idx[i + ro - r]);
    return off;
}

static int next_idx(int r, const int64_t *s, int64_t *idx)
{
    for (int i = r - 1; i >= 0; i--) {
        if (++idx[i] < s[i])
            return 1;
        idx[i] = 0;
    }
    return 0;
}

static float ref_bin(const char *op, float a, float b)
{
    if (!strcmp(op, "Add")) return a + b;
    if (!strcmp(op, "Sub")) return a - b;
    if (!strcmp(op, "Mul")) return a * b;
    if (!strcmp(op, "Div")) return a / b;
    if (!strcmp(op, "Max")) return a > b ? a : b;
    if (!strcmp(op, "Min")) return a < b ? a : b;
    if (!strcmp(op, "Pow")) return powf(a, b);
    if (!strcmp(op, "PRelu")) return a < 0 ? a * b : a;
    return NAN;
}

/* op(A, B) with broadcasting vs the reference loop; expects output shape (ro, so). */
static void check_bcast(const char *op, int ra, const int64_t *sa, int rb, const int64_t *sb,
                        int ro, const int64_t *so)
{
    qd_tensor in[2] = {trand(ra, sa, 2, 0), trand(rb, sb, 2, 0)};
    if (!strcmp(op, "Pow")) { /* positive bases */
        float *a = in[0].data;
        for (int64_t i = 0; i < qd_tensor_numel(&in[0]); i++)
            a[i] = fabsf(a[i]) + 0.1f;
    }
    qd_tensor y = {0};
    qd_err e;
    char what[160];
    int rc = run1(node(op, 13, 2, 1), 2, in, &y, NULL, &e);
    snprintf(what, sizeof what, "%s rank %d x rank %d", op, ra, rb);
    ok(rc == 0, "%s: %s", what, e.msg);
    if (!rc) {
        ok(shape_is(&y, ro, so), "%s: output shape", what);
        int64_t idx[QD_MAX_DIMS] = {0}, total = qd_shape_numel(ro, so);
        const float *a = in[0].data, *b = in[1].data, *o = y.data;
        int bad = 0;
        for (int64_t i = 0; i < total; i++, next_idx(ro, so, idx)) {
            float want = ref_bin(op, a[boff(ro, idx, ra, sa)], b[boff(ro, idx, rb, sb)]);
            bad += !(o[i] == want || (isnan(o[i]) && isnan(want)));
        }
        ok(bad == 0, "%s: %d elements differ from the reference", what, bad);
    }
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);
    qd_tensor_free(&y);
}

static void test_broadcast(void)
{
    static const char *ops[] = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};
    for (int k = 0; k < 7; k++) {
        const char *op = ops[k];
        check_bcast(op, 3, SH(3, 4, 5), 3, SH(3, 4, 5), 3, SH(3, 4, 5)); /* same shape */
        check_bcast(op, 3, SH(3, 4, 5), 0, SH(0), 3, SH(3, 4, 5));       /* rank-0 scalar */
        check_bcast(op, 0, SH(0), 3, SH(3, 4, 5), 3, SH(3, 4, 5));       /* scalar first */
        check_bcast(op, 4, SH(2, 3, 4, 5), 4, SH(1, 3, 1, 1), 4, SH(2, 3, 4, 5)); /* per channel */
        check_bcast(op, 4, SH(1, 3, 1, 1), 4, SH(2, 3, 4, 5), 4, SH(2, 3, 4, 5));
        check_bcast(op, 3, SH(3, 4, 5), 1, SH(5), 3, SH(3, 4, 5));       /* trailing dims */
        check_bcast(op, 3, SH(3, 4, 5), 2, SH(4, 5), 3, SH(3, 4, 5));
        check_bcast(op, 3, SH(3, 1, 5), 3, SH(1, 4, 1), 3, SH(3, 4, 5)); /* both sides */
        check_bcast(op, 2, SH(4, 1), 4, SH(2, 3, 4, 5), 4, SH(2, 3, 4, 5)); /* rank mismatch */
        check_bcast(op, 4, SH(2, 1, 4, 1), 3, SH(3, 1, 5), 4, SH(2, 3, 4, 5));
        check_bcast(op, 2, SH(1, 1), 1, SH(1), 2, SH(1, 1));
        check_bcast(op, 3, SH(2, 0, 3), 1, SH(3), 3, SH(2, 0, 3)); /* empty */
    }
    /* incompatible shapes */
    qd_tensor in[2] = {trand(2, SH(3, 4), 1, 0), trand(1, SH(5), 1, 0)};
    qd_tensor y = {0};
    qd_err e;
    ok(run1(node("Add", 14, 2, 1), 2, in, &y, NULL, &e) == QD_EINPUT, "3x4 + 5 must fail");
    ok(strstr(e.msg, "broadcast") != NULL, "message names broadcasting: %s", e.msg);
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);
    qd_tensor_free(&y);
}

/* Opset < 7: broadcast=1 with axis aligns B inside A; broadcast=0 needs equal shapes. */
static void test_legacy_broadcast(void)
{
    qd_tensor in[2] = {trand(4, SH(2, 3, 4, 5), 1, 0), trand(2, SH(3, 4), 1, 0)};
    qd_tensor y = {0};
    qd_err e;
    tnode t = node("Add", 6, 2, 1);
    attr_i(&t, "broadcast", 1);
    attr_i(&t, "axis", 1);
    ok(run1(t, 2, in, &y, NULL, &e) == 0, "legacy Add axis=1: %s", e.msg);
    const float *a = in[0].data, *b = in[1].data, *o = y.data;
    int bad = 0;
    for (int i = 0; i < 120; i++)
        bad += o[i] != a[i] + b[(i / 5) % 12];
    ok(bad == 0 && shape_is(&y, 4, SH(2, 3, 4, 5)), "legacy Add axis=1 values");
    ok(run1(node("Add", 6, 2, 1), 2, in, &y, NULL, &e) == QD_EINPUT, "legacy Add, broadcast=0");
    tnode t2 = node("Mul", 6, 2, 1); /* trailing alignment without axis */
    attr_i(&t2, "broadcast", 1);
    qd_tensor b2 = trand(1, SH(5), 1, 0);
    qd_tensor in2[2] = {in[0], b2};
    ok(run1(t2, 2, in2, &y, NULL, &e) == 0, "legacy Mul trailing: %s", e.msg);
    bad = 0;
    for (int i = 0; i < 120; i++)
        bad += ((float *)y.data)[i] != a[i] * ((float *)b2.data)[i % 5];
    ok(bad == 0, "legacy Mul trailing values");
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);
    qd_tensor_free(&b2);
    qd_tensor_free(&y);
}

static void test_int_arith(void)
{
    qd_tensor y = {0};
    qd_err e;
    qd_tensor in[2] = {tens(QD_I64, 1, SH(8), I64(-7, 7, -7, 7, INT64_MIN, 5, 0, 100)),
                       tens(QD_I64, 1, SH(8), I64(2, -2, -2, 2, -1, 0, 3, 7))};
    ok(run1(node("Div", 14, 2, 1), 2, in, &y, NULL, &e) == 0, "int64 Div: %s", e.msg);
    const int64_t want_div[8] = {-3, -3, 3, 3, INT64_MIN, 0, 0, 14};
    ok(y.dtype == QD_I64 && !memcmp(y.data, want_div, sizeof want_div),
       "int64 Div truncates toward zero (x/0 -> 0, MIN/-1 wraps)");
    ok(run1(node("Mul", 14, 2, 1), 2, in, &y, NULL, &e) == 0, "int64 Mul");
    const int64_t want_mul[8] = {-14, -14, 14, 14, INT64_MIN, 0, 0, 700};
    ok(!memcmp(y.data, want_mul, sizeof want_mul), "int64 Mul values (MIN*-1 wraps)");
    ok(run1(node("Add", 14, 2, 1), 2, in, &y, NULL, &e) == 0, "int64 Add");
    ok(((int64_t *)y.data)[4] == INT64_MAX && ((int64_t *)y.data)[0] == -5, "int64 Add values");
    ok(run1(node("Sub", 14, 2, 1), 2, in, &y, NULL, &e) == 0, "int64 Sub");
    ok(((int64_t *)y.data)[1] == 9 && ((int64_t *)y.data)[7] == 93, "int64 Sub values");
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);

    /* shape arithmetic as exported models do it: int64 scalar broadcast */
    qd_tensor s[2] = {tens(QD_I64, 1, SH(4), I64(1, 3, 224, 224)), tens(QD_I64, 0, SH(0), I64(-2))};
    ok(run1(node("Div", 7, 2, 1), 2, s, &y, NULL, &e) == 0, "int64 Div by scalar");
    ok(shape_is(&y, 1, SH(4)) && !memcmp(y.data, I64(0, -1, -112, -112), 32), "1,3,224,224 / -2");
    qd_tensor_free(&s[0]);
    qd_tensor_free(&s[1]);

    qd_tensor i32[2] = {tens(QD_I32, 1, SH(4), I32(-9, 9, INT32_MAX, 6)),
                        tens(QD_I32, 1, SH(1), I32(4))};
    ok(run1(node("Div", 13, 2, 1), 2, i32, &y, NULL, &e) == 0, "int32 Div");
    ok(y.dtype == QD_I32 && !memcmp(y.data, I32(-2, 2, INT32_MAX / 4, 1), 16), "int32 Div values");
    ok(run1(node("Add", 13, 2, 1), 2, i32, &y, NULL, &e) == 0, "int32 Add");
    ok(((int32_t *)y.data)[2] == INT32_MIN + 3, "int32 Add wraps");
    ok(run1(node("Max", 13, 2, 1), 2, i32, &y, NULL, &e) == 0, "int32 Max");
    ok(!memcmp(y.data, I32(4, 9, INT32_MAX, 6), 16), "int32 Max values");
    qd_tensor_free(&i32[0]);
    qd_tensor_free(&i32[1]);

    const uint8_t u8a[3] = {250, 3, 7}, u8b[3] = {10, 5, 2};
    qd_tensor u8[2] = {tens(QD_U8, 1, SH(3), u8a), tens(QD_U8, 1, SH(3), u8b)};
    ok(run1(node("Add", 14, 2, 1), 2, u8, &y, NULL, &e) == 0, "uint8 Add");
    ok(!memcmp(y.data, (uint8_t[]){4, 8, 9}, 3), "uint8 Add wraps");
    ok(run1(node("Sub", 14, 2, 1), 2, u8, &y, NULL, &e) == 0, "uint8 Sub");
    ok(!memcmp(y.data, (uint8_t[]){240, 254, 5}, 3), "uint8 Sub wraps");
    ok(run1(node("Div", 14, 2, 1), 2, u8, &y, NULL, &e) == 0, "uint8 Div");
    ok(!memcmp(y.data, (uint8_t[]){25, 0, 3}, 3), "uint8 Div");
    qd_tensor_free(&u8[0]);
    qd_tensor_free(&u8[1]);

    /* mixed dtypes are an error */
    qd_tensor mix[2] = {tens(QD_I64, 1, SH(1), I64(1)), tens(QD_F32, 1, SH(1), F32(1))};
    ok(run1(node("Add", 14, 2, 1), 2, mix, &y, NULL, &e) == QD_EINPUT, "int64 + float32 rejected");
    qd_tensor_free(&mix[0]);
    qd_tensor_free(&mix[1]);
    qd_tensor_free(&y);
}

static void test_variadic_pow(void)
{
    qd_tensor y = {0};
    qd_err e;
    qd_tensor in[3] = {tens(QD_F32, 2, SH(2, 1), F32(1, 5)), tens(QD_F32, 1, SH(3), F32(3, 0, 6)),
                       tens(QD_F32, 0, SH(0), F32(2))};
    ok(run1(node("Max", 13, 3, 1), 3, in, &y, NULL, &e) == 0, "Max of 3: %s", e.msg);
    ok(shape_is(&y, 2, SH(2, 3)) && !memcmp(y.data, F32(3, 2, 6, 5, 5, 6), 24), "Max values");
    ok(run1(node("Min", 13, 3, 1), 3, in, &y, NULL, &e) == 0, "Min of 3");
    ok(!memcmp(y.data, F32(1, 0, 1, 2, 0, 2), 24), "Min values");
    ok(run1(node("Sum", 13, 3, 1), 3, in, &y, NULL, &e) == 0, "Sum of 3");
    ok(!memcmp(y.data, F32(6, 3, 9, 10, 7, 13), 24), "Sum values");
    ok(run1(node("Mean", 13, 3, 1), 3, in, &y, NULL, &e) == 0, "Mean of 3");
    near(((float *)y.data)[0], 2.0, 0, 1e-7, "Mean[0]");
    near(((float *)y.data)[5], 13.0 / 3, 0, 1e-7, "Mean[5]");
    ok(run1(node("Max", 13, 1, 1), 1, in, &y, NULL, &e) == 0, "Max of 1");
    ok(shape_is(&y, 2, SH(2, 1)) && !memcmp(y.data, F32(1, 5), 8), "Max of 1 is a copy");
    float nanv = NAN;
    qd_tensor nn[2] = {tens(QD_F32, 1, SH(2), F32(1, nanv)), tens(QD_F32, 1, SH(2), F32(nanv, 1))};
    ok(run1(node("Max", 13, 2, 1), 2, nn, &y, NULL, &e) == 0, "Max NaN");
    ok(isnan(((float *)y.data)[0]) && isnan(((float *)y.data)[1]), "Max propagates NaN");
    qd_tensor_free(&nn[0]);
    qd_tensor_free(&nn[1]);

    /* Pow: x^2 fast path, mixed types computed in double like ONNX Runtime */
    qd_tensor p[2] = {tens(QD_F32, 1, SH(3), F32(-3, 0.5f, 1e20f)), tens(QD_F32, 0, SH(0), F32(2))};
    ok(run1(node("Pow", 15, 2, 1), 2, p, &y, NULL, &e) == 0, "Pow x^2");
    ok(!memcmp(y.data, F32(9, 0.25f, INFINITY), 12), "Pow x^2 = x*x");
    qd_tensor_free(&p[1]);
    p[1] = tens(QD_I64, 1, SH(3), I64(3, -1, 0));
    ok(run1(node("Pow", 15, 2, 1), 2, p, &y, NULL, &e) == 0, "Pow f32^i64: %s", e.msg);
    ok(y.dtype == QD_F32 && !memcmp(y.data, F32(-27, 2, 1), 12), "Pow f32^i64 values");
    qd_tensor_free(&p[0]);
    p[0] = tens(QD_I64, 1, SH(3), I64(2, 2, 7));
    ok(run1(node("Pow", 15, 2, 1), 2, p, &y, NULL, &e) == 0, "Pow i64^i64");
    ok(y.dtype == QD_I64 && !memcmp(y.data, I64(8, 0, 1), 24), "Pow i64^i64 values (2^-1 -> 0)");
    qd_tensor_free(&p[1]);
    p[1] = tens(QD_F32, 1, SH(3), F32(0.5f, 10, 2));
    ok(run1(node("Pow", 15, 2, 1), 2, p, &y, NULL, &e) == 0, "Pow i64^f32");
    ok(!memcmp(y.data, I64(1, 1024, 49), 24), "Pow i64^f32 truncates");
    ok(run1(node("Pow", 7, 2, 1), 2, p, &y, NULL, &e) == QD_EINPUT, "Pow-7 needs equal types");
    qd_tensor_free(&p[0]);
    qd_tensor_free(&p[1]);
    for (int i = 0; i < 3; i++)
        qd_tensor_free(&in[i]);
    qd_tensor_free(&y);
}

static void test_clip(void)
{
    qd_tensor y = {0};
    qd_err e;
    qd_tensor x = tens(QD_F32, 1, SH(5), F32(-3, -0.5f, 0.5f, 3, INFINITY));
    tnode t = node("Clip", 6, 1, 1);
    attr_f(&t, "min", -1);
    attr_f(&t, "max", 1);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0, "Clip-6: %s", e.msg);
    ok(!memcmp(y.data, F32(-1, -0.5f, 0.5f, 1, 1), 20), "Clip-6 values");
    tnode t2 = node("Clip", 6, 1, 1);
    attr_f(&t2, "max", 0);
    ok(run1(t2, 1, &x, &y, NULL, &e) == 0, "Clip-6 max only");
    ok(!memcmp(y.data, F32(-3, -0.5f, 0, 0, 0), 20), "Clip-6 max only values");

    qd_tensor in[3] = {x, tens(QD_F32, 0, SH(0), F32(-1)), tens(QD_F32, 0, SH(0), F32(2))};
    qd_tensor *ins[3] = {&in[0], &in[1], &in[2]};
    qd_tensor *outs[1] = {&y};
    tnode t3 = node("Clip", 13, 3, 1);
    ok(run_op(&t3, ins, outs, &ctx1, &e) == 0, "Clip-13 both: %s", e.msg);
    ok(!memcmp(y.data, F32(-1, -0.5f, 0.5f, 2, 2), 20), "Clip-13 both values");
    ins[1] = NULL; /* max only */
    t3.in[1] = -1;
    ok(run_op(&t3, ins, outs, &ctx1, &e) == 0, "Clip-13 max only");
    ok(!memcmp(y.data, F32(-3, -0.5f, 0.5f, 2, 2), 20), "Clip-13 max only values");
    ins[1] = &in[1];
    t3.in[1] = 1;
    tnode t4 = node("Clip", 11, 2, 1); /* min only, max input omitted entirely */
    ok(run_op(&t4, ins, outs, &ctx1, &e) == 0, "Clip-11 min only");
    ok(!memcmp(y.data, F32(-1, -0.5f, 0.5f, 3, FLT_MAX), 20),
       "Clip-11 min only values (inf -> FLT_MAX, the spec's default max)");
    tnode t5 = node("Clip", 12, 1, 1);
    ok(run_op(&t5, ins, outs, &ctx1, &e) == 0, "Clip-12 no bounds");
    ok(!memcmp(y.data, F32(-3, -0.5f, 0.5f, 3, FLT_MAX), 20), "Clip-12 no bounds values");
    qd_tensor_free(&in[1]);
    in[1] = tens(QD_F32, 0, SH(0), F32(5)); /* min > max: everything is max */
    ok(run_op(&t3, ins, outs, &ctx1, &e) == 0, "Clip min > max");
    ok(!memcmp(y.data, F32(2, 2, 2, 2, 2), 20), "Clip min > max gives max");
    qd_tensor_free(&in[1]);
    in[1] = tens(QD_F32, 1, SH(2), F32(0, 1));
    ok(run_op(&t3, ins, outs, &ctx1, &e) == QD_EINPUT, "Clip with a 2-element min fails");

    const int8_t xi[4] = {-128, -5, 5, 127}, lo = -10, hi = 10;
    qd_tensor i8[3] = {tens(QD_I8, 1, SH(4), xi), tens(QD_I8, 0, SH(0), &lo), tens(QD_I8, 0, SH(0), &hi)};
    ok(run1(node("Clip", 13, 3, 1), 3, i8, &y, NULL, &e) == 0, "Clip int8: %s", e.msg);
    ok(y.dtype == QD_I8 && !memcmp(y.data, (int8_t[]){-10, -5, 5, 10}, 4), "Clip int8 values");
    ok(run1(node("Clip", 11, 3, 1), 3, i8, &y, NULL, &e) == QD_EINPUT, "Clip-11 int8 rejected");
    for (int i = 0; i < 3; i++) {
        qd_tensor_free(&in[i]);
        qd_tensor_free(&i8[i]);
    }
    qd_tensor_free(&y);
}

/* reference softmax of x viewed as (outer, len, inner) */
static void ref_softmax(const float *x, double *y, int64_t outer, int64_t len, int64_t inner, int lg)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *p = x + o * len * inner + j;
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < len; k++)
                m = fmax(m, p[k * inner]);
            for (int64_t k = 0; k < len; k++)
                s += exp(p[k * inner] - m);
            for (int64_t k = 0; k < len; k++) {
                double v = p[k * inner] - m;
                y[o * len * inner + j + k * inner] = lg ? v - log(s) : exp(v) / s;
            }
        }
}

static void check_softmax(const char *op, int opset, int axis_set, int64_t axis, int64_t outer,
                          int64_t len, int64_t inner, const char *what)
{
    qd_tensor x = trand(3, SH(2, 3, 4), 5, 0);
    qd_tensor y = {0};
    qd_err e;
    double want[24];
    tnode t = node(op, opset, 1, 1);
    if (axis_set)
        attr_i(&t, "axis", axis);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0, "%s: %s", what, e.msg);
    ref_softmax(x.data, want, outer, len, inner, !strcmp(op, "LogSoftmax"));
    int bad = 0;
    for (int i = 0; i < 24; i++)
        bad += fabs(((float *)y.data)[i] - want[i]) > 1e-6 + 1e-5 * fabs(want[i]);
    ok(bad == 0 && shape_is(&y, 3, SH(2, 3, 4)), "%s: %d values off", what, bad);
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static void test_softmax(void)
{
    for (int l = 0; l < 2; l++) {
        const char *op = l ? "LogSoftmax" : "Softmax";
        check_softmax(op, 11, 0, 0, 2, 12, 1, "opset 11 default axis 1: over 3*4");
        check_softmax(op, 11, 1, 1, 2, 12, 1, "opset 11 axis 1: over 3*4");
        check_softmax(op, 11, 1, 0, 1, 24, 1, "opset 11 axis 0: over everything");
        check_softmax(op, 11, 1, -1, 6, 4, 1, "opset 11 axis -1");
        check_softmax(op, 13, 0, 0, 6, 4, 1, "opset 13 default axis -1");
        check_softmax(op, 13, 1, 1, 2, 3, 4, "opset 13 axis 1: that dim only");
        check_softmax(op, 13, 1, 0, 1, 2, 12, "opset 13 axis 0");
        check_softmax(op, 13, 1, -2, 2, 3, 4, "opset 13 axis -2");
    }
    qd_tensor x = tens(QD_F32, 2, SH(1, 3), F32(1000, 1001, 1002)), y = {0};
    qd_err e;
    ok(run1(node("Softmax", 13, 1, 1), 1, &x, &y, NULL, &e) == 0, "Softmax large");
    near(((float *)y.data)[2], 0.66524096, 1e-7, 1e-6, "Softmax of large numbers is stable");
    tnode t = node("Softmax", 13, 1, 1);
    attr_i(&t, "axis", 2);
    ok(run1(t, 1, &x, &y, NULL, &e) == QD_EINPUT, "Softmax axis out of range");
    qd_tensor_free(&x);
    qd_tensor xi = tens(QD_I64, 1, SH(2), I64(1, 2));
    ok(run1(node("Softmax", 13, 1, 1), 1, &xi, &y, NULL, &e) == QD_EINPUT &&
           strstr(e.msg, "unsupported dtype int64"), "Softmax int64 rejected: %s", e.msg);
    qd_tensor_free(&xi);
    qd_tensor_free(&y);
}

static void test_batchnorm(void)
{
    qd_tensor in[5] = {trand(4, SH(2, 3, 4, 5), 3, 1), tens(QD_F32, 1, SH(3), F32(1, 2, -0.5f)),
                       tens(QD_F32, 1, SH(3), F32(0, 0.5f, -1)), tens(QD_F32, 1, SH(3), F32(1, -2, 0.25f)),
                       tens(QD_F32, 1, SH(3), F32(1, 4, 0.01f))};
    const float *x = in[0].data, *sc = in[1].data, *b = in[2].data, *m = in[3].data, *v = in[4].data;
    qd_tensor y = {0};
    qd_err e;
    for (int opset = 6; opset <= 15; opset += 3) {
        tnode t = node("BatchNormalization", opset, 5, 1);
        attr_f(&t, "epsilon", 1e-3f);
        if (opset < 7)
            attr_i(&t, "is_test", 1);
        if (opset < 9)
            attr_i(&t, "spatial", 1);
        ok(run1(t, 5, in, &y, NULL, &e) == 0, "BN opset %d: %s", opset, e.msg);
        int bad = 0;
        for (int i = 0; i < 120; i++) {
            int c = (i / 20) % 3;
            double want = (x[i] - m[c]) / sqrt((double)v[c] + 1e-3f) * sc[c] + b[c];
            bad += fabs(((float *)y.data)[i] - want) > 1e-5 + 1e-5 * fabs(want);
        }
        ok(bad == 0, "BN opset %d values: %d off", opset, bad);
    }
    /* opset 7, spatial=0: parameters per (C, H, W) */
    qd_tensor p[5] = {in[0], trand(3, SH(3, 4, 5), 1, 0), trand(3, SH(3, 4, 5), 1, 0),
                      trand(3, SH(3, 4, 5), 1, 0), trand(3, SH(3, 4, 5), 0.5f, 1)};
    tnode t = node("BatchNormalization", 7, 5, 1);
    attr_i(&t, "spatial", 0);
    ok(run1(t, 5, p, &y, NULL, &e) == 0, "BN spatial=0: %s", e.msg);
    int bad = 0;
    for (int i = 0; i < 120; i++) {
        int c = i % 60;
        float *P[5] = {0, p[1].data, p[2].data, p[3].data, p[4].data};
        double want = (x[i] - P[3][c]) / sqrt((double)P[4][c] + 1e-5f) * P[1][c] + P[2][c];
        bad += fabs(((float *)y.data)[i] - want) > 1e-5 + 1e-5 * fabs(want);
    }
    ok(bad == 0, "BN spatial=0 values: %d off", bad);
    for (int i = 1; i < 5; i++)
        qd_tensor_free(&p[i]);

    tnode tm = node("BatchNormalization", 15, 5, 1);
    attr_i(&tm, "training_mode", 1);
    ok(run1(tm, 5, in, &y, NULL, &e) == QD_EINPUT && strstr(e.msg, "not supported"),
       "training_mode=1 rejected: %s", e.msg);
    tnode to = node("BatchNormalization", 9, 5, 3); /* running mean/var outputs used */
    ok(run1(to, 5, in, &y, NULL, &e) == QD_EINPUT, "BN training outputs rejected");
    qd_tensor bad_scale = tens(QD_F32, 1, SH(4), F32(1, 1, 1, 1));
    qd_tensor in2[5] = {in[0], bad_scale, in[2], in[3], in[4]};
    ok(run1(node("BatchNormalization", 15, 5, 1), 5, in2, &y, NULL, &e) == QD_EINPUT,
       "BN scale of the wrong size rejected");
    qd_tensor_free(&bad_scale);
    for (int i = 0; i < 5; i++)
        qd_tensor_free(&in[i]);
    qd_tensor_free(&y);
}

/* reference reduction by scattering every input element into its output */
enum { K_SUM, K_MEAN, K_MAX, K_MIN, K_SUMSQ, K_L1, K_L2, K_PROD, K_LSE };

static void ref_reduce(const float *x, int r, const int64_t *s, const int *red, int kind, double *y,
                       int64_t nout)
{
    int64_t cnt[4096] = {0}, idx[QD_MAX_DIMS] = {0};
    for (int64_t o = 0; o < nout; o++)
        y[o] = kind == K_MAX ? -INFINITY : kind == K_MIN ? INFINITY : kind == K_PROD ? 1 : 0;
    int64_t i = 0;
    do {
        int64_t o = 0;
        for (int d = 0; d < r; d++)
            if (!red[d])
                o = o * s[d] + idx[d];
        double v = x[i++];
        switch (kind) {
        case K_MAX: y[o] = fmax(y[o], v); break;
        case K_MIN: y[o] = fmin(y[o], v); break;
        case K_PROD: y[o] *= v; break;
        case K_SUMSQ: case K_L2: y[o] += v * v; break;
        case K_L1: y[o] += fabs(v); break;
        case K_LSE: y[o] += exp(v); break;
        default: y[o] += v; break;
        }
        cnt[o]++;
    } while (next_idx(r, s, idx));
    for (int64_t o = 0; o < nout; o++) {
        if (kind == K_MEAN)
            y[o] /= (double)cnt[o];
        if (kind == K_L2)
            y[o] = sqrt(y[o]);
        if (kind == K_LSE)
            y[o] = log(y[o]);
    }
}

/* Every reduction over every subset of the axes of x (shape s, rank 4, at
 * most 360 elements), against ref_reduce. */
static void reduce_masks(qd_tensor *x, const int64_t *s)
{
    static const char *ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceProd",
                                "ReduceLogSumExp"};
    qd_tensor y = {0};
    qd_err e;
    double want[360];
    for (int k = 0; k < 9; k++)
        for (int mask = 0; mask < 16; mask++)
            for (int keep = 0; keep < 2; keep++) {
                int red[4], na = 0, ro = 0;
                int64_t axes[4], so[4], nout = 1;
                for (int d = 0; d < 4; d++) {
                    red[d] = mask == 0 || (mask >> d & 1);
                    if (mask >> d & 1)
                        axes[na++] = (d & 1) ? d - 4 : d; /* odd axes negative */
                    if (!red[d])
                        nout *= s[d];
                    if (!red[d] || keep)
                        so[ro++] = red[d] ? 1 : s[d];
                }
                int opset = k == 0 ? 11 : 13; /* ReduceSum-13 takes axes as an input */
                tnode t = node(ops[k], opset, 1, 1);
                attr_i(&t, "keepdims", keep);
                if (na)
                    attr_is(&t, "axes", na, axes);
                ok(run1(t, 1, x, &y, NULL, &e) == 0, "%s mask %d: %s", ops[k], mask, e.msg);
                ok(shape_is(&y, ro, so), "%s mask %d keepdims %d: shape", ops[k], mask, keep);
                ref_reduce(x->data, 4, s, red, k, want, nout);
                int bad = 0;
                for (int64_t i = 0; i < nout; i++)
                    bad += fabs(((float *)y.data)[i] - want[i]) > 1e-6 + 1e-5 * fabs(want[i]);
                ok(bad == 0, "%s %lldx%lldx%lldx%lld axes mask %d keepdims %d: %d values off", ops[k],
                   (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], mask, keep, bad);
            }
    qd_tensor_free(&y);
}

static void test_reduce(void)
{
    const int64_t s[4] = {3, 4, 5, 6};
    qd_tensor x = trand(4, s, 1, 0.3f);
    qd_tensor y = {0};
    qd_err e;
    double want[360];
    reduce_masks(&x, s);
    /* masks 2, 8 and 10 reduce only axes of one element: the output is the
     * input for Sum, Mean, Max, Min and Prod (a global pool of 1x1 maps) */
    const int64_t s1[4] = {3, 1, 5, 1};
    qd_tensor x1 = trand(4, s1, 2, 0.3f);
    reduce_masks(&x1, s1);
    qd_tensor_free(&x1);

    /* ReduceSum-13: axes input, noop_with_empty_axes */
    qd_tensor ax = tens(QD_I64, 1, SH(2), I64(-1, 1));
    qd_tensor in[2] = {x, ax};
    tnode t = node("ReduceSum", 13, 2, 1);
    attr_i(&t, "keepdims", 0);
    ok(run1(t, 2, in, &y, NULL, &e) == 0, "ReduceSum-13 axes input: %s", e.msg);
    ok(shape_is(&y, 2, SH(3, 5)), "ReduceSum-13 shape");
    ref_reduce(x.data, 4, s, (int[]){0, 1, 0, 1}, K_SUM, want, 15);
    near(((float *)y.data)[7], want[7], 1e-6, 1e-5, "ReduceSum-13 value");
    qd_tensor_free(&ax);
    in[1] = tens(QD_I64, 1, SH(0), NULL);
    tnode tn = node("ReduceSum", 13, 2, 1);
    attr_i(&tn, "noop_with_empty_axes", 1);
    ok(run1(tn, 2, in, &y, NULL, &e) == 0 && shape_is(&y, 4, s) &&
           !memcmp(y.data, x.data, qd_tensor_nbytes(&x)), "ReduceSum noop_with_empty_axes");
    ok(run1(node("ReduceSum", 13, 2, 1), 2, in, &y, NULL, &e) == 0 && shape_is(&y, 4, SH(1, 1, 1, 1)),
       "ReduceSum-13 empty axes reduces all");
    qd_tensor_free(&in[1]);
    tnode td = node("ReduceMean", 13, 1, 1);
    attr_is(&td, "axes", 2, (int64_t[]){1, -3});
    ok(run1(td, 1, &x, &y, NULL, &e) == QD_EINPUT, "repeated axis rejected");
    tnode tr = node("ReduceMean", 13, 1, 1);
    attr_is(&tr, "axes", 1, (int64_t[]){4});
    ok(run1(tr, 1, &x, &y, NULL, &e) == QD_EINPUT, "axis out of range rejected");

    /* LogSumExp is stable for large inputs (rows and columns); LogSum */
    qd_tensor big = tens(QD_F32, 2, SH(2, 2), F32(1000, 1000, 2000, -INFINITY));
    for (int axis = 0; axis < 2; axis++) {
        tnode tl = node("ReduceLogSumExp", 13, 1, 1);
        attr_is(&tl, "axes", 1, (int64_t[]){axis});
        ok(run1(tl, 1, &big, &y, NULL, &e) == 0, "LogSumExp large: %s", e.msg);
        const float *g = y.data;
        if (axis == 0)
            ok(g[0] == 2000 && g[1] == 1000, "LogSumExp axis 0: %g %g", g[0], g[1]);
        else
            ok(fabsf(g[0] - (1000 + logf(2))) < 1e-3f && g[1] == 2000, "LogSumExp axis 1: %g %g",
               g[0], g[1]);
    }
    qd_tensor_free(&big);
    big = tens(QD_F32, 1, SH(3), F32(1, 2, 4));
    ok(run1(node("ReduceLogSum", 13, 1, 1), 1, &big, &y, NULL, &e) == 0 &&
           fabsf(((float *)y.data)[0] - logf(7)) < 1e-6f, "ReduceLogSum");
    qd_tensor_free(&big);

    /* int64 */
    qd_tensor xi = tens(QD_I64, 2, SH(2, 3), I64(1, -2, 3, 4, 5, -7));
    tnode ti = node("ReduceSum", 11, 1, 1);
    attr_is(&ti, "axes", 1, (int64_t[]){1});
    ok(run1(ti, 1, &xi, &y, NULL, &e) == 0 && y.dtype == QD_I64 &&
           !memcmp(y.data, I64(2, 2), 16), "int64 ReduceSum");
    tnode tmn = node("ReduceMean", 11, 1, 1);
    attr_is(&tmn, "axes", 1, (int64_t[]){0});
    ok(run1(tmn, 1, &xi, &y, NULL, &e) == 0 && !memcmp(y.data, I64(2, 1, -2), 24),
       "int64 ReduceMean truncates");
    tnode tmx = node("ReduceMax", 11, 1, 1);
    attr_i(&tmx, "keepdims", 0);
    ok(run1(tmx, 1, &xi, &y, NULL, &e) == 0 && y.ndim == 0 && ((int64_t *)y.data)[0] == 5,
       "int64 ReduceMax of all -> scalar");
    qd_tensor_free(&xi);
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static void test_cast(void)
{
    qd_tensor y = {0};
    qd_err e;
    qd_tensor x = tens(QD_F32, 1, SH(8), F32(2.7f, -2.7f, 0.5f, -0.0f, 300.5f, 1e10f, 0, NAN));
    tnode t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_I64);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && y.dtype == QD_I64, "Cast f32->i64: %s", e.msg);
    ok(!memcmp(y.data, I64(2, -2, 0, 0, 300, 10000000000LL, 0, INT64_MIN), 64),
       "f32->i64 truncates toward zero");
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_I32);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && y.dtype == QD_I32, "Cast f32->i32");
    ok(!memcmp(y.data, I32(2, -2, 0, 0, 300, INT32_MIN, 0, INT32_MIN), 32), "f32->i32 values");
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_U8);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0, "Cast f32->u8");
    ok(!memcmp(y.data, (uint8_t[]){2, 254, 0, 0, 44, 0, 0, 0}, 8), "f32->u8 truncates then wraps");
    t = node("Cast", 9, 1, 1);
    attr_i(&t, "to", QD_BOOL);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && y.dtype == QD_BOOL, "Cast f32->bool");
    ok(!memcmp(y.data, (uint8_t[]){1, 1, 1, 0, 1, 1, 0, 1}, 8), "f32->bool is x != 0");
    qd_tensor_free(&x);

    x = tens(QD_I64, 1, SH(3), I64(16777217, -3, INT64_MAX));
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_F32);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0, "Cast i64->f32");
    ok(!memcmp(y.data, F32(16777216, -3, 9.2233720368547758e18f), 12), "i64->f32 rounds to nearest");
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_I8);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && !memcmp(y.data, (int8_t[]){1, -3, -1}, 3),
       "i64->i8 wraps");
    qd_tensor_free(&x);

    const double dv[3] = {0.1, 1e300, -1.5};
    x = tens(QD_F64, 1, SH(3), dv);
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_F32);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && !memcmp(y.data, F32(0.1f, INFINITY, -1.5f), 12),
       "f64->f32 rounds");
    qd_tensor_free(&x);

    x = tens(QD_BOOL, 1, SH(2), (uint8_t[]){1, 0});
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_F32);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && !memcmp(y.data, F32(1, 0), 8), "bool->f32");
    qd_tensor_free(&x);

    x = tens(QD_U8, 1, SH(2), (uint8_t[]){200, 100});
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_I8);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && !memcmp(y.data, (int8_t[]){-56, 100}, 2), "u8->i8 wraps");
    qd_tensor_free(&x);

    /* float16 both ways: exact values, rounding to nearest even, subnormals, overflow */
    x = tens(QD_F32, 1, SH(7), F32(1, 0.1f, 65504, 70000, 1e-8f, -2.98e-8f, 1.00048828125f));
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_F16);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && y.dtype == QD_F16, "Cast f32->f16: %s", e.msg);
    ok(!memcmp(y.data, (uint16_t[]){0x3c00, 0x2e66, 0x7bff, 0x7c00, 0x0000, 0x8000, 0x3c00}, 14),
       "f32->f16 bits %04x %04x %04x %04x %04x %04x %04x", ((uint16_t *)y.data)[0],
       ((uint16_t *)y.data)[1], ((uint16_t *)y.data)[2], ((uint16_t *)y.data)[3],
       ((uint16_t *)y.data)[4], ((uint16_t *)y.data)[5], ((uint16_t *)y.data)[6]);
    qd_tensor h = y;
    y = (qd_tensor){0};
    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_F32);
    ok(run1(t, 1, &h, &y, NULL, &e) == 0, "Cast f16->f32");
    ok(!memcmp(y.data, F32(1, 0.0999755859375f, 65504, INFINITY, 0, -0.0f, 1), 28), "f16->f32");
    qd_tensor_free(&h);
    qd_tensor_free(&x);
    x = tens(QD_F16, 1, SH(1), (uint16_t[]){0x0001});
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && ((float *)y.data)[0] == 5.9604644775390625e-8f,
       "f16 subnormal");
    qd_tensor_free(&x);

    t = node("Cast", 13, 1, 1);
    attr_i(&t, "to", QD_STRING);
    x = tens(QD_F32, 1, SH(1), F32(1));
    ok(run1(t, 1, &x, &y, NULL, &e) == QD_EINPUT && strstr(e.msg, "unsupported dtype string"),
       "Cast to string rejected: %s", e.msg);
    ok(run1(node("Cast", 13, 1, 1), 1, &x, &y, NULL, &e) == QD_EINPUT, "Cast without 'to'");
    qd_tensor like[2] = {x, tens(QD_I32, 0, SH(0), I32(0))};
    ok(run1(node("CastLike", 15, 2, 1), 2, like, &y, NULL, &e) == 0 && y.dtype == QD_I32 &&
           ((int32_t *)y.data)[0] == 1, "CastLike");
    qd_tensor_free(&like[1]);
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static void test_prelu(void)
{
    qd_tensor x = trand(4, SH(2, 3, 4, 5), 1, 0), y = {0};
    qd_err e;
    const int64_t *shapes[] = {SH(3, 1, 1), SH(1), SH(5), SH(2, 3, 4, 5), SH(1, 3, 1, 1), SH(4, 1)};
    const int ranks[] = {3, 1, 1, 4, 4, 2};
    for (int k = 0; k < 6; k++)
        check_bcast("PRelu", 4, SH(2, 3, 4, 5), ranks[k], shapes[k], 4, SH(2, 3, 4, 5));
    qd_tensor in[2] = {trand(2, SH(4, 5), 1, 0), trand(3, SH(3, 4, 5), 1, 0)};
    ok(run1(node("PRelu", 16, 2, 1), 2, in, &y, NULL, &e) == QD_EINPUT,
       "slope larger than X rejected (unidirectional)");
    /* PRelu-6: a 1-D slope of size C is per channel */
    qd_tensor in6[2] = {x, trand(1, SH(3), 1, 0)};
    ok(run1(node("PRelu", 6, 2, 1), 2, in6, &y, NULL, &e) == 0, "PRelu-6 per channel: %s", e.msg);
    int bad = 0;
    for (int i = 0; i < 120; i++) {
        float v = ((float *)x.data)[i], sl = ((float *)in6[1].data)[(i / 20) % 3];
        bad += ((float *)y.data)[i] != (v < 0 ? v * sl : v);
    }
    ok(bad == 0, "PRelu-6 per channel values");
    ok(run1(node("PRelu", 7, 2, 1), 2, in6, &y, NULL, &e) == QD_EINPUT, "PRelu-7 slope (3) on X (...,5)");
    qd_tensor_free(&in6[1]);
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static double ref_unary(const char *op, double v)
{
    if (!strcmp(op, "Relu")) return v < 0 ? 0 : v;
    if (!strcmp(op, "LeakyRelu")) return v < 0 ? v * 0.01f : v;
    if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-v));
    if (!strcmp(op, "HardSigmoid")) return fmax(0, fmin(1, v * 0.2f + 0.5f));
    if (!strcmp(op, "HardSwish")) return v * fmax(0, fmin(1, v / 6 + 0.5));
    if (!strcmp(op, "Tanh")) return tanh(v);
    if (!strcmp(op, "Sqrt")) return sqrt(v);
    if (!strcmp(op, "Erf")) return erf(v);
    if (!strcmp(op, "Exp")) return exp(v);
    if (!strcmp(op, "Log")) return log(v);
    if (!strcmp(op, "Neg")) return -v;
    if (!strcmp(op, "Abs")) return fabs(v);
    if (!strcmp(op, "Reciprocal")) return 1 / v;
    if (!strcmp(op, "Floor")) return floor(v);
    if (!strcmp(op, "Ceil")) return ceil(v);
    if (!strcmp(op, "Sign")) return (v > 0) - (v < 0);
    if (!strcmp(op, "Elu") || !strcmp(op, "Celu")) return v < 0 ? expm1(v) : v;
    if (!strcmp(op, "Selu"))
        return v <= 0 ? 1.05070102214813232421875 * 1.67326319217681884765625 * expm1(v)
                      : 1.05070102214813232421875 * v;
    if (!strcmp(op, "Softplus")) return log1p(exp(v));
    if (!strcmp(op, "Softsign")) return v / (1 + fabs(v));
    if (!strcmp(op, "ThresholdedRelu")) return v > 1 ? v : 0;
    return NAN;
}

static void test_unary(void)
{
    static const char *ops[] = {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish",
                                "Tanh", "Sqrt", "Erf", "Exp", "Log", "Neg", "Abs",
                                "Reciprocal", "Floor", "Ceil", "Sign", "Elu", "Celu", "Selu",
                                "Softplus", "Softsign", "ThresholdedRelu"};
    qd_tensor x = trand(2, SH(7, 9), 8, 0), y = {0};
    qd_err e;
    float *xv = x.data;
    xv[0] = 0;
    xv[1] = -0.0f;
    xv[2] = 3; /* HardSwish/HardSigmoid corners */
    xv[3] = -3;
    for (int k = 0; k < (int)(sizeof ops / sizeof ops[0]); k++) {
        const char *op = ops[k];
        int pos = !strcmp(op, "Sqrt") || !strcmp(op, "Log");
        qd_tensor in = pos ? trand(2, SH(7, 9), 4, 4.5f) : x;
        ok(run1(node(op, 14, 1, 1), 1, &in, &y, NULL, &e) == 0, "%s: %s", op, e.msg);
        int bad = 0;
        for (int i = 0; i < 63; i++) {
            double want = ref_unary(op, ((float *)in.data)[i]);
            double got = ((float *)y.data)[i];
            bad += fabs(got - want) > 1e-6 * (1 + fabs(want));
        }
        ok(bad == 0 && shape_is(&y, 2, SH(7, 9)), "%s: %d values off", op, bad);
        if (pos)
            qd_tensor_free(&in);
    }
    tnode t = node("LeakyRelu", 16, 1, 1);
    attr_f(&t, "alpha", 0.5f);
    qd_tensor s = tens(QD_F32, 1, SH(2), F32(-2, 2));
    ok(run1(t, 1, &s, &y, NULL, &e) == 0 && !memcmp(y.data, F32(-1, 2), 8), "LeakyRelu alpha");
    t = node("HardSigmoid", 6, 1, 1);
    attr_f(&t, "alpha", 0.5f);
    attr_f(&t, "beta", 0.25f);
    ok(run1(t, 1, &s, &y, NULL, &e) == 0 && !memcmp(y.data, F32(0, 1), 8), "HardSigmoid alpha/beta");
    qd_tensor_free(&s);
    ok(run1(node("HardSwish", 13, 1, 1), 1, &x, &y, NULL, &e) == QD_EINPUT, "HardSwish needs opset 14");

    qd_tensor xi = tens(QD_I64, 1, SH(3), I64(-5, 0, INT64_MIN));
    ok(run1(node("Neg", 13, 1, 1), 1, &xi, &y, NULL, &e) == 0 &&
           !memcmp(y.data, I64(5, 0, INT64_MIN), 24), "int64 Neg");
    ok(run1(node("Abs", 13, 1, 1), 1, &xi, &y, NULL, &e) == 0 &&
           !memcmp(y.data, I64(5, 0, INT64_MIN), 24), "int64 Abs");
    ok(run1(node("Relu", 14, 1, 1), 1, &xi, &y, NULL, &e) == 0 && !memcmp(y.data, I64(0, 0, 0), 24),
       "int64 Relu");
    ok(run1(node("Sign", 13, 1, 1), 1, &xi, &y, NULL, &e) == 0 && !memcmp(y.data, I64(-1, 0, -1), 24),
       "int64 Sign");
    ok(run1(node("Sigmoid", 13, 1, 1), 1, &xi, &y, NULL, &e) == QD_EINPUT &&
           strstr(e.msg, "unsupported dtype int64"), "Sigmoid int64 rejected");
    qd_tensor_free(&xi);
    qd_tensor xh = tens(QD_F16, 1, SH(1), (uint16_t[]){0x3c00});
    ok(run1(node("Relu", 14, 1, 1), 1, &xh, &y, NULL, &e) == QD_EINPUT &&
           strstr(e.msg, "unsupported dtype float16"), "Relu float16 rejected: %s", e.msg);
    qd_tensor xh2[2] = {xh, xh};
    ok(run1(node("Add", 14, 2, 1), 2, xh2, &y, NULL, &e) == QD_EINPUT &&
           strstr(e.msg, "unsupported dtype float16"), "Add float16 rejected: %s", e.msg);
    qd_tensor_free(&xh);
    ok(run1(node("Add", 14, 1, 1), 1, &x, &y, NULL, &e) == QD_EINPUT, "Add with one input rejected");
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0)
        ia = INT32_MIN - ia; /* monotonic integer order across zero */
    if (ib < 0)
        ib = INT32_MIN - ib;
    return llabs((long long)ia - ib);
}

/* Exp and Sigmoid use a vectorizable expf; libm is the reference. */
static void test_exp_accuracy(void)
{
    const int64_t n = 1 << 22;
    qd_tensor x = tens(QD_F32, 1, &n, NULL), y = {0};
    qd_err e;
    float *xv = x.data;
    for (int64_t i = 0; i < n; i++)
        xv[i] = -106.0f + 196.0f * (float)i / (float)n;
    const float special[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 88.72283f, 88.7229f, -87.3f,
                             -103.9f, -104.0f, 1e-30f, -1e-30f};
    memcpy(xv, special, sizeof special);
    ok(run1(node("Exp", 13, 1, 1), 1, &x, &y, NULL, &e) == 0, "Exp sweep: %s", e.msg);
    int64_t worst = 0;
    float at = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = expf(xv[i]), got = ((float *)y.data)[i];
        int64_t u = isnan(want) ? (isnan(got) ? 0 : 99) : ulps(got, want);
        if (u > worst) {
            worst = u;
            at = xv[i];
        }
    }
    ok(worst <= 2, "Exp: worst error %lld ulp at x = %.9g", (long long)worst, at);
    ok(run1(node("Sigmoid", 13, 1, 1), 1, &x, &y, NULL, &e) == 0, "Sigmoid sweep");
    worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = (float)(1 / (1 + exp(-(double)xv[i]))), got = ((float *)y.data)[i];
        int64_t u = isnan(want) ? (isnan(got) ? 0 : 99) : ulps(got, want);
        if (fabsf(want) < FLT_MIN && fabsf(got) < FLT_MIN) /* exp(-x) overflowed: 0 */
            u = 0;
        if (u > worst) {
            worst = u;
            at = xv[i];
        }
    }
    ok(worst <= 3, "Sigmoid: worst error %lld ulp at x = %.9g", (long long)worst, at);
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static void test_argmax(void)
{
    qd_tensor y = {0};
    qd_err e;
    float nanv = NAN;
    qd_tensor x = tens(QD_F32, 2, SH(2, 4), F32(1, 5, 5, 2, 3, nanv, 9, nanv));
    tnode t = node("ArgMax", 13, 1, 1);
    attr_i(&t, "axis", -1);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && y.dtype == QD_I64 && shape_is(&y, 2, SH(2, 1)),
       "ArgMax keepdims: %s", e.msg);
    ok(!memcmp(y.data, I64(1, 1), 16), "ArgMax first max; NaN wins");
    attr_i(&t, "select_last_index", 1);
    ok(run1(t, 1, &x, &y, NULL, &e) == 0 && !memcmp(y.data, I64(2, 3), 16), "ArgMax last index");
    tnode t2 = node("ArgMin", 13, 1, 1);
    attr_i(&t2, "keepdims", 0);
    ok(run1(t2, 1, &x, &y, NULL, &e) == 0 && shape_is(&y, 1, SH(4)) &&
           !memcmp(y.data, I64(0, 1, 0, 1), 32), "ArgMin axis 0 (NaN wins)");
    qd_tensor_free(&x);
    x = tens(QD_I64, 3, SH(2, 3, 2), I64(1, 9, 7, 2, 7, 3, -1, 0, -5, 4, -5, 8));
    tnode t3 = node("ArgMin", 11, 1, 1);
    attr_i(&t3, "axis", 1);
    ok(run1(t3, 1, &x, &y, NULL, &e) == 0 && shape_is(&y, 3, SH(2, 1, 2)) &&
           !memcmp(y.data, I64(0, 1, 1, 0), 32), "ArgMin int64 middle axis");
    qd_tensor_free(&x);
    qd_tensor_free(&y);
}

static void test_logic(void)
{
    qd_tensor y = {0};
    qd_err e;
    qd_tensor in[2] = {tens(QD_I32, 2, SH(2, 2), I32(1, 2, 3, 4)), tens(QD_I32, 1, SH(2), I32(2, 2))};
    ok(run1(node("Equal", 13, 2, 1), 2, in, &y, NULL, &e) == 0 && y.dtype == QD_BOOL &&
           !memcmp(y.data, (uint8_t[]){0, 1, 0, 0}, 4), "Equal int32 broadcast");
    ok(run1(node("Less", 13, 2, 1), 2, in, &y, NULL, &e) == 0 &&
           !memcmp(y.data, (uint8_t[]){1, 0, 0, 0}, 4), "Less");
    ok(run1(node("GreaterOrEqual", 16, 2, 1), 2, in, &y, NULL, &e) == 0 &&
           !memcmp(y.data, (uint8_t[]){0, 1, 1, 1}, 4), "GreaterOrEqual");
    qd_tensor w[3] = {tens(QD_BOOL, 2, SH(2, 1), (uint8_t[]){1, 0}),
                      tens(QD_F32, 1, SH(3), F32(1, 2, 3)), tens(QD_F32, 0, SH(0), F32(-1))};
    ok(run1(node("Where", 16, 3, 1), 3, w, &y, NULL, &e) == 0 && shape_is(&y, 2, SH(2, 3)) &&
           !memcmp(y.data, F32(1, 2, 3, -1, -1, -1), 24), "Where broadcast: %s", e.msg);
    qd_tensor_free(&w[1]);
    qd_tensor_free(&w[2]);
    w[1] = tens(QD_I64, 1, SH(2), I64(5, 6));
    w[2] = tens(QD_I64, 2, SH(2, 2), I64(7, 8, 9, 10));
    ok(run1(node("Where", 16, 3, 1), 3, w, &y, NULL, &e) == 0 && !memcmp(y.data, I64(5, 6, 9, 10), 32),
       "Where int64");
    qd_tensor nb[2] = {w[0], tens(QD_BOOL, 1, SH(2), (uint8_t[]){1, 1})};
    ok(run1(node("And", 7, 2, 1), 2, nb, &y, NULL, &e) == 0 &&
           !memcmp(y.data, (uint8_t[]){1, 1, 0, 0}, 4), "And broadcast");
    ok(run1(node("Not", 13, 1, 1), 1, nb, &y, NULL, &e) == 0 && !memcmp(y.data, (uint8_t[]){0, 1}, 2),
       "Not");
    ok(run1(node("Where", 16, 3, 1), 3, (qd_tensor[]){in[0], w[1], w[2]}, &y, NULL, &e) == QD_EINPUT,
       "Where needs a bool condition");
    qd_tensor_free(&nb[1]);
    for (int i = 0; i < 3; i++)
        qd_tensor_free(&w[i]);
    qd_tensor_free(&in[0]);
    qd_tensor_free(&in[1]);
    qd_tensor_free(&y);
}

/* Big tensors on 1 and 2 (and 3) threads must give identical bits. */
static void same_bits(tnode t, int nin, qd_tensor *in, qd_ctx *c2, const char *what)
{
    qd_tensor y1 = {0}, y2 = {0};
    qd_err e;
    int rc1 = run1(t, nin, in, &y1, &ctx1, &e);
    ok(rc1 == 0, "%s 1 thread: %s", what, e.msg);
    int rc2 = run1(t, nin, in, &y2, c2, &e);
    ok(rc2 == 0, "%s %d threads: %s", what, c2->nthreads, e.msg);
    ok(!rc1 && !rc2 && shape_is(&y2, y1.ndim, y1.shape) &&
           !memcmp(y1.data, y2.data, qd_tensor_nbytes(&y1)),
       "%s: %d threads differ from 1", what, c2->nthreads);
    qd_tensor_free(&y1);
    qd_tensor_free(&y2);
}

static void test_threads(int nthreads)
{
    qd_ctx c2 = {.nthreads = nthreads, .pool = qd_pool_new(nthreads)};
    qd_tensor big = trand(4, SH(4, 64, 33, 31), 4, 0);
    qd_tensor ch = trand(4, SH(1, 64, 1, 1), 1, 2);
    qd_tensor in2[2] = {big, ch};
    same_bits(node("Add", 14, 2, 1), 2, in2, &c2, "Add per-channel");
    same_bits(node("Div", 14, 2, 1), 2, in2, &c2, "Div per-channel");
    qd_tensor in2r[2] = {ch, big};
    same_bits(node("Sub", 14, 2, 1), 2, in2r, &c2, "Sub channel - big");
    qd_tensor in2s[2] = {big, big};
    same_bits(node("Mul", 14, 2, 1), 2, in2s, &c2, "Mul same shape");
    same_bits(node("Sigmoid", 13, 1, 1), 1, &big, &c2, "Sigmoid");
    same_bits(node("Erf", 13, 1, 1), 1, &big, &c2, "Erf");
    for (int opset = 11; opset <= 13; opset += 2)
        for (int axis = 0; axis < 4; axis++) {
            tnode t = node("Softmax", opset, 1, 1);
            attr_i(&t, "axis", axis);
            char what[64];
            snprintf(what, sizeof what, "Softmax-%d axis %d", opset, axis);
            same_bits(t, 1, &big, &c2, what);
        }
    for (int mask = 1; mask < 16; mask++) {
        int64_t axes[4];
        int na = 0;
        for (int d = 0; d < 4; d++)
            if (mask >> d & 1)
                axes[na++] = d;
        tnode t = node("ReduceMean", 13, 1, 1);
        attr_is(&t, "axes", na, axes);
        char what[64];
        snprintf(what, sizeof what, "ReduceMean axes mask %d", mask);
        same_bits(t, 1, &big, &c2, what);
    }
    qd_tensor bn[5] = {big, trand(1, SH(64), 1, 0), trand(1, SH(64), 1, 0), trand(1, SH(64), 1, 0),
                       trand(1, SH(64), 0.5f, 1)};
    same_bits(node("BatchNormalization", 15, 5, 1), 5, bn, &c2, "BatchNormalization");
    tnode tc = node("Cast", 13, 1, 1);
    attr_i(&tc, "to", QD_I32);
    same_bits(tc, 1, &big, &c2, "Cast f32->i32");
    tnode tcl = node("Clip", 13, 1, 1);
    same_bits(tcl, 1, &big, &c2, "Clip");
    for (int i = 1; i < 5; i++)
        qd_tensor_free(&bn[i]);
    qd_tensor_free(&big);
    qd_tensor_free(&ch);
    qd_pool_free(c2.pool);
}

int main(void)
{
    test_broadcast();
    test_legacy_broadcast();
    test_int_arith();
    test_variadic_pow();
    test_clip();
    test_softmax();
    test_batchnorm();
    test_reduce();
    test_cast();
    test_prelu();
    test_unary();
    test_exp_accuracy();
    test_argmax();
    test_logic();
    test_threads(2);
    test_threads(3);
    return th_summary();
}
