"""Stage 3 over token shards, streamed (paper sec. 4.1 at corpus scale).

``seedtok tokenize-dataset`` turns images into token shards (``<key>.json`` = ids + caption +
metadata). The in-memory stage 3 (:mod:`seedtok.mllm.stage3`) holds every record in an
:class:`~seedtok.mllm.cache.IdCache`; here the records stream through
:class:`~seedtok.data.stream.ShardStream` (rank/worker split, block shuffle, exact resume) and
each record becomes one example of a task drawn with the preset's weights at that step.
"""

from __future__ import annotations

import json
import random
from typing import Any

import torch

from seedtok.data.datasets import SampleError
from seedtok.mllm.stage3 import Stage3Preset, task_example
from seedtok.mllm.sequences import SequenceBuilder, collate

TASKS = ("caption", "draw", "vqa")


def token_record(raw: dict[str, Any]) -> dict[str, Any]:
    """A token-shard sample -> ``{"key", "ids" (num_tokens,), "caption", "vqa", "scene"}``."""
    key = str(raw.get("__key__", "?"))
    try:
        rec = json.loads(raw["json"])
    except (KeyError, ValueError, UnicodeDecodeError):
        raise SampleError("bad json", key) from None
    ids = rec.get("ids") if isinstance(rec, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        raise SampleError("missing ids", key)
    caption = rec.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise SampleError("missing caption", key)
    return {"key": key, "ids": torch.tensor(ids, dtype=torch.long), "caption": caption,
            "vqa": rec.get("vqa") or [], "scene": rec.get("scene")}


class StreamMixture:
    """Streamed records -> a collated stage-3 batch: record ``i`` of micro step ``m`` becomes an
    example of a task drawn from the preset's weights at step ``m // grad_accum`` (VQA only for
    records that have questions; plain image-text data has none), with a generator seeded by
    ``(seed, m, first key)``, so a resumed run builds the same batch."""

    def __init__(self, builder: SequenceBuilder, preset: Stage3Preset, seed: int, total_steps: int, grad_accum: int = 1) -> None:
        self.builder, self.preset, self.seed = builder, preset, seed
        self.total_steps, self.grad_accum = total_steps, grad_accum

    def __call__(self, b: dict[str, Any]) -> dict[str, torch.Tensor]:
        records = b["records"]
        step = b["__micro_step__"] // self.grad_accum
        rng = random.Random(f"{self.seed}/{b['__micro_step__']}/{records[0]['key']}")
        weights = list(self.preset.weights_at(step, self.total_steps))
        examples, task_ids = [], []
        for rec in records:
            w = weights if rec["vqa"] else weights[:2] + [0.0]
            t = rng.choices(range(3), w)[0] if sum(w) > 0 else 0
            examples.append(task_example(self.builder, rec["ids"], rec, TASKS[t], rng))
            task_ids.append(t)
        batch = collate(examples, self.builder.tokenizer.pad_token_id)
        batch["task_ids"] = torch.tensor(task_ids)
        return batch


def train_stage3_stream(tokens: str, meta: dict[str, Any], out_dir: str, preset: Stage3Preset, opts: Any,
                        base: str | None = None, gguf_file: str | None = None, steps: int | None = None, seed: int = 0,
                        resume: bool = False, progress: bool = False, grad_checkpointing: bool = False):
    """:func:`~seedtok.mllm.stage3.train_stage3` over streamed token shards. ``meta`` names the
    image tokenizer (``codebook_size``, ``num_tokens``, ``tokenizer`` fingerprint); ``opts`` is a
    :class:`~seedtok.train.stream_runs.StreamOptions`. Returns (model, report)."""
    import os
    import time
    from dataclasses import asdict
    from pathlib import Path

    from seedtok.fileio import atomic_write_json
    from seedtok.mllm.lora import count_parameters
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.train import mean_loss, train_lm
    from seedtok.train.core import TrainArgs
    from seedtok.train.streaming import StreamBatches, train_shards

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    llm = SeedLLM.from_base(base, meta["codebook_size"], meta["num_tokens"], preset.lora, gguf_file, finetune=preset.finetune)
    total = steps or preset.steps
    args = TrainArgs(out=str(out_dir), steps=total, batch_size=preset.batch_size, lr=preset.lr, weight_decay=0.0,
                     warmup=preset.warmup, min_lr_ratio=0.1, seed=seed, resume=resume, grad_checkpointing=grad_checkpointing,
                     progress=progress, log_every=25, ckpt_every=100,
                     extra={"preset": asdict(preset), "base": str(base), "image_tokenizer": meta["tokenizer"]})
    from seedtok.data.stream import ShardStream

    stream = ShardStream(train_shards(tokens), None, preset.batch_size, seed, opts.shuffle_buffer, decode=token_record)
    data = StreamBatches(stream, StreamMixture(llm.builder, preset, seed, total), opts.workers, opts.key_log)
    codes = (llm.vocab.image_offset, llm.vocab.image_offset + llm.vocab.codebook_size)
    fit = train_lm(llm.model, None, args, "llm", info=opts.identity(), image_range=codes,
                   weighting=preset.loss_weighting, data=data)
    llm.save(out_dir)
    report = {
        "stage": 3, "preset": asdict(preset), "base": llm.base or "shipped stand-in (assets/standins/lm-tiny)",
        "tokens": str(tokens), "stream": True, "image_tokenizer": meta["tokenizer"],
        "train_seconds": round(fit["wall_s"], 1), "load_avg_1min": os.getloadavg()[0], "threads": torch.get_num_threads(),
        **count_parameters(llm.model), "final_loss": mean_loss(fit["history"]), "resumed_at": fit["start_step"],
        "data": {k: v for k, v in fit.get("data", {}).items() if k != "positions"},
        "train_samples": total * preset.batch_size, "total_seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(Path(out_dir) / "train_report.json", report)
    return llm, report
