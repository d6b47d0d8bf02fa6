"""A small trainable head over a frozen pretrained text encoder's token states.

BLIP-2, and so SEED, start the Q-Former's text side from pretrained BERT (paper sec. 3.1).
The tiny world's analogue is the frozen MiniLM-L6 (``seedtok.text``) whose cached token states
pass through this head: with perfect image tokens it reaches R@1 0.996 where a text branch
trained from scratch stays on the contrastive plateau (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import nn


class TextHead(nn.Module):
    """(B, T, D_in) frozen token states + mask -> (B, out_dim) pooled text feature.

    Linear -> one pre-norm transformer layer (so word order, e.g. which colour goes with which
    position, can be re-read) -> masked mean -> LayerNorm -> Linear."""

    def __init__(self, in_dim: int, width: int, out_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.layer = nn.TransformerEncoderLayer(width, num_heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.layer(self.inp(states), src_key_padding_mask=~mask.bool())  # (B, T, W)
        m = mask.float().unsqueeze(-1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, W)
        return self.proj(self.norm(pooled))
