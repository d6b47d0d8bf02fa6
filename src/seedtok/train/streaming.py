"""Streaming training data: what the stage runners use when a corpus does not fit in memory.

:class:`StreamBatches` is the loop's data source in streaming mode (the in-memory one is
:class:`~seedtok.train.data.TensorBatches`): batches come from a
:class:`~seedtok.data.stream.ShardStream` (webdataset shards, split by rank and DataLoader
worker, block-shuffled), frozen features are computed per batch (or read from a per-shard
cache), and the stream's position - every rank's and worker's (epoch, shard, offset), with
skip counts and per-epoch sample counts - is saved in every checkpoint, so ``--resume``
continues with exactly the sample that would have come next.

Choosing the mode (``--stream auto|on|off``): ``auto`` estimates the in-memory footprint
(training samples x bytes per sample of pixels, frozen features and text states) and streams
above ``--stream-threshold`` GB (default 4). In memory is faster on small data: the frozen
parts run once up front instead of every epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from seedtok.data.stream import POSITION, ShardStream, StreamPosition, total_skipped
from seedtok.losses import world_info
from seedtok.train.core import TrainingError

log = logging.getLogger(__name__)

STREAM_MODES = ("auto", "on", "off")
DEFAULT_THRESHOLD_GB = 4.0
DEFAULT_SHUFFLE_BUFFER = 2000

Featurize = Callable[[dict[str, Any]], dict[str, torch.Tensor]]


def train_shards(data: str, split: str = "train") -> list[str]:
    """Shards of a dataset: a shapes-world directory's ``split``, or any shard source."""
    from seedtok.data.sources import resolve_source

    if (Path(data) / "index.json").is_file():
        from seedtok.data.shapes import split_shards

        return split_shards(data, split)
    kind, items = resolve_source(data)
    if kind != "shards":
        raise TrainingError(f"--stream: {data} is a {kind}, streaming reads webdataset shards (seedtok data pack)")
    return list(items)


def estimate_samples(data: str, split: str = "train") -> int:
    """Samples in the training split: the shapes index's count, else shards x the first shard's."""
    index = Path(data) / "index.json"
    if index.is_file():
        return int(json.loads(index.read_text())["splits"][split]["count"])
    shards = train_shards(data, split)
    with tarfile.open(shards[0]) as tar:
        keys = {m.name.split(".")[0] for m in tar.getmembers() if m.isfile()}
    return len(keys) * len(shards)


