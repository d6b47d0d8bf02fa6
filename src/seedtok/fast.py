"""Fast CPU inference for encoding: dynamic int8 quantization of the frozen ViT.

The ViT is ~95% of SEED-1's encode FLOPs (EVA ViT-g, paper sec. 3.1) and is frozen, so its
Linear layers are quantized to int8 weights with per-batch activation scales
(``torch.ao.quantization.quantize_dynamic``); the Q-Former, codebook and everything after stay
fp32. Codes can differ from fp32 where two codebook entries are nearly tied;
``seedtok bench encode --int8`` reports the agreement.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from seedtok.models import SeedTokenizer


def int8_vision(model: SeedTokenizer, inplace: bool = False) -> SeedTokenizer:
    """Return a model whose ViT Linear layers run as dynamic int8 (CPU inference only)."""
    from torch.ao.quantization import quantize_dynamic

    target = model if inplace else copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks the quantized-tensor API as deprecated
        target.vision = quantize_dynamic(target.vision.eval(), {nn.Linear}, dtype=torch.qint8)
    return target.eval()


def sample_batch(size: int, batch: int) -> torch.Tensor:
    """``batch`` real photos (the bundled samples, shifted crops) preprocessed to ``size``."""
    from PIL import Image

    from seedtok.demo import SAMPLES
    from seedtok.image import normalize

    photos = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("*.png"))]
    out = []
    for i in range(batch):
        img = photos[i % len(photos)]
        s = 8 * (i // len(photos))
        out.append(normalize(img.crop((s, s, img.width - s, img.height - s)), size))
    return torch.stack(out)
