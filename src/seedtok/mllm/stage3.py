"""Stage 3: LoRA-tune a frozen LLM on SEED tokens, both directions (paper sec. 3.3 and 4.1:
image->text "a photo of" captioning, text->image "Generate an image:", plus VQA).

Each batch mixes the three tasks over a pre-tokenized :class:`~seedtok.mllm.cache.IdCache`;
the draw for step ``s`` depends only on ``(seed, s)``, so a resumed run sees the same data.
The paper leaves the LoRA rank, learning rate and steps unstated; the presets below are our
documented choices.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from seedtok.mllm.cache import IdCache
from seedtok.mllm.lora import LoraSettings, count_parameters
from seedtok.mllm.model import SeedLLM
from seedtok.mllm.sequences import IGNORE_INDEX, Example, SequenceBuilder, collate
from seedtok.mllm.train import mean_loss, train_lm
from seedtok.train.core import TrainArgs
from seedtok.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage3Preset:
    """Stage-3 training settings.

    ``task_weights``: relative frequency of (caption, draw, vqa) examples; ``curriculum``:
    ``((until, weights), ...)`` phases used before ``task_weights`` applies, ``until`` a
    fraction of the run's steps (e.g. ``((1/3, (1, 0, 0)),)``: captions only for the first
    third, then the mixture; a fraction, so a run with other ``--steps`` keeps the same
    shape); ``loss_weighting``:
    ``token`` | ``sequence`` | ``task`` (:func:`seedtok.mllm.train.weighted_loss`);
    ``finetune``: ``lora`` (the frozen base + LoRA + new token rows, the paper's recipe) or
    ``full`` (every weight of the LLM trains); ``draw_tail_weight``: the loss weight of the
    text-to-image targets after the first ``draw_head`` image codes (1 = every code alike;
    the tiny tokenizer's slot read puts the scene's grid cells in its first 9 codes, and the
    other 23 are near-unpredictable from the text, docs/llm.md). Weights enter the loss as a
    weighted mean (:func:`seedtok.mllm.train.weighted_loss`)."""

    steps: int
    batch_size: int
    lr: float
    warmup: int = 50
    lora: LoraSettings = field(default_factory=LoraSettings)
    task_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    curriculum: tuple[tuple[float, tuple[float, float, float]], ...] = ()
    loss_weighting: str = "sequence"
    finetune: str = "lora"
    draw_head: int = 32
    draw_tail_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.draw_head <= 32 or self.draw_tail_weight < 0:
            raise ValueError(f"draw_head must be in [0, 32] and draw_tail_weight >= 0, got "
                             f"{self.draw_head} / {self.draw_tail_weight}")

    def weights_at(self, step: int, total_steps: int | None = None) -> tuple[float, float, float]:
        """The task weights at ``step`` of a run of ``total_steps`` (default ``steps``)."""
        total = total_steps or self.steps
        for until, weights in self.curriculum:
            if step < round(until * total):
                return weights
        return self.task_weights


# Chosen by measurement on oracle codes (docs/llm.md, "How stage 3 was chosen").
STAGE3_PRESETS: dict[str, Stage3Preset] = {
    # 2-core CPU, on top of the shipped stand-in LM: LoRA (the paper's recipe), sized to the
    # 15 CPU-minute budget (~0.7 CPU-s per step); captions only for the first third, then
    # caption:draw:VQA 1:1:2 (VQA's exist/position questions learn last).
    "tiny": Stage3Preset(steps=1200, batch_size=32, lr=3e-3, warmup=50, curriculum=((1 / 3, (1.0, 0.0, 0.0)),),
                         task_weights=(1.0, 1.0, 2.0)),
    # every weight of the stand-in trained (it learns faster per step than LoRA, docs/llm.md):
    # 2,500 steps (~0.28 CPU-s per step on the v3 stand-in), captions only for the first third,
    # then caption:draw:VQA 1:2:3, the 23 text-to-image codes after the 9 slot codes weighted 0.25
    "tiny-full": Stage3Preset(steps=2500, batch_size=32, lr=1e-3, warmup=50, curriculum=((1 / 3, (1.0, 0.0, 0.0)),),
                              task_weights=(1.0, 2.0, 3.0), draw_head=9, draw_tail_weight=0.25,
                              finetune="full"),
    # OPT-2.7B (or similar) on GPUs; the paper's values are unpublished, these are a start.
    "full": Stage3Preset(steps=20000, batch_size=128, lr=2e-4, warmup=500),
}


def task_example(builder: SequenceBuilder, codes: torch.Tensor, record: dict[str, Any], task: str, rng: random.Random) -> Example:
    """One training example of ``task`` for the image with ``codes`` and its ``record``."""
    if task == "caption":
        return builder.caption_example(codes, record["caption"])
    if task == "draw":
        return builder.draw_example(record["caption"], codes)
    qa = record["vqa"][int(rng.random() * len(record["vqa"]))]
    return builder.vqa_example(codes, qa["question"], qa["answer"])


class TaskMixture:
    """``make(index, size)`` -> a collated batch mixing the tasks by the preset's weights at
    the batch's step (``index // batches_per_step`` of ``total_steps``, default the preset's;
    a pure function of ``(seed, index)``).
    The batch carries ``task_ids`` (B,): 0 caption, 1 draw, 2 vqa."""

    tasks = ("caption", "draw", "vqa")

    def __init__(self, cache: IdCache, builder: SequenceBuilder, preset: Stage3Preset, seed: int = 0,
                 batches_per_step: int = 1, total_steps: int | None = None) -> None:
        if len(cache) == 0:
            raise ValueError("the id cache is empty")
        self.cache, self.builder, self.preset, self.seed = cache, builder, preset, seed
        self.batches_per_step, self.total_steps = batches_per_step, total_steps or preset.steps
        self.has_vqa = any(r["vqa"] for r in cache.records)  # plain image-text data has no VQA

    def weights(self, step: int) -> list[float]:
        w = list(self.preset.weights_at(step, self.total_steps))
        if not self.has_vqa:
            w[2] = 0.0
        if sum(w) <= 0:
            raise ValueError(f"no task has weight at step {step} (VQA needs VQA data)")
        return w

    def make(self, index: int, size: int) -> dict[str, torch.Tensor]:
        rng = random.Random(self.seed * 1_000_003 + index)
        weights = self.weights(index // self.batches_per_step)
        examples: list[Example] = []
        task_ids: list[int] = []
        while len(examples) < size:
            i = int(rng.random() * len(self.cache))
            t = rng.choices(range(3), weights)[0]
            if self.tasks[t] == "vqa" and not self.cache.records[i]["vqa"]:
                continue
            examples.append(task_example(self.builder, self.cache.ids[i], self.cache.records[i], self.tasks[t], rng))
            task_ids.append(t)
        batch = collate(examples, self.builder.tokenizer.pad_token_id)
        batch["task_ids"] = torch.tensor(task_ids)
        if self.preset.draw_tail_weight != 1.0:
            batch["label_weights"] = self.draw_weights(batch["labels"], batch["task_ids"])
        return batch

    def draw_weights(self, labels: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) loss weights: ``draw_tail_weight`` on a draw row's image codes after the
        first ``draw_head`` (its targets are ``<img>``, the codes, ``</img>``, end), else 1."""
        weights = torch.ones(labels.shape, dtype=torch.float32)
        head = self.preset.draw_head
        for row in (task_ids == self.tasks.index("draw")).nonzero().flatten().tolist():
            targets = (labels[row] != IGNORE_INDEX).nonzero().flatten()
            weights[row, targets[1 + head : -2]] = self.preset.draw_tail_weight
        return weights


