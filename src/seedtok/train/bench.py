"""Tiny-world tokenizer benchmark (``seedtok train bench``), JSON out.

Per seed, on top of the shipped stand-in ViT: stage 1, then stage 2 (the tiny training
preset's codebook), each timed in wall and CPU seconds (loading the data and the frozen
features included; the MiniLM text-state cache is built once per dataset and timed apart).
Then, on the shapes *test* and *compositional* splits:
- retrieval R@1/5/10 both ways (paper Table 1 protocol) from causal embeddings and from codes;
- generation-embedding MSE (ids -> de-tokenizer -> text-encoder space) beside the
  per-position-mean baseline (the mean target of the split itself: the best constant);
- codebook usage, perplexity, distinct codes per position;
- reconstruction image -> 32 ids -> generation embeddings -> shipped one-step decoder ->
  image, scored by the exact scene parser (per-object colour+shape, exact scene).
With several seeds, ``summary`` gives mean and std of the headline figures.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from seedtok.config import get_preset
from seedtok.fileio import atomic_write_json
from seedtok.train.core import TrainArgs
from seedtok.train.data import ImageTextSet, load_image_text, map_in_chunks
from seedtok.eval.tokenizer import tokenizer_retrieval
from seedtok.train.pretrained import load_tokenizer
from seedtok.train.runs import (TINY_ENCODER, TINY_QFORMER, default_cache, generation_captions, load_reconstruction, run_stage1,
                                run_stage2)

SPLITS = ("test", "compositional")
# The tiny world's tokenizer recipe (docs/training.md, "Stages 1 + 2"): stage 1 (TINY_STAGE1_STEPS
# steps) starts from the stand-in Q-Former with the image-grounded generation term (weight 10, the
# tiny default) and the slot scene term (weight TINY_SCENE_WEIGHT: query k keeps naming grid cell
# k now that the mask is causal); stage 2
# trains the codebook for TINY_STAGE2_STEPS joint steps with the paper's VQ / cosine weights plus a
# contrastive term on the codes and no generation MSE, then the generation path alone for
# TINY_GENERATION_STEPS steps of TINY_GENERATION_BATCH samples on the fixed codes, the target's
# padding positions weighted TINY_GENERATION_PAD_WEIGHT (more, smaller steps learn more per
# CPU-second; the words matter for drawing, the padding barely does: docs/training.md). The paper's
# one-phase weights 5 / 2 / 0.5 are a flag away: --loss-weights 5 2 0.5 --generation-steps 0 --steps2 600.
TINY_STAGE2_WEIGHTS = (5.0, 2.0, 0.0, 1.0)
TINY_STAGE1_STEPS = 100
TINY_SCENE_WEIGHT = 1.0
TINY_STAGE2_STEPS = 300
TINY_GENERATION_STEPS = 2000
TINY_GENERATION_BATCH = 64
TINY_GENERATION_PAD_WEIGHT = 0.3
# Headline figures: (split, path in the split's report).
HEADLINE = [
    ("test", "retrieval.codes.i2t_r1"), ("test", "retrieval.codes.t2i_r1"),
    ("test", "retrieval.causal.i2t_r1"), ("test", "retrieval.causal.t2i_r1"),
    ("test", "generation.mse"), ("test", "generation.mse_ratio"),
    ("test", "reconstruction.color_shape"), ("test", "reconstruction.exact"),
    ("test", "codebook.codes_used_pct"), ("test", "codebook.min_position_used"),
    ("compositional", "retrieval.codes.i2t_r1"), ("compositional", "retrieval.codes.t2i_r1"),
    ("compositional", "reconstruction.color_shape"), ("compositional", "reconstruction.exact"),
]


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, dict[str, float]]:
    """Run ``fn``; its wall seconds and this process's CPU seconds (all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}


