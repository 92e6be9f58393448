/* test_qjson.c - AIMET runtime configs, encodings files and overrides in
 * JSON: the built-in configs, every bad fixture failing with its file and
 * JSON path, export -> import -> export byte-identical in both formats,
 * atomic writes, and the override forms. Run from the repository root. */
#include <cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "qjson.h"

#define MODEL "models/lenet.onnx"
#define OUT "tests/out/qjson"

static int has(const char *msg, const char *what)
{
    return strstr(msg, what) != NULL;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ------------------------------------------------------------ configs */

static void test_builtin(void)
{
    qd_err e = {0};
    qd_qcfg c = {0};
    ok(qd_qcfg_ntexts == 2, "two built-in configs, got %d", qd_qcfg_ntexts);
    ok(qd_qcfg_builtin("default", &c, &e) == 0, "default: %s", e.msg);
    ok(c.name && !strcmp(c.name, "default"), "default: name");
    ok(c.ops_output_quantized == 1 && c.ops_input_quantized == 0 && c.ops_symmetric == 0,
       "default: outputs quantized, activations asymmetric");
    ok(c.params_quantized == 1 && c.params_symmetric == 1, "default: params quantized, symmetric");
    ok(c.strict_symmetric == 0 && c.unsigned_symmetric == 1 && c.per_channel == 0,
       "default: strict off, unsigned on, per tensor");
    ok(c.nparams == 1 && !strcmp(c.params[0].name, "bias") && c.params[0].is_quantized == 0 &&
           c.params[0].is_symmetric == -1,
       "default: bias not quantized");
    const qd_qcfg_op *sq = qd_qcfg_find_op(&c, "Squeeze"), *pad = qd_qcfg_find_op(&c, "Pad");
    const qd_qcfg_op *mean = qd_qcfg_find_op(&c, "Mean");
    ok(sq && pad && mean && sq->is_output_quantized == 0 && pad->is_output_quantized == 0 &&
           mean->is_output_quantized == 0 && sq->is_input_quantized == -1 && sq->per_channel == -1,
       "default: Squeeze/Pad/Mean outputs not quantized");
    ok(!qd_qcfg_find_op(&c, "Conv") && !qd_qcfg_find_op(&c, NULL), "default: no Conv entry");
    static const char *const groups[][2] = {
        {"Conv", "Relu"}, {"Conv", "Clip"}, {"ConvTranspose", "Relu"}, {"Add", "Relu"}, {"Gemm", "Relu"}};
    ok(c.ngroups == 5, "default: 5 supergroups, got %d", c.ngroups);
    for (int i = 0; i < c.ngroups && i < 5; i++)
        ok(c.groups[i].n == 2 && !strcmp(c.groups[i].ops[0], groups[i][0]) &&
               !strcmp(c.groups[i].ops[1], groups[i][1]),
           "default: supergroup %d is %s+%s", i, groups[i][0], groups[i][1]);
    ok(c.input_quantized == 1 && c.output_quantized == 0, "default: model input quantized, output not");
    ok(c.nkernels == 0 && !c.hw_version, "default: no kernels, no hw_version");
    qd_qcfg_clear(&c);
    ok(c.nops == 0 && c.ops == NULL && c.name == NULL, "clear zeroes");
    qd_qcfg_clear(NULL);

    ok(qd_qcfg_builtin("per_channel", &c, &e) == 0, "per_channel: %s", e.msg);
    ok(c.per_channel == 1, "per_channel: per_channel_quantization on");
    const qd_qcfg_op *gemm = qd_qcfg_find_op(&c, "Gemm"), *gather = qd_qcfg_find_op(&c, "Gather");
    ok(gemm && gemm->per_channel == 0, "per_channel: Gemm per tensor (as AIMET)");
    ok(gather && gather->is_output_quantized == 0, "per_channel: Gather output not quantized");
    ok(c.ngroups == 5 && c.params_symmetric == 1 && c.unsigned_symmetric == 1, "per_channel: the rest as default");
    qd_qcfg_clear(&c);

    qd_err e2 = {0};
    ok(qd_qcfg_builtin("nope", &c, &e2) == QD_EINPUT && has(e2.msg, "nope") && has(e2.msg, "per_channel"),
       "unknown built-in lists the names: %s", e2.msg);
}

static void test_cfg_full(void)
{
    static const char text[] =
        "{\"defaults\": {\"ops\": {\"is_output_quantized\": true, \"is_input_quantized\": \"False\"},\n"
        " \"params\": {\"is_quantized\": \"True\"},\n"
        " \"strict_symmetric\": \"True\", \"unsigned_symmetric\": false, \"per_channel_quantization\": \"True\",\n"
        " \"supported_kernels\": [{\"activation\": {\"bitwidth\": 16, \"dtype\": \"float\"},\n"
        "                        \"param\": {\"bitwidth\": 4, \"dtype\": \"int\"}}],\n"
        " \"hw_version\": \"V73\"},\n"
        " \"params\": {\"weight\": {\"is_symmetric\": \"False\"}, \"bias\": {\"is_quantized\": \"True\"}},\n"
        " \"op_type\": {\"Conv\": {\"is_input_quantized\": \"True\", \"per_channel_quantization\": \"False\",\n"
        "   \"params\": {\"bias\": {\"is_quantized\": \"False\"}},\n"
        "   \"supported_kernels\": [{\"activation\": {\"bitwidth\": 8, \"dtype\": \"int\"}}]}},\n"
        " \"supergroups\": [{\"op_list\": [\"Conv\", \"BatchNormalization\", \"Relu\"]}],\n"
        " \"model_input\": {}, \"model_output\": {\"is_output_quantized\": \"True\"}}";
    qd_err e = {0};
    qd_qcfg c = {0};
    ok(qd_qcfg_parse(text, sizeof text - 1, "full.json", &c, &e) == 0, "full: %s", e.msg);
    ok(c.ops_output_quantized == 1 && c.ops_input_quantized == 0 && c.params_quantized == 1 &&
           c.params_symmetric == 0,
       "full: defaults (JSON booleans and strings)");
    ok(c.strict_symmetric == 1 && c.unsigned_symmetric == 0 && c.per_channel == 1, "full: flags");
    ok(c.nkernels == 1 && c.kernels[0].act_bits == 16 && c.kernels[0].act_float == 1 &&
           c.kernels[0].param_bits == 4 && c.kernels[0].param_float == 0,
       "full: defaults kernel");
    ok(c.hw_version && !strcmp(c.hw_version, "V73"), "full: hw_version");
    ok(c.nparams == 2 && !strcmp(c.params[0].name, "weight") && c.params[0].is_symmetric == 0 &&
           c.params[0].is_quantized == -1 && c.params[1].is_quantized == 1,
       "full: params roles");
    const qd_qcfg_op *conv = qd_qcfg_find_op(&c, "Conv");
    ok(conv && conv->is_input_quantized == 1 && conv->is_output_quantized == -1 && conv->per_channel == 0,
       "full: Conv");
    ok(conv && conv->nparams == 1 && conv->params[0].is_quantized == 0, "full: Conv bias");
    ok(conv && conv->nkernels == 1 && conv->kernels[0].act_bits == 8 && conv->kernels[0].param_bits == 0,
       "full: op kernel without param");
    ok(c.ngroups == 1 && c.groups[0].n == 3 && !strcmp(c.groups[0].ops[2], "Relu"), "full: 3-op supergroup");
    ok(c.input_quantized == 0 && c.output_quantized == 1, "full: model input/output");
    qd_qcfg_clear(&c);

    /* not NUL-terminated: the parser takes len bytes only */
    char *cut = malloc(sizeof text - 1);
    memcpy(cut, text, sizeof text - 1);
    qd_err e2 = {0};
    ok(qd_qcfg_parse(cut, sizeof text - 1, "cut.json", &c, &e2) == 0, "unterminated buffer: %s", e2.msg);
    qd_qcfg_clear(&c);
    free(cut);
}

static void test_cfg_bad(void)
{
    static const struct {
        const char *file, *path, *why;
    } cases[] = {
        {"malformed", "line 3", "malformed JSON"},
        {"truncated", "line", "unexpected end of file"},
        {"empty", "", "empty file"},
        {"top_array", "", "expected a JSON object at the top level"},
        {"unknown_top", ": default: ", "unknown key"},
        {"unknown_ops_key", ": defaults.ops.is_output_quantised: ", "unknown key"},
        {"unknown_op_param_key", ": op_type.Conv.params.weight.bitwidth: ", "unknown key"},
        {"unknown_kernel_key", ": defaults.supported_kernels[0].param.signed: ", "unknown key"},
        {"wrong_type_params", ": defaults.params: ", "expected an object, got a string"},
        {"wrong_type_optype", ": op_type.Pad: ", "expected an object, got an array"},
        {"bad_bool", ": op_type.Conv.is_output_quantized: ", "expected \"True\" or \"False\", got \"yes\""},
        {"bad_bool_case", ": model_input.is_input_quantized: ", "expected \"True\" or \"False\""},
        {"supergroup_nonstring", ": supergroups[1].op_list[1]: ", "expected a string, got a number"},
        {"supergroup_short", ": supergroups[5].op_list: ", "at least 2 ops"},
        {"missing_section", "", "missing required key \"model_output\""},
        {"missing_defaults_ops", ": defaults: ", "missing required key \"ops\""},
        {"kernel_bitwidth", ": defaults.supported_kernels[0].activation.bitwidth: ", "not one of 4, 8, 16, 32"},
        {"encoding_constraints", ": op_type.Softmax.encoding_constraints: ", "not supported"},
        {"duplicate_key", ": defaults.strict_symmetric: ", "duplicate key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/bad_qconfig/%s.json", cases[i].file);
        qd_err e = {0};
        qd_qcfg c = {.nops = 12345};
        int rc = qd_qcfg_load(path, &c, &e);
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s: ", path);
        ok(rc == QD_EINPUT && e.code == QD_EINPUT, "%s: fails with QD_EINPUT (%d)", cases[i].file, rc);
        ok(has(e.msg, prefix) && has(e.msg, cases[i].path) && has(e.msg, cases[i].why),
           "%s: message names the file, '%s' and '%s': %s", cases[i].file, cases[i].path, cases[i].why, e.msg);
        ok(c.nops == 12345, "%s: config untouched on failure", cases[i].file);
    }
    qd_err e = {0};
    qd_qcfg c = {0};
    ok(qd_qcfg_load("tests/data/bad_qconfig/does_not_exist.json", &c, &e) == QD_EINPUT &&
           has(e.msg, "does_not_exist.json"),
       "missing file named: %s", e.msg);
}

/* ------------------------------------------------------------ overrides */

static void test_override_spec(void)
{
    qd_err e = {0};
    char *pat = NULL;
    qd_override ov;
    ok(qd_override_parse("conv1.weight bits=4 scheme=sym", &pat, &ov, &e) == 0, "spec 1: %s", e.msg);
    ok(pat && !strcmp(pat, "conv1.weight") && ov.set == (QD_OV_BITS | QD_OV_SYMMETRIC) && ov.bits == 4 &&
           ov.symmetric == 1,
       "spec 1 fields");
    free(pat);
    ok(qd_override_parse("  @weights\tgranularity=channel  range=percentile:99.9 strict=1 unsigned=0 ", &pat, &ov,
                         &e) == 0,
       "spec 2: %s", e.msg);
    ok(pat && !strcmp(pat, "@weights") &&
           ov.set == (QD_OV_PER_CHANNEL | QD_OV_RANGE | QD_OV_STRICT | QD_OV_UNSIGNED) && ov.per_channel == 1 &&
           ov.range == QD_RANGE_PERCENTILE && fabs(ov.pct - 99.9) < 1e-12 && ov.strict == 1 && ov.unsigned_sym == 0,
       "spec 2 fields");
    free(pat);
    ok(qd_override_parse("/1/* enabled=off", &pat, &ov, &e) == 0 && ov.set == QD_OV_ENABLED && ov.enabled == 0,
       "spec 3: %s", e.msg);
    free(pat);
    ok(qd_override_parse("x min=-1.5 max=2e-1 scheme=asymmetric bits=32", &pat, &ov, &e) == 0 &&
           ov.set == (QD_OV_FIXED | QD_OV_SYMMETRIC | QD_OV_BITS) && ov.fmin == -1.5 && ov.fmax == 0.2 &&
           ov.bits == 32 && ov.symmetric == 0,
       "spec 4: %s", e.msg);
    free(pat);
    ok(qd_override_parse("x granularity=tensor range=mse enabled=1", &pat, &ov, &e) == 0 && ov.per_channel == 0 &&
           ov.range == QD_RANGE_MSE && ov.enabled == 1,
       "spec 5: %s", e.msg);
    free(pat);

    static const struct {
        const char *spec, *why;
    } bad[] = {
        {"", "expected PATTERN"},
        {"   ", "expected PATTERN"},
        {"conv1.weight", "no settings"},
        {"x bits=17", "bits=17: bit-width must be 2..16, or 32"},
        {"x bits=1", "bit-width"},
        {"x bits=4x", "bit-width"},
        {"x foo=1", "unknown setting \"foo\""},
        {"x bits", "expected key=value"},
        {"x bits=", "expected key=value"},
        {"x =4", "expected key=value"},
        {"x min=1", "min without max"},
        {"x max=1", "max without min"},
        {"x min=2 max=1", "min must be less than max"},
        {"x min=abc max=1", "min=abc: expected a finite number"},
        {"x min=nan max=1", "expected a finite number"},
        {"x bits=4 bits=8", "bits given twice"},
        {"x scheme=maybe", "scheme=maybe: expected sym or asym"},
        {"x enabled=2", "expected 0, 1, on or off"},
        {"x granularity=block", "expected tensor or channel"},
        {"x range=bogus", "bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qd_err be = {0};
        pat = (char *)"untouched";
        int rc = qd_override_parse(bad[i].spec, &pat, &ov, &be);
        ok(rc == QD_EINPUT && has(be.msg, bad[i].why) && !strcmp(pat, "untouched"), "bad spec '%s': %s",
           bad[i].spec, be.msg);
    }
}

/* ------------------------------------------------------------ sim-backed */

static qd_sim *new_sim_range(int per_channel, qd_range_method range)
{
    qd_err e = {0};
    qd_qcfg c = {0};
    if (qd_qcfg_builtin("default", &c, &e))
        return NULL;
    qd_graph *g = qd_graph_load(MODEL, &e);
    qd_sim_opts o = {.cfg = &c, .act_bits = 8, .param_bits = 8, .range = range, .per_channel = per_channel,
                     .nthreads = 1};
    qd_sim *s = g ? qd_sim_new(g, &o, &e) : NULL;
    qd_qcfg_clear(&c);
    if (!s)
        fprintf(stderr, "sim: %s\n", e.msg);
    return s;
}

static qd_sim *new_sim(int per_channel)
{
    return new_sim_range(per_channel, QD_RANGE_MINMAX);
}

static qd_sim *calibrated_sim_range(int per_channel, qd_range_method range)
{
    qd_err e = {0};
    qd_sim *s = new_sim_range(per_channel, range);
    qd_dataset *d = s ? qd_data_open("fashion-mnist:train", NULL, &e) : NULL;
    if (!d || qd_data_limit(d, 64, 1, &e) || qd_sim_calibrate(s, d, 32, NULL, NULL, &e)) {
        fprintf(stderr, "calibrate: %s\n", e.msg);
        qd_sim_free(s);
        s = NULL;
    }
    qd_data_free(d);
    return s;
}

static qd_sim *calibrated_sim(int per_channel)
{
    return calibrated_sim_range(per_channel, QD_RANGE_MINMAX);
}

/* Everything encodings import may touch, to check a failed import left it alone. */
typedef struct snap {
    int n;
    qd_quantizer *q;     /* shallow copies */
    qd_encoding **enc;   /* deep copies */
} snap;

static void snap_take(snap *sn, qd_sim *s)
{
    sn->n = qd_sim_count(s);
    sn->q = calloc((size_t)sn->n, sizeof *sn->q);
    sn->enc = calloc((size_t)sn->n, sizeof *sn->enc);
    for (int i = 0; i < sn->n; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        sn->q[i] = *q;
        if (q->nenc) {
            sn->enc[i] = malloc((size_t)q->nenc * sizeof(qd_encoding));
            memcpy(sn->enc[i], q->enc, (size_t)q->nenc * sizeof(qd_encoding));
        }
    }
}

static int enc_eq(const qd_encoding *a, const qd_encoding *b)
{
    return a->min == b->min && a->max == b->max && a->scale == b->scale && a->offset == b->offset &&
           a->bits == b->bits && a->symmetric == b->symmetric;
}

static int set_eq(const qd_qsettings *a, const qd_qsettings *b)
{
    return a->enabled == b->enabled && a->scheme.bits == b->scheme.bits &&
           a->scheme.symmetric == b->scheme.symmetric &&
           a->scheme.unsigned_symmetric == b->scheme.unsigned_symmetric &&
           a->scheme.strict_symmetric == b->scheme.strict_symmetric && a->per_channel == b->per_channel &&
           a->range == b->range && a->pct == b->pct && a->fixed == b->fixed && a->fmin == b->fmin &&
           a->fmax == b->fmax;
}

/* Index of the first quantizer that differs from the snapshot, or -1. */
static int snap_diff(const snap *sn, qd_sim *s)
{
    for (int i = 0; i < sn->n; i++) {
        const qd_quantizer *q = qd_sim_get(s, i);
        if (!set_eq(&q->set, &sn->q[i].set) || q->nenc != sn->q[i].nenc || q->frozen != sn->q[i].frozen)
            return i;
        for (int c = 0; c < q->nenc; c++)
            if (!enc_eq(&q->enc[c], &sn->enc[i][c]))
                return i;
    }
    return -1;
}

static void snap_free(snap *sn)
{
    for (int i = 0; i < sn->n; i++)
        free(sn->enc[i]);
    free(sn->enc);
    free(sn->q);
}

/* Write s in format, read it into a fresh sim, write again: same bytes. */
static qd_sim *round_trip(qd_sim *s, int per_channel, qd_range_method range, const char *format, const char *tag)
{
    char a[256], b[256];
    snprintf(a, sizeof a, OUT "/%s_%s_a.json", tag, format);
    snprintf(b, sizeof b, OUT "/%s_%s_b.json", tag, format);
    qd_err e = {0};
    ok(qd_encodings_write(s, a, format, &e) == 0, "%s %s: write: %s", tag, format, e.msg);
    qd_sim *t = new_sim_range(per_channel, range);
    ok(t && qd_encodings_read(t, a, &e) == 0, "%s %s: read: %s", tag, format, e.msg);
    ok(t && qd_encodings_write(t, b, format, &e) == 0, "%s %s: write again: %s", tag, format, e.msg);
    ok(same_file(a, b), "%s %s: export -> import -> export is byte-identical (%s, %s)", tag, format, a, b);
    return t;
}

static void test_round_trip(void)
{
    qd_sim *s = calibrated_sim(-1);
    ok(s != NULL, "calibrated sim on " MODEL);
    if (!s)
        return;
    int nexp = 0;
    for (int i = 0; i < qd_sim_count(s); i++)
        nexp += qd_sim_get(s, i)->nenc > 0;
    ok(nexp > 5, "calibration gave encodings (%d quantizers)", nexp);

    /* 0.6.1 keeps every field: the imported encodings are the originals */
    qd_sim *t = round_trip(s, -1, QD_RANGE_MINMAX, "0.6.1", "tensor");
    int same = t != NULL;
    for (int i = 0; t && i < qd_sim_count(s); i++) {
        const qd_quantizer *p = qd_sim_get(s, i), *q = qd_sim_get(t, i);
        same &= p->nenc == q->nenc && (!p->nenc || q->frozen);
        for (int c = 0; same && c < p->nenc; c++)
            same &= enc_eq(&p->enc[c], &q->enc[c]);
    }
    ok(same, "0.6.1: imported encodings are identical and frozen");
    /* the same encodings give the same fake-quant outputs */
    if (t) {
        qd_err e = {0};
        qd_dataset *d = qd_data_open("fashion-mnist:test", NULL, &e);
        qd_tensor x = {0};
        int rc = !d || qd_data_batch(d, 0, 8, &x, NULL, &e) || qd_sim_run(s, &x, 1, &e);
        qd_tensor y = {0};
        rc = rc || qd_tensor_copy(&y, qd_sim_output(s, 0), &e) || qd_sim_run(t, &x, 1, &e);
        ok(!rc, "run both sims: %s", e.msg);
        if (!rc) {
            const qd_tensor *z = qd_sim_output(t, 0);
            ok(qd_tensor_nbytes(z) == qd_tensor_nbytes(&y) && memcmp(z->data, y.data, qd_tensor_nbytes(&y)) == 0,
               "0.6.1: imported sim computes the same outputs");
        }
        qd_tensor_free(&x);
        qd_tensor_free(&y);
        qd_data_free(d);
    }
    qd_sim_free(t);

    /* 1.0.0 keeps scale and offset exactly; min/max follow from them */
    t = round_trip(s, -1, QD_RANGE_MINMAX, "1.0.0", "tensor");
    same = t != NULL;
    for (int i = 0; t && i < qd_sim_count(s); i++) {
        const qd_quantizer *p = qd_sim_get(s, i), *q = qd_sim_get(t, i);
        same &= p->nenc == q->nenc;
        for (int c = 0; same && c < p->nenc; c++) {
            qd_qscheme sch = p->set.scheme;
            qd_encoding so = qd_quant_encoding_so(p->enc[c].scale, p->enc[c].offset, &sch);
            same &= q->enc[c].scale == p->enc[c].scale && q->enc[c].offset == p->enc[c].offset &&
                    enc_eq(&q->enc[c], &so);
        }
    }
    ok(same, "1.0.0: imported scale/offset identical, min/max from qd_quant_encoding_so");
    qd_sim_free(t);

    /* bits and strictness come from the file */
    qd_err e = {0};
    qd_override ov = {.set = QD_OV_BITS, .bits = 4};
    ok(qd_sim_override(s, "1.fc1.weight", &ov, NULL, &e) == 0, "override fc1 bits=4: %s", e.msg);
    ov = (qd_override){.set = QD_OV_STRICT, .strict = 1};
    ok(qd_sim_override(s, "1.conv*.weight", &ov, NULL, &e) == 0, "override conv strict: %s", e.msg);
    ok(qd_sim_update(s, &e) == 0, "update: %s", e.msg);
    int conv1 = qd_sim_find(s, "1.conv1.weight"), fc1 = qd_sim_find(s, "1.fc1.weight");
    ok(conv1 >= 0 && fc1 >= 0 && qd_sim_get(s, conv1)->enc[0].offset == -127, "strict: conv1 offset -127");
    t = round_trip(s, -1, QD_RANGE_MINMAX, "1.0.0", "mixed");
    if (t && conv1 >= 0 && fc1 >= 0) {
        const qd_quantizer *q = qd_sim_get(t, fc1), *c1 = qd_sim_get(t, conv1), *p1 = qd_sim_get(s, conv1);
        ok(q->set.scheme.bits == 4 && q->enc[0].bits == 4, "1.0.0: fc1 imported with 4 bits");
        ok(c1->set.scheme.strict_symmetric == 1 && enc_eq(&c1->enc[0], &(qd_encoding){
                                                             .min = p1->enc[0].min,
                                                             .max = p1->enc[0].max,
                                                             .scale = p1->enc[0].scale,
                                                             .offset = p1->enc[0].offset,
                                                             .bits = 8,
                                                             .symmetric = 1}),
           "1.0.0: conv1 imported strict with the original min/max (%.17g %.17g vs %.17g %.17g)",
           c1->enc[0].min, c1->enc[0].max, p1->enc[0].min, p1->enc[0].max);
    }
    qd_sim_free(t);
    qd_sim_free(round_trip(s, -1, QD_RANGE_MINMAX, "0.6.1", "mixed"));
    qd_sim_free(s);
}

/* Count entries of tensor name in section of a written file (cJSON). */
static int count_entries(const char *path, const char *section, const char *name, const char **enc_type)
{
    char *text = read_all(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    int n = -1;
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, section);
    static char type[32];
    *enc_type = NULL;
    if (cJSON_IsObject(sec)) {
        n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sec, name));
    } else if (cJSON_IsArray(sec)) {
        for (const cJSON *x = sec->child; x; x = x->next) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name)) {
                n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "scale"));
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(x, "enc_type");
                if (cJSON_IsString(t)) {
                    snprintf(type, sizeof type, "%s", t->valuestring);
                    *enc_type = type;
                }
            }
        }
    }
    cJSON_Delete(root);
    return n;
}

