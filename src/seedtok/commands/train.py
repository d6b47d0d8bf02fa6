"""``seedtok train encoder|qformer|stage1|stage2|bench``: thin wrappers over :mod:`seedtok.train.runs`.

Works the same on one CPU process, under ``accelerate launch --multi_gpu --num_processes 2``
on CPU (gloo), or on GPUs (``--gpu``)."""

from __future__ import annotations

import argparse
import json

from seedtok.config import PRESETS

# Per-stage defaults (tiny world); the paper's seed1 values are lr 3e-5 / 1e-4, warmup 2000.
DEFAULTS = {
    "encoder": dict(steps=350, batch_size=128, lr=2e-3, warmup=30, weight_decay=0.05),
    "qformer": dict(steps=1000, batch_size=128, lr=1e-3, warmup=30, weight_decay=0.05),  # stand-in, stage 0d
    "stage1": dict(steps=100, batch_size=128, lr=1e-3, warmup=30, weight_decay=0.05),  # see docs/training.md
    "stage2": dict(steps=600, batch_size=128, lr=1e-3, warmup=10, weight_decay=0.05),
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the tokenizer: stand-in encoder, stage 1, stage 2, benchmark")
    tsub = p.add_subparsers(dest="stage", metavar="STAGE")
    tsub.required = True
    e = tsub.add_parser("encoder", help="stage 0a: pretrain the tiny stand-in ViT (every patch token reads its grid cell)")
    _common(e, "encoder")
    e.add_argument("--clip-weight", type=float, default=0.0,
                   help="weight of an extra [CLS] vs frozen-MiniLM contrastive term (default 0: cell labels only)")
    e.add_argument("--position-weight", type=float,
                   help="weight of the position term: every patch token also classifies its grid cell (default 1; 0 off)")
    e.set_defaults(func=cmd_encoder)
    q = tsub.add_parser("qformer", help="stage 0d: pretrain the tiny stand-in Q-Former (BLIP-2's Q-Former analogue)")
    _common(q, "qformer")
    q.add_argument("--encoder", help="stand-in ViT weights (default: the shipped one)")
    q.add_argument("--generation-weight", type=float, default=10.0,
                   help="weight of the image-grounded generation term (default 10)")
    q.add_argument("--scene-weight", type=float,
                   help="weight of the scene term: a training-only head names every grid cell's colour/shape/size "
                        "from the query outputs (default 1; 0 off)")
    q.add_argument("--scene-read", choices=["slots", "attend"],
                   help="how the scene term reads the queries: 'slots' (query k names grid cell k; default) or "
                        "'attend' (one attention read per cell over all queries)")
    q.set_defaults(func=cmd_qformer)
    s1 = tsub.add_parser("stage1", help="stage 1: Causal Q-Former, image-text contrastive (ViT frozen)")
    _common(s1, "stage1")
    s1.add_argument("--encoder", help="stand-in ViT weights (default for tiny: the shipped one)")
    s1.add_argument("--init", help="start from a model directory instead of the preset")
    s1.add_argument("--qformer-init",
                    help="Q-Former weights: a stand-in file from 'seedtok train qformer', or BLIP-2 / causal_qformer.pth "
                         "in reference key names; 'none' starts from random (default for tiny presets: the shipped "
                         "stand-in when present)")
    s1.add_argument("--generation-weight", type=float,
                    help="weight of the image-grounded generation term (generation path on the unquantized "
                         "causal embeddings -> canonical caption states); default 10 for tiny presets, 0 otherwise")
    s1.add_argument("--scene-weight", type=float, default=0.0,
                    help="weight of the scene term (every grid cell's attributes named from the causal embeddings by a "
                         "training-only head; shapes world only; default 0)")
    s1.add_argument("--scene-read", choices=["slots", "attend"], default="attend",
                    help="how the scene term reads the queries (see 'seedtok train qformer'; default attend)")
    s1.set_defaults(func=cmd_stage1)
    s2 = tsub.add_parser("stage2", help="stage 2: codebook + de-tokenizer targets (Q-Former frozen)")
    _common(s2, "stage2")
    s2.add_argument("--init", required=True, help="stage-1 model directory")
    s2.add_argument("--codebook", choices=["reference", "cosine"], help="quantizer kind (default: the model's; cosine for tiny-stage1)")
    s2.add_argument("--reinit", choices=["on", "off"], help="dead-code re-init (default: on for cosine)")
    s2.add_argument("--health-every", type=int, default=50, help="codebook health window in steps")
    s2.add_argument("--loss-weights", type=float, nargs="+",
                    help="VQ, cosine, MSE[, contrastive on codes] (default: the paper's 5 2 0.5; the tiny world's bench uses 5 2 0.5 1)")
    s2.add_argument("--generation-steps", type=int,
                    help="steps of the generation phase after the joint run (generation path alone on the fixed "
                         "codes; default 0)")
    s2.add_argument("--generation-lr-scale", type=float,
                    help="learning-rate factor of the generation path (code decoder, Reverse Q-Former, projection); default 1")
    s2.add_argument("--generation-batch-size", type=int,
                    help="samples per step of the generation phase (default: --batch-size)")
    s2.add_argument("--generation-pad-weight", type=float,
                    help="generation phase: loss weight of the target's padding positions, past the caption's end "
                         "(default 1: plain MSE; the tiny recipe uses 0.3)")
    s2.add_argument("--target", choices=["canonical", "caption"],
                    help="generation target: the scene's canonical caption (default for the shapes world) or each image's own caption")
    s2.set_defaults(func=cmd_stage2)
    pr = tsub.add_parser("probe", help="per-cell-average linear probe of an image encoder (what a Q-Former can read)")
    pr.add_argument("--data", required=True, help="shapes-world directory (seedtok data shapes)")
    pr.add_argument("--encoder", help="stand-in ViT weights (vision.* keys; default: the shipped one)")
    pr.add_argument("--model", help="or a model directory: probe its ViT")
    pr.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="ViT architecture of --encoder")
    pr.add_argument("--split", default="test", help="split to score on (default: test)")
    pr.add_argument("--train-images", type=int, default=4000, help="train images the probe is fitted on")
    pr.add_argument("--out", help="also write the result as JSON here")
    pr.add_argument("--threads", type=int, help="torch CPU threads")
    pr.set_defaults(func=cmd_probe)
    b = tsub.add_parser("bench", help="tiny world: stages 1 + 2 wall time, retrieval, codebook usage (JSON)")
    b.add_argument("--data", required=True, help="shapes-world directory (seedtok data shapes)")
    b.add_argument("--out", default="bench/train", help="working + output directory")
    b.add_argument("--encoder", help="stand-in ViT weights (default: the shipped one)")
    b.add_argument("--steps1", type=int, default=DEFAULTS["stage1"]["steps"])
    b.add_argument("--steps2", type=int, default=300, help="stage 2's joint steps (default 300)")
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; mean +- std in 'summary'")
    b.add_argument("--loss-weights", type=float, nargs="+", default=[5.0, 2.0, 0.0, 1.0],
                   help="stage-2 weights VQ, cosine, MSE[, contrastive on codes] (default 5 2 0 1: the generation path "
                        "trains in the generation phase; the paper's: 5 2 0.5)")
    b.add_argument("--generation-lr-scale", type=float, help="stage 2's generation-path lr factor (default 1)")
    b.add_argument("--generation-weight", type=float, help="stage 1's image-grounded generation weight (default 10)")
    b.add_argument("--generation-steps", type=int, default=2000, help="stage 2's generation-phase steps (default 2000)")
    b.add_argument("--generation-batch-size", type=int, default=64, help="generation-phase samples per step (default 64)")
    b.add_argument("--generation-pad-weight", type=float, default=0.3,
                   help="generation-phase loss weight of the target's padding positions (default 0.3)")
    b.add_argument("--qformer-init", help="stage 1's starting Q-Former (default: the shipped stand-in; 'none': random)")
    b.add_argument("--scene-weight", type=float, default=1.0, help="stage 1's scene-term weight (default 1; 0 off)")
    b.add_argument("--scene-read", choices=["slots", "attend"], default="slots",
                   help="how stage 1's scene term reads the queries (default slots: query k names grid cell k)")
    b.add_argument("--limit", type=int, help="use at most this many training samples")
    b.add_argument("--cache-dir")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.set_defaults(func=cmd_bench)


