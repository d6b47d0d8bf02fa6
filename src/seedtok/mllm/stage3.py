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
from seedtok.mllm.sequences import Example, SequenceBuilder, collate
from seedtok.mllm.train import mean_loss, train_lm
from seedtok.train.core import TrainArgs
from seedtok.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage3Preset:
    steps: int
    batch_size: int
    lr: float
    warmup: int = 50
    lora: LoraSettings = field(default_factory=LoraSettings)
    # relative frequency of (caption, draw, vqa) examples
    task_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)


STAGE3_PRESETS: dict[str, Stage3Preset] = {
    # 2-core CPU, on top of the shipped stand-in LM.
    "tiny": Stage3Preset(steps=700, batch_size=32, lr=3e-3, warmup=50),
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
    """``make(index, size)`` -> a collated batch mixing the tasks by ``weights`` (a pure
    function of ``(seed, index)``)."""

    def __init__(self, cache: IdCache, builder: SequenceBuilder, weights: tuple[float, float, float], seed: int = 0) -> None:
        if len(cache) == 0:
            raise ValueError("the id cache is empty")
        self.cache, self.builder, self.seed = cache, builder, seed
        self.tasks = ["caption", "draw", "vqa"]
        self.weights = list(weights)
        if not any(r["vqa"] for r in cache.records):  # plain image-text data has no VQA
            self.weights[2] = 0.0

    def make(self, index: int, size: int) -> dict[str, torch.Tensor]:
        rng = random.Random(self.seed * 1_000_003 + index)
        examples: list[Example] = []
        while len(examples) < size:
            i = int(rng.random() * len(self.cache))
            task = rng.choices(self.tasks, self.weights)[0]
            if task == "vqa" and not self.cache.records[i]["vqa"]:
                continue
            examples.append(task_example(self.builder, self.cache.ids[i], self.cache.records[i], task, rng))
        return collate(examples, self.builder.tokenizer.pad_token_id)


def train_stage3(
    cache: IdCache, out_dir: str | os.PathLike, preset: Stage3Preset, base: str | os.PathLike | None = None,
    gguf_file: str | None = None, steps: int | None = None, seed: int = 0, resume: bool = False, progress: bool = False,
    grad_checkpointing: bool = False,
) -> tuple[SeedLLM, dict[str, Any]]:
    """Train and save the adapter to ``out_dir``; returns (model, report)."""
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    llm = SeedLLM.from_base(base, cache.meta["codebook_size"], cache.meta["num_tokens"], preset.lora, gguf_file)
    load_s = time.perf_counter() - t0
    mixture = TaskMixture(cache, llm.builder, preset.task_weights, seed)
    args = TrainArgs(out=str(out_dir), steps=steps or preset.steps, batch_size=preset.batch_size, lr=preset.lr,
                     weight_decay=0.0, warmup=preset.warmup, min_lr_ratio=0.1, seed=seed, resume=resume,
                     grad_checkpointing=grad_checkpointing,
                     progress=progress, log_every=25, ckpt_every=100,
                     extra={"lora": asdict(preset.lora), "tasks": list(preset.task_weights), "base": str(base),
                            "image_tokenizer": cache.meta["tokenizer"]})
    codes = (llm.vocab.image_offset, llm.vocab.image_offset + llm.vocab.codebook_size)
    fit = train_lm(llm.model, mixture.make, args, "llm", image_range=codes)
    llm.save(out_dir)
    report = {
        "stage": 3, "preset": asdict(preset), "base": llm.base or "shipped stand-in (assets/standins/lm-tiny)",
        "train_images": len(cache), "image_tokenizer": cache.meta["tokenizer"], "load_seconds": round(load_s, 2),
        "train_seconds": round(fit["wall_s"], 1),
        "cpu_seconds": round(time.process_time() - c0, 1), "load_avg_1min": os.getloadavg()[0], "threads": torch.get_num_threads(), **count_parameters(llm.model),
        "final_loss": mean_loss(fit["history"]), "resumed_at": fit["start_step"],
    }
    atomic_write_json(Path(out_dir) / "train_report.json", report)
    return llm, report
