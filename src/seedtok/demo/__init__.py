"""``seedtok demo`` (``make demo``): the whole SEED pipeline on the shipped trained tiny model.

1. parity with the reference SEED-1 tokenizer on the golden data;
2. a fresh shapes evaluation set (a data seed the model was not trained on; test and
   compositional splits);
3-4. on each split, from the model's 32 codes per image: retrieval, reconstruction, captioning,
   VQA and text-to-image, scored by the exact scene / caption parsers (:mod:`seedtok.eval`);
5. the bundled photos encoded and reconstructed (out of domain);
6. ``<out>/report.json`` (stable keys, :mod:`seedtok.demo.report`), ``<out>/details.json``, a
   self-contained ``<out>/report.html`` and a few test images in ``<out>/images/``; the metrics
   table with floors and pass/fail is printed.

``seedtok demo --train`` first rebuilds the model from the shipped stand-ins
(:mod:`seedtok.demo.train`), then runs the same evaluation on it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from seedtok.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"
STEPS = 6


def banner(step: int, text: str, t0: float) -> None:
    print(f"== {step}/{STEPS} {text}  [{time.perf_counter() - t0:5.0f} s] ==", flush=True)


def parity_result() -> dict[str, Any]:
    from seedtok.parity import check_parity, default_golden_dir

    golden = default_golden_dir()
    if not (golden / "meta.json").is_file():
        print(f"   skipped: no golden data at {golden} (set SEEDTOK_PARITY_DIR)")
        return {"ids_equal": None, "worst": None}
    res = check_parity(golden)
    print(f"   ids equal: {res['ids_equal']}, worst max|diff| over intermediates: {res['worst']:.2e}")
    return {"ids_equal": bool(res["ids_equal"]), "worst": float(res["worst"])}


def run_demo(out: str = "demo", model: str | None = None, data_seed: int = 1, num_test: int = 500,
             num_compositional: int = 200, keep: int = 12, batch_size: int = 64, progress: bool = True,
             train: bool = False, train_options: dict[str, Any] | None = None, strict: bool = False) -> int:
    """Run the demo into ``out``; returns 0, or with ``strict`` 1 when a floor is not met."""
    from seedtok.demo import evaluate as ev
    from seedtok.demo.html import render_page
    from seedtok.demo.report import floor_results, metrics_table, missing_keys, split_entry

    t0 = time.perf_counter()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if train:
        from seedtok.demo.train import build_model

        model = str(build_model(out_dir / "train", progress=progress, **(train_options or {})))
    banner(1, "parity with the reference SEED-1 tokenizer (golden data)", t0)
    parity = parity_result()
    banner(2, f"fresh evaluation set: shapes world, data seed {data_seed} ({num_test} test + {num_compositional} "
              "compositional)", t0)
    data = out_dir / "data"
    index = ev.fresh_data(data, data_seed, num_test, num_compositional, progress)
    dm = ev.load_demo_model(model)
    print(f"   model: {dm.name} ({model or 'shipped, sha256 verified'})")
    results, examples = {}, {}
    for step, split in ((3, "test"), (4, "compositional")):
        banner(step, f"{split} split: codes, retrieval, reconstruction, captions, VQA, drawing", t0)
        r = ev.evaluate_split(dm, data, split, out_dir / "cache", keep, batch_size, progress)
        examples[split] = r.pop("examples")
        results[split] = r
        print(f"   {split}: R@1 {r['retrieval']['i2t_r1']:.3f}, reconstruction {r['reconstruction']['color_shape']:.3f}, "
              f"caption exact {r['caption']['exact_scene_match']:.3f}, VQA {r['vqa']['accuracy']:.3f}, "
              f"draw {r['draw']['color_shape']:.3f}  ({sum(r['seconds'].values()):.0f} s)")
    banner(5, "out of domain: the bundled photos -> 32 ids -> image", t0)
    photos = ev.out_of_domain(dm, sorted(SAMPLES.glob("*.png")))
    for p in photos:
        print(f"   {p['name']:<10} {' '.join(map(str, p['ids'][:12]))} ...  caption: {p['caption']}")
    banner(6, "report", t0)
    report = {"wall_seconds": 0.0, "parity": parity,
              "splits": {s: split_entry(r["num_images"], r["retrieval"], r["reconstruction"], r["caption"], r["vqa"],
                                        r["draw"]) for s, r in results.items()}}
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    details = _details(dm, index, data_seed, results, report, model)
    if missing_keys(report):
        raise RuntimeError(f"report.json is missing keys: {missing_keys(report)}")
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_json(out_dir / "details.json", details)
    atomic_write_bytes(out_dir / "report.html", render_page(report, details, examples, photos, keep).encode())
    _save_examples(out_dir / "images", examples)
    print(metrics_table(report))
    print(f"report: {out_dir / 'report.html'} (metrics: {out_dir / 'report.json'}); wall time {report['wall_seconds']:.0f} s")
    return 1 if strict and not all(f["passed"] for f in floor_results(report)) else 0


def _save_examples(folder: Path, examples: dict[str, Any], n: int = 4) -> None:
    """A few test images as PNG files (to try ``seedtok caption`` / ``ask`` on)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, ex in examples.items():
        for i, im in enumerate(ex["images"][:n]):
            im.save(folder / f"{split}-{i:03d}.png")


def _details(dm: Any, index: dict[str, Any], data_seed: int, results: dict[str, Any], report: dict[str, Any],
             model: str | None) -> dict[str, Any]:
    """Everything report.html shows beyond report.json's keys (JSON; no images)."""
    from seedtok.demo.report import floor_results

    prov = dm.provenance
    cb = dict(results["test"]["codebook"], codebook_size=int(dm.tokenizer.config.codebook.codebook_size))
    per_split = {s: {"seconds": r["seconds"], "retrieval_causal": r["retrieval_causal"],
                     "codebook": r["codebook"], "reconstruction": r["reconstruction"],
                     "caption_examples": r["caption"].get("examples"), "vqa_per_type": r["vqa"]["per_type"],
                     "vqa_majority_baseline": r["vqa"]["majority_answer_baseline"],
                     "draw_true_codes_ceiling": r["draw"]["true_codes_ceiling"]} for s, r in results.items()}
    return {
        "model": {"name": dm.name, "path": model or "shipped", "git_commit": prov.get("git_commit"),
                  "data_seed": (prov.get("data") or {}).get("seed"), "stages": prov.get("stages")},
        "data": {"seed": data_seed, "splits": {s: v["count"] for s, v in index["splits"].items() if v["count"]}},
        "floors": floor_results(report), "codebook": cb, "splits": per_split,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg()},
    }


__all__ = ["run_demo", "SAMPLES"]
