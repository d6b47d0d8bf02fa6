"""Configuration: one frozen dataclass per component, nested in :class:`TokenizerConfig`.

Presets are plain data (:data:`PRESETS`), never a registry. ``seed1`` is the paper-exact
SEED-1 tokenizer (arXiv 2307.08041, sec. 3.1; sizes read from the released reference code);
``tiny`` is the 2-core CPU default with the same architecture at small sizes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ConfigError(ValueError):
    """A configuration that cannot describe a valid model."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
               f"{type(obj).__name__}.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class VisionConfig:
    """EVA-style ViT (paper sec. 3.1: the frozen ViT encoder; EVA ViT-g/14 for SEED-1)."""

    image_size: int = 224
    patch_size: int = 14
    in_channels: int = 3
    hidden_size: int = 1408
    num_layers: int = 39
    num_heads: int = 16
    mlp_hidden_size: int = 6144  # int(1408 * 4.3637) in EVA ViT-g
    ln_eps: float = 1e-6
    qkv_bias: str = "qv"  # EVA: q and v biases, none on k; "qkv" or "none" also accepted
    final_norm: bool = False  # EVA ViT-g as used by BLIP-2 / SEED has no final norm
    # "patch": one patch_size x patch_size conv (EVA). "conv": log2(patch_size) 3x3 stride-2
    # convs with GroupNorm + GELU, then a 1x1 conv (a conv stem; the tiny stand-in's, whose
    # patch tokens keep shape and size readable, docs/training.md).
    stem: str = "patch"

    def __post_init__(self) -> None:
        _positive(self, "image_size", "patch_size", "in_channels", "hidden_size", "num_layers", "num_heads",
                  "mlp_hidden_size", "ln_eps")
        _check(self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size")
        _check(self.stem in ("patch", "conv"), "vision stem must be 'patch' or 'conv'")
        _check(self.stem == "patch" or (self.patch_size >= 2 and self.patch_size & (self.patch_size - 1) == 0),
               "a conv stem needs a power-of-two patch_size")
        _check(self.hidden_size % self.num_heads == 0, "vision hidden_size must divide by num_heads")
        _check(self.qkv_bias in ("qv", "qkv", "none"), "qkv_bias must be 'qv', 'qkv' or 'none'")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class QFormerConfig:
    """BERT-style Q-Former: learned queries, self-attention among them, cross-attention to an
    encoder every ``cross_attention_every`` layers (paper sec. 3.1, Causal / Reverse Q-Former).

    ``causal`` makes query i attend to queries 0..i only (SEED's 1-D causal dependency).
    ``vocab_size > 0`` adds the text branch used by stage-1 contrastive training (word and
    position embeddings, a text FFN per layer, ``vision_proj``/``text_proj``, ``temp``).
    ``text_tower`` picks stage 1's text side: ``"qformer"`` is that own text branch (BLIP-2 /
    SEED-1, initialised from BERT when real weights are given); ``"minilm"`` is a small trainable
    head over the frozen MiniLM-L6's token states (``text_state_dim`` wide), the tiny world's
    analogue of a pretrained BERT start (DESIGN.md sec. 3).
    """

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    ln_eps: float = 1e-12
    cross_attention_every: int = 2
    num_queries: int = 32
    causal: bool = True
    encoder_width: int = 1408
    vocab_size: int = 0
    max_text_len: int = 512
    proj_dim: int = 256
    pad_token_id: int = 0
    text_tower: str = "qformer"
    text_state_dim: int = 384

    def __post_init__(self) -> None:
        _positive(self, "hidden_size", "num_layers", "num_heads", "intermediate_size", "ln_eps",
                  "cross_attention_every", "num_queries", "encoder_width", "max_text_len", "proj_dim")
        _check(self.vocab_size >= 0 and 0 <= self.pad_token_id, "vocab_size and pad_token_id must be >= 0")
        _check(self.hidden_size % self.num_heads == 0, "Q-Former hidden_size must divide by num_heads")
        _check(self.cross_attention_every >= 1, "cross_attention_every must be >= 1")
        _check(self.num_queries >= 1 and self.num_layers >= 1, "Q-Former needs queries and layers")
        _check(self.text_tower in ("qformer", "minilm"), "text_tower must be 'qformer' or 'minilm'")
        _check(self.text_tower == "qformer" or self.vocab_size == 0,
               "text_tower 'minilm' replaces the Q-Former's own text branch: set vocab_size to 0")
        _positive(self, "text_state_dim")

    @property
    def has_text_branch(self) -> bool:
        """The Q-Former's own (BERT-style) text branch."""
        return self.vocab_size > 0

    @property
    def has_text_head(self) -> bool:
        """A trainable head over a frozen text encoder's states (``text_tower == 'minilm'``)."""
        return self.text_tower == "minilm"

    @property
    def is_contrastive(self) -> bool:
        """Has a text side and ``vision_proj`` / ``text_proj`` / ``temp`` (stage-1 training, retrieval)."""
        return self.has_text_branch or self.has_text_head

    def has_cross_attention(self, layer: int) -> bool:
        return layer % self.cross_attention_every == 0


@dataclass(frozen=True)
class CodebookConfig:
    """VQ codebook (paper sec. 3.1). ``kind='reference'`` is the SEED-1 quantizer:
    squared-Euclidean lookup, loss mse(sg(zq), z) + beta * mse(zq, sg(z)) (taming's legacy
    weighting)."""

    codebook_size: int = 8192
    codebook_dim: int = 32
    beta: float = 0.25
    kind: str = "reference"

    def __post_init__(self) -> None:
        _positive(self, "codebook_size", "codebook_dim")
        _check(self.codebook_size >= 2, "codebook too small")
        _check(self.beta >= 0, "beta must be >= 0")
        _check(self.kind in ("reference", "cosine"), "codebook kind must be 'reference' or 'cosine'")


@dataclass(frozen=True)
class DecoderBlocksConfig:
    """``pos_embed`` + ViT blocks applied to the de-quantized codes before the Reverse
    Q-Former (``pos_embed_text`` / ``blocks_text`` in the reference)."""

    num_layers: int = 4
    num_heads: int = 12
    mlp_ratio: float = 4.0
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        _positive(self, "num_layers", "num_heads", "mlp_ratio", "ln_eps")


@dataclass(frozen=True)
class TokenizerConfig:
    """The whole SEED tokenizer: image -> 32 ids -> generation embeddings."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    ln_vision_eps: float = 1e-5
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    decoder: DecoderBlocksConfig = field(default_factory=DecoderBlocksConfig)
    reverse_qformer: QFormerConfig = field(
        default_factory=lambda: QFormerConfig(num_layers=4, num_queries=77, causal=False, encoder_width=768)
    )
    generation_dim: int = 768
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        _positive(self, "ln_vision_eps", "generation_dim")
        _check(len(self.image_mean) == 3 and len(self.image_std) == 3 and min(self.image_std) > 0,
               "image_mean/image_std need 3 values, std > 0")
        _check(
            self.qformer.encoder_width == self.vision.hidden_size,
            f"qformer.encoder_width ({self.qformer.encoder_width}) must equal vision.hidden_size "
            f"({self.vision.hidden_size})",
        )
        _check(
            self.reverse_qformer.encoder_width == self.qformer.hidden_size,
            "reverse_qformer.encoder_width must equal qformer.hidden_size",
        )
        _check(self.qformer.hidden_size % self.decoder.num_heads == 0, "decoder heads must divide hidden")
        _check(not self.reverse_qformer.is_contrastive, "the Reverse Q-Former has no text side")

    @property
    def num_tokens(self) -> int:
        """Image tokens per image (32 for SEED)."""
        return self.qformer.num_queries

    @property
    def generation_len(self) -> int:
        return self.reverse_qformer.num_queries

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenizerConfig":
        return _from_dict(cls, data, "config")

    def replace(self, **changes: Any) -> "TokenizerConfig":
        return dataclasses.replace(self, **changes)


def _from_dict(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(repr(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            kwargs[name] = _from_dict(sub, value, f"{where}.{name}")
        else:
            kwargs[name] = _typed(value, str(fields[name].type), f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # wrong value types reach dataclass construction
        raise ConfigError(f"{where}: {exc}") from exc


def _typed(value: Any, type_name: str, where: str) -> Any:
    """Check a JSON value against a field's annotation (int, float, bool, str, float tuple)."""
    import math

    def number(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}: expected a finite number, got {v!r}")
        return float(v)

    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if type_name == "float":
        return number(value)
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if type_name.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
        return tuple(number(v) for v in value)
    raise ConfigError(f"{where}: unsupported field type {type_name}")  # pragma: no cover


_NESTED: dict[tuple[type, str], type] = {
    (TokenizerConfig, "vision"): VisionConfig,
    (TokenizerConfig, "qformer"): QFormerConfig,
    (TokenizerConfig, "codebook"): CodebookConfig,
    (TokenizerConfig, "decoder"): DecoderBlocksConfig,
    (TokenizerConfig, "reverse_qformer"): QFormerConfig,
}

# bert-base-uncased vocabulary + the added [DEC] token of BLIP-2's Q-Former tokenizer.
SEED1_TEXT_VOCAB = 30523
BERT_VOCAB = 30522  # bert-base-uncased

_SEED1 = TokenizerConfig()

_TINY = TokenizerConfig(
    vision=VisionConfig(
        image_size=64, patch_size=8, hidden_size=128, num_layers=4, num_heads=4, mlp_hidden_size=512, stem="conv"
    ),
    qformer=QFormerConfig(
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        intermediate_size=512,
        num_queries=32,
        causal=True,
        encoder_width=128,
    ),
    codebook=CodebookConfig(codebook_size=1024, codebook_dim=32),
    decoder=DecoderBlocksConfig(num_layers=2, num_heads=4),
    reverse_qformer=QFormerConfig(
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        intermediate_size=512,
        num_queries=32,
        causal=False,
        encoder_width=128,
    ),
    generation_dim=384,  # MiniLM-L6 token states stand in for CLIP-L's 768
)

PRESETS: dict[str, TokenizerConfig] = {
    # Paper-exact SEED-1 inference tokenizer (the released checkpoint layout).
    "seed1": _SEED1,
    # SEED-1 with the Causal Q-Former's text branch, for stage-1 training and for loading a
    # full causal_qformer.pth without dropping its text weights.
    "seed1-stage1": _SEED1.replace(qformer=dataclasses.replace(_SEED1.qformer, vocab_size=SEED1_TEXT_VOCAB)),
    "tiny": _TINY,
    # The tiny preset with a text side for stage-1 training and retrieval, as ``seed1-stage1`` is
    # to ``seed1``: BLIP-2 / SEED start the Q-Former's text branch from pretrained BERT, the tiny
    # world starts from the frozen pretrained MiniLM-L6 (its token states through a small
    # trainable head; a text branch from scratch stays at chance, docs/training.md).
    # Its codebook is the improved one (L2-normalised codes, cosine lookup, dead-code
    # re-initialisation in stage 2): in the tiny world the reference quantizer collapses to a
    # few dozen codes (docs/training.md). ``seed1`` keeps the reference quantizer.
    "tiny-stage1": _TINY.replace(
        qformer=dataclasses.replace(_TINY.qformer, text_tower="minilm"),
        codebook=dataclasses.replace(_TINY.codebook, kind="cosine"),
    ),
}
# The ablation's BLIP-2-style variant (``seedtok ablate``): the same Q-Former with its causal
# mask off, so every query sees every other (paper sec. 3.1 motivates the causal mask).
PRESETS["tiny-stage1-bidirectional"] = PRESETS["tiny-stage1"].replace(
    qformer=dataclasses.replace(PRESETS["tiny-stage1"].qformer, causal=False)
)


def get_preset(name: str) -> TokenizerConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def config_from_parity_meta(meta: Mapping[str, Any]) -> TokenizerConfig:
    """Build a config from a golden-data ``meta.json`` (format: shared/parity/README.md).

    The golden sets are the reference architecture at reduced widths, so every field not in
    ``meta.json`` keeps the reference's rule (e.g. the Reverse Q-Former shares the Causal
    Q-Former's BERT sizes; its cross-attention reads the Causal Q-Former's hidden states).
    """
    v, q, cb = meta["vit"], meta["qformer"], meta["codebook"]
    dec, rq = meta["decoder_blocks"], meta["reverse_qformer"]
    bias = {"q and v only": "qv", "qkv": "qkv", "none": "none"}.get(str(v.get("qkv_bias", "q and v only")))
    _check(bias is not None, f"meta.json: unknown vit.qkv_bias {v.get('qkv_bias')!r}")
    vision = VisionConfig(
        image_size=int(v["image_size"]),
        patch_size=int(v["patch_size"]),
        hidden_size=int(v["width"]),
        num_layers=int(v["depth"]),
        num_heads=int(v["heads"]),
        mlp_hidden_size=int(v["mlp_hidden"]),
        ln_eps=float(v.get("ln_eps", 1e-6)),
        qkv_bias=bias,
        final_norm=bool(v.get("final_norm", False)),
    )
    qformer = QFormerConfig(
        hidden_size=int(q["hidden"]),
        num_layers=int(q["layers"]),
        num_heads=int(q["heads"]),
        intermediate_size=int(q["intermediate"]),
        ln_eps=float(q.get("ln_eps", 1e-12)),
        cross_attention_every=int(q.get("cross_attention_every", 2)),
        num_queries=int(q["num_queries"]),
        causal=bool(q.get("causal", True)),
        encoder_width=vision.hidden_size,
    )
    reverse = dataclasses.replace(
        qformer,
        num_layers=int(rq["layers"]),
        num_queries=int(rq["num_queries"]),
        cross_attention_every=int(rq.get("cross_attention_every", 2)),
        causal=bool(rq.get("causal", False)),
        num_heads=int(rq.get("heads", qformer.num_heads)),
        intermediate_size=int(rq.get("intermediate", qformer.intermediate_size)),
        encoder_width=qformer.hidden_size,
    )
    return TokenizerConfig(
        vision=vision,
        ln_vision_eps=float(meta.get("ln_vision_eps", 1e-5)),
        qformer=qformer,
        codebook=CodebookConfig(codebook_size=int(cb["size"]), codebook_dim=int(cb["dim"])),
        decoder=DecoderBlocksConfig(
            num_layers=int(dec["depth"]),
            num_heads=int(dec["heads"]),
            mlp_ratio=float(dec.get("mlp_ratio", 4.0)),
            ln_eps=float(dec.get("ln_eps", 1e-6)),
        ),
        reverse_qformer=reverse,
        generation_dim=int(meta["generation_dim"]),
    )


# SEED-2 (SEED-LLaMA's tokenizer) lives in its own module; imported last because it builds on
# the classes above, and re-exported so ``seedtok.config`` stays the one place for configs.
from seedtok.config_seed2 import Seed2Config, config_from_dict, seed2_config_from_parity_meta  # noqa: E402

