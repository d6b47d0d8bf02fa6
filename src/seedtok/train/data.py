"""Training data in memory, batched deterministically by step.

The tiny world fits in memory, and every frozen part of a stage is applied once up front
(the frozen ViT for stage 1, the frozen ViT + Causal Q-Former for stage 2, MiniLM for the
text targets), so a training step runs only the trainable modules. Batches are a pure
function of (seed, step, rank): a resumed run sees exactly the batches an uninterrupted run
would have seen, and W ranks with per-rank batch b see, together, the global batch of one
process with batch W*b.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch

from seedtok.train.core import TrainingError

log = logging.getLogger(__name__)


@dataclass
class ImageTextSet:
    """Image-caption pairs materialised in memory: pixels (N, 3, S, S) float32 normalised."""

    pixels: torch.Tensor
    captions: list[str]
    keys: list[str]
    scenes: list[Any] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.captions)


def materialise(samples: Iterable[Mapping[str, Any]], limit: int | None = None, skipped: int = 0) -> ImageTextSet:
    """Collect ``{'pixel_values', 'caption', 'key'[, 'scene']}`` dicts; bad samples are skipped
    and counted (a loader's own skip count can be passed in ``skipped``)."""
    pixels, captions, keys, scenes = [], [], [], []
    for sample in samples:
        try:
            px = torch.as_tensor(sample["pixel_values"], dtype=torch.float32)
            cap = str(sample["caption"])
            if px.dim() != 3 or not torch.isfinite(px).all() or not cap.strip():
                raise ValueError("bad sample")
        except (KeyError, ValueError, TypeError, RuntimeError):
            skipped += 1
            continue
        if pixels and px.shape != pixels[0].shape:
            skipped += 1
            continue
        pixels.append(px)
        captions.append(cap)
        keys.append(str(sample.get("key", len(keys))))
        scenes.append(sample.get("scene"))
        if limit is not None and len(captions) >= limit:
            break
    if not pixels:
        raise TrainingError(f"no usable samples in the dataset ({skipped} skipped)")
    if skipped:
        log.warning("skipped %d unusable samples", skipped)
    return ImageTextSet(torch.stack(pixels), captions, keys, scenes, skipped)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_indices(n: int, global_batch: int, seed: int, micro_step: int) -> torch.Tensor:
    """Global batch number ``micro_step``: consecutive slices of per-epoch permutations
    (a batch may straddle two epochs). Returns (global_batch,) indices."""
    start = micro_step * global_batch
    out = []
    while len(out) < global_batch:
        epoch, offset = divmod(start + len(out), n)
        perm = epoch_permutation(n, seed, epoch)
        out.extend(perm[offset : offset + global_batch - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


@dataclass
class TensorBatches:
    """Named tensors of equal length N; ``batch(micro_step, rank, world, b)`` gives this
    rank's contiguous share of the global batch."""

    tensors: dict[str, torch.Tensor]
    seed: int = 0

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise TrainingError(f"tensors of unequal length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def batch(self, micro_step: int, rank: int, world: int, batch_size: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(self), batch_size * world, self.seed, micro_step)
        idx = idx[rank * batch_size : (rank + 1) * batch_size]
        return {k: v[idx] for k, v in self.tensors.items()}


@torch.no_grad()
def map_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Apply a frozen module over a big tensor in chunks (inference only)."""
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, len(x), chunk)]) if len(x) else x


def frozen_features(module: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    cache_dir: str | None, name: str) -> torch.Tensor:
    """``fn`` (a frozen part of ``module``) over ``x`` in chunks. With ``cache_dir``, the result is
    stored as ``<name>-<key>.safetensors`` where the key hashes the module's weights and the
    inputs, so a later run (another stage-2 setting, a resumed job) reads it instead of
    recomputing the ViT - the bulk of stage-1/2 cost at scale (``seedtok recipe``)."""
    if not cache_dir:
        return map_in_chunks(fn, x)
    import hashlib
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    h = hashlib.sha256(name.encode())
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    for i in range(0, len(x), 1024):
        h.update(x[i : i + 1024].contiguous().numpy().tobytes())
    path = Path(cache_dir) / f"{name}-{h.hexdigest()[:24]}.safetensors"
    if path.is_file():
        log.info("frozen features from cache %s", path)
        return load_file(str(path))["features"]
    out = map_in_chunks(fn, x)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"features": out.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return out


def scene_key(sample_scene: Any, caption: str) -> str:
    """What makes two samples 'the same scene' for retrieval: the shapes-world scene signature
    when the sample has one, else the caption text."""
    if isinstance(sample_scene, Mapping):
        from seedtok.data.scene import Scene

        return Scene.from_dict(sample_scene).signature()
    return caption


def load_image_text(source: str, split: str | None, image_size: int, limit: int | None = None) -> ImageTextSet:
    """Read a dataset (shards, folder, JSONL; or a shapes-world directory plus ``split``) into
    memory with the evaluation transform (no crops: shapes captions name positions)."""
    from pathlib import Path

    from seedtok.data import eval_transform, image_text_loader

    src: Any = source
    if split is not None and (Path(source) / "index.json").is_file():
        from seedtok.data.shapes import split_shards

        src = split_shards(source, split)
    elif not Path(source).exists():
        raise TrainingError(f"--data: not found: {source}")
    loader = image_text_loader(src, eval_transform(image_size), batch_size=256, image_size=image_size)
    data = materialise(_unbatch(loader), limit)
    data.skipped += loader.skipped.count
    log.info("%s [%s]: %d samples, %d skipped", source, split, len(data), data.skipped)
    return data


def _unbatch(loader) -> Iterable[dict[str, Any]]:
    for batch in loader:
        n = len(batch["caption"])
        scenes = batch.get("scene", [None] * n)
        for i in range(n):
            yield {"pixel_values": batch["pixel_values"][i], "caption": batch["caption"][i],
                   "key": batch["key"][i], "scene": scenes[i]}
