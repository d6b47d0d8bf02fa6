"""Shared training layer: arguments, seeding, freezing policy, AdamW, warmup + cosine schedule.

Every stage (0a stand-in encoder, 1 Causal Q-Former, 2 codebook + de-tokenizer targets; paper
sec. 3.1) runs through :func:`seedtok.train.loop.fit` on top of these pieces. Freezing lives
here, never in the models: frozen modules are put in eval mode and lose their gradients.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn


class TrainingError(RuntimeError):
    """A training run that cannot start or continue (bad input, non-finite loss, ...)."""


class TrainingInterrupted(TrainingError):
    """SIGTERM/SIGINT arrived: a final checkpoint was saved, the run can be resumed."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclass
class TrainArgs:
    """Run settings shared by all stages. ``batch_size`` is per process and per micro-batch;
    the global batch is ``batch_size * world_size * grad_accum``. ``samples``, when set, is the
    run's length in samples seen and replaces ``steps`` (``ceil(samples / global batch)``), so
    1 process x batch 2b and 2 processes x batch b train for the same number of steps."""

    out: str
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup: int = 100
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = False
    progress: bool = True
    cpu: bool = True
    grad_checkpointing: bool = False
    samples: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    # Fields that may differ between an interrupted run and its resumption.
    RESUMABLE_CHANGES = ("steps", "log_every", "ckpt_every", "keep_checkpoints", "resume", "progress",
                         "grad_checkpointing", "samples")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE_CHANGES and k != "out"}


def enable_grad_checkpointing(module: nn.Module) -> int:
    """Switch on gradient checkpointing in every part that supports it: seedtok's ViT and
    Q-Formers (``set_grad_checkpointing``) and Hugging Face LLMs (``gradient_checkpointing_enable``).
    Returns how many parts were switched."""
    n = 0
    for m in module.modules():
        if hasattr(m, "set_grad_checkpointing"):
            m.set_grad_checkpointing(True)
            n += 1
        elif getattr(m, "supports_gradient_checkpointing", False) and not getattr(m, "is_gradient_checkpointing", True):
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # whole HF model
            n += 1
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def freeze(module: nn.Module) -> nn.Module:
    """Frozen part: eval mode (no dropout / batch-stat updates) and no gradients."""
    module.eval()
    module.requires_grad_(False)
    return module


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def build_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (no decay on biases, norms, temperature: 1-D / 0-D).

    A module may set ``lr_scales = {"name.prefix.": factor}``: its parameters whose names start
    with a prefix train at ``factor * lr`` (the schedule scales every group alike)."""
    scales: dict[str, float] = dict(getattr(module, "lr_scales", None) or {})
    buckets: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in trainable_parameters(module):
        scale = next((f for prefix, f in scales.items() if name.startswith(prefix)), 1.0)
        buckets.setdefault((p.ndim >= 2, float(scale)), []).append(p)
    if not buckets:
        raise TrainingError("nothing to train: every parameter is frozen")
    order = sorted(buckets, key=lambda k: (k[1] != 1.0, k[1], not k[0]))  # the plain-lr matrices first
    groups = [{"params": buckets[k], "weight_decay": weight_decay if k[0] else 0.0, "lr": lr * k[1]} for k in order]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total, min_ratio))


def grad_norm(params: Iterable[torch.Tensor]) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0
