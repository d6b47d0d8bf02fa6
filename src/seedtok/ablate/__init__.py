"""``seedtok ablate``: the paper's three principles tested in one controlled tiny-world setting.

SEED (arXiv 2307.08041, sec. 1 and 3) argues that image tokens for an LLM should (i) have 1-D
*causal* dependency, (ii) carry high-level *semantics* rather than pixels, and (iii) come from
a tokenizer trained for both *discrimination* (stage 1, contrastive) and *reconstruction*
(stage 2). Its evidence is a pilot (OPT-2.7B captioning with VQ-VAE vs BEiT-v2 tokens, sec. 2).
Here each claim gets a variant that changes only the image tokenizer; data, LLM stand-in,
stage-3 recipe, step counts and seeds stay fixed. Every variant runs the shipped model's recipe
(``seedtok demo --train``): stage 1 from the stand-in Q-Former with the slot scene term, stage 2
with weights VQ 5 / cosine 2 / MSE 0 / contrastive-on-codes 1 and then the generation phase,
stage 3 the ``tiny-full`` preset on the shipped stand-in LM:

========================  ==================================================================
``seed``                  SEED: Causal Q-Former (stage 1) + codebook, then the generation
                          path (stage 2), as shipped
``bidirectional``         the same with the Q-Former's causal mask off (BLIP-2-style
                          queries; preset ``tiny-stage1-bidirectional``)             -> (i)
``pixel-vq``              2-D pixel tokens: a VQ-VAE-style conv autoencoder with a 4x8 grid
                          of 32 tokens and the same 1024-code codebook, trained on pixel
                          reconstruction only; its own decoder draws the images      -> (ii)
``contrastive-only``      SEED without stage 2's reconstruction losses: the codes are
                          trained by VQ + the contrastive term on the codes (weights
                          5/0/0/1) and there is no generation phase, so nothing fits the
                          generation path to the codes                               -> (iii)
``reconstruction-only``   SEED without any contrastive training: random frozen Q-Former
                          (no stand-in, no stage 1), stage 2 without its contrastive term
                          (5/2/0/0) and with the generation phase                    -> (iii)
``oracle``                no tokenizer: the true scene written into the codes
                          (:mod:`seedtok.mllm.oracle`), drawn back by its exact inverse:
                          the LLM's ceiling
========================  ==================================================================

Per variant and seed, :func:`run_one` trains the tokenizer, scores it (retrieval from codes,
reconstruction through the de-tokenizer, codebook usage), tokenizes the training and test
splits once, runs stage 3 on the tokens and scores captioning (exact scene match, CIDEr), VQA
(overall and per question type) and text-to-image (per object and exact scene).
:func:`summarise` turns the runs into one table (mean and spread over seeds, and which
differences exceed 2 std), Markdown and a plot of the LLM's training loss on image tokens.
Every stage writes its result atomically and is skipped when present (stage 3 resumes from its
last checkpoint), so an interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from seedtok.ablate.report import HEADLINE, blind_baselines, flatten, markdown, plot, summarise
from seedtok.ablate.runs import _done, code_entropy, run_one, stage1_dir
from seedtok.ablate.variants import SCALES, VARIANTS, Scale, Variant
from seedtok.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["HEADLINE", "SCALES", "VARIANTS", "Scale", "Variant", "ablate", "blind_baselines", "canonical_command", "code_entropy", "flatten",
           "markdown", "plot", "run_one", "summarise"]


def ablate(data: str, out: str, variants: list[str] | None = None, seeds: tuple[int, ...] = (0, 1, 2),
           scale_name: str = "default", jobs: int = 2, progress: bool = True) -> dict[str, Any]:
    """Run every (variant, seed) (``jobs`` processes of one torch thread each) and write
    ``ablation.json``, ``ablation.md`` and ``loss_curves.png`` under ``out`` (a function of the
    finished runs alone), and ``invocation.json`` (this call's wall time, jobs and machine)."""
    from tqdm.auto import tqdm

    from seedtok.bench import machine_info

    names = variants or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if not (Path(data) / "index.json").is_file():
        raise FileNotFoundError(f"{data}: not a shapes-world directory (make one with `seedtok data shapes`)")
    scale = SCALES[scale_name]
    command = canonical_command(str(data), str(out), variants, seeds, scale_name)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    setup = {"data": str(Path(data).resolve()), "scale": dataclasses.asdict(scale)}
    if (known := _done(root / "setup.json")) is not None and known != setup:
        raise ValueError(f"{root} holds runs of another setup ({known}); resuming would mix them: "
                         f"use another --out or delete it")
    atomic_write_json(root / "setup.json", setup)
    t0 = time.perf_counter()
    # Stage-1 runs first: variants sharing one (preset, seed) must not train it twice at once.
    first = sorted({(VARIANTS[n].preset, VARIANTS[n].qformer_init, s): n for n in names for s in seeds
                    if VARIANTS[n].kind == "seed" and VARIANTS[n].stage1}.items())
    tasks = [("stage1", n, s) for (_, _, s), n in first] + [("run", n, s) for s in seeds for n in names]
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
    # The summary depends on the finished runs only (re-summarising cached runs is byte-identical);
    # what belongs to this invocation (its wall time, jobs, machine load) goes to invocation.json.
    meta = {"what": "seedtok ablation: image tokenizers swapped, everything else fixed", "data": str(data),
            "seeds": list(seeds), "scale_name": scale_name, "scale": dataclasses.asdict(scale), "command": command,
            "run_wall_s": {f"{r['variant']['name']}/seed{r['seed']}": r["wall_s"] for r in results},
            "stage1_wall_s": {p.parent.name: round(json.loads(p.read_text())["wall_s"], 1)
                              for p in sorted((root / "_stage1").glob("*/train_summary.json"))}}
    # The no-image priors, from the records of any tokenizer's caches (all hold the same records).
    first = next((r for r in results if r["variant"].get("kind") != "oracle"), None)
    if first is not None:
        from seedtok.mllm.cache import load_cache

        run = root / first["variant"]["name"] / f"seed{first['seed']}"
        meta["blind"] = blind_baselines(load_cache(run / "ids-train").records,
                                        load_cache(run / "ids-test").head(scale.eval_num).records)
    summary = summarise(results, meta)
    atomic_write_json(root / "ablation.json", summary)
    atomic_write_bytes(root / "ablation.md", markdown(summary).encode())
    plot(results, root / "loss_curves.png")
    invocation = {"wall_s": round(time.perf_counter() - t0, 1), "jobs": jobs, "machine": machine_info(),
                  "ran": sorted(f"{r['variant']['name']}/seed{r['seed']}" for r in results)}
    atomic_write_json(root / "invocation.json", invocation)
    return {**summary, "invocation": invocation}


def canonical_command(data: str, out: str, variants: list[str] | None, seeds: tuple[int, ...], scale_name: str) -> str:
    """The ``seedtok ablate`` command that makes this table (``--jobs`` changes nothing in it)."""
    import shlex

    parts = ["seedtok", "ablate", "--data", data, "--out", out]
    if variants:
        parts += ["--variants", *variants]
    if tuple(seeds) != (0, 1, 2):
        parts += ["--seeds", *map(str, seeds)]
    if scale_name != "default":
        parts += ["--scale", scale_name]
    return " ".join(shlex.quote(x) for x in parts)


def _task(phase: str, root: str, name: str, data: str, scale: Scale, seed: int, threads: int | None = 1) -> dict[str, Any] | None:
    if threads:
        torch.set_num_threads(threads)
        logging.basicConfig(level=logging.WARNING)
    if phase == "stage1":
        stage1_dir(Path(root), VARIANTS[name], data, scale, seed)
        return None
    return run_one(root, name, data, scale, seed)
