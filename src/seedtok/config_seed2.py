"""SEED-2 tokenizer configuration (SEED-LLaMA, arXiv 2310.01218) and the ``seed2`` preset.

Split from :mod:`seedtok.config`, which re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from seedtok.config import (CLIP_MEAN, CLIP_STD, PRESETS, CodebookConfig, DecoderBlocksConfig, QFormerConfig,
                            TokenizerConfig, VisionConfig, _NESTED, _check, _from_dict, _positive,
                            config_from_parity_meta)


# -- SEED-2 (SEED-LLaMA's tokenizer, arXiv 2310.01218) ----------------------------------------
@dataclass(frozen=True)
class Seed2Config:
    """The SEED-2 tokenizer of SEED-LLaMA (``seed_quantizer.pt``): SEED-1's encoder side (EVA
    ViT, ``ln_vision``, Causal Q-Former, ``encode_task_layer``, VQ, ``decode_task_layer``), then
    a different decoder: ``pos_embed_image`` + ViT blocks (``decoder``), an MLP without biases
    (``image_down``: hidden -> down_dims, ReLU between), flattened to num_tokens * down_dims[-1],
    and ``distill_image_proj`` to one ``image_embed_dim``-d unCLIP image embedding (OpenCLIP
    ViT-H/14 space, 1024-d). Sizes read from the reference ``Blip2QformerQuantizer`` with the
    arguments ``ImageTokenizer`` builds it with (``use_qformer_image=False``)."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    ln_vision_eps: float = 1e-5
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    decoder: DecoderBlocksConfig = field(default_factory=DecoderBlocksConfig)
    down_dims: tuple[int, ...] = (256, 128, 32)
    image_embed_dim: int = 1024
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    # 224 x 224 resize: "bicubic" as the reference ImageTokenizer.processor (interpolation=3);
    # "bilinear" as the reference scripts' clip_transform.yaml (torchvision Resize default).
    resample: str = "bicubic"
    kind: str = "seed2"  # stored in config.json so a model directory says which tokenizer it is

    def __post_init__(self) -> None:
        _check(self.kind == "seed2", f"Seed2Config.kind must be 'seed2', got {self.kind!r}")
        _check(self.resample in ("bicubic", "bilinear"), f"resample must be 'bicubic' or 'bilinear', got {self.resample!r}")
        _positive(self, "ln_vision_eps", "image_embed_dim")
        _check(len(self.down_dims) >= 1 and all(float(d).is_integer() and d > 0 for d in self.down_dims),
               f"down_dims must be positive integers, got {self.down_dims!r}")
        object.__setattr__(self, "down_dims", tuple(int(d) for d in self.down_dims))  # JSON gives floats
        _check(len(self.image_mean) == 3 and len(self.image_std) == 3 and min(self.image_std) > 0,
               "image_mean/image_std need 3 values, std > 0")
        _check(self.qformer.encoder_width == self.vision.hidden_size,
               f"qformer.encoder_width ({self.qformer.encoder_width}) must equal vision.hidden_size "
               f"({self.vision.hidden_size})")
        _check(self.qformer.hidden_size % self.decoder.num_heads == 0, "decoder heads must divide hidden")

    @property
    def num_tokens(self) -> int:
        """Image tokens per image (32)."""
        return self.qformer.num_queries

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Seed2Config":
        return _from_dict(cls, data, "config")

    def replace(self, **changes: Any) -> "Seed2Config":
        return dataclasses.replace(self, **changes)


_NESTED.update({(Seed2Config, k): c for k, c in (("vision", VisionConfig), ("qformer", QFormerConfig),
                                                   ("codebook", CodebookConfig), ("decoder", DecoderBlocksConfig))})

# SEED-2 at full size (EVA ViT-g, BERT-base Causal Q-Former, 8192 x 32 codes, 1,024-d output).
PRESETS["seed2"] = Seed2Config()  # type: ignore[assignment]


def config_from_dict(data: Mapping[str, Any]) -> "TokenizerConfig | Seed2Config":
    """A saved config of either tokenizer: ``kind == 'seed2'`` selects :class:`Seed2Config`."""
    if isinstance(data, Mapping) and data.get("kind") == "seed2":
        return Seed2Config.from_dict(data)
    return TokenizerConfig.from_dict(data)


def seed2_config_from_parity_meta(meta: Mapping[str, Any]) -> Seed2Config:
    """A :class:`Seed2Config` from a SEED-2 golden-data ``meta.json`` (same fields as SEED-1's
    for the shared encoder; ``image_decoder`` for the SEED-2 head)."""
    base = config_from_parity_meta({**meta, "reverse_qformer": {"layers": 1, "num_queries": 1},
                                    "generation_dim": 1})
    dec = meta["decoder_blocks"]
    head = meta["image_decoder"]
    return Seed2Config(
        vision=base.vision, ln_vision_eps=base.ln_vision_eps, qformer=base.qformer, codebook=base.codebook,
        decoder=DecoderBlocksConfig(num_layers=int(dec["depth"]), num_heads=int(dec["heads"]),
                                    mlp_ratio=float(dec.get("mlp_ratio", 4.0)), ln_eps=float(dec.get("ln_eps", 1e-6))),
        down_dims=tuple(int(d) for d in head["down_dims"]), image_embed_dim=int(head["embed_dim"]),
    )
