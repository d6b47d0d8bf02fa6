"""The shipped, trained tiny SEED model (``assets/models/seed-tiny``) and how to (re)package it.

Layout (a ``seedtok serve`` bundle, see ``docs/web.md``)::

    seed-tiny/
      bundle.json        name and description (the web demo's header)
      provenance.json    commands, data seed, steps, CPU time, git commit, bench figures, and the
                         sha256 of every file below and of the de-tokenizer's weights
      tokenizer/         stages 1 + 2, ``save_pretrained`` layout, + reconstruction.safetensors
      llm/               the stage-3 SEED LLM, merged (``SeedLLM.save`` layout)

The de-tokenizer is the shipped text-to-image stand-in (``assets/standins/decoder-tiny``); its
weights' sha256 is pinned in the provenance. Storage: the encoding path of the tokenizer
(ViT, Causal Q-Former layers and queries, encode task layer, codebook) stays float32, so the
shipped model's codes are bit-identical to the trained one's; the rest (de-tokenizer side,
retrieval heads, LLM) is stored float16 and loaded as float32, to keep every shipped asset
together under 25 MB. ``reconstruction.safetensors`` is the stage-2 head that maps codes back
to causal embeddings: only retrieval *from codes* (the paper's Table 1 protocol) reads it.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from seedtok.fileio import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_DIR = ASSETS / "models" / "seed-tiny"
TOKENIZER, LLM, PROVENANCE, BUNDLE = "tokenizer", "llm", "provenance.json", "bundle.json"
RECON_NAME = "reconstruction.safetensors"
SHIPPED_DECODER = "shipped stand-in"  # bundle.json "decoder": the de-tokenizer is assets/standins/decoder-tiny
# Tokenizer parts stored as float32: everything image -> ids reads (codes stay bit-identical).
FP32_PREFIXES = ("vision.", "ln_vision.", "qformer.layers.", "qformer.query_tokens", "qformer.embed_norm.",
                 "encode_task.", "quantizer.")
_VERIFIED: set[tuple] = set()


class ReleaseError(ValueError):
    """The shipped model is missing, incomplete, or its files do not match their sha256."""


def decoder_dir() -> Path:
    from seedtok.decode.standin import STANDIN_DIR

    return STANDIN_DIR


def verify_release(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check every file listed in ``provenance.json`` against its sha256; return the provenance.
    Hashed once per process while no listed file's mtime or size changes."""
    root = Path(directory) if directory is not None else SHIPPED_DIR
    prov_path = root / PROVENANCE
    if not prov_path.is_file():
        raise ReleaseError(f"{root}: no {PROVENANCE}; the trained tiny model is not installed "
                           "(rebuild it with `seedtok demo --train`, or pass --model/--llm)")
    prov = json.loads(prov_path.read_text())
    paths = {rel: decoder_dir() / rel.split("/", 1)[1] if rel.startswith("decoder/") else root / rel
             for rel in sorted(prov.get("sha256", {}))}
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise ReleaseError(f"{missing[0]}: missing from the shipped model (listed in {prov_path})")
    key = (str(prov_path), *((p.stat().st_mtime_ns, p.stat().st_size) for p in [prov_path, *paths.values()]))
    if key in _VERIFIED:  # hashed already in this process and no file changed since
        return prov
    for rel, path in paths.items():
        if sha256_file(path) != prov["sha256"][rel]:
            raise ReleaseError(f"{path}: sha256 does not match {prov_path} (file corrupt or modified); "
                               "reinstall seedtok or rebuild the model with `seedtok demo --train`")
    _VERIFIED.add(key)
    return prov


def shipped_tokenizer_dir(directory: str | os.PathLike | None = None) -> Path:
    verify_release(directory)
    return (Path(directory) if directory is not None else SHIPPED_DIR) / TOKENIZER


