"""The multimodal LLM (issue 6, paper sec. 3.3): ``seedtok train lm`` (stage 0c stand-in),
``seedtok train llm`` (stage 3 LoRA), ``seedtok caption``, ``seedtok ask``, ``seedtok draw``,
``seedtok llm merge`` and ``seedtok llm bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _train_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``train`` subcommand group (created by the training commands when registered first)."""
    parser = sub.choices.get("train") or sub.add_parser("train", help="training stages")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    group = parser.add_subparsers(dest="stage", metavar="STAGE")
    group.required = True
    return group


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tsub = _train_group(sub)
    p = tsub.add_parser("lm", help="stage 0c: pretrain the tiny stand-in LLM (OPT) on the data's text")
    p.add_argument("--data", required=True, help="shapes-world directory (train + val text), or shards")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, model/)")
    p.add_argument("--save", help="where to write the model (default OUT/model; the shipped one is "
                   "src/seedtok/assets/standins/lm-tiny)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=16, help="documents per step")
    p.add_argument("--length", type=int, default=160, help="tokens per packed document")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layout", choices=("none", "unnamed", "named"), default="named",
                   help="add a cell-by-cell layout line per scene to the documents (grid order, the order of the "
                   "image tokens' slots; 'named' writes each cell's name first)")
    p.add_argument("--family", choices=("opt", "llama"), default="opt",
                   help="architecture: OPT (learned positions, SEED-1's LLM) or LLaMA (rotary positions)")
    _run_args(p)
    p.set_defaults(func=cmd_train_lm)

    p = tsub.add_parser("llm", help="stage 3: LoRA-tune an LLM on SEED tokens (caption, draw, VQA)")
    p.add_argument("--data", help="shapes-world directory (its train split), or shards/folder/JSONL (or give --tokens)")
    p.add_argument("--tokens", help="token shards written by `seedtok tokenize-dataset` (with the --tokenizer that "
                   "wrote them) instead of --data; streamed when large (--stream)")
    p.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                   help="with --tokens: stream the token shards, or read them into memory; auto streams above "
                        "--stream-threshold GB (~2 KB per record)")
    p.add_argument("--stream-threshold", type=float, default=4.0)
    p.add_argument("--shuffle-buffer", type=int, default=2000, help="records per shuffled block when streaming")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process when streaming")
    p.add_argument("--out", required=True, help="run directory; the adapter is saved here")
    p.add_argument("--preset", default="tiny", help="stage-3 preset: tiny (CPU, LoRA), tiny-full (CPU, every "
                   "weight trains) or full (GPUs)")
    p.add_argument("--steps", type=int, help="override the preset's steps")
    p.add_argument("--loss-weighting", choices=("token", "sequence", "task"),
                   help="override the preset's loss reduction (mean per target token, per sequence, per task)")
    p.add_argument("--task-weights", type=float, nargs=3, metavar=("CAPTION", "DRAW", "VQA"),
                   help="override the preset's task mixture after its curriculum (relative frequencies)")
    p.add_argument("--draw-tail-weight", type=float, nargs=2, metavar=("HEAD", "WEIGHT"),
                   help="loss weight WEIGHT on the text-to-image codes after the first HEAD (e.g. 9 0.25)")
    p.add_argument("--oracle", action="store_true", help="train on oracle codes (the true scene in the first 9 "
                   "codes; diagnostic, no image tokenizer)")
    _model_args(p, decoder=False, llm=False)
    p.add_argument("--base", help="base LLM directory (transformers layout; default: the shipped stand-in)")
    p.add_argument("--gguf", help="GGUF file name inside --base (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute the LLM's activations in backward (less memory)")
    _run_args(p)
    p.set_defaults(func=cmd_train_llm)

    p = sub.add_parser("caption", help="caption images with a SEED LLM")
    p.add_argument("images", nargs="+")
    _model_args(p, decoder=False)
    _seed_llama_args(p)
    _gen_args(p)
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("ask", help="answer a question about an image")
    p.add_argument("image")
    p.add_argument("question")
    _model_args(p, decoder=False)
    _seed_llama_args(p)
    _gen_args(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("draw", help="text -> 32 image tokens (constrained) -> de-tokenizer -> PNG")
    p.add_argument("text")
    p.add_argument("--out", required=True, help="output PNG path")
    _model_args(p, decoder=True)
    _seed_llama_args(p)
    p.add_argument("--steps", type=int, help="denoising steps (default: the decoder's; unCLIP 20)")
    p.add_argument("--height", type=int, help="image height (default: the decoder's; unCLIP 768)")
    p.add_argument("--width", type=int, help="image width (default: the decoder's; unCLIP 768)")
    _gen_args(p)
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("llm", help="SEED LLM tools: merge, bench")
    lsub = p.add_subparsers(dest="llm_command", metavar="WHAT")
    lsub.required = True
    m = lsub.add_parser("merge", help="fold LoRA + token rows into the weights (deployment form)")
    m.add_argument("--llm", required=True, help="adapter directory from `seedtok train llm`")
    m.add_argument("--out", required=True)
    m.set_defaults(func=cmd_merge)
    b = lsub.add_parser("bench", help="tiny world: captioning, VQA, text-to-image on test + compositional (JSON)")
    b.add_argument("--data", required=True, help="shapes-world directory")
    _model_args(b, decoder=True)
    b.add_argument("--limit", type=int, help="at most this many images per split")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--out", default="bench/llm.json")
    b.add_argument("--threads", type=int)
    b.add_argument("--oracle", action="store_true", help="evaluate on oracle codes (an LLM trained with "
                   "`train llm --oracle`): separates what the tokenizer loses from what the LLM cannot read")
    b.set_defaults(func=cmd_bench)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a loaded machine)")


