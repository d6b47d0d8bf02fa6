"""A minimal training loop for the LLM stages (stage 0c LM pretraining, stage 3 LoRA tuning).

The shared training core (issue 4) was not merged when this was written, so this is the
smallest loop that meets the same contract: ``accelerate`` (one CPU process or many GPUs),
AdamW on the trainable parameters only, linear warmup + cosine decay, gradient clipping,
atomic checkpoints every ``checkpoint_every`` steps and ``resume``. Batches come from a
function of the step number, so a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from seedtok.checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    lr: float
    warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 0
    seed: int = 0


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0.1 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(frac, 1.0)))


def _save(path: Path, model: nn.Module, opt: Any, sched: Any, step: int, history: list) -> None:
    state = {
        "trainable": {n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": step,
        "history": history,
        "rng": torch.get_rng_state(),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, model: nn.Module, opt: Any, sched: Any) -> tuple[int, list]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    missing = set(state["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
    if missing:
        raise RuntimeError(f"checkpoint {path} does not match the model's trainable parameters: {sorted(missing)[:3]}")
    with torch.no_grad():
        for n, t in state["trainable"].items():
            params[n].copy_(t)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return int(state["step"]), list(state["history"])


def train_loop(
    model: nn.Module,
    batch_fn: Callable[[int], dict[str, torch.Tensor]],
    settings: LoopSettings,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model``'s trainable parameters on ``batch_fn(step)`` (a dict of model inputs
    with ``labels``). Returns ``{"steps", "seconds", "history": [(step, loss)], "final_loss"}``."""
    from accelerate import Accelerator
    from tqdm import tqdm

    accel = Accelerator(cpu=not torch.cuda.is_available())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, settings.warmup, settings.steps))
    model, opt = accel.prepare(model, opt)
    ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    start, history = 0, []
    if resume and ckpt is not None and ckpt.exists():
        start, history = _load(ckpt, accel.unwrap_model(model), opt, sched)
        log.info("resumed from %s at step %d", ckpt, start)
    torch.manual_seed(settings.seed + start)
    model.train()
    t0, recent = time.perf_counter(), []
    bar = tqdm(range(start, settings.steps), disable=not progress, desc="train")
    for step in bar:
        batch = {k: v.to(accel.device) for k, v in batch_fn(step).items()}
        loss = model(**batch).loss
        accel.backward(loss)
        if settings.grad_clip:
            accel.clip_grad_norm_(params, settings.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        recent.append(loss.item())
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
            history.append((step + 1, sum(recent) / len(recent)))
            bar.set_postfix(loss=f"{history[-1][1]:.4f}")
            log.info("step %d loss %.4f lr %.2e", step + 1, history[-1][1], sched.get_last_lr()[0])
            recent = []
        if ckpt is not None and settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0:
            _save(ckpt, accel.unwrap_model(model), opt, sched, step + 1, history)
    model.eval()
    seconds = time.perf_counter() - t0
    return {"steps": settings.steps, "resumed_at": start, "seconds": seconds, "history": history,
            "final_loss": history[-1][1] if history else float("nan"), "settings": asdict(settings)}
