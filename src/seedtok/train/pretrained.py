"""Loading and exporting whole tokenizers for the training stages.

Uses :mod:`seedtok.checkpoint` (``save_pretrained`` / ``from_pretrained``: config.json +
model.safetensors) when the package has it; otherwise an equivalent minimal writer/reader of
the same layout, loading strictly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from seedtok.config import TokenizerConfig
from seedtok.models import SeedTokenizer
from seedtok.train.core import TrainingError


def save_tokenizer(model: SeedTokenizer, directory: str | os.PathLike) -> Path:
    try:
        from seedtok.checkpoint import save_pretrained
    except ImportError:
        save_pretrained = None
    directory = Path(directory)
    if save_pretrained is not None:
        save_pretrained(model, directory)
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / ".model.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / "model.safetensors")
    (directory / "config.json").write_text(model.config.to_json())
    return directory


def load_tokenizer(directory: str | os.PathLike) -> SeedTokenizer:
    directory = Path(directory)
    if not (directory / "config.json").is_file() or not (directory / "model.safetensors").is_file():
        raise TrainingError(f"{directory} is not a seedtok model directory (needs config.json + model.safetensors)")
    try:
        from seedtok.checkpoint import from_pretrained
    except ImportError:
        from_pretrained = None
    if from_pretrained is not None:
        return from_pretrained(directory)
    config = TokenizerConfig.from_dict(json.loads((directory / "config.json").read_text()))
    model = SeedTokenizer(config)
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    return model


def load_vision_weights(model: SeedTokenizer, path: str | os.PathLike) -> None:
    """Strictly load a stand-in encoder file (keys ``vision.*``) into ``model.vision``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"image encoder weights not found: {path}")
    tensors = load_file(str(path))
    prefix = "vision."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if len(state) != len(tensors):
        raise TrainingError(f"{path}: expected only 'vision.*' keys")
    try:
        model.vision.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"{path} does not fit this preset's ViT: {exc}") from exc


@torch.no_grad()
def copy_trainable(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    dst.load_state_dict(src.state_dict(), strict=True)
