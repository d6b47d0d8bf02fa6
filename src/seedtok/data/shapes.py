"""The built-in "shapes" world (DESIGN.md section 4): one import for the whole toolkit.

Re-exports the vocabulary and scenes (:mod:`seedtok.data.scene`), rendering
(:mod:`seedtok.data.render`) and the parsers and scores (:mod:`seedtok.data.parse`), and adds
dataset writing with a compositional split and the parser-accuracy measurement.

Dataset layout written by :func:`write_shapes_dataset`::

    OUT/index.json                 counts, shards, seed, vocabulary, held-out pairs, geometry
    OUT/train-000000.tar ...       <key>.png, <key>.txt (caption), <key>.json
    OUT/val-*.tar OUT/test-*.tar OUT/compositional-*.tar

The ``.json`` member holds ``{"scene": ..., "vqa": [...], "template": i, "split": ...}``.
Splits are a function of scene content (a SHA-256 of the scene signature picks train, val or
test), so no scene is in two splits; scenes containing a held-out (colour, shape) pair go
only to the compositional test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from seedtok.data.parse import ATTRIBUTES, object_accuracy, parse_caption, parse_scene, scene_match
from seedtok.data.render import SUPERSAMPLE, encode_png, render_array, render_scene
from seedtok.data.scene import (
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    COLORS,
    HELDOUT_PAIRS,
    POSITIONS,
    SHAPES,
    SIZE_FRACTION,
    SIZES,
    Scene,
    ShapeObject,
    caption,
    sample_scene,
    vqa_pairs,
)
from seedtok.data.shards import ShardWriter, dumps_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "compositional")
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.05, "test": 0.1, "compositional": 0.05}
FORMAT_VERSION = 1


def split_counts(num: int, fractions: dict[str, float] = DEFAULT_FRACTIONS) -> dict[str, int]:
    """Exact per-split counts summing to ``num`` (the remainder goes to train)."""
    counts = {s: int(num * fractions.get(s, 0.0)) for s in SPLITS}
    counts["train"] += num - sum(counts.values())
    return counts


def content_split(scene: Scene, fractions: dict[str, float] = DEFAULT_FRACTIONS) -> str:
    """train/val/test chosen by a hash of the scene's content (never by its index)."""
    if scene.pairs() & set(HELDOUT_PAIRS):
        return "compositional"
    u = int.from_bytes(hashlib.sha256(scene.signature().encode()).digest()[:8], "big") / 2.0**64
    total = fractions["train"] + fractions["val"] + fractions["test"]
    if u < fractions["train"] / total:
        return "train"
    return "val" if u < (fractions["train"] + fractions["val"]) / total else "test"


def _sample_record(scene: Scene, rng: random.Random, split: str, image_size: int) -> dict[str, bytes]:
    template = int(rng.random() * len(CAPTION_TEMPLATES))
    meta = {"scene": scene.to_dict(), "vqa": vqa_pairs(scene, rng), "template": template, "split": split}
    return {
        "png": encode_png(render_array(scene, image_size)),
        "txt": caption(scene, template=template).encode("utf-8"),
        "json": dumps_json(meta),
    }


def write_shapes_dataset(
    out_dir: str | os.PathLike,
    num: int,
    seed: int = 0,
    image_size: int = 64,
    shard_size: int = 1000,
    fractions: dict[str, float] = DEFAULT_FRACTIONS,
    backgrounds: tuple[str, ...] = ("white",),
    progress: bool = False,
) -> dict[str, Any]:
    """Generate ``num`` samples split into train/val/test/compositional shards under
    ``out_dir`` plus ``index.json`` (returned). The same arguments give byte-identical
    files on any machine."""
    from tqdm import tqdm

    counts = split_counts(num, fractions)
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = {s: ShardWriter(out, s, shard_size) for s in SPLITS}
    done = dict.fromkeys(SPLITS, 0)
    drawn = 0
    bar = tqdm(total=num, disable=not progress, desc="shapes")
    try:
        while sum(done.values()) < num:
            scene = sample_scene(rng, backgrounds=backgrounds)
            drawn += 1
            split = content_split(scene, fractions)
            if done[split] >= counts[split]:
                continue
            writers[split].write(f"{split}-{done[split]:06d}", _sample_record(scene, rng, split, image_size))
            done[split] += 1
            bar.update(1)
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    index = {
        "format": "seedtok-shapes",
        "version": FORMAT_VERSION,
        "seed": seed,
        "num": num,
        "image_size": image_size,
        "scenes_drawn": drawn,
        "splits": {s: {"count": done[s], "shards": [Path(p).name for p in writers[s].paths]} for s in SPLITS},
        "heldout_pairs": [list(p) for p in HELDOUT_PAIRS],
        "colors": {k: list(v) for k, v in COLORS.items()},
        "backgrounds": list(backgrounds),
        "shapes": SHAPES,
        "sizes": {k: SIZE_FRACTION[k] * image_size for k in SIZES},
        "positions": POSITIONS,
        "supersample": SUPERSAMPLE,
    }
    (out / "index.json").write_bytes(dumps_json(index) + b"\n")
    log.info("wrote %d samples (%s) to %s", num, done, out)
    return index


