/* data.h - datasets (Fashion-MNIST / IDX, NPY, image folders) served as
 * float32 N x C x H x W batches with optional integer labels. */
#ifndef QD_DATA_H
#define QD_DATA_H

#include <stdint.h>

#include "tensor.h"

/* Where Debian's dataset-fashion-mnist puts the files. */
#ifndef QD_FASHION_MNIST_DIR
#define QD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#endif

/* Preprocessing; all-zero means the defaults. Order, as torchvision's
 * Resize + CenterCrop + ToTensor + Normalize on a PIL image:
 *   decode -> gray (luma) -> resize -> center crop -> scale -> (x - mean) / std.
 * resize, crop, gray and bgr apply to image folders only (QD_EINPUT on other
 * sources); no_scale, mean and std apply to every source. */
typedef struct qd_data_opts {
    int resize;    /* shorter side to this many pixels, antialiased bilinear (PIL's); 0 = keep */
    int crop;      /* center crop to crop x crop pixels; 0 = none (then all images must share a size) */
    int gray;      /* 1 channel (ITU-R 601 luma, as PIL's "L") instead of 3 RGB channels */
    int bgr;       /* channel order B, G, R instead of R, G, B */
    int no_scale;  /* keep 8-bit pixels in 0..255 instead of scaling to [0, 1] */
    float mean[3]; /* per channel, subtracted after scaling (1-channel data uses mean[0]) */
    float std[3];  /* per channel divisor after the mean; 0 means 1 */
} qd_data_opts;

typedef struct qd_dataset qd_dataset;

/* Open a dataset from spec:
 *   fashion-mnist[:test|:train]  Debian's Fashion-MNIST (test split by default)
 *   idx:IMAGES[,LABELS]          IDX files, gzipped or not; images N x H x W (or N x C x H x W)
 *   npy:IMAGES[,LABELS]          NPY float32 or uint8, N x C x H x W or N x H x W (C order);
 *                                labels int64, int32 or uint8, shape (N,)
 *   imagefolder:DIR              DIR/<class>/<image>.{png,jpg,jpeg}; classes sorted by name
 *                                (strcmp) give label indices, images sorted by name in a class
 * uint8 pixels are scaled to [0, 1] unless o->no_scale. o may be NULL
 * (defaults) and is copied. IDX data is read into memory; NPY images are
 * read per batch (labels at open); image folders are listed at open (their
 * first image is decoded for the sample shape) and decoded per batch.
 * Bad input (bad magic, truncated file, count mismatch, wrong dtype or rank,
 * non-image file in a class folder) is QD_EINPUT naming the file and reason.
 * Returns NULL on error. The caller owns the dataset (qd_data_free). */
qd_dataset *qd_data_open(const char *spec, const qd_data_opts *o, qd_err *e);
/* d may be NULL. */
void qd_data_free(qd_dataset *d);

/* Number of samples in the (possibly limited) set. */
int64_t qd_data_count(const qd_dataset *d);
int qd_data_has_labels(const qd_dataset *d);
/* C, H, W of one sample after preprocessing (compare with the model input). */
void qd_data_sample_shape(const qd_dataset *d, int64_t chw[3]);
/* Class count and names: image folders name their classes; other sources
 * return NULL names and 1 + the largest label (0 without labels). The name
 * is borrowed and lives as long as d. */
int qd_data_nclasses(const qd_dataset *d);
const char *qd_data_class_name(const qd_dataset *d, int cls);

/* Keep a seeded random subset of n samples of the current set (n >= count
 * keeps all, in order; n < 0 is QD_EINPUT). The subset is the first n of a
 * permutation made by a partial Fisher-Yates shuffle driven by splitmix64:
 *   state = seed; next() { z = (state += 0x9e3779b97f4a7c15);
 *     z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb;
 *     return z ^ z >> 31; }
 *   for i in 0..n-1: j = i + uniform(count - i); swap(idx[i], idx[j])
 * where uniform(m) draws r = next() until r < 2^64 - (2^64 mod m) and returns
 * r mod m. The same seed gives the same subset, in the same order, on every
 * machine. Calls compose: a second call picks from the first's subset. */
int qd_data_limit(qd_dataset *d, int64_t n, uint64_t seed, qd_err *e);

/* Samples [start, start + n) of the (possibly limited) set as float32
 * n x C x H x W into x (resized with qd_tensor_resize; x keeps ownership).
 * labels, when not NULL, receives n labels (-1 each without labels).
 * A sample that fails to decode or has a different shape is QD_EINPUT naming
 * the file and the sample index. */
int qd_data_batch(qd_dataset *d, int64_t start, int64_t n, qd_tensor *x, int64_t *labels, qd_err *e);

/* SHA-256 of the (possibly limited) set as read: every sample's float32
 * values (little-endian on the machines qdb runs on) and its label as
 * int64, in order, in batches of 256. Fingerprints the data a session
 * recorded: spec, subset and preprocessing all change it. */
int qd_data_sha256(qd_dataset *d, char hex[65], qd_err *e);

/* One line, e.g. "fashion-mnist test (10000 images 1x28x28, labels)";
 * borrowed, valid until the next qd_data_limit or qd_data_free. */
const char *qd_data_describe(const qd_dataset *d);

/* IDX files (gzipped or not; magic 0 0 TYPE NDIM, big-endian dims and data):
 * read path into t in native byte order (t owns its data). Types: ubyte,
 * sbyte, short, int, float, double. Header-claimed sizes are checked against
 * the file before allocating (for gzip, against what its size can hold). */
int qd_idx_read(const char *path, qd_tensor *t, qd_err *e);
/* The same from memory (size bytes at buf, borrowed for the call, gzipped or
 * not); name is used in messages. */
int qd_idx_read_mem(const void *buf, size_t size, const char *name, qd_tensor *t, qd_err *e);

/* Decode the PNG or JPEG at path (by its magic bytes) and preprocess it per
 * o (NULL = defaults) into t: float32 C x H x W (t keeps ownership). */
int qd_image_read(const char *path, const qd_data_opts *o, qd_tensor *t, qd_err *e);

/* Scale (when from_u8 and not o->no_scale: / 255) and normalize c planes of
 * hw floats at x in place, per o's mean and std. */
void qd_data_normalize(float *x, int64_t c, int64_t hw, int from_u8, const qd_data_opts *o);

#endif
