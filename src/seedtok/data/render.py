"""Deterministic, anti-aliased rendering of shapes-world scenes, and a tiny PNG encoder.

Coverage is computed analytically on a k x k grid of sample points per pixel (supersampling,
default 4x4) with float64 inside-tests on vertices rounded to 1/4096 px, then blended in
integer arithmetic, so the pixels (and, through :func:`encode_png`, the bytes) do not depend
on the Pillow version, the libm or the machine.

Geometry (a future generator can reproduce it from these numbers): an image of side S is a
3x3 grid of cells of side S/3; an object is centred in its cell and fills a d x d box with
d = SIZE_FRACTION[size] * S (12 or 20 px at S = 64). The triangle has base d and height d and
points up; the diamond's corners touch the box sides; the five-pointed star (inner/outer
radius 0.5) points up, is d wide and 0.951 d tall, and is centred on its box.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
from PIL import Image

from seedtok.data.scene import BACKGROUNDS, COLORS, POSITIONS, SIZE_FRACTION, Scene

SUPERSAMPLE = 4
_Q = 4096.0  # vertex quantum


def _q(v: float) -> float:
    return round(v * _Q) / _Q


def _star_vertices() -> list[tuple[float, float]]:
    r_in = 0.5  # chunkier than the regular star (0.382) so the points survive at 12 px
    outer = 1.0 / math.sin(math.radians(72))  # width 2 in unit coordinates
    shift = outer * (1 - math.cos(math.radians(36))) / 2  # centre the bounding box vertically
    pts = []
    for i in range(10):
        rad = outer if i % 2 == 0 else outer * r_in
        ang = math.radians(-90 + 36 * i)
        pts.append((_q(rad * math.cos(ang)), _q(rad * math.sin(ang) + shift)))
    return pts


# Unit polygons in a box [-1, 1]^2, y pointing down.
POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
    "triangle": [(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
    "diamond": [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)],
    "star": _star_vertices(),
}


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test in unit coordinates (even-odd rule for polygons)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    pts = POLYGONS[shape]
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_at = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < x_at)
    return inside


def unit_moments(shape: str, n: int = 400) -> tuple[float, float, float]:
    """Area and centroid (u, v) of a shape in unit coordinates (its box is [-1, 1]^2),
    measured on an n x n grid of sample points."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n * 2.2 - 1.1
    u, v = np.meshgrid(t, t)
    hit = _inside(shape, u, v)
    area = float(hit.mean()) * 2.2 * 2.2
    return area, float(u[hit].mean()), float(v[hit].mean())


def cell_center(position: str, size: int) -> tuple[float, float]:
    """(x, y) centre of a grid cell in pixel coordinates of an image of side ``size``."""
    row, col = divmod(POSITIONS.index(position), 3)
    return (col + 0.5) * size / 3.0, (row + 0.5) * size / 3.0


def coverage_counts(shape: str, cx: float, cy: float, extent: float, box: tuple[int, int, int, int], k: int = SUPERSAMPLE) -> np.ndarray:
    """Number of the k*k sample points of each pixel inside the shape, over the pixel window
    ``box = (y0, x0, h, w)``. Returns (h, w) int64 in [0, k*k]."""
    y0, x0, h, w = box
    offs = (np.arange(k, dtype=np.float64) + 0.5) / k
    xs = (x0 + np.arange(w, dtype=np.float64))[:, None] + offs[None, :]  # (w, k)
    ys = (y0 + np.arange(h, dtype=np.float64))[:, None] + offs[None, :]  # (h, k)
    half = extent / 2.0
    u = ((xs.reshape(-1) - cx) / half)[None, :]
    v = ((ys.reshape(-1) - cy) / half)[:, None]
    u, v = np.broadcast_arrays(u, v)  # (h*k, w*k)
    hit = _inside(shape, u, v).reshape(h, k, w, k)
    return hit.sum(axis=(1, 3)).astype(np.int64)


def shape_coverage(shape: str, cx: float, cy: float, extent: float, box: tuple[int, int, int, int], k: int = SUPERSAMPLE) -> np.ndarray:
    """Fractional coverage in [0, 1] over ``box`` (see :func:`coverage_counts`)."""
    return coverage_counts(shape, cx, cy, extent, box, k) / float(k * k)


def render_array(scene: Scene, image_size: int = 64, k: int = SUPERSAMPLE) -> np.ndarray:
    """Scene -> (S, S, 3) uint8, anti-aliased by k x k supersampling."""
    bg = np.array(BACKGROUNDS[scene.background], dtype=np.int64)
    img = np.broadcast_to(bg, (image_size, image_size, 3)).copy()
    kk = k * k
    for o in scene.objects:
        cx, cy = cell_center(o.position, image_size)
        extent = SIZE_FRACTION[o.size] * image_size
        x0, y0 = max(int(math.floor(cx - extent / 2)) - 1, 0), max(int(math.floor(cy - extent / 2)) - 1, 0)
        x1 = min(int(math.ceil(cx + extent / 2)) + 1, image_size)
        y1 = min(int(math.ceil(cy + extent / 2)) + 1, image_size)
        n = coverage_counts(o.shape, cx, cy, extent, (y0, x0, y1 - y0, x1 - x0), k)[..., None]
        color = np.array(COLORS[o.color], dtype=np.int64)
        region = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = (region * (kk - n) + color * n + kk // 2) // kk
    return img.astype(np.uint8)


def render_scene(scene: Scene, image_size: int = 64) -> Image.Image:
    """Scene -> RGB PIL image of side ``image_size`` (default 64)."""
    return Image.fromarray(render_array(scene, image_size), "RGB")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(arr: np.ndarray, level: int = 9) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (8-bit RGB, "Sub" filter on every row). Only the stdlib
    zlib is involved, so the bytes do not change with the Pillow version."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"encode_png expects (H, W, 3) uint8, got {arr.dtype} {arr.shape}")
    h, w, _ = arr.shape
    sub = arr.astype(np.int16)
    sub[:, 1:] -= arr[:, :-1].astype(np.int16)
    rows = np.concatenate([np.ones((h, 1), np.uint8), (sub % 256).astype(np.uint8).reshape(h, w * 3)], axis=1)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b"")
