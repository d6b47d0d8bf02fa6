"""The model bundle behind ``seedtok serve``: one directory holding the pieces, loaded once.

Layout (every part optional; see ``docs/web.md``)::

    DIR/
      bundle.json    optional: {"name": ..., "description": ...}, shown in the page header
      tokenizer/     SEED tokenizer, ``save_pretrained`` layout (config.json + model.safetensors)
      decoder/       de-tokenizer: a stand-in (decoder.json + model.safetensors) or SD-1.x (diffusers)
      llm/           SEED LLM, ``SeedLLM.save`` layout (adapter or merged)

``DIR`` may also be a tokenizer directory itself. Missing parts fall back to stand-ins — a
randomly initialised tiny tokenizer, the shipped decoder stand-in (else a random one-step
generator), the shipped stand-in LM with fresh (untrained) image-token rows — and each
fallback adds a banner so the page says plainly that those weights are untrained.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

BUNDLE_META = "bundle.json"
TOKENIZER_DIR, DECODER_DIR, LLM_DIR = "tokenizer", "decoder", "llm"


class BundleError(ValueError):
    """A bundle part that exists but cannot be loaded (corrupt, mismatched shapes)."""


@dataclass
class WebModels:
    """Everything the app serves. ``llm`` is None when the LLM cannot be loaded at all (for
    example the ``llm`` extra is not installed); ``llm_error`` then says why."""

    tokenizer: Any
    decoder: Any
    llm: Any = None
    llm_error: str | None = None
    banners: list[str] = field(default_factory=list)
    name: str = "seedtok"
    description: str = ""

    @property
    def codebook_size(self) -> int:
        return int(self.tokenizer.config.codebook.codebook_size)

    @property
    def num_tokens(self) -> int:
        return int(self.tokenizer.config.num_tokens)

    @property
    def image_size(self) -> int:
        return int(self.tokenizer.config.vision.image_size)


def _is_tokenizer_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and not (path / "decoder.json").is_file()


def load_tokenizer_part(root: Path | None, preset: str, seed: int, banners: list[str]) -> Any:
    """``root/tokenizer``, else ``root`` itself when it is a tokenizer directory, else a
    random ``preset`` tokenizer (with a banner)."""
    from seedtok.api import load_tokenizer
    from seedtok.checkpoint import CheckpointError

    for cand in ([root / TOKENIZER_DIR, root] if root is not None else []):
        if _is_tokenizer_dir(cand):
            try:
                return load_tokenizer(cand)
            except CheckpointError as exc:
                raise BundleError(f"tokenizer {cand}: {exc}") from None
    banners.append(
        f"Tokenizer: no trained weights found{f' in {root}' if root else ''}; using a randomly "
        f"initialised '{preset}' tokenizer (seed {seed}). Its ids are reproducible but meaningless."
    )
    return load_tokenizer(None, preset, seed)


def random_decoder(tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised one-step generator for the tokenizer's generation embeddings
    (plumbing only: it draws noise-like images)."""
    from seedtok.decode import OneStepConfig, OneStepGenerator, SeedDetokenizer
    from seedtok.decode.pipeline import DecodeDefaults

    cfg = tokenizer.config
    torch.manual_seed(seed)
    gen = OneStepGenerator(OneStepConfig(image_size=64, hidden_size=64, num_layers=1, cross_attention_dim=cfg.generation_dim))
    uncond = torch.zeros(1, cfg.generation_len, cfg.generation_dim)
    defaults = DecodeDefaults(num_inference_steps=1, guidance_scale=1.0, height=64, width=64, seed=seed)
    return SeedDetokenizer(gen, uncond, tokenizer=tokenizer, defaults=defaults)


