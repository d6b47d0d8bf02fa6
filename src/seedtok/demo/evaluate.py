"""The demo's measurements on a fresh shapes evaluation set, through :mod:`seedtok.eval`.

Every figure is computed from the model's 32 codes of each image: retrieval from codes (the
stage-2 reconstruction head + the stage-1 projections), reconstruction (codes -> de-tokenizer
-> image), captioning and VQA (codes -> LLM), and text-to-image (caption -> LLM codes ->
de-tokenizer), all scored by the exact scene / caption parsers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass
class DemoModel:
    """What the demo runs: tokenizer, its retrieval head, de-tokenizer, LLM and where they came from."""

    tokenizer: Any
    recon_head: Any
    detokenizer: Any
    llm: Any
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)


def load_demo_model(directory: str | Path | None = None) -> DemoModel:
    """A model bundle (``tokenizer/`` with ``reconstruction.safetensors``, ``llm/``, optional
    ``decoder/``; default: the shipped seed-tiny, sha256-checked)."""
    import json

    from seedtok.api import SeedPipeline
    from seedtok.release import PROVENANCE, SHIPPED_DIR
    from seedtok.train.runs import load_reconstruction

    root = Path(directory) if directory is not None else SHIPPED_DIR
    pipe = SeedPipeline.from_pretrained(root)
    recon = load_reconstruction(root / "tokenizer", pipe.tokenizer.config)
    prov = json.loads((root / PROVENANCE).read_text()) if (root / PROVENANCE).is_file() else {}
    return DemoModel(pipe.tokenizer, recon, pipe.detokenizer, pipe.llm, prov.get("name", root.name), prov)


def fresh_data(out: Path, seed: int, num_test: int, num_compositional: int, progress: bool = False) -> dict[str, Any]:
    """A shapes world with only test and compositional splits (the generator of ``seedtok data
    shapes``, data seed ``seed``). A scene's split is a hash of its content, so no test scene
    of any data seed is a training scene of another."""
    from seedtok.data.shapes import write_shapes_dataset

    num = num_test + num_compositional
    fractions = {"train": 0.0, "val": 0.0, "test": (num_test + 0.5) / num, "compositional": (num_compositional + 0.5) / num}
    return write_shapes_dataset(out, num, seed=seed, fractions=fractions, progress=progress)


def _unit_pixels(ds: Any) -> torch.Tensor:
    """ImageTextSet pixels (CLIP-normalised) -> (N, 3, S, S) in [0, 1]."""
    from seedtok.config import CLIP_MEAN, CLIP_STD
    from seedtok.decode.data import to_uint8

    return to_uint8(ds.pixels, CLIP_MEAN, CLIP_STD).float() / 255.0


@torch.no_grad()
def reconstruct(model: DemoModel, ids: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(N, 32) codes -> (N, 3, H, W) images in [0, 1] through the de-tokenizer."""
    seed = model.detokenizer.defaults.seed
    return torch.cat([model.detokenizer(ids=ids[i : i + batch], seed=seed + i, progress=False).pixels
                      for i in range(0, len(ids), batch)])


@torch.no_grad()
def evaluate_split(model: DemoModel, data: Path, split: str, work: Path, keep: int = 12, batch_size: int = 64,
                   progress: bool = False) -> dict[str, Any]:
    """Every measurement of one split: the eval results (``results``) and what the page shows
    (``examples``: the first ``keep`` images, their codes, reconstructions, captions, answers,
    drawings)."""
    from seedtok.data.shapes import split_shards
    from seedtok.eval.images import score_images
    from seedtok.eval.llm import eval_captions, eval_draw, eval_vqa
    from seedtok.eval.tokenizer import tokenizer_retrieval
    from seedtok.mllm.cache import build_id_cache
    from seedtok.train.data import load_image_text
    from seedtok.train.runs import default_cache

    times: dict[str, float] = {}
    t = time.perf_counter()
    tok = model.tokenizer.eval()
    ds = load_image_text(str(data), split, tok.config.vision.image_size)
    cache = build_id_cache(split_shards(data, split), tok, work / f"ids-{split}", batch_size, progress)
    if [r["caption"] for r in cache.records] != ds.captions:
        raise RuntimeError(f"{data} [{split}]: the id cache and the image set disagree on order")
    times["encode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ret = tokenizer_retrieval(tok, ds, model.recon_head, default_cache(str(data), None))
    times["retrieval_s"] = time.perf_counter() - t
    t = time.perf_counter()
    recon_px = reconstruct(model, cache.ids.long(), batch_size)
    recon = score_images(recon_px, ds.scenes)
    times["reconstruction_s"] = time.perf_counter() - t
    caption = eval_captions(model.llm, cache, batch_size, keep, progress)
    vqa = eval_vqa(model.llm, cache, batch_size, keep, progress)
    render = _renderer(model)
    draw = eval_draw(model.llm, cache, render, batch_size, keep, progress)
    times.update(caption_s=caption["seconds"], vqa_s=vqa["seconds"], draw_s=draw["seconds"])
    examples = {
        "images": _to_pil(_unit_pixels(ds)[:keep]), "ids": cache.ids[:keep].tolist(),
        "reconstructions": _to_pil(recon_px[:keep]), "captions": [r["caption"] for r in cache.records[:keep]],
        "generated": caption["predictions"], "answers": vqa["answers"],
        "drawn": draw.pop("drawn"), "drawn_codes": draw.pop("drawn_codes"),
    }
    caption.pop("predictions"), vqa.pop("answers")
    return {"num_images": len(ds), "retrieval": ret["codes"], "retrieval_causal": ret["causal"],
            "codebook": ret["codebook"], "reconstruction": recon, "caption": caption, "vqa": vqa, "draw": draw,
            "seconds": {k: round(v, 1) for k, v in times.items()}, "examples": examples}


def _renderer(model: DemoModel):
    return lambda codes: reconstruct_images(model, codes)


def reconstruct_images(model: DemoModel, codes: torch.Tensor) -> list[Any]:
    return _to_pil(reconstruct(model, torch.as_tensor(codes).long()))


def _to_pil(pixels: torch.Tensor) -> list[Any]:
    from PIL import Image

    arr = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]


@torch.no_grad()
def out_of_domain(model: DemoModel, files: list[Path]) -> list[dict[str, Any]]:
    """The bundled photos (not shapes-world images): original, 32 ids, reconstruction, caption."""
    from PIL import Image

    from seedtok.api import encode_images

    results = encode_images(model.tokenizer, files, names=[f.stem for f in files])
    ok = [r for r in results if r.ids is not None]
    if not ok:
        return []
    ids = torch.tensor([r.ids for r in ok])
    recons = reconstruct_images(model, ids)
    captions = model.llm.caption_codes(ids)
    size = model.tokenizer.config.vision.image_size * 2
    return [{"name": r.name, "image": Image.open(f).convert("RGB").resize((size, size)), "ids": r.ids,
             "reconstruction": im, "caption": c}
            for r, f, im, c in zip(ok, [f for f, r in zip(files, results) if r.ids is not None], recons, captions)]
