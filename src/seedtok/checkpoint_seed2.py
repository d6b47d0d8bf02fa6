"""Loading the released SEED-2 tokenizer (SEED-LLaMA's ``seed_quantizer.pt``) from local files.

Same rules as SEED-1 (:mod:`seedtok.checkpoint`): pickles read with ``weights_only=True``, a
``"model"`` / ``"state_dict"`` entry unwrapped, strict loading through the explicit key map of
:mod:`seedtok.keymap_seed2`, every deliberately skipped key named with its reason, and a SEED-1
checkpoint given as SEED-2 (or the reverse) refused with a message naming the mismatch.

The reference builds the EVA ViT-g from BLIP-2's ``eva_vit_g.pth`` and then loads
``seed_quantizer.pt`` over the whole model (non-strictly), so the quantizer file may or may not
carry ``visual_encoder.*``; :func:`load_seed2_files` takes ``eva_vit_g.pth`` too and merges in
the reference's order (the quantizer file overrides).
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

import torch

from seedtok.checkpoint import CheckpointError, LoadReport, _build, load_state_dict_strict, map_reference_state_dict, read_state_dict
from seedtok.config import Seed2Config, get_preset
from seedtok.keymap_seed2 import from_reference_key, ignore_reason, release_mismatch, to_reference_key
from seedtok.models.seed2 import Seed2Tokenizer

log = logging.getLogger(__name__)


def seed2_to_reference_state_dict(model: Seed2Tokenizer) -> dict[str, torch.Tensor]:
    """seedtok SEED-2 state dict -> reference key names (the inverse of the loader)."""
    return {to_reference_key(k): v for k, v in model.state_dict().items()}


def seed2_from_reference(
    reference: Mapping[str, torch.Tensor], config: Seed2Config | None = None, source: str = "reference state dict"
) -> tuple[Seed2Tokenizer, LoadReport]:
    """Build a :class:`Seed2Tokenizer` (preset ``seed2`` by default) from a state dict in the
    reference's key names, strictly."""
    config = config or get_preset("seed2")
    if not isinstance(config, Seed2Config):
        raise CheckpointError(f"{source}: a SEED-2 load needs a Seed2Config, got {type(config).__name__}")
    mismatch = release_mismatch(reference, "seed2")
    if mismatch:
        raise CheckpointError(f"{source}: {mismatch}")
    model = _build(config)
    try:
        mapped, report = map_reference_state_dict(reference, set(model.state_dict()), from_reference_key, ignore_reason)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc} (not in the SEED-2 key map nor on its ignore list)") from None
    if not any(k.startswith("vision.") for k in mapped):
        raise CheckpointError(
            f"{source}: no EVA ViT weights (visual_encoder.*): seed_quantizer.pt without the ViT needs "
            "BLIP-2's eva_vit_g.pth too (seedtok convert --seed2 --eva-vit ...)"
        )
    load_state_dict_strict(model, mapped, source)
    by_reason: dict[str, list[str]] = {}
    for key, why in sorted(report.ignored.items()):
        by_reason.setdefault(why, []).append(key)
    for why, keys in by_reason.items():
        log.info("ignored %d key(s) (%s, ...): %s", len(keys), keys[0], why)
    return model.eval(), report


def load_seed2_files(
    seed_quantizer: str | os.PathLike, eva_vit: str | os.PathLike | None = None, config: Seed2Config | None = None
) -> tuple[Seed2Tokenizer, LoadReport]:
    """Load the released SEED-2 tokenizer from local files (nothing is downloaded):
    ``seed_quantizer.pt`` and, when it lacks the ViT, BLIP-2's ``eva_vit_g.pth`` (stored there
    without the ``visual_encoder.`` prefix)."""
    merged: dict[str, torch.Tensor] = {}
    if eva_vit is not None:
        for k, v in read_state_dict(eva_vit).items():
            merged[k if k.startswith("visual_encoder.") else f"visual_encoder.{k}"] = v
    merged.update(read_state_dict(seed_quantizer))
    source = f"{seed_quantizer}" + (f" + {eva_vit}" if eva_vit is not None else "")
    return seed2_from_reference(merged, config, source=source)