def _common(p: argparse.ArgumentParser, stage: str) -> None:
    d = DEFAULTS[stage]
    preset = {"stage1": "tiny-stage1", "qformer": "tiny-stage1-bidirectional"}.get(stage, "tiny")
    p.add_argument("--preset", default=preset, choices=sorted(PRESETS), help=f"default: {preset}")
    p.add_argument("--data", required=True, help="dataset: shapes-world directory, shards, folder or JSONL")
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics.jsonl, model)")
    p.add_argument("--steps", type=int, default=d["steps"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="per process")
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--warmup", type=int, default=d["warmup"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--limit", type=int, help="use at most this many training samples")
    p.add_argument("--cache-dir", help="text-state cache (default: DATA/.seedtok-cache)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--gpu", action="store_true", help="use the accelerator's device instead of CPU")
    p.add_argument("--feature-cache", help="folder to cache the frozen parts' outputs (ViT / causal embeddings) across runs")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute activations of the trained transformer blocks in backward (less memory)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a loaded machine)")
    p.add_argument("--samples", type=int,
                   help="run length in samples seen (replaces --steps: ceil(samples / (batch x processes x grad-accum)))")
    g = p.add_argument_group("streaming (corpora that do not fit in memory; README 'Training at scale')")
    g.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                   help="stream webdataset shards instead of loading the split into memory; auto: stream when the "
                        "in-memory estimate exceeds --stream-threshold (default auto)")
    g.add_argument("--stream-threshold", type=float, default=4.0, help="GB; see --stream auto (default 4)")
    g.add_argument("--shuffle-buffer", type=int, default=2000, help="samples per shuffled block (default 2000)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader workers per process when streaming (default 0)")
    g.add_argument("--key-log", help=argparse.SUPPRESS)  # tests: append each rank's sample keys here


