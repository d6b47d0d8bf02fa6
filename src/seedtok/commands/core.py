"""Core subcommands: ``encode``, ``info``, ``parity``, ``bench``, ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seedtok.config import PRESETS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode images to their 32 token ids")
    p.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--int8", action="store_true",
                   help="int8 ViT weights (CPU): with --model, loaded layer by layer without an fp32 copy")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("info", help="print a model's config and parameter counts")
    _model_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert the released SEED-1 (or, with --seed2, SEED-2) weights to a seedtok model directory")
    p.add_argument("--eva-vit", help="path to eva_vit_g.pth (BLIP-2's EVA ViT-g); SEED-2: only if seed_quantizer.pt lacks the ViT")
    p.add_argument("--causal-qformer", help="path to causal_qformer.pth (SEED-1)")
    p.add_argument("--seed-tokenizer", help="path to seed_tokenizer.pth (SEED-1)")
    p.add_argument("--seed2", action="store_true", help="convert the SEED-2 (SEED-LLaMA) tokenizer: --seed-quantizer [--eva-vit]")
    p.add_argument("--seed-quantizer", help="path to seed_quantizer.pt (SEED-2, from seed-tokenizer-2)")
    p.add_argument("--resample", choices=("bicubic", "bilinear"), default="bicubic",
                   help="SEED-2 input resize: bicubic as the reference ImageTokenizer's processor (default), "
                   "bilinear as the reference scripts' clip_transform")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("parity", help="check seedtok against reference golden data")
    p.add_argument("golden", nargs="?", help="golden folder (default: $SEEDTOK_PARITY_DIR or the repo copy)")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("bench", help="benchmarks writing JSON")
    bsub = p.add_subparsers(dest="bench", metavar="WHAT")
    bsub.required = True
    b = bsub.add_parser("encode", help="encode speed (images/s, GFLOP/s), fp32 and --int8, CPU")
    b.add_argument("--preset", default="seed1", choices=sorted(PRESETS))
    b.add_argument("--random-weights", action="store_true", help="random weights (the only mode; speed does not depend on values)")
    b.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    b.add_argument("--rounds", type=int, default=3, help="alternated timing rounds; the median is reported")
    b.add_argument("--int8", action="store_true",
                   help="also the int8-ViT encoder (alternated with fp32), its peak RSS and code agreement")
    b.add_argument("--agreement-model", help="trained model directory for the int8 code agreement (with --int8)")
    b.add_argument("--agreement-data", help="its dataset (shapes-world directory or shards)")
    b.add_argument("--agreement-split", default="test")
    b.add_argument("--out", default="bench/encode.json", help="JSON output path")
    b.set_defaults(func=cmd_bench_encode)
    from seedtok.commands.scale import add_bench_parsers

    add_bench_parsers(bsub)

    p = sub.add_parser("demo", help="the whole SEED pipeline on the shipped trained model: fresh data, metrics, "
                       "report.json + report.html")
    p.add_argument("--out", default="demo", help="output folder (report.json, details.json, report.html, data/)")
    p.add_argument("--model", help="model bundle directory (tokenizer/ with reconstruction.safetensors, llm/; "
                   "default: the shipped seed-tiny)")
    p.add_argument("--data-seed", type=int, default=1, help="data seed of the fresh evaluation set (the model was "
                   "trained on seed 0)")
    p.add_argument("--num-test", type=int, default=500, help="test-split images")
    p.add_argument("--num-compositional", type=int, default=200, help="compositional-split images")
    p.add_argument("--keep", type=int, default=12, help="example images per split shown in report.html")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--strict", action="store_true", help="exit 1 when a floor is not met")
    p.add_argument("--train", action="store_true", help="first rebuild the model from the shipped stand-ins "
                   "(data, stages 1, 2, 3; tens of CPU-minutes), then evaluate it")
    p.add_argument("--train-data", help="--train: an existing training shapes world (default: OUT/train/data, "
                   "generated with data seed 0)")
    p.add_argument("--train-scale", type=float, default=1.0, help="--train: multiply every stage's steps and the "
                   "training-set size (1.0 = the released recipe; small values for smoke tests)")
    p.set_defaults(func=cmd_demo)


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="model directory written by save_pretrained / training")
    g.add_argument("--preset", choices=sorted(PRESETS), help="random-weight preset (plumbing only; default: the shipped "
                   "trained tiny model when neither --model nor --preset is given)")
    p.add_argument("--seed", type=int, default=0, help="seed for random preset weights")


def _announce_default(args: argparse.Namespace) -> None:
    if getattr(args, "model", None) is None and getattr(args, "preset", None) is None:
        from seedtok.release import announce

        announce("tokenizer")


def cmd_encode(args: argparse.Namespace) -> int:
    from seedtok.api import encode_images, load_tokenizer

    _announce_default(args)
    model = load_tokenizer(args.model, args.preset, args.seed, int8=args.int8)
    results = encode_images(model, args.images, names=args.images, batch_size=args.batch_size)
    failed = 0
    for r in results:
        if r.error is not None:
            failed += 1
            print(f"seedtok encode: error: {r.error}", file=sys.stderr)
        elif args.json:
            print(json.dumps({"image": r.name, "ids": r.ids}))
        else:
            print(f"{r.name}\t{' '.join(map(str, r.ids))}")
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    from seedtok.api import load_tokenizer
    from seedtok.checkpoint import load_config
    from seedtok.config import get_preset
    from seedtok.models.seed2 import build_tokenizer
    import torch

    _announce_default(args)
    if args.model is None and args.preset is None:
        from seedtok.release import shipped_tokenizer_dir

        args.model = str(shipped_tokenizer_dir())
    config = load_config(args.model) if args.model else get_preset(args.preset)
    with torch.device("meta"):
        model = build_tokenizer(config)
    print(config.to_json())
    total = 0
    print("\nparameters:")
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        total += n
        print(f"  {name:<18} {n:>14,}")
    print(f"  {'total':<18} {total:>14,}")
    del load_tokenizer
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from seedtok.checkpoint import load_reference_files, save_pretrained

    if args.seed2:
        from seedtok.checkpoint_seed2 import load_seed2_files

        if not args.seed_quantizer or args.causal_qformer or args.seed_tokenizer:
            raise ValueError("--seed2 takes --seed-quantizer seed_quantizer.pt (and --eva-vit if it lacks the ViT), "
                             "not the SEED-1 files --causal-qformer / --seed-tokenizer")
        model, report = load_seed2_files(args.seed_quantizer, args.eva_vit)
        if args.resample != model.config.resample:
            model.config = model.config.replace(resample=args.resample)  # preprocessing only: weights unchanged
    else:
        missing = [f for f, v in (("--eva-vit", args.eva_vit), ("--causal-qformer", args.causal_qformer),
                                  ("--seed-tokenizer", args.seed_tokenizer)) if not v]
        if missing or args.seed_quantizer or args.resample != "bicubic":
            raise ValueError(f"SEED-1 conversion needs --eva-vit, --causal-qformer and --seed-tokenizer (missing {missing}); "
                             "--seed-quantizer and --resample are for SEED-2 (add --seed2)")
        model, report = load_reference_files(args.eva_vit, args.causal_qformer, args.seed_tokenizer)
    for key, why in sorted(report.ignored.items()):
        print(f"  ignored {key}: {why}")
    save_pretrained(model, args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"loaded {len(report.loaded)} tensors ({n:,} parameters) -> {args.out}")
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from seedtok.parity import check_parity, default_golden_dir

    folder = Path(args.golden) if args.golden else default_golden_dir()
    res = check_parity(folder)
    for k, v in res["max_abs_diff"].items():
        print(f"  {k:<18} max|diff| = {v:.2e}")
    print(f"  ids equal: {res['ids_equal']}")
    ok = res["ids_equal"] and res["worst"] <= args.tolerance
    print(("PASS" if ok else "FAIL") + f": {folder} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def cmd_bench_encode(args: argparse.Namespace) -> int:
    from seedtok.bench import bench_encode, write_json

    if (args.agreement_model or args.agreement_data) and not args.int8:
        raise ValueError("--agreement-model/--agreement-data measure the int8 encoder: add --int8")
    res = bench_encode(args.preset, args.batches, args.rounds, int8=args.int8, agreement_model=args.agreement_model,
                       agreement_data=args.agreement_data, agreement_split=args.agreement_split)
    write_json(res, args.out)
    for b, row in res["batches"].items():
        for name in ("fp32", "int8"):
            if name in row:
                r = row[name]
                print(f"{args.preset} encode {name}, batch {b}: {r['images_per_s']:.3f} images/s, "
                      f"{r['achieved_gflop_per_s']:.1f} GFLOP/s ({r['percent_of_mm_probe']:.0f}% of torch.mm)")
        if "int8_speedup" in row:
            print(f"  int8 speedup at batch {b}: {row['int8_speedup']:.2f}x")
    for name, agr in res.get("agreement", {}).items():
        print(f"int8 code agreement ({name}): {agr['agreement']:.4f} of {agr['positions']} positions")
    if "peak_rss" in res:
        rss = res["peak_rss"]
        print(f"peak RSS: fp32 {rss['fp32_mib']:.0f} MiB, int8 {rss['int8_mib']:.0f} MiB ({rss['int8_over_fp32']:.2f}x)")
    print(f"{res['gflop_per_image']:.1f} GFLOP/image -> {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from seedtok.demo import run_demo

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.verbose:  # the demo prints its own stage banners and bars; keep library INFO lines out
        import logging

        logging.getLogger("seedtok").setLevel(logging.WARNING)
    train_options = {"data": args.train_data, "scale": args.train_scale, "threads": args.threads}
    return run_demo(args.out, args.model, args.data_seed, args.num_test, args.num_compositional, args.keep,
                    args.batch_size, progress=not args.quiet, train=args.train, train_options=train_options,
                    strict=args.strict)
