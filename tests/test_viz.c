/* test_viz.c - viz.c: the script and data of every plot against golden files,
 * rendering to PNG (size from the IHDR), SVG, PDF, text (a golden) and
 * sixel, gnuplot missing or failing (script and data kept, no output file),
 * unwritable paths, bad inputs, qv_fmt_from_path and the sixel query; the
 * layout (plot area, key, axis ranges) read from the scripts, and the text
 * plots at 80x24.
 *
 * Run from the project root. Golden files are tests/golden/viz/<plot>.gp,
 * .dat and sweep.txt; after a deliberate change to the plots, regenerate
 * them with
 *     QDB_UPDATE_GOLDEN=1 build/rel/tests/test_viz
 * and review the diff. The text golden needs the pinned gnuplot (5.4.4). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "viz/viz.h"

#define OUT "tests/out/viz"
#define GOLD "tests/golden/viz"

static int update_golden;

/* ---- fixed inputs, one per plot ---- */

static const double R_MIN[] = {-0.52, -0.08, -1.9, -0.31, -0.02, -0.75, -0.4, -0.11};
static const double R_MAX[] = {0.61, 0.07, 2.3, 0.28, 0.03, 0.9, 0.35, 0.12};
static const double R_MEAN[] = {0.01, -0.002, 0.05, -0.01, 0.001, 0.02, -0.03, 0.004};
static const double A_MIN[] = {-0.41, -0.36, -0.52, -0.44, -0.3, -0.47, -0.45, -0.38};
static const double A_MAX[] = {0.48, 0.33, 0.61, 0.4, 0.45, 0.56, 0.39, 0.42};
static const double A_MEAN[] = {0.008, -0.009, 0.013, -0.014, 0.015, 0.012, -0.034, 0.015};
static const qv_ranges_plot RANGES = {
    .layer = "/features/features.1/conv/conv.0/Conv",
    .before = {8, R_MIN, R_MAX, R_MEAN},
    .after = {8, A_MIN, A_MAX, A_MEAN},
};
static const qv_ranges_plot RANGES1 = {
    .layer = "conv1_weight",
    .before = {8, R_MIN, R_MAX, R_MEAN},
    .before_label = "conv1",
};

/* names with slashes, dots, underscores, quotes and a backslash */
static const char *const LAYERS[] = {
    "/features/features.0/features.0.0/Conv", "/features/features.1/conv/conv.0/Conv",
    "head_fc 'x' \"q\" a\\b", "conv2", "/features/features.3/conv/conv.3/Conv_output_0", "fc",
};
static const double SP_BEFORE[] = {3.2, 45.0, 12.5, 2.1, INFINITY, 8};
static const double SP_AFTER[] = {2.0, 4.1, 3.3, 1.8, 9.0, 2.5};
static const qv_spread_plot SPREAD = {6, LAYERS, SP_BEFORE, SP_AFTER, 0};

static const double S_EN[] = {0.85, 0.62, 0.88, 0.87, NAN, 0.8};
static const double S_DIS[] = {0.70, 0.86, 0.71, 0.72, 0.70, 0.75};
static const qv_sens_plot SENS = {6, LAYERS, S_EN, S_DIS, 0.89, 0.69, "top-1"};

static const double SW_X[] = {4, 6, 8, 16};
static const double SW_PT[] = {0.12, 0.55, 0.86, 0.89};
static const double SW_PC[] = {0.41, 0.80, 0.88, 0.89};
static const qv_curve CURVES[] = {{"per-tensor", 4, SW_X, SW_PT}, {"per-channel", 4, SW_X, SW_PC}};
static const qv_sweep_plot SWEEP = {"LeNet W/A sweep", "bits (W = A)", "top-1", 2, CURVES, 0.89};

static const int G_W[] = {16, 8, 4};
static const int G_A[] = {16, 8, 6, 4};
static const double G_V[] = {0.891, 0.889, 0.874, 0.61, 0.888, 0.885, 0.87,
                             NAN,   0.52,  0.5,   0.43, 0.21};
static const qv_grid_plot GRID = {3, 4, G_W, G_A, G_V, "top-1"};

