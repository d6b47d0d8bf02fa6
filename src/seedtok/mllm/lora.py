"""LoRA on a frozen LLM with trainable image-token rows (paper sec. 3.3: "we fine-tune OPT with
LoRA"; DESIGN.md section 1). The paper leaves rank, alpha and targets unstated; our defaults are
r=16, alpha=32, dropout 0.05 on every attention and MLP projection.

Freezing policy: every base weight is frozen; LoRA A/B matrices and the rows of the added
tokens (``ImageVocab.new_token_ids``) train. The new rows use peft's ``trainable_token_indices``
(a delta on just those rows, saved with the adapter and folded in by :func:`merge_lora`); an
LM head tied to the input embedding shares the delta, an untied head gets its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from seedtok.mllm.vocab import ImageVocab

log = logging.getLogger(__name__)

# Attention and MLP projections by architecture (transformers module names).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters. ``target_modules=()`` picks :data:`DEFAULT_TARGETS` by the
    model's ``config.model_type``."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = field(default_factory=tuple)

    def targets_for(self, model: nn.Module) -> list[str]:
        if self.target_modules:
            return list(self.target_modules)
        kind = getattr(getattr(model, "config", None), "model_type", "")
        if kind not in DEFAULT_TARGETS:
            raise ValueError(f"no default LoRA targets for model_type {kind!r}; pass target_modules")
        return list(DEFAULT_TARGETS[kind])


def _module_name(model: nn.Module, module: nn.Module | None) -> str | None:
    for name, m in model.named_modules():
        if m is module:
            return name
    return None


def _token_targets(model: nn.Module, vocab: ImageVocab) -> dict[str, list[int]]:
    """Which modules get trainable rows: the input embedding, plus an untied LM head."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    rows = vocab.new_token_ids
    targets = {_module_name(model, emb): rows}
    if head is not None and head.weight is not emb.weight:
        targets[_module_name(model, head)] = rows
    return targets


def apply_lora(model: nn.Module, vocab: ImageVocab, settings: LoraSettings = LoraSettings()) -> nn.Module:
    """Freeze ``model`` (vocabulary already extended) and wrap it with peft LoRA plus trainable
    new-token rows. Returns the ``PeftModel``."""
    from peft import LoraConfig, get_peft_model

    if model.get_input_embeddings().num_embeddings < vocab.vocab_size:
        raise ValueError("extend the vocabulary (extend_vocabulary) before applying LoRA")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.targets_for(model),
        trainable_token_indices=_token_targets(model, vocab),
        task_type="CAUSAL_LM",
    )
    model.requires_grad_(False)
    peft_model = get_peft_model(model, config)
    n_train = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in peft_model.parameters())
    log.info("LoRA r=%d alpha=%d: %s trainable of %s parameters", settings.r, settings.alpha, f"{n_train:,}", f"{n_all:,}")
    return peft_model


def merge_lora(peft_model: nn.Module) -> nn.Module:
    """Fold LoRA and the new-token deltas into the base weights; returns the plain model
    (same outputs, no adapter overhead: the deployment form)."""
    merged = peft_model.merge_and_unload()
    merged.requires_grad_(False)
    return merged


def count_parameters(model: nn.Module) -> dict[str, int]:
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": train, "total": sum(p.numel() for p in model.parameters())}
