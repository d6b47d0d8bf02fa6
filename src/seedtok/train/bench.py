"""Tiny-world training benchmark (``seedtok train bench``), JSON out.

On top of the shipped stand-in ViT: stage 1, then stage 2 twice (the 'cosine' codebook with
dead-code re-initialisation, the tiny training preset's default and the headline "stages 1 + 2"
wall time; and the SEED-1 'reference' quantizer for comparison), then evaluation on
the shapes *test* split: retrieval R@1/5/10 both ways (paper Table 1 protocol) from causal
embeddings and from codes, and codebook usage / perplexity. Wall times include loading the
data and computing the frozen features; the MiniLM text-state cache is timed apart (built
once per dataset, built beforehand by the stand-in run).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from seedtok.config import get_preset
from seedtok.train.core import TrainArgs
from seedtok.train.data import load_image_text
from seedtok.train.evaluate import tokenizer_retrieval
from seedtok.train.pretrained import load_tokenizer
from seedtok.train.runs import TINY_ENCODER, load_reconstruction, run_stage1, run_stage2
from seedtok.fileio import atomic_write_json


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 1)


def _evaluate(directory: Path, test) -> dict[str, Any]:
    model = load_tokenizer(directory)
    return tokenizer_retrieval(model, test, load_reconstruction(directory, model.config))


def bench_train(
    data: str, out: str, encoder: str | None = None, steps1: int = 150, steps2: int = 200, batch_size: int = 128,
    seed: int = 0, limit: int | None = None, cache_dir: str | None = None,
) -> dict[str, Any]:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = encoder or str(TINY_ENCODER)
    config = get_preset("tiny-stage1")
    args = dict(batch_size=batch_size, seed=seed, ckpt_every=100, progress=False)
    s1 = TrainArgs(out=str(out_dir / "stage1"), steps=steps1, lr=1e-3, warmup=30, **args)
    sum1, t1 = _timed(run_stage1, data, s1, "tiny-stage1", encoder, None, None, limit)
    results: dict[str, Any] = {"stage1": {"wall_s": t1, "train_wall_s": round(sum1["wall_s"], 1),
                                          "final_loss": sum1["last"].get("loss"), "steps": steps1}}
    test = load_image_text(data, "test", config.vision.image_size)
    default_kind = config.codebook.kind  # the tiny training preset's quantizer ('cosine')
    for kind in ("cosine", "reference"):
        s2 = TrainArgs(out=str(out_dir / f"stage2-{kind}"), steps=steps2, lr=1e-3, warmup=10, **args)
        sum2, t2 = _timed(run_stage2, data, s2, s1.out, kind, None, cache_dir, limit)
        results[f"stage2_{kind}"] = {
            "wall_s": t2, "train_wall_s": round(sum2["wall_s"], 1), "steps": steps2, "reinit": sum2["reinit"],
            "final": {k: sum2["last"].get(k) for k in ("loss", "vq", "cos", "mse")},
            "train_codebook": sum2["codebook"], "test": _evaluate(Path(s2.out), test),
        }
    provenance = Path(encoder).with_suffix(".json")
    report = {
        "what": "seedtok tiny world: stages 1 + 2 on the shipped stand-in ViT, evaluated on the shapes test split",
        "data": {"source": str(data), "test_samples": len(test), "limit": limit},
        "stage1_plus_stage2_wall_s": round(t1 + results[f"stage2_{default_kind}"]["wall_s"], 1),
        "default_codebook": default_kind,
        "standin": json.loads(provenance.read_text()) if provenance.is_file() else None,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg(),
                    "python": platform.python_version(), "torch": torch.__version__},
        **results,
    }
    atomic_write_json(out_dir / "bench_train.json", report)
    return report
