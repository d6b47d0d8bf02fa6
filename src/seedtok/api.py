"""High-level entry points used by the CLI and by users: get a tokenizer, encode images."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import torch

from seedtok.checkpoint import from_pretrained
from seedtok.config import get_preset
from seedtok.image import ImageError, ImageInput, load_image, normalize
from seedtok.models import SeedTokenizer

log = logging.getLogger(__name__)


def load_tokenizer(
    model_dir: str | os.PathLike | None = None, preset: str = "tiny", seed: int = 0, int8: bool = False
) -> SeedTokenizer:
    """A trained model from ``model_dir`` (``save_pretrained`` layout), or else a randomly
    initialised ``preset`` (seeded, so its ids are reproducible; useful for plumbing only).
    ``int8``: the ViT's Linear layers in int8 for CPU inference (:mod:`seedtok.fast`); from
    ``model_dir`` they are quantized while loading, so no fp32 copy of the ViT is ever held."""
    from seedtok.fast import load_int8, quantize_vision_

    if model_dir is not None:
        return load_int8(model_dir) if int8 else from_pretrained(model_dir)
    from seedtok.models.seed2 import build_tokenizer

    config = get_preset(preset)
    torch.manual_seed(seed)
    model = build_tokenizer(config).eval()  # SeedTokenizer, or Seed2Tokenizer for preset seed2
    return quantize_vision_(model) if int8 else model


@dataclass
class EncodeResult:
    name: str
    ids: list[int] | None
    error: str | None = None


def encode_images(
    model: SeedTokenizer, images: Sequence[ImageInput], names: Sequence[str] | None = None, batch_size: int = 8
) -> list[EncodeResult]:
    """Encode images to their ``num_tokens`` ids. An unreadable image gets an ``error`` entry
    instead of ids; the others are still encoded."""
    names = list(names) if names is not None else [str(i) for i in range(len(images))]
    size = model.config.vision.image_size
    results: list[EncodeResult] = []
    ready: list[tuple[int, torch.Tensor]] = []
    for i, (img, name) in enumerate(zip(images, names)):
        try:
            cfg = model.config  # a SEED-2 config may ask for the reference scripts' bilinear resize
            ready.append((i, normalize(load_image(img, name), size, cfg.image_mean, cfg.image_std, getattr(cfg, "resample", "bicubic"))))
            results.append(EncodeResult(name, None))
        except ImageError as exc:
            results.append(EncodeResult(name, None, str(exc)))
    for start in range(0, len(ready), batch_size):
        chunk = ready[start : start + batch_size]
        ids, _ = model.encode(torch.stack([t for _, t in chunk]))
        for (i, _), row in zip(chunk, ids):
            results[i].ids = row.tolist()
    return results
