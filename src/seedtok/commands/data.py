"""``seedtok data ...``: build, pack, import, check and benchmark image-text data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: shapes world, packing, importers, checks")
    dsub = p.add_subparsers(dest="data_command", metavar="WHAT")
    dsub.required = True

    s = dsub.add_parser("shapes", help="generate the shapes world as webdataset shards")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--num", type=int, default=10000, help="samples over all four splits")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-size", type=int, default=64)
    s.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    s.add_argument("--backgrounds", default="white", help="comma-separated: white,black")
    s.set_defaults(func=cmd_shapes)

    s = dsub.add_parser("pack", help="pack a folder (image + .txt) or a JSONL manifest into shards")
    s.add_argument("source", help="folder of images with same-named .txt captions, or a .jsonl manifest")
    s.add_argument("--out", required=True, help="output folder for the shards")
    s.add_argument("--prefix", default="data")
    s.add_argument("--shard-size", type=int, default=1000)
    s.set_defaults(func=cmd_pack)

    s = dsub.add_parser("import-emoji", help="Noto emoji (npm emoji-datasource-google) -> shards")
    s.add_argument("--source", help="the npm package folder or a folder holding node_modules (default: .)")
    s.add_argument("--out", required=True)
    s.add_argument("--shard-size", type=int, default=1000)
    s.set_defaults(func=cmd_import_emoji)

    s = dsub.add_parser("import-tuxpaint", help="Tux Paint stamps (apt tuxpaint-stamps-default) -> shards")
    s.add_argument("--source", default="/usr/share/tuxpaint/stamps")
    s.add_argument("--out", required=True)
    s.add_argument("--shard-size", type=int, default=1000)
    s.set_defaults(func=cmd_import_tuxpaint)

    s = dsub.add_parser("parser-accuracy", help="scene-parser accuracy on clean, noisy and blurred renders (JSON)")
    s.add_argument("--num", type=int, default=2000)
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--image-size", type=int, default=64)
    s.add_argument("--out", help="JSON output path (default: print)")
    s.set_defaults(func=cmd_parser_accuracy)

    s = dsub.add_parser("bench", help="reader throughput, decoded+transformed pairs/s (JSON)")
    s.add_argument("source", help="shards (pattern, folder) or a folder / JSONL")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--image-size", type=int, default=64)
    s.add_argument("--transform", choices=("train", "eval"), default="train")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--out", help="JSON output path (default: print)")
    s.set_defaults(func=cmd_bench)

    s = dsub.add_parser("show", help="print the first samples of a source and the skip counts")
    s.add_argument("source")
    s.add_argument("--num", type=int, default=5)
    s.set_defaults(func=cmd_show)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _emit(result: dict[str, Any], out: str | None) -> None:
    text = json.dumps(result, indent=2, sort_keys=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
        print(f"wrote {out}")
    else:
        print(text)


def cmd_shapes(args: argparse.Namespace) -> int:
    from seedtok.data.shapes import write_shapes_dataset

    bgs = tuple(b.strip() for b in args.backgrounds.split(",") if b.strip())
    index = write_shapes_dataset(args.out, args.num, args.seed, args.image_size, args.shard_size, backgrounds=bgs, progress=_progress(args))
    counts = ", ".join(f"{k} {v['count']}" for k, v in index["splits"].items())
    print(f"wrote {args.num} samples to {args.out} ({counts}); index: {Path(args.out) / 'index.json'}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from seedtok.data.shards import pack

    r = pack(args.source, args.out, args.prefix, args.shard_size, progress=_progress(args))
    print(f"packed {r['written']} samples into {len(r['shards'])} shards under {args.out}; skipped {r['skipped'] or 0}")
    return 0


def cmd_import_emoji(args: argparse.Namespace) -> int:
    from seedtok.data.importers import emoji_samples, find_emoji_package, import_to_shards

    r = import_to_shards(emoji_samples(find_emoji_package(args.source)), args.out, "emoji", args.shard_size)
    print(f"imported {r['count']} emoji into {len(r['shards'])} shards under {args.out}")
    return 0


def cmd_import_tuxpaint(args: argparse.Namespace) -> int:
    from seedtok.data.importers import import_to_shards, tuxpaint_samples

    r = import_to_shards(tuxpaint_samples(args.source), args.out, "tuxpaint", args.shard_size)
    print(f"imported {r['count']} stamps into {len(r['shards'])} shards under {args.out}")
    return 0


def cmd_parser_accuracy(args: argparse.Namespace) -> int:
    from seedtok.data.shapes import parser_accuracy

    _emit(parser_accuracy(args.num, args.seed, args.image_size, progress=_progress(args)), args.out)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from seedtok.data.bench import bench_reader

    _emit(bench_reader(args.source, args.workers, args.batch_size, args.image_size, args.transform, args.repeats), args.out)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from seedtok.data import image_text_loader

    loader = image_text_loader(args.source, batch_size=1)
    for i, batch in enumerate(loader):
        if i < args.num:
            scene = f"  scene={json.dumps(batch['scene'][0])}" if "scene" in batch else ""
            print(f"{batch['key'][0]}: {batch['caption'][0]!r}{scene}")
    print(f"{loader.samples} samples, {loader.skipped.count} skipped {loader.skipped.as_dict()}")
    return 0
