"""Oracle image codes: a diagnostic stand-in for the image tokenizer (issue 16).

The oracle writes the true content of each of the 9 grid cells into the first 9 codes (one
code per cell, in :data:`~seedtok.data.scene.POSITIONS` order)::

    code = 0                                           empty cell
    code = 1 + (size * n_colors + color) * n_shapes + shape

and fills the remaining ``num_tokens - 9`` codes with 0. It loses nothing, so stage 3 trained
and benchmarked on oracle codes separates "the tokenizer loses information" from "the LLM
cannot read": ``seedtok train llm --oracle`` and ``seedtok llm bench --oracle``. Its exact
inverse (:func:`oracle_scene`) plus the scene renderer play the de-tokenizer when scoring
text-to-image on oracle codes.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from seedtok.mllm.cache import IdCache

ORACLE_TOKENIZER = "oracle-v1"  # stands where a tokenizer fingerprint is stored
ORACLE_CODEBOOK = 1024  # the tiny preset's codebook size, so oracle runs match real ones


def _tables() -> tuple[list[str], list[str], list[str], list[str]]:
    from seedtok.data.scene import COLORS, POSITIONS, SHAPES, SIZES

    return list(SIZES), list(COLORS), list(SHAPES), list(POSITIONS)


def oracle_codes(scene: Any, num_tokens: int = 32) -> torch.Tensor:
    """A :class:`~seedtok.data.scene.Scene` -> (num_tokens,) long codes."""
    sizes, colors, shapes, positions = _tables()
    if num_tokens < len(positions):
        raise ValueError(f"oracle codes need >= {len(positions)} tokens, not {num_tokens}")
    codes = torch.zeros(num_tokens, dtype=torch.long)
    for o in scene.objects:
        codes[positions.index(o.position)] = 1 + (sizes.index(o.size) * len(colors) + colors.index(o.color)) * len(shapes) + shapes.index(o.shape)
    return codes


def oracle_scene(codes: Sequence[int] | torch.Tensor) -> Any:
    """The exact inverse of :func:`oracle_codes` on its first 9 codes; a code outside the
    table (which a trained LLM may draw) is read as an empty cell."""
    from seedtok.data.scene import Scene, ShapeObject

    sizes, colors, shapes, positions = _tables()
    objects = []
    for pos, c in zip(positions, torch.as_tensor(codes).tolist()):
        if not 1 <= c <= len(sizes) * len(colors) * len(shapes):
            continue
        c -= 1
        objects.append(ShapeObject(shapes[c % len(shapes)], colors[(c // len(shapes)) % len(colors)],
                                   sizes[c // (len(shapes) * len(colors))], pos))
    return Scene(tuple(objects))


def oracle_cache(source: str | os.PathLike | Sequence[str], num_tokens: int = 32, codebook_size: int = ORACLE_CODEBOOK) -> IdCache:
    """An :class:`IdCache` of oracle codes for every sample of shapes-world shards (no image
    is decoded or encoded)."""
    from seedtok.data.scene import Scene
    from seedtok.mllm.corpus import scene_records

    records = scene_records(source)
    if not all(r.get("scene") for r in records):
        raise ValueError(f"{source}: oracle codes need shapes-world samples (a scene per sample)")
    ids = torch.stack([oracle_codes(Scene.from_dict(r["scene"]), num_tokens) for r in records])
    meta = {"source": str(source), "count": len(records), "codebook_size": codebook_size, "num_tokens": num_tokens,
            "tokenizer": ORACLE_TOKENIZER}
    return IdCache(ids, records, meta)


def oracle_render(codes: torch.Tensor, image_size: int = 64) -> list[Any]:
    """(B, num_tokens) oracle codes -> PIL images (the oracle's de-tokenizer)."""
    from seedtok.data.render import render_scene

    return [render_scene(oracle_scene(c), image_size) for c in codes]