static const double H_COUNT[] = {1, 0, 3, 12, 40, 130, 410, 900, 880, 400, 120, 35, 9, 2, 0, 1};
static const char *const H_NAMES[] = {"minmax", "percentile:99.9", "sqnr"};
static const double H_MIN[] = {-3.9, -2.8, -2.1};
static const double H_MAX[] = {3.7, 2.9, 2.2};
static const qv_hist_plot HIST = {
    "/features/features.1/Relu_output_0", 16, -4, 4, H_COUNT, 3, H_NAMES, H_MIN, H_MAX, 16, 1,
};

static const double Q_LOCAL[] = {35.1, 28.4, INFINITY, 31.0, 22.5, 40.2};
static const double Q_PROP[] = {35.1, 26.0, 25.1, 21.7, 18.3, 17.9};
static const qv_sqnr_plot SQNR = {6, LAYERS, Q_LOCAL, Q_PROP};

/* many tensors sharing a prefix and a suffix: tic labels leave those out,
 * and only every k-th is shown */
enum { NMANY = 100 };
static char many_buf[NMANY][64];
static const char *many_names[NMANY];
static double many_local[NMANY], many_prop[NMANY];
static const qv_sqnr_plot SQNR_MANY = {NMANY, many_names, many_local, many_prop};

/* the default 30 quantizers of `qdb plot sensitivity`, long names */
enum { NSENS = 30 };
static char sens_buf[NSENS][64];
static const char *sens_names[NSENS];
static double sens_en[NSENS], sens_dis[NSENS];
static const qv_sens_plot SENS_MANY = {NSENS, sens_names, sens_en, sens_dis, 0.89, 0.69, "top-1"};

static void fill_many(void)
{
    for (int i = 0; i < NMANY; i++) {
        snprintf(many_buf[i], sizeof many_buf[i], "/features/features.%d/conv/conv.%d/Conv_output_0",
                 i, i % 3);
        many_names[i] = many_buf[i];
        many_local[i] = 30 + (i * 37 % 17) * 0.5;
        many_prop[i] = 35 - i * 0.125;
    }
    for (int i = 0; i < NSENS; i++) {
        snprintf(sens_buf[i], sizeof sens_buf[i],
                 i % 3 ? "/layer%d/conv/Conv_output_0" : "/blocks.%d/attn/qkv/MatMul_output_0", i);
        sens_names[i] = sens_buf[i];
        sens_en[i] = 0.88 - 0.01 * (NSENS - i) * (i % 4 ? 0.3 : 1.2);
        sens_dis[i] = 0.70 + 0.006 * i;
    }
}

/* ---- the plots by name ---- */

enum {
    RANGES_K, RANGES1_K, SPREAD_K, SENS_K, SENS_MANY_K, SWEEP_K, GRID_K, HIST_K, SQNR_K, SQNR_MANY_K,
    NKINDS
};
static const char *const KIND[NKINDS] = {"ranges", "ranges1", "spread", "sensitivity",
                                         "sensitivity_many", "sweep", "grid", "hist", "sqnr",
                                         "sqnr_many"};

static int draw(int kind, qv_target *t, qd_err *e)
{
    switch (kind) {
    case RANGES_K: return qv_plot_ranges(&RANGES, t, e);
    case RANGES1_K: return qv_plot_ranges(&RANGES1, t, e);
    case SPREAD_K: return qv_plot_spread(&SPREAD, t, e);
    case SENS_K: return qv_plot_sensitivity(&SENS, t, e);
    case SENS_MANY_K: return qv_plot_sensitivity(&SENS_MANY, t, e);
    case SWEEP_K: return qv_plot_sweep(&SWEEP, t, e);
    case GRID_K: return qv_plot_grid(&GRID, t, e);
    case HIST_K: return qv_plot_hist(&HIST, t, e);
    case SQNR_K: return qv_plot_sqnr(&SQNR, t, e);
    default: return qv_plot_sqnr(&SQNR_MANY, t, e);
    }
}

