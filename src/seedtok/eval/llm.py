"""Captioning, VQA and text-to-image metrics of a SEED LLM, and the tiny-world benchmark of
SEED-OPT (``seedtok llm bench``; paper sec. 4.2-4.3 protocols on the shapes world), scored
with the exact scene parser and caption parser instead of human/CLIP judges.

- captioning: greedy caption of each image; exact scene match (parse_caption vs the true
  scene), BLEU-4 and CIDEr (pycocoevalcap; references: every caption template of the scene);
- VQA: exact answer, overall and per question type;
- text-to-image: draw(caption) -> de-tokenizer -> parse_scene; per-object colour+shape accuracy
  and exact scene match, next to the same decoder on the image's *true* codes (the ceiling
  the tokenizer + decoder allow);
on the test split and, separately, the compositional split (held-out colour-shape pairs).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import torch

from seedtok.mllm.cache import IdCache, build_id_cache, load_cache, tokenizer_fingerprint
from seedtok.mllm.model import SeedLLM

log = logging.getLogger(__name__)


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def coco_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """BLEU-1..4 and CIDEr with the COCO caption protocol (PTB tokenizer, needs Java)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu1": float(bleu[0]), "bleu4": float(bleu[3]), "cider": float(cider)}


def scene_references(scenes: list[Any]) -> list[list[str]]:
    """The reference captions of each scene: one per caption template."""
    from seedtok.data.shapes import CAPTION_TEMPLATES, caption

    return [sorted({caption(s, template=t) for t in range(len(CAPTION_TEMPLATES))}) for s in scenes]


