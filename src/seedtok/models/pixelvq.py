"""A VQ-VAE / VQGAN-style 2-D pixel tokenizer: the "2D pixel tokens" baseline of the ablation.

Not part of SEED. The paper (arXiv 2307.08041, sec. 1-2) argues that image tokens for an LLM
should be 1-D causal and semantic, *unlike* the 2-D grids of VQ-VAE/VQGAN codes trained only to
rebuild pixels; its pilot experiment captions with OPT-2.7B from VQ-VAE tokens (CIDEr 34.0)
against BEiT-v2 tokens (42.0), and SEED reaches 119.0. This module is that contrast in the tiny
world at SEED's budget: the same 32 tokens (a 4 x 8 grid in raster order) and codebook size.

image (B, 3, S, S), CLIP-normalised
 -> conv encoder (stride-2 stages, then a (S'/rows, S'/cols) stride)   (B, D, rows, cols)
 -> VQ codebook on the rows*cols latents, raster order                ids (B, 32)
 -> conv decoder (mirror), sigmoid                                    (B, 3, S, S) in [0, 1]
Loss: pixel MSE against the [0, 1] image + ``vq_weight`` * VQ loss. No perceptual or GAN loss
(VQGAN's): the shapes world is flat colours, which the scene parser reads from MSE reconstructions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from seedtok.config import CLIP_MEAN, CLIP_STD, CodebookConfig, ConfigError, _check, _from_dict
from seedtok.models.quantizer import VectorQuantizer, check_ids


@dataclass(frozen=True)
class PixelVQConfig:
    """Sizes of :class:`PixelVQTokenizer`. ``widths``: channels after each stride-2 stage, so
    the conv grid is ``image_size / 2**len(widths)``, then strided down to ``grid``."""

    image_size: int = 64
    grid: tuple[int, int] = (4, 8)
    widths: tuple[int, ...] = (16, 32, 64)
    codebook: CodebookConfig = field(
        default_factory=lambda: CodebookConfig(codebook_size=1024, codebook_dim=32, kind="cosine"))
    vq_weight: float = 0.25  # 1.0 collapses the codebook early (measured: train/pixelvq.py)
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        _check(type(self.image_size) is int and self.image_size > 0, "image_size must be a positive integer")
        _check(_positive_ints(self.grid) and len(self.grid) == 2,
               f"grid must be two positive integers, got {self.grid!r}")
        _check(_positive_ints(self.widths) and all(w % 8 == 0 for w in self.widths),
               f"widths must be positive multiples of 8 (GroupNorm), got {self.widths!r}")
        _check(isinstance(self.codebook, CodebookConfig), "codebook must be a CodebookConfig")
        _check(isinstance(self.vq_weight, (int, float)) and self.vq_weight >= 0, "vq_weight must be >= 0")
        _check(len(self.image_mean) == 3 and len(self.image_std) == 3 and min(self.image_std) > 0,
               "image_mean/image_std need 3 values, std > 0")
        side = self.image_size >> len(self.widths)
        _check(side << len(self.widths) == self.image_size and side % self.grid[0] == 0 and side % self.grid[1] == 0,
               f"image_size {self.image_size} / 2**{len(self.widths)} must be a whole multiple of grid {self.grid}")

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def last_stride(self) -> tuple[int, int]:
        side = self.image_size >> len(self.widths)
        return side // self.grid[0], side // self.grid[1]

    @property
    def vision(self) -> SimpleNamespace:
        """``vision.image_size``, as id caches and evaluators read it from a tokenizer config."""
        return SimpleNamespace(image_size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PixelVQConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"pixel_vq: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        _check(not unknown, f"pixel_vq: unknown keys {unknown}")
        kwargs = dict(data)
        if "codebook" in kwargs:
            kwargs["codebook"] = _from_dict(CodebookConfig, kwargs["codebook"], "pixel_vq.codebook")
        for name in ("grid", "widths", "image_mean", "image_std"):
            if name in kwargs:
                _check(isinstance(kwargs[name], (list, tuple)), f"pixel_vq.{name}: expected a list")
                kwargs[name] = tuple(kwargs[name])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"pixel_vq: {exc}") from exc


def _positive_ints(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(type(v) is int and v > 0 for v in value)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, c)


class ResBlock(nn.Sequential):
    """x + conv(act(norm(conv(act(norm(x)))))) at constant width (VQGAN's ResnetBlock, no dropout)."""

    def __init__(self, c: int) -> None:
        super().__init__(_norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), _norm(c), nn.SiLU(),
                         nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def _encoder(c: PixelVQConfig) -> nn.Sequential:
    """(B, 3, S, S) -> (B, D, rows, cols); no ResBlock at the first, highest-resolution stage
    (its CPU cost is the largest; the decoder mirrors this)."""
    layers: list[nn.Module] = []
    prev = 3
    for i, w in enumerate(c.widths):
        layers += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.SiLU()] + ([ResBlock(w)] if i else [])
        prev = w
    layers += [nn.Conv2d(prev, prev, c.last_stride, stride=c.last_stride), ResBlock(prev), _norm(prev), nn.SiLU(),
               nn.Conv2d(prev, c.codebook.codebook_dim, 1)]
    return nn.Sequential(*layers)