def load_decoder_part(root: Path | None, tokenizer: Any, seed: int, banners: list[str], shipped: bool = False) -> Any:
    """``root/decoder``, else the shipped tiny stand-in (with a banner unless the bundle names it
    as its decoder: ``shipped``), else a random one-step generator."""
    from seedtok.decode import STANDIN_DIR, DecoderLoadError, DecodeError, load_detokenizer
    from seedtok.decode.standin import DECODER_CONFIG

    if root is not None and (root / DECODER_DIR).is_dir():
        try:
            detok = load_detokenizer(root / DECODER_DIR, tokenizer)
        except (DecoderLoadError, DecodeError, OSError) as exc:
            raise BundleError(f"decoder {root / DECODER_DIR}: {exc}") from None
        detok.set_progress_bar_config(disable=True)
        return detok
    if (STANDIN_DIR / DECODER_CONFIG).is_file():
        try:
            detok = load_detokenizer(None, tokenizer)
            detok.set_progress_bar_config(disable=True)
            if not shipped:
                banners.append("Decoder: none in the bundle; using the shipped tiny-world stand-in.")
            return detok
        except (DecoderLoadError, DecodeError) as exc:
            log.warning("shipped decoder stand-in unusable with this tokenizer: %s", exc)
    banners.append("Decoder: no trained de-tokenizer found; reconstructions come from a randomly initialised generator.")
    return random_decoder(tokenizer, seed)


def load_llm_part(root: Path | None, tokenizer: Any, banners: list[str]) -> tuple[Any, str | None]:
    """(SeedLLM or None, error). ``root/llm`` if present, else the shipped stand-in LM with
    fresh image-token rows (untrained for images: a banner says so)."""
    try:
        from seedtok.mllm.model import SeedLLM
    except ImportError as exc:  # the llm extra (transformers, peft) is not installed
        banners.append(f"LLM: unavailable ({exc}); Caption & Ask and Draw are disabled.")
        return None, f"the LLM is unavailable: {exc}"
    cfg = tokenizer.config
    if root is not None and (root / LLM_DIR).is_dir():
        try:
            llm = SeedLLM.load(root / LLM_DIR)
        except Exception as exc:  # transformers/peft raise many types on a bad directory
            raise BundleError(f"llm {root / LLM_DIR}: {type(exc).__name__}: {exc}") from None
        if llm.vocab.codebook_size != cfg.codebook.codebook_size or llm.vocab.num_tokens != cfg.num_tokens:
            raise BundleError(
                f"llm {root / LLM_DIR}: reads {llm.vocab.num_tokens} ids from a codebook of {llm.vocab.codebook_size}, "
                f"but the tokenizer makes {cfg.num_tokens} from {cfg.codebook.codebook_size}"
            )
        llm.model.eval()
        return llm, None
    try:
        torch.manual_seed(0)
        llm = SeedLLM.from_base(None, cfg.codebook.codebook_size, cfg.num_tokens)
    except Exception as exc:
        banners.append(f"LLM: unavailable ({type(exc).__name__}: {exc}); Caption & Ask and Draw are disabled.")
        return None, f"the LLM is unavailable: {exc}"
    llm.model.eval()
    banners.append(
        "LLM: no trained SEED LLM found; using the shipped stand-in language model with untrained "
        "image-token rows. Its captions, answers and drawings do not depend on the image meaningfully."
    )
    return llm, None


def load_bundle(model_dir: str | os.PathLike | None, preset: str = "tiny", seed: int = 0, with_llm: bool = True) -> WebModels:
    """Load every part of a bundle once. ``model_dir`` None: all stand-ins (plumbing only)."""
    root = Path(model_dir) if model_dir is not None else None
    if root is not None and not root.is_dir():
        raise BundleError(f"{root}: no such model directory")
    banners: list[str] = []
    meta: dict[str, Any] = {}
    if root is not None and (root / BUNDLE_META).is_file():
        try:
            meta = json.loads((root / BUNDLE_META).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{root / BUNDLE_META}: not valid JSON ({exc})") from None
    tokenizer = load_tokenizer_part(root, preset, seed, banners).eval()
    from seedtok.release import SHIPPED_DECODER

    decoder = load_decoder_part(root, tokenizer, seed, banners, meta.get("decoder") == SHIPPED_DECODER)
    llm, llm_error = load_llm_part(root, tokenizer, banners) if with_llm else (None, "the LLM was not loaded (--no-llm)")
    if not with_llm:
        banners.append("LLM: not loaded (--no-llm); Caption & Ask and Draw are disabled.")
    name = str(meta.get("name") or (root.name if root is not None else "seedtok (untrained stand-ins)"))
    return WebModels(tokenizer, decoder, llm, llm_error, banners, name, str(meta.get("description", "")))