/* Every range method's encodings survive the round trip too. */
static void test_range_methods(void)
{
    for (int m = QD_RANGE_SQNR; m < QD_RANGE__COUNT; m++) {
        for (int pc = 0; pc <= 1; pc++) {
            char tag[64];
            snprintf(tag, sizeof tag, "%s%s", qd_range_name((qd_range_method)m), pc ? "_pc" : "");
            qd_sim *s = calibrated_sim_range(pc, (qd_range_method)m);
            ok(s != NULL, "%s: calibrated", tag);
            if (!s)
                continue;
            qd_sim_free(round_trip(s, pc, (qd_range_method)m, "0.6.1", tag));
            qd_sim_free(round_trip(s, pc, (qd_range_method)m, "1.0.0", tag));
            qd_sim_free(s);
        }
    }
}

static void test_per_channel(void)
{
    qd_sim *s = calibrated_sim(1);
    ok(s != NULL, "per-channel calibrated sim");
    if (!s)
        return;
    qd_sim_free(round_trip(s, 1, QD_RANGE_MINMAX, "0.6.1", "channel"));
    qd_sim_free(round_trip(s, 1, QD_RANGE_MINMAX, "1.0.0", "channel"));
    const char *type;
    ok(count_entries(OUT "/channel_0.6.1_a.json", "param_encodings", "1.conv1.weight", &type) == 16,
       "0.6.1: conv1.weight has 16 entries (one per output channel)");
    ok(count_entries(OUT "/channel_0.6.1_a.json", "param_encodings", "1.conv2.weight", &type) == 32,
       "0.6.1: conv2.weight has 32 entries");
    ok(count_entries(OUT "/channel_0.6.1_a.json", "activation_encodings", "image", &type) == 1,
       "0.6.1: the input has 1 entry");
    ok(count_entries(OUT "/channel_1.0.0_a.json", "param_encodings", "1.fc1.weight", &type) == 120 && type &&
           !strcmp(type, "PER_CHANNEL"),
       "1.0.0: fc1.weight has 120 scales, PER_CHANNEL");
    ok(count_entries(OUT "/channel_1.0.0_a.json", "activation_encodings", "logits", &type) == 1 && type &&
           !strcmp(type, "PER_TENSOR"),
       "1.0.0: logits PER_TENSOR");
    /* a per-channel file into a per-tensor sim makes it per channel */
    qd_sim *t = new_sim(-1);
    qd_err e = {0};
    ok(t && qd_encodings_read(t, OUT "/channel_1.0.0_a.json", &e) == 0, "per-channel file into per-tensor sim: %s",
       e.msg);
    int c1 = t ? qd_sim_find(t, "1.conv1.weight") : -1;
    ok(c1 >= 0 && qd_sim_get(t, c1)->set.per_channel == 1 && qd_sim_get(t, c1)->nenc == 16,
       "conv1.weight became per channel");
    qd_sim_free(t);
    qd_sim_free(s);
}

