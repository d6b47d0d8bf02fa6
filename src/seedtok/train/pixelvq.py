"""Training and evaluation of the 2-D pixel tokenizer (:mod:`seedtok.models.pixelvq`), the
"2D pixel tokens" baseline of the ablation: not part of SEED (arXiv 2307.08041; sec. 1-2 set
SEED's 1-D causal semantic tokens against VQ-VAE-style 2-D pixel codes).

One stage, pixels only: reconstruction + VQ loss through the shared loop
:func:`seedtok.train.loop.fit`, with dead-code re-initialisation (the cosine codebook recipe
of SEED's tiny stage 2). :data:`PIXEL_VQ_DEFAULTS` is the CPU budget the ablation runs with.

Measured on the 16k shapes world (500 test scenes, one shared CPU thread, ~3.5 min a run):
defaults give reconstruction color_shape 0.84 / 0.72 / 0.79 (seeds 0-2), exact 0.74 / 0.58 /
0.65, pixel MSE ~0.002. What did not work at that budget: batch 128 (160-550 steps: colourless
blobs, color_shape <= 0.08), ``vq_weight`` 1.0 (the codebook collapses to one code within ~12
steps; 0.57 after 2000 steps), an L1 + MSE loss (the L1 median is the white background: blank
images, 0.0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seedtok.checkpoint import save_pixel_vq
from seedtok.config import CLIP_MEAN, CLIP_STD
from seedtok.models.pixelvq import PixelVQConfig, PixelVQTokenizer
from seedtok.eval.codebook import codebook_report, position_counts
from seedtok.train.codebook import CodebookMonitor
from seedtok.train.core import TrainArgs
from seedtok.train.data import TensorBatches, load_image_text, map_in_chunks
from seedtok.train.loop import fit, make_accelerator
from seedtok.train.runs import _is_main, _write_json

# ~3.5 min on one CPU thread (module docstring): many small steps beat few large ones here.
PIXEL_VQ_DEFAULTS: dict[str, Any] = {"steps": 2000, "batch_size": 32, "lr": 2e-3, "warmup": 10}


def pixel_vq_args(out: str, **changes: Any) -> TrainArgs:
    """:class:`TrainArgs` with :data:`PIXEL_VQ_DEFAULTS`, then ``changes``."""
    return TrainArgs(out=out, **{**PIXEL_VQ_DEFAULTS, **changes})


def _clip_to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """CLIP-normalised pixels (what :func:`load_image_text` gives) -> [0, 1]."""
    return (pixels * torch.tensor(CLIP_STD).view(1, 3, 1, 1) + torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)).clamp(0, 1)


def _inputs(pixels: torch.Tensor, config: PixelVQConfig) -> torch.Tensor:
    """CLIP-normalised pixels -> the config's normalisation (the same tensor for CLIP stats)."""
    if tuple(config.image_mean) == CLIP_MEAN and tuple(config.image_std) == CLIP_STD:
        return pixels
    mean, std = torch.tensor(config.image_mean).view(1, 3, 1, 1), torch.tensor(config.image_std).view(1, 3, 1, 1)
    return (_clip_to_unit(pixels) - mean) / std


def run_pixel_vq(data: str, args: TrainArgs, limit: int | None = None, health_every: int = 50,
                 config: PixelVQConfig | None = None) -> dict[str, Any]:
    """Train a pixel tokenizer on the train split of ``data``; writes ``save_pixel_vq`` files,
    ``metrics.jsonl`` and ``train_summary.json`` into ``args.out``. Returns the summary."""
    config = config or PixelVQConfig()
    train = load_image_text(data, "train", config.image_size, limit)
    torch.manual_seed(args.seed)  # the init; fit() reseeds for the batches
    model = PixelVQTokenizer(config).train()
    acc = make_accelerator(args)
    monitor = CodebookMonitor(model.quantizer, config.num_tokens, args.seed, acc, reinit=True, window=health_every)
    run_info = {"stage": "pixel-vq", "config": config.to_dict(), "reinit": True, "health_every": health_every}
    batches = TensorBatches({"pixel_values": _inputs(train.pixels, config)}, args.seed)
    summary = fit(model, batches, args, run_info, monitor, acc)
    if _is_main():
        save_pixel_vq(model.eval(), args.out)
    summary.update(codebook=monitor.last_report, skipped=train.skipped, train_samples=len(train),
                   params=sum(p.numel() for p in model.parameters()), config=config.to_dict())
    _write_json(Path(args.out) / "train_summary.json", summary)
    return summary


@torch.no_grad()
def evaluate_pixel_vq(model: PixelVQTokenizer, data: str, num: int = 500, batch: int = 100) -> dict[str, Any]:
    """Reconstruct ``num`` test images (image -> 32 ids -> image) and score them with the
    scene parser (``color_shape`` is the headline; ``parser_on_inputs`` is its ceiling on the
    real renders), plus pixel MSE and codebook usage of the test ids."""
    from seedtok.eval.decode import score_images

    cfg = model.config
    test = load_image_text(data, "test", cfg.image_size, num)
    model.eval()
    ids = map_in_chunks(lambda t: model.encode(t)[0], _inputs(test.pixels, cfg), batch)  # (N, 32)
    pixels = map_in_chunks(model.decode_pixels, ids, batch)  # (N, 3, S, S) in [0, 1]
    target = _clip_to_unit(test.pixels)
    result: dict[str, Any] = score_images(pixels, test.scenes)
    result["pixel_mse"] = float(((pixels - target) ** 2).mean())
    result["parser_on_inputs"] = score_images(target, test.scenes)["color_shape"]
    result["codebook"] = codebook_report(position_counts(ids, cfg.codebook.codebook_size))
    return result