def split_shards(out_dir: str | os.PathLike, split: str) -> list[str]:
    """Shard paths of one split of a dataset written by :func:`write_shapes_dataset`."""
    index = json.loads((Path(out_dir) / "index.json").read_text())
    if split not in index["splits"]:
        raise KeyError(f"unknown split {split!r}; have {sorted(index['splits'])}")
    return [str(Path(out_dir) / name) for name in index["splits"][split]["shards"]]


# --- robustness of the parser -----------------------------------------------------------------


def add_noise(arr: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of std ``sigma`` on pixels in [0, 1], clipped."""
    return np.clip(arr + rng.normal(0.0, sigma, arr.shape), 0.0, 1.0)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (kernel radius 3 sigma, edges replicated) of (H, W, C)."""
    r = max(int(np.ceil(3 * sigma)), 1)
    k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    h, w = arr.shape[:2]
    p = np.pad(arr, ((r, r), (0, 0), (0, 0)), mode="edge")
    arr = sum(k[i] * p[i : i + h] for i in range(2 * r + 1))
    p = np.pad(arr, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i : i + w] for i in range(2 * r + 1))


def parser_accuracy(num: int = 2000, seed: int = 1234, image_size: int = 64, noise_sigma: float = 0.1, blur_sigma: float = 1.0, progress: bool = False) -> dict[str, Any]:
    """Parse ``num`` fresh renders clean, with Gaussian noise and with Gaussian blur; return
    exact-match rates, per-attribute object accuracies and caption round-trip rate."""
    from tqdm import tqdm

    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    keys = (*ATTRIBUTES, "color_shape", "object")
    conds = ("clean", "noise", "blur")
    tot = {c: dict.fromkeys((*keys, "count", "exact"), 0.0) for c in conds}
    n_obj, caption_ok, t0 = 0, 0, time.perf_counter()
    for _ in tqdm(range(num), disable=not progress, desc="parse"):
        scene = sample_scene(rng)
        clean = render_array(scene, image_size) / 255.0
        images = {"clean": clean, "noise": add_noise(clean, noise_sigma, nrng), "blur": gaussian_blur(clean, blur_sigma)}
        n_obj += len(scene.objects)
        for c in conds:
            acc = object_accuracy(parse_scene(images[c]), scene)
            for k in keys:
                tot[c][k] += acc[k] * acc["n"]
            tot[c]["count"] += acc["count"]
            tot[c]["exact"] += acc["exact"]
        caption_ok += all(scene_match(parse_caption(caption(scene, template=t)), scene) for t in range(len(CAPTION_TEMPLATES)))
    result: dict[str, Any] = {"num_scenes": num, "num_objects": n_obj, "seed": seed, "image_size": image_size,
                              "noise_sigma": noise_sigma, "blur_sigma": blur_sigma}
    for c in conds:
        result[c] = {k: tot[c][k] / (n_obj if k in keys else num) for k in tot[c]}
    result["caption_roundtrip"] = caption_ok / num
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


__all__ = [
    "BACKGROUNDS", "COLORS", "SHAPES", "SIZES", "POSITIONS", "HELDOUT_PAIRS", "CAPTION_TEMPLATES", "SPLITS",
    "ShapeObject", "Scene", "sample_scene", "render_scene", "render_array", "caption", "vqa_pairs",
    "parse_scene", "parse_caption", "scene_match", "object_accuracy", "write_shapes_dataset",
    "split_shards", "content_split", "parser_accuracy", "add_noise", "gaussian_blur",
]  # fmt: skip
