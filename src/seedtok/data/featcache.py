"""Sharded on-disk caches of per-sample tensors for streaming runs: one file per data shard.

A streaming run cannot keep the frozen ViT's features or the text encoder's states of the
whole corpus in one tensor. Instead each webdataset shard ``train-000042.tar`` gets one small
safetensors file per cached quantity, ``<dir>/<name>/train-000042-<h>.safetensors`` (``h``
hashes the shard's path), holding the rows of the shard's samples and, in its metadata, their
keys. A file is computed the first time the stream reads its shard (by whichever rank and
worker reads it; written to a temporary name and renamed, so racing writers are harmless) and
read from disk afterwards; a file whose keys do not match the shard is recomputed.

- :class:`TextStateCache`: frozen MiniLM-L6 token states of a caption (the tiny world's
  stand-in for SD's CLIP text encoder; ~50 captions/s on 2 cores, so these must be cached).
- :class:`FeatureCache`: the output of a frozen module (the ViT for stage 1, ViT + Causal
  Q-Former for stage 2) on the decoded image; its name carries a hash of the module's weights.
  It runs where the shard is read: on a GPU run, fill it with ``--workers 0`` (DataLoader
  workers are forked processes and cannot use CUDA), later epochs and runs can use workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

_MINILM: Any = None


def _minilm():
    global _MINILM
    if _MINILM is None:
        from seedtok.text import MiniLMTextEncoder

        _MINILM = MiniLMTextEncoder()
    return _MINILM


def own_caption(raw: dict[str, Any]) -> str:
    """The sample's own caption (``txt`` member or the ``caption`` of its ``json``); '' if none."""
    from seedtok.textinput import TextError, clean_text

    if "txt" in raw:
        try:
            return clean_text(raw["txt"], max_chars=2000, truncate=True)
        except TextError:
            return ""
    return str(_meta(raw).get("caption", ""))


def canonical_caption(raw: dict[str, Any]) -> str:
    """The shapes world's canonical (template 0) caption of the sample's scene ('' if none)."""
    from seedtok.data.scene import Scene, caption

    scene = _meta(raw).get("scene")
    if not isinstance(scene, dict):
        return ""
    try:
        return caption(Scene.from_dict(scene), template=0)
    except (KeyError, ValueError, TypeError):
        return ""


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(raw["json"]) if "json" in raw else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def weights_hash(module: torch.nn.Module, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class ShardCache:
    """Base: ``rows(url, raws, transform)`` -> ``{key: {tensor name: row}}`` for one shard,
    from its file or computed by :meth:`compute` (``(tensors, keys)``) and stored."""

    name = "cache"
    rename: dict[str, str | None] = {}  # stored tensor name -> batch name (None: dropped)

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, url: str) -> Path:
        stem = Path(url).name.split(".")[0]
        h = hashlib.sha256(os.path.abspath(url).encode()).hexdigest()[:8]
        return self.directory / self.name / f"{stem}-{h}.safetensors"

    def compute(self, raws: list[dict[str, Any]], transform: Callable) -> tuple[dict[str, torch.Tensor], list[str]]:
        raise NotImplementedError

    def rows(self, url: str, raws: list[dict[str, Any]], transform: Callable) -> dict[str, dict[str, torch.Tensor]]:
        from safetensors import safe_open
        from safetensors.torch import save_file

        path = self.path(url)
        shard_keys = [str(r.get("__key__")) for r in raws]
        if path.is_file():
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if json.loads(meta.get("shard_keys", "null")) == shard_keys:
                    keys = json.loads(meta["keys"])
                    tensors = {t: f.get_tensor(t) for t in f.keys()}
                    return self._by_key(tensors, keys)
            log.warning("%s does not match %s: recomputing", path, url)
        tensors, keys = self.compute(raws, transform)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"keys": json.dumps(keys), "shard_keys": json.dumps(shard_keys), "shard": str(url)})
        os.replace(tmp, path)
        return self._by_key(tensors, keys)

    def _by_key(self, tensors: dict[str, torch.Tensor], keys: list[str]) -> dict[str, dict[str, torch.Tensor]]:
        named = {self.rename.get(t, t): v for t, v in tensors.items()}
        named = {t: v for t, v in named.items() if t is not None}
        return {k: {t: v[i] for t, v in named.items()} for i, k in enumerate(keys)}


class TextStateCache(ShardCache):
    """MiniLM-L6 states (L, 384) fp16 + mask (L,) int8 of ``caption_fn(raw)``, stored as
    ``states`` / ``mask`` and handed to the batch as ``states_as`` / ``mask_as`` (``mask_as=None``:
    states only), so stages that name them differently share one cache."""

    def __init__(self, directory: str | os.PathLike, length: int, caption_fn: Callable[[dict[str, Any]], str] = own_caption,
                 states_as: str = "text_states", mask_as: str | None = "text_mask", batch_size: int = 64) -> None:
        super().__init__(directory)
        self.length, self.caption_fn, self.batch_size = length, caption_fn, batch_size
        self.rename = {"states": states_as, "mask": mask_as}
        self.name = f"minilm{length}-{caption_fn.__name__}"

    def compute(self, raws, transform):
        captions = [self.caption_fn(r) for r in raws]
        unique = sorted(set(captions))
        log.info("encoding %d captions of a shard with MiniLM (cached afterwards)", len(unique))
        enc = _minilm()
        states, masks = [], []
        with torch.no_grad():
            for i in range(0, len(unique), self.batch_size):
                s, m = enc(unique[i : i + self.batch_size], self.length)
                states.append(s.half())
                masks.append(m.to(torch.int8))
        index = {c: i for i, c in enumerate(unique)}
        rows = torch.tensor([index[c] for c in captions], dtype=torch.long)
        st = torch.cat(states)[rows] if unique else torch.zeros(0, self.length, 384, dtype=torch.float16)
        mask = torch.cat(masks)[rows] if unique else torch.zeros(0, self.length, dtype=torch.int8)
        return {"states": st, "mask": mask}, [str(r.get("__key__")) for r in raws]


class FeatureCache(ShardCache):
    """``fn(pixels)`` of a frozen ``module`` on each decodable image, fp32, under ``output``.
    Samples whose image does not decode are left out (the stream skips and counts them)."""

    def __init__(self, directory: str | os.PathLike, name: str, module: torch.nn.Module,
                 fn: Callable[[torch.Tensor], torch.Tensor], output: str, chunk: int = 128) -> None:
        super().__init__(directory)
        self.module, self.fn, self.output, self.chunk = module, fn, output, chunk
        self.name = f"{name}-{weights_hash(module, name)}"

    def compute(self, raws, transform):
        from seedtok.data.datasets import SampleError, decode_sample

        pixels, keys = [], []
        for raw in raws:
            try:
                pixels.append(decode_sample(raw, transform)["pixel_values"])
                keys.append(str(raw.get("__key__")))
            except SampleError:
                continue
        dev = next(self.module.parameters()).device
        with torch.no_grad():
            x = torch.stack(pixels) if pixels else torch.zeros(0)
            parts = [self.fn(x[i : i + self.chunk].to(dev)).cpu() for i in range(0, len(x), self.chunk)]
            out = torch.cat(parts) if pixels else x
        return {self.output: out.float()}, keys