def _decoder(c: PixelVQConfig) -> nn.Sequential:
    """(B, D, rows, cols) -> (B, 3, S, S) logits; the mirror of :func:`_encoder`."""
    w = c.widths[-1]
    layers: list[nn.Module] = [nn.Conv2d(c.codebook.codebook_dim, w, 1), ResBlock(w),
                               nn.ConvTranspose2d(w, w, c.last_stride, stride=c.last_stride)]
    outs = list(reversed(c.widths[:-1])) + [3]
    for i, out in enumerate(outs):
        layers += [ResBlock(w)] if i < len(outs) - 1 else [_norm(w), nn.SiLU()]
        layers += [nn.ConvTranspose2d(w, out, 4, stride=2, padding=1)]
        w = out
    return nn.Sequential(*layers)


class PixelVQTokenizer(nn.Module):
    """Image -> 32 ids on a 2-D grid -> image (see module docstring). Drop-in for
    :class:`~seedtok.models.SeedTokenizer` where only ``encode`` and ``config`` are read
    (id caches); it decodes to pixels directly, with no diffusion model."""

    def __init__(self, config: PixelVQConfig = PixelVQConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = _encoder(config)
        self.quantizer = VectorQuantizer(config.codebook)
        self.decoder = _decoder(config)
        self.register_buffer("mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)

    def latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised -> encoder outputs (B, 32, D) in raster order."""
        return self.encoder(pixel_values).flatten(2).transpose(1, 2)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """code vectors (B, 32, D) -> pixels (B, 3, S, S) in [0, 1]."""
        rows, cols = self.config.grid
        grid = codes.transpose(1, 2).reshape(codes.shape[0], -1, rows, cols)  # (B, D, rows, cols)
        return torch.sigmoid(self.decoder(grid))

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(B, 3, S, S) normalised -> (ids (B, 32) int64, None); the second slot is where
        :meth:`SeedTokenizer.encode` returns its causal embeddings (none here)."""
        return self.quantizer.nearest(self.latents(pixel_values)), None

    @torch.no_grad()
    def decode_pixels(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, 32) or (32,) in [0, codebook_size) -> (B, 3, S, S) float in [0, 1]."""
        ids = check_ids(ids, self.config.num_tokens)
        return self.decode_codes(self.quantizer.lookup(ids))

    def decode_images(self, ids: torch.Tensor) -> list[Image.Image]:
        """ids (B, 32) -> B PIL RGB images."""
        arr = (self.decode_pixels(ids).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
        return [Image.fromarray(a, "RGB") for a in arr]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training step outputs; ``_ids``/``_z`` feed :class:`~seedtok.train.codebook.CodebookMonitor`."""
        x = batch["pixel_values"]  # (B, 3, S, S) normalised
        target = (x * self.std + self.mean).clamp(0, 1)
        z = self.latents(x)  # (B, 32, D)
        q = self.quantizer(z)
        pixels = self.decode_codes(q.quantized)
        mse = F.mse_loss(pixels, target)
        return {
            "loss": mse + self.config.vq_weight * q.loss,
            "mse": mse.detach(),
            "vq": q.loss.detach(),
            "batch_perplexity": q.perplexity.detach(),
            "_ids": q.ids.detach(),
            "_z": z.detach(),
        }
