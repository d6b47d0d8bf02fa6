"""Diffusion de-tokenization (paper sec. 3.1; DESIGN.md sections 1, 3, 5): SEED's generation
embeddings condition a text-to-image UNet in place of its text encoder's states.

- :class:`SeedDetokenizer`: ids or generation embeddings -> images (DDIM / DPM-Solver++ /
  PNDM, classifier-free guidance against the unconditional embedding, seeded noise);
- :func:`load_detokenizer`: SD-1.x from a local diffusers directory or a single checkpoint
  file, Stable unCLIP 2.1 for SEED-2 (:mod:`seedtok.decode.unclip`), or a tiny-world stand-in
  directory (default: the shipped one);
- :mod:`seedtok.decode.standin`: the tiny world's stand-ins (diffusion UNet, one-step generator).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from seedtok.decode.pipeline import SCHEDULERS, DecodeDefaults, DecodeError, DecodeOutput, SeedDetokenizer
from seedtok.decode.sd import DecoderLoadError, check_sd_dir, load_sd_dir, load_sd_single_file
from seedtok.decode.standin import DECODER_CONFIG, STANDIN_DIR, OneStepConfig, OneStepGenerator, load_standin


def load_detokenizer(
    path: str | os.PathLike | None = None,
    tokenizer: nn.Module | None = None,
    sd_config: str | os.PathLike | None = None,
) -> SeedDetokenizer:
    """Load a de-tokenizer once, from (in order of the checks):

    - ``None``: the shipped tiny-world stand-in;
    - a directory with ``decoder.json``: a tiny-world stand-in;
    - a directory with ``image_normalizer/``: Stable unCLIP (SEED-2's de-tokenizer; takes
      the 1,024-d image embedding of a SEED-2 tokenizer);
    - any other directory: SD-1.x in diffusers layout (every missing component is named);
    - a ``.ckpt`` / ``.safetensors`` file: SD-1.x through the single-file loader, with the
      local diffusers-layout config directory ``sd_config``.
    """
    if path is None:
        if not (STANDIN_DIR / DECODER_CONFIG).is_file():
            raise DecoderLoadError(f"no shipped decoder stand-in at {STANDIN_DIR}; pass a decoder path")
        return load_standin(STANDIN_DIR, tokenizer)
    p = Path(path)
    if p.is_dir():
        if (p / DECODER_CONFIG).is_file():
            return load_standin(p, tokenizer)
        from seedtok.decode.unclip import is_unclip_dir, load_unclip_dir

        if is_unclip_dir(p):
            return load_unclip_dir(p, tokenizer)
        if getattr(getattr(tokenizer, "config", None), "kind", None) == "seed2":
            raise DecoderLoadError(f"{p}: a SEED-2 tokenizer decodes through Stable unCLIP (a directory with "
                                   "image_normalizer/, e.g. stable-diffusion-2-1-unclip), not SD-1.x")
        return load_sd_dir(p, tokenizer)
    if p.is_file():
        return load_sd_single_file(p, sd_config, tokenizer)
    raise DecoderLoadError(f"{p}: no such decoder directory or checkpoint file")


__all__ = [
    "SCHEDULERS", "DecodeDefaults", "DecodeError", "DecodeOutput", "SeedDetokenizer", "DecoderLoadError",
    "check_sd_dir", "load_sd_dir", "load_sd_single_file", "load_detokenizer", "load_standin",
    "OneStepConfig", "OneStepGenerator", "STANDIN_DIR",
]  # fmt: skip