/* ---- files ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, k;
    char *s = malloc(cap + 1);
    while (s && (k = fread(s + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *p = realloc(s, 2 * cap + 1);
            if (!p) {
                free(s);
                s = NULL;
                break;
            }
            s = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (s) {
        s[n] = 0;
        *len = n;
    }
    return s;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void write_file(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    ok(f && fwrite(s, 1, n, f) == n && fclose(f) == 0, "write %s", path);
}

/* Compares got (n bytes) with the golden file, or writes it under
 * QDB_UPDATE_GOLDEN=1. */
static void golden(const char *name, const char *got, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, GOLD "/%s", name);
    if (update_golden) {
        write_file(path, got, n);
        return;
    }
    size_t gl = 0;
    char *want = slurp(path, &gl);
    size_t at = 0;
    while (want && at < n && at < gl && got[at] == want[at])
        at++;
    ok(want && gl == n && at == n, "%s differs from the golden at byte %zu (got %zu, want %zu bytes)",
       name, at, n, gl);
    free(want);
}

static void golden_file(const char *got_path, const char *name)
{
    size_t n = 0;
    char *got = slurp(got_path, &n);
    ok(got != NULL, "%s written", got_path);
    if (got)
        golden(name, got, n);
    free(got);
}

static void path_of(char *dst, size_t size, const char *kind, const char *ext)
{
    snprintf(dst, size, OUT "/%s.%s", kind, ext);
}

static void remove_plot(const char *kind, const char *ext)
{
    char p[256];
    const char *exts[] = {ext, "gp", "dat"};
    for (int i = 0; i < 3; i++) {
        path_of(p, sizeof p, kind, exts[i]);
        unlink(p);
    }
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- tests ---- */

/* Every plot as PNG: golden script and data, and the image's size. */
static void test_png_and_goldens(int have)
{
    for (int k = 0; k < NKINDS; k++) {
        remove_plot(KIND[k], "png");
        char png[256], name[64];
        path_of(png, sizeof png, KIND[k], "png");
        qv_target t = {.path = png, .fmt = QV_PNG, .width = 640, .height = 360};
        qd_err e = {0};
        int rc = draw(k, &t, &e);
        for (int x = 0; x < 2; x++) {
            char p[256];
            path_of(p, sizeof p, KIND[k], x ? "dat" : "gp");
            snprintf(name, sizeof name, "%s.%s", KIND[k], x ? "dat" : "gp");
            golden_file(p, name);
        }
        if (!have)
            continue;
        ok(rc == QD_OK, "%s: %d %s", KIND[k], rc, e.msg);
        size_t n = 0;
        unsigned char *b = (unsigned char *)slurp(png, &n);
        ok(b && n > 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4),
           "%s: a PNG", png);
        if (b && n > 24)
            ok(be32(b + 16) == 640 && be32(b + 20) == 360, "%s: %ux%u, want 640x360", png,
               be32(b + 16), be32(b + 20));
        free(b);
        ok(t.text == NULL, "%s: no text for a file", KIND[k]);
    }
}

/* Default size, SVG and PDF. */
static void test_svg_pdf(void)
{
    qd_err e = {0};
    qv_target t = {.path = OUT "/default.png", .fmt = QV_PNG};
    ok(qv_plot_hist(&HIST, &t, &e) == QD_OK, "default png: %s", e.msg);
    size_t n = 0;
    unsigned char *b = (unsigned char *)slurp(t.path, &n);
    ok(b && n > 24 && be32(b + 16) == 960 && be32(b + 20) == 540, "default size 960x540");
    free(b);

    e = (qd_err){0};
    t = (qv_target){.path = OUT "/sweep.svg", .fmt = QV_SVG, .width = 800, .height = 450};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_OK, "svg: %s", e.msg);
    char *s = slurp(t.path, &n);
    ok(s && (!strncmp(s, "<?xml", 5) || !strncmp(s, "<svg", 4)), "svg header");
    ok(s && strstr(s, "width=\"800\"") && strstr(s, "height=\"450\""), "svg size");
    free(s);

    e = (qd_err){0};
    t = (qv_target){.path = OUT "/grid.PDF", .fmt = QV_PDF};
    ok(qv_plot_grid(&GRID, &t, &e) == QD_OK, "pdf: %s", e.msg);
    s = slurp(t.path, &n);
    ok(s && n > 4 && !strncmp(s, "%PDF", 4), "pdf header");
    free(s);
    ok(exists(OUT "/grid.gp") && exists(OUT "/grid.dat"), "pdf: .gp and .dat beside it");
}

