"""Offline dataset tokenization: image shards -> token shards (paper sec. 4: images are
pre-tokenized once so that LLM training reads ids, not pixels).

Each input shard becomes one output shard of the same name holding, per sample,
``<key>.json`` = ``{"ids": [32 ints], "caption": str, ...metadata}`` and ``<key>.txt`` (the
caption). A shard is written under a temporary name and renamed when complete, then a
``<name>.summary.json`` (images, skipped by reason, seconds) is written the same way; a
re-run skips every shard whose output and summary both exist, so an interrupted job resumes
where it stopped and a deleted output shard is redone alone.

Engines: ``ray`` (Ray Data: an actor pool, each actor holding the model and tokenizing whole
shards with batched inference; a local Ray is started when no cluster is given) and
``local`` (the same per-shard function in this process, no Ray).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from seedtok.data.datasets import ImageTextDataset
from seedtok.data.shards import ShardWriter, dumps_json
from seedtok.data.sources import resolve_source
from seedtok.data.transforms import EvalTransform
from seedtok.fileio import atomic_write_json
from seedtok.models import SeedTokenizer

log = logging.getLogger(__name__)

SUMMARY_SUFFIX = ".summary.json"


def _out_names(shard: str, out_dir: Path) -> tuple[Path, Path]:
    name = Path(shard).name
    stem = name[: -len(".tar")] if name.endswith(".tar") else Path(name).stem
    return out_dir / f"{stem}.tar", out_dir / f"{stem}{SUMMARY_SUFFIX}"


def is_done(shard: str, out_dir: str | os.PathLike) -> bool:
    tar, summary = _out_names(shard, Path(out_dir))
    return tar.is_file() and summary.is_file()


def tokenize_shard(model: SeedTokenizer, shard: str, out_dir: str | os.PathLike, batch_size: int = 64) -> dict[str, Any]:
    """Encode every image of one shard; write its token shard and summary. Bad samples are
    skipped and counted (by reason) in the summary."""
    out_dir = Path(out_dir)
    tar, summary_path = _out_names(shard, out_dir)
    cfg = model.config
    ds = ImageTextDataset([shard], transform=EvalTransform(cfg.vision.image_size, cfg.image_mean, cfg.image_std))
    t0, n = time.perf_counter(), 0
    stem = tar.name[: -len(".tar")]
    with ShardWriter(out_dir, prefix=stem, max_count=10**9) as writer:
        for batch in _batches(iter(ds), batch_size):
            ids, _ = model.encode(torch.stack([s["pixel_values"] for s in batch]))
            for sample, row in zip(batch, ids.tolist()):
                meta = {k: sample[k] for k in ("scene", "vqa") if k in sample}
                record = {"ids": row, "caption": sample["caption"], **meta}
                writer.write(sample["key"], {"txt": sample["caption"].encode(), "json": dumps_json(record)})
                n += 1
        if not writer.paths:  # an input shard with no usable sample still gets an (empty) output
            writer._open_next()
    os.replace(writer.paths[0], tar)  # ShardWriter names it <stem>-000000.tar
    summary = {
        "shard": shard,
        "output": str(tar),
        "images": n,
        "skipped": ds.skipped.count,
        "skipped_by_reason": ds.skipped.as_dict(),
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_json(summary_path, summary)
    return summary


def _batches(it: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for sample in it:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class ShardTokenizer:
    """Ray Data actor: holds one model, tokenizes the shards of each batch it receives."""

    def __init__(self, model_dir: str | None, preset: str, seed: int, out_dir: str, batch_size: int, threads: int) -> None:
        from seedtok.api import load_tokenizer

        torch.set_num_threads(threads)
        self.model = load_tokenizer(model_dir, preset, seed)
        self.out_dir, self.batch_size = out_dir, batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        results = [tokenize_shard(self.model, str(s), self.out_dir, self.batch_size) for s in batch["shard"]]
        return {"summary": [json.dumps(r) for r in results]}


def tokenize_dataset(
    source: str | Sequence[str],
    out_dir: str | os.PathLike,
    model_dir: str | None = None,
    preset: str = "tiny",
    seed: int = 0,
    engine: str = "ray",
    workers: int = 2,
    batch_size: int = 64,
    threads_per_worker: int = 1,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Tokenize every shard of ``source`` into ``out_dir``; returns the job summary."""
    kind, shards = resolve_source(source)
    if kind != "shards":
        raise ValueError(f"{source}: tokenize-dataset reads webdataset shards (pack folders first with `seedtok data pack`)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in shards if not is_done(s, out)]
    log.info("%d shards, %d already complete, %d to do", len(shards), len(shards) - len(todo), len(todo))
    t0 = time.perf_counter()
    if not todo:
        results: list[dict[str, Any]] = []
    elif engine == "local":
        from seedtok.api import load_tokenizer

        model = load_tokenizer(model_dir, preset, seed)
        results = [tokenize_shard(model, s, out, batch_size) for s in todo]
    elif engine == "ray":
        actors = max(1, min(workers, len(todo)))  # no idle actors for a short job
        results = _run_ray(todo, out, model_dir, preset, seed, actors, batch_size, threads_per_worker, ray_address)
    else:
        raise ValueError(f"unknown engine {engine!r} (ray or local)")
    wall = time.perf_counter() - t0
    images = sum(r["images"] for r in results)
    return {
        "engine": engine,
        "workers": workers if engine == "ray" else 1,
        "shards_total": len(shards),
        "shards_done_now": len(results),
        "shards_skipped_complete": len(shards) - len(todo),
        "images": images,
        "skipped": sum(r["skipped"] for r in results),
        "wall_seconds": wall,
        "images_per_s": images / wall if wall > 0 and images else 0.0,
        "per_shard": results,
    }


def _run_ray(todo, out, model_dir, preset, seed, workers, batch_size, threads, address) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the ray engine needs Ray Data: pip install 'seedtok[scale]' (or --engine local)") from exc
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else max(workers * threads, 1),
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(
            ShardTokenizer,
            fn_constructor_kwargs=dict(model_dir=model_dir, preset=preset, seed=seed, out_dir=str(out),
                                       batch_size=batch_size, threads=threads),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
        )
        return [json.loads(row["summary"]) for row in ds.take_all()]
    finally:
        if started:
            ray.shutdown()


def bench_tokenize(source: str, out_dir: str | os.PathLike, workers: Sequence[int] = (1, 2), preset: str = "tiny") -> dict[str, Any]:
    """Images/s of Ray tokenization for each worker count (one thread per worker; Ray is
    started once, before timing), plus a clearly labelled per-GPU projection for ``seed1``."""
    import shutil

    import ray

    from seedtok.bench import machine_info, seed1_projection

    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False, configure_logging=False)
    runs = {}
    try:
        for n in workers:
            dest = Path(out_dir) / f"workers-{n}"
            shutil.rmtree(dest, ignore_errors=True)
            r = tokenize_dataset(source, dest, preset=preset, engine="ray", workers=n)
            runs[str(n)] = {k: r[k] for k in ("images", "skipped", "wall_seconds", "images_per_s")}
    finally:
        ray.shutdown()
    return {"benchmark": "tokenize-dataset", "preset": preset, "engine": "ray", "threads_per_worker": 1,
            "runs": runs, "projection_seed1_per_gpu": seed1_projection(), "machine": machine_info()}


def read_token_shards(source: str | Sequence[str]) -> Iterator[dict[str, Any]]:
    """Iterate the records of token shards: ``{"key", "ids", "caption", ...}``."""
    import tarfile

    kind, shards = resolve_source(source)
    for shard in shards:
        with tarfile.open(shard) as tf:
            for member in tf:
                if member.name.endswith(".json"):
                    record = json.loads(tf.extractfile(member).read())
                    yield {"key": member.name[: -len(".json")], **record}
