"""Vector quantizer (paper sec. 3.1: "VQ codebook"), the taming-transformers VQ of SEED-1.

``kind='reference'``: nearest code by squared Euclidean distance ||z||^2 + ||e||^2 - 2 z.e,
straight-through estimator, loss ``mse(sg(zq), z) + beta * mse(zq, sg(z))`` (taming's
"legacy" weighting, which SEED-1 keeps). ``kind='cosine'``: codes and inputs L2-normalised
before the lookup (an improved codebook for new training runs; not used by SEED-1).
Quantization always runs in fp32, outside autocast.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.config import CodebookConfig


class TokenIdError(ValueError):
    """Token ids that are not valid codes (wrong dtype, out of range, wrong shape)."""


def check_ids(ids: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Token ids of one image (num_tokens,) or a batch (B, num_tokens) -> (B, num_tokens); the
    range check is :meth:`VectorQuantizer.lookup`'s."""
    if not isinstance(ids, torch.Tensor):
        raise TokenIdError(f"token ids must be a tensor, got {type(ids).__name__}")
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.dim() != 2 or ids.shape[1] != num_tokens or ids.shape[0] == 0:
        raise TokenIdError(f"expected ids of shape (B, {num_tokens}), got {tuple(ids.shape)}")
    return ids


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor  # (B, N, D), straight-through in training
    ids: torch.Tensor  # (B, N) int64
    loss: torch.Tensor  # scalar
    perplexity: torch.Tensor  # scalar: exp(entropy of the batch's code histogram)
    usage: torch.Tensor  # (codebook_size,) int64 counts in this batch


class VectorQuantizer(nn.Module):
    def __init__(self, config: CodebookConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.codebook_size, config.codebook_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        n = self.config.codebook_size
        nn.init.uniform_(self.embedding.weight, -1.0 / n, 1.0 / n)

    def _prepare(self, z: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.kind == "cosine":
            return F.normalize(z, dim=-1), F.normalize(codes, dim=-1)
        return z, codes

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> ids (...) of the nearest code."""
        flat, codes = self._prepare(z.reshape(-1, z.shape[-1]).float(), self.embedding.weight.float())
        dist = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * flat @ codes.t()  # (BN, K)
        return dist.argmin(dim=1).view(z.shape[:-1])

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> code vectors (..., D) as the decoder sees them."""
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int16, torch.int32, torch.int64, torch.uint8):
            raise TokenIdError(f"token ids must be an integer tensor, got {getattr(ids, 'dtype', type(ids).__name__)}")
        n = self.config.codebook_size
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            bad = ids[(ids < 0) | (ids >= n)].unique()[:8].tolist()
            raise TokenIdError(f"token ids must lie in [0, {n}); got {bad}")
        codes = self.embedding(ids.long())
        return F.normalize(codes, dim=-1) if self.config.kind == "cosine" else codes

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z (B, N, D) -> quantized (B, N, D), ids (B, N), loss, perplexity, usage."""
        with torch.autocast(device_type="cuda" if z.is_cuda else "cpu", enabled=False):
            z = z.float()
            ids = self.nearest(z)
            zq = self.lookup(ids)
            z_in = F.normalize(z, dim=-1) if self.config.kind == "cosine" else z
            loss = F.mse_loss(zq.detach(), z_in) + self.config.beta * F.mse_loss(zq, z_in.detach())
            # Straight-through estimator when gradients flow; the exact codes otherwise, so that
            # decoding ids reproduces the quantized path bit for bit.
            quantized = z_in + (zq - z_in).detach() if z.requires_grad else zq
            usage = torch.bincount(ids.reshape(-1), minlength=self.config.codebook_size)
            probs = usage.float() / usage.sum().clamp(min=1)
            perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())
        return QuantizerOutput(quantized, ids, loss, perplexity, usage)