def train_stage3(
    cache: IdCache, out_dir: str | os.PathLike, preset: Stage3Preset, base: str | os.PathLike | None = None,
    gguf_file: str | None = None, steps: int | None = None, seed: int = 0, resume: bool = False, progress: bool = False,
    grad_checkpointing: bool = False,
) -> tuple[SeedLLM, dict[str, Any]]:
    """Train and save the adapter to ``out_dir``; returns (model, report)."""
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    llm = SeedLLM.from_base(base, cache.meta["codebook_size"], cache.meta["num_tokens"], preset.lora, gguf_file,
                            finetune=preset.finetune)
    load_s = time.perf_counter() - t0
    mixture = TaskMixture(cache, llm.builder, preset, seed, total_steps=steps or preset.steps)
    args = TrainArgs(out=str(out_dir), steps=steps or preset.steps, batch_size=preset.batch_size, lr=preset.lr,
                     weight_decay=0.0, warmup=preset.warmup, min_lr_ratio=0.1, seed=seed, resume=resume,
                     grad_checkpointing=grad_checkpointing,
                     progress=progress, log_every=25, ckpt_every=100,
                     extra={"preset": asdict(preset), "base": str(base),
                            "image_tokenizer": cache.meta["tokenizer"]})
    codes = (llm.vocab.image_offset, llm.vocab.image_offset + llm.vocab.codebook_size)
    c_fit = time.process_time()
    fit = train_lm(llm.model, mixture.make, args, "llm", image_range=codes, weighting=preset.loss_weighting)
    fit_cpu = time.process_time() - c_fit
    llm.save(out_dir)
    report = {
        "stage": 3, "steps": args.steps, "preset": asdict(preset), "base": llm.base or "shipped stand-in (assets/standins/lm-tiny)",
        "train_images": len(cache), "image_tokenizer": cache.meta["tokenizer"], "load_seconds": round(load_s, 2),
        "train_seconds": round(fit["wall_s"], 1), "train_cpu_seconds": round(fit_cpu, 1),
        "cpu_seconds": round(time.process_time() - c0, 1), "load_avg_1min": os.getloadavg()[0], "threads": torch.get_num_threads(), **count_parameters(llm.model),
        "final_loss": mean_loss(fit["history"]), "resumed_at": fit["start_step"],
    }
    atomic_write_json(Path(out_dir) / "train_report.json", report)
    return llm, report
