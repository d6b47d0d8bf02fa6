"""``seedtok ablate``: the paper's three principles tested in one controlled tiny-world setting.

SEED (arXiv 2307.08041, sec. 1 and 3) argues that image tokens for an LLM should (i) have 1-D
*causal* dependency, (ii) carry high-level *semantics* rather than pixels, and (iii) come from
a tokenizer trained for both *discrimination* (stage 1, contrastive) and *reconstruction*
(stage 2). Its evidence is a pilot (OPT-2.7B captioning with VQ-VAE vs BEiT-v2 tokens, sec. 2).
Here each claim gets a variant that changes only the image tokenizer; data, LLM stand-in,
step counts and seeds stay fixed:

========================  ==================================================================
``seed``                  SEED: Causal Q-Former (stage 1) + codebook and generation
                          targets (stage 2, weights 5/2/0.5)
``bidirectional``         the same with the Q-Former's causal mask off (BLIP-2-style
                          queries; preset ``tiny-stage1-bidirectional``)             -> (i)
``pixel-vq``              2-D pixel tokens: a VQ-VAE-style conv autoencoder with a 4x8 grid
                          of 32 tokens and the same 1024-code codebook, trained on pixel
                          reconstruction only; its own decoder draws the images      -> (ii)
``contrastive-only``      SEED without stage 2's reconstruction losses: the codes are
                          trained by VQ + a contrastive loss on the codes (weights
                          5/0/0/1), so nothing trains the generation embeddings      -> (iii)
``reconstruction-only``   SEED without the contrastive stage: stage 1 skipped (random
                          frozen Q-Former), stage 2 as usual                         -> (iii)
========================  ==================================================================

Per variant and seed, :func:`run_one` trains the tokenizer, scores it (retrieval from codes,
reconstruction through the de-tokenizer, codebook usage), tokenizes the training and test
splits once, LoRA-tunes the shipped stand-in LM on the tokens (stage 3) and scores captioning
(exact scene match, CIDEr), VQA and text-to-image. :func:`summarise` turns the runs into one
table (mean and spread over seeds), Markdown and a plot of the LLM's training loss on image
tokens. Every stage writes its result atomically and is skipped when present, so an
interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from seedtok.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One image tokenizer of the ablation: data, not a code path of its own."""

    name: str
    title: str
    claim: str
    kind: str = "seed"  # "seed" (the SEED stages) or "pixel" (the 2-D pixel VQ baseline)
    preset: str = "tiny-stage1"
    stage1: bool = True  # False: skip the contrastive stage (random frozen Q-Former)
    stage2_weights: tuple[float, ...] = (5.0, 2.0, 0.5)  # vq, cosine, generation MSE[, contrastive]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("seed", "SEED (causal Q-Former, stages 1+2)", "reference"),
    Variant("bidirectional", "bidirectional queries (causal mask off)", "(i) causal 1-D dependency",
            preset="tiny-stage1-bidirectional"),
    Variant("pixel-vq", "2-D pixel VQ tokens (reconstruction only)", "(ii) semantics over pixels", kind="pixel"),
    Variant("contrastive-only", "SEED without stage-2 reconstruction losses", "(iii) both objectives",
            stage2_weights=(5.0, 0.0, 0.0, 1.0)),
    Variant("reconstruction-only", "SEED without the contrastive stage 1", "(iii) both objectives", stage1=False),
)}


@dataclass(frozen=True)
class Scale:
    """Step counts and evaluation sizes, shared by every variant."""

    steps1: int = 150
    steps2: int = 150
    steps_pixel: int = 2000  # batch 32: ~3.5 min on one thread, like the SEED stages
    steps3: int = 400
    batch_size: int = 128
    batch3: int = 32
    eval_num: int = 300  # test images for reconstruction / captioning / VQA / text-to-image
    limit: int | None = None  # training images (None: the whole split)


SCALES = {
    "default": Scale(),
    # A few steps each on a small dataset: exercises every stage (``make test``).
    "smoke": Scale(steps1=3, steps2=3, steps_pixel=3, steps3=3, batch_size=16, batch3=4, eval_num=8, limit=64),
}

