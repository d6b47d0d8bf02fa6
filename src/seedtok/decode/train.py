"""Stage 0b: train the tiny world's text-to-image stand-in (``seedtok train decoder``).

SD-1.4, which SEED decodes through (paper sec. 3.1), was trained with the noise-prediction
loss on images conditioned on CLIP text states, dropping the condition for classifier-free
guidance. The ``diffusion`` stand-in is trained the same way on the shapes world, conditioned
on the frozen MiniLM states of the caption; the ``onestep`` stand-in maps the same states to
the image with a pixel reconstruction loss. Both run through the shared training core
(:func:`seedtok.train.loop.fit`: accelerate, AdamW, warmup + cosine, atomic checkpoints,
exact resume) and end as a stand-in directory ``OUT/decoder`` with its provenance.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.decode.data import GENERATION_LEN, decoder_data, empty_states
from seedtok.decode.pipeline import DecodeDefaults
from seedtok.fileio import atomic_write_json
from seedtok.decode.standin import (
    KINDS,
    OneStepConfig,
    OneStepGenerator,
    build_unet,
    save_standin,
    tiny_scheduler_config,
    tiny_unet_config,
    write_provenance,
)

log = logging.getLogger(__name__)

DEFAULTS: dict[str, dict[str, Any]] = {
    "onestep": dict(steps=3000, batch_size=32, lr=1e-3, warmup=100, weight_decay=0.01, width=192),
    "diffusion": dict(steps=20000, batch_size=32, lr=3e-4, warmup=500, weight_decay=0.01, width=32),
}
SAMPLING = {
    "onestep": DecodeDefaults(num_inference_steps=1, guidance_scale=1.0, height=64, width=64, seed=42, scheduler="ddim"),
    "diffusion": DecodeDefaults(num_inference_steps=25, guidance_scale=3.0, height=64, width=64, seed=42, scheduler="ddim"),
}


class ReconstructionObjective(nn.Module):
    """One-step generator loss: MSE between the generated and the true image, in [-1, 1].

    Condition augmentation (training only): each sample's states are pulled toward the
    dataset-mean state by a ~ U(0, ``shrink``) and get Gaussian noise of std ~ U(0, ``noise``).
    SEED's generation embeddings are *regressions* of the text states, which shrink toward
    the mean; without this the generator fails on them (see docs/decode.md)."""

    def __init__(self, generator: OneStepGenerator, mean_state: torch.Tensor | None = None,
                 shrink: float = 0.0, noise: float = 0.0) -> None:
        super().__init__()
        self.generator = generator
        self.shrink, self.noise = shrink, noise
        if mean_state is not None:
            self.register_buffer("mean_state", mean_state.float().reshape(1, *mean_state.shape[-2:]), persistent=False)

    def augment(self, states: torch.Tensor) -> torch.Tensor:
        b = states.shape[0]
        if self.shrink > 0:
            a = torch.rand(b, 1, 1, device=states.device) * self.shrink
            states = (1 - a) * states + a * self.mean_state
        if self.noise > 0:
            states = states + torch.rand(b, 1, 1, device=states.device) * self.noise * torch.randn_like(states)
        return states

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = batch["pixels"].float() / 127.5 - 1.0  # uint8 (B, 3, S, S) -> [-1, 1]
        states = batch["states"].float()
        if self.training:
            states = self.augment(states)
        mse = F.mse_loss(self.generator(states), target)
        return {"loss": mse, "mse": mse.detach()}


class NoisePredictionObjective(nn.Module):
    """Diffusion loss (DDPM / SD): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps with t uniform, the UNet
    predicts eps from (x_t, t, states); states are replaced by the unconditional embedding with
    probability ``cond_dropout`` so the same UNet also learns the unconditional model (CFG)."""

    def __init__(self, unet: nn.Module, uncond: torch.Tensor, cond_dropout: float = 0.1) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        self.unet = unet
        self.cond_dropout = cond_dropout
        noise = DDPMScheduler.from_config(tiny_scheduler_config())
        self.register_buffer("alphas_cumprod", noise.alphas_cumprod.float(), persistent=False)
        self.register_buffer("uncond", uncond.float().reshape(1, *uncond.shape[-2:]), persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = batch["pixels"].float() / 127.5 - 1.0
        states = batch["states"].float()
        b = x0.shape[0]
        t = torch.randint(0, len(self.alphas_cumprod), (b,), device=x0.device)
        eps = torch.randn_like(x0)
        a = self.alphas_cumprod[t].view(b, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        drop = torch.rand(b, device=x0.device) < self.cond_dropout
        cond = torch.where(drop[:, None, None], self.uncond.expand_as(states), states)
        mse = F.mse_loss(self.unet(xt, t, encoder_hidden_states=cond).sample, eps)
        return {"loss": mse, "mse": mse.detach()}


def build_model(kind: str, width: int | None = None) -> nn.Module:
    """A fresh stand-in of ``kind`` ('onestep' or 'diffusion'); ``width`` = hidden size / UNet
    base channels (defaults in :data:`DEFAULTS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown decoder kind {kind!r}; choose one of {list(KINDS)}")
    width = width or DEFAULTS[kind]["width"]
    if kind == "onestep":
        return OneStepGenerator(OneStepConfig(hidden_size=width))
    return build_unet(tiny_unet_config(width=width))


def _wall_total(out: Path, session_s: float, resumed: bool) -> float:
    """Training wall time summed over sessions (a resumed run adds to the earlier ones)."""
    path = out / "wall_time.json"
    before = json.loads(path.read_text())["total_s"] if resumed and path.is_file() else 0.0
    total = before + session_s
    atomic_write_json(path, {"total_s": total})
    return total


def train_decoder(
    kind: str, data: str, args, cache_dir: str | None = None, limit: int | None = None, cond_dropout: float = 0.1,
    width: int | None = None, eval_samples: int = 500, ship_dtype: torch.dtype = torch.float16, command: str | None = None,
    init: str | None = None, shrink: float = 0.0, noise: float = 0.0, stream: Any = None,
) -> dict[str, Any]:
    """Train a stand-in (from scratch, or from the stand-in directory ``init``); write
    ``OUT/decoder`` (weights stored as ``ship_dtype``) and evaluate the SD upper bound of the
    *stored* weights on ``eval_samples`` test scenes. ``stream``: a
    :class:`~seedtok.train.stream_runs.StreamOptions` (in memory, or streaming the shards)."""
    from seedtok.train.loop import fit

    source, mean_state, n_train, info_stream = _decoder_source(data, args, cache_dir, limit, stream)
    uncond = empty_states(data, cache_dir)
    torch.manual_seed(args.seed)
    model = build_model(kind, width) if init is None else _from_standin(init, kind)
    if kind == "onestep":
        objective = ReconstructionObjective(model, mean_state, shrink, noise)
    else:
        objective = NoisePredictionObjective(model, uncond, cond_dropout)
    info = {"stage": f"decoder-{kind}", "kind": kind, "width": width, "cond_dropout": cond_dropout, "limit": limit,
            "init": init, "cond_shrink": shrink, "cond_noise": noise, **info_stream}  # fmt: skip
    summary = fit(objective, source, args, info)
    out = Path(args.out)
    wall = _wall_total(out, summary["wall_s"], args.resume)
    provenance = {
        "what": f"tiny-world text-to-image stand-in for SD-1.x ({kind}), conditioned on MiniLM-L6 caption states",
        "command": command or " ".join(sys.argv), "kind": kind, "seed": args.seed, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "cond_dropout": cond_dropout if kind == "diffusion" else None,
        "init": init, "cond_shrink": shrink, "cond_noise": noise,
        "params": sum(p.numel() for p in model.parameters()), "train_samples": n_train,
        "data": _data_info(data), "wall_s_total": round(wall, 1),
        "device": _device(args), "final_loss": summary["last"].get("loss"), "stored_dtype": str(ship_dtype),
    }  # fmt: skip
    target = out / "decoder"
    save_standin(target, model.eval(), uncond, SAMPLING[kind], provenance, dtype=ship_dtype)
    if eval_samples > 0:
        from seedtok.eval.decode import upper_bound
        from seedtok.decode.standin import load_standin

        provenance["metrics"] = {"sd_upper_bound": upper_bound(load_standin(target), data, cache_dir, eval_samples)}
        write_provenance(target, provenance)
    return provenance


def _decoder_source(data: str, args, cache_dir: str | None, limit: int | None, stream: Any):
    """(batch source, mean caption state, training samples, run-identity fields): the train
    split in memory, or streamed over its shards (``--stream``, :mod:`seedtok.train.streaming`)."""
    from seedtok.train.data import TensorBatches
    from seedtok.train.runs import default_cache
    from seedtok.train.streaming import choose_stream

    per_sample = 3 * 64 * 64 + GENERATION_LEN * 384 * 2
    if stream is not None and choose_stream(stream.mode, data, per_sample, stream.threshold_gb):
        from seedtok.train.stream_runs import stream_decoder

        if limit is not None:
            raise ValueError("--limit reads a subset into memory; it does not combine with --stream on")
        source, mean_state = stream_decoder(data, args, stream, default_cache(data, cache_dir), GENERATION_LEN)
        return source, mean_state, args.steps * args.batch_size, stream.identity()
    tensors, train = decoder_data(data, "train", cache_dir, limit, args.progress)
    return TensorBatches(tensors, args.seed), tensors["states"].float().mean(0), len(train), {}


def _from_standin(init: str, kind: str) -> nn.Module:
    """Continue from a stand-in directory's weights (fine-tuning; its provenance is recorded)."""
    from seedtok.decode.standin import load_standin_model

    model, _, meta = load_standin_model(init)
    if meta["kind"] != kind:
        raise ValueError(f"--init {init} is a {meta['kind']} stand-in, not {kind}")
    return model.train()


def _data_info(data: str) -> dict[str, Any]:
    """Where the training pairs came from; for a shapes-world directory, how to remake it."""
    info: dict[str, Any] = {"source": str(data), "split": "train"}
    index = Path(data) / "index.json"
    if index.is_file():
        idx = json.loads(index.read_text())
        info.update(seed=idx.get("seed"), num=idx.get("num"),
                    made_by=f"seedtok data shapes --out DIR --num {idx.get('num')} --seed {idx.get('seed')}")
    return info


def _device(args) -> dict[str, Any]:
    from seedtok.bench import machine_info

    gpu = not args.cpu and torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if gpu else machine_info()["cpu"]
    return {"kind": "cuda" if gpu else "cpu", "name": name, "torch_threads": torch.get_num_threads()}


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=KINDS, default="onestep", help="stand-in kind (default: onestep)")
    p.add_argument("--data", required=True, help="shapes-world directory (seedtok data shapes)")
    p.add_argument("--out", required=True, help="run directory: checkpoints/, metrics.jsonl, decoder/")
    for name in ("steps", "batch_size", "lr", "warmup", "weight_decay", "width"):
        kind_type = float if name in ("lr", "weight_decay") else int
        p.add_argument(f"--{name.replace('_', '-')}", type=kind_type, help="default: per kind, see DEFAULTS")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--cond-dropout", type=float, default=0.1, help="diffusion: P(condition -> empty string)")
    p.add_argument("--cond-shrink", type=float, default=0.0, help="onestep: pull states toward the mean by U(0, x)")
    p.add_argument("--cond-noise", type=float, default=0.0, help="onestep: add state noise of std U(0, x)")
    p.add_argument("--init", help="start from this stand-in directory (fine-tune)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--limit", type=int, help="use at most this many training samples")
    p.add_argument("--cache-dir", help="MiniLM state cache (default: DATA/.seedtok-cache)")
    p.add_argument("--eval-samples", type=int, default=500, help="test scenes for the SD upper bound (0: skip)")
    p.add_argument("--store-fp32", action="store_true", help="store float32 weights (default float16, as shipped)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--gpu", action="store_true", help="use the accelerator instead of the CPU")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                   help="stream the train shards instead of reading them into memory (auto: above --stream-threshold GB)")
    p.add_argument("--stream-threshold", type=float, default=4.0)
    p.add_argument("--shuffle-buffer", type=int, default=2000, help="samples per shuffled block when streaming")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers when streaming")


def _stream_options(a: argparse.Namespace):
    from seedtok.train.stream_runs import StreamOptions

    return StreamOptions(getattr(a, "stream", "off"), getattr(a, "stream_threshold", 4.0),
                         getattr(a, "shuffle_buffer", 2000), getattr(a, "workers", 0))


def run_from_args(a: argparse.Namespace) -> dict[str, Any]:
    from seedtok.train.core import TrainArgs

    if a.threads:
        torch.set_num_threads(a.threads)
    d = {k: getattr(a, k) if getattr(a, k) is not None else v for k, v in DEFAULTS[a.kind].items()}
    args = TrainArgs(out=a.out, steps=d["steps"], batch_size=d["batch_size"], lr=d["lr"], warmup=d["warmup"],
                     weight_decay=d["weight_decay"], grad_clip=a.grad_clip, seed=a.seed, log_every=a.log_every,
                     ckpt_every=a.ckpt_every, resume=a.resume, progress=not getattr(a, "quiet", False), cpu=not a.gpu,
                     extra={"decoder_kind": a.kind, "width": d["width"]})  # fmt: skip
    t0 = time.perf_counter()
    dtype = torch.float32 if a.store_fp32 else torch.float16
    result = train_decoder(a.kind, a.data, args, a.cache_dir, a.limit, a.cond_dropout, d["width"], a.eval_samples, dtype,
                           command="seedtok " + " ".join(sys.argv[1:]), init=a.init, shrink=a.cond_shrink,
                           noise=a.cond_noise, stream=_stream_options(a))  # fmt: skip
    log.info("train decoder: %.1f s", time.perf_counter() - t0)
    return result