def shipped_llm_dir(directory: str | os.PathLike | None = None) -> Path:
    verify_release(directory)
    return (Path(directory) if directory is not None else SHIPPED_DIR) / LLM


def describe(directory: str | os.PathLike | None = None) -> str:
    """One line naming the shipped model (printed by the CLI when it is used by default)."""
    root = Path(directory) if directory is not None else SHIPPED_DIR
    try:
        shown = root.relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        shown = root
    prov = json.loads((root / PROVENANCE).read_text()) if (root / PROVENANCE).is_file() else {}
    return f"{prov.get('name', root.name)} ({shown}, commit {str(prov.get('git_commit', '?'))[:10]})"


def announce(parts: str = "tokenizer") -> None:
    """Tell the user (stderr) that a command fell back to the shipped model."""
    print(f"seedtok: using the shipped model {describe()} [{parts}]; --model / --llm DIR picks another",
          file=sys.stderr)


# -- packaging --------------------------------------------------------------------------------
def _mixed_precision_state(state: dict[str, torch.Tensor], keep_fp32: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if k.startswith(keep_fp32) or not v.is_floating_point() else v.half()).contiguous()
            for k, v in state.items()}


def package_tokenizer(run_dir: str | os.PathLike, out: Path) -> None:
    """A stage-2 run directory -> ``out`` (mixed precision, see the module docstring)."""
    from safetensors.torch import load_file, save_file

    from seedtok.checkpoint import from_pretrained, save_pretrained

    model = from_pretrained(run_dir)
    state = _mixed_precision_state(model.state_dict(), FP32_PREFIXES)
    for name, p in model.named_parameters():  # store the rounded values (save_pretrained keeps dtypes)
        p.data = state[name]
    for name, b in model.named_buffers():
        if name in state:
            b.data = state[name]
    save_pretrained(model, out)
    from_pretrained(out)  # it loads back (as float32) through the strict loader
    recon = Path(run_dir) / RECON_NAME
    if not recon.is_file():
        raise ReleaseError(f"{run_dir}: no {RECON_NAME} (stage 2 writes it; retrieval from codes needs it)")
    save_file(_mixed_precision_state(load_file(str(recon)), ()), str(out / RECON_NAME))


def package_llm(run_dir: str | os.PathLike, out: Path, dtype: torch.dtype = torch.float16) -> None:
    """A stage-3 run directory (adapter or merged) -> ``out``, merged, weights stored as ``dtype``."""
    from seedtok.mllm.model import SeedLLM

    llm = SeedLLM.load(run_dir).merge()
    llm.model.to(dtype)
    llm.save(out)