@torch.no_grad()
def generation_mse(model, data: ImageTextSet, cache_dir: str) -> dict[str, float]:
    """MSE of ids -> generation embeddings against the canonical targets, and of the best
    constant (the split's per-position mean target)."""
    from seedtok.text import cached_text_states

    model.eval()
    targets, _ = cached_text_states(generation_captions(data, "canonical"), model.config.generation_len, cache_dir)
    ids = map_in_chunks(lambda px: model.encode(px)[0], data.pixels)
    pred = map_in_chunks(model.decode_ids, ids)
    mse = float(((pred - targets) ** 2).mean())
    baseline = float(((targets - targets.mean(0, keepdim=True)) ** 2).mean())
    return {"mse": mse, "per_position_mean_mse": baseline, "mse_ratio": mse / baseline}


def evaluate_split(model_dir: Path, data: str, split: str, decoder: str | None = None) -> dict[str, Any]:
    from seedtok.eval.decode import reconstruction
    from seedtok.decode.standin import STANDIN_DIR, load_standin

    model = load_tokenizer(model_dir)
    cache = default_cache(data, None)
    ds = load_image_text(data, split, model.config.vision.image_size)
    ret = tokenizer_retrieval(model, ds, load_reconstruction(model_dir, model.config), cache)
    codebook = ret.pop("codebook")
    codebook["min_position_used"] = min(codebook["per_position_used"])
    detok = load_standin(decoder or STANDIN_DIR, tokenizer=model)
    recon = reconstruction(model, detok, data, None, split=split)
    return {"num_images": len(ds), "retrieval": ret, "codebook": codebook,
            "generation": generation_mse(model, ds, cache), "reconstruction": recon}


def bench_seed(data: str, out_dir: Path, seed: int, encoder: str, steps1: int, steps2: int, batch_size: int,
               limit: int | None, cache_dir: str | None, weights: tuple[float, ...] = TINY_STAGE2_WEIGHTS,
               generation_lr_scale: float | None = None, generation_weight: float | None = None,
               generation_steps: int | None = None, qformer_init: str | None = None,
               scene_weight: float = TINY_SCENE_WEIGHT, scene_read: str = "slots",
               generation_batch: int | None = TINY_GENERATION_BATCH,
               generation_pad_weight: float | None = TINY_GENERATION_PAD_WEIGHT) -> dict[str, Any]:
    args = dict(batch_size=batch_size, seed=seed, ckpt_every=max(steps1, steps2), progress=False)
    extra1: dict[str, Any] = {} if generation_weight is None else {"generation_weight": generation_weight}
    if scene_weight:
        extra1.update(scene_weight=scene_weight, scene_read=scene_read)
    s1 = TrainArgs(out=str(out_dir / "stage1"), steps=steps1, lr=1e-3, warmup=30, extra=extra1, **args)
    sum1, t1 = timed(run_stage1, data, s1, "tiny-stage1", encoder, None, qformer_init, limit, cache_dir)
    extra2: dict[str, Any] = {"loss_weights": list(weights)}
    if generation_lr_scale is not None:
        extra2["generation_lr_scale"] = generation_lr_scale
    if generation_steps is not None:
        extra2["generation_steps"] = generation_steps
    if generation_batch is not None:
        extra2["generation_batch_size"] = generation_batch
    if generation_pad_weight is not None:
        extra2["generation_pad_weight"] = generation_pad_weight
    s2 = TrainArgs(out=str(out_dir / "stage2"), steps=steps2, lr=1e-3, warmup=10, extra=extra2, **args)
    sum2, t2 = timed(run_stage2, data, s2, s1.out, None, None, cache_dir, limit)
    result: dict[str, Any] = {
        "seed": seed,
        "stage1": {**t1, "train_wall_s": round(sum1["wall_s"], 1), "steps": steps1, "final_loss": sum1["last"].get("loss"),
                   "generation_weight": s1.extra["generation_weight"], "final_mse": sum1["last"].get("mse")},
        "stage2": {**t2, "train_wall_s": round(sum2["wall_s"], 1), "steps": steps2, "target": s2.extra["generation_target"],
                   "loss_weights": list(weights), "generation_lr_scale": s2.extra["generation_lr_scale"],
                   "generation_steps": s2.extra.get("generation_steps", 0),
                   "generation_batch_size": s2.extra.get("generation_batch_size", batch_size),
                   "generation_pad_weight": s2.extra.get("generation_pad_weight", 1.0),
                   "final": {k: sum2["last"].get(k) for k in ("loss", "vq", "cos", "mse")},
                   "generation_phase": sum2.get("generation_phase")},
        "stage1_plus_stage2": {"wall_s": round(t1["wall_s"] + t2["wall_s"], 1), "cpu_s": round(t1["cpu_s"] + t2["cpu_s"], 1)},
    }
    result["splits"], result["eval"] = timed(lambda: {s: evaluate_split(Path(s2.out), data, s) for s in SPLITS})
    return result


