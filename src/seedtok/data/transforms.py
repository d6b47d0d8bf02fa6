"""Image and caption transforms for training and evaluation.

Following the SEED reference training data pipeline (BLIP-2 style; paper sec. 4.1 trains on
CC3M, Unsplash, WebVid and COCO captions): random resized crop (scale 0.5-1.0, bicubic) then
CLIP normalisation for training, a plain bicubic resize + CLIP normalisation for evaluation.
Horizontal flip is off by default because it makes "left"/"right" in captions wrong.
Only Pillow and torch are used (no torchvision); random draws come from torch's generator,
which DataLoader seeds per worker.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch
from PIL import Image

from seedtok.config import CLIP_MEAN, CLIP_STD
from seedtok.image import normalize

_STRIP_CHARS = re.compile(r"[.!\"()*#:;~]")


def clean_caption(text: str, max_words: int = 50) -> str:
    """Reference caption cleaning: lower-case, replace ``.!"()*#:;~`` by spaces, collapse
    whitespace, keep at most ``max_words`` words."""
    words = _STRIP_CHARS.sub(" ", text.lower()).split()
    return " ".join(words[:max_words])


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


class TrainTransform:
    """RGB PIL image -> (3, size, size): RandomResizedCrop(scale, ratio, bicubic), optional
    horizontal flip, CLIP normalisation."""

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = False,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        generator: torch.Generator | None = None,
    ) -> None:
        self.size, self.scale, self.ratio, self.hflip = size, scale, ratio, hflip
        self.mean, self.std, self.generator = tuple(mean), tuple(std), generator

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a random crop with area fraction in ``scale`` and
        aspect ratio log-uniform in ``ratio``; a centre crop after 10 failed tries."""
        area = width * height
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(*self.scale, self.generator)
            aspect = math.exp(_uniform(log_lo, log_hi, self.generator))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left = int(torch.randint(0, width - w + 1, (), generator=self.generator))
                top = int(torch.randint(0, height - h + 1, (), generator=self.generator))
                return left, top, left + w, top + h
        aspect = width / height
        w, h = (width, height)
        if aspect < self.ratio[0]:
            h = int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            w = int(round(height * self.ratio[1]))
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h

    def __call__(self, img: Image.Image) -> torch.Tensor:
        box = self.crop_box(*img.size)
        img = img.resize((self.size, self.size), Image.BICUBIC, box=box)
        if self.hflip and float(torch.rand((), generator=self.generator)) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return normalize(img, self.size, self.mean, self.std)

    def __repr__(self) -> str:
        return f"TrainTransform(size={self.size}, scale={self.scale}, ratio={self.ratio}, hflip={self.hflip})"


class EvalTransform:
    """RGB PIL image -> (3, size, size): bicubic resize (aspect not kept, as the reference)
    and CLIP normalisation."""

    def __init__(self, size: int, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return normalize(img, self.size, self.mean, self.std)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"


def train_transform(image_size: int, **kwargs) -> TrainTransform:
    """The training transform for images of side ``image_size`` (see :class:`TrainTransform`)."""
    return TrainTransform(image_size, **kwargs)


def eval_transform(image_size: int, **kwargs) -> EvalTransform:
    """The evaluation transform for images of side ``image_size``."""
    return EvalTransform(image_size, **kwargs)
