/* test_data.c - datasets: Fashion-MNIST (Debian's files), IDX, NPY and image
 * folders decode to the right values; preprocessing matches PIL/torchvision;
 * seeded subsets are reproducible; bad input is QD_EINPUT naming the file.
 * Fixtures: tests/data/images/ and tests/data/bad_data/ (made by
 * tests/data/images/gen.py); NPY datasets are written to a temp folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "harness.h"
#include "npy.h"

#define IMG "tests/data/images"
#define BAD "tests/data/bad_data"

static char tmpdir[64];
static char tmpfiles[32][128];
static int ntmp;

static const char *tmp_path(const char *name)
{
    snprintf(tmpfiles[ntmp], sizeof tmpfiles[0], "%s/%s", tmpdir, name);
    return tmpfiles[ntmp++];
}

static void cleanup(void)
{
    for (int i = ntmp - 1; i >= 0; i--)
        if (unlink(tmpfiles[i]) != 0)
            rmdir(tmpfiles[i]);
    rmdir(tmpdir);
}

/* Write a tensor of dtype/shape whose element i is f(i). */
static void write_npy(const char *path, qd_dtype dt, int nd, const int64_t *shape, int mod)
{
    qd_tensor t = {0};
    qd_err e = {0};
    qd_tensor_resize(&t, dt, nd, shape, &e);
    for (int64_t i = 0; i < qd_tensor_numel(&t); i++) {
        int64_t v = mod ? i % mod : i;
        switch (dt) {
        case QD_F32: ((float *)t.data)[i] = (float)v * 0.5f; break;
        case QD_U8: ((uint8_t *)t.data)[i] = (uint8_t)v; break;
        case QD_I32: ((int32_t *)t.data)[i] = (int32_t)v; break;
        case QD_I64: ((int64_t *)t.data)[i] = v; break;
        default: break;
        }
    }
    ok(qd_npy_write(path, &t, &e) == 0, "write %s: %s", path, e.msg);
    qd_tensor_free(&t);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[4096];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        rc = fwrite(buf, 1, n, b) == n ? 0 : -1;
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    return rc;
}

