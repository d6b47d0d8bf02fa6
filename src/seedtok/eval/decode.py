"""Tiny-world de-tokenization metrics (``seedtok bench decode``), scored by the exact shapes
scene parser (:mod:`seedtok.eval.images`):

- *SD upper bound*: images the stand-in draws from the ground-truth captions' MiniLM states
  (the paper's "SD" row: text -> image through the real text encoder);
- *reconstruction*: image -> seedtok ids -> generation embeddings -> image (the paper's
  "SEED" row; 68.23 vs SD's 68.43 CLIP score);
- decode latency per image and the stand-in's one-time training cost (from its provenance).
Per-object accuracy pairs generated and reference objects by grid cell
(:func:`seedtok.data.parse.object_accuracy`); ``color_shape`` is the headline figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from seedtok.decode.pipeline import SeedDetokenizer
from seedtok.eval.images import score_images

log = logging.getLogger(__name__)


def _generate(detok: SeedDetokenizer, embeds: torch.Tensor, batch: int, **options: Any) -> torch.Tensor:
    seed = options.pop("seed", detok.defaults.seed)
    chunks = [detok(embeds=embeds[i : i + batch], seed=seed + i, progress=False, **options).pixels
              for i in range(0, len(embeds), batch)]  # fmt: skip
    return torch.cat(chunks)


def upper_bound(
    detok: SeedDetokenizer, data: str, cache_dir: str | None, num: int = 500, batch: int = 50, **options: Any
) -> dict[str, float]:
    """The stand-in drawing ``num`` test-split scenes from their captions' MiniLM states."""
    from seedtok.decode.data import decoder_data

    tensors, test = decoder_data(data, "test", cache_dir)  # whole split: one cache entry
    t0 = time.perf_counter()
    pixels = _generate(detok, tensors["states"][:num].float(), batch, **options)
    result = score_images(pixels, test.scenes[:num])
    result["generate_s"] = round(time.perf_counter() - t0, 1)
    return result


def robustness(detok: SeedDetokenizer, data: str, cache_dir: str | None, num: int = 300) -> dict[str, float]:
    """``color_shape`` from degraded caption states, the way regressed generation embeddings
    are degraded: shrunk toward the mean state, (1 - a) s + a mean, or noised, s + a N(0, 1)."""
    from seedtok.decode.data import decoder_data

    tensors, test = decoder_data(data, "test", cache_dir)
    s = tensors["states"][:num].float()
    mean = tensors["states"].float().mean(0, keepdim=True)
    g = torch.Generator().manual_seed(0)
    out = {}
    for kind, a in (("shrink", 0.25), ("shrink", 0.5), ("shrink", 0.75), ("noise", 0.1), ("noise", 0.2), ("noise", 0.3)):
        x = (1 - a) * s + a * mean if kind == "shrink" else s + a * torch.randn(s.shape, generator=g)
        pixels = _generate(detok, x, 50)
        out[f"{kind}_{a}"] = {"mse_to_states": float(((x - s) ** 2).mean()),
                              "color_shape": score_images(pixels, test.scenes[:num])["color_shape"]}  # fmt: skip
    return out


def ground_truth(data: str, num: int = 500) -> dict[str, float]:
    """The parser on the real test renders: the ceiling every figure here is read against."""
    from seedtok.decode.data import decoder_data

    tensors, test = decoder_data(data, "test", None, num, states=False)
    return score_images(tensors["pixels"].float() / 255.0, test.scenes)


@torch.no_grad()
def reconstruction(
    tokenizer: torch.nn.Module, detok: SeedDetokenizer, data: str, num: int | None = 500, batch: int = 50,
    split: str = "test", **options: Any
) -> dict[str, float]:
    """Images of ``split`` -> ids -> generation embeddings -> images, scored against the true scenes."""
    from seedtok.config import CLIP_MEAN, CLIP_STD
    from seedtok.decode.data import to_uint8
    from seedtok.train.data import load_image_text

    cfg = tokenizer.config
    test = load_image_text(data, split, cfg.vision.image_size, num)  # CLIP-normalised
    unit = to_uint8(test.pixels, CLIP_MEAN, CLIP_STD).float() / 255.0
    mean, std = torch.tensor(cfg.image_mean).view(1, 3, 1, 1), torch.tensor(cfg.image_std).view(1, 3, 1, 1)
    pixels_in = (unit - mean) / std
    ids = torch.cat([tokenizer.encode(pixels_in[i : i + batch])[0] for i in range(0, len(test), batch)])
    embeds = torch.cat([tokenizer.decode_ids(ids[i : i + batch]) for i in range(0, len(ids), batch)])
    pixels = _generate(detok, embeds, batch, **options)
    result = score_images(pixels, test.scenes)
    result["distinct_ids"] = int(ids.unique().numel())
    return result