HEADLINE = (  # (key in a run's metrics, label, higher is better)
    ("retrieval_i2t_r1_codes", "i2t R@1 (codes)"),
    ("reconstruction_color_shape", "reconstruction (obj.)"),
    ("caption_exact", "caption exact"),
    ("caption_cider", "caption CIDEr"),
    ("vqa_accuracy", "VQA acc."),
    ("t2i_color_shape", "text-to-image (obj.)"),
    ("t2i_exact", "text-to-image exact"),
    ("llm_image_loss", "LLM loss on image tokens"),
    ("llm_text_loss", "LLM loss on text"),
    ("code_entropy", "code entropy (nats/token)"),
    ("image_nats_from_text", "entropy − image loss"),
    ("codebook_used_pct", "codes used %"),
    ("codebook_perplexity", "code perplexity"),
)


def _done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _args(out: Path, steps: int, lr: float, scale: Scale, seed: int, warmup: int = 10, batch_size: int | None = None,
          **extra: Any):
    from seedtok.train.core import TrainArgs

    return TrainArgs(out=str(out), steps=steps, lr=lr, batch_size=batch_size or scale.batch_size, warmup=min(warmup, steps),
                     seed=seed, ckpt_every=max(steps, 1), progress=False, extra=extra)


# --- the image tokenizer ----------------------------------------------------------------------

def stage1_dir(root: Path, variant: Variant, data: str, scale: Scale, seed: int) -> Path:
    """Stage 1 for ``variant`` (shared by variants with the same preset and seed); a variant
    without stage 1 gets the preset's seeded random initialisation saved instead."""
    from seedtok.checkpoint import save_pretrained
    from seedtok.train.runs import build_stage1_model, run_stage1

    if not variant.stage1:
        out = root / "_stage1" / f"{variant.preset}-untrained-seed{seed}"
        if not (out / "config.json").is_file():
            torch.manual_seed(seed)
            save_pretrained(build_stage1_model(variant.preset, None, None, None).eval(), out)
        return out
    out = root / "_stage1" / f"{variant.preset}-seed{seed}"
    if not (out / "train_summary.json").is_file():
        run_stage1(data, _args(out, scale.steps1, 1e-3, scale, seed, warmup=30), variant.preset, limit=scale.limit)
    return out


def train_tokenizer(root: Path, variant: Variant, data: str, scale: Scale, seed: int, run: Path) -> Path:
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
        run_stage2(data, _args(out, scale.steps2, 1e-3, scale, seed, loss_weights=variant.stage2_weights), str(init),
                   limit=scale.limit)
    return out


def load_image_tokenizer(variant: Variant, directory: Path) -> torch.nn.Module:
    if variant.kind == "pixel":
        from seedtok.checkpoint import load_pixel_vq

        return load_pixel_vq(directory).eval()
    from seedtok.train.pretrained import load_tokenizer

    return load_tokenizer(directory).eval()


def renderer(variant: Variant, tok: torch.nn.Module) -> Callable[[torch.Tensor], list[Any]]:
    """codes -> PIL images: the pixel baseline's own decoder, or SEED's de-tokenizer (the
    shipped one-step stand-in conditioned on the tokenizer's generation embeddings)."""
    if variant.kind == "pixel":
        return tok.decode_images
    from seedtok.decode import load_detokenizer

    detok = load_detokenizer(None, tok)
    detok.set_progress_bar_config(disable=True)
    return lambda codes: detok(ids=codes).images


@torch.no_grad()
def tokenizer_metrics(variant: Variant, directory: Path, data: str, scale: Scale) -> dict[str, Any]:
    """Retrieval from codes (SEED variants; the pixel tokens have no text side), reconstruction
    (test image -> ids -> image, scored by the scene parser) and codebook health."""
    from seedtok.train.data import load_image_text

    tok = load_image_tokenizer(variant, directory)
    if variant.kind == "pixel":
        from seedtok.train.pixelvq import evaluate_pixel_vq

        rec = evaluate_pixel_vq(tok, data, scale.eval_num)
        return {"retrieval": None, "reconstruction": rec, "codebook": rec.get("codebook")}
    from seedtok.decode.evaluate import reconstruction
    from seedtok.train.evaluate import tokenizer_retrieval
    from seedtok.train.runs import load_reconstruction
    from seedtok.decode import load_detokenizer

    test = load_image_text(data, "test", tok.config.vision.image_size)
    retrieval = tokenizer_retrieval(tok, test, load_reconstruction(directory, tok.config))
    rec = reconstruction(tok, load_detokenizer(None, tok), data, scale.eval_num)
    return {"retrieval": retrieval, "reconstruction": rec, "codebook": retrieval.pop("codebook", None)}


# --- the LLM on the tokens -----------------------------------------------------------------------

