"""EVA-style Vision Transformer (the frozen image encoder of SEED, paper sec. 3.1).

SEED-1 uses BLIP-2's EVA ViT-g/14 without its final norm: patch embedding, CLS token,
absolute position embedding, pre-norm blocks with q/v biases. Output: (B, 1 + N, C).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from seedtok.config import VisionConfig
from seedtok.models.layers import ViTBlock


class ConvStem(nn.Module):
    """Conv stem (tiny stand-in): log2(patch) 3x3 stride-2 convs, each GroupNorm + GELU, widths
    C/2^(n-1) .. C, then a 1x1 conv to C. (B, 3, S, S) -> (B, C, S/patch, S/patch), the same
    grid as a patch embedding, but each token sees overlapping context."""

    def __init__(self, in_channels: int, hidden: int, patch_size: int) -> None:
        super().__init__()
        n = patch_size.bit_length() - 1
        widths = [max(hidden >> (n - 1 - i), 8) for i in range(n)]
        layers: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1), nn.GroupNorm(min(8, w), w), nn.GELU()]
            prev = w
        layers.append(nn.Conv2d(prev, hidden, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class VisionTransformer(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.stem == "conv":
            self.patch_embed: nn.Module = ConvStem(c.in_channels, c.hidden_size, c.patch_size)
        else:
            self.patch_embed = nn.Conv2d(c.in_channels, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_patches + 1, c.hidden_size))
        self.blocks = nn.ModuleList(
            ViTBlock(c.hidden_size, c.num_heads, c.mlp_hidden_size, c.ln_eps, c.qkv_bias)
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.ln_eps) if c.final_norm else nn.Identity()
        self.grad_checkpointing = False
        self.reset_parameters()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them (memory
        for compute; only matters when the ViT itself is trained, e.g. stage 0a)."""
        self.grad_checkpointing = enable

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, 1 + N, C) token features."""
        size = self.config.image_size
        if pixel_values.shape[-2:] != (size, size):
            raise ValueError(f"expected {size}x{size} input, got {tuple(pixel_values.shape[-2:])}")
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)  # (B, N, C)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed  # (B, 1 + N, C)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x)
