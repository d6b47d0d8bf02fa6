"""Model weights in and out of the training stages.

Whole tokenizers go through :mod:`seedtok.checkpoint` (``save_pretrained`` /
``from_pretrained``); a stage-1 initialisation from a BLIP-2 / ``causal_qformer.pth`` state dict
goes through its reference key map; a stand-in image encoder is a small safetensors file of
``vision.*`` keys, loaded strictly.
"""

from __future__ import annotations

import os
from pathlib import Path

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