def _model_args(p: argparse.ArgumentParser, decoder: bool, llm: bool = True) -> None:
    if llm:
        p.add_argument("--llm", help="SEED LLM directory (adapter or merged), or a SEED-LLaMA checkpoint (default: the "
                       "shipped trained tiny model's)")
    p.add_argument("--tokenizer", help="SEED image tokenizer directory (default: the shipped trained tiny model's)")
    if decoder:
        p.add_argument("--decoder", help="de-tokenizer (default: the shipped tiny-world stand-in)")


def _seed_llama_args(p: argparse.ArgumentParser) -> None:
    """Options that only a SEED-LLaMA checkpoint (issue 18) uses."""
    p.add_argument("--template", choices=("vicuna", "llama2"), help="SEED-LLaMA prompt format (default: from the "
                   "checkpoint: seed_llama.json, else 8B -> vicuna, 14B -> llama2)")
    p.add_argument("--llm-tokenizer", help="SEED-LLaMA tokenizer directory when not inside --llm (e.g. seed-tokenizer-2)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="SEED-LLaMA weights dtype (float32 on CPU; bfloat16 halves memory but is slow on CPUs without bf16)")


def _llm(a: argparse.Namespace):
    from seedtok.mllm.seed_llama import load_llm

    if a.llm is None:
        from seedtok.release import announce, shipped_llm_dir

        announce("LLM")
        a.llm = str(shipped_llm_dir())
    return load_llm(a.llm, getattr(a, "template", None), getattr(a, "llm_tokenizer", None), getattr(a, "dtype", "float32"))


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _sampling(a: argparse.Namespace):
    from seedtok.mllm.generate import Sampling

    return Sampling(temperature=a.temperature, top_k=a.top_k, seed=a.seed)


def _image_tokenizer(path: str | None):
    from seedtok.api import load_tokenizer

    if path is None:
        from seedtok.release import announce

        announce("tokenizer")
    return load_tokenizer(path)


def _split_source(data: str, split: str):
    from seedtok.data.shapes import split_shards

    return split_shards(data, split) if (Path(data) / "index.json").is_file() else data


def cmd_train_lm(a: argparse.Namespace) -> int:
    import time

    import torch

    from seedtok.mllm.corpus import scene_records
    from seedtok.mllm.standin import pretrain_standin, save_standin

    _threads(a.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    index = Path(a.data) / "index.json"
    if not index.is_file():
        raise ValueError(f"{a.data}: stage 0c builds its documents from a shapes world (no index.json)")
    records, val = scene_records(_split_source(a.data, "train")), scene_records(_split_source(a.data, "val"))
    model, tokenizer, report = pretrain_standin(
        records, val, a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed, length=a.length,
        resume=a.resume, progress=not a.quiet, layout=a.layout, family=a.family,
    )
    dataset = {k: v for k, v in json.loads(index.read_text()).items() if k in ("format", "seed", "num", "image_size")}
    report.update(command=" ".join(["seedtok", *sys.argv[1:]]), dataset=dataset, threads=torch.get_num_threads(),
                  total_seconds=round(time.perf_counter() - t0, 1), total_cpu_seconds=round(time.process_time() - c0, 1),
                  load_avg_1min=os.getloadavg()[0])
    save = Path(a.save) if a.save else Path(a.out) / "model"
    save_standin(model, tokenizer, save, report)
    print(json.dumps(report, indent=2))
    return 0


def cmd_train_llm(a: argparse.Namespace) -> int:
    import dataclasses

    from seedtok.mllm.stage3 import STAGE3_PRESETS, train_stage3

    _threads(a.threads)
    if a.preset not in STAGE3_PRESETS:
        raise ValueError(f"unknown stage-3 preset {a.preset!r}; choose one of {sorted(STAGE3_PRESETS)}")
    preset = STAGE3_PRESETS[a.preset]
    if a.loss_weighting:
        preset = dataclasses.replace(preset, loss_weighting=a.loss_weighting)
    if a.task_weights:
        if min(a.task_weights) < 0 or sum(a.task_weights) <= 0:
            raise ValueError(f"--task-weights must be >= 0 with a positive sum, got {a.task_weights}")
        preset = dataclasses.replace(preset, task_weights=tuple(a.task_weights))
    if a.draw_tail_weight:
        preset = dataclasses.replace(preset, draw_head=int(a.draw_tail_weight[0]), draw_tail_weight=a.draw_tail_weight[1])
    if a.tokens:
        report = _train_on_tokens(a, preset)
        print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
        return 0
    if not a.data:
        raise ValueError("give --data (images) or --tokens (token shards)")
    cache = _train_cache(a)
    _, report = train_stage3(cache, a.out, preset, a.base, a.gguf, a.steps, a.seed, a.resume,
                             progress=not a.quiet, grad_checkpointing=a.grad_checkpointing)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
    return 0


def _train_on_tokens(a: argparse.Namespace, preset) -> dict:
    """Stage 3 on token shards: streamed (:mod:`seedtok.mllm.stream`) or read into an id cache."""
    import torch

    from seedtok.mllm.cache import IdCache, tokenizer_fingerprint
    from seedtok.mllm.stage3 import train_stage3
    from seedtok.mllm.stream import train_stage3_stream
    from seedtok.tokenize_dataset import read_token_shards
    from seedtok.train.stream_runs import StreamOptions
    from seedtok.train.streaming import choose_stream

    if a.oracle or a.data:
        raise ValueError("--tokens replaces --data and --oracle")
    tok = _image_tokenizer(a.tokenizer)
    meta = {"codebook_size": tok.config.codebook.codebook_size, "num_tokens": tok.config.num_tokens,
            "tokenizer": tokenizer_fingerprint(tok), "source": a.tokens}
    if choose_stream(a.stream, a.tokens, 2048, a.stream_threshold):
        opts = StreamOptions(a.stream, a.stream_threshold, a.shuffle_buffer, a.workers)
        return train_stage3_stream(a.tokens, meta, a.out, preset, opts, a.base, a.gguf, a.steps, a.seed, a.resume,
                                   progress=not a.quiet, grad_checkpointing=a.grad_checkpointing)[1]
    records = list(read_token_shards(a.tokens))
    ids = torch.tensor([r["ids"] for r in records], dtype=torch.long).reshape(len(records), meta["num_tokens"])
    recs = [{"key": r["key"], "caption": r["caption"], "vqa": r.get("vqa") or [], **({"scene": r["scene"]} if "scene" in r else {})}
            for r in records]
    return train_stage3(IdCache(ids, recs, {**meta, "count": len(recs)}), a.out, preset, a.base, a.gguf, a.steps, a.seed,
                        a.resume, progress=not a.quiet, grad_checkpointing=a.grad_checkpointing)[1]


def _train_cache(a: argparse.Namespace):
    """The training split as image codes: oracle codes, or the image tokenizer's (cached)."""
    from seedtok.mllm.cache import build_id_cache, load_cache, tokenizer_fingerprint

    if a.oracle:
        from seedtok.mllm.oracle import oracle_cache

        if a.tokenizer:
            raise ValueError("--oracle replaces the image tokenizer; drop --tokenizer")
        return oracle_cache(_split_source(a.data, "train"))
    tok = _image_tokenizer(a.tokenizer)
    cache_dir = Path(a.out) / f"ids-train-{tokenizer_fingerprint(tok)}"
    if (cache_dir / "meta.json").is_file():
        return load_cache(cache_dir, tok)
    return build_id_cache(_split_source(a.data, "train"), tok, cache_dir, progress=not a.quiet)


def cmd_caption(a: argparse.Namespace) -> int:
    llm = _llm(a)  # SeedLLM, or SeedLlama for a SEED-LLaMA checkpoint
    for path, text in zip(a.images, llm.caption(a.images, _image_tokenizer(a.tokenizer), sampling=_sampling(a))):
        print(f"{path}\t{text}")
    return 0


def cmd_ask(a: argparse.Namespace) -> int:
    llm = _llm(a)  # SeedLLM, or SeedLlama for a SEED-LLaMA checkpoint
    print(llm.answer([a.image], [a.question], _image_tokenizer(a.tokenizer), sampling=_sampling(a))[0])
    return 0


def cmd_draw(a: argparse.Namespace) -> int:
    from seedtok.decode import load_detokenizer

    llm = _llm(a)  # SeedLLM, or SeedLlama for a SEED-LLaMA checkpoint
    if a.decoder is None and type(llm).__name__ == "SeedLlama":
        raise ValueError("SEED-LLaMA draws through Stable unCLIP: pass --decoder DIR (stable-diffusion-2-1-unclip) "
                         "and --tokenizer DIR (a SEED-2 model)")
    detok = load_detokenizer(a.decoder, _image_tokenizer(a.tokenizer))
    codes = llm.draw_codes([a.text], _sampling(a))
    image = detok(ids=codes, seed=a.seed, num_inference_steps=a.steps, height=a.height, width=a.width).images[0]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(a.out)
    print(f"{a.out}\t{' '.join(map(str, codes[0].tolist()))}")
    return 0


def cmd_merge(a: argparse.Namespace) -> int:
    from seedtok.mllm.model import SeedLLM

    SeedLLM.load(a.llm).merge().save(a.out)
    print(f"merged {a.llm} -> {a.out}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from seedtok.bench import write_json
    from seedtok.eval.llm import bench_tiny_world

    _threads(a.threads)
    if a.oracle and a.tokenizer:
        raise ValueError("--oracle replaces the image tokenizer; drop --tokenizer")
    cache_dir = None
    if a.llm is None:
        from seedtok.release import announce, shipped_llm_dir, shipped_tokenizer_dir

        announce("LLM" if a.oracle else "LLM + tokenizer")
        a.llm, cache_dir = str(shipped_llm_dir()), str(Path(a.out).with_suffix("")) + "-cache"  # not in the package
        if not a.oracle and a.tokenizer is None:
            a.tokenizer = str(shipped_tokenizer_dir())
    res = bench_tiny_world(a.data, a.llm, a.tokenizer, a.decoder, a.limit, a.batch_size, progress=not a.quiet,
                           oracle=a.oracle, cache_dir=cache_dir)
    write_json(res, a.out)
    for split in ("test", "compositional"):
        r = res.get(split, {})
        print(f"{split}: caption exact {r.get('caption', {}).get('exact_scene_match')}, "
              f"VQA {r.get('vqa', {}).get('accuracy')}, draw colour+shape {r.get('draw', {}).get('color_shape')} "
              f"exact {r.get('draw', {}).get('exact_scene_match')}")
    print(f"-> {a.out}")
    return 0
