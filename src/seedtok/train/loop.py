"""The one training loop every stage runs, through ``accelerate``.

The :class:`accelerate.Accelerator` owns device placement, DDP wrapping (gloo on CPU),
mixed precision where the device supports it, and gradient accumulation. A stage supplies an
``nn.Module`` whose ``forward(batch)`` returns a dict with a scalar ``loss`` (plus scalar
metrics; keys starting with ``_`` are passed to ``after_step`` and not logged), a data source
(:class:`~seedtok.train.data.TensorBatches` in memory, or a streaming
:class:`~seedtok.train.streaming.StreamBatches`, whose position goes into every checkpoint),
and optionally an ``after_step`` hook. Every record of ``metrics.jsonl`` carries ``samples``,
the samples seen so far over all ranks.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from seedtok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from seedtok.train.core import (
    TrainArgs,
    TrainingError,
    TrainingInterrupted,
    build_optimizer,
    build_scheduler,
    enable_grad_checkpointing,
    seed_everything,
    trainable_parameters,
)
from seedtok.train.data import TensorBatches
from seedtok.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

AfterStep = Callable[[int, dict[str, Any]], dict[str, float]]


def make_accelerator(args: TrainArgs):
    """CPU runs need ``cpu=True`` even under ``accelerate launch`` (see environment.md)."""
    from accelerate import Accelerator

    mixed = "no" if args.cpu or not torch.cuda.is_available() else "bf16"
    return Accelerator(cpu=args.cpu, mixed_precision=mixed, gradient_accumulation_steps=args.grad_accum)


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step (so the step in
    flight completes and a final checkpoint is written), instead of dying mid-write."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    def requested(self, acc) -> bool:
        """Whether any rank was asked to stop (agreed across ranks)."""
        flag = 1.0 if self.signum is not None else 0.0
        if acc.num_processes > 1:
            flag = float(acc.reduce(torch.tensor([flag], device=acc.device), reduction="sum"))
        return flag > 0


class MetricsWriter:
    """JSONL metrics on the main process; on resume, entries past the checkpoint are dropped."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            atomic_write_bytes(path, b"")
        elif path.is_file():
            kept = [l for l in path.read_text().splitlines() if l and _keep(l, resume_step)]
            atomic_write_bytes(path, "".join(l + "\n" for l in kept).encode())

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")


def _keep(line: str, resume_step: int) -> bool:
    try:
        return int(json.loads(line).get("step", 0)) <= resume_step
    except ValueError:
        return False


def fit(
    module: nn.Module,
    data: TensorBatches,
    args: TrainArgs,
    run_info: dict[str, Any],
    after_step: AfterStep | None = None,
    accelerator=None,
) -> dict[str, Any]:
    """Train ``module`` for ``args.steps`` optimizer steps; returns a summary dict."""
    acc = accelerator or make_accelerator(args)
    if args.samples:
        global_batch = args.batch_size * acc.num_processes * args.grad_accum
        args.steps = max(1, math.ceil(args.samples / global_batch))
    seed_everything(args.seed)
    if args.grad_checkpointing:
        log.info("gradient checkpointing on in %d part(s)", enable_grad_checkpointing(module))
    optimizer = build_optimizer(module, args.lr, args.weight_decay)
    scheduler = build_scheduler(optimizer, args.warmup, args.steps, args.min_lr_ratio)
    model, optimizer = acc.prepare(module, optimizer)
    info = {**run_info, "world_size": acc.num_processes, "args": args.identity()}
    start = 0
    if args.resume:
        start = load_checkpoint(latest_checkpoint(args.out), module, optimizer, scheduler, info, after_step, data)
    metrics = MetricsWriter(Path(args.out) / "metrics.jsonl", acc.is_main_process, start if args.resume else None)
    with StopRequest() as stop:
        summary = _run_steps(acc, model, module, optimizer, scheduler, data, args, info, start, metrics, after_step, stop)
    acc.wait_for_everyone()
    if hasattr(data, "summary"):
        summary["data"] = data.summary()
    return summary