/* The terminal targets: a text golden, colour, a kept script, sixel. */
static void test_text(void)
{
    qd_err e = {0};
    qv_target t = {.fmt = QV_TEXT, .width = 60, .height = 20};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_OK, "text: %s", e.msg);
    ok(t.text && t.text_len == strlen(t.text) && t.text_len > 60 * 20, "text: %zu bytes",
       t.text_len);
    if (t.text) {
        golden("sweep.txt", t.text, t.text_len);
        ok(!strchr(t.text, '\033'), "mono text has no escapes");
    }
    free(t.text);

    /* every kind renders as text; colour gives ANSI escapes */
    for (int k = 0; k < NKINDS; k++) {
        e = (qd_err){0};
        t = (qv_target){.fmt = QV_TEXT, .color = 1};
        ok(draw(k, &t, &e) == QD_OK, "text %s: %s", KIND[k], e.msg);
        ok(t.text && strstr(t.text, "\033["), "text %s: ANSI colours", KIND[k]);
        free(t.text);
    }

    /* a path keeps the script and data */
    unlink(OUT "/kept.gp");
    e = (qd_err){0};
    t = (qv_target){.path = OUT "/kept.txt", .fmt = QV_TEXT, .width = 60, .height = 20};
    ok(qv_plot_sqnr(&SQNR, &t, &e) == QD_OK && t.text, "text kept: %s", e.msg);
    ok(exists(OUT "/kept.gp") && exists(OUT "/kept.dat") && !exists(OUT "/kept.txt"),
       "text kept: .gp and .dat, no output file");
    free(t.text);

    if (!qv_gnuplot_has(QV_SIXEL)) {
        printf("note: gnuplot has no sixelgd terminal, sixel skipped\n");
        return;
    }
    e = (qd_err){0};
    t = (qv_target){.fmt = QV_SIXEL, .width = 320, .height = 180};
    ok(qv_plot_spread(&SPREAD, &t, &e) == QD_OK, "sixel: %s", e.msg);
    ok(t.text && t.text_len > 100 && t.text[0] == '\033' && t.text[1] == 'P', "sixel: DCS");
    free(t.text);
}

/* The number after `what` in the script s ("set tmargin at screen "); NAN
 * when absent. */
static double script_num(const char *s, const char *what)
{
    const char *p = s ? strstr(s, what) : NULL;
    return p ? strtod(p + strlen(what), NULL) : NAN;
}

/* Writes plot kind (or the sensitivity plot sp) as a script only at w x h
 * and returns it (malloc'd). */
static char *layout_script(int kind, const qv_sens_plot *sp, int w, int h)
{
    qv_target t = {.path = OUT "/layout.png", .fmt = QV_NONE, .width = w, .height = h};
    qd_err e = {0};
    int rc = sp ? qv_plot_sensitivity(sp, &t, &e) : draw(kind, &t, &e);
    ok(rc == QD_OK, "layout %s %dx%d: %s", sp ? "sensitivity" : KIND[kind], w, h, e.msg);
    size_t n;
    return slurp(OUT "/layout.gp", &n);
}

/* The layout read from the scripts (no gnuplot needed): the plots with
 * names along an axis keep at least 55% of the height for the plot area at
 * the default size and at 640x360, their key outside at the right; the
 * sensitivity axis starts a bit below the lowest bar, or at 0 when the
 * bars spread widely; the histogram's grid is drawn over the boxes; the
 * spread plot's outlier names are drawn last, beside the points. */
