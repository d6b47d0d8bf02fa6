"""Pre-tokenized image-id caches (paper sec. 4.1: SEED-OPT trains on images turned into codes
once, as large-scale training does): ids, not pixels.

A cache is a folder::

    ids.safetensors   "ids": (N, num_tokens) int32 codes
    records.jsonl     one line per image: {"key", "caption", "vqa": [...], "scene"?}
    meta.json         source, count, codebook_size, num_tokens, tokenizer fingerprint
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from seedtok.fileio import atomic_write_bytes, atomic_write_json
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)


@dataclass
class IdCache:
    """Codes (N, num_tokens) with their per-image records."""

    ids: torch.Tensor
    records: list[dict[str, Any]]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def head(self, n: int | None) -> "IdCache":
        """The first ``n`` images (all of them for None)."""
        return self if n is None else IdCache(self.ids[:n], self.records[:n], self.meta)


def tokenizer_fingerprint(image_tokenizer: torch.nn.Module) -> str:
    """SHA-256 over the tokenizer's parameters (names, shapes, bytes): a cache is valid only for
    the tokenizer that wrote it."""
    h = hashlib.sha256()
    for name, t in sorted(image_tokenizer.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def build_id_cache(
    source: str | os.PathLike | Sequence[str], image_tokenizer: Any, out_dir: str | os.PathLike,
    batch_size: int = 64, progress: bool = False,
) -> IdCache:
    """Encode every image of ``source`` (shards, folder or JSONL; see ``seedtok.data``) once."""
    from tqdm import tqdm

    from seedtok.data import EvalTransform, image_text_loader

    cfg = image_tokenizer.config
    transform = EvalTransform(cfg.vision.image_size, cfg.image_mean, cfg.image_std)
    loader = image_text_loader(source, transform=transform, batch_size=batch_size, image_size=cfg.vision.image_size)
    image_tokenizer.eval()
    ids, records = [], []
    for batch in tqdm(loader, disable=not progress, desc="encode"):
        codes, _ = image_tokenizer.encode(batch["pixel_values"])
        ids.append(codes.to(torch.int32))
        for i, key in enumerate(batch["key"]):
            rec = {"key": key, "caption": batch["caption"][i], "vqa": (batch.get("vqa") or [None] * (i + 1))[i] or []}
            if batch.get("scene"):
                rec["scene"] = batch["scene"][i]
            records.append(rec)
    meta = {
        "source": [str(s) for s in source] if isinstance(source, (list, tuple)) else str(source),
        "count": len(records), "codebook_size": cfg.codebook.codebook_size, "num_tokens": cfg.num_tokens,
        "tokenizer": tokenizer_fingerprint(image_tokenizer), "skipped": loader.skipped.as_dict(),
    }
    cache = IdCache(torch.cat(ids) if ids else torch.zeros(0, cfg.num_tokens, dtype=torch.int32), records, meta)
    save_cache(cache, out_dir)
    return cache


def save_cache(cache: IdCache, out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"ids": cache.ids.contiguous()}, str(out / "ids.safetensors"))
    atomic_write_bytes(out / "records.jsonl", "".join(json.dumps(r) + "\n" for r in cache.records).encode())
    atomic_write_json(out / "meta.json", cache.meta)  # written last: marks the cache complete
    return out


def load_cache(path: str | os.PathLike, image_tokenizer: Any | None = None) -> IdCache:
    """Read a cache; with ``image_tokenizer`` given, refuse a cache written by another one."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{path}: not an id cache (no meta.json)")
    meta = json.loads((path / "meta.json").read_text())
    if image_tokenizer is not None and meta["tokenizer"] != tokenizer_fingerprint(image_tokenizer):
        raise ValueError(f"{path}: cache was written by another image tokenizer ({meta['tokenizer']}); rebuild it")
    ids = load_file(str(path / "ids.safetensors"))["ids"].long()
    records = [json.loads(line) for line in (path / "records.jsonl").read_text().splitlines() if line]
    if len(records) != ids.shape[0]:
        raise ValueError(f"{path}: {ids.shape[0]} id rows but {len(records)} records")
    return IdCache(ids, records, meta)
