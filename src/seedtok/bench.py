"""Benchmarks that write JSON (speed targets are measured here, never in timed unit tests)."""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

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


# torch's FlopCounterMode has no formula for the CPU flash-attention kernel that SDPA dispatches
# to on CPU, so without this entry every attention (2 matmuls per head) would count as zero.
def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (matmuls, convolutions, attention), counted by torch's FlopCounterMode
    with CPU attention added analytically (2 * 2 * B * heads * N_q * N_k * head_dim)."""
    with FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS) as counter:
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


def mm_probe(n: int = 2048, repeats: int = 3) -> float:
    """fp32 ``torch.mm`` rate of this process now (GFLOP/s, best of ``repeats``): the ceiling an
    encode's achieved rate is compared with, measured in the same process and moment."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(time_calls(lambda: torch.mm(a, b), repeats, warmup=1))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _summary(times: list[float], batch: int, flops_per_image: int, probes: list[float]) -> dict[str, Any]:
    med = statistics.median(times)
    rate = flops_per_image * batch / med / 1e9
    return {
        "seconds_per_batch": [round(t, 4) for t in times],
        "median_seconds_per_batch": med,
        "spread_seconds": max(times) - min(times),
        "images_per_s": batch / med,
        "achieved_gflop_per_s": rate,  # fp32-equivalent FLOPs for the int8 path
        "percent_of_mm_probe": 100 * rate / statistics.median(probes),
    }


def alternated_rounds(
    models: dict[str, SeedTokenizer], pixels: torch.Tensor, batches: Sequence[int], rounds: int, flops_per_image: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Time ``encode`` of every model at every batch size, ``rounds`` times, alternating models
    inside each round (and reversing their order every other round) so that a neighbour's load
    falls on all of them alike. -> (per-batch results, mm probe, last outputs at the largest batch)."""
    names = list(models)
    for m in models.values():
        m.encode(pixels[:1])  # warm-up: kernels, weight packing, allocator
    times: dict[tuple[int, str], list[float]] = {(b, n): [] for b in batches for n in names}
    probes, last = [], {}
    for r in range(rounds):
        probes.append(mm_probe())
        for b in batches:
            for name in names if r % 2 == 0 else names[::-1]:
                dt, out = _timed(lambda: models[name].encode(pixels[:b]))
                times[(b, name)].append(dt)
                if b == max(batches):
                    last[name] = out
        log.info("round %d/%d done", r + 1, rounds)
    results: dict[str, Any] = {}
    for b in batches:
        row = {n: _summary(times[(b, n)], b, flops_per_image, probes) for n in names}
        if "fp32" in row and "int8" in row:
            row["int8_speedup"] = row["fp32"]["median_seconds_per_batch"] / row["int8"]["median_seconds_per_batch"]
            row["int8_speedup_per_round"] = [f / i for f, i in zip(times[(b, "fp32")], times[(b, "int8")])]
        results[str(b)] = row
    probe = {"n": 2048, "gflop_per_s_per_round": probes, "median_gflop_per_s": statistics.median(probes)}
    return results, probe, last


# Runs a `seedtok` command in a fresh interpreter, then reports that process's own peak RSS
# (VmHWM, reset at exec). getrusage/wait4's ru_maxrss would not do: Linux carries the forking
# parent's resident size into the child's maxrss, and the bench process holds two models.
_RSS_CHILD = """import sys
from seedtok.cli import main
rc = main(sys.argv[2:])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]
open(sys.argv[1], 'w').write(hwm)
sys.exit(rc)
"""


def peak_rss_mib(cli_args: Sequence[str]) -> float:
    """Peak resident memory (MiB) of ``seedtok CLI_ARGS`` run in a fresh process (Linux)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    src = str(Path(__file__).resolve().parents[1])  # the same seedtok as this process
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as out:
        proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, out.name, *cli_args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"seedtok {' '.join(cli_args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
        return int(out.read()) / 1024  # kB -> MiB


