"""Image-text datasets over webdataset shards, folders and JSONL manifests.

One :class:`ImageTextDataset` reads every source kind (see :mod:`seedtok.data.sources`),
splits the work by distributed rank and DataLoader worker, shuffles shards per epoch and
samples through a buffer, decodes with the single image path of :mod:`seedtok.image`, and
never dies on a bad sample: corrupt images, missing captions and unreadable tar members are
skipped, logged and counted (:class:`SkipCounter`); :func:`image_text_loader` sums the counts
of all workers and reports them at the end of each epoch. This is the data side of every
SEED training stage (paper sec. 3-4: image-caption pairs for the Q-Former, codebook and LLM).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from seedtok.data.sources import IMAGE_EXTS, iter_raw_samples, resolve_source
from seedtok.data.transforms import EvalTransform, clean_caption
from seedtok.image import ImageError, load_image
from seedtok.textinput import TextError, clean_text

CAPTION_MAX_CHARS = 2000

log = logging.getLogger(__name__)
SKIP_MARKER = "__skipped__"


class SampleError(ValueError):
    """A sample that cannot be used; ``reason`` names the category for the skip counts."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class SkipCounter:
    """Counts skipped samples by reason. ``count`` is the total."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def add(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] += n

    def merge(self, reasons: dict[str, int]) -> None:
        self.reasons.update(reasons)

    def reset(self) -> None:
        self.reasons.clear()

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.reasons.items()))

    def __repr__(self) -> str:
        return f"SkipCounter(count={self.count}, reasons={self.as_dict()})"


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def decode_sample(raw: dict[str, Any], transform: Callable, clean: bool = False, max_words: int = 50,
                  image: bool = True) -> dict[str, Any]:
    """Raw webdataset-style sample -> ``{"pixel_values", "caption", "key", "url"[, "scene",
    "vqa"]}``. Raises :class:`SampleError` for an unusable sample. With ``image=False`` the
    image is only checked to be present, not decoded (``pixel_values`` is None): for streaming
    runs whose image features come from a cache."""
    key = raw.get("__key__", "?")
    meta: dict[str, Any] = {}
    if "json" in raw:
        try:
            meta = json.loads(raw["json"])
        except (ValueError, UnicodeDecodeError) as exc:
            raise SampleError("bad json", f"{key}: {exc}") from None
        meta = meta if isinstance(meta, dict) else {}
    caption = raw["txt"] if "txt" in raw else meta.get("caption")
    if not isinstance(caption, (str, bytes)):
        raise SampleError("missing caption", key)
    try:  # invalid UTF-8 replaced, control characters removed, over-long captions cut
        caption = clean_text(caption, max_chars=CAPTION_MAX_CHARS, truncate=True, name=key)
    except TextError:
        raise SampleError("missing caption", key) from None
    img_ext = next((e for e in IMAGE_EXTS if e in raw), None)
    if img_ext is None:
        raise SampleError("missing image", key)
    pixels = None
    if image:
        try:
            pixels = transform(load_image(raw[img_ext], name=key))
        except ImageError as exc:
            raise SampleError("corrupt image", str(exc)) from None
    out = {
        "pixel_values": pixels,
        "caption": clean_caption(caption, max_words) if clean else caption,
        "key": key,
        "url": raw.get("__url__", ""),
    }
    for field in ("scene", "vqa"):
        if field in meta:
            out[field] = meta[field]
    return out


class ImageTextDataset(IterableDataset):
    """Image-caption pairs from ``source``: a shard pattern (``"d/train-{000000..000003}.tar"``),
    a list of shards, a directory of shards, a folder of images with ``.txt`` captions, or a
    ``.jsonl`` manifest. Shards (or folder items) are shuffled per epoch with
    ``seed + epoch`` when ``shuffle_buffer > 0``, then split across ranks and workers;
    ``shuffle_buffer`` samples are mixed in memory. ``skipped`` counts this process's skips."""

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str],
        transform: Callable | None = None,
        image_size: int = 64,
        shuffle_buffer: int = 0,
        seed: int = 0,
        clean_captions: bool = False,
        max_words: int = 50,
    ) -> None:
        super().__init__()
        self.kind, self.items = resolve_source(source)
        self.source = source
        self.transform = transform or EvalTransform(image_size)
        self.shuffle_buffer, self.seed, self.epoch = shuffle_buffer, seed, 0
        self.clean_captions, self.max_words = clean_captions, max_words
        self.skipped = SkipCounter()
        self.emit_skip_markers = False  # set by the loader to carry counts out of workers

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_items(self) -> list[Any]:
        items = list(self.items)
        if self.shuffle_buffer > 0:
            random.Random(self.seed + self.epoch).shuffle(items)
        rank, world = _rank_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if len(items) < world * nw and self.kind == "shards" and wid == 0:
            log.warning("%d shards for %d ranks x %d workers: some will get no data", len(items), world, nw)
        return list(islice(items, rank * nw + wid, None, world * nw))

    def _on_tar_error(self, exc: Exception) -> bool:
        self.skipped.add("unreadable tar member")
        log.warning("skipping unreadable tar data: %s", exc)
        return True

    def _shuffled(self, it: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.shuffle_buffer <= 1:
            yield from it
            return
        info = get_worker_info()
        rank, _ = _rank_world()
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1009 + rank * 97 + (info.id if info else 0))
        buf: list[dict[str, Any]] = []
        for s in it:
            buf.append(s)
            if len(buf) >= self.shuffle_buffer:
                i = int(rng.random() * len(buf))
                buf[i], buf[-1] = buf[-1], buf[i]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.skipped.reset()
        raw = iter_raw_samples(self.kind, self._my_items(), handler=self._on_tar_error)
        n = 0
        for sample in self._shuffled(raw):
            try:
                out = decode_sample(sample, self.transform, self.clean_captions, self.max_words)
            except SampleError as exc:
                self.skipped.add(exc.reason)
                log.warning("skipping sample: %s", exc)
                continue
            n += 1
            yield out
        if self.skipped.count:
            log.info("%s: %d samples read, %d skipped %s", self.source, n, self.skipped.count, self.skipped.as_dict())
        if self.emit_skip_markers:
            yield {SKIP_MARKER: self.skipped.as_dict()}


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``pixel_values``; keep every other field as a list. Skip markers from workers are
    gathered under ``"__skipped__"``."""
    skipped: Counter[str] = Counter()
    real = []
    for s in samples:
        if SKIP_MARKER in s:
            skipped.update(s[SKIP_MARKER])
        else:
            real.append(s)
    batch: dict[str, Any] = {SKIP_MARKER: dict(skipped)}
    if real:
        batch["pixel_values"] = torch.stack([s["pixel_values"] for s in real])
        for field in ("caption", "key", "url", "scene", "vqa"):
            if any(field in s for s in real):
                batch[field] = [s.get(field) for s in real]
    return batch


class ImageTextLoader:
    """Batches from an :class:`ImageTextDataset` through a DataLoader. After each epoch
    ``skipped`` holds the skip counts of all workers and ``samples`` the number yielded; both
    are logged. ``drop_last`` drops each worker's final short batch."""

    def __init__(self, dataset: ImageTextDataset, batch_size: int, num_workers: int = 0, drop_last: bool = False, seed: int = 0) -> None:
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        dataset.emit_skip_markers = True
        gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_samples, generator=gen)
        self.skipped = SkipCounter()
        self.samples = 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.skipped.reset()
        self.samples = 0
        for batch in self.loader:
            self.skipped.merge(batch.pop(SKIP_MARKER))
            n = len(batch.get("key", []))
            if n == 0 or (self.drop_last and n < self.batch_size):
                continue
            self.samples += n
            yield batch
        msg = "epoch %d: %d samples, %d skipped %s"
        log.log(logging.WARNING if self.skipped.count else logging.INFO, msg, self.epoch, self.samples, self.skipped.count, self.skipped.as_dict())


def image_text_loader(
    source: str | os.PathLike | Sequence[str],
    transform: Callable | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    shuffle_buffer: int = 0,
    seed: int = 0,
    image_size: int = 64,
    clean_captions: bool = False,
    max_words: int = 50,
    drop_last: bool = False,
) -> ImageTextLoader:
    """Batches of ``{"pixel_values": (B, 3, S, S), "caption": [...], "key": [...],
    "scene": [...] (shapes data)}`` from any source kind (see :class:`ImageTextDataset`)."""
    ds = ImageTextDataset(source, transform, image_size, shuffle_buffer, seed, clean_captions, max_words)
    return ImageTextLoader(ds, batch_size, num_workers, drop_last, seed)