def _stream_options(a: argparse.Namespace):
    from seedtok.train.stream_runs import StreamOptions

    return StreamOptions(a.stream, a.stream_threshold, a.shuffle_buffer, a.workers, a.key_log)


def _train_args(a: argparse.Namespace) -> "TrainArgs":
    import torch

    from seedtok.train import TrainArgs

    if getattr(a, "threads", None):
        torch.set_num_threads(a.threads)

    return TrainArgs(out=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup,
                     weight_decay=a.weight_decay, grad_clip=a.grad_clip, grad_accum=a.grad_accum, seed=a.seed,
                     log_every=a.log_every, ckpt_every=a.ckpt_every, resume=a.resume,
                     progress=not getattr(a, "quiet", False), cpu=not a.gpu,
                     grad_checkpointing=getattr(a, "grad_checkpointing", False), samples=getattr(a, "samples", None),
                     extra={"feature_cache": a.feature_cache} if getattr(a, "feature_cache", None) else {})


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def cmd_encoder(a: argparse.Namespace) -> int:
    from seedtok.train.runs import run_encoder

    args = _train_args(a)
    if a.position_weight is not None:  # else the library default (seedtok.train.encoder.POSITION_WEIGHT)
        args.extra["position_weight"] = a.position_weight
    _print(run_encoder(a.data, args, a.preset, a.cache_dir, a.limit, a.clip_weight, stream=_stream_options(a)))
    return 0


def cmd_qformer(a: argparse.Namespace) -> int:
    from seedtok.train.qformer_standin import QFORMER_STANDIN_PRESET, run_qformer

    if a.preset != QFORMER_STANDIN_PRESET:
        raise SystemExit(f"seedtok train qformer: the stand-in Q-Former uses --preset {QFORMER_STANDIN_PRESET}")
    args = _train_args(a)
    args.extra["generation_weight"] = a.generation_weight
    if a.scene_weight is not None:  # else the library default (QFORMER_SCENE_WEIGHT)
        args.extra["scene_weight"] = a.scene_weight
    if a.scene_read is not None:  # else the library default (QFORMER_SCENE_READ)
        args.extra["scene_read"] = a.scene_read
    out = run_qformer(a.data, args, a.encoder, a.limit, a.cache_dir)
    _print({k: out[k] for k in ("steps", "cpu_s", "wall_s", "retrieval_test", "scene_probe")})
    return 0


def cmd_stage1(a: argparse.Namespace) -> int:
    from seedtok.train.runs import run_stage1

    args = _train_args(a)
    if a.generation_weight is not None:
        args.extra["generation_weight"] = a.generation_weight
    if a.scene_weight:
        args.extra["scene_weight"] = a.scene_weight
        args.extra["scene_read"] = a.scene_read
    summary = run_stage1(a.data, args, a.preset, a.encoder, a.init, a.qformer_init, a.limit, a.cache_dir,
                         _stream_options(a))
    _print({k: summary[k] for k in ("steps", "wall_s", "last", "train_samples", "skipped")})
    return 0


def cmd_stage2(a: argparse.Namespace) -> int:
    from seedtok.train.runs import run_stage2

    reinit = None if a.reinit is None else a.reinit == "on"
    args = _train_args(a)
    if a.loss_weights:
        args.extra["loss_weights"] = list(a.loss_weights)
    if a.generation_lr_scale is not None:
        args.extra["generation_lr_scale"] = a.generation_lr_scale
    if a.generation_steps is not None:
        args.extra["generation_steps"] = a.generation_steps
    if a.generation_batch_size is not None:
        args.extra["generation_batch_size"] = a.generation_batch_size
    if a.generation_pad_weight is not None:
        args.extra["generation_pad_weight"] = a.generation_pad_weight
    summary = run_stage2(a.data, args, a.init, a.codebook, reinit, a.cache_dir, a.limit, a.health_every, a.target,
                         _stream_options(a))
    _print({k: summary[k] for k in ("steps", "wall_s", "last", "codebook", "train_samples", "skipped")})
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    import torch

    from seedtok.train.bench import bench_train

    if a.threads:
        torch.set_num_threads(a.threads)

    report = bench_train(a.data, a.out, a.encoder, a.steps1, a.steps2, a.batch_size, tuple(a.seeds), a.limit, a.cache_dir,
                         tuple(a.loss_weights), a.generation_lr_scale, a.generation_weight,
                         a.generation_steps, a.qformer_init, a.scene_weight, a.scene_read, a.generation_batch_size,
                         a.generation_pad_weight)
    _print(report["summary"])
    return 0


def cmd_probe(a: argparse.Namespace) -> int:
    import torch

    from seedtok.fileio import atomic_write_json
    from seedtok.train.runs import probe_encoder

    if a.threads:
        torch.set_num_threads(a.threads)
    result = probe_encoder(a.data, a.encoder, a.model, a.preset, a.split, a.train_images)
    if a.out:
        atomic_write_json(a.out, result)
    _print(result)
    return 0