static void test_enc_bad(void)
{
    static const struct {
        const char *file, *path, *why;
    } cases[] = {
        {"unknown_tensor", ": param_encodings[\"/1/Nope_output_0\"]: ", "no quantizer on a tensor"},
        {"channel_count", ": param_encodings[\"1.conv1.weight\"]: ", "15 entries, the tensor has 16 channels"},
        {"scale_zero", ": param_encodings[\"1.fc3.weight\"][0]: ", "scale is not a positive finite number"},
        {"offset_positive", ": param_encodings[\"1.fc3.weight\"][0].offset: ", "outside"},
        {"act_two_entries", ": activation_encodings.logits: ", "2 entries, an activation has one encoding"},
        {"wrong_section", ": activation_encodings[\"1.fc3.weight\"]: ", "belong under param_encodings"},
        {"float_dtype", ": param_encodings[\"1.fc3.weight\"][0].dtype: ", "not supported"},
        {"bad_bool", ": param_encodings[\"1.fc3.weight\"][0].is_symmetric: ", "expected \"True\" or \"False\""},
        {"missing_scale", ": param_encodings[\"1.fc3.weight\"][0]: ", "missing required key \"scale\""},
        {"bad_version", ": version: ", "unsupported version \"2.0.0\""},
        {"top_unknown_key", ": encodings: ", "unknown key"},
        {"qargs_unknown_key", ": quantizer_args.param_sym: ", "unknown key"},
        {"bits17", ": param_encodings[4].bw: ", "bit-width 17 outside 2..16"},
        {"unknown_key", ": param_encodings[4].bitwidth: ", "unknown key"},
        {"duplicate_tensor", ": param_encodings[5].name: ", "listed twice"},
        {"per_block", ": param_encodings[4].enc_type: ", "\"PER_BLOCK\" encodings are not supported"},
        {"offset_count", ": param_encodings[4].offset: ", "2 offsets for 1 scales"},
        {"per_channel_count", ": param_encodings[1].scale: ", "31 entries, the tensor has 32 channels"},
        {"per_channel_activation", ": activation_encodings[3].enc_type: ", "no channel axis"},
        {"negative_scale", ": activation_encodings[3].scale[0]: ", "scale is not a positive finite number"},
        {"malformed", "line 8", "malformed JSON"},
        {"truncated", "truncated", "unexpected end of file"},
        {"not_encodings", "", "not an encodings file"},
    };
    qd_sim *s = calibrated_sim(-1);
    ok(s != NULL, "calibrated sim for bad encodings");
    if (!s)
        return;
    snap sn;
    snap_take(&sn, s);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256], prefix[300];
        snprintf(path, sizeof path, "tests/data/bad_enc/%s.json", cases[i].file);
        snprintf(prefix, sizeof prefix, "%s", path);
        qd_err e = {0};
        int rc = qd_encodings_read(s, path, &e);
        ok(rc == QD_EINPUT, "%s: fails with QD_EINPUT (%d)", cases[i].file, rc);
        ok(has(e.msg, prefix) && has(e.msg, cases[i].path) && has(e.msg, cases[i].why),
           "%s: message names the file, '%s' and '%s': %s", cases[i].file, cases[i].path, cases[i].why, e.msg);
        int d = snap_diff(&sn, s);
        ok(d < 0, "%s: sim unchanged (quantizer %d differs)", cases[i].file, d);
    }
    snap_free(&sn);

    /* writes that cannot happen leave nothing behind */
    qd_err e = {0};
    ok(qd_encodings_write(s, "/nonexistent/dir/x.json", "0.6.1", &e) == QD_EINPUT &&
           has(e.msg, "/nonexistent/dir/x.json"),
       "unwritable path named: %s", e.msg);
    ok(access("/nonexistent/dir/x.json", F_OK) != 0, "no file at the unwritable path");
    qd_err e2 = {0};
    ok(qd_encodings_write(s, OUT, "1.0.0", &e2) == QD_EINPUT && has(e2.msg, OUT), "a directory as path: %s",
       e2.msg);
    qd_err e3 = {0};
    ok(qd_encodings_write(s, OUT "/x.json", "0.7", &e3) == QD_EINPUT && has(e3.msg, "0.7"),
       "unknown format: %s", e3.msg);
    DIR *dir = opendir(OUT);
    int tmps = 0;
    for (struct dirent *de; dir && (de = readdir(dir));)
        tmps += strstr(de->d_name, ".tmp") != NULL;
    if (dir)
        closedir(dir);
    ok(tmps == 0, "no temporary files left in " OUT " (%d)", tmps);
    /* overwriting an existing file replaces it whole */
    ok(qd_encodings_write(s, OUT "/over.json", "1.0.0", &e) == 0 &&
           qd_encodings_write(s, OUT "/over.json", "0.6.1", &e) == 0,
       "overwrite: %s", e.msg);
    size_t n = 0;
    char *text = read_all(OUT "/over.json", &n);
    ok(text && n > 10 && has(text, "\"version\": \"0.6.1\"") && text[n - 1] == '\n', "overwritten file is the new one");
    free(text);
    qd_sim_free(s);
}

