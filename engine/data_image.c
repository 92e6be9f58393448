/* data_image.c - PNG/JPEG decoding and torchvision-style preprocessing
 * (colour, resize, center crop, scale, mean/std) into float32 C x H x W. */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */
#include <png.h>

/* Largest decoded image, pixels; larger ones are refused before allocating. */
#define MAX_PIXELS ((uint64_t)1 << 26)

/* An 8-bit image, rows of w pixels of ch interleaved channels. */
typedef struct img8 {
    int w, h, ch;
    uint8_t *px;
} img8;

static int too_large(const char *path, uint64_t w, uint64_t h, qd_err *e)
{
    if (w == 0 || h == 0)
        return qd_errf(e, QD_EINPUT, "%s: empty image (%llux%llu)", path, (unsigned long long)w,
                       (unsigned long long)h);
    if (w * h > MAX_PIXELS)
        return qd_errf(e, QD_EINPUT, "%s: image too large (%llux%llu, limit %llu pixels)", path,
                       (unsigned long long)w, (unsigned long long)h, (unsigned long long)MAX_PIXELS);
    return QD_OK;
}

/* PNG through libpng's simplified API, as 8-bit RGBA (alpha dropped later). */
static int decode_png(FILE *f, const char *path, img8 *im, qd_err *e)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&pi, f))
        return qd_errf(e, QD_EINPUT, "%s: cannot decode PNG: %s", path, pi.message);
    if (too_large(path, pi.width, pi.height, e)) {
        png_image_free(&pi);
        return QD_EINPUT;
    }
    pi.format = PNG_FORMAT_RGBA;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(pi));
    if (!px) {
        png_image_free(&pi);
        return qd_errf(e, QD_EFAIL, "%s: out of memory decoding PNG", path);
    }
    if (!png_image_finish_read(&pi, NULL, px, 0, NULL)) {
        free(px);
        return qd_errf(e, QD_EINPUT, "%s: cannot decode PNG: %s", path, pi.message);
    }
    /* RGBA -> RGB in place */
    size_t n = (size_t)pi.width * pi.height;
    for (size_t i = 0; i < n; i++)
        memmove(px + 3 * i, px + 4 * i, 3);
    im->w = (int)pi.width;
    im->h = (int)pi.height;
    im->ch = 3;
    im->px = px;
    return QD_OK;
}

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
};

static void jerr_exit(j_common_ptr c)
{
    struct jerr *j = (struct jerr *)c->err;
    c->err->format_message(c, j->msg);
    longjmp(j->jb, 1);
}

/* Never print; keep the first warning (corrupt data) to report it. */
static void jerr_emit(j_common_ptr c, int level)
{
    struct jerr *j = (struct jerr *)c->err;
    if (level < 0) {
        if (j->pub.num_warnings++ == 0)
            c->err->format_message(c, j->msg);
    }
}

/* JPEG through libjpeg, as 8-bit RGB; corrupt data (a libjpeg warning) is an
 * error, as in PIL. */
static int decode_jpeg(FILE *f, const char *path, img8 *im, qd_err *e)
{
    struct jpeg_decompress_struct ci;
    struct jerr jerr;
    uint8_t *volatile px = NULL;
    memset(&jerr, 0, sizeof jerr);
    ci.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jerr_exit;
    jerr.pub.emit_message = jerr_emit;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&ci);
        free(px);
        return qd_errf(e, QD_EINPUT, "%s: cannot decode JPEG: %s", path, jerr.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&ci);
        return qd_errf(e, QD_EINPUT, "%s: CMYK JPEG images are not supported", path);
    }
    if (too_large(path, ci.image_width, ci.image_height, e)) {
        jpeg_destroy_decompress(&ci);
        return QD_EINPUT;
    }
    ci.out_color_space = JCS_RGB;
    jpeg_start_decompress(&ci);
    size_t stride = (size_t)ci.output_width * 3;
    px = malloc(stride * ci.output_height);
    if (!px) {
        jpeg_destroy_decompress(&ci);
        return qd_errf(e, QD_EFAIL, "%s: out of memory decoding JPEG", path);
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = px + stride * ci.output_scanline;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    im->w = (int)ci.output_width;
    im->h = (int)ci.output_height;
    im->ch = 3;
    im->px = px;
    jpeg_destroy_decompress(&ci);
    if (jerr.pub.num_warnings) {
        free(im->px);
        im->px = NULL;
        return qd_errf(e, QD_EINPUT, "%s: corrupt JPEG data: %s", path, jerr.msg);
    }
    return QD_OK;
}

