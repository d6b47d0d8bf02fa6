"""Benchmarks that write JSON (speed targets are measured here, never in timed unit tests)."""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from seedtok.checkpoint import atomic_write_bytes
from seedtok.config import get_preset
from seedtok.models import SeedTokenizer

log = logging.getLogger(__name__)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_1min": load,
    }


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (matmuls, convolutions, attention), counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_encode(preset: str = "seed1", batch: int = 8, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Encode throughput (images/s) and achieved GFLOP/s of ``SeedTokenizer.encode``, fp32, random
    weights (speed does not depend on weight values)."""
    config = get_preset(preset)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = SeedTokenizer(config).eval().requires_grad_(False)  # inference: frozen
    build_s = time.perf_counter() - t0
    size = config.vision.image_size
    pixels = torch.randn(batch, 3, size, size)
    run = lambda: model.encode(pixels)  # noqa: E731
    flops = count_flops(run)
    times = time_calls(run, repeats, warmup=1)
    med = statistics.median(times)
    return {
        "benchmark": "encode",
        "preset": preset,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "dtype": "float32",
        "device": "cpu",
        "repeats": repeats,
        "seconds_per_batch": times,
        "median_seconds_per_batch": med,
        "spread_seconds": max(times) - min(times),
        "images_per_s": batch / med,
        "gflop_per_image": flops / batch / 1e9,
        "achieved_gflop_per_s": flops / med / 1e9,
        "model_build_seconds": build_s,
        "machine": machine_info(),
    }


def write_json(result: dict[str, Any], out: str | os.PathLike | None) -> str:
    text = json.dumps(result, indent=2, sort_keys=True)
    if out is not None:
        atomic_write_bytes(out, (text + "\n").encode())
    return text