def id_cache(data: str, split: str, tok: torch.nn.Module, out: Path, limit: int | None):
    from seedtok.data.shapes import split_shards
    from seedtok.mllm.cache import IdCache, build_id_cache, load_cache

    cache = load_cache(out, tok) if (out / "meta.json").is_file() else build_id_cache(split_shards(data, split), tok, out)
    return cache if limit is None else IdCache(cache.ids[:limit], cache.records[:limit], cache.meta)


def llm_metrics(variant: Variant, tok_dir: Path, data: str, scale: Scale, seed: int, run: Path) -> dict[str, Any]:
    from seedtok.mllm.bench import eval_captions, eval_draw, eval_vqa
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.stage3 import STAGE3_PRESETS, train_stage3

    tok = load_image_tokenizer(variant, tok_dir)
    train = id_cache(data, "train", tok, run / "ids-train", scale.limit)
    test = id_cache(data, "test", tok, run / "ids-test", scale.eval_num)
    llm_dir = run / "llm"
    if (llm_dir / "train_report.json").is_file():
        llm, report = SeedLLM.load(llm_dir), json.loads((llm_dir / "train_report.json").read_text())
    else:
        preset = dataclasses.replace(STAGE3_PRESETS["tiny"], steps=scale.steps3, batch_size=scale.batch3,
                                     warmup=min(50, scale.steps3))
        llm, report = train_stage3(train, llm_dir, preset, seed=seed)
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


def blind_baselines(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, Any]:
    """What needs no image at all, on the same test images: VQA answered with the training
    split's most frequent answer to the same question (else to its type), and one constant
    caption (the most frequent training caption) scored like the LLM's. A variant the LLM
    cannot beat these with has not been read."""
    from collections import Counter

    from seedtok.data.shapes import Scene, parse_caption, scene_match
    from seedtok.mllm.bench import coco_scores, scene_references

    by_question: dict[str, Counter] = {}
    by_type: dict[str, Counter] = {}
    for r in train:
        for qa in r["vqa"]:
            by_question.setdefault(qa["question"], Counter())[qa["answer"]] += 1
            by_type.setdefault(qa["type"], Counter())[qa["answer"]] += 1
    per_type: dict[str, list[bool]] = {}
    for r in test:
        for qa in r["vqa"]:
            prior = by_question.get(qa["question"]) or by_type.get(qa["type"]) or Counter({"": 1})
            per_type.setdefault(qa["type"], []).append(prior.most_common(1)[0][0] == qa["answer"])
    right = [x for v in per_type.values() for x in v]
    constant = Counter(r["caption"] for r in train).most_common(1)[0][0]
    scenes = [Scene.from_dict(r["scene"]) for r in test]
    exact = [scene_match(parse_caption(constant), s) for s in scenes]
    return {"vqa_accuracy": sum(right) / max(len(right), 1), "caption": constant,
            "vqa_per_type": {t: sum(v) / len(v) for t, v in sorted(per_type.items())},
            "caption_cider": coco_scores([constant] * len(test), scene_references(scenes))["cider"] if test else None,
            "caption_exact": sum(exact) / max(len(exact), 1)}


# --- one run, and the whole ablation ----------------------------------------------------------

def flatten(result: dict[str, Any]) -> dict[str, float | None]:
    """A run's result -> the headline numbers of :data:`HEADLINE`."""
    tokm, llm = result["tokenizer"], result["llm"]
    codes = (tokm.get("retrieval") or {}).get("codes") or {}
    cb = tokm.get("codebook") or {}
    curves = llm["curves"]

    def tail(key: str) -> float | None:
        vals = [v for v in curves.get(key, [])[-1:] if math.isfinite(v)]
        return vals[0] if vals else None

    return {
        "retrieval_i2t_r1_codes": codes.get("i2t_r1"),
        "reconstruction_color_shape": tokm["reconstruction"].get("color_shape"),
        "caption_exact": llm["caption"]["exact_scene_match"],
        "caption_cider": llm["caption"]["cider"],
        "vqa_accuracy": llm["vqa"]["accuracy"],
        "t2i_color_shape": llm["draw"]["color_shape"],
        "t2i_exact": llm["draw"]["exact_scene_match"],
        "llm_image_loss": tail("image_loss"),
        "llm_text_loss": tail("text_loss"),
        "code_entropy": llm.get("code_entropy"),
        "image_nats_from_text": None if llm.get("code_entropy") is None or tail("image_loss") is None
        else llm["code_entropy"] - tail("image_loss"),
        "codebook_used_pct": cb.get("codes_used_pct"),
        "codebook_perplexity": cb.get("perplexity"),
    }


