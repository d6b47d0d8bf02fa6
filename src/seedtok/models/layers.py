"""Generic transformer layers shared by the ViT encoder and the de-quantization blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    @property
    def fc1_applies_gelu(self) -> bool:
        """True when ``fc1`` already applies the GELU (seedtok.fast's int8 fc1 fuses it into its GEMM)."""
        return getattr(self.fc1, "gelu", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)  # (..., hidden)
        if self.fc1_applies_gelu:
            return self.fc2(h)
        # At inference GELU runs in place: a fresh (B, N, hidden) buffer costs page faults that
        # took as long as the GELU itself on the 2-core test machines. Same arithmetic.
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        return self.fc2(h)


class FusedSelfAttention(nn.Module):
    """Multi-head self-attention with one fused qkv projection.

    ``bias='qv'`` is EVA's layout: learned q and v biases, a fixed zero k bias (a k bias
    cancels in softmax anyway); ``'qkv'`` is a plain biased projection; ``'none'`` no bias.
    """

    def __init__(self, dim: int, num_heads: int, bias: str = "qkv") -> None:
        super().__init__()
        self.num_heads = num_heads
        self.bias_mode = bias
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias == "qkv")
        if bias == "qv":
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def qkv_bias(self) -> torch.Tensor:
        """(3C,) the q, zero k and v biases of ``bias='qv'`` as one vector."""
        return torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        if self.bias_mode == "qv":  # one addmm, not mm + a separate (B, N, 3C) add
            qkv = F.linear(x, self.qkv.weight, self.qkv_bias())
        else:  # a module call, so seedtok.fast can swap in an int8 projection
            qkv = self.qkv(x)  # (B, N, 3C)
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, C/H)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, ln_eps: float, qkv_bias: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = FusedSelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # a new tensor: the caller's x is never modified
        if torch.is_grad_enabled():
            return x + self.mlp(self.norm2(x))
        return x.add_(self.mlp(self.norm2(x)))  # inference: reuse the block's own buffer