static void test_overrides_file(void)
{
    qd_sim *s = new_sim(-1);
    ok(s != NULL, "sim for overrides");
    if (!s)
        return;
    static const char good[] =
        "{\"quantizers\": [\n"
        "  {\"match\": \"@weights\", \"bits\": 4, \"symmetric\": true, \"per_channel\": true},\n"
        "  {\"match\": \"1.fc3.weight\", \"bits\": 8, \"range\": \"percentile:99.9\", \"strict\": \"True\"},\n"
        "  {\"match\": \"/1/Relu*\", \"min\": 0, \"max\": 6.0, \"unsigned\": false},\n"
        "  {\"match\": \"logits\", \"enabled\": false}\n"
        "]}";
    qd_err e = {0};
    ok(qd_overrides_parse(s, good, sizeof good - 1, "good.json", &e) == 0, "good overrides: %s", e.msg);
    const qd_quantizer *c1 = qd_sim_get(s, qd_sim_find(s, "1.conv1.weight"));
    const qd_quantizer *f3 = qd_sim_get(s, qd_sim_find(s, "1.fc3.weight"));
    const qd_quantizer *r = qd_sim_get(s, qd_sim_find(s, "/1/Relu_output_0"));
    const qd_quantizer *lg = qd_sim_get(s, qd_sim_find(s, "logits"));
    ok(c1 && c1->set.scheme.bits == 4 && c1->set.per_channel == 1, "@weights: 4 bits per channel");
    ok(f3 && f3->set.scheme.bits == 8 && f3->set.range == QD_RANGE_PERCENTILE && fabs(f3->set.pct - 99.9) < 1e-9 &&
           f3->set.scheme.strict_symmetric == 1 && f3->set.per_channel == 1,
       "fc3: later entry wins for bits, keeps per_channel");
    ok(r && r->set.fixed && r->set.fmin == 0 && r->set.fmax == 6 && r->set.scheme.unsigned_symmetric == 0,
       "Relu: fixed range");
    ok(lg && lg->set.enabled == 0, "logits disabled");

    static const struct {
        const char *text, *path, *why;
    } bad[] = {
        {"[]", "", "expected a JSON object"},
        {"{}", "", "missing required key \"quantizers\""},
        {"{\"quantizers\": {}}", ": quantizers: ", "expected an array"},
        {"{\"quantizers\": [], \"extra\": 1}", ": extra: ", "unknown key"},
        {"{\"quantizers\": [{\"match\": \"a\", \"bits\": 4}, {\"match\": \"b\", \"bits\": 17}]}",
         ": quantizers[1].bits: ", "bit-width 17"},
        {"{\"quantizers\": [{\"match\": \"a\", \"bitz\": 4}]}", ": quantizers[0].bitz: ", "unknown key"},
        {"{\"quantizers\": [{\"bits\": 4}]}", ": quantizers[0]: ", "missing required key \"match\""},
        {"{\"quantizers\": [{\"match\": \"a\"}]}", ": quantizers[0]: ", "no settings"},
        {"{\"quantizers\": [{\"match\": \"a\", \"min\": 1}]}", ": quantizers[0]: ", "min without max"},
        {"{\"quantizers\": [{\"match\": \"a\", \"enabled\": \"no\"}]}", ": quantizers[0].enabled: ",
         "expected \"True\" or \"False\""},
        {"{\"quantizers\": [{\"match\": \"a\", \"range\": \"bogus\"}]}", ": quantizers[0].range: ", "bogus"},
        {"{\"quantizers\": [{\"match\": \"a\", \"bits\": 4.5}]}", ": quantizers[0].bits: ", "expected an integer"},
        {"{\"quantizers\": [{\"match\": \"@weights\", \"bits\": 6}, {\"match\": \"@acts\", \"bits\": 16},\n"
         " {\"match\": \"no_such_tensor*\", \"bits\": 4}]}",
         ": quantizers[2].match: ", "no quantizer matches 'no_such_tensor*'"},
        {"{\"quantizers\": [{\"match\": \"@bogus\", \"bits\": 4}]}", ": quantizers[0].match: ",
         "unknown quantizer group"},
        {"{\"quantizers\": [", "", "unexpected end of file"},
    };
    snap sn;
    snap_take(&sn, s);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qd_err be = {0};
        int rc = qd_overrides_parse(s, bad[i].text, strlen(bad[i].text), "ov.json", &be);
        ok(rc == QD_EINPUT && has(be.msg, "ov.json") && has(be.msg, bad[i].path) && has(be.msg, bad[i].why),
           "bad overrides %zu: '%s' '%s': %s", i, bad[i].path, bad[i].why, be.msg);
        int d = snap_diff(&sn, s);
        ok(d < 0, "bad overrides %zu: settings restored (quantizer %d differs)", i, d);
    }
    snap_free(&sn);

    /* from a file: messages carry its path */
    FILE *f = fopen(OUT "/ov.json", "w");
    if (f) {
        fputs("{\"quantizers\": [{\"match\": \"image\", \"symmetric\": 1}]}\n", f);
        fclose(f);
    }
    qd_err fe = {0};
    ok(qd_overrides_load(s, OUT "/ov.json", &fe) == QD_EINPUT && has(fe.msg, OUT "/ov.json: quantizers[0].symmetric: "),
       "file override error names the file: %s", fe.msg);
    qd_sim_free(s);
}

int main(void)
{
    mkdir("tests/out", 0777);
    mkdir(OUT, 0777);
    test_builtin();
    test_cfg_full();
    test_cfg_bad();
    test_override_spec();
    test_round_trip();
    test_range_methods();
    test_per_channel();
    test_enc_bad();
    test_overrides_file();
    return th_summary();
}