def run_one(root: str, name: str, data: str, scale: Scale, seed: int, threads: int | None = 1) -> dict[str, Any]:
    """Train and score one (variant, seed); reuses every finished piece under ``root``."""
    if threads:
        torch.set_num_threads(threads)
    variant = VARIANTS[name]
    run = Path(root) / name / f"seed{seed}"
    result_path = run / "result.json"
    if (done := _done(result_path)) is not None:
        if "code_entropy" not in done["llm"]:  # results written before the metric existed
            from seedtok.mllm.cache import load_cache

            done["llm"]["code_entropy"] = code_entropy(load_cache(run / "ids-train").ids)
            done["headline"] = flatten(done)
            atomic_write_json(result_path, done)
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


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def summarise(results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every headline number, per variant."""
    table: dict[str, Any] = {}
    for name, variant in VARIANTS.items():
        runs = [r for r in results if r["variant"]["name"] == name]
        if not runs:
            continue
        types = sorted({t for r in runs for t in r["llm"]["vqa"]["per_type"]})
        table[name] = {"title": variant.title, "claim": variant.claim, "seeds": sorted(r["seed"] for r in runs),
                       **{key: _stats([flatten(r)[key] for r in runs]) for key, _ in HEADLINE},
                       "vqa_per_type": {t: _stats([r["llm"]["vqa"]["per_type"].get(t, {}).get("accuracy") for r in runs])
                                        for t in types}}
    return {**meta, "table": table}


def _fmt(s: dict[str, float | None], key: str) -> str:
    if s["mean"] is None:
        return "n/a"
    digits = 1 if key.startswith("codebook") or key == "caption_cider" and s["mean"] >= 10 else 3
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    cols = [label for _, label in HEADLINE]
    lines = ["| variant | claim | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, row in summary["table"].items():
        lines.append(f"| `{name}` | {row['claim']} | " + " | ".join(_fmt(row[k], k) for k, _ in HEADLINE) + " |")
    blind = summary.get("blind")
    if blind:
        cells = {"caption_exact": blind["caption_exact"], "caption_cider": blind["caption_cider"],
                 "vqa_accuracy": blind["vqa_accuracy"]}
        lines.append("| no image (priors) | control | " + " | ".join(
            "n/a" if k not in cells else f"{cells[k]:.3f}" for k, _ in HEADLINE) + " |")
    n = max((len(r["seeds"]) for r in summary["table"].values()), default=0)
    types = sorted({t for r in summary["table"].values() for t in r.get("vqa_per_type", {})})
    if types:
        lines += ["", "VQA accuracy by question type:", "",
                  "| variant | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
        for name, row in summary["table"].items():
            lines.append(f"| `{name}` | " + " | ".join(_fmt(row["vqa_per_type"].get(t, {"mean": None}), t) for t in types) + " |")
        if blind and blind.get("vqa_per_type"):
            lines.append("| no image (priors) | " + " | ".join(f"{blind['vqa_per_type'].get(t, float('nan')):.3f}" for t in types) + " |")
    lines.append("")
    compute = sum(summary.get("run_wall_s", {}).values()) + sum(summary.get("stage1_wall_s", {}).values())
    lines.append(f"Mean ± sample std over {n} seed(s); scale `{summary['scale_name']}` ({summary['scale']}). "
                 f"This invocation: {summary['wall_s'] / 60:.1f} min wall on {summary['machine'].get('cores')} cores, "
                 f"{summary['jobs']} job(s) in parallel; the runs themselves (also those reused from an earlier, "
                 f"interrupted invocation) took {compute / 60:.1f} job-minutes of one thread each.")
    lines.append(f"Reproduce: `{summary['command']}`")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Stage-3 training loss on image tokens (text-to-image targets) and on text, mean over
    seeds per variant (moving mean of 25 steps); dashed: each variant's code entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in VARIANTS:
        runs = [r["llm"]["curves"] for r in results if r["variant"]["name"] == name]
        if not runs:
            continue
        n = min(len(c["step"]) for c in runs)
        for ax, key in zip(axes, ("image_loss", "text_loss")):
            ys = [statistics.fmean([c[key][i] for c in runs if math.isfinite(c[key][i])] or [float("nan")]) for i in range(n)]
            line, = ax.plot(runs[0]["step"][:n], ys, label=name)
            entropies = [r["llm"].get("code_entropy") for r in results if r["variant"]["name"] == name]
            if key == "image_loss" and all(e is not None for e in entropies):
                ax.axhline(statistics.fmean(entropies), color=line.get_color(), linestyle="--", linewidth=0.8)
    for ax, title in zip(axes, ("LLM loss on image tokens (dashed: code entropy)", "LLM loss on text (caption, VQA)")):
        ax.set_title(title)
        ax.set_xlabel("stage-3 step")
        ax.set_ylabel("cross-entropy (nats)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def ablate(data: str, out: str, variants: list[str] | None = None, seeds: tuple[int, ...] = (0, 1, 2),
           scale_name: str = "default", jobs: int = 2, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Run every (variant, seed) (``jobs`` processes of one torch thread each) and write
    ``ablation.json``, ``ablation.md`` and ``loss_curves.png`` under ``out``."""
    from tqdm.auto import tqdm

    from seedtok.bench import machine_info

    names = variants or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if not (Path(data) / "index.json").is_file():
        raise FileNotFoundError(f"{data}: not a shapes-world directory (make one with `seedtok data shapes`)")
    scale = SCALES[scale_name]
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    setup = {"data": str(Path(data).resolve()), "scale": dataclasses.asdict(scale)}
    if (known := _done(root / "setup.json")) is not None and known != setup:
        raise ValueError(f"{root} holds runs of another setup ({known}); resuming would mix them: "
                         f"use another --out or delete it")
    atomic_write_json(root / "setup.json", setup)
    t0 = time.perf_counter()
    # Stage-1 runs first: variants sharing one (preset, seed) must not train it twice at once.
    first = sorted({(VARIANTS[n].preset, s): n for n in names for s in seeds
                    if VARIANTS[n].kind == "seed" and VARIANTS[n].stage1}.items())
    tasks = [("stage1", n, s) for (_, s), n in first] + [("run", n, s) for s in seeds for n in names]
    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc="ablation", disable=not progress)

    def finished(phase: str, n: str, s: int, res: dict[str, Any] | None) -> None:
        bar.update(1)
        what = f"stage 1 ({VARIANTS[n].preset})" if phase == "stage1" else n
        bar.write(f"[{time.perf_counter() - t0:6.0f} s] {what} seed {s} done")
        if res is not None:
            results.append(res)

    if jobs <= 1:  # in this process (tests, debugging)
        for phase, n, s in tasks:
            finished(phase, n, s, _task(phase, str(root), n, data, scale, s, threads=None))
    else:
        # spawn: fresh interpreters, no forked torch thread pools
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for phase in ("stage1", "run"):
                futures = {pool.submit(_task, phase, str(root), n, data, scale, s): (n, s) for p, n, s in tasks if p == phase}
                for fut in as_completed(futures):
                    finished(phase, *futures[fut], fut.result())
    bar.close()
    results.sort(key=lambda r: (list(VARIANTS).index(r["variant"]["name"]), r["seed"]))
    meta = {"what": "seedtok ablation (issue 11): image tokenizers swapped, everything else fixed", "data": str(data),
            "seeds": list(seeds), "scale_name": scale_name, "scale": dataclasses.asdict(scale), "jobs": jobs,
            "command": command, "machine": machine_info(), "wall_s": round(time.perf_counter() - t0, 1),
            "run_wall_s": {f"{r['variant']['name']}/seed{r['seed']}": r["wall_s"] for r in results},
            "stage1_wall_s": {p.parent.name: round(json.loads(p.read_text())["wall_s"], 1)
                              for p in sorted((root / "_stage1").glob("*/train_summary.json"))}}
    if results:  # every tokenizer's caches hold the same records
        from seedtok.mllm.cache import load_cache

        first = root / results[0]["variant"]["name"] / f"seed{results[0]['seed']}"
        meta["blind"] = blind_baselines(load_cache(first / "ids-train").records,
                                        load_cache(first / "ids-test").records[: scale.eval_num])
    summary = summarise(results, meta)
    atomic_write_json(root / "ablation.json", summary)
    atomic_write_bytes(root / "ablation.md", markdown(summary).encode())
    plot(results, root / "loss_curves.png")
    return summary


def _task(phase: str, root: str, name: str, data: str, scale: Scale, seed: int, threads: int | None = 1) -> dict[str, Any] | None:
    if threads:
        torch.set_num_threads(threads)
        logging.basicConfig(level=logging.WARNING)
    if phase == "stage1":
        stage1_dir(Path(root), VARIANTS[name], data, scale, seed)
        return None
    return run_one(root, name, data, scale, seed, threads)
