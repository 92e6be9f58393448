/* kernels_conv.h - float32 NCHW convolution and matrix-product kernels:
 * optimized versions (im2col + OpenBLAS sgemm, Winograd, a direct depthwise
 * kernel, a single-output-pixel path, a small-plane path, sgemm + col2im for
 * the transpose) and plain reference loops beside them.
 *
 * All pointers are borrowed for the duration of the call; outputs are fully
 * written. A 1-D convolution is a 2-D one with h = oh = kh = 1. */
#ifndef QD_KERNELS_CONV_H
#define QD_KERNELS_CONV_H

#include <stdint.h>

#include "ops.h"

/* Geometry of one convolution (or transposed convolution).
 * Conv:          x (n, ci, h, w), w (co, ci/group, kh, kw), y (n, co, oh, ow);
 *                y[oy][ox] reads x[oy*sh - pt + ky*dh][ox*sw - pl + kx*dw].
 * ConvTranspose: x (n, ci, h, w), w (ci, co/group, kh, kw), y (n, co, oh, ow);
 *                x[iy][ix] feeds y[iy*sh - pt + ky*dh][ix*sw - pl + kx*dw].
 * The bottom/right padding is implied by oh/ow. Outputs are clamped to
 * [lo, hi] after the bias (a fused Relu/Clip; -INFINITY/INFINITY for none). */
typedef struct qd_conv_shape {
    int64_t n;          /* batch */
    int64_t ci, h, w;   /* input channels, height, width */
    int64_t co, oh, ow; /* output channels, height, width */
    int64_t kh, kw;     /* kernel */
    int64_t sh, sw;     /* strides, >= 1 */
    int64_t dh, dw;     /* dilations, >= 1 */
    int64_t pt, pl;     /* top and left padding, >= 0 */
    int64_t group;      /* divides ci and co */
    float lo, hi;       /* output clamp */
} qd_conv_shape;

/* Which optimized path qd_conv takes (for tests and benchmarks). */
typedef enum qd_conv_algo {
    QD_CONV_GEMM1X1,    /* 1x1, stride 1, no padding: sgemm straight on x */
    QD_CONV_IM2COL,     /* im2col tile + sgemm */
    QD_CONV_DEPTHWISE,  /* group == ci: direct kernel */
    QD_CONV_WINOGRAD,   /* 3x3, stride 1, dilation 1, group 1: F(2x2, 3x3) + 16 sgemms */
    QD_CONV_PIXEL,      /* oh == ow == 1: only the taps inside the plane; one sgemm over
                           the batch for group 1, a dot product per output otherwise */
    QD_CONV_PLANE,      /* group 1, small planes: one image's convolution as one matrix over
                           the input pixels read (zeros for taps outside the kernel), one
                           sgemm over the batch; at most 4x the weights */
} qd_conv_algo;

/* The algorithm qd_conv uses for s. */
qd_conv_algo qd_conv_pick(const qd_conv_shape *s);
/* 1 when algo can compute s (QD_CONV_IM2COL can compute any shape). */
int qd_conv_can(const qd_conv_shape *s, qd_conv_algo algo);

/* y = clamp(conv(x, w) + b); b (co) may be NULL. QD_EFAIL when scratch
 * memory cannot be had. ctx must not be NULL. */
int qd_conv(const qd_conv_shape *s, const float *x, const float *w, const float *b,
            float *y, qd_ctx *ctx);
/* qd_conv with a given algorithm (tests, benchmarks); QD_EINPUT when
 * !qd_conv_can(s, algo). */
int qd_conv_with(qd_conv_algo algo, const qd_conv_shape *s, const float *x, const float *w,
                 const float *b, float *y, qd_ctx *ctx);
/* Reference: direct loops over every output and tap, double accumulation. */
void qd_conv_ref(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                 float *y);

/* y = clamp(conv_transpose(x, w) + b); b (co) may be NULL. */
int qd_convt(const qd_conv_shape *s, const float *x, const float *w, const float *b,
             float *y, qd_ctx *ctx);
/* Reference: scatter every input element through every tap. */
void qd_convt_ref(const qd_conv_shape *s, const float *x, const float *w, const float *b,
                  float *y);

/* Row-major C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C, with
 * op(A) = A^T when ta (A stored (k, m)), likewise for B. beta == 0 ignores
 * C's contents. qd_sgemm calls OpenBLAS with its current thread count and
 * handles empty shapes itself; QD_EFAIL if a size exceeds BLAS's int. */
int qd_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc);
void qd_sgemm_ref(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb,
                  float beta, float *c, int64_t ldc);

#endif
