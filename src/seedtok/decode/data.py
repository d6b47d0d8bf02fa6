"""Training and evaluation data of the text-to-image stand-in: shapes-world images as uint8 and
the frozen MiniLM states of their captions (the condition, as CLIP-L's states are SD's)."""

from __future__ import annotations

from typing import Any

import torch

GENERATION_LEN = 32  # tokens of MiniLM state per caption: the tiny preset's generation_len


def to_uint8(pixels: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """Normalised pixels (N, 3, S, S) -> uint8 (the compact in-memory training form)."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((pixels * s + m).clamp(0, 1) * 255).round().to(torch.uint8)


def decoder_data(data: str, split: str, cache_dir: str | None, limit: int | None = None, progress: bool = False,
                 states: bool = True):
    """(tensors {'pixels' uint8, 'states' fp16 (N, 32, 384)}, ImageTextSet) of a shapes split;
    MiniLM states come from the shared on-disk cache (keyed by the split's caption set)."""
    from seedtok.config import CLIP_MEAN, CLIP_STD
    from seedtok.text import cached_text_states
    from seedtok.train.data import load_image_text
    from seedtok.train.runs import default_cache

    dataset = load_image_text(data, split, 64, limit)
    tensors = {"pixels": to_uint8(dataset.pixels, CLIP_MEAN, CLIP_STD)}
    if states:
        text, _ = cached_text_states(dataset.captions, GENERATION_LEN, default_cache(data, cache_dir), progress=progress)
        tensors["states"] = text.half()
    return tensors, dataset


def empty_states(data: str, cache_dir: str | None) -> torch.Tensor:
    """(1, 32, 384) MiniLM states of the empty string: the unconditional embedding."""
    from seedtok.text import cached_text_states
    from seedtok.train.runs import default_cache

    return cached_text_states([""], GENERATION_LEN, default_cache(data, cache_dir))[0][:1].float()
