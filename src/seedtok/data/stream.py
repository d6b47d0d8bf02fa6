"""Streaming image-text batches over webdataset shards, with an exact resumable position.

For corpora that do not fit in memory (CC3M's 3M pairs, the paper's 5M): samples are read
from webdataset tar shards (``webdataset.tarfile_samples``) and batched as they arrive;
nothing grows with the dataset size except the shard list.

- **Split by rank and worker.** Each epoch the shard list is permuted with ``(seed, epoch)``;
  slot ``rank * workers + worker`` takes every ``world * workers``-th shard of that order, so
  the ranks together read every shard once per epoch.
- **Block shuffle.** A slot reads consecutive shards of its list into a block of at least
  ``shuffle_buffer`` raw samples (still encoded bytes: a few KB each), permutes the block with
  a generator seeded by ``(seed, epoch, slot, block start)``, and emits it. Memory is bounded
  by the block; the order is a pure function of the seed, so a position is three integers.
- **Exact resume.** :class:`StreamPosition` is (epoch, first shard of the block, samples of the
  block already consumed): restarting at it re-reads that block and continues with the very
  next sample - no sample repeated or skipped, whatever the shuffle buffer.
- **Bad data is skipped and counted**: unreadable tar members (``webdataset`` handler) and
  undecodable samples (:func:`seedtok.data.datasets.decode_sample`) never stop a run; the
  counts travel with the position (so they survive a resume too).
- **Per-shard caches** (:mod:`seedtok.data.featcache`): frozen features and text-encoder
  states are attached from one small file per shard, computed when first needed.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from seedtok.data.datasets import SampleError, decode_sample
from seedtok.data.sources import iter_raw_samples, resolve_source

log = logging.getLogger(__name__)

POSITION = "__position__"
CACHED = "__cached__"


@dataclass
class StreamPosition:
    """Where one (rank, worker) slot stands: ``epoch``; ``shard``, the index (in this slot's
    shard list of that epoch) of the first shard of the current block; ``offset``, raw samples
    of the block consumed. ``seen`` / ``digest`` count and fingerprint (sha256 chain over the
    keys, in order) the samples emitted this epoch; ``epochs`` keeps them for finished epochs;
    ``skipped`` counts bad samples by reason over the whole run."""

    epoch: int = 0
    shard: int = 0
    offset: int = 0
    seen: int = 0
    digest: str = ""
    epochs: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StreamPosition":
        return cls(**{**d, "epochs": [dict(e) for e in d.get("epochs", [])], "skipped": dict(d.get("skipped", {}))})

    def emit(self, key: str) -> None:
        self.seen += 1
        self.digest = hashlib.sha256(f"{self.digest}|{key}".encode()).hexdigest()[:32]

    def next_epoch(self) -> None:
        self.epochs.append({"epoch": self.epoch, "seen": self.seen, "digest": self.digest})
        self.epoch, self.shard, self.offset, self.seen, self.digest = self.epoch + 1, 0, 0, 0, ""


def slot_shards(shards: Sequence[str], seed: int, epoch: int, slot: int, slots: int, shuffle: bool = True) -> list[str]:
    """This slot's shards for ``epoch``: every ``slots``-th of the epoch's permuted order."""
    order = list(shards)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[slot::slots]


def block_order(n: int, seed: int, epoch: int, slot: int, start: int, shuffle: bool = True) -> list[int]:
    """The permutation of a block of ``n`` raw samples that starts at shard ``start``."""
    order = list(range(n))
    if shuffle:
        random.Random(f"{seed}/{epoch}/{slot}/{start}").shuffle(order)
    return order


class ShardStream(IterableDataset):
    """Endless batches (one dict each) from webdataset shards, epoch after epoch.

    ``transform`` maps a PIL image to a tensor; ``caches`` are
    :class:`~seedtok.data.featcache.ShardCache` objects whose per-sample rows are stacked into
    the batch under their own names. With ``need_pixels=False`` images are not decoded (every
    pixel consumer reads a cache). ``decode`` replaces the image-text decoding for other shard
    contents (e.g. token shards: raw sample -> record dict with a ``key``, raising
    :class:`~seedtok.data.datasets.SampleError` when unusable); batches are then
    ``{"records": [...], "key": [...]}``. Each batch carries ``"__position__"``: (logical worker,
    position after the batch). Set ``rank``/``world`` and ``start`` before iterating."""

    def __init__(self, source: str | Sequence[str], transform: Callable, batch_size: int, seed: int = 0,
                 shuffle_buffer: int = 2000, caches: Sequence[Any] = (), need_pixels: bool = True,
                 shuffle: bool = True, decode: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__()
        kind, items = resolve_source(source)
        if kind != "shards":
            raise ValueError(f"{source}: streaming reads webdataset shards (pack folders first: seedtok data pack)")
        self.shards, self.transform, self.batch_size = list(items), transform, batch_size
        self.seed, self.shuffle_buffer, self.shuffle = seed, shuffle_buffer, shuffle
        self.caches, self.need_pixels, self.decode = list(caches), need_pixels, decode
        self.rank, self.world, self.rotate = 0, 1, 0
        self.start: dict[int, StreamPosition] = {}

    def slot(self) -> tuple[int, int, int]:
        """(logical worker, slot, number of slots). ``rotate`` makes DataLoader worker 0 play the
        worker whose batch is due next after a resume (the DataLoader always starts at 0)."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        logical = (wid + self.rotate) % nw
        return logical, self.rank * nw + logical, self.world * nw

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, slot, slots = self.slot()
        if len(self.shards) < slots:
            raise ValueError(f"{len(self.shards)} shards for {self.world} rank(s) x {slots // self.world} worker(s): "
                             "every slot needs at least one shard (write smaller shards or use fewer workers)")
        pos = StreamPosition.from_dict(self.start[worker].to_dict()) if worker in self.start else StreamPosition()
        batch: list[dict[str, Any]] = []
        while True:
            empty_epoch = True
            for sample in self._epoch(pos, slot, slots):
                empty_epoch = False
                batch.append(sample)
                if len(batch) == self.batch_size:
                    yield self._collate(batch, worker, pos)
                    batch = []
            if empty_epoch and pos.epochs and pos.epochs[-1]["seen"] == 0:
                raise ValueError(f"slot {slot}: a whole epoch without one usable sample ({pos.skipped} skipped)")

    def _epoch(self, pos: StreamPosition, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        """Samples of ``pos.epoch`` from ``pos`` on; leaves ``pos`` at the next epoch's start."""
        mine = slot_shards(self.shards, self.seed, pos.epoch, slot, slots, self.shuffle)
        while pos.shard < len(mine):
            block, end = self._read_block(mine, pos.shard, pos)
            order = block_order(len(block), self.seed, pos.epoch, slot, pos.shard, self.shuffle)
            while pos.offset < len(block):
                raw = block[order[pos.offset]]
                pos.offset += 1
                sample = self._decode(raw, pos)
                if sample is not None:
                    pos.emit(sample["key"])
                    yield sample
            pos.shard, pos.offset = end, 0
        pos.next_epoch()

    def _read_block(self, mine: list[str], start: int, pos: StreamPosition) -> tuple[list[dict[str, Any]], int]:
        block: list[dict[str, Any]] = []
        end = start
        while end < len(mine) and (end == start or len(block) < self.shuffle_buffer):
            shard = self._read_shard(mine[end], pos)
            block.extend(shard)
            end += 1
        return block, end

    def _read_shard(self, url: str, pos: StreamPosition) -> list[dict[str, Any]]:
        def on_error(exc: Exception) -> bool:
            _count(pos, "unreadable tar member")
            log.warning("skipping unreadable tar data in %s: %s", url, exc)
            return True

        raws = list(iter_raw_samples("shards", [url], handler=on_error))
        for i, cache in enumerate(self.caches):  # two caches may share a file (same name), not a slot
            rows = cache.rows(url, raws, self.transform)
            for raw in raws:
                raw.setdefault(CACHED, {})[f"{i}:{cache.name}"] = rows.get(raw.get("__key__"))
        return raws

    def _decode(self, raw: dict[str, Any], pos: StreamPosition) -> dict[str, Any] | None:
        try:
            cached = raw.get(CACHED, {})
            missing = [name for name, row in cached.items() if row is None]
            if missing:  # the cache builder could not use this sample (e.g. a corrupt image)
                raise SampleError("corrupt image", f"{raw.get('__key__')}: not in cache {missing[0]}")
            if self.decode is not None:
                sample = self.decode(raw)
            else:
                sample = decode_sample(raw, self.transform, image=self.need_pixels)
        except SampleError as exc:
            _count(pos, exc.reason)
            log.warning("skipping sample: %s", exc)
            return None
        sample["cached"] = raw.get(CACHED, {})
        return sample

    def _collate(self, samples: list[dict[str, Any]], worker: int, pos: StreamPosition) -> dict[str, Any]:
        if self.decode is not None:
            return {"records": samples, "key": [s["key"] for s in samples], POSITION: (worker, pos.to_dict())}
        batch: dict[str, Any] = {f: [s.get(f) for s in samples] for f in ("caption", "key", "scene", "vqa")}
        if self.need_pixels:
            batch["pixel_values"] = torch.stack([s["pixel_values"] for s in samples])
        for name in samples[0]["cached"]:
            for t in samples[0]["cached"][name]:
                batch[t] = torch.stack([s["cached"][name][t] for s in samples])
        batch[POSITION] = (worker, pos.to_dict())
        return batch


def _count(pos: StreamPosition, reason: str) -> None:
    pos.skipped[reason] = pos.skipped.get(reason, 0) + 1


def total_skipped(positions: Sequence[StreamPosition]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for p in positions:
        out.update(p.skipped)
    return dict(sorted(out.items()))