static void test_layout(void)
{
    static const int kinds[] = {SPREAD_K, SENS_K, SENS_MANY_K, SQNR_K, SQNR_MANY_K};
    static const int sizes[][2] = {{960, 540}, {640, 360}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (int z = 0; z < 2; z++) {
            int w = sizes[z][0], h = sizes[z][1];
            char *s = layout_script(kinds[k], NULL, w, h);
            double top = script_num(s, "set tmargin at screen ");
            double bottom = script_num(s, "set bmargin at screen ");
            ok(top - bottom >= 0.55, "%s %dx%d: the plot area is %.2f of the height",
               KIND[kinds[k]], w, h, top - bottom);
            double rm = script_num(s, "set rmargin at screen ");
            double kx = script_num(s, "set key at screen ");
            ok(rm > 0.6 && rm < 0.85 && kx > rm, "%s %dx%d: key right of the plot (%g, %g)",
               KIND[kinds[k]], w, h, rm, kx);
            free(s);
        }

    char *s = layout_script(SENS_K, NULL, 640, 360);
    const char *xr = s ? strstr(s, "set xrange [") : NULL;
    double lo = NAN, hi = NAN;
    ok(xr && sscanf(xr, "set xrange [%lf:%lf]", &lo, &hi) == 2, "sensitivity: an x range");
    ok(lo > 0.5 && lo < 0.62 && hi > 0.89 && hi < 0.95,
       "sensitivity: [%g, %g] from below 0.62 to above 0.89", lo, hi);
    ok(s && strstr(s, "'+' using (0.89):(t)") && strstr(s, "'+' using (0.69):(t)"),
       "sensitivity: FP32 and quantized lines across");
    free(s);
    static const double wide[] = {0.1, 0.5, 0.8, 0.3, NAN, 0.7};
    const qv_sens_plot sw = {6, LAYERS, wide, NULL, 0.89, NAN, "agreement"};
    s = layout_script(0, &sw, 640, 360);
    xr = s ? strstr(s, "set xrange [") : NULL;
    ok(xr && sscanf(xr, "set xrange [%lf:%lf]", &lo, &hi) == 2 && lo == 0 && hi > 0.89,
       "sensitivity, spread widely: from 0 (%g, %g)", lo, hi);
    free(s);

    s = layout_script(HIST_K, NULL, 640, 360);
    const char *boxes = s ? strstr(s, "with boxes") : NULL, *grid = s ? strstr(s, "dat index 2") : NULL;
    ok(boxes && grid && grid > boxes && strstr(grid, "lc rgb '#202020'"),
       "hist: the grid dark, over the boxes");
    free(s);

    s = layout_script(SPREAD_K, NULL, 640, 360);
    const char *thr = s ? strstr(s, "title 'threshold 10'") : NULL;
    const char *labels = s ? strstr(s, "with labels left offset") : NULL;
    ok(thr && labels && labels > thr && strstr(labels, "with labels right offset"),
       "spread: outlier names last, beside the points");
    free(s);
}

/* Every plot as monochrome text at 80x24: 24 lines, and what must be read. */
static void test_text_legible(void)
{
    static const struct {
        int kind;
        const char *must[6];
    } want[] = {
        {SENS_K, {"conv2", "head_fc 'x' 'q' a\\b", "fc ", "enable-one", "disable-one", "top-1"}},
        {SPREAD_K, {"relative range (log scale)", "head_fc", "threshold 10", "before CLE"}},
        {SQNR_K, {"SQNR (dB)", "local", "propagated", "infinite"}},
        {HIST_K, {"count (log scale)", "^  16-level grid of minmax", "sqnr: [-2.1, 2.2]"}},
    };
    for (int k = 0; k < NKINDS; k++) {
        qd_err e = {0};
        qv_target t = {.fmt = QV_TEXT};
        ok(draw(k, &t, &e) == QD_OK && t.text, "text %s: %s", KIND[k], e.msg);
        int lines = 0;
        for (const char *c = t.text; c && *c; c++)
            lines += *c == '\n';
        ok(lines == 24, "text %s: %d lines", KIND[k], lines);
        for (size_t w = 0; w < sizeof want / sizeof *want; w++)
            for (int m = 0; want[w].kind == k && m < 6 && want[w].must[m]; m++)
                ok(t.text && strstr(t.text, want[w].must[m]), "text %s: %s shown", KIND[k],
                   want[w].must[m]);
        if (k == HIST_K) { /* the grid's marks on the axis */
            const char *axis = t.text ? strstr(t.text, "++-") : NULL;
            const char *eol = axis ? strchr(axis, '\n') : NULL;
            int marks = 0;
            for (const char *c = axis; c && c < eol; c++)
                marks += *c == '^';
            ok(marks >= 10, "text hist: %d grid marks on the axis", marks);
        }
        free(t.text);
    }
}

/* QV_NONE writes the script and data only, without gnuplot. */
static void test_none(void)
{
    setenv("QDB_GNUPLOT", "/nonexistent", 1);
    remove_plot("none", "png");
    qd_err e = {0};
    qv_target t = {.path = OUT "/none.png", .fmt = QV_NONE};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_OK, "none: %s", e.msg);
    ok(exists(OUT "/none.gp") && exists(OUT "/none.dat") && !exists(OUT "/none.png"),
       "none: script and data only");
    size_t n;
    char *s = slurp(OUT "/none.gp", &n);
    ok(s && strstr(s, "set terminal pngcairo") && strstr(s, "set output qdb_dir.'none.png'"),
       "none: the script renders none.png");
    free(s);
    unsetenv("QDB_GNUPLOT");
}

