"""SEED-2 de-tokenization through Stable unCLIP 2.1 (SEED-LLaMA, arXiv 2310.01218, sec. 3.1):
ids -> one 1,024-d image embedding (OpenCLIP ViT-H/14 space) -> image.

The reference (``models/seed_llama_tokenizer.py``) calls a lightly modified copy of diffusers'
``StableUnCLIPImg2ImgPipeline`` with ``image_embeds``, ``noise_level=0``, 20 steps, guidance 10
and 768 x 768 latents; its only change is an optional ``negative_image_embeds``, which the
reference passes as ``None``, i.e. the stock behaviour (zeros as the unconditional class label).
Here the stock pipeline is loaded from a local directory, unmodified, *without* its OpenCLIP
image encoder (never used when the embedding is given; ~0.6 B parameters saved), and its
components are driven with the pipeline's own steps (``encode_prompt``,
``noise_image_embeddings``, the scheduler, the VAE). ``tests/test_decode_unclip.py`` checks
that this equals the stock pipeline's ``__call__`` on the same inputs.

Image i draws its embedding noise and its initial latents from a generator seeded ``seed + i``
(as the pipeline does with a list of generators), so a batch equals its images one by one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from seedtok.decode.pipeline import DecodeDefaults, DecodeError, DecodeOutput, make_scheduler, to_pil
from seedtok.decode.sd import DecoderLoadError, _offline

log = logging.getLogger(__name__)

# The reference SEED-LLaMA decode: 20 steps, guidance 10, 768 x 768 (96 x 96 latents), noise level 0.
UNCLIP_DEFAULTS = DecodeDefaults(num_inference_steps=20, guidance_scale=10.0, height=768, width=768, seed=42, scheduler="")

UNCLIP_COMPONENTS: dict[str, tuple[str, ...]] = {
    "unet": ("config.json",),
    "vae": ("config.json",),
    "text_encoder": ("config.json",),
    "tokenizer": (),
    "scheduler": ("scheduler_config.json",),
    "image_normalizer": ("config.json",),
    "image_noising_scheduler": ("scheduler_config.json",),
}


def is_unclip_dir(path: str | os.PathLike) -> bool:
    """A Stable unCLIP directory (diffusers layout): it has ``image_normalizer/``."""
    return (Path(path) / "image_normalizer").is_dir()


def check_unclip_dir(path: str | os.PathLike) -> Path:
    """Raise :class:`DecoderLoadError` naming every missing component of a Stable unCLIP dir."""
    root = Path(path)
    if not root.is_dir():
        raise DecoderLoadError(f"{root}: no such Stable unCLIP directory")
    missing = []
    for comp, files in UNCLIP_COMPONENTS.items():
        if not (root / comp).is_dir():
            missing.append(f"component '{comp}' (folder {comp}/ missing)")
        else:
            missing += [f"component '{comp}' ({comp}/{f} missing)" for f in files if not (root / comp / f).is_file()]
    if missing:
        raise DecoderLoadError(f"{root}: incomplete Stable unCLIP directory: " + "; ".join(missing))
    return root


def load_unclip_dir(path: str | os.PathLike, tokenizer: nn.Module | None = None) -> "UnclipDetokenizer":
    """Stable unCLIP (``stable-diffusion-2-1-unclip`` layout) from a local directory, offline,
    without its image encoder / feature extractor."""
    _offline()
    root = check_unclip_dir(path)
    from diffusers import StableUnCLIPImg2ImgPipeline

    try:
        pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(
            root, image_encoder=None, feature_extractor=None, local_files_only=True
        )
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        raise DecoderLoadError(f"{root}: cannot load Stable unCLIP components ({exc})") from None
    return UnclipDetokenizer(pipe, tokenizer)


class UnclipDetokenizer:
    """Ids (B, 32) or unCLIP image embeddings (B, E) -> images, through a Stable unCLIP pipeline's
    components. Same call signature as :class:`~seedtok.decode.SeedDetokenizer`; ``scheduler``
    ``None`` keeps the pipeline's own (DDIM for unCLIP 2.1)."""

    def __init__(self, pipe: Any, tokenizer: nn.Module | None = None, defaults: DecodeDefaults = UNCLIP_DEFAULTS) -> None:
        self.pipe = pipe
        self.unet, self.vae = pipe.unet.eval(), pipe.vae.eval()
        self.tokenizer = tokenizer.eval() if tokenizer is not None else None
        self.defaults = defaults
        self.progress = True
        with torch.no_grad():  # "" prompt states: both CFG halves use them (the reference passes no prompt)
            self.prompt_states = pipe.encode_prompt("", torch.device("cpu"), 1, False)[0].float()
        pipe.text_encoder = None  # only the empty prompt's states are needed
        self.embed_dim = int(pipe.image_normalizer.mean.shape[-1])
        if tokenizer is not None and getattr(tokenizer.config, "image_embed_dim", None) != self.embed_dim:
            raise DecoderLoadError(
                f"tokenizer gives {getattr(tokenizer.config, 'image_embed_dim', None)}-d image embeddings but this "
                f"Stable unCLIP takes {self.embed_dim}-d ones (a SEED-2 tokenizer and unCLIP 2.1 H: 1024)"
            )

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def set_progress_bar_config(self, disable: bool = False) -> None:
        self.progress = not disable

    def embeddings_from_ids(self, ids: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
        if self.tokenizer is None:
            raise DecodeError("decoding ids needs a SEED-2 tokenizer (pass tokenizer= or decode embeddings)")
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise DecodeError(f"ids must be integers, got {ids.dtype}")
        cfg = self.tokenizer.config
        ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
        if ids.dim() != 2 or ids.shape[1] != cfg.num_tokens:
            raise DecodeError(f"expected ids of shape (B, {cfg.num_tokens}), got {tuple(ids.shape)}")
        bad = (ids < 0) | (ids >= cfg.codebook.codebook_size)
        if bool(bad.any()):
            raise DecodeError(f"ids out of range [0, {cfg.codebook.codebook_size}): {sorted(set(ids[bad].tolist()))[:8]}")
        return self.tokenizer.decode_ids(ids.long())

    def check_embeddings(self, embeds: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(embeds) or not embeds.dtype.is_floating_point:
            raise DecodeError("image embeddings must be a floating-point tensor")
        embeds = embeds.unsqueeze(0) if embeds.dim() == 1 else embeds
        if embeds.dim() != 2 or embeds.shape[1] != self.embed_dim:
            raise DecodeError(f"expected image embeddings of shape (B, {self.embed_dim}), got {tuple(embeds.shape)}")
        if not bool(torch.isfinite(embeds).all()):
            raise DecodeError("image embeddings contain NaN or inf")
        return embeds.float()

    def _check_size(self, height: int, width: int) -> None:
        multiple = self.latent_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height <= 0 or width <= 0 or height % multiple or width % multiple:
            raise DecodeError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")

    @torch.no_grad()
    def __call__(
        self,
        ids: torch.Tensor | Sequence[Sequence[int]] | None = None,
        embeds: torch.Tensor | None = None,
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        seed: int | None = None,
        scheduler: str | None = None,
        progress: bool | None = None,
        noise_level: int = 0,
    ) -> DecodeOutput:
        """Decode ``ids`` (B, 32) or unCLIP ``embeds`` (B, E); unset options take :attr:`defaults`."""
        if (ids is None) == (embeds is None):
            raise DecodeError("pass exactly one of ids or embeds")
        cond = self.embeddings_from_ids(ids) if ids is not None else self.check_embeddings(embeds)
        d = self.defaults
        steps = d.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        g = d.guidance_scale if guidance_scale is None else float(guidance_scale)
        height, width = height or d.height, width or d.width
        seed = d.seed if seed is None else int(seed)
        if steps < 1:
            raise DecodeError(f"num_inference_steps must be >= 1, got {steps}")
        self._check_size(height, width)
        show = self.progress if progress is None else progress
        pixels = self.denoise(cond, g, steps, height, width, seed, scheduler or d.scheduler or None, noise_level, show)
        return DecodeOutput(pixels, to_pil(pixels))

    def denoise(self, cond: torch.Tensor, guidance_scale: float, steps: int, height: int, width: int, seed: int,
                scheduler: str | None, noise_level: int = 0, progress: bool = False) -> torch.Tensor:
        """The pipeline's sampling loop: class label = noised, normalised embedding + noise-level
        embedding; guidance against an all-zero class label. Returns (B, 3, H, W) in [0, 1]."""
        from tqdm.auto import tqdm

        pipe, B = self.pipe, cond.shape[0]
        gens = [torch.Generator().manual_seed(seed + i) for i in range(B)]
        noise = torch.cat([torch.randn((1, cond.shape[1]), generator=gen) for gen in gens])
        labels = pipe.noise_image_embeddings(cond, noise_level, noise=noise)  # (B, 2E)
        f = self.latent_factor
        shape = (1, self.unet.config.in_channels, height // f, width // f)
        sched = make_scheduler(scheduler, pipe.scheduler.config) if scheduler else type(pipe.scheduler).from_config(pipe.scheduler.config)
        sched.set_timesteps(steps)
        x = torch.cat([torch.randn(shape, generator=gen) for gen in gens]) * sched.init_noise_sigma
        guided = guidance_scale > 1.0
        text = self.prompt_states.expand(2 * B if guided else B, -1, -1)
        if guided:
            labels = torch.cat([torch.zeros_like(labels), labels])
        for t in tqdm(sched.timesteps, disable=not progress, desc="denoise", leave=False):
            inp = sched.scale_model_input(torch.cat([x, x]) if guided else x, t)
            eps = self.unet(inp, t, encoder_hidden_states=text, class_labels=labels).sample
            if guided:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            x = sched.step(eps, t, x).prev_sample
        image = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return (image / 2 + 0.5).clamp(0, 1)
