"""Check seedtok against golden data produced by the reference SEED-1 or SEED-2 code (DESIGN.md
sec. 6). A ``meta.json`` with ``"release": "SEED-2"`` is a SEED-2 (SEED-LLaMA tokenizer) set,
loaded through :func:`seedtok.checkpoint_seed2.seed2_from_reference`.

A golden folder holds ``meta.json`` (the reduced architecture), ``weights.safetensors``
(reference key names), the input images and ``outputs.safetensors`` (every intermediate).
The weights go through the same public loader a user calls for the real checkpoints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from seedtok.checkpoint import read_state_dict, tokenizer_from_reference
from seedtok.config import config_from_parity_meta
from seedtok.image import preprocess
from seedtok.models import SeedTokenizer

FLOAT_KEYS = (
    "pixel_values",
    "vit_features",
    "image_embeds",
    "causal_embeds",
    "codebook_inputs",
    "quantized",
    "decoded_embeds",
    "reverse_embeds",
    "generation_embeds",
)


SEED2_FLOAT_KEYS = (
    "pixel_values",
    "vit_features",
    "image_embeds",
    "causal_embeds",
    "codebook_inputs",
    "quantized",
    "decoded_embeds",
    "down_embeds",
    "unclip_embeds",
)


def is_seed2(meta: dict[str, Any]) -> bool:
    return meta.get("release") == "SEED-2"


def float_keys(meta: dict[str, Any]) -> tuple[str, ...]:
    """The float intermediates a golden set holds, in pipeline order."""
    return SEED2_FLOAT_KEYS if is_seed2(meta) else FLOAT_KEYS


def find_image(folder: Path, name: str) -> Path:
    for ext in (".png", ".jpg", ".jpeg", ".webp"):
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    raise FileNotFoundError(f"{folder}: no image named {name!r}")


def load_golden(folder: str | os.PathLike) -> tuple[SeedTokenizer, torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (model loaded through the reference loader, pixel values, golden outputs, meta)."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if is_seed2(meta):
        from seedtok.checkpoint_seed2 import seed2_from_reference
        from seedtok.config import seed2_config_from_parity_meta

        config = seed2_config_from_parity_meta(meta)
        model, _ = seed2_from_reference(read_state_dict(folder / "weights.safetensors"), config)
    else:
        config = config_from_parity_meta(meta)
        model, _ = tokenizer_from_reference(read_state_dict(folder / "weights.safetensors"), config)
    images = [find_image(folder, n) for n in meta["images"]]
    pixels = preprocess(images, config.vision.image_size, config.image_mean, config.image_std)
    return model, pixels, load_file(str(folder / "outputs.safetensors")), meta


@torch.no_grad()
def check_parity(folder: str | os.PathLike) -> dict[str, Any]:
    """Max-abs differences of every float intermediate and whether the ids are equal."""
    model, pixels, golden, meta = load_golden(folder)
    out = model(pixels)
    keys = float_keys(meta)
    ours = {"pixel_values": pixels, **{k: getattr(out, k) for k in keys[1:]}}
    diffs = {k: float((ours[k] - golden[k]).abs().max()) for k in keys if k in golden}
    return {
        "release": meta.get("release", "SEED-1"),
        "images": meta["images"],
        "ids_equal": bool(torch.equal(out.ids, golden["ids"])),
        "max_abs_diff": diffs,
        "worst": max(diffs.values()),
        "ids": out.ids.tolist(),
    }


def default_golden_dir() -> Path:
    """``$SEEDTOK_PARITY_DIR`` if set, else the copy shipped in the repository's tests."""
    env = os.environ.get("SEEDTOK_PARITY_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "golden" / "seed1_small"
