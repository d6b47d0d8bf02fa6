"""Glue between the LLM stages (stage 0c LM pretraining, stage 3 LoRA tuning) and the shared
training core :func:`seedtok.train.loop.fit` (accelerate, AdamW, warmup + cosine, atomic
checkpoints, ``--resume``). The core trains a module whose ``forward(batch)`` returns a dict
with ``loss``, on a source whose ``batch(micro_step, rank, world, batch_size)`` is a pure
function of its arguments, and checkpoints only the trainable parameters (for LoRA: the
adapter and the new token rows, never the frozen base).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.train.core import TrainArgs
from seedtok.train.loop import fit


class CausalLMObjective(nn.Module):
    """``forward(batch)`` -> ``{"loss", "tokens"}``: next-token loss on the labelled positions.

    With ``image_range=(lo, hi)`` (the image-code token ids), the loss is also split into
    ``image_loss`` (targets that are image codes: the text-to-image task) and ``text_loss``
    (every other target), logged per step: the "training loss on image tokens" curves of the
    ablation (issue 11). Steps without targets of a kind log NaN for it."""

    def __init__(self, model: nn.Module, image_range: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.image_range = image_range

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(**batch)
        result = {"loss": out.loss, "tokens": (batch["labels"] != -100).sum().float()}
        if self.image_range is not None:
            with torch.no_grad():
                labels = batch["labels"][:, 1:]
                per_token = F.cross_entropy(out.logits[:, :-1].float().transpose(1, 2), labels, ignore_index=-100,
                                            reduction="none")
                valid = labels != -100
                image = valid & (labels >= self.image_range[0]) & (labels < self.image_range[1])
                for name, mask in (("image_loss", image), ("text_loss", valid & ~image)):
                    n = mask.sum()
                    result[name] = per_token[mask].sum() / n if n > 0 else torch.tensor(float("nan"))
        return result


class StepBatches:
    """Adapts ``make(index, batch_size)`` (a pure function) to the core's batch source: rank
    ``r`` of ``W`` takes global index ``micro_step * W + r``."""

    def __init__(self, make: Callable[[int, int], dict[str, torch.Tensor]]) -> None:
        self.make = make

    def batch(self, micro_step: int, rank: int, world: int, batch_size: int) -> dict[str, torch.Tensor]:
        return self.make(micro_step * world + rank, batch_size)


def train_lm(model: nn.Module, make: Callable[[int, int], dict[str, torch.Tensor]], args: TrainArgs, stage: str,
             info: dict[str, Any] | None = None, image_range: tuple[int, int] | None = None) -> dict[str, Any]:
    """Train ``model``'s trainable parameters; returns the core's summary plus ``history``
    (the per-step losses read back from ``OUT/metrics.jsonl``)."""
    objective = CausalLMObjective(model, image_range)
    model.train()
    try:
        summary = fit(objective, StepBatches(make), args, {"stage": stage, **(info or {})})
    finally:
        model.eval()
    metrics = Path(args.out) / "metrics.jsonl"
    history = [json.loads(l) for l in metrics.read_text().splitlines() if l] if metrics.is_file() else []
    summary["history"] = [(h["step"], h["loss"]) for h in history]
    return summary


def mean_loss(history: list[tuple[int, float]], last: int = 25) -> float:
    """Mean of the last ``last`` logged losses (a less noisy "final loss")."""
    tail = [l for _, l in history[-last:]]
    return sum(tail) / len(tail) if tail else float("nan")