def git_commit(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def run_records(tokenizer_run: Path, llm_run: Path) -> dict[str, Any]:
    """Steps and costs recorded by the runs themselves (stage 1/2 summaries, a bench seed
    report beside them, the stage-3 train report)."""
    out: dict[str, Any] = {}
    bench = _read_json(tokenizer_run.parent / "bench_seed.json")
    for stage in ("stage1", "stage2"):
        summary = _read_json(tokenizer_run.parent / stage / "train_summary.json") if stage == "stage1" else \
            _read_json(tokenizer_run / "train_summary.json")
        rec: dict[str, Any] = {}
        if summary:
            rec.update(steps=summary.get("steps"), train_wall_s=round(summary.get("wall_s", 0.0), 1),
                       train_samples=summary.get("train_samples"))
        if bench and stage in bench:
            rec.update(wall_s=bench[stage].get("wall_s"), cpu_s=bench[stage].get("cpu_s"))
        out[stage] = rec
    report = _read_json(llm_run / "train_report.json")
    if report:
        out["stage3"] = {"steps": report.get("steps", report.get("preset", {}).get("steps")), "preset_finetune": report.get("preset", {}).get("finetune"),
                         "train_wall_s": report.get("train_seconds"), "cpu_s": report.get("cpu_seconds"),
                         "threads": report.get("threads"), "trainable": report.get("trainable")}
    return out


def package_release(tokenizer_run: str | os.PathLike, llm_run: str | os.PathLike, out: str | os.PathLike | None = None,
                    commands: list[str] | None = None, data: str | None = None, report: str | os.PathLike | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn a stage-2 run and a stage-3 run into a shipped-model directory (default: the one
    in the package); ``report`` (a ``seedtok demo`` report.json) adds its figures to the
    provenance. Returns the provenance."""
    root = Path(out) if out is not None else SHIPPED_DIR
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    package_tokenizer(tokenizer_run, tmp / TOKENIZER)
    package_llm(llm_run, tmp / LLM)
    prov = provenance(Path(tokenizer_run), Path(llm_run), tmp, commands, data, report, extra)
    atomic_write_json(tmp / PROVENANCE, prov)
    atomic_write_json(tmp / BUNDLE, {"name": "seed-tiny", "decoder": SHIPPED_DECODER,
                                     "description": "trained tiny SEED model (shapes world): tokenizer after stages 1+2, "
                                                    "the shipped one-step de-tokenizer stand-in, stage-3 LLM"})
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    _VERIFIED.clear()
    verify_release(root)
    return prov


def add_report(report: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """Record a demo report's figures in an existing release's provenance (weights untouched)."""
    root = Path(directory) if directory is not None else SHIPPED_DIR
    prov = verify_release(root)
    prov["bench"] = bench_figures(json.loads(Path(report).read_text()))
    atomic_write_json(root / PROVENANCE, prov)
    _VERIFIED.clear()
    return prov


def bench_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a ``seedtok demo`` report (what the model is released with)."""
    from seedtok.demo.report import floor_results, headline

    return {"by": "seedtok demo (fresh shapes data; see report num_images)", "figures": headline(report),
            "num_images": {s: v["num_images"] for s, v in report["splits"].items()},
            "floors_met": [f["key"] for f in floor_results(report) if f["passed"]],
            "parity": report.get("parity"), "wall_seconds": report.get("wall_seconds")}


def provenance(tokenizer_run: Path, llm_run: Path, packaged: Path, commands: list[str] | None, data: str | None,
               report: str | os.PathLike | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    sums = {str(p.relative_to(packaged)): sha256_file(p) for p in sorted(packaged.rglob("*")) if p.is_file()}
    sums["decoder/model.safetensors"] = sha256_file(decoder_dir() / "model.safetensors")
    sums["decoder/decoder.json"] = sha256_file(decoder_dir() / "decoder.json")
    prov: dict[str, Any] = {
        "name": "seed-tiny",
        "what": "SEED (arXiv 2307.08041) in the tiny shapes world: image tokenizer after stages 1 + 2 on the shipped "
                "stand-in ViT, the shipped one-step text-to-image stand-in as de-tokenizer, and the stage-3 LLM "
                "(the shipped stand-in LM, fine-tuned on the tokenizer's codes; merged)",
        "packaged": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "runs": {"tokenizer": str(tokenizer_run), "llm": str(llm_run)},
        "commands": commands or [],
        "stages": run_records(tokenizer_run, llm_run),
        "storage": {"tokenizer": f"float32: {', '.join(FP32_PREFIXES)}; float16: the rest",
                    "reconstruction_head": "float16", "llm": "float16 (loaded as float32)"},
        "decoder": "assets/standins/decoder-tiny (shipped stand-in; its own provenance.json)",
        "sha256": sums,
    }
    if data is not None:
        index = _read_json(Path(data) / "index.json") or {}
        prov["data"] = {"source": str(data), "seed": index.get("seed"), "num": index.get("num"),
                        "made_by": f"seedtok data shapes --out DIR --num {index.get('num')} --seed {index.get('seed')}"}
    if report is not None:
        prov["bench"] = bench_figures(json.loads(Path(report).read_text()))
    prov.update(extra or {})
    return prov
