"""Helpers behind ``seedtok decode`` / ``seedtok reconstruct``: reading id files, picking the
decoder for a tokenizer, reconstruction (paper sec. 4.1: image -> tokens -> image) and grids."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from seedtok.decode import DECODER_CONFIG, STANDIN_DIR, DecoderLoadError, SeedDetokenizer
from seedtok.image import load_image, normalize

log = logging.getLogger(__name__)


class IdsFileError(ValueError):
    """An ids file that is not one of the accepted layouts."""


def _entry(obj: Any, where: str) -> tuple[str | None, list[int]]:
    if isinstance(obj, dict):
        if "ids" not in obj:
            raise IdsFileError(f"{where}: object without an 'ids' field")
        name = obj.get("image") or obj.get("name")
        return (str(name) if name is not None else None), _ints(obj["ids"], where)
    return None, _ints(obj, where)


def _ints(seq: Any, where: str) -> list[int]:
    if not isinstance(seq, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in seq):
        raise IdsFileError(f"{where}: ids must be a list of integers")
    return seq


def read_ids_file(path: str | os.PathLike) -> tuple[list[str | None], list[list[int]]]:
    """(names, ids) from a JSON file holding one id list, a list of id lists, an object
    ``{"ids": [...], "image": name}``, a list of such objects, or JSON lines of them (the
    output of ``seedtok encode --json``)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise IdsFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
        items = [data] if isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], int)) else data
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise IdsFileError(f"{p}: neither JSON nor JSON lines ({exc})") from None
    if not isinstance(items, list) or not items:
        raise IdsFileError(f"{p}: no ids found")
    pairs = [_entry(obj, f"{p} entry {i}") for i, obj in enumerate(items)]
    return [n for n, _ in pairs], [ids for _, ids in pairs]


def output_names(names: Sequence[str | None]) -> list[str]:
    """``0000-stem.png`` per entry (index first, so names never collide)."""
    return [f"{i:04d}-{Path(n).stem}.png" if n else f"{i:04d}.png" for i, n in enumerate(names)]


def resolve_decoder(config: Any, decoder: str | None, model_dir: str | None) -> str | None:
    """The decoder path to load for a tokenizer ``config`` (``None``: the shipped stand-in):
    the one given, else ``MODEL_DIR/decoder``, else the shipped tiny stand-in when the
    generation embeddings have its width. SEED-1 (768-d) needs an explicit SD path. Checked
    before any weights are built, so a wrong call fails fast."""
    if decoder is not None:
        return decoder
    if model_dir is not None and (Path(model_dir) / "decoder" / DECODER_CONFIG).is_file():
        return str(Path(model_dir) / "decoder")
    if getattr(config, "kind", None) == "seed2":
        raise DecoderLoadError("a SEED-2 tokenizer decodes through Stable unCLIP 2.1: pass --decoder DIR "
                               "(stable-diffusion-2-1-unclip in diffusers layout)")
    if config.generation_dim == 768:
        raise DecoderLoadError(
            "a SEED-1 tokenizer decodes through Stable Diffusion 1.x: pass --decoder DIR (diffusers layout) "
            "or --decoder FILE.ckpt --sd-config DIR"
        )
    if not (STANDIN_DIR / DECODER_CONFIG).is_file():
        raise DecoderLoadError(f"no --decoder given and no shipped stand-in at {STANDIN_DIR}")
    return None


@torch.no_grad()
def reconstruct(
    tokenizer: nn.Module, detok: SeedDetokenizer, images: Sequence[Any], names: Sequence[str], **options: Any
) -> tuple[list[Image.Image], list[Image.Image], torch.Tensor]:
    """images -> (originals as RGB, reconstructions, ids (B, Q)): each image is tokenized to
    its ids, the ids are decoded to generation embeddings and drawn by the de-tokenizer."""
    cfg = tokenizer.config
    originals = [load_image(img, name) for img, name in zip(images, names)]
    resample = getattr(cfg, "resample", "bicubic")  # SEED-2 configs may choose bilinear
    pixels = torch.stack([normalize(im, cfg.vision.image_size, cfg.image_mean, cfg.image_std, resample) for im in originals])
    ids, _ = tokenizer.encode(pixels)
    out = detok(ids=ids, **options)
    return originals, out.images, ids


def side_by_side(originals: Sequence[Image.Image], recons: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    """One row per image: original (resized to the reconstruction's size) | reconstruction."""
    if not recons:
        raise ValueError("nothing to put in a grid")
    w, h = recons[0].size
    grid = Image.new("RGB", (2 * w + 3 * gap, len(recons) * (h + gap) + gap), (128, 128, 128))
    for row, (orig, rec) in enumerate(zip(originals, recons)):
        y = gap + row * (h + gap)
        grid.paste(orig.convert("RGB").resize((w, h), Image.Resampling.BICUBIC), (gap, y))
        grid.paste(rec, (2 * gap + w, y))
    return grid
