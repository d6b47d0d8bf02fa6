"""Model weights in and out of the training stages.

Whole tokenizers go through :mod:`seedtok.checkpoint` (``save_pretrained`` /
``from_pretrained``); a stage-1 initialisation from a BLIP-2 / ``causal_qformer.pth`` state dict
goes through its reference key map; a stand-in image encoder is a small safetensors file of
``vision.*`` keys, loaded strictly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from seedtok.checkpoint import CheckpointError, from_pretrained, map_reference_state_dict, read_state_dict
from seedtok.models import SeedTokenizer
from seedtok.train.core import TrainingError


def load_tokenizer(directory: str | os.PathLike) -> SeedTokenizer:
    """A ``from_pretrained`` directory (clear error when missing or not a model directory)."""
    if not Path(directory).is_dir():
        raise TrainingError(f"--init: model directory not found: {directory}")
    try:
        return from_pretrained(directory)
    except CheckpointError as exc:
        raise TrainingError(f"--init: {exc}") from exc


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


QFORMER_PREFIXES = ("qformer.", "ln_vision.")


def load_qformer_weights(model: SeedTokenizer, path: str | os.PathLike) -> None:
    """Strictly load a stand-in Q-Former file (keys ``qformer.*`` + ``ln_vision.*``, seedtok names,
    written by ``seedtok train qformer``) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Q-Former weights not found: {path}")
    tensors = load_file(str(path))
    if not tensors or any(not k.startswith(QFORMER_PREFIXES) for k in tensors):
        raise TrainingError(f"{path}: expected only 'qformer.*' and 'ln_vision.*' keys")
    wanted = {k: v.shape for k, v in model.state_dict().items() if k.startswith(QFORMER_PREFIXES)}
    missing, extra = sorted(set(wanted) - set(tensors)), sorted(set(tensors) - set(wanted))
    wrong = [k for k in set(wanted) & set(tensors) if tuple(tensors[k].shape) != tuple(wanted[k])]
    if missing or extra or wrong:
        raise TrainingError(f"{path} does not fit this preset's Q-Former: missing {missing[:4]}, unexpected "
                            f"{extra[:4]}, wrong shape {sorted(wrong)[:4]}")
    model.load_state_dict(tensors, strict=False)  # the strict check is the key/shape set above


def qformer_state_dict(model: SeedTokenizer) -> dict[str, torch.Tensor]:
    """What a stand-in Q-Former file holds: ``qformer.*`` + ``ln_vision.*``, contiguous fp32."""
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if k.startswith(QFORMER_PREFIXES)}


def is_seedtok_qformer_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file in seedtok's own Q-Former key names."""
    if not str(path).endswith(".safetensors") or not Path(path).is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    return bool(keys) and all(k.startswith(QFORMER_PREFIXES) for k in keys)


def load_reference_qformer(model: SeedTokenizer, path: str | os.PathLike) -> None:
    """Initialise the Causal Q-Former (and ``ln_vision``) from a BLIP-2 / ``causal_qformer.pth``
    state dict in reference key names; every Q-Former parameter must be present."""
    mapped, _ = map_reference_state_dict(read_state_dict(path), set(model.state_dict()))
    wanted = {k for k in model.state_dict() if k.startswith(("qformer.", "ln_vision."))}
    mapped = {k: v for k, v in mapped.items() if k in wanted}
    missing = sorted(wanted - set(mapped))
    if missing:
        raise TrainingError(f"{path}: Q-Former keys missing: {missing[:6]}")
    model.load_state_dict(mapped, strict=False)  # the strict check is the key set above