/* Decode path by its magic bytes into 8-bit RGB. */
static int decode(const char *path, img8 *im, qd_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qd_errf(e, QD_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[8] = {0};
    size_t n = fread(m, 1, sizeof m, f);
    rewind(f);
    int rc;
    if (n == 8 && memcmp(m, "\x89PNG\r\n\x1a\n", 8) == 0)
        rc = decode_png(f, path, im, e);
    else if (n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff)
        rc = decode_jpeg(f, path, im, e);
    else
        rc = qd_errf(e, QD_EINPUT, "%s: cannot decode: not a PNG or JPEG file", path);
    fclose(f);
    return rc;
}

/* RGB -> luma in place, as PIL's convert("L"): ITU-R 601-2 in 16.16 fixed point. */
static void to_gray(img8 *im)
{
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = im->px + 3 * i;
        im->px[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    im->ch = 1;
}

/* Resampling weights of one output pixel: taps k[0..n) from input index lo. */
typedef struct taps {
    int lo, n;
    int32_t *k; /* fixed point, PREC fraction bits */
} taps;

#define PREC 22 /* PIL's PRECISION_BITS for 8-bit images */

static double tri(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Antialiased bilinear (triangle) weights from insize to outsize pixels, as
 * PIL's precompute_coeffs + normalize_coeffs_8bpc. *kbuf is freed by caller. */
static taps *make_taps(int insize, int outsize, int32_t **kbuf)
{
    double scale = (double)insize / outsize, fs = scale < 1.0 ? 1.0 : scale, support = fs;
    int ksize = (int)ceil(support) * 2 + 1;
    taps *t = malloc(sizeof *t * (size_t)outsize);
    int32_t *k = calloc((size_t)outsize * (size_t)ksize, sizeof *k);
    double *w = malloc(sizeof *w * (size_t)ksize);
    if (!t || !k || !w) {
        free(t), free(k), free(w);
        *kbuf = NULL;
        return NULL;
    }
    for (int x = 0; x < outsize; x++) {
        double center = (x + 0.5) * scale, ww = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > insize)
            hi = insize;
        int n = hi - lo;
        for (int j = 0; j < n; j++) {
            w[j] = tri((j + lo - center + 0.5) / fs);
            ww += w[j];
        }
        t[x].lo = lo;
        t[x].n = n;
        t[x].k = k + (size_t)x * ksize;
        for (int j = 0; j < n; j++) {
            double v = ww != 0.0 ? w[j] / ww : w[j];
            t[x].k[j] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC) : 0.5 + v * (1 << PREC));
        }
    }
    free(w);
    *kbuf = k;
    return t;
}

static uint8_t clip8(int64_t v)
{
    v >>= PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Resize im to ow x oh with PIL's BILINEAR filter (horizontal pass, then
 * vertical, each rounded to 8 bits). */
static int resize(img8 *im, int ow, int oh, qd_err *e)
{
    int ch = im->ch, rc = QD_OK;
    int32_t *kx = NULL, *ky = NULL;
    taps *tx = make_taps(im->w, ow, &kx), *ty = make_taps(im->h, oh, &ky);
    uint8_t *tmp = malloc((size_t)ow * im->h * ch), *out = malloc((size_t)ow * oh * ch);
    if (!tx || !ty || !tmp || !out) {
        rc = qd_errf(e, QD_EFAIL, "out of memory resizing an image to %dx%d", ow, oh);
        free(out);
        goto done;
    }
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < ch; c++) {
                int64_t s = 1 << (PREC - 1);
                const uint8_t *row = im->px + ((size_t)y * im->w + tx[x].lo) * ch + c;
                for (int j = 0; j < tx[x].n; j++)
                    s += (int64_t)row[(size_t)j * ch] * tx[x].k[j];
                tmp[((size_t)y * ow + x) * ch + c] = clip8(s);
            }
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < ch; c++) {
                int64_t s = 1 << (PREC - 1);
                const uint8_t *col = tmp + ((size_t)ty[y].lo * ow + x) * ch + c;
                for (int j = 0; j < ty[y].n; j++)
                    s += (int64_t)col[(size_t)j * ow * ch] * ty[y].k[j];
                out[((size_t)y * ow + x) * ch + c] = clip8(s);
            }
    free(im->px);
    im->px = out;
    im->w = ow;
    im->h = oh;
