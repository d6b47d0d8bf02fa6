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


LOSS_WEIGHTINGS = ("token", "sequence", "task")


def weighted_loss(per_token: torch.Tensor, valid: torch.Tensor, weighting: str = "token",
                  task_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a (B, T) per-token loss over the ``valid`` targets (bool, or float weights: a
    weighted mean):

    - ``token``: mean over every target token of the batch (a task with long targets, such
      as text-to-image's 34 tokens, outweighs VQA's 2-token answers 17:1);
    - ``sequence``: mean per sequence, then over the sequences that have targets;
    - ``task``: mean per task (``task_ids`` (B,)), then over the tasks present in the batch.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {LOSS_WEIGHTINGS}")
    per_token = per_token * valid
    if weighting == "token":
        return per_token.sum() / valid.sum().clamp(min=1)
    counts = valid.sum(dim=1)  # (B,)
    if weighting == "sequence":
        has = counts > 0
        return (per_token.sum(dim=1)[has] / counts[has]).mean()
    if task_ids is None:
        raise ValueError("task weighting needs the batch's task_ids")
    means = [per_token[task_ids == t].sum() / counts[task_ids == t].sum() for t in task_ids.unique()
             if counts[task_ids == t].sum() > 0]
    return torch.stack(means).mean()


class CausalLMObjective(nn.Module):
    """``forward(batch)`` -> ``{"loss", "tokens"}``: next-token loss on the labelled positions,
    reduced by ``weighting`` (:func:`weighted_loss`; a batch may carry ``task_ids`` (B,) for
    the per-task mean; it is not passed to the model).

    With ``image_range=(lo, hi)`` (the image-code token ids), the loss is also split into
    ``image_loss`` (targets that are image codes: the text-to-image task) and ``text_loss``
    (every other target), per token, logged per step: the "training loss on image tokens"
    curves of the ablation (issue 11). Steps without targets of a kind log NaN for it."""

    def __init__(self, model: nn.Module, image_range: tuple[int, int] | None = None, weighting: str = "token") -> None:
        super().__init__()
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {LOSS_WEIGHTINGS}")
        self.model = model
        self.image_range = image_range
        self.weighting = weighting

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        task_ids = batch.get("task_ids")
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "task_ids", "label_weights")}
        logits = self.model(**inputs).logits[:, :-1].float()  # (B, T-1, V)
        labels = batch["labels"][:, 1:]
        valid = labels != -100
        per_token = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")  # (B, T-1)
        weights = valid.float() * batch["label_weights"][:, 1:] if "label_weights" in batch else valid
        result = {"loss": weighted_loss(per_token, weights, self.weighting, task_ids), "tokens": valid.sum().float()}
        if self.image_range is not None:
            with torch.no_grad():
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
             info: dict[str, Any] | None = None, image_range: tuple[int, int] | None = None,
             weighting: str = "token", data: Any = None) -> dict[str, Any]:
    """Train ``model``'s trainable parameters; returns the core's summary plus ``history``
    (the per-step losses read back from ``OUT/metrics.jsonl``). Batches come from ``make``, or
    from ``data`` (a streaming source, :class:`seedtok.train.streaming.StreamBatches`)."""
    objective = CausalLMObjective(model, image_range, weighting)
    model.train()
    try:
        summary = fit(objective, data or StepBatches(make), args, {"stage": stage, **(info or {})})
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
