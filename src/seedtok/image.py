"""The one image-loading path of seedtok: files, bytes, PIL images or arrays -> RGB -> tensor.

Preprocessing follows the SEED-1 reference: bicubic resize to the model's square size
(aspect ratio not kept), scale to [0, 1], normalise with the CLIP mean/std.
Every PIL mode is mapped to RGB (alpha composited on a white background; 16-bit and float
images rescaled from their own range), EXIF orientation is applied, and images over
``MAX_PIXELS`` are refused before decoding (decompression-bomb guard).
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from seedtok.config import CLIP_MEAN, CLIP_STD

MAX_PIXELS = 64 * 1024 * 1024  # 64 megapixels
BACKGROUND = (255, 255, 255)

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class ImageError(ValueError):
    """An input that is not a usable image (unreadable, truncated, too large, empty)."""


def _open(source: str | os.PathLike | bytes, name: str) -> Image.Image:
    data: io.BytesIO | str | os.PathLike = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(data)
            _check_size(img, name)
            img.load()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: image too large ({exc})") from None
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{name}: image too large to decode in memory") from None
    except Exception as exc:  # PIL raises many types on malformed data (struct.error, EOFError, ...)
        raise ImageError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return img


def _check_size(img: Image.Image, name: str) -> None:
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name}: {w}x{h} = {w * h} pixels exceeds the limit of {MAX_PIXELS}")


def _array_to_pil(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or arr.size == 0:
        raise ImageError(f"{name}: expected an (H, W), (H, W, 1|3|4) array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError(f"{name}: array has non-finite values")
        hi = 1.0 if a.max() <= 1.0 and a.min() >= 0.0 else float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
        arr = np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Any PIL mode -> RGB. Alpha (RGBA, LA, P with transparency) is composited on white."""
    try:
        return _to_rgb(img)
    except Exception as exc:  # an exotic or inconsistent mode PIL cannot convert
        raise ImageError(f"{name}: cannot convert mode {img.mode} to RGB ({type(exc).__name__}: {exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(a.max()), 1.0)
        if img.mode == "F":
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        else:
            a = a / hi
        img = Image.fromarray(np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def load_image(source: ImageInput, name: str | None = None) -> Image.Image:
    """Load any supported input as an RGB PIL image with EXIF orientation applied."""
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__)
    if isinstance(source, Image.Image):
        _check_size(source, label)
        img = source
    elif isinstance(source, np.ndarray):
        img = _array_to_pil(source, label)
    elif isinstance(source, (str, os.PathLike, bytes)):
        img = _open(source, label)
    else:
        raise ImageError(f"{label}: unsupported image input of type {type(source).__name__}")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make a readable image unusable
        pass
    return to_rgb(img, label)


def normalize(
    img: Image.Image, size: int, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
    resample: str = "bicubic",
) -> torch.Tensor:
    """RGB PIL image -> (3, size, size) float32: bicubic (or ``resample='bilinear'``) resize,
    /255, (x - mean) / std."""
    if resample not in ("bicubic", "bilinear"):
        raise ValueError(f"resample must be 'bicubic' or 'bilinear', got {resample!r}")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC if resample == "bicubic" else Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0  # (H, W, 3)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - m) / s


def preprocess(
    images: ImageInput | Sequence[ImageInput],
    size: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> torch.Tensor:
    """One or many images -> (B, 3, size, size) pixel values for :class:`SeedTokenizer`."""
    if isinstance(images, (str, os.PathLike, bytes, Image.Image, np.ndarray)):
        images = [images]
    if len(images) == 0:
        raise ImageError("no images given")
    return torch.stack([normalize(load_image(im), size, mean, std) for im in images])
