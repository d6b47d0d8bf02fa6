"""De-tokenization (paper sec. 3.1, Fig. 3 right; sec. 4.1 "image reconstruction"):
ids -> generation embeddings -> image through a text-conditioned diffusion UNet.

SEED feeds the Reverse Q-Former's generation embeddings (B, 77, 768) to Stable Diffusion's
UNet *in place of* the CLIP text encoder's last hidden states, and guides against the
text encoder's embedding of the empty prompt (classifier-free guidance). The loop here is
the standard DDIM / DPM-Solver++ / PNDM sampling loop of ``diffusers`` schedulers, written
out so that one class serves three generators:

- a latent UNet + VAE (SD-1.x, 64x64x4 latents -> 512x512 images),
- a pixel-space UNet (the tiny world's diffusion stand-in; no VAE),
- the deterministic one-step generator of the tiny world (:mod:`seedtok.decode.standin`),
  which maps the embeddings to an image in a single forward pass (steps and seed unused).

Every part is loaded once (see :mod:`seedtok.decode.loading`) and reused across calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

log = logging.getLogger(__name__)

SCHEDULERS = ("ddim", "dpm++", "pndm")


class DecodeError(ValueError):
    """Input the de-tokenizer cannot decode: wrong shapes, ids out of range, bad sizes."""


@dataclass(frozen=True)
class DecodeDefaults:
    """Sampling defaults. SD-1.x: the reference SEED-1 demo (50 steps, CFG 7.5, 512, seed 42)."""

    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    height: int = 512
    width: int = 512
    seed: int = 42
    scheduler: str = "pndm"


@dataclass
class DecodeOutput:
    """``pixels`` (B, 3, H, W) float32 in [0, 1]; ``images`` the same as PIL RGB images."""

    pixels: torch.Tensor
    images: list[Image.Image]


def make_scheduler(name: str, config: Any):
    """A fresh scheduler of kind ``name`` from a diffusers scheduler config (any class's).
    Schedulers carry per-run state (PNDM's history, DPM-Solver's model outputs), so every
    decode call gets its own instance; building one is cheap."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "pndm":
        return PNDMScheduler.from_config(config, skip_prk_steps=True)
    raise DecodeError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULERS)}")


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> PIL RGB images (rounded to uint8)."""
    arr = (pixels.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return [Image.fromarray(a, "RGB") for a in arr]


class SeedDetokenizer:
    """Ids (B, Q) or generation embeddings (B, L, G) -> images.

    Args:
        denoiser: a ``diffusers`` ``UNet2DConditionModel`` (latent with ``vae``, else pixel
            space) or a one-step generator (a module with ``one_step = True`` whose
            ``forward(encoder_hidden_states)`` returns images in [-1, 1]).
        uncond: (1, L, G) the unconditional embedding CFG guides against (SD: CLIP's states of
            the empty prompt; tiny world: MiniLM's of the empty string).
        scheduler_config: diffusers scheduler config (the model's training noise schedule).
        vae: ``AutoencoderKL`` when the UNet is latent.
        tokenizer: a :class:`~seedtok.models.SeedTokenizer` to turn ids into embeddings.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        uncond: torch.Tensor,
        scheduler_config: Any = None,
        vae: nn.Module | None = None,
        tokenizer: nn.Module | None = None,
        defaults: DecodeDefaults = DecodeDefaults(),
    ) -> None:
        self.denoiser = denoiser.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.tokenizer = tokenizer.eval() if tokenizer is not None else None
        if uncond.dim() == 2:
            uncond = uncond.unsqueeze(0)
        self.uncond = uncond.detach().float()[:1]
        self.scheduler_config = scheduler_config
        self.defaults = defaults
        self.progress = True
        self.one_step = bool(getattr(denoiser, "one_step", False))
        if not self.one_step and scheduler_config is None:
            raise DecodeError("a diffusion UNet needs a scheduler config")
        self._check_uncond()

    # -- shapes -----------------------------------------------------------------------------
    @property
    def embedding_shape(self) -> tuple[int, int]:
        """(L, G): the generation embeddings this decoder takes per image."""
        return int(self.uncond.shape[1]), int(self.uncond.shape[2])

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell (1 for a pixel-space UNet)."""
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _check_uncond(self) -> None:
        width = getattr(getattr(self.denoiser, "config", None), "cross_attention_dim", None)
        if width is not None and int(width) != self.embedding_shape[1]:
            raise DecodeError(
                f"unconditional embedding width {self.embedding_shape[1]} does not match the UNet's "
                f"cross_attention_dim {width}"
            )

    def set_progress_bar_config(self, disable: bool = False) -> None:
        """Turn the per-step progress bar off (``disable=True``) or on."""
        self.progress = not disable

    # -- inputs -----------------------------------------------------------------------------
    def embeddings_from_ids(self, ids: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
        """ids (B, Q) -> generation embeddings (B, L, G) through the tokenizer's de-quantizer,
        decode blocks and Reverse Q-Former."""
        if self.tokenizer is None:
            raise DecodeError("decoding ids needs a tokenizer (pass tokenizer= or decode embeddings)")
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise DecodeError(f"ids must be integers, got {ids.dtype}")
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        cfg = self.tokenizer.config
        if ids.dim() != 2 or ids.shape[1] != cfg.num_tokens:
            raise DecodeError(f"expected ids of shape (B, {cfg.num_tokens}), got {tuple(ids.shape)}")
        bad = (ids < 0) | (ids >= cfg.codebook.codebook_size)
        if bool(bad.any()):
            raise DecodeError(
                f"ids out of range [0, {cfg.codebook.codebook_size}): {sorted(set(ids[bad].tolist()))[:8]}"
            )
        return self.tokenizer.decode_ids(ids.long())

    def check_embeddings(self, embeds: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(embeds) or not embeds.dtype.is_floating_point:
            raise DecodeError("generation embeddings must be a floating-point tensor")
        if embeds.dim() == 2:
            embeds = embeds.unsqueeze(0)
        length, width = self.embedding_shape
        if embeds.dim() != 3 or tuple(embeds.shape[1:]) != (length, width):
            raise DecodeError(f"expected generation embeddings of shape (B, {length}, {width}), got {tuple(embeds.shape)}")
        if not bool(torch.isfinite(embeds).all()):
            raise DecodeError("generation embeddings contain NaN or inf")
        return embeds.float()

    def _check_size(self, height: int, width: int) -> None:
        if self.one_step:
            size = int(self.denoiser.config.image_size)
            if (height, width) != (size, size):
                raise DecodeError(f"this one-step generator draws {size}x{size} images only, not {height}x{width}")
            return
        blocks = len(self.denoiser.config.block_out_channels)
        multiple = self.latent_factor * 2 ** (blocks - 1)
        if height <= 0 or width <= 0 or height % multiple or width % multiple:
            raise DecodeError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")

    # -- decoding ---------------------------------------------------------------------------
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
    ) -> DecodeOutput:
        """Decode ``ids`` (B, Q) or ``embeds`` (B, L, G); unset options take :attr:`defaults`.
        Image i uses noise seeded with ``seed + i``, so a batch equals its images decoded one
        by one. ``guidance_scale`` 1.0 is the unguided conditional path."""
        if (ids is None) == (embeds is None):
            raise DecodeError("pass exactly one of ids or embeds")
        cond = self.embeddings_from_ids(ids) if ids is not None else self.check_embeddings(embeds)
        d = self.defaults
        steps = d.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        g = d.guidance_scale if guidance_scale is None else float(guidance_scale)
        height, width = height or d.height, width or d.width
        if steps < 1:
            raise DecodeError(f"num_inference_steps must be >= 1, got {steps}")
        self._check_size(height, width)
        uncond = self.uncond if g != 1.0 else None
        if self.one_step:
            pixels = self._one_step(cond, uncond, g)
        else:
            sched = scheduler or d.scheduler
            seed = d.seed if seed is None else int(seed)
            show = self.progress if progress is None else progress
            pixels = self.denoise(cond, uncond, g, steps, height, width, seed, sched, show)
        return DecodeOutput(pixels, to_pil(pixels))

    def _one_step(self, cond: torch.Tensor, uncond: torch.Tensor | None, g: float) -> torch.Tensor:
        out = self.denoiser(cond)
        if uncond is not None:  # guidance on the output, the analogue of CFG on x0
            out_u = self.denoiser(uncond)
            out = out_u + g * (out - out_u)
        return (out / 2 + 0.5).clamp(0, 1)

    def initial_noise(self, batch: int, height: int, width: int, seed: int) -> torch.Tensor:
        """(B, C, h, w) standard normal; row i from a generator seeded with ``seed + i``."""
        f = self.latent_factor
        shape = (self.denoiser.config.in_channels, height // f, width // f)
        rows = [torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(batch)]
        return torch.stack(rows)

    def denoise(
        self,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        guidance_scale: float,
        steps: int,
        height: int,
        width: int,
        seed: int,
        scheduler: str,
        progress: bool = False,
    ) -> torch.Tensor:
        """The sampling loop: eps = eps_u + g * (eps_c - eps_u) when ``uncond`` is given,
        else the conditional eps alone. Returns pixels (B, 3, H, W) in [0, 1]."""
        from tqdm.auto import tqdm

        sched = make_scheduler(scheduler, self.scheduler_config)
        sched.set_timesteps(steps)
        x = self.initial_noise(cond.shape[0], height, width, seed) * sched.init_noise_sigma
        context = cond if uncond is None else torch.cat([uncond.expand_as(cond), cond])
        for t in tqdm(sched.timesteps, disable=not progress, desc="denoise", leave=False):
            inp = x if uncond is None else torch.cat([x, x])
            eps = self.denoiser(sched.scale_model_input(inp, t), t, encoder_hidden_states=context).sample
            if uncond is not None:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            x = sched.step(eps, t, x).prev_sample
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return (x / 2 + 0.5).clamp(0, 1)