def latency(detok: SeedDetokenizer, steps: int = 25, repeats: int = 3, batch: int = 1) -> dict[str, Any]:
    """Seconds per image for decoding generation embeddings (median of ``repeats``)."""
    from seedtok.bench import time_calls

    length, width = detok.embedding_shape
    embeds = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(0))
    times = time_calls(lambda: detok(embeds=embeds, num_inference_steps=steps, progress=False), repeats, warmup=1)
    med = statistics.median(times)
    return {"steps": 1 if detok.one_step else steps, "batch": batch, "repeats": repeats, "seconds": times,
            "median_s_per_image": med / batch, "spread_s": max(times) - min(times)}  # fmt: skip


def _provenance(decoder_dir: str | None) -> dict[str, Any] | None:
    from seedtok.decode.standin import PROVENANCE, STANDIN_DIR

    path = Path(decoder_dir or STANDIN_DIR) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else None


def bench_decode(
    data: str, decoders: Sequence[str | None], model: str | None = None, num: int = 500, steps: int = 25,
    cache_dir: str | None = None, repeats: int = 3, num_diffusion: int = 100,
) -> dict[str, Any]:
    """One JSON: per decoder (``None`` = the shipped stand-in) the SD upper bound, latency and
    training cost; with a trained tokenizer ``model``, the reconstruction figure too. Diffusion
    decoders are scored on the first ``num_diffusion`` scenes (each image costs 2 x ``steps``
    UNet passes with CFG), one-step decoders on ``num``."""
    from seedtok.bench import machine_info
    from seedtok.decode import load_detokenizer

    result: dict[str, Any] = {"benchmark": "decode", "data": str(data), "num_test_scenes": num, "machine": machine_info(),
                              "parser_on_ground_truth": ground_truth(data, num), "decoders": {}}  # fmt: skip
    tokenizer = None
    if model is not None:
        from seedtok.checkpoint import from_pretrained

        tokenizer = from_pretrained(model)
    for path in decoders:
        detok = load_detokenizer(path, tokenizer)
        name = str(path) if path else "shipped"
        count = num if detok.one_step else min(num, num_diffusion)
        entry: dict[str, Any] = {"kind": "onestep" if detok.one_step else "diffusion", "path": name, "scenes": count}
        entry["sd_upper_bound"] = upper_bound(detok, data, cache_dir, count, num_inference_steps=steps)
        entry["latency"] = latency(detok, steps, repeats)
        if detok.one_step:
            entry["robustness"] = robustness(detok, data, cache_dir, min(num, 300))
        if tokenizer is not None:
            entry["reconstruction"] = reconstruction(tokenizer, detok, data, count, num_inference_steps=steps)
        prov = _provenance(path)
        entry["training"] = {k: prov.get(k) for k in ("command", "steps", "wall_s_total", "device", "params")} if prov else None
        result["decoders"][name] = entry
    result["summary"] = {name: {"sd_upper_bound": e["sd_upper_bound"]["color_shape"],
                                "reconstruction": e.get("reconstruction", {}).get("color_shape"),
                                "s_per_image": e["latency"]["median_s_per_image"]}
                         for name, e in result["decoders"].items()}  # fmt: skip
    return result


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="shapes-world directory (test split is scored)")
    p.add_argument("--decoder", action="append", help="stand-in dir (repeatable; default: the shipped one)")
    p.add_argument("--model", help="trained tiny tokenizer directory: adds the reconstruction figure")
    p.add_argument("--num", type=int, default=500, help="test scenes to score")
    p.add_argument("--num-diffusion", type=int, default=100, help="at most this many for diffusion decoders")
    p.add_argument("--steps", type=int, default=25, help="denoising steps for diffusion decoders")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cache-dir", help="MiniLM state cache (default: DATA/.seedtok-cache)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default="bench/decode.json")


def bench_from_args(a: argparse.Namespace) -> dict[str, Any]:
    if a.threads:
        torch.set_num_threads(a.threads)
    return bench_decode(a.data, a.decoder or [None], a.model, a.num, a.steps, a.cache_dir, a.repeats, a.num_diffusion)
