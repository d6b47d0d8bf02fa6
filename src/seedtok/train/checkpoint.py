"""Training checkpoints: written atomically, resumed exactly.

Layout under ``<out>/checkpoints/``::

    step-00000100/   trainable.safetensors   trainable parameters of the stage module
                     optimizer.safetensors + optimizer.json   AdamW + scheduler state
                     state.safetensors + state.json           step, RNG states, hook state
                     run.json                stage, tokenizer config, run identity
                     manifest.json           sha256 of every file above (written last)
    latest           name of the newest complete checkpoint

Nothing is pickled (tensors in safetensors, structure in JSON), so loading a checkpoint can
never execute code; the manifest's checksums are verified on resume.

A checkpoint directory is filled under a temporary name and renamed into place, then
``latest`` is replaced atomically, so a run killed at any instant leaves the previous
checkpoint intact and loadable. Frozen parts are not stored: they are rebuilt from the same
``--init`` weights, which the run identity pins.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seedtok.fileio import atomic_write_bytes, load_tree, save_tree, sha256_file
from seedtok.train.core import TrainingError, trainable_parameters

log = logging.getLogger(__name__)

LATEST = "latest"
MANIFEST = "manifest.json"


def checkpoint_root(out: str | os.PathLike) -> Path:
    return Path(out) / "checkpoints"


def save_checkpoint(
    out: str | os.PathLike,
    step: int,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    run_info: dict[str, Any],
    keep: int = 2,
    hook_state: dict[str, Any] | None = None,
    data_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step`` (completed optimizer steps) atomically; prune old ones.
    ``data_state`` is a streaming run's data position (every rank's, see
    :class:`seedtok.train.streaming.StreamBatches`)."""
    root = checkpoint_root(out)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {n: p.detach().contiguous() for n, p in trainable_parameters(module)}
    save_file(tensors, str(tmp / "trainable.safetensors"))
    save_tree({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp, "optimizer")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    state = {"step": step, "rng": rng, "hook": hook_state}
    if data_state is not None:
        state["data"] = data_state
    save_tree(state, tmp, "state")
    (tmp / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True))
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {"step": step, "sha256": {f: sha256_file(tmp / f) for f in files}}
    atomic_write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_bytes(root / LATEST, name.encode())
    _prune(root, keep, name)
    return final


def _prune(root: Path, keep: int, newest: str) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[: max(0, len(done) - max(1, keep))]:
        if old.name != newest:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(out: str | os.PathLike) -> Path:
    """The newest complete checkpoint under ``<out>/checkpoints`` (clear error if none)."""
    root = checkpoint_root(out)
    pointer = root / LATEST
    if not pointer.is_file():
        raise TrainingError(f"--resume: no checkpoint found under {root} (missing '{LATEST}')")
    path = root / pointer.read_text().strip()
    if not (path / MANIFEST).is_file():
        raise TrainingError(f"--resume: checkpoint {path} is missing or incomplete")
    return path


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file of a checkpoint against its manifest; returns the manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(f"checkpoint {path}: unreadable manifest ({exc})") from None
    for name, digest in manifest.get("sha256", {}).items():
        f = path / name
        if not f.is_file() or sha256_file(f) != digest:
            raise TrainingError(f"checkpoint {path}: {name} is missing or does not match its sha256 (corrupt)")
    return manifest


def check_run_identity(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Refuse to resume with a different stage, model config or run identity."""
    diffs = _diff(saved, current)
    if diffs:
        shown = "; ".join(diffs[:6])
        raise TrainingError(f"--resume: configuration differs from checkpoint {where}: {shown}")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [f"{prefix}: checkpoint {a!r} != now {b!r}"]


def load_checkpoint(
    path: Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, run_info: dict[str, Any], hook=None,
    data=None,
) -> int:
    """Restore trainable weights, optimizer, scheduler, RNG, the hook's state (e.g. codebook
    usage counts) and a streaming ``data`` source's position; returns the number of completed
    steps."""
    verify_checkpoint(path)
    saved_info = json.loads((path / "run.json").read_text())
    check_run_identity(saved_info, json.loads(json.dumps(run_info)), path)
    tensors = load_file(str(path / "trainable.safetensors"))
    params = dict(trainable_parameters(module))
    if set(tensors) != set(params):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise TrainingError(f"--resume: checkpoint {path} parameters differ (missing {missing[:4]}, extra {extra[:4]})")
    with torch.no_grad():
        for name, p in params.items():
            if tensors[name].shape != p.shape:
                raise TrainingError(f"--resume: {name} has shape {tuple(tensors[name].shape)}, expected {tuple(p.shape)}")
            p.copy_(tensors[name])
    opt = load_tree(path, "optimizer")
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    state = load_tree(path, "state")
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if hook is not None and hasattr(hook, "load_state_dict") and state.get("hook") is not None:
        hook.load_state_dict(state["hook"])
    if hasattr(data, "load_state_dict"):
        if state.get("data") is None:
            raise TrainingError(f"--resume: checkpoint {path} has no data position (written by an in-memory run)")
        data.load_state_dict(state["data"])
    log.info("resumed from %s (step %d)", path, state["step"])
    return int(state["step"])