def _bar(n: int, size: int, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(_batches(n, size), total=(n + size - 1) // size, disable=not progress, desc=desc, leave=False)


def eval_captions(llm: SeedLLM, cache: IdCache, batch_size: int, keep: int = 0, progress: bool = False) -> dict[str, Any]:
    """Greedy captions of every image: exact scene match (caption parser), BLEU-1/4, CIDEr;
    ``keep`` > 0 adds the first ``keep`` generated captions as ``predictions``."""
    from seedtok.data.shapes import Scene, parse_caption, scene_match

    t0 = time.perf_counter()
    preds: list[str] = []
    for sl in _bar(len(cache), batch_size, progress, "caption"):
        preds += llm.caption_codes(cache.ids[sl])
    scenes = [Scene.from_dict(r["scene"]) for r in cache.records]
    exact = [scene_match(parse_caption(p), s) for p, s in zip(preds, scenes)]
    refs = scene_references(scenes)
    out = {"n": len(preds), "exact_scene_match": sum(exact) / max(len(exact), 1), **coco_scores(preds, refs)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["examples"] = [{"reference": r["caption"], "generated": p} for r, p in zip(cache.records[:5], preds[:5])]
    if keep:
        out["predictions"] = [{"generated": p, "exact": bool(e)} for p, e in zip(preds[:keep], exact[:keep])]
    return out


def eval_vqa(llm: SeedLLM, cache: IdCache, batch_size: int, keep: int = 0, progress: bool = False) -> dict[str, Any]:
    """Exact-match answers to every question of every image, overall and per question type,
    beside the majority-answer baseline; ``keep`` > 0 adds the answers of the first ``keep``
    images as ``answers`` (per image: question, answer, truth, type)."""
    t0 = time.perf_counter()
    items = [(i, qa) for i, r in enumerate(cache.records) for qa in r["vqa"]]
    right: dict[str, list[bool]] = defaultdict(list)
    kept: list[list[dict[str, Any]]] = [[] for _ in range(min(keep, len(cache)))]
    for sl in _bar(len(items), batch_size, progress, "vqa"):
        chunk = items[sl]
        codes = cache.ids[[i for i, _ in chunk]]
        answers = llm.answer_codes(codes, [qa["question"] for _, qa in chunk])
        for (i, qa), a in zip(chunk, answers):
            ok = a.strip().lower() == qa["answer"].strip().lower()
            right[qa["type"]].append(ok)
            if i < len(kept):
                kept[i].append({"question": qa["question"], "answer": a.strip(), "truth": qa["answer"], "type": qa["type"],
                                "correct": ok})
    every = [x for v in right.values() for x in v]
    prior: dict[str, Counter] = defaultdict(Counter)
    for _, qa in items:
        prior[qa["type"]][qa["answer"]] += 1
    out = {"n": len(every), "accuracy": sum(every) / max(len(every), 1),
           "majority_answer_baseline": sum(c.most_common(1)[0][1] for c in prior.values()) / max(len(every), 1),
           "per_type": {t: {"n": len(v), "accuracy": sum(v) / len(v)} for t, v in sorted(right.items())},
           "min_type_accuracy": min((sum(v) / len(v) for v in right.values()), default=0.0),
           "seconds": round(time.perf_counter() - t0, 1)}
    if keep:
        out["answers"] = kept
    return out


def _score_images(images: list[Any], scenes: list[Any]) -> dict[str, float]:
    from seedtok.eval.images import score_images

    r = score_images(images, scenes)
    return {"color_shape": r["color_shape"], "object": r["object"], "exact_scene_match": r["exact"]}


def eval_draw(llm: SeedLLM, cache: IdCache, render: Callable[[torch.Tensor], list[Any]], batch_size: int,
              keep: int = 0, progress: bool = False) -> dict[str, Any]:
    """Text-to-image from each image's caption, scored by the scene parser, beside the same
    decoder on the image's true codes; ``keep`` > 0 adds the first ``keep`` drawings (PIL
    images, not JSON) as ``drawn`` and their codes as ``drawn_codes``."""
    from seedtok.data.shapes import Scene

    t0 = time.perf_counter()
    scenes = [Scene.from_dict(r["scene"]) for r in cache.records]
    drawn, truth, codes_kept, same = [], [], [], 0
    for sl in _bar(len(cache), batch_size, progress, "draw"):
        codes = llm.draw_codes([r["caption"] for r in cache.records[sl]])
        same += int((codes == cache.ids[sl]).all(dim=1).sum())
        drawn += render(codes)
        truth += render(cache.ids[sl])
        codes_kept += codes.tolist()[: max(0, keep - len(codes_kept))]
    out = {"n": len(drawn), **_score_images(drawn, scenes), "true_codes_ceiling": _score_images(truth, scenes),
           "codes_equal_to_image_codes": same / max(len(drawn), 1), "seconds": round(time.perf_counter() - t0, 1)}
    if keep:
        out["drawn"], out["drawn_codes"] = drawn[:keep], codes_kept
    return out


def split_cache(data: str, split: str, tok: Any, path: Path, limit: int | None = None) -> IdCache:
    """The id cache of a shapes-world split at ``path``: read (checked against ``tok``) or built
    once, then cut to its first ``limit`` images."""
    from seedtok.data.shapes import split_shards

    cache = load_cache(path, tok) if (path / "meta.json").is_file() else build_id_cache(split_shards(data, split), tok, path)
    return cache.head(limit)


def bench_tiny_world(data: str, llm_dir: str, tokenizer_dir: str | None, decoder: str | None, limit: int | None = None,
                     batch_size: int = 64, progress: bool = False, oracle: bool = False,
                     cache_dir: str | None = None) -> dict[str, Any]:
    """Every figure of the module docstring, for the test and compositional splits. With
    ``oracle`` the images are given as oracle codes (:mod:`seedtok.mllm.oracle`; the LLM must
    have been trained on them) and drawn codes are rendered by the oracle's exact inverse.
    Image-id caches go to ``cache_dir`` (default: ``llm_dir``)."""
    from seedtok.bench import machine_info

    t0, c0 = time.perf_counter(), time.process_time()
    llm = SeedLLM.load(llm_dir)
    if oracle:
        from seedtok.mllm.oracle import oracle_render

        tok, render = None, oracle_render
    else:
        from seedtok.api import load_tokenizer

        tok = load_tokenizer(tokenizer_dir)
        render = _renderer(decoder, tok)
    result: dict[str, Any] = {"benchmark": "llm-tiny-world", "codes": "oracle" if oracle else "image tokenizer",
                              "llm": str(llm_dir), "tokenizer": None if oracle else tokenizer_dir,
                              "decoder": "oracle inverse + scene renderer" if oracle else decoder or "shipped stand-in",
                              "limit": limit, "machine": machine_info()}
    for split in ("test", "compositional"):
        cache = _eval_cache(data, split, tok, Path(cache_dir or llm_dir), limit)
        result[split] = {"caption": eval_captions(llm, cache, batch_size), "vqa": eval_vqa(llm, cache, batch_size)}
        if render is not None:
            result[split]["draw"] = eval_draw(llm, cache, render, batch_size)
        log.info("%s: %s", split, {k: v for k, v in result[split].items()})
    result["timing"] = {**stage_times(Path(llm_dir)), "bench_seconds": round(time.perf_counter() - t0, 1),
                        "bench_cpu_seconds": round(time.process_time() - c0, 1)}
    return result


def _eval_cache(data: str, split: str, tok: Any, llm_dir: Path, limit: int | None) -> IdCache:
    from seedtok.data.shapes import split_shards

    if tok is None:
        from seedtok.mllm.oracle import oracle_cache

        return oracle_cache(split_shards(data, split)).head(limit)
    return split_cache(data, split, tok, llm_dir / f"ids-{split}-{tokenizer_fingerprint(tok)}", limit)


def stage_times(llm_dir: Path) -> dict[str, Any]:
    """Wall and CPU seconds of stage 3 (``train_report.json`` in ``llm_dir``) and of stage 0c
    (the shipped stand-in's ``provenance.json``, when the LLM was built on it)."""
    import json

    from seedtok.mllm.standin import STANDIN_DIR

    out: dict[str, Any] = {}
    report = llm_dir / "train_report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        out["stage3"] = {k: r.get(k) for k in ("train_seconds", "train_cpu_seconds", "cpu_seconds", "load_avg_1min",
                                                "threads", "trainable", "total", "final_loss")}
        out["stage3"]["steps"] = r.get("preset", {}).get("steps")
        if str(r.get("base", "")).startswith("shipped stand-in") and (STANDIN_DIR / "provenance.json").is_file():
            p = json.loads((STANDIN_DIR / "provenance.json").read_text())
            out["stage0c"] = {k: p.get(k) for k in ("steps", "train_seconds", "train_cpu_seconds", "total_seconds",
                                                     "total_cpu_seconds", "threads")}
    return out


def _renderer(decoder: str | None, tok: Any) -> Callable[[torch.Tensor], list[Any]] | None:
    """The de-tokenizer as codes -> PIL images, or None (with a warning) when none loads."""
    try:
        from seedtok.decode import load_detokenizer

        detok = load_detokenizer(decoder, tok)
    except (ImportError, OSError, ValueError) as exc:
        log.warning("no de-tokenizer (%s): text-to-image is not scored", exc)
        return None
    detok.set_progress_bar_config(disable=True)
    return lambda codes: detok(ids=codes).images