def choose_stream(mode: str, data: str, bytes_per_sample: int, threshold_gb: float = DEFAULT_THRESHOLD_GB) -> bool:
    """Whether to stream (see module docstring); logs the decision and the estimate."""
    if mode not in STREAM_MODES:
        raise TrainingError(f"--stream must be one of {STREAM_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    if any("://" in u for u in _maybe_shards(data)):
        log.info("--stream auto: remote shards: streaming")
        return True
    try:
        n = estimate_samples(data)
    except (OSError, KeyError, ValueError, tarfile.TarError, TrainingError, FileNotFoundError):
        return False  # not shards (a folder, a JSONL manifest): in memory
    need = n * bytes_per_sample / 1e9
    stream = need > threshold_gb
    log.info("--stream auto: ~%d samples x %d B = %.1f GB in memory (threshold %.1f GB): %s", n, bytes_per_sample,
             need, threshold_gb, "streaming" if stream else "in memory")
    return stream


def _maybe_shards(data: str) -> list[str]:
    try:
        return train_shards(data)
    except (OSError, KeyError, ValueError, TrainingError):
        return []


def _gather(obj: Any) -> list[Any]:
    rank, world = world_info()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


class StreamBatches:
    """Loop-facing streaming source: ``batch(micro_step, rank, world, batch_size)`` returns the
    next batch of this rank (micro steps must come in order), ``state_dict`` / ``load_state_dict``
    carry the position (a collective call when world > 1), ``summary`` the skip and epoch counts.
    ``key_log``: a folder to append each rank's sample keys to (``rank<r>.txt``; a debugging
    aid, used by the tests that count samples per epoch)."""

    def __init__(self, stream: ShardStream, featurize: Featurize, workers: int = 0, key_log: str | None = None) -> None:
        self.stream, self.featurize, self.workers = stream, featurize, workers
        self.key_log = Path(key_log) if key_log else None
        self.positions: dict[int, StreamPosition] = {}
        self.batches = 0
        self.next_micro_step: int | None = None
        self.last_keys: list[str] = []
        self._it = None

    def _start(self, rank: int, world: int) -> None:
        from torch.utils.data import DataLoader

        self.stream.rank, self.stream.world = rank, world
        self.stream.start = {w: StreamPosition.from_dict(p.to_dict()) for w, p in self.positions.items()}
        self.stream.rotate = self.batches % max(1, self.workers)
        # its own generator: drawing the workers' base seed from the global RNG would shift the
        # model's dropout after a resume (the iterator starts at another step)
        gen = torch.Generator().manual_seed(self.stream.seed)
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.workers, generator=gen)
        self._it = iter(loader)

    def batch(self, micro_step: int, rank: int, world: int, batch_size: int) -> dict[str, torch.Tensor]:
        if batch_size != self.stream.batch_size:
            raise TrainingError(f"stream built for batch {self.stream.batch_size}, asked for {batch_size}")
        if self.next_micro_step is not None and micro_step != self.next_micro_step:
            raise TrainingError(f"streaming batches come in order: expected micro step {self.next_micro_step}, got {micro_step}")
        if self._it is None:
            self._start(rank, world)
        raw = next(self._it)
        worker, pos = raw.pop(POSITION)
        self.positions[int(worker)] = StreamPosition.from_dict(pos)
        self.batches += 1
        self.next_micro_step = micro_step + 1
        self.last_keys = list(raw["key"])
        raw["__micro_step__"] = micro_step
        if self.key_log is not None:
            self.key_log.mkdir(parents=True, exist_ok=True)
            with open(self.key_log / f"rank{rank}.txt", "a") as fh:
                fh.write("".join(f"{k}\n" for k in raw["key"]))
        return self.featurize(raw)

    def _identity(self) -> dict[str, Any]:
        s = self.stream
        digest = hashlib.sha256("\n".join(s.shards).encode()).hexdigest()[:16]
        return {"shards": digest, "num_shards": len(s.shards), "seed": s.seed, "shuffle_buffer": s.shuffle_buffer,
                "batch_size": s.batch_size, "workers": self.workers}

    def state_dict(self) -> dict[str, Any]:
        mine = {"batches": self.batches, "next_micro_step": self.next_micro_step or 0,
                "positions": [[w, p.to_dict()] for w, p in sorted(self.positions.items())]}
        ranks = _gather(mine)
        return {**self._identity(), "world": len(ranks), "ranks": ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rank, world = world_info()
        now = {**self._identity(), "world": world}
        diffs = [f"{k}: checkpoint {state.get(k)!r} != now {v!r}" for k, v in now.items() if state.get(k) != v]
        if diffs:
            raise TrainingError("--resume: the data stream differs from the checkpoint's: " + "; ".join(diffs))
        mine = state["ranks"][rank]
        self.batches, self.next_micro_step = int(mine["batches"]), int(mine["next_micro_step"])
        self.positions = {int(w): StreamPosition.from_dict(p) for w, p in mine["positions"]}
        self._it = None

    def summary(self) -> dict[str, Any]:
        """Skip counts and per-epoch sample counts of every rank (collective when world > 1)."""
        mine = [p.to_dict() for _, p in sorted(self.positions.items())]
        ranks = _gather(mine)
        flat = [StreamPosition.from_dict(p) for r in ranks for p in r]
        epochs: dict[int, int] = {}
        for p in flat:
            for e in p.epochs:
                epochs[e["epoch"]] = epochs.get(e["epoch"], 0) + e["seen"]
        return {"mode": "stream", "skipped": sum(total_skipped(flat).values()), "skipped_reasons": total_skipped(flat),
                "samples_per_finished_epoch": {str(k): v for k, v in sorted(epochs.items())},
                "positions": ranks}


def make_stream(data: str, image_size: int, batch_size: int, seed: int, shuffle_buffer: int,
                caches: Sequence[Any] = (), need_pixels: bool = True) -> ShardStream:
    from seedtok.data import eval_transform

    return ShardStream(train_shards(data), eval_transform(image_size), batch_size, seed, shuffle_buffer, caches,
                       need_pixels)
