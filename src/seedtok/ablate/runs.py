"""One (variant, seed) of the ablation: train the image tokenizer, score it, tokenize the splits,
run stage 3 and score the LLM. Every piece is written atomically and reused when present."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from seedtok.ablate.report import flatten
from seedtok.ablate.variants import VARIANTS, Scale, Variant
from seedtok.fileio import atomic_write_json


def _done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _args(out: Path, steps: int, lr: float, scale: Scale, seed: int, warmup: int = 10, batch_size: int | None = None,
          **extra: Any):
    from seedtok.train.core import TrainArgs

    return TrainArgs(out=str(out), steps=steps, lr=lr, batch_size=batch_size or scale.batch_size, warmup=min(warmup, steps),
                     seed=seed, ckpt_every=max(steps, 1), progress=False, extra=extra)


# --- the image tokenizer ----------------------------------------------------------------------

def stage1_dir(root: Path, variant: Variant, data: str, scale: Scale, seed: int) -> Path:
    """Stage 1 for ``variant`` (shared by variants with the same preset, initialisation and
    seed): the tiny recipe of ``seedtok train bench`` (from the stand-in Q-Former, the
    image-grounded generation term at its tiny default, the slot scene term). A variant without
    stage 1 gets its seeded initialisation saved instead (frozen from then on)."""
    from seedtok.checkpoint import save_pretrained
    from seedtok.train.runs import TINY_QFORMER, build_stage1_model, run_stage1

    qformer = str(TINY_QFORMER) if variant.qformer_init == "standin" else "none"
    init = "" if variant.qformer_init == "standin" else f"-{variant.qformer_init}"
    if not variant.stage1:
        out = root / "_stage1" / f"{variant.preset}{init}-untrained-seed{seed}"
        if not (out / "config.json").is_file():
            torch.manual_seed(seed)
            save_pretrained(build_stage1_model(variant.preset, None, None, qformer).eval(), out)
        return out
    out = root / "_stage1" / f"{variant.preset}{init}-seed{seed}"
    if not (out / "train_summary.json").is_file():
        extra = {"scene_weight": scale.scene_weight, "scene_read": "slots"} if scale.scene_weight else {}
        run_stage1(data, _args(out, scale.steps1, 1e-3, scale, seed, warmup=30, **extra), variant.preset,
                   qformer_init=qformer, limit=scale.limit)
    return out


def train_tokenizer(root: Path, variant: Variant, data: str, scale: Scale, seed: int, run: Path) -> Path | None:
    """The variant's image tokenizer, trained once under ``run``; None for the oracle (no tokenizer)."""
    if variant.kind == "oracle":
        return None
    out = run / "tokenizer"
    if (out / "train_summary.json").is_file():
        return out
    if variant.kind == "pixel":
        from seedtok.train.pixelvq import PIXEL_VQ_DEFAULTS, run_pixel_vq

        d = PIXEL_VQ_DEFAULTS  # its own CPU budget: many small batches (see seedtok.train.pixelvq)
        args = _args(out, scale.steps_pixel, d["lr"], scale, seed, warmup=d["warmup"],
                     batch_size=min(scale.batch_size, d["batch_size"]))
        run_pixel_vq(data, args, limit=scale.limit)
    else:
        from seedtok.train.runs import run_stage2

        init = stage1_dir(root, variant, data, scale, seed)
        extra: dict[str, Any] = {"loss_weights": list(variant.stage2_weights)}
        if variant.generation_phase and scale.generation_steps:
            extra.update(generation_steps=scale.generation_steps, generation_batch_size=scale.generation_batch,
                         generation_pad_weight=scale.generation_pad_weight)
        run_stage2(data, _args(out, scale.steps2, 1e-3, scale, seed, **extra), str(init), limit=scale.limit)
    return out


def load_image_tokenizer(variant: Variant, directory: Path) -> torch.nn.Module:
    if variant.kind == "pixel":
        from seedtok.checkpoint import load_pixel_vq

        return load_pixel_vq(directory).eval()
    from seedtok.train.pretrained import load_tokenizer

    return load_tokenizer(directory).eval()


def renderer(variant: Variant, tok: torch.nn.Module | None) -> Callable[[torch.Tensor], list[Any]]:
    """codes -> PIL images: the pixel baseline's own decoder, the oracle's exact inverse + the
    scene renderer, or SEED's de-tokenizer (the shipped one-step stand-in conditioned on the
    tokenizer's generation embeddings)."""
    if variant.kind == "oracle":
        from seedtok.mllm.oracle import oracle_render

        return oracle_render
    if variant.kind == "pixel":
        return tok.decode_images
    from seedtok.decode import load_detokenizer

    detok = load_detokenizer(None, tok)
    detok.set_progress_bar_config(disable=True)
    return lambda codes: detok(ids=codes).images


@torch.no_grad()
def tokenizer_metrics(variant: Variant, directory: Path | None, data: str, scale: Scale) -> dict[str, Any]:
    """Retrieval from codes (SEED variants; the pixel tokens have no text side), reconstruction
    (test image -> ids -> image, scored by the scene parser) and codebook health; nothing for
    the oracle (no tokenizer)."""
    from seedtok.train.data import load_image_text

    if directory is None:
        return {"retrieval": None, "reconstruction": None, "codebook": None}

    tok = load_image_tokenizer(variant, directory)
    if variant.kind == "pixel":
        from seedtok.train.pixelvq import evaluate_pixel_vq

        rec = evaluate_pixel_vq(tok, data, scale.eval_num)
        return {"retrieval": None, "reconstruction": rec, "codebook": rec.get("codebook")}
    from seedtok.eval.decode import reconstruction
    from seedtok.eval.tokenizer import tokenizer_retrieval
    from seedtok.train.runs import load_reconstruction
    from seedtok.decode import load_detokenizer

    test = load_image_text(data, "test", tok.config.vision.image_size)
    retrieval = tokenizer_retrieval(tok, test, load_reconstruction(directory, tok.config))
    rec = reconstruction(tok, load_detokenizer(None, tok), data, scale.eval_num)
    return {"retrieval": retrieval, "reconstruction": rec, "codebook": retrieval.pop("codebook", None)}


