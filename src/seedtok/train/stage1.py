"""Stage 1: the Causal Q-Former (paper sec. 3.1, "Training Stage I").

Image-text contrastive learning between the LAST causal query embedding (through
``vision_proj``, L2-normalised; under causal attention it is the only query that has seen all
others) and the [CLS] state of the Q-Former's own text branch (``text_proj``, L2-normalised),
learnable temperature (init 0.07, clamped to [0.001, 0.5] as in BLIP-2), label smoothing 0.1,
negatives from every rank. The ViT is frozen, so its features are computed once up front;
``ln_vision`` and the Q-Former train.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.losses import contrastive_loss
from seedtok.models import SeedTokenizer
from seedtok.text import tokenize
from seedtok.train.core import TrainArgs, TrainingError, freeze
from seedtok.train.data import ImageTextSet, TensorBatches, frozen_features
from seedtok.train.loop import fit

log = logging.getLogger(__name__)

TEMP_RANGE = (0.001, 0.5)
MAX_TEXT_LEN = 48


class Stage1Module(nn.Module):
    """Trainable part of stage 1: ``ln_vision`` + Causal Q-Former (with its text branch)."""

    def __init__(self, tokenizer: SeedTokenizer) -> None:
        super().__init__()
        if not tokenizer.qformer.config.has_text_branch:
            raise TrainingError("stage 1 needs a Q-Former text branch (qformer.vocab_size > 0)")
        self.ln_vision = tokenizer.ln_vision
        self.qformer = tokenizer.qformer

    def image_features(self, vit_features: torch.Tensor) -> torch.Tensor:
        """(B, 1+N, Cv) frozen ViT output -> (B, P) normalised last-query embedding."""
        causal = self.qformer(self.ln_vision(vit_features))  # (B, Q, H)
        return F.normalize(self.qformer.vision_proj(causal[:, -1]), dim=-1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, P) normalised [CLS] embedding of the text branch."""
        states = self.qformer.encode_text(input_ids, attention_mask)  # (B, T, H)
        return F.normalize(self.qformer.text_proj(states[:, 0]), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        img = self.image_features(batch["vit_features"])
        txt = self.text_features(batch["input_ids"], batch["attention_mask"])
        loss, acc = contrastive_loss(img, txt, self.qformer.temp)
        return {"loss": loss, "i2t_acc": acc, "temp": self.qformer.temp.detach()}


def prepare_stage1(tokenizer: SeedTokenizer) -> Stage1Module:
    """Freezing policy of stage 1: everything frozen except ``ln_vision`` + Causal Q-Former."""
    freeze(tokenizer)
    module = Stage1Module(tokenizer)
    module.train().requires_grad_(True)
    return module


def stage1_tensors(tokenizer: SeedTokenizer, data: ImageTextSet, text_len: int = MAX_TEXT_LEN,
                   feature_cache: str | None = None) -> dict[str, torch.Tensor]:
    """Frozen ViT features (optionally cached on disk) and tokenized captions for every sample."""
    vit = frozen_features(tokenizer.vision, tokenizer.vision.eval(), data.pixels, feature_cache, "vit")
    ids, mask = tokenize(data.captions, min(text_len, tokenizer.qformer.config.max_text_len))
    return {"vit_features": vit, "input_ids": ids, "attention_mask": mask}


def clamp_temperature(module: Stage1Module):
    def after_step(step: int, outputs: dict[str, Any]) -> dict[str, float]:
        with torch.no_grad():
            module.qformer.temp.clamp_(*TEMP_RANGE)
        return {}

    return after_step


def train_stage1(
    tokenizer: SeedTokenizer, data: ImageTextSet | dict[str, torch.Tensor], args: TrainArgs, accelerator=None
) -> dict[str, Any]:
    """Run stage 1 in place on ``tokenizer``; returns the loop summary."""
    module = prepare_stage1(tokenizer)
    tensors = data if isinstance(data, dict) else stage1_tensors(tokenizer, data, feature_cache=args.extra.get("feature_cache"))
    run_info = {"stage": "stage1", "config": tokenizer.config.to_dict()}
    return fit(module, TensorBatches(tensors, args.seed), args, run_info, clamp_temperature(module), accelerator)
