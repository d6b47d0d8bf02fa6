"""Writing webdataset shards byte-for-byte reproducibly, and packing folders into shards.

A shard is a POSIX tar whose members ``<key>.<ext>`` group into samples (the webdataset
convention used for CC3M/LAION): an image (``jpg|png|webp``), a caption (``txt``) and
optional metadata (``json``). Headers carry fixed mtime/uid/gid/owner names and mode, members
are written in a fixed order, so the same samples give the same bytes on every machine.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from pathlib import Path
from typing import Any, Iterable

from seedtok.data.sources import IMAGE_EXTS, iter_raw_samples, resolve_source

log = logging.getLogger(__name__)

MEMBER_ORDER = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "txt", "json")


def dumps_json(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8), stable across machines."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _member_rank(ext: str) -> tuple[int, str]:
    return (MEMBER_ORDER.index(ext), ext) if ext in MEMBER_ORDER else (len(MEMBER_ORDER), ext)


class ShardWriter:
    """Write samples into ``<out_dir>/<prefix>-000000.tar``, ``-000001.tar``, ... with at
    most ``max_count`` samples per shard. Use as a context manager; ``paths`` lists the
    shards written."""

    def __init__(self, out_dir: str | os.PathLike, prefix: str = "data", max_count: int = 1000) -> None:
        if max_count < 1:
            raise ValueError("max_count must be >= 1")
        self.out_dir, self.prefix, self.max_count = Path(out_dir), prefix, max_count
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._in_shard = 0
        self.count = 0

    def _open_next(self) -> None:
        self.close()
        path = self.out_dir / f"{self.prefix}-{len(self.paths):06d}.tar"
        self._tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)
        self.paths.append(str(path))
        self._in_shard = 0

    def write(self, key: str, files: dict[str, bytes]) -> None:
        """Add one sample: ``files`` maps extensions (``png``, ``txt``, ...) to bytes."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"sample key {key!r} must be non-empty and contain no '.' or '/'")
        if self._tar is None or self._in_shard >= self.max_count:
            self._open_next()
        assert self._tar is not None
        for ext in sorted(files, key=_member_rank):
            data = files[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._in_shard += 1
        self.count += 1

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_shards(samples: Iterable[tuple[str, dict[str, bytes]]], out_dir: str | os.PathLike, prefix: str = "data", max_count: int = 1000) -> list[str]:
    """Write ``(key, files)`` pairs to shards; returns the shard paths."""
    with ShardWriter(out_dir, prefix, max_count) as writer:
        for key, files in samples:
            writer.write(key, files)
    return writer.paths


def pack(source: str | os.PathLike, out_dir: str | os.PathLike, prefix: str = "data", max_count: int = 1000, progress: bool = False) -> dict[str, Any]:
    """Pack a folder of images with same-named ``.txt`` captions (and optional ``.json``), or
    a JSONL manifest of ``{"image": path, "caption": str, ...}``, into shards. Image bytes are
    copied unchanged; samples without an image or caption are skipped and counted."""
    kind, items = resolve_source(source)
    if kind == "shards":
        raise ValueError(f"{source}: already webdataset shards; pack reads a folder or a JSONL manifest")
    skipped: dict[str, int] = {}

    def good() -> Iterable[tuple[str, dict[str, bytes]]]:
        from tqdm import tqdm

        for raw in tqdm(iter_raw_samples(kind, items), total=len(items), disable=not progress, desc="pack"):
            img_ext = next((e for e in IMAGE_EXTS if e in raw), None)
            has_caption = "txt" in raw or b'"caption"' in raw.get("json", b"")
            if img_ext is None or not has_caption:
                reason = "missing image" if img_ext is None else "missing caption"
                skipped[reason] = skipped.get(reason, 0) + 1
                log.warning("pack: skipping %s (%s)", raw["__key__"], reason)
                continue
            key = raw["__key__"].replace("/", "_").replace(".", "_")
            yield key, {e: v for e, v in raw.items() if not e.startswith("__")}

    with ShardWriter(out_dir, prefix, max_count) as writer:
        for key, files in good():
            writer.write(key, files)
    return {"source": str(source), "shards": writer.paths, "written": writer.count, "skipped": skipped}
