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

from seedtok.fileio import atomic_write_bytes
from seedtok.config import get_preset
from seedtok.models.seed2 import build_tokenizer
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


def bench_encode(preset: str = "seed1", batch: int = 8, repeats: int = 3, seed: int = 0, int8: bool = False) -> dict[str, Any]:
    """Encode throughput (images/s) and achieved GFLOP/s of ``SeedTokenizer.encode`` on CPU,
    random weights (speed does not depend on weight values). ``int8``: time the int8-ViT path
    instead and report its code agreement with fp32 on real photos."""
    from seedtok.fast import int8_vision, sample_batch

    config = get_preset(preset)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = build_tokenizer(config).eval().requires_grad_(False)  # inference: frozen; SEED-1 or SEED-2
    build_s = time.perf_counter() - t0
    pixels = sample_batch(config.vision.image_size, batch)
    extra: dict[str, Any] = {}
    flops = count_flops(lambda: model.encode(pixels))
    if int8:
        ids32, causal32 = model.encode(pixels)
        model = int8_vision(model, inplace=True)
        ids8, causal8 = model.encode(pixels)
        extra = {
            "code_agreement_vs_fp32": float((ids8 == ids32).float().mean()),
            "images_with_identical_codes": int((ids8 == ids32).all(dim=1).sum()),
            "causal_embeds_cosine_vs_fp32": float(torch.nn.functional.cosine_similarity(causal8, causal32, dim=-1).mean()),
            "agreement_inputs": "bundled sample photos (shifted crops)",
        }
    run = lambda: model.encode(pixels)  # noqa: E731
    times = time_calls(run, repeats, warmup=1)
    med = statistics.median(times)
    return {
        "benchmark": "encode",
        "preset": preset,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "dtype": "int8 ViT (dynamic), fp32 rest" if int8 else "float32",
        **extra,
        "device": "cpu",
        "repeats": repeats,
        "seconds_per_batch": times,
        "median_seconds_per_batch": med,
        "spread_seconds": max(times) - min(times),
        "images_per_s": batch / med,
        "gflop_per_image": flops / batch / 1e9,
        "achieved_gflop_per_s": flops / med / 1e9,  # fp32-equivalent FLOPs for the int8 path
        "model_build_seconds": build_s,
        "machine": machine_info(),
    }


# Assumptions of the GPU projection (stated in its output, not measured here).
GPU_PEAK_TFLOPS = {"A100 (bf16 dense)": 312.0, "H100 SXM (bf16 dense)": 989.0}
CPU_PEAK_GFLOPS = 120.0  # fp32 matmul peak measured on these 2-core machines (environment.md)


def seed1_projection(measured_json: str | os.PathLike = "bench/encode_seed1_b8.json") -> dict[str, Any]:
    """PROJECTION, not a measurement: SEED-1 encode images/s per GPU, from the FLOPs per image
    (counted by torch on the meta device) and the fraction of peak the CPU run achieved
    (``seedtok bench encode`` output when present, else 50%)."""
    with torch.device("meta"):
        model = SeedTokenizer(get_preset("seed1")).eval().requires_grad_(False)
        pixels = torch.empty(1, 3, 224, 224)
        flops = count_flops(lambda: model.encode(pixels))
    efficiency, source = 0.5, "assumed 50% of peak"
    path = Path(measured_json)
    if path.is_file():
        measured = json.loads(path.read_text())["achieved_gflop_per_s"]
        efficiency, source = measured / CPU_PEAK_GFLOPS, f"measured CPU run {path}: {measured:.1f} of {CPU_PEAK_GFLOPS:.0f} GFLOP/s"
    return {
        "label": "PROJECTION (not measured): images/s per GPU = peak x efficiency / FLOPs per image",
        "gflop_per_image": flops / 1e9,
        "efficiency": efficiency,
        "efficiency_source": source,
        "images_per_s_per_gpu": {gpu: tf * 1e12 * efficiency / flops for gpu, tf in GPU_PEAK_TFLOPS.items()},
    }


def write_json(result: dict[str, Any], out: str | os.PathLike | None) -> str:
    text = json.dumps(result, indent=2, sort_keys=True)
    if out is not None:
        atomic_write_bytes(out, (text + "\n").encode())
    return text
