"""De-tokenization subcommands: ``decode``, ``reconstruct``, ``train decoder``, ``bench decode``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _group(sub: argparse._SubParsersAction, name: str, help: str, dest: str) -> argparse._SubParsersAction:
    """The sub-subcommand action of ``seedtok NAME``, created unless another adder made it
    (``train`` and ``bench`` are shared by several command modules)."""
    parser = sub.choices.get(name) or sub.add_parser(name, help=help)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    group = parser.add_subparsers(dest=dest, metavar="WHAT")
    group.required = True
    return group


def _tokenizer_args(p: argparse.ArgumentParser) -> None:
    from seedtok.config import PRESETS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="seedtok model directory (the tokenizer; may hold a decoder/ stand-in)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="random-weight tokenizer (plumbing only; default: the "
                   "shipped trained tiny model when neither --model nor --preset is given)")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    from seedtok.decode import SCHEDULERS

    p.add_argument("--decoder", help="decoder: SD-1.x diffusers dir, SD .ckpt/.safetensors, or a stand-in dir "
                   "(default: MODEL/decoder, else the shipped tiny stand-in)")  # fmt: skip
    p.add_argument("--sd-config", help="local diffusers-layout SD config dir, needed with a single-file checkpoint")
    p.add_argument("--steps", type=int, help="denoising steps (default: the decoder's; SD-1.x 50)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (SD-1.x default 7.5)")
    p.add_argument("--seed", type=int, help="noise seed; image i uses seed + i (SD-1.x default 42)")
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--scheduler", choices=SCHEDULERS, help="sampler (SD-1.x default pndm, the reference PLMS)")
    p.add_argument("--batch-size", type=int, default=4)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode token ids (JSON) to PNG images through the de-tokenizer")
    p.add_argument("ids", help="JSON: an id list, a list of them, or `seedtok encode --json` lines")
    _tokenizer_args(p)
    _sampling_args(p)
    p.add_argument("--out", required=True, help="output folder for PNG files")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="image -> 32 ids -> image; writes reconstructions and a side-by-side grid")
    p.add_argument("images", nargs="+")
    _tokenizer_args(p)
    _sampling_args(p)
    p.add_argument("--out", required=True, help="output folder (grid.png, ids.jsonl, one PNG per image)")
    p.set_defaults(func=cmd_reconstruct)

    from seedtok.decode.train import add_train_args

    t = _group(sub, "train", "train a stage", "stage").add_parser(
        "decoder", help="stage 0b: the tiny world's text-to-image stand-in (diffusion UNet or one-step)"
    )
    add_train_args(t)
    t.set_defaults(func=cmd_train_decoder)

    from seedtok.eval.decode import add_bench_args

    b = _group(sub, "bench", "benchmarks writing JSON", "bench").add_parser(
        "decode", help="tiny world: SD upper bound, reconstruction, decode latency, training cost (JSON)"
    )
    add_bench_args(b)
    b.set_defaults(func=cmd_bench_decode)


def _options(args: argparse.Namespace) -> dict:
    opts = {"num_inference_steps": args.steps, "guidance_scale": args.guidance, "seed": args.seed,
            "height": args.height, "width": args.width, "scheduler": args.scheduler}  # fmt: skip
    return {k: v for k, v in opts.items() if v is not None}


def _load(args: argparse.Namespace):
    from seedtok.api import load_tokenizer
    from seedtok.checkpoint import load_config
    from seedtok.config import get_preset
    from seedtok.decode import load_detokenizer
    from seedtok.decode.tools import resolve_decoder

    if args.model is None and args.preset is None:
        from seedtok.release import announce, shipped_tokenizer_dir

        announce("tokenizer" + ("" if args.decoder else " + de-tokenizer"))
        args.model = str(shipped_tokenizer_dir())
    config = load_config(args.model) if args.model else get_preset(args.preset)
    path = resolve_decoder(config, args.decoder, args.model)
    tokenizer = load_tokenizer(args.model, args.preset)
    detok = load_detokenizer(path, tokenizer, args.sd_config)
    detok.set_progress_bar_config(disable=getattr(args, "quiet", False))
    return tokenizer, detok


def cmd_decode(args: argparse.Namespace) -> int:
    import torch

    from seedtok.decode.tools import output_names, read_ids_file

    names, ids = read_ids_file(args.ids)
    _, detok = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = output_names(names)
    for start in range(0, len(ids), args.batch_size):
        chunk = ids[start : start + args.batch_size]
        opts = _options(args)
        opts["seed"] = opts.get("seed", detok.defaults.seed) + start  # image i keeps seed + i
        images = detok(ids=torch.tensor(chunk), **opts).images
        for name, im in zip(files[start : start + len(chunk)], images):
            im.save(out / name)
            print(out / name)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import json

    from seedtok.decode.tools import output_names, reconstruct, side_by_side

    tokenizer, detok = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    originals, recons, ids = reconstruct(tokenizer, detok, args.images, args.images, **_options(args))
    files = output_names(args.images)
    with open(out / "ids.jsonl", "w") as fh:
        for name, file, im, row in zip(args.images, files, recons, ids.tolist()):
            im.save(out / file)
            fh.write(json.dumps({"image": name, "ids": row, "reconstruction": file}) + "\n")
    side_by_side(originals, recons).save(out / "grid.png")
    print(f"{len(recons)} reconstructions -> {out / 'grid.png'}")
    return 0


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from seedtok.decode.train import run_from_args

    summary = run_from_args(args)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def cmd_bench_decode(args: argparse.Namespace) -> int:
    from seedtok.bench import write_json
    from seedtok.eval.decode import bench_from_args

    result = bench_from_args(args)
    write_json(result, args.out)
    print(json.dumps(result.get("summary", {}), indent=2), file=sys.stdout)
    print(f"-> {args.out}")
    return 0

