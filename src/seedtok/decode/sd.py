"""Full scale: Stable Diffusion 1.x as SEED-1's de-tokenizer (paper sec. 3.1 and 4.1: the
generation embeddings replace the SD-1.4 CLIP text encoder's states; DESIGN.md section 5).

Nothing is downloaded: SD loads from a local diffusers-layout directory (``unet/``,
``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), or from one original
``.ckpt`` / ``.safetensors`` through diffusers' single-file loader together with a local
diffusers-layout *config* directory (diffusers would otherwise fetch configs from the Hub).
The text encoder is used once, for the empty prompt's states that classifier-free guidance
needs, and then released.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seedtok.decode.pipeline import DecodeDefaults, SeedDetokenizer

log = logging.getLogger(__name__)

# component -> alternative sets of files, one of which must exist in its folder
SD_COMPONENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "unet": (("config.json",),),
    "vae": (("config.json",),),
    "text_encoder": (("config.json",),),
    "tokenizer": (("vocab.json", "merges.txt"), ("tokenizer.json",)),
    "scheduler": (("scheduler_config.json",),),
}
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")
SD_DEFAULTS = DecodeDefaults(num_inference_steps=50, guidance_scale=7.5, height=512, width=512, seed=42, scheduler="pndm")


class DecoderLoadError(ValueError):
    """A de-tokenizer that cannot be loaded: missing path, component, config or weights."""


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("DIFFUSERS_OFFLINE", "1")


def check_sd_dir(path: str | os.PathLike) -> Path:
    """Raise :class:`DecoderLoadError` naming every missing component or file of a
    diffusers-layout SD directory."""
    root = Path(path)
    if not root.is_dir():
        raise DecoderLoadError(f"{root}: no such Stable Diffusion directory")
    problems = [p for p in (_component_problem(root, c) for c in SD_COMPONENTS) if p]
    if problems:
        raise DecoderLoadError(f"{root}: incomplete Stable Diffusion directory: " + "; ".join(problems))
    return root


def _component_problem(root: Path, comp: str, weights: bool = True) -> str | None:
    folder = root / comp
    if not folder.is_dir():
        return f"component '{comp}' (folder {comp}/ missing)"
    options = SD_COMPONENTS[comp]
    if not any(all((folder / f).is_file() for f in files) for files in options):
        need = " or ".join("+".join(f"{comp}/{f}" for f in files) for files in options)
        return f"component '{comp}' ({need} missing)"
    if weights and comp in ("unet", "vae", "text_encoder") and not any((folder / w).is_file() for w in WEIGHT_NAMES):
        return f"component '{comp}' (no weights file in {comp}/)"
    return None


@torch.no_grad()
def empty_prompt_states(text_encoder: nn.Module, tokenizer: Any) -> torch.Tensor:
    """(1, 77, 768) CLIP last hidden states of "" padded to the tokenizer's max length: the
    unconditional embedding of SD-1.x classifier-free guidance."""
    enc = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
    return text_encoder(enc.input_ids)[0].float()


def load_sd_dir(path: str | os.PathLike, tokenizer: nn.Module | None = None) -> SeedDetokenizer:
    """SD-1.x from a local diffusers-layout directory (strictly offline)."""
    _offline()
    root = check_sd_dir(path)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.schedulers import PNDMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True)
        clip_tok = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        sched_config = PNDMScheduler.load_config(root / "scheduler")
    except (OSError, ValueError, RuntimeError) as exc:
        raise DecoderLoadError(f"{root}: cannot load Stable Diffusion components ({exc})") from None
    return _assemble(unet, vae, text_encoder.eval(), clip_tok, sched_config, tokenizer)


def load_sd_single_file(
    path: str | os.PathLike, config: str | os.PathLike | None, tokenizer: nn.Module | None = None
) -> SeedDetokenizer:
    """SD-1.x from one original-layout ``.ckpt`` / ``.safetensors`` file. ``config`` is a local
    diffusers-layout directory holding the component configs and the CLIP tokenizer files
    (weights not needed there); without it diffusers would go to the network, so it is required."""
    _offline()
    file = Path(path)
    if not file.is_file():
        raise DecoderLoadError(f"{file}: no such checkpoint file")
    if file.suffix not in (".ckpt", ".safetensors"):
        raise DecoderLoadError(f"{file}: a single-file SD checkpoint must end in .ckpt or .safetensors")
    if config is None:
        raise DecoderLoadError(
            f"{file}: loading a single-file checkpoint offline needs --sd-config DIR, a local diffusers-layout "
            "SD-1.x directory with the component configs and tokenizer files (e.g. stable-diffusion-v1-5 without weights)"
        )
    cfg = Path(config)
    problems = [p for p in (_component_problem(cfg, c, weights=False) for c in SD_COMPONENTS) if p]
    if problems:
        raise DecoderLoadError(f"{cfg}: incomplete SD config directory: " + "; ".join(problems))
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(file), config=str(cfg), local_files_only=True, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DecoderLoadError(f"{file}: cannot load single-file checkpoint ({exc})") from None
    return _assemble(pipe.unet, pipe.vae, pipe.text_encoder.eval(), pipe.tokenizer, pipe.scheduler.config, tokenizer)


def _assemble(unet, vae, text_encoder, clip_tokenizer, sched_config, tokenizer) -> SeedDetokenizer:
    uncond = empty_prompt_states(text_encoder, clip_tokenizer)
    del text_encoder  # only the empty prompt's states are needed; free ~0.5 GB at full size
    if tokenizer is not None:
        want = (tokenizer.config.generation_len, tokenizer.config.generation_dim)
        if tuple(uncond.shape[1:]) != want:
            raise DecoderLoadError(
                f"tokenizer generation embeddings are {want} but this SD's text states are {tuple(uncond.shape[1:])}"
            )
    return SeedDetokenizer(unet, uncond, sched_config, vae=vae, tokenizer=tokenizer, defaults=SD_DEFAULTS)