/* gnuplot missing, failing, or leaving a partial file behind. */
static void test_gnuplot_fails(void)
{
    setenv("QDB_GNUPLOT", "/nonexistent", 1);
    ok(!qv_gnuplot_has(QV_PNG) && !qv_gnuplot_has(QV_NONE), "no gnuplot: has nothing");
    for (int k = 0; k < NKINDS; k++) {
        char png[256], gp[256], dat[256];
        path_of(png, sizeof png, KIND[k], "png");
        path_of(gp, sizeof gp, KIND[k], "gp");
        path_of(dat, sizeof dat, KIND[k], "dat");
        remove_plot(KIND[k], "png");
        qd_err e = {0};
        qv_target t = {.path = png, .fmt = QV_PNG};
        int rc = draw(k, &t, &e);
        ok(rc == QD_EGNUPLOT && e.code == QD_EGNUPLOT, "%s: %d", KIND[k], rc);
        ok(strstr(e.msg, "not found") && strstr(e.msg, gp) && strstr(e.msg, dat) &&
               !strchr(e.msg, '\n'),
           "%s: message: %s", KIND[k], e.msg);
        ok(exists(gp) && exists(dat) && !exists(png), "%s: script and data, no output", KIND[k]);
    }
    qd_err e = {0};
    qv_target t = {.fmt = QV_TEXT};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_EGNUPLOT && !t.text, "no gnuplot, text: %s", e.msg);
    ok(!strstr(e.msg, "wrote"), "text in a temporary directory: nothing kept: %s", e.msg);

    setenv("QDB_GNUPLOT", "/bin/false", 1);
    e = (qd_err){0};
    t = (qv_target){.path = OUT "/false.png", .fmt = QV_PNG};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_EGNUPLOT, "false: %s", e.msg);
    ok(strstr(e.msg, "gnuplot failed on " OUT "/false.gp: exit status 1") != NULL, "false: %s",
       e.msg);
    ok(!exists(OUT "/false.png") && exists(OUT "/false.gp"), "false: no output");

    /* a gnuplot that writes part of the output, then fails */
    const char *fake = OUT "/fake-gnuplot";
    const char *script = "#!/bin/sh\necho partial > " OUT "/partial.png\n"
                         "echo 'set output' >&2\n"
                         "echo '\"" OUT "/partial.gp\" line 12: boom' >&2\necho >&2\nexit 1\n";
    write_file(fake, script, strlen(script));
    chmod(fake, 0755);
    setenv("QDB_GNUPLOT", fake, 1);
    e = (qd_err){0};
    t = (qv_target){.path = OUT "/partial.png", .fmt = QV_PNG};
    ok(qv_plot_hist(&HIST, &t, &e) == QD_EGNUPLOT, "partial: %s", e.msg);
    ok(strstr(e.msg, "line 12: boom") != NULL, "partial: gnuplot's error line: %s", e.msg);
    ok(!exists(OUT "/partial.png"), "partial: output removed");
    unsetenv("QDB_GNUPLOT");
}

