"""High-level entry points used by the CLI and by users: get a tokenizer, encode images, or the
whole SEED pipeline (tokenizer + de-tokenizer + LLM) in one object.

With no model named, the shipped trained tiny model is used (``assets/models/seed-tiny``,
:mod:`seedtok.release`; its files are sha256-checked on load)::

    from seedtok.api import load_pipeline
    seed = load_pipeline()                       # the shipped model
    ids = seed.encode(["cat.png"])               # (1, 32) int
    seed.caption(["cat.png"]), seed.ask(["cat.png"], ["what color is the star?"])
    seed.draw(["a large red circle at the top left"])[0].save("x.png")
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from seedtok.checkpoint import from_pretrained
from seedtok.config import get_preset
from seedtok.image import ImageError, ImageInput, load_image, normalize
from seedtok.models import SeedTokenizer

log = logging.getLogger(__name__)


def load_tokenizer(
    model_dir: str | os.PathLike | None = None, preset: str | None = None, seed: int = 0, int8: bool = False
) -> SeedTokenizer:
    """A trained model from ``model_dir`` (``save_pretrained`` layout); else, with ``preset``, a
    randomly initialised one (seeded, so its ids are reproducible; plumbing only); else the
    shipped trained tiny tokenizer. ``int8``: the ViT's Linear layers in int8 for CPU inference
    (:mod:`seedtok.fast`); from a directory they are quantized while loading, so no fp32 copy of
    the ViT is ever held."""
    from seedtok.fast import load_int8, quantize_vision_

    if model_dir is None and preset is None:
        from seedtok.release import shipped_tokenizer_dir

        model_dir = shipped_tokenizer_dir()
    if model_dir is not None:
        return load_int8(model_dir) if int8 else from_pretrained(model_dir)
    from seedtok.models.seed2 import build_tokenizer

    config = get_preset(preset)
    torch.manual_seed(seed)
    model = build_tokenizer(config).eval()  # SeedTokenizer, or Seed2Tokenizer for preset seed2
    return quantize_vision_(model) if int8 else model


@dataclass
class EncodeResult:
    name: str
    ids: list[int] | None
    error: str | None = None


def encode_images(
    model: SeedTokenizer, images: Sequence[ImageInput], names: Sequence[str] | None = None, batch_size: int = 8
) -> list[EncodeResult]:
    """Encode images to their ``num_tokens`` ids. An unreadable image gets an ``error`` entry
    instead of ids; the others are still encoded."""
    names = list(names) if names is not None else [str(i) for i in range(len(images))]
    size = model.config.vision.image_size
    results: list[EncodeResult] = []
    ready: list[tuple[int, torch.Tensor]] = []
    for i, (img, name) in enumerate(zip(images, names)):
        try:
            cfg = model.config  # a SEED-2 config may ask for the reference scripts' bilinear resize
            ready.append((i, normalize(load_image(img, name), size, cfg.image_mean, cfg.image_std, getattr(cfg, "resample", "bicubic"))))
            results.append(EncodeResult(name, None))
        except ImageError as exc:
            results.append(EncodeResult(name, None, str(exc)))
    for start in range(0, len(ready), batch_size):
        chunk = ready[start : start + batch_size]
        ids, _ = model.encode(torch.stack([t for _, t in chunk]))
        for (i, _), row in zip(chunk, ids):
            results[i].ids = row.tolist()
    return results


class SeedPipeline:
    """Tokenizer, de-tokenizer and SEED LLM loaded together (SEED paper Fig. 1): images -> 32
    ids -> images, captions and answers from images, images from text. ``llm`` may be None
    (then captioning, VQA and drawing raise)."""

    def __init__(self, tokenizer: Any, detokenizer: Any, llm: Any = None, name: str = "seedtok") -> None:
        self.tokenizer, self.detokenizer, self.llm, self.name = tokenizer, detokenizer, llm, name

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None, with_llm: bool = True) -> "SeedPipeline":
        """A bundle directory (``tokenizer/``, ``llm/``, optional ``decoder/``; the layout of
        ``seedtok serve --model``), or with ``None`` the shipped trained tiny model."""
        from seedtok.decode import load_detokenizer
        from seedtok.release import SHIPPED_DIR, verify_release

        root = Path(directory) if directory is not None else SHIPPED_DIR
        if directory is None or (root / "provenance.json").is_file():
            verify_release(root)
        tokenizer = load_tokenizer(root / "tokenizer")
        detok = load_detokenizer(root / "decoder" if (root / "decoder").is_dir() else None, tokenizer)
        detok.set_progress_bar_config(disable=True)
        llm = None
        if with_llm:
            from seedtok.mllm.model import SeedLLM

            llm = SeedLLM.load(root / "llm")
            llm.model.eval()
        return cls(tokenizer, detok, llm, root.name)

    def _need_llm(self) -> Any:
        if self.llm is None:
            raise RuntimeError(f"{self.name}: no LLM loaded (captioning, VQA and drawing need one)")
        return self.llm

    @torch.no_grad()
    def encode(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images (paths, PIL images, arrays) -> (N, num_tokens) int64 ids."""
        results = encode_images(self.tokenizer, images)
        bad = [r for r in results if r.error]
        if bad:
            raise ImageError(bad[0].error)
        return torch.tensor([r.ids for r in results])

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, **options: Any) -> list[Any]:
        """(N, num_tokens) ids -> PIL images through the de-tokenizer."""
        return self.detokenizer(ids=torch.as_tensor(ids), **options).images

    def reconstruct(self, images: Sequence[ImageInput], **options: Any) -> list[Any]:
        return self.decode(self.encode(images), **options)

    @torch.no_grad()
    def caption(self, images: Sequence[ImageInput], **kw: Any) -> list[str]:
        return self._need_llm().caption_codes(self.encode(images), **kw)

    @torch.no_grad()
    def ask(self, images: Sequence[ImageInput], questions: Sequence[str], **kw: Any) -> list[str]:
        return self._need_llm().answer_codes(self.encode(images), list(questions), **kw)

    @torch.no_grad()
    def draw(self, texts: Sequence[str], **kw: Any) -> list[Any]:
        """Texts -> constrained 32-token images -> PIL images."""
        return self.decode(self._need_llm().draw_codes(list(texts), **kw))


def load_pipeline(directory: str | os.PathLike | None = None, with_llm: bool = True) -> SeedPipeline:
    """:meth:`SeedPipeline.from_pretrained` (default: the shipped trained tiny model)."""
    return SeedPipeline.from_pretrained(directory, with_llm)
