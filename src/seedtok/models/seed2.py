"""SEED-2 tokenizer (SEED-LLaMA, arXiv 2310.01218, sec. 3.1): image -> 32 causal ids -> one
unCLIP image embedding.

The encoder side is SEED-1's (:mod:`seedtok.models.tokenizer`); the decoder regresses a single
OpenCLIP ViT-H/14 image embedding that conditions Stable unCLIP 2.1, instead of SEED-1's 77
text-encoder states:

image (B, 3, S, S)
 -> ViT -> ln_vision -> Causal Q-Former              (B, 32, H)   causal embeddings
 -> encode_task -> VQ                                ids (B, 32), codes (B, 32, D)
 -> decode_task + pos_embed_image + ViT blocks       (B, 32, H)   decoded embeddings
 -> image_down: Linear(H, 256), ReLU, Linear(256, 128), ReLU, Linear(128, 32), no biases
                                                     (B, 32, 32)
 -> flatten (B, 1024) -> distill_image_proj          (B, 1024)    unCLIP image embedding
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seedtok.config import Seed2Config
from seedtok.models.qformer import QFormer
from seedtok.models.quantizer import VectorQuantizer, check_ids
from seedtok.models.tokenizer import CodeDecoder, TaskLayer
from seedtok.models.vit import VisionTransformer


class ImageDown(nn.Sequential):
    """Bias-free MLP with ReLU between layers: (..., H) -> (..., down_dims[-1])."""

    def __init__(self, dim_in: int, dims: tuple[int, ...]) -> None:
        layers: list[nn.Module] = []
        for i, d in enumerate(dims):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(dim_in if i == 0 else dims[i - 1], d, bias=False))
        super().__init__(*layers)


@dataclass
class Seed2Output:
    """Every intermediate of :meth:`Seed2Tokenizer.forward`, in pipeline order."""

    vit_features: torch.Tensor  # (B, 1+N, Cv) before ln_vision
    image_embeds: torch.Tensor  # (B, 1+N, Cv)
    causal_embeds: torch.Tensor  # (B, Q, H)
    codebook_inputs: torch.Tensor  # (B, Q, D)
    ids: torch.Tensor  # (B, Q) int64
    quantized: torch.Tensor  # (B, Q, D)
    decoded_embeds: torch.Tensor  # (B, Q, H) after the decoder blocks
    down_embeds: torch.Tensor  # (B, Q, down_dims[-1])
    unclip_embeds: torch.Tensor  # (B, image_embed_dim)
    vq_loss: torch.Tensor


class Seed2Tokenizer(nn.Module):
    def __init__(self, config: Seed2Config) -> None:
        super().__init__()
        self.config = config
        c = config
        hidden = c.qformer.hidden_size
        self.vision = VisionTransformer(c.vision)
        self.ln_vision = nn.LayerNorm(c.vision.hidden_size, eps=c.ln_vision_eps)
        self.qformer = QFormer(c.qformer)
        self.encode_task = TaskLayer(hidden, hidden, c.codebook.codebook_dim)
        self.quantizer = VectorQuantizer(c.codebook)
        self.decode_task = TaskLayer(c.codebook.codebook_dim, c.codebook.codebook_dim, hidden)
        self.code_decoder = CodeDecoder(c.decoder, hidden, c.num_tokens)
        self.image_down = ImageDown(hidden, c.down_dims)
        self.image_proj = nn.Linear(c.num_tokens * c.down_dims[-1], c.image_embed_dim)

    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (vit_features, image_embeds), both (B, 1+N, Cv)."""
        feats = self.vision(pixel_values)
        return feats, self.ln_vision(feats)

    def decode_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """code vectors (B, Q, D) -> (decoded (B, Q, H), down (B, Q, d), unCLIP embedding (B, E))."""
        decoded = self.code_decoder(self.decode_task(codes))
        down = self.image_down(decoded)
        return decoded, down, self.image_proj(down.flatten(1))

    def forward(self, pixel_values: torch.Tensor) -> Seed2Output:
        feats, image_embeds = self.encode_image(pixel_values)
        causal = self.qformer(image_embeds)
        z = self.encode_task(causal)
        q = self.quantizer(z)
        decoded, down, unclip = self.decode_codes(q.quantized)
        return Seed2Output(feats, image_embeds, causal, z, q.ids, q.quantized, decoded, down, unclip, q.loss)

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (ids (B, Q) int64, causal embeddings (B, Q, H))."""
        causal = self.qformer(self.encode_image(pixel_values)[1])
        return self.quantizer.nearest(self.encode_task(causal)), causal

    @torch.no_grad()
    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, Q) in [0, codebook_size) -> unCLIP image embeddings (B, image_embed_dim)."""
        ids = check_ids(ids, self.config.num_tokens)
        return self.decode_codes(self.quantizer.lookup(ids))[2]


def build_tokenizer(config) -> nn.Module:
    """The tokenizer a config describes: :class:`Seed2Tokenizer` for a :class:`Seed2Config`,
    else :class:`~seedtok.models.SeedTokenizer` (SEED-1 layout)."""
    if isinstance(config, Seed2Config):
        return Seed2Tokenizer(config)
    from seedtok.models.tokenizer import SeedTokenizer

    return SeedTokenizer(config)