static void test_unwritable(void)
{
    qd_err e = {0};
    qv_target t = {.path = "/nonexistent-dir/x.png", .fmt = QV_PNG};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_EINPUT, "unwritable: %d", e.code);
    ok(strstr(e.msg, "cannot write /nonexistent-dir/x.gp") && strstr(e.msg, "No such file"),
       "unwritable: %s", e.msg);
    e = (qd_err){0};
    t = (qv_target){.path = NULL, .fmt = QV_PNG};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_EINPUT, "png without a path: %s", e.msg);
    e = (qd_err){0};
    t = (qv_target){.path = OUT "/x.gp", .fmt = QV_PNG};
    ok(qv_plot_sweep(&SWEEP, &t, &e) == QD_EINPUT, "output = script: %s", e.msg);
    e = (qd_err){0};
    ok(qv_plot_sweep(&SWEEP, NULL, &e) == QD_EINPUT, "no target");
    /* a NULL error is allowed */
    ok(qv_plot_sweep(&SWEEP, &t, NULL) == QD_EINPUT, "NULL qd_err");
}

/* Each bad input is refused with QD_EINPUT and writes nothing. */
static void test_bad_inputs(void)
{
    static const double one[] = {1};
    static const char *const nm[] = {"a"};
    static const int bits[] = {8};
    static const qv_curve nocurve = {"c", 2, NULL, one};
    const qv_ranges_plot r0 = {0}, r1 = {.before = {1, one, NULL, one}},
                         r2 = {.before = {1, one, one, one}, .after = {-1, one, one, one}};
    const qv_spread_plot s0 = {0, nm, one, NULL, 0}, s1 = {1, NULL, one, NULL, 0},
                         s2 = {1, nm, NULL, one, 0};
    const qv_sens_plot z0 = {0, nm, one, one, 0, 0, NULL}, z1 = {1, nm, NULL, NULL, 0, 0, NULL},
                       z2 = {1, NULL, one, one, 0, 0, NULL};
    const qv_sweep_plot w0 = {.ncurves = 0}, w1 = {.ncurves = 1, .curves = &nocurve},
                        w2 = {.ncurves = 1};
    const qv_grid_plot g0 = {0, 1, bits, bits, one, NULL}, g1 = {1, 1, bits, NULL, one, NULL},
                       g2 = {1, 1, bits, bits, NULL, NULL};
    const qv_hist_plot h0 = {.nbins = 0, .count = one, .lo = 0, .hi = 1},
                       h1 = {.nbins = 1, .count = one, .lo = 1, .hi = 1},
                       h2 = {.nbins = 1, .count = one, .lo = 0, .hi = 1, .nranges = 1},
                       h3 = {.nbins = 1, .count = NULL, .lo = 0, .hi = 1};
    const qv_sqnr_plot q0 = {0, nm, one, one}, q1 = {1, nm, NULL, NULL}, q2 = {1, NULL, one, one};

    unlink(OUT "/bad.gp");
    unlink(OUT "/bad.dat");
    qv_target t = {.path = OUT "/bad.png", .fmt = QV_PNG};
    int rc[] = {
        qv_plot_ranges(NULL, &t, NULL), qv_plot_ranges(&r0, &t, NULL),
        qv_plot_ranges(&r1, &t, NULL), qv_plot_ranges(&r2, &t, NULL),
        qv_plot_spread(NULL, &t, NULL), qv_plot_spread(&s0, &t, NULL),
        qv_plot_spread(&s1, &t, NULL), qv_plot_spread(&s2, &t, NULL),
        qv_plot_sensitivity(&z0, &t, NULL), qv_plot_sensitivity(&z1, &t, NULL),
        qv_plot_sensitivity(&z2, &t, NULL), qv_plot_sweep(&w0, &t, NULL),
        qv_plot_sweep(&w1, &t, NULL), qv_plot_sweep(&w2, &t, NULL),
        qv_plot_grid(&g0, &t, NULL), qv_plot_grid(&g1, &t, NULL),
        qv_plot_grid(&g2, &t, NULL), qv_plot_hist(&h0, &t, NULL),
        qv_plot_hist(&h1, &t, NULL), qv_plot_hist(&h2, &t, NULL),
        qv_plot_hist(&h3, &t, NULL), qv_plot_sqnr(&q0, &t, NULL),
        qv_plot_sqnr(&q1, &t, NULL), qv_plot_sqnr(&q2, &t, NULL),
    };
    for (size_t i = 0; i < sizeof rc / sizeof *rc; i++)
        ok(rc[i] == QD_EINPUT, "bad input %zu: %d", i, rc[i]);
    ok(!exists(OUT "/bad.gp") && !exists(OUT "/bad.dat"), "bad inputs write nothing");

    qd_err e = {0};
    ok(qv_plot_spread(&s0, &t, &e) == QD_EINPUT && strstr(e.msg, "spread") &&
           strstr(e.msg, "no layers"),
       "message: %s", e.msg);
}

