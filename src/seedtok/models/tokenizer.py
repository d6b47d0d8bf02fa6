"""SEED tokenizer (paper sec. 3.1, Fig. 3): image -> 32 causal ids -> generation embeddings.

image (B, 3, S, S)
 -> ViT -> ln_vision                                (B, 1+N, Cv)
 -> Causal Q-Former                                 (B, 32, H)   causal embeddings
 -> encode_task: Linear, Tanh, Linear               (B, 32, D)
 -> VQ codebook                                     ids (B, 32), codes (B, 32, D)
 -> decode_task: Linear, Tanh, Linear + pos_embed + ViT blocks      (B, 32, H)
 -> Reverse Q-Former                                (B, 77, H)
 -> generation_proj                                 (B, 77, G)   generation embeddings
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seedtok.config import DecoderBlocksConfig, TokenizerConfig
from seedtok.models.layers import ViTBlock
from seedtok.models.qformer import QFormer
from seedtok.models.quantizer import VectorQuantizer, check_ids
from seedtok.models.vit import VisionTransformer


class TaskLayer(nn.Sequential):
    """Linear -> Tanh -> Linear (``encode_task_layer`` / ``decode_task_layer``)."""

    def __init__(self, dim_in: int, dim_hidden: int, dim_out: int) -> None:
        super().__init__(nn.Linear(dim_in, dim_hidden), nn.Tanh(), nn.Linear(dim_hidden, dim_out))


class CodeDecoder(nn.Module):
    """pos_embed + ViT blocks over the de-quantized code embeddings: (B, Q, H) -> (B, Q, H)."""

    def __init__(self, config: DecoderBlocksConfig, hidden: int, num_tokens: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, hidden))
        mlp_hidden = int(hidden * config.mlp_ratio)
        self.blocks = nn.ModuleList(
            ViTBlock(hidden, config.num_heads, mlp_hidden, config.ln_eps, "qkv") for _ in range(config.num_layers)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


@dataclass
class TokenizerOutput:
    """Every intermediate of :meth:`SeedTokenizer.forward`, in pipeline order."""

    vit_features: torch.Tensor  # (B, 1+N, Cv) before ln_vision
    image_embeds: torch.Tensor  # (B, 1+N, Cv)
    causal_embeds: torch.Tensor  # (B, Q, H)
    codebook_inputs: torch.Tensor  # (B, Q, D)
    ids: torch.Tensor  # (B, Q) int64
    quantized: torch.Tensor  # (B, Q, D)
    decoded_embeds: torch.Tensor  # (B, Q, H)
    reverse_embeds: torch.Tensor  # (B, G_len, H)
    generation_embeds: torch.Tensor  # (B, G_len, G)
    vq_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class SeedTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
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
        self.reverse_qformer = QFormer(c.reverse_qformer)
        self.generation_proj = nn.Linear(hidden, c.generation_dim)

    # -- stages ------------------------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (vit_features, image_embeds), both (B, 1+N, Cv)."""
        feats = self.vision(pixel_values)
        return feats, self.ln_vision(feats)

    def causal_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> causal embeddings (B, Q, H)."""
        return self.qformer(self.encode_image(pixel_values)[1])

    def decode_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """code vectors (B, Q, D) -> (decoded_embeds, reverse_embeds, generation_embeds)."""
        decoded = self.code_decoder(self.decode_task(codes))  # (B, Q, H)
        reverse = self.reverse_qformer(decoded)  # (B, G_len, H)
        return decoded, reverse, self.generation_proj(reverse)

    # -- public API ----------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor) -> TokenizerOutput:
        feats, image_embeds = self.encode_image(pixel_values)
        causal = self.qformer(image_embeds)
        z = self.encode_task(causal)
        q = self.quantizer(z)
        decoded, reverse, generation = self.decode_codes(q.quantized)
        return TokenizerOutput(
            vit_features=feats,
            image_embeds=image_embeds,
            causal_embeds=causal,
            codebook_inputs=z,
            ids=q.ids,
            quantized=q.quantized,
            decoded_embeds=decoded,
            reverse_embeds=reverse,
            generation_embeds=generation,
            vq_loss=q.loss,
            perplexity=q.perplexity,
            usage=q.usage,
        )

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (ids (B, Q) int64, causal embeddings (B, Q, H))."""
        causal = self.causal_embeddings(pixel_values)
        return self.quantizer.nearest(self.encode_task(causal)), causal

    @torch.no_grad()
    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, Q) in [0, codebook_size) -> generation embeddings (B, G_len, G)."""
        ids = check_ids(ids, self.config.num_tokens)
        return self.decode_codes(self.quantizer.lookup(ids))[2]