static void test_fashion(void)
{
    qd_err e = {0};
    qd_dataset *d = qd_data_open("fashion-mnist", NULL, &e);
    ok(d != NULL, "open fashion-mnist: %s", e.msg);
    if (!d)
        return;
    int64_t chw[3];
    qd_data_sample_shape(d, chw);
    ok(qd_data_count(d) == 10000, "test count %lld", (long long)qd_data_count(d));
    ok(qd_data_has_labels(d), "test has labels");
    ok(chw[0] == 1 && chw[1] == 28 && chw[2] == 28, "shape 1x28x28");
    ok(qd_data_nclasses(d) == 10 && qd_data_class_name(d, 0) == NULL, "10 classes, no names");
    ok(strstr(qd_data_describe(d), "fashion-mnist test (10000 images 1x28x28, labels)") != NULL, "describe: %s",
       qd_data_describe(d));
    qd_tensor x = {0};
    int64_t lab[10];
    static const int64_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    ok(qd_data_batch(d, 0, 10, &x, lab, &e) == 0, "batch: %s", e.msg);
    ok(x.dtype == QD_F32 && x.ndim == 4 && x.shape[0] == 10 && x.shape[1] == 1 && x.shape[3] == 28, "batch shape");
    ok(memcmp(lab, first, sizeof first) == 0, "first 10 test labels (9 2 1 1 6 1 4 6 5 7)");
    static const int px[6] = {0, 0, 98, 136, 110, 109}; /* image 0, row 14, cols 10..15 */
    const float *p = x.data;
    for (int i = 0; i < 6; i++)
        near(p[14 * 28 + 10 + i], px[i] / 255.0, 1e-7, 0, "test image 0 pixel scaled");
    /* whole set: labels in 0..9, 1000 per class; the last image's sum */
    int64_t hist[10] = {0}, bad = 0;
    int64_t *all = malloc(sizeof *all * 10000);
    ok(qd_data_batch(d, 0, 10000, &x, all, &e) == 0, "full batch: %s", e.msg);
    for (int i = 0; i < 10000; i++) {
        if (all[i] < 0 || all[i] > 9)
            bad++;
        else
            hist[all[i]]++;
    }
    ok(bad == 0 && hist[0] == 1000 && hist[9] == 1000, "labels in 0..9, 1000 per class");
    ok(all[9999] == 5, "last test label 5");
    double s = 0;
    for (int i = 0; i < 784; i++)
        s += ((float *)x.data)[9999 * 784 + i];
    near(s * 255.0, 24390, 1e-2, 0, "sum of the last test image");
    free(all);
    ok(qd_data_batch(d, 9999, 2, &x, NULL, &e) == QD_EINPUT && strstr(e.msg, "outside"), "batch past the end: %s",
       e.msg);
    qd_data_free(d);

    /* no_scale and mean/std */
    qd_data_opts o = {.no_scale = 1};
    memset(&e, 0, sizeof e);
    d = qd_data_open("fashion-mnist:test", &o, &e);
    ok(d && qd_data_batch(d, 0, 1, &x, NULL, &e) == 0, "no_scale: %s", e.msg);
    if (d)
        near(((float *)x.data)[14 * 28 + 12], 98, 0, 0, "no_scale keeps 0..255");
    qd_data_free(d);
    o = (qd_data_opts){.mean = {0.2860f}, .std = {0.3530f}};
    d = qd_data_open("fashion-mnist:test", &o, &e);
    ok(d && qd_data_batch(d, 0, 1, &x, NULL, &e) == 0, "mean/std: %s", e.msg);
    if (d)
        near(((float *)x.data)[14 * 28 + 12], (98 / 255.0 - 0.2860) / 0.3530, 1e-6, 1e-6, "(x - mean) / std");
    qd_data_free(d);

    d = qd_data_open("fashion-mnist:train", NULL, &e);
    ok(d && qd_data_count(d) == 60000, "train count 60000: %s", e.msg);
    static const int64_t tfirst[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    ok(d && qd_data_batch(d, 0, 10, &x, lab, &e) == 0 && memcmp(lab, tfirst, sizeof tfirst) == 0,
       "first 10 train labels: %s", e.msg);
    if (d)
        near(((float *)x.data)[14 * 28 + 12], 237 / 255.0, 1e-7, 0, "train image 0 pixel");
    qd_data_free(d);

    /* generic idx: without labels */
    d = qd_data_open("idx:" QD_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", NULL, &e);
    ok(d && !qd_data_has_labels(d) && qd_data_count(d) == 10000, "idx: images only: %s", e.msg);
    lab[0] = 7;
    ok(d && qd_data_batch(d, 0, 1, &x, lab, &e) == 0 && lab[0] == -1, "no labels gives -1");
    ok(d && strstr(qd_data_describe(d), "no labels"), "describe says no labels");
    qd_data_free(d);
    /* uncompressed idx */
    d = qd_data_open("idx:" BAD "/images5.idx", NULL, &e);
    ok(d && qd_data_count(d) == 5 && qd_data_batch(d, 4, 1, &x, NULL, &e) == 0, "uncompressed idx: %s", e.msg);
    if (d)
        near(((float *)x.data)[15], (4 * 16 + 15) / 255.0, 1e-7, 0, "uncompressed idx pixel");
    qd_data_free(d);
    qd_tensor_free(&x);
}

/* NCHW/NHW, float32/uint8, labels int64/int32/uint8 */
static void test_npy(void)
{
    qd_err e = {0};
    qd_tensor x = {0};
    int64_t lab[4];
    char spec[512];
    const char *f4 = tmp_path("f32_nchw.npy"), *l64 = tmp_path("l64.npy");
    write_npy(f4, QD_F32, 4, (int64_t[]){4, 3, 2, 5}, 0);
    write_npy(l64, QD_I64, 1, (int64_t[]){4}, 3);
    snprintf(spec, sizeof spec, "npy:%s,%s", f4, l64);
    qd_dataset *d = qd_data_open(spec, NULL, &e);
    ok(d != NULL, "npy f32 NCHW: %s", e.msg);
    if (d) {
        int64_t chw[3];
        qd_data_sample_shape(d, chw);
        ok(chw[0] == 3 && chw[1] == 2 && chw[2] == 5 && qd_data_count(d) == 4, "npy f32 shape 3x2x5");
        ok(qd_data_batch(d, 1, 3, &x, lab, &e) == 0, "npy batch: %s", e.msg);
        ok(lab[0] == 1 && lab[1] == 2 && lab[2] == 0, "int64 labels");
        near(((float *)x.data)[0], 30 * 0.5, 0, 0, "float32 not scaled");
        near(((float *)x.data)[89], 119 * 0.5, 0, 0, "float32 last element");
        ok(strstr(qd_data_describe(d), "float32"), "describe: %s", qd_data_describe(d));
    }
    qd_data_free(d);

    const char *u3 = tmp_path("u8_nhw.npy"), *l32 = tmp_path("l32.npy"), *l8 = tmp_path("l8.npy");
    write_npy(u3, QD_U8, 3, (int64_t[]){4, 3, 5}, 200);
    write_npy(l32, QD_I32, 1, (int64_t[]){4}, 0);
    write_npy(l8, QD_U8, 1, (int64_t[]){4}, 0);
    for (int k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec, "npy:%s,%s", u3, k ? l8 : l32);
        memset(&e, 0, sizeof e);
        d = qd_data_open(spec, NULL, &e);
        ok(d != NULL, "npy u8 NHW: %s", e.msg);
        if (!d)
            continue;
        int64_t chw[3];
        qd_data_sample_shape(d, chw);
        ok(chw[0] == 1 && chw[1] == 3 && chw[2] == 5, "NHW gives 1xHxW");
        ok(qd_data_batch(d, 0, 4, &x, lab, &e) == 0 && lab[3] == 3, "%s labels", k ? "uint8" : "int32");
        near(((float *)x.data)[59], 59 / 255.0, 1e-7, 0, "uint8 scaled to [0,1]");
        qd_data_free(d);
    }
    /* no labels */
    snprintf(spec, sizeof spec, "npy:%s", u3);
    d = qd_data_open(spec, NULL, &e);
    ok(d && !qd_data_has_labels(d), "npy without labels: %s", e.msg);
    qd_data_free(d);
    qd_tensor_free(&x);
}

/* Compare sample k of x (C x H x W floats in [0,1]) with an HxWxC or HxW uint8 ref. */
static double max_diff(const qd_tensor *x, int k, const qd_tensor *ref, int channels, int gray_ref_to_rgb)
{
    int64_t h = ref->shape[0], w = ref->shape[1], rc = ref->ndim == 3 ? ref->shape[2] : 1;
    const float *p = (const float *)x->data + (int64_t)k * channels * h * w;
    const uint8_t *r = ref->data;
    double m = 0;
    for (int c = 0; c < channels; c++)
        for (int64_t i = 0; i < h * w; i++) {
            int rv = r[i * rc + (gray_ref_to_rgb ? 0 : c)];
            double dd = fabs(p[c * h * w + i] * 255.0 - rv);
            if (dd > m)
                m = dd;
        }
    return m;
}

static void test_folder(void)
{
    qd_err e = {0};
    qd_tensor x = {0}, a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    ok(qd_npy_read(IMG "/ref/a0.npy", &a0, &e) == 0 && qd_npy_read(IMG "/ref/a1.npy", &a1, &e) == 0 &&
           qd_npy_read(IMG "/ref/b0.npy", &b0, &e) == 0 && qd_npy_read(IMG "/ref/b1.npy", &b1, &e) == 0,
       "refs: %s", e.msg);
    qd_dataset *d = qd_data_open("imagefolder:" IMG "/set", NULL, &e);
    ok(d != NULL, "open imagefolder: %s", e.msg);
    int64_t lab[4];
    if (d) {
        int64_t chw[3];
        qd_data_sample_shape(d, chw);
        ok(qd_data_count(d) == 4 && chw[0] == 3 && chw[1] == 6 && chw[2] == 8, "4 images 3x6x8");
        ok(qd_data_nclasses(d) == 2 && !strcmp(qd_data_class_name(d, 0), "a_color") &&
               !strcmp(qd_data_class_name(d, 1), "b_gray") && qd_data_class_name(d, 2) == NULL,
           "class names sorted");
        ok(qd_data_batch(d, 0, 4, &x, lab, &e) == 0, "folder batch: %s", e.msg);
        ok(lab[0] == 0 && lab[1] == 0 && lab[2] == 1 && lab[3] == 1, "labels from class folders");
        ok(max_diff(&x, 0, &a0, 3, 0) < 1e-3, "RGB PNG exact (%g)", max_diff(&x, 0, &a0, 3, 0));
        ok(max_diff(&x, 1, &a1, 3, 0) <= 2.0, "RGB JPEG within 2/255 of PIL (%g)", max_diff(&x, 1, &a1, 3, 0));
        ok(max_diff(&x, 2, &b0, 3, 1) < 1e-3, "gray PNG replicated to RGB exact (%g)", max_diff(&x, 2, &b0, 3, 1));
        ok(max_diff(&x, 3, &b1, 3, 1) <= 2.0, "gray JPEG within 2/255 (%g)", max_diff(&x, 3, &b1, 3, 1));
        ok(strstr(qd_data_describe(d), "4 images 3x6x8 in 2 classes, labels"), "describe: %s", qd_data_describe(d));
    }
    qd_data_free(d);

    /* gray: luma as PIL's convert("L"); bgr: channels reversed */
    qd_data_opts o = {.gray = 1};
    d = qd_data_open("imagefolder:" IMG "/set", &o, &e);
    ok(d && qd_data_batch(d, 0, 4, &x, NULL, &e) == 0 && x.shape[1] == 1, "gray folder: %s", e.msg);
    if (d) {
        double m = 0;
        const uint8_t *r = a0.data;
        for (int i = 0; i < 48; i++) {
            int l = (int)((r[3 * i] * 19595u + r[3 * i + 1] * 38470u + r[3 * i + 2] * 7471u + 0x8000u) >> 16);
            m = fmax(m, fabs(((float *)x.data)[i] * 255.0 - l));
        }
        ok(m < 1e-3, "gray luma of RGB PNG (%g)", m);
        ok(max_diff(&x, 2, &b0, 1, 0) < 1e-3, "gray of a gray PNG is itself");
    }
    qd_data_free(d);
    o = (qd_data_opts){.bgr = 1};
    d = qd_data_open("imagefolder:" IMG "/set", &o, &e);
    ok(d && qd_data_batch(d, 0, 1, &x, NULL, &e) == 0, "bgr folder: %s", e.msg);
    if (d)
        near(((float *)x.data)[5] * 255.0, ((uint8_t *)a0.data)[3 * 5 + 2], 1e-3, 0, "bgr: channel 0 is blue");
    qd_data_free(d);
    /* resize + crop on the folder */
    o = (qd_data_opts){.resize = 4, .crop = 4};
    d = qd_data_open("imagefolder:" IMG "/set", &o, &e);
    int64_t chw[3] = {0};
    if (d)
        qd_data_sample_shape(d, chw);
    ok(d && chw[0] == 3 && chw[1] == 4 && chw[2] == 4 && qd_data_batch(d, 0, 4, &x, NULL, &e) == 0,
       "folder resize 4 crop 4: %s", e.msg);
    qd_data_free(d);
    qd_tensor_free(&a0), qd_tensor_free(&a1), qd_tensor_free(&b0), qd_tensor_free(&b1), qd_tensor_free(&x);
}

/* Preprocessing on photo.png against PIL's Resize/CenterCrop/convert("L"). */
static void test_preprocess(void)
{
    qd_err e = {0};
    qd_tensor t = {0}, r = {0}, g = {0};
    ok(qd_npy_read(IMG "/ref/photo_r10c8.npy", &r, &e) == 0 && qd_npy_read(IMG "/ref/photo_gray_r12.npy", &g, &e) == 0,
       "photo refs: %s", e.msg);
    qd_data_opts o = {.resize = 10, .crop = 8};
    ok(qd_image_read(IMG "/photo.png", &o, &t, &e) == 0 && t.shape[0] == 3 && t.shape[1] == 8 && t.shape[2] == 8,
       "resize 10 crop 8: %s", e.msg);
    if (!e.code)
        ok(max_diff(&t, 0, &r, 3, 0) < 1e-3, "resize+crop equals PIL bilinear (max diff %g/255)",
           max_diff(&t, 0, &r, 3, 0));
    o = (qd_data_opts){.resize = 12, .gray = 1};
    ok(qd_image_read(IMG "/photo.png", &o, &t, &e) == 0 && t.shape[0] == 1 && t.shape[1] == 12 && t.shape[2] == 19,
       "gray resize 12 -> 1x12x19: %s", e.msg);
    if (!e.code)
        ok(max_diff(&t, 0, &g, 1, 0) < 1e-3, "gray+resize equals PIL (max diff %g/255)", max_diff(&t, 0, &g, 1, 0));
    o = (qd_data_opts){.resize = 10, .crop = 8, .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
    ok(qd_image_read(IMG "/photo.png", &o, &t, &e) == 0, "mean/std: %s", e.msg);
    if (!e.code) {
        const uint8_t *p = r.data;
        near(((float *)t.data)[0], (p[0] / 255.0 - 0.485) / 0.229, 1e-5, 1e-5, "mean/std channel 0");
        near(((float *)t.data)[64 + 9], (p[9 * 3 + 1] / 255.0 - 0.456) / 0.224, 1e-5, 1e-5, "mean/std channel 1");
        near(((float *)t.data)[128 + 63], (p[63 * 3 + 2] / 255.0 - 0.406) / 0.225, 1e-5, 1e-5, "mean/std channel 2");
    }
    memset(&e, 0, sizeof e);
    o = (qd_data_opts){.crop = 30};
    ok(qd_image_read(IMG "/photo.png", &o, &t, &e) == QD_EINPUT && strstr(e.msg, "smaller than the crop"),
       "crop larger than the image: %s", e.msg);
    memset(&e, 0, sizeof e);
    o = (qd_data_opts){.resize = 1000000};
    ok(qd_image_read(IMG "/photo.png", &o, &t, &e) == QD_EINPUT && strstr(e.msg, "too large"),
       "absurd resize refused: %s", e.msg);
    qd_tensor_free(&t), qd_tensor_free(&r), qd_tensor_free(&g);
}

/* Values = index, so a batch shows which indices a subset picked. */
static void test_limit(void)
{
    qd_err e = {0};
    qd_tensor x = {0};
    const char *p = tmp_path("idx1000.npy");
    write_npy(p, QD_F32, 4, (int64_t[]){1000, 1, 1, 1}, 0);
    char spec[256];
    snprintf(spec, sizeof spec, "npy:%s", p);
    qd_dataset *a = qd_data_open(spec, NULL, &e), *b = qd_data_open(spec, NULL, &e), *c = qd_data_open(spec, NULL, &e);
    ok(a && b && c, "open: %s", e.msg);
    if (!a || !b || !c)
        goto out;
    ok(qd_data_limit(a, 10, 42, &e) == 0 && qd_data_limit(b, 10, 42, &e) == 0 && qd_data_limit(c, 10, 43, &e) == 0,
       "limit: %s", e.msg);
    ok(qd_data_count(a) == 10, "limited count 10");
    /* the documented splitmix64 + partial Fisher-Yates, computed in Python */
    static const int want[10] = {413, 182, 552, 26, 338, 942, 855, 396, 285, 753};
    float va[10], vb[10], vc[10];
    qd_data_batch(a, 0, 10, &x, NULL, &e), memcpy(va, x.data, sizeof va);
    qd_data_batch(b, 0, 10, &x, NULL, &e), memcpy(vb, x.data, sizeof vb);
    qd_data_batch(c, 0, 10, &x, NULL, &e), memcpy(vc, x.data, sizeof vc);
    int same = 1;
    for (int i = 0; i < 10; i++)
        same &= va[i] == want[i] * 0.5f;
    ok(same, "seed 42 picks the documented indices (got %g %g %g ...)", va[0] / 0.5, va[1] / 0.5, va[2] / 0.5);
    ok(memcmp(va, vb, sizeof va) == 0, "same seed, same subset");
    ok(memcmp(va, vc, sizeof va) != 0, "different seed, different subset");
    ok(strstr(qd_data_describe(a), "subset of 10 (seed 42)"), "describe: %s", qd_data_describe(a));
    /* composes: a subset of the subset keeps values from it */
    ok(qd_data_limit(a, 3, 7, &e) == 0 && qd_data_count(a) == 3 && qd_data_batch(a, 0, 3, &x, NULL, &e) == 0, "re-limit");
    int in = 1;
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < 10; j++)
            found |= ((float *)x.data)[i] == va[j];
        in &= found;
    }
    ok(in, "second limit picks from the first subset");
    ok(qd_data_limit(a, -1, 0, &e) == QD_EINPUT, "negative limit is QD_EINPUT");
    memset(&e, 0, sizeof e);
    qd_data_free(a);
    a = qd_data_open(spec, NULL, &e);
    ok(a && qd_data_limit(a, 5000, 1, &e) == 0 && qd_data_count(a) == 1000, "n >= count keeps all");
    ok(a && qd_data_batch(a, 0, 1000, &x, NULL, &e) == 0 && ((float *)x.data)[999] == 999 * 0.5f &&
           ((float *)x.data)[0] == 0, "n >= count keeps the order");
    /* Fashion-MNIST labels follow the subset */
    qd_dataset *f = qd_data_open("fashion-mnist", NULL, &e), *g = qd_data_open("fashion-mnist", NULL, &e);
    int64_t l1[100], l2[100];
    ok(f && g && qd_data_limit(f, 100, 1, &e) == 0 && qd_data_limit(g, 100, 1, &e) == 0 &&
           qd_data_batch(f, 0, 100, &x, l1, &e) == 0 && qd_data_batch(g, 0, 100, &x, l2, &e) == 0 &&
           memcmp(l1, l2, sizeof l1) == 0,
       "fashion-mnist subset reproducible: %s", e.msg);
    qd_data_free(f), qd_data_free(g);
out:
    qd_data_free(a), qd_data_free(b), qd_data_free(c);
    qd_tensor_free(&x);
}