# --- the LLM on the tokens -----------------------------------------------------------------------

def stage3_preset(scale: Scale) -> Any:
    """The stage-3 preset every variant shares: the scale's preset, its step count and batch
    replaced when the scale sets them."""
    from seedtok.mllm.stage3 import STAGE3_PRESETS

    preset = STAGE3_PRESETS[scale.stage3_preset]
    steps, batch = scale.steps3 or preset.steps, scale.batch3 or preset.batch_size
    return dataclasses.replace(preset, steps=steps, batch_size=batch, warmup=min(preset.warmup, steps))


def id_caches(variant: Variant, tok: torch.nn.Module | None, data: str, scale: Scale, run: Path) -> tuple[Any, Any]:
    """(train, test) id caches: the variant's tokenizer run once over each split (kept under
    ``run``), or the oracle's codes (computed from the scenes, nothing to keep)."""
    from seedtok.eval.llm import split_cache

    if tok is not None:
        return (split_cache(data, "train", tok, run / "ids-train", scale.limit),
                split_cache(data, "test", tok, run / "ids-test", scale.eval_num))
    from seedtok.data.shapes import split_shards
    from seedtok.mllm.oracle import oracle_cache

    return (oracle_cache(split_shards(data, "train")).head(scale.limit),
            oracle_cache(split_shards(data, "test")).head(scale.eval_num))


def llm_metrics(variant: Variant, tok_dir: Path | None, data: str, scale: Scale, seed: int, run: Path) -> dict[str, Any]:
    """Stage 3 on the variant's codes (resumed from its last checkpoint when interrupted), then
    captioning, VQA and text-to-image on the first ``eval_num`` test images."""
    from seedtok.eval.llm import eval_captions, eval_draw, eval_vqa
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.stage3 import train_stage3

    tok = None if tok_dir is None else load_image_tokenizer(variant, tok_dir)
    train, test = id_caches(variant, tok, data, scale, run)
    llm_dir = run / "llm"
    if (llm_dir / "train_report.json").is_file():
        llm, report = SeedLLM.load(llm_dir), json.loads((llm_dir / "train_report.json").read_text())
    else:
        from seedtok.train.checkpoint import LATEST, checkpoint_root

        resume = (checkpoint_root(llm_dir) / LATEST).is_file()  # an interrupted run goes on
        llm, report = train_stage3(train, llm_dir, stage3_preset(scale), seed=seed, resume=resume)
    llm.model.eval()
    return {"stage3": report, "code_entropy": code_entropy(train.ids), "caption": eval_captions(llm, test, 64), "vqa": eval_vqa(llm, test, 64),
            "draw": eval_draw(llm, test, renderer(variant, tok), 64), "curves": loss_curves(llm_dir / "metrics.jsonl")}


def code_entropy(ids: torch.Tensor) -> float:
    """Mean over token positions of the entropy (nats) of that position's code distribution in
    ``ids`` (N, 32): what an LLM pays per image token knowing nothing but the position. Its
    stage-3 loss on image tokens reads against this (lower tokens entropy is not better
    modelling)."""
    ent = []
    for col in ids.long().t():
        p = torch.bincount(col).float()
        p = p[p > 0] / col.numel()
        ent.append(float(-(p * p.log()).sum()))
    return sum(ent) / len(ent)


def loss_curves(path: Path, window: int = 25) -> dict[str, list[float]]:
    """Per-step image-token and text losses of stage 3, smoothed by a moving mean."""
    rows = [json.loads(l) for l in path.read_text().splitlines() if l] if path.is_file() else []
    out: dict[str, list[float]] = {"step": [r["step"] for r in rows]}
    for key in ("image_loss", "text_loss", "loss"):
        vals = [r.get(key, float("nan")) for r in rows]
        smooth = []
        for i in range(len(vals)):
            chunk = [v for v in vals[max(0, i - window + 1): i + 1] if v is not None and math.isfinite(v)]
            smooth.append(sum(chunk) / len(chunk) if chunk else float("nan"))
        out[key] = smooth
    return out


def run_one(root: str, name: str, data: str, scale: Scale, seed: int) -> dict[str, Any]:
    """Train and score one (variant, seed); reuses every finished piece under ``root``."""
    variant = VARIANTS[name]
    run = Path(root) / name / f"seed{seed}"
    result_path = run / "result.json"
    if (done := _done(result_path)) is not None:
        return done
    t0 = time.perf_counter()
    tok_dir = train_tokenizer(Path(root), variant, data, scale, seed, run)
    tokm = _done(run / "tokenizer_metrics.json")
    if tokm is None:
        tokm = tokenizer_metrics(variant, tok_dir, data, scale)
        atomic_write_json(run / "tokenizer_metrics.json", tokm)
    llm = llm_metrics(variant, tok_dir, data, scale, seed, run)
    result = {"variant": dataclasses.asdict(variant), "seed": seed, "tokenizer": tokm, "llm": llm,
              "wall_s": round(time.perf_counter() - t0, 1)}
    result["headline"] = flatten(result)
    atomic_write_json(result_path, result)
    return result