def _run_steps(acc, model, module, optimizer, scheduler, data, args, info, start, metrics, after_step, stop=None):
    from tqdm.auto import tqdm

    params = [p for _, p in trainable_parameters(module)]
    bar = tqdm(total=args.steps, initial=start, disable=not (args.progress and acc.is_main_process), desc=info["stage"])
    record: dict[str, Any] = {}
    t_start, t_last, c_last = time.perf_counter(), time.perf_counter(), time.process_time()
    global_batch = args.batch_size * acc.num_processes * args.grad_accum
    for step in range(start, args.steps):
        lr = optimizer.param_groups[0]["lr"]
        outputs = _one_step(acc, model, optimizer, data, args, step, params)
        scheduler.step()
        loss = float(acc.reduce(outputs["loss"].detach(), reduction="mean"))
        extra = after_step(step, outputs) if after_step else {}
        now, cpu = time.perf_counter(), time.process_time()
        # per CPU-second of this process too: on a shared machine wall time follows the neighbours' load
        record = {"step": step + 1, "samples": (step + 1) * global_batch, "loss": loss, "lr": lr,
                  "samples_per_s": global_batch / max(now - t_last, 1e-9),
                  "samples_per_cpu_s": global_batch / max(cpu - c_last, 1e-9), **_scalars(acc, outputs), **extra}
        t_last, c_last = now, cpu
        metrics.write(record)
        bar.update(1)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}", sps=f"{record['samples_per_s']:.0f}")
        interrupted = stop is not None and stop.requested(acc)
        if (step + 1) % args.ckpt_every == 0 or step + 1 == args.steps or interrupted:
            acc.wait_for_everyone()
            data_state = data.state_dict() if hasattr(data, "state_dict") else None  # every rank takes part
            if acc.is_main_process:
                hook_state = after_step.state_dict() if hasattr(after_step, "state_dict") else None
                save_checkpoint(args.out, step + 1, module, optimizer, scheduler, info, args.keep_checkpoints, hook_state,
                                data_state)
        if interrupted:
            bar.close()
            name = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
            raise TrainingInterrupted(
                f"stopped by {name} after step {step + 1}; checkpoint saved under "
                f"{Path(args.out) / 'checkpoints'}; continue with --resume",
                stop.signum or signal.SIGTERM,
            )
    bar.close()
    return {"steps": args.steps, "start_step": start, "wall_s": time.perf_counter() - t_start, "last": record}


def _one_step(acc, model, optimizer, data, args, step, params) -> dict[str, Any]:
    """One optimizer step over ``grad_accum`` micro-batches; stops on a non-finite loss."""
    outputs: dict[str, Any] = {}
    for micro in range(args.grad_accum):
        batch = data.batch(step * args.grad_accum + micro, acc.process_index, acc.num_processes, args.batch_size)
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        with acc.accumulate(model):
            outputs = model(batch)
            loss = outputs["loss"]
            bad = acc.reduce((~torch.isfinite(loss.detach())).float().reshape(1), reduction="sum")
            if float(bad) > 0:
                raise TrainingError(
                    f"non-finite loss ({float(loss.detach()):.4g}) at step {step + 1}; stopped without saving, "
                    f"the last good checkpoint under {Path(args.out) / 'checkpoints'} is intact"
                )
            acc.backward(loss)
            if acc.sync_gradients and args.grad_clip > 0:
                acc.clip_grad_norm_(params, args.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return outputs


def _scalars(acc, outputs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in outputs.items():
        if k == "loss" or k.startswith("_") or not torch.is_tensor(v) or v.numel() != 1:
            continue
        value = float(acc.reduce(v.detach().float().reshape(1), reduction="mean"))
        out[k] = value if math.isfinite(value) else float("nan")
    return out