def _get(report: dict, path: str) -> float:
    for part in path.split("."):
        report = report[part]
    return float(report)  # type: ignore[arg-type]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (sample) std over seeds of the headline figures and the stage costs."""
    out: dict[str, Any] = {}
    rows = [(f"{split}.{path}", lambda r, s=split, p=path: _get(r["splits"][s], p)) for split, path in HEADLINE]
    rows += [(f"{k}.cpu_s", lambda r, k=k: r[k]["cpu_s"]) for k in ("stage1", "stage2", "stage1_plus_stage2")]
    rows += [(f"{k}.wall_s", lambda r, k=k: r[k]["wall_s"]) for k in ("stage1", "stage2", "stage1_plus_stage2")]
    for name, get in rows:
        values = [get(r) for r in runs]
        out[name] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "values": values}
    return out


def bench_train(data: str, out: str, encoder: str | None = None, steps1: int = TINY_STAGE1_STEPS, steps2: int = TINY_STAGE2_STEPS,
                batch_size: int = 128, seeds: tuple[int, ...] = (0,), limit: int | None = None,
                cache_dir: str | None = None, weights: tuple[float, ...] = TINY_STAGE2_WEIGHTS,
                generation_lr_scale: float | None = None, generation_weight: float | None = None,
                generation_steps: int | None = TINY_GENERATION_STEPS, qformer_init: str | None = None,
                scene_weight: float = TINY_SCENE_WEIGHT, scene_read: str = "slots",
                generation_batch: int | None = TINY_GENERATION_BATCH,
                generation_pad_weight: float | None = TINY_GENERATION_PAD_WEIGHT) -> dict[str, Any]:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = encoder or str(TINY_ENCODER)
    runs = []
    for seed in seeds:
        run = bench_seed(data, out_dir / f"seed{seed}", seed, encoder, steps1, steps2, batch_size, limit, cache_dir, weights,
                         generation_lr_scale, generation_weight, generation_steps, qformer_init, scene_weight, scene_read,
                         generation_batch, generation_pad_weight)
        atomic_write_json(out_dir / f"seed{seed}" / "bench_seed.json", run)
        runs.append(run)
    provenance = Path(encoder).with_suffix(".json")
    qformer = Path(qformer_init) if qformer_init and qformer_init != "none" else TINY_QFORMER
    report = {
        "what": "seedtok tiny world: stages 1 + 2 on the shipped stand-in ViT, evaluated on the shapes test and "
                "compositional splits",
        "data": {"source": str(data), "limit": limit},
        "preset": "tiny-stage1", "codebook": get_preset("tiny-stage1").codebook.kind,
        "standin": json.loads(provenance.read_text()) if provenance.is_file() else None,
        "standin_qformer": json.loads(qformer.with_suffix(".json").read_text())
        if qformer_init != "none" and qformer.with_suffix(".json").is_file() else None,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "seeds": list(seeds), "summary": summarise(runs), "runs": runs,
    }
    atomic_write_json(out_dir / "bench_train.json", report)
    return report