static void test_formats(void)
{
    ok(qv_fmt_from_path("plots/x.png") == QV_PNG, "png");
    ok(qv_fmt_from_path("X.PNG") == QV_PNG, "PNG");
    ok(qv_fmt_from_path("a.b/c.Svg") == QV_SVG, "svg");
    ok(qv_fmt_from_path("r.pdf") == QV_PDF, "pdf");
    ok(qv_fmt_from_path("r.txt") == -1, "txt");
    ok(qv_fmt_from_path("plots.png/x") == -1, "dot in a directory");
    ok(qv_fmt_from_path("noext") == -1, "no extension");
    ok(qv_fmt_from_path(".png") == -1, "hidden file");
    ok(qv_fmt_from_path("x.png.gz") == -1, "png.gz");
    ok(qv_fmt_from_path("") == -1 && qv_fmt_from_path(NULL) == -1, "empty");
    ok(!strcmp(qv_fmt_name(QV_PNG), "png") && !strcmp(qv_fmt_name(QV_SIXEL), "sixel") &&
           !strcmp(qv_fmt_name(QV_NONE), "none") && !strcmp(qv_fmt_name((qv_fmt)99), "?"),
       "names");

    unsetenv("QDB_GNUPLOT");
    ok(!strcmp(qv_gnuplot(), "gnuplot"), "default gnuplot");
    setenv("QDB_GNUPLOT", "/opt/gp", 1);
    ok(!strcmp(qv_gnuplot(), "/opt/gp"), "QDB_GNUPLOT");
    unsetenv("QDB_GNUPLOT");
}

static void test_sixel_query(void)
{
    int fds[2];
    ok(pipe(fds) == 0, "pipe");
    setenv("QDB_SIXEL", "1", 1);
    ok(qv_term_sixel(fds[1], 10) == 1, "QDB_SIXEL=1");
    setenv("QDB_SIXEL", "0", 1);
    ok(qv_term_sixel(fds[1], 10) == 0, "QDB_SIXEL=0");
    unsetenv("QDB_SIXEL");
    ok(qv_term_sixel(fds[1], 10) == 0, "a pipe is no terminal");
    int dn = open("/dev/null", O_RDWR);
    ok(qv_term_sixel(dn, 10) == 0, "/dev/null is no terminal");
    close(dn);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const char *u = getenv("QDB_UPDATE_GOLDEN");
    update_golden = u && !strcmp(u, "1");
    mkdir("tests/out", 0755);
    mkdir(OUT, 0755);
    if (update_golden)
        mkdir("tests/golden", 0755), mkdir(GOLD, 0755);
    unsetenv("QDB_GNUPLOT");
    unsetenv("QDB_SIXEL");
    fill_many();

    int have = qv_gnuplot_has(QV_PNG) && qv_gnuplot_has(QV_SVG) && qv_gnuplot_has(QV_PDF) &&
               qv_gnuplot_has(QV_TEXT);
    if (!have)
        printf("note: gnuplot (with pngcairo, svg, pdfcairo, dumb) not found: rendering checks "
               "skipped\n");
    test_formats();
    test_sixel_query();
    test_png_and_goldens(have);
    test_layout();
    if (have) {
        test_svg_pdf();
        test_text();
        test_text_legible();
    }
    test_none();
    test_gnuplot_fails();
    test_unwritable();
    test_bad_inputs();
    return th_summary();
}
