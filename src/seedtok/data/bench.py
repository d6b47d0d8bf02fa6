"""Reader throughput: decoded + transformed image-text pairs per second (a benchmark that
writes JSON, not a timed test). Repeats and reports the median, since the machines are
shared (../shared/docs/environment.md)."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Sequence

import torch

from seedtok.data.datasets import image_text_loader
from seedtok.data.transforms import eval_transform, train_transform


def bench_reader(
    shards: str | os.PathLike | Sequence[str],
    workers: int = 2,
    batch_size: int = 64,
    image_size: int = 64,
    transform: str = "train",
    repeats: int = 3,
    shuffle_buffer: int = 0,
) -> dict[str, Any]:
    """Read every sample of ``shards`` ``repeats`` times through :func:`image_text_loader`
    with ``workers`` DataLoader workers; return pairs/s (median and all runs)."""
    tf = train_transform(image_size) if transform == "train" else eval_transform(image_size)
    loader = image_text_loader(shards, tf, batch_size=batch_size, num_workers=workers, shuffle_buffer=shuffle_buffer, image_size=image_size)
    rates, counts = [], []
    for epoch in range(repeats):
        loader.set_epoch(epoch)
        t0 = time.perf_counter()
        n = sum(len(b["key"]) for b in loader)
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        counts.append(n)
    return {
        "benchmark": "data_reader",
        "source": str(shards),
        "workers": workers,
        "batch_size": batch_size,
        "image_size": image_size,
        "transform": transform,
        "samples_per_epoch": counts[0],
        "skipped": loader.skipped.as_dict(),
        "pairs_per_s": round(statistics.median(rates), 1),
        "pairs_per_s_runs": [round(r, 1) for r in rates],
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
    }