/* spec must fail to open (or, with batch, fail on its first batch) with
 * QD_EINPUT and a message holding the file name and one of the keywords. */
static void expect_bad(const char *spec, const qd_data_opts *o, int batch, const char *file, const char *k1,
                       const char *k2)
{
    qd_err e = {0};
    qd_tensor x = {0};
    qd_dataset *d = qd_data_open(spec, o, &e);
    int rc = d ? QD_OK : e.code;
    if (d && batch)
        rc = qd_data_batch(d, 0, qd_data_count(d), &x, NULL, &e);
    ok(rc == QD_EINPUT, "%s: want QD_EINPUT, got %d (%s)", spec, rc, e.msg);
    ok(strstr(e.msg, file) != NULL, "%s: message names %s: %s", spec, file, e.msg);
    ok(strstr(e.msg, k1) || (k2 && strstr(e.msg, k2)), "%s: message says '%s': %s", spec, k1, e.msg);
    qd_data_free(d);
    qd_tensor_free(&x);
}

static void test_bad(void)
{
    expect_bad("idx:" BAD "/bad_magic.idx", NULL, 0, "bad_magic.idx", "bad magic", NULL);
    expect_bad("idx:" BAD "/short.idx", NULL, 0, "short.idx", "truncated: header says 100 items of 8x8, file has 30", NULL);
    expect_bad("idx:" BAD "/short.idx.gz", NULL, 0, "short.idx.gz", "file has 30", NULL);
    expect_bad("idx:" BAD "/cut.idx.gz", NULL, 0, "cut.idx.gz", "truncated", "corrupt");
    expect_bad("idx:" BAD "/images5.idx," BAD "/labels4.idx", NULL, 0, "labels4.idx", "mismatch", NULL);
    expect_bad("idx:" BAD "/nosuch.idx", NULL, 0, "nosuch.idx", "cannot open", NULL);
    expect_bad("npy:" BAD "/images_int16.npy", NULL, 0, "images_int16.npy", "dtype int16", NULL);
    expect_bad("npy:" BAD "/images_rank2.npy", NULL, 0, "images_rank2.npy", "rank 2", NULL);
    expect_bad("npy:" BAD "/images5.npy," BAD "/labels_float.npy", NULL, 0, "labels_float.npy", "dtype float32", NULL);
    expect_bad("npy:" BAD "/images5.npy," BAD "/labels4.npy", NULL, 0, "labels4.npy", "mismatch", NULL);
    expect_bad("npy:" BAD "/short.idx", NULL, 0, "short.idx", "bad magic", NULL);
    expect_bad("imagefolder:" BAD "/notimage", NULL, 0, "readme.txt", "not an image", NULL);
    expect_bad("imagefolder:" BAD "/corruptpng", NULL, 1, "corruptpng/a/1.png", "sample 1", NULL);
    expect_bad("imagefolder:" BAD "/corruptpng", NULL, 1, "1.png", "cannot decode PNG", NULL);
    expect_bad("imagefolder:" BAD "/corruptjpg", NULL, 1, "1.jpg", "JPEG", NULL);
    expect_bad("imagefolder:" BAD "/fakepng", NULL, 0, "0.png", "not a PNG or JPEG", NULL);
    expect_bad("imagefolder:" BAD "/nosuchdir", NULL, 0, "nosuchdir", "cannot open", NULL);
    expect_bad("imagefolder:" BAD, NULL, 0, "corruptjpg/a", "unexpected sub-folder", NULL);
    expect_bad("mnist", NULL, 0, "mnist", "unknown dataset", NULL);
    qd_data_opts o = {.resize = 32};
    expect_bad("npy:" BAD "/images5.npy", &o, 0, "images5.npy", "imagefolder", NULL);

    /* images of different sizes without crop: the second one fails in the batch */
    const char *dir = tmp_path("mixed"), *cls = tmp_path("mixed/c");
    mkdir(dir, 0700);
    mkdir(cls, 0700);
    const char *f0 = tmp_path("mixed/c/0.png"), *f1 = tmp_path("mixed/c/1.png");
    ok(copy_file(IMG "/set/a_color/0.png", f0) == 0 && copy_file(IMG "/photo.png", f1) == 0, "copy images");
    char spec[256];
    snprintf(spec, sizeof spec, "imagefolder:%s", dir);
    expect_bad(spec, NULL, 1, "1.png", "differs from the dataset's 3x6x8", NULL);

    /* header claims larger than the data: refused before allocating */
    static const unsigned char idx_huge[] = {0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 2, 1, 2};
    qd_tensor t = {0};
    qd_err e = {0};
    ok(qd_idx_read_mem(idx_huge, sizeof idx_huge, "huge", &t, &e) == QD_EINPUT && t.cap == 0, "huge IDX claim: %s",
       e.msg);
    char npy[128] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }";
    size_t nl = 10 + 0x76;
    memset(npy + strlen(npy), ' ', nl - strlen(npy));
    npy[nl - 1] = '\n';
    memset(&e, 0, sizeof e);
    ok(qd_npy_read_mem(npy, nl, "huge.npy", &t, &e) == QD_EINPUT && t.cap == 0 && strstr(e.msg, "truncated"),
       "huge NPY claim: %s", e.msg);
    qd_tensor_free(&t);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/qdb-test-data.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fashion();
    test_npy();
    test_folder();
    test_preprocess();
    test_limit();
    test_bad();
    cleanup();
    return th_summary();
}