def encode_rss(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Peak RSS of ``seedtok encode --model DIR IMAGE`` in fp32 and with ``--int8``, each in a
    fresh process."""
    from seedtok.demo import SAMPLES

    image = str(sorted(SAMPLES.glob("*.png"))[0])
    base = ["encode", "--model", str(model_dir), image]
    fp32, int8 = peak_rss_mib(base), peak_rss_mib(base + ["--int8"])
    return {"command": "seedtok encode --model DIR [--int8] " + Path(image).name,
            "fp32_mib": fp32, "int8_mib": int8, "int8_over_fp32": int8 / fp32}


def agreement_section(model_dir: str | None, data: str | None, split: str, limit: int | None) -> dict[str, Any]:
    """fp32 vs int8 code agreement on the golden SEED-1 weights and, given ``model_dir`` +
    ``data``, on a trained tokenizer's ``split`` images."""
    from seedtok.eval.agreement import compare_encoders
    from seedtok.fast import int8_vision
    from seedtok.parity import default_golden_dir, load_golden

    golden, pixels, _, meta = load_golden(default_golden_dir())
    out: dict[str, Any] = {"golden_seed1_weights": {
        "weights": f"parity golden set {default_golden_dir().name} (reference SEED-1 layout, deterministic random weights, reduced size)",
        **compare_encoders(golden, int8_vision(golden), pixels)}}
    if model_dir and data:
        from seedtok.checkpoint import from_pretrained
        from seedtok.train.data import load_image_text

        model = from_pretrained(model_dir)
        test = load_image_text(data, split, model.config.vision.image_size, limit)
        out["trained"] = {"model": str(model_dir), "data": f"{data} [{split}]",
                          **compare_encoders(model, int8_vision(model), test.pixels)}
    return out


def bench_encode(
    preset: str = "seed1",
    batches: Sequence[int] = (1, 8),
    rounds: int = 3,
    seed: int = 0,
    int8: bool = False,
    agreement_model: str | None = None,
    agreement_data: str | None = None,
    agreement_split: str = "test",
    agreement_limit: int | None = None,
    measure_rss: bool = True,
) -> dict[str, Any]:
    """Encode speed of ``SeedTokenizer.encode`` on CPU with random weights (speed does not depend
    on weight values): fp32, and with ``int8`` also the int8-ViT encoder loaded by
    :func:`seedtok.fast.load_int8`, timed in alternated rounds in this one process; its peak RSS
    (fresh processes) and its code agreement with fp32 (:func:`agreement_section`)."""
    from seedtok.checkpoint import save_pretrained
    from seedtok.fast import load_int8, sample_batch

    config = get_preset(preset)
    load_before = machine_info()["load_avg_1min"]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = build_tokenizer(config).eval().requires_grad_(False)  # inference: frozen; SEED-1 or SEED-2
    build_s = time.perf_counter() - t0
    pixels = sample_batch(config.vision.image_size, max(batches))
    flops = count_flops(lambda: model.encode(pixels[:1]))
    models = {"fp32": model}
    result: dict[str, Any] = {"benchmark": "encode", "preset": preset, "weights": f"random (seed {seed})",
                              "params": sum(p.numel() for p in model.parameters()), "device": "cpu",
                              "gflop_per_image": flops / 1e9, "flop_count": "torch FlopCounterMode; CPU SDPA counted analytically",
                              "rounds": rounds, "model_build_seconds": build_s}
    with tempfile.TemporaryDirectory(prefix="seedtok-bench-") as tmp:
        if int8:
            save_pretrained(model, tmp)
            t0 = time.perf_counter()
            models["int8"] = load_int8(tmp)
            result["int8_load_seconds"] = time.perf_counter() - t0
            result["int8_layers"] = int8_layer_report(models["int8"])
        timings, probe, last = alternated_rounds(models, pixels, batches, rounds, flops)
        result.update(batches=timings, mm_probe=probe)
        if int8:
            from seedtok.eval.agreement import agreement_report, nearest_margins

            photos = agreement_report(last["fp32"], last["int8"], nearest_margins(model, last["fp32"][1]))
            result["agreement"] = {"random_weights_sample_photos": {
                "weights": f"random preset {preset} (seed {seed}): margins mean little", **photos},
                **agreement_section(agreement_model, agreement_data, agreement_split, agreement_limit)}
            del models, model, last
            if measure_rss:
                result["peak_rss"] = encode_rss(tmp)
    result["machine"] = {**machine_info(), "load_avg_1min_before": load_before}
    return result


def int8_layer_report(model: SeedTokenizer) -> dict[str, Any]:
    """Which layers run in int8 and which stay fp32."""
    from seedtok.fast import Int8Linear

    n8 = sum(isinstance(m, Int8Linear) for m in model.modules())
    n32 = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    return {"int8_linear_layers": n8, "fp32_linear_layers": n32,
            "int8": "every Linear of the ViT blocks (qkv with q/v bias folded, proj, fc1, fc2)",
            "fp32": "patch embedding, attention scores (SDPA), LayerNorms, GELU, ln_vision, Q-Former, codebook"}


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
        data = json.loads(path.read_text())
        if "batches" in data:  # one `seedtok bench encode` JSON: its fp32 run at the largest batch
            data = data["batches"][max(data["batches"], key=int)]["fp32"]
        measured = data["achieved_gflop_per_s"]
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
