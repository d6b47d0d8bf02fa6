"""Stage 0a (tiny world only): pretrain the stand-in image encoder (DESIGN.md sec. 3).

SEED freezes a *pretrained* EVA ViT (paper sec. 3.1); no such weights exist for the tiny ViT,
so one is trained here once and shipped. What matters is what the Q-Former can read from it:
cross-attention takes weighted averages of patch tokens, so *every patch token* must carry its
region's content. The default objective ("cells") classifies every patch token, through a
linear head on the raw token (no norm in between, so a cell's averaged token reads like the
average of its tokens' predictions), with the colour / shape / size of the grid cell that covers
it (each with an "empty" class), from the scene metadata. A CLIP-style contrastive term
between the [CLS] state and frozen MiniLM-L6 states through a small text head (the first
stand-in's only objective, which left shape and size unreadable: probe 0.26) can be added with
``clip_weight``. A *position term* (``position_weight``, default 1) classifies every patch token,
through its own linear head, with the grid cell it lies in: EVA-CLIP's tokens carry where they
are, and without it the cell objective left a token's own cell readable at only 0.52, so
content-addressed cross-attention could not tell one cell's object from another's (a 9-query
attention read of each cell: 0.78 per object without a position signal, 0.99 with one;
docs/training.md). Afterwards only the ViT is kept, frozen, as the "EVA ViT" of the tiny preset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.config import VisionConfig
from seedtok.eval.probe import GRID, num_classes, patch_cells
from seedtok.losses import contrastive_loss
from seedtok.models.texthead import TextHead
from seedtok.models.vit import VisionTransformer
from seedtok.text import MINILM_DIM

TEMP_RANGE = (0.005, 0.5)
POSITION_WEIGHT = 1.0  # weight of the position term (module docstring)


class EncoderPretrainModule(nn.Module):
    """ViT + per-patch cell classifier (+ optional [CLS] vs frozen-MiniLM contrastive term);
    ``forward(batch)`` -> loss. Batch: ``pixel_values`` (B, 3, S, S), ``cell_labels`` (B, 9, 3)
    and, with ``clip_weight > 0``, ``text_states`` (B, T, 384) + ``text_mask`` (B, T)."""

    def __init__(self, vision: VisionConfig, clip_weight: float = 0.0, proj_dim: int = 256, text_width: int = 256,
                 position_weight: float = POSITION_WEIGHT) -> None:
        super().__init__()
        if not (clip_weight >= 0 and position_weight >= 0):
            raise ValueError(f"clip_weight and position_weight must be >= 0, got {clip_weight!r}, {position_weight!r}")
        self.vision = VisionTransformer(vision)
        self.sizes = num_classes()
        self.cell_head = nn.Linear(vision.hidden_size, sum(self.sizes))
        self.register_buffer("cells", patch_cells(vision.image_size, vision.patch_size), persistent=False)
        self.position_weight = float(position_weight)
        if self.position_weight > 0:
            self.position_head = nn.Linear(vision.hidden_size, GRID * GRID)
        self.clip_weight = float(clip_weight)
        if self.clip_weight > 0:
            self.image_norm = nn.LayerNorm(vision.hidden_size)
            self.image_proj = nn.Linear(vision.hidden_size, proj_dim)
            self.text_head = TextHead(MINILM_DIM, text_width, proj_dim)
            self.temp = nn.Parameter(torch.tensor(0.07))

    def cell_logits(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens (B, P, C) -> per attribute (B, P, classes)."""
        return list(self.cell_head(tokens).split(self.sizes, dim=-1))

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, P) normalised, from the [CLS] state (contrastive term only)."""
        cls = self.vision(pixels)[:, 0]
        return F.normalize(self.image_proj(self.image_norm(cls)), dim=-1)

    def text_features(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(states, mask), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = self.vision(batch["pixel_values"])  # (B, 1 + P, C)
        labels = batch["cell_labels"][:, self.cells]  # (B, P, 3)
        losses, correct = [], []
        for j, logits in enumerate(self.cell_logits(tokens[:, 1:])):
            losses.append(F.cross_entropy(logits.flatten(0, 1), labels[..., j].flatten()))
            correct.append(logits.argmax(-1) == labels[..., j])
        loss = sum(losses) / len(losses)
        out = {"cells": loss.detach(), "patch_acc": torch.stack(correct).all(0).float().mean()}
        if self.position_weight > 0:
            where = self.position_head(tokens[:, 1:])  # (B, P, 9)
            target = self.cells.expand(where.shape[0], -1)
            pos = F.cross_entropy(where.flatten(0, 1), target.flatten())
            loss = loss + self.position_weight * pos
            out.update(position=pos.detach(), position_acc=(where.argmax(-1) == target).float().mean())
        if self.clip_weight > 0:
            img = F.normalize(self.image_proj(self.image_norm(tokens[:, 0])), dim=-1)
            con, acc = contrastive_loss(img, self.text_features(batch["text_states"], batch["text_mask"]), self.temp,
                                        label_smoothing=0.0)
            loss = loss + self.clip_weight * con
            out.update(clip=con.detach(), i2t_acc=acc, temp=self.temp.detach())
        return {"loss": loss, **out}

    def vision_state_dict(self) -> dict[str, torch.Tensor]:
        """The shipped stand-in: ``vision.*`` keys of :class:`SeedTokenizer`."""
        return {f"vision.{k}": v.detach().contiguous() for k, v in self.vision.state_dict().items()}


def clamp_temperature(module: EncoderPretrainModule):
    def after_step(step: int, outputs: dict) -> dict:
        if module.clip_weight > 0:
            with torch.no_grad():
                module.temp.clamp_(*TEMP_RANGE)
        return {}

    return after_step