done:
    free(tx), free(ty), free(kx), free(ky), free(tmp);
    return rc;
}

/* Python's round() of d / 2 (half to even), as torchvision's center_crop. */
static int half_round_even(int d)
{
    int q = d / 2;
    return (d % 2 == 0 || q % 2 == 0) ? q : q + 1;
}

void qd_data_normalize(float *x, int64_t c, int64_t hw, int from_u8, const qd_data_opts *o)
{
    float s = from_u8 && !o->no_scale ? 1.0f / 255.0f : 1.0f;
    for (int64_t ci = 0; ci < c; ci++) {
        int k = ci < 3 ? (int)ci : 2;
        float m = o->mean[k], sd = o->std[k] != 0.0f ? o->std[k] : 1.0f;
        float *p = x + ci * hw;
        if (s == 1.0f && m == 0.0f && sd == 1.0f)
            continue;
        for (int64_t i = 0; i < hw; i++)
            p[i] = (p[i] * s - m) / sd;
    }
}

int qd_image_read(const char *path, const qd_data_opts *o, qd_tensor *t, qd_err *e)
{
    static const qd_data_opts zero;
    if (!o)
        o = &zero;
    img8 im = {0};
    int rc = decode(path, &im, e);
    if (rc)
        return rc;
    if (o->gray)
        to_gray(&im);
    if (o->resize > 0) {
        int s = im.w < im.h ? im.w : im.h, l = im.w < im.h ? im.h : im.w;
        double dl = (double)o->resize * l / s;
        if (dl * o->resize > (double)MAX_PIXELS) {
            rc = qd_errf(e, QD_EINPUT, "%s: resize %d makes a %dx%d image too large (limit %llu pixels)", path,
                         o->resize, im.w, im.h, (unsigned long long)MAX_PIXELS);
            goto out;
        }
        int ns = o->resize, nl = (int)dl;
        int ow = im.w < im.h ? ns : nl, oh = im.w < im.h ? nl : ns;
        if (im.w == im.h)
            ow = oh = ns;
        if ((ow != im.w || oh != im.h) && (rc = resize(&im, ow, oh, e)))
            goto out;
    }
    int x0 = 0, y0 = 0, cw = im.w, chh = im.h;
    if (o->crop > 0) {
        if (o->crop > im.w || o->crop > im.h) {
            rc = qd_errf(e, QD_EINPUT, "%s: image %dx%d is smaller than the crop %d (resize it first)", path,
                         im.w, im.h, o->crop);
            goto out;
        }
        cw = chh = o->crop;
        x0 = half_round_even(im.w - cw);
        y0 = half_round_even(im.h - chh);
    }
    int64_t shape[3] = {im.ch, chh, cw};
    if ((rc = qd_tensor_resize(t, QD_F32, 3, shape, e))) {
        qd_err_prefix(e, "%s", path);
        goto out;
    }
    float *dst = t->data;
    size_t hw = (size_t)cw * chh;
    for (int c = 0; c < im.ch; c++) {
        int sc = im.ch == 3 && o->bgr ? 2 - c : c;
        for (int y = 0; y < chh; y++)
            for (int x = 0; x < cw; x++)
                dst[c * hw + (size_t)y * cw + x] = im.px[((size_t)(y + y0) * im.w + (x + x0)) * im.ch + sc];
    }
    qd_data_normalize(dst, im.ch, (int64_t)hw, 1, o);
out:
    free(im.px);
    return rc;
}
