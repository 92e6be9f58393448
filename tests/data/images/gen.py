#!/usr/bin/python3
"""gen.py - makes the image-folder fixtures for tests/test_data.c (run from the
repo root: /usr/bin/python3 tests/data/images/gen.py). Needs numpy and PIL
(Debian: python3-numpy, python3-pil). Deterministic: rerunning rewrites the
same bytes (PIL's JPEG encoder is libjpeg's).

  set/a_color/0.png  RGB PNG 8x6 (written with zlib here), pixels in ref/a0.npy
  set/a_color/1.jpg  RGB JPEG 8x6 (quality 95), PIL's decode in ref/a1.npy
  set/b_gray/0.png   grayscale PNG 8x6, pixels in ref/b0.npy
  set/b_gray/1.jpeg  grayscale JPEG 8x6, PIL's decode in ref/b1.npy
  photo.png          RGB 37x23 smooth pattern for the preprocessing tests;
                     ref/photo_r10c8.npy = PIL Resize(10, bilinear) + CenterCrop(8) (HWC uint8)
                     ref/photo_gray_r12.npy = convert("L") + Resize(12) (HW uint8)
Bad fixtures go to tests/data/bad_data/ (see the list at the end).
"""
import gzip, os, struct, zlib
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(ROOT, "..", "bad_data")


def png_bytes(a):
    """a: HxW (gray) or HxWx3 (RGB) uint8 -> PNG file bytes."""
    h, w = a.shape[:2]
    ctype = 0 if a.ndim == 2 else 2
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def jpeg(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(a).save(path, quality=95)
    return np.asarray(Image.open(path))


def idx(a, code=0x08):
    return struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


def main():
    y, x = np.mgrid[0:6, 0:8]
    rgb = np.stack([x * 30 + 5, y * 40 + 10, (x * y * 7) % 256], -1).astype(np.uint8)
    gray = ((x * 31 + y * 17) % 256).astype(np.uint8)
    ref = os.path.join(ROOT, "ref")
    os.makedirs(ref, exist_ok=True)
    write(os.path.join(ROOT, "set/a_color/0.png"), png_bytes(rgb))
    np.save(os.path.join(ref, "a0.npy"), rgb)
    np.save(os.path.join(ref, "a1.npy"), jpeg(os.path.join(ROOT, "set/a_color/1.jpg"), rgb[::-1].copy()))
    write(os.path.join(ROOT, "set/b_gray/0.png"), png_bytes(gray))
    np.save(os.path.join(ref, "b0.npy"), gray)
    np.save(os.path.join(ref, "b1.npy"), jpeg(os.path.join(ROOT, "set/b_gray/1.jpeg"), gray[:, ::-1].copy()))

    py, px = np.mgrid[0:23, 0:37]
    photo = np.stack([128 + 100 * np.sin(px / 5.0), 128 + 90 * np.cos(py / 4.0),
                      (px * 5 + py * 3) % 256], -1).astype(np.uint8)
    write(os.path.join(ROOT, "photo.png"), png_bytes(photo))
    im = Image.fromarray(photo)
    r = im.resize((int(10 * 37 / 23), 10), Image.BILINEAR)        # torchvision Resize(10)
    w, h = r.size
    top, left = int(round((h - 8) / 2.0)), int(round((w - 8) / 2.0))
    np.save(os.path.join(ref, "photo_r10c8.npy"), np.asarray(r.crop((left, top, left + 8, top + 8))))
    g = im.convert("L").resize((int(12 * 37 / 23), 12), Image.BILINEAR)
    np.save(os.path.join(ref, "photo_gray_r12.npy"), np.asarray(g))

    # bad fixtures
    imgs = (np.arange(5 * 4 * 4) % 251).astype(np.uint8).reshape(5, 4, 4)
    write(os.path.join(BAD, "bad_magic.idx"), b"\x01\x02" + idx(imgs)[2:])
    write(os.path.join(BAD, "short.idx"), idx(np.zeros((100, 8, 8), np.uint8))[:16 + 30 * 64])
    write(os.path.join(BAD, "short.idx.gz"), gzip.compress(idx(np.zeros((100, 8, 8), np.uint8))[:16 + 30 * 64], mtime=0))
    full = gzip.compress(idx(imgs), mtime=0)
    write(os.path.join(BAD, "cut.idx.gz"), full[: len(full) // 2])
    write(os.path.join(BAD, "images5.idx"), idx(imgs))
    write(os.path.join(BAD, "labels4.idx"), idx(np.arange(4, dtype=np.uint8)))
    np.save(os.path.join(BAD, "images_int16.npy"), imgs.astype(np.int16))
    np.save(os.path.join(BAD, "images_rank2.npy"), imgs.reshape(5, 16).astype(np.float32))
    np.save(os.path.join(BAD, "labels_float.npy"), np.arange(5, dtype=np.float32))
    np.save(os.path.join(BAD, "labels4.npy"), np.arange(4, dtype=np.int64))
    np.save(os.path.join(BAD, "images5.npy"), imgs.astype(np.float32))
    write(os.path.join(BAD, "notimage/a/0.png"), png_bytes(gray))
    write(os.path.join(BAD, "notimage/a/readme.txt"), b"not an image\n")
    good = png_bytes(gray)
    write(os.path.join(BAD, "corruptpng/a/0.png"), good)
    bad = bytearray(good)
    i = bad.index(b"IDAT") + 8
    bad[i:i + 6] = b"\xde\xad\xbe\xef\x00\x11"
    write(os.path.join(BAD, "corruptpng/a/1.png"), bytes(bad))
    write(os.path.join(BAD, "corruptjpg/a/0.png"), good)
    with open(os.path.join(ROOT, "set/b_gray/1.jpeg"), "rb") as f:
        j = f.read()
    write(os.path.join(BAD, "corruptjpg/a/1.jpg"), j[: len(j) * 2 // 3])
    write(os.path.join(BAD, "fakepng/a/0.png"), b"GIF89a not really a png")


if __name__ == "__main__":
    main()
