"""Where image-text pairs come from: webdataset shards, a folder, or a JSONL manifest.

Every source is turned into a stream of *raw samples* in the webdataset layout: a dict with
``__key__``, ``__url__`` and one entry of bytes per extension (``png``, ``txt``, ``json``...),
so one decoder serves all sources.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import webdataset as wds
from webdataset.shardlists import expand_urls

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
SHARD_EXTS = (".tar", ".tar.gz", ".tgz")


def resolve_source(source: str | os.PathLike | Sequence[str]) -> tuple[str, list[Any]]:
    """-> (kind, items). Kinds: ``"shards"`` (items: shard paths/URLs; from a list, a
    brace pattern like ``data-{000000..000009}.tar``, one ``.tar``, or a directory of
    ``.tar``), ``"folder"`` (items: (image path, folder) with sidecar ``.txt``/``.json``),
    ``"jsonl"`` (items: manifest records with the image path resolved)."""
    if isinstance(source, (list, tuple)):
        return "shards", [str(s) for s in source]
    text = os.fspath(source)
    if "{" in text or text.endswith(SHARD_EXTS) or "://" in text:
        urls = expand_urls(text)
        missing = [u for u in urls if "://" not in u and not os.path.exists(u)]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: no such shard ({len(missing)} of {len(urls)} missing)")
        return "shards", urls
    path = Path(text)
    if path.is_file() and path.suffix == ".jsonl":
        return "jsonl", _read_manifest(path)
    if path.is_dir():
        tars = sorted(str(p) for p in path.iterdir() if p.name.endswith(SHARD_EXTS))
        if tars:
            return "shards", tars
        images = sorted(p for p in path.rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_EXTS and p.is_file())
        if not images:
            raise FileNotFoundError(f"{path}: no .tar shards and no images found")
        return "folder", [(str(p), str(path)) for p in images]
    raise FileNotFoundError(f"{text}: not a shard pattern, a directory or a .jsonl manifest")


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: invalid JSON ({exc})") from None
        if not isinstance(rec, dict) or "image" not in rec:
            raise ValueError(f"{path}:{n}: each line needs an \"image\" field")
        rec = dict(rec)
        rec["image"] = str((path.parent / rec["image"]).resolve()) if not os.path.isabs(rec["image"]) else rec["image"]
        rec["__line__"] = n
        records.append(rec)
    return records


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _folder_sample(image: str, root: str) -> dict[str, Any]:
    p = Path(image)
    rel = os.path.relpath(p.with_suffix(""), root)
    raw: dict[str, Any] = {"__key__": rel, "__url__": root}
    data = _read(p)
    if data is not None:
        raw[p.suffix.lower().lstrip(".")] = data
    for ext in ("txt", "json"):
        side = _read(p.with_suffix("." + ext))
        if side is not None:
            raw[ext] = side
    return raw


def _jsonl_sample(rec: dict[str, Any]) -> dict[str, Any]:
    p = Path(rec["image"])
    raw: dict[str, Any] = {"__key__": f"{p.stem}-{rec['__line__']}", "__url__": str(p.parent)}
    data = _read(p)
    if data is not None:
        raw[p.suffix.lower().lstrip(".") or "jpg"] = data
    if isinstance(rec.get("caption"), str):
        raw["txt"] = rec["caption"].encode("utf-8")
    meta = {k: v for k, v in rec.items() if k not in ("image", "caption", "__line__")}
    if meta:
        raw["json"] = json.dumps(meta, sort_keys=True).encode("utf-8")
    return raw


def iter_raw_samples(kind: str, items: Iterable[Any], handler=wds.reraise_exception) -> Iterator[dict[str, Any]]:
    """Raw samples from ``items`` of the given kind (see :func:`resolve_source`)."""
    if kind == "shards":
        yield from wds.tarfile_samples(({"url": u} for u in items), handler=handler)
    elif kind == "folder":
        for image, root in items:
            yield _folder_sample(image, root)
    elif kind == "jsonl":
        for rec in items:
            yield _jsonl_sample(rec)
    else:
        raise ValueError(f"unknown source kind {kind!r}")
