"""Stage 0a (tiny world only): pretrain the stand-in image encoder (DESIGN.md sec. 3).

SEED freezes a *pretrained* EVA ViT (paper sec. 3.1) that was trained contrastively against
text (EVA-CLIP). No such weights exist for the tiny ViT, so it is trained here the same way:
CLIP-style contrastive learning of the ViT (+ a projection of its [CLS] state) against a
frozen real text encoder, MiniLM-L6, whose cached token states pass through a small trainable
text head. Afterwards only the ViT is kept, frozen, as the "EVA ViT" of the tiny preset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.config import VisionConfig
from seedtok.losses import contrastive_loss
from seedtok.models.vit import VisionTransformer
from seedtok.text import MINILM_DIM

TEMP_RANGE = (0.005, 0.5)


class TextHead(nn.Module):
    """Trainable head over frozen MiniLM token states: (B, T, 384) -> (B, P).

    Linear -> one pre-norm transformer layer (so word order, e.g. which colour goes with which
    position, can be re-read) -> masked mean -> LayerNorm -> Linear."""

    def __init__(self, width: int, proj_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(MINILM_DIM, width)
        self.layer = nn.TransformerEncoderLayer(width, num_heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, proj_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.layer(self.inp(states), src_key_padding_mask=~mask.bool())  # (B, T, W)
        m = mask.float().unsqueeze(-1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.proj(self.norm(pooled))


class EncoderPretrainModule(nn.Module):
    """ViT + image projection vs. frozen-MiniLM text head; ``forward(batch)`` -> contrastive loss."""

    def __init__(self, vision: VisionConfig, proj_dim: int = 256, text_width: int = 256) -> None:
        super().__init__()
        self.vision = VisionTransformer(vision)
        self.image_norm = nn.LayerNorm(vision.hidden_size)
        self.image_proj = nn.Linear(vision.hidden_size, proj_dim)
        self.text_head = TextHead(text_width, proj_dim)
        self.temp = nn.Parameter(torch.tensor(0.07))

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, P) normalised, from the [CLS] state."""
        cls = self.vision(pixels)[:, 0]
        return F.normalize(self.image_proj(self.image_norm(cls)), dim=-1)

    def text_features(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(states, mask), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        img = self.image_features(batch["pixel_values"])
        txt = self.text_features(batch["text_states"], batch["text_mask"])
        loss, acc = contrastive_loss(img, txt, self.temp, label_smoothing=0.0)
        return {"loss": loss, "i2t_acc": acc, "temp": self.temp.detach()}

    def vision_state_dict(self) -> dict[str, torch.Tensor]:
        """The shipped stand-in: ``vision.*`` keys of :class:`SeedTokenizer`."""
        return {f"vision.{k}": v.detach().contiguous() for k, v in self.vision.state_dict().items()}


def clamp_temperature(module: EncoderPretrainModule):
    def after_step(step: int, outputs: dict) -> dict:
        with torch.no_grad():
            module.temp.clamp_(*TEMP_RANGE)
        return {}

    return after_step
