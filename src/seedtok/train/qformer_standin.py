"""Stage 0d: the tiny world's stand-in for BLIP-2's pretrained Q-Former (``seedtok train qformer``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from seedtok.train.core import TrainArgs
from seedtok.train.data import load_image_text, map_in_chunks
from seedtok.train.pretrained import load_tokenizer, qformer_state_dict
from seedtok.train.runs import (QFORMER_STANDIN_PRESET, TINY_ENCODER, TINY_GENERATION_WEIGHT, _is_main, _write_json,
                                default_cache, run_stage1)
from seedtok.train.stream_runs import StreamOptions

QFORMER_SCENE_WEIGHT = 1.0  # the scene term of stage 0d (seedtok.train.stage1)
# How stage 0d's scene term reads the queries (seedtok.train.stage1.SceneHead): query k names grid
# cell k. With 'attend' the scene spread over all queries and half of it was lost at the codebook
# (docs/training.md, "Where reconstruction is lost").
QFORMER_SCENE_READ = "slots"


def run_qformer(data: str, args: TrainArgs, encoder: str | None = None, limit: int | None = None,
                cache_dir: str | None = None, probe_train: int = 6000) -> dict[str, Any]:
    """Stage 0d: pretrain the stand-in Q-Former, the tiny world's BLIP-2 Q-Former. BLIP-2's
    Q-Former is bidirectional and pretrained on image-text pairs (contrastive + image-grounded
    text generation) before SEED makes it causal; here: the ``tiny-stage1-bidirectional`` preset
    on the stand-in ViT, contrastive + the image-grounded generation term
    (:mod:`seedtok.train.stage1`, weight ``generation_weight``, default 10) + the scene term
    (``scene_weight``, default 1: every grid cell named from the query outputs). Writes
    ``qformer.safetensors`` (``qformer.*`` + ``ln_vision.*``, what stage 1 loads) and
    ``provenance.json`` with what it kept of the scenes: retrieval (test split) and the
    whole-scene linear probe of its query outputs."""
    from seedtok.eval.probe import scene_probe
    from seedtok.eval.tokenizer import tokenizer_retrieval

    args.extra.setdefault("generation_weight", TINY_GENERATION_WEIGHT)
    args.extra.setdefault("scene_weight", QFORMER_SCENE_WEIGHT)
    args.extra.setdefault("scene_read", QFORMER_SCENE_READ)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run_stage1(data, args, QFORMER_STANDIN_PRESET, encoder, None, "none", limit, cache_dir,
                         StreamOptions(mode="off"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = load_tokenizer(args.out).eval()
    out = Path(args.out)
    if _is_main():
        save_file(qformer_state_dict(model), str(out / "qformer.safetensors"), metadata={"format": "pt"})
    train = load_image_text(data, "train", model.config.vision.image_size, probe_train)
    test = load_image_text(data, "test", model.config.vision.image_size)
    with torch.no_grad():
        probe = scene_probe(map_in_chunks(model.causal_embeddings, train.pixels), train.scenes,
                            map_in_chunks(model.causal_embeddings, test.pixels), test.scenes)
    retrieval = tokenizer_retrieval(model, test, None, default_cache(data, cache_dir))["causal"]
    provenance = {
        "what": "stand-in BLIP-2 Q-Former for the tiny presets (stage 0d): bidirectional Q-Former on the stand-in "
                "ViT, image-text contrastive + image-grounded generation of the canonical caption's MiniLM states",
        "preset": QFORMER_STANDIN_PRESET, "encoder": str(encoder or TINY_ENCODER),
        "params": sum(v.numel() for v in qformer_state_dict(model).values()),
        "data": {"source": str(data), "train_samples": summary["train_samples"], "skipped": summary["skipped"]},
        "args": args.to_dict(), "steps": args.steps, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "torch_threads": torch.get_num_threads(), "final": summary["last"],
        "retrieval_test": retrieval,
        "scene_probe": {"what": f"whole-scene linear probe of the 32 query outputs, {len(train)} train images, "
                                f"test split", **probe},
    }
    _write_json(out / "provenance.json", provenance)
    return provenance
