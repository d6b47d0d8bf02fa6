"""Scale-out subcommands: ``tokenize-dataset`` (Ray Data) and its benchmark."""

from __future__ import annotations

import argparse
import json

from seedtok.config import PRESETS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize-dataset", help="encode every image of webdataset shards to token shards (Ray Data)")
    p.add_argument("source", help="input shards: a folder of .tar, a brace pattern or one .tar")
    p.add_argument("--out", required=True, help="output folder for token shards + per-shard summaries")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="tokenizer directory (save_pretrained layout)")
    g.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="random-weight preset (plumbing only)")
    p.add_argument("--engine", choices=("ray", "local"), default="ray")
    p.add_argument("--workers", type=int, default=2, help="Ray actors, each holding one model")
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--summary", help="also write the job summary JSON here")
    p.set_defaults(func=cmd_tokenize_dataset)

    p = sub.add_parser("recipe", help="the paper's SEED-1 training recipe and the GPU-hours it implies (estimate)")
    p.add_argument("--efficiency", type=float, default=0.4, help="assumed fraction of GPU peak (default 0.4)")
    p.add_argument("--epochs", type=float, default=1.0, help="epochs over the paper's 5M pairs")
    p.add_argument("--out", help="also write JSON here")
    p.set_defaults(func=cmd_recipe)


def cmd_tokenize_dataset(args: argparse.Namespace) -> int:
    from seedtok.fileio import atomic_write_json
    from seedtok.tokenize_dataset import tokenize_dataset

    res = tokenize_dataset(
        args.source, args.out, model_dir=args.model, preset=args.preset, engine=args.engine, workers=args.workers,
        batch_size=args.batch_size, threads_per_worker=args.threads_per_worker, ray_address=args.ray_address,
    )
    if args.summary:
        atomic_write_json(args.summary, res)
    print(
        f"{res['shards_done_now']} shards tokenized ({res['shards_skipped_complete']} already complete), "
        f"{res['images']} images, {res['skipped']} skipped, {res['images_per_s']:.1f} images/s -> {args.out}"
    )
    for r in res["per_shard"]:
        if r["skipped"]:
            print(f"  {r['shard']}: skipped {json.dumps(r['skipped_by_reason'])}")
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from seedtok.fileio import atomic_write_json
    from seedtok.train.recipes import seed1_costs

    res = seed1_costs(args.efficiency, args.epochs)
    for name, r in res["recipe"].items():
        print(f"{name}: trains {r['trains']}; frozen {r['frozen']}; global batch {r['global_batch']}, lr {r['lr']:g}, "
              f"warmup {r['warmup_steps']}, wd {r['weight_decay']}, {r['optimizer']}, {r['schedule']}")
    print(res["label"])
    for name, r in res["stages"].items():
        hours = ", ".join(f"{g} {h:.1f} h" for g, h in r["gpu_hours"].items())
        print(f"  {name:<18} {r['gflop_per_sample']:7.1f} GFLOP/sample, {r['steps_per_epoch']} steps/epoch: {hours}")
    print(f"paper: 64 V100 x 5.7 days = {res['paper_reported_gpu_hours']:,.0f} V100-hours for the whole tokenizer")
    if args.out:
        atomic_write_json(args.out, res)
    return 0


def cmd_bench_tokenize(args: argparse.Namespace) -> int:
    from seedtok.bench import write_json
    from seedtok.tokenize_dataset import bench_tokenize

    res = bench_tokenize(args.source, args.workdir, workers=tuple(args.workers), preset=args.preset)
    write_json(res, args.out)
    for n, r in res["runs"].items():
        print(f"ray, {n} worker(s): {r['images_per_s']:.1f} images/s ({r['images']} images, {r['wall_seconds']:.1f} s)")
    proj = res["projection_seed1_per_gpu"]
    print(f"{proj['label']}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in proj["images_per_s_per_gpu"].items()))
    return 0


def add_bench_parsers(bsub: argparse._SubParsersAction) -> None:
    b = bsub.add_parser("tokenize", help="Ray tokenization images/s for 1 and 2 workers + seed1 GPU projection")
    b.add_argument("source", help="input shards (e.g. from `seedtok data shapes`)")
    b.add_argument("--workdir", default="bench/tokenize-work")
    b.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    b.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    b.add_argument("--out", default="bench/tokenize.json")
    b.set_defaults(func=cmd_bench_tokenize)
