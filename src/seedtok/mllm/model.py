"""SEED-OPT: an LLM that reads and writes SEED image tokens (paper sec. 3.3 and 4.2).

:class:`SeedLLM` bundles the (LoRA-wrapped or merged) causal LM, its extended tokenizer and the
:class:`~seedtok.mllm.vocab.ImageVocab`. Its ``*_codes`` methods work on image codes; the
image-level ``caption`` / ``answer`` / ``draw`` take a :class:`~seedtok.models.SeedTokenizer`
to encode pixels and a renderer (the de-tokenizer, any callable codes -> images) to draw.

Saved layout (``save``): ``seed_llm.json`` (vocab, base model, LoRA settings, merged flag), the
extended tokenizer, and either the peft adapter (``adapter_model.safetensors``: LoRA matrices
and the new-token rows; the frozen base is referenced, not copied) or, after ``merge``, the
full merged model.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from seedtok.mllm.generate import Sampling, generate_image_codes, generate_text
from seedtok.mllm.lora import LoraSettings, apply_lora, merge_lora
from seedtok.mllm.sequences import SequenceBuilder
from seedtok.mllm.standin import load_causal_lm
from seedtok.mllm.vocab import ImageVocab, check_tokenizer, extend_vocabulary
from seedtok.fileio import atomic_write_json, checksum_files, verify_checksums

log = logging.getLogger(__name__)
META = "seed_llm.json"


class SeedLLM:
    """A causal LM with SEED image tokens. Build with :meth:`from_base` (fresh LoRA) or
    :meth:`load` (a saved adapter or merged model)."""

    def __init__(self, model: Any, tokenizer: Any, vocab: ImageVocab, base: str | None, lora: LoraSettings, merged: bool) -> None:
        self.model, self.tokenizer, self.vocab = model, tokenizer, vocab
        self.base, self.lora, self.merged = base, lora, merged
        max_len = getattr(model.config, "max_position_embeddings", None) or 2048
        self.builder = SequenceBuilder(tokenizer, vocab, int(max_len))

    @classmethod
    def from_base(
        cls, base: str | os.PathLike | None, codebook_size: int, num_tokens: int = 32,
        lora: LoraSettings = LoraSettings(), gguf_file: str | None = None, finetune: str = "lora",
    ) -> "SeedLLM":
        """Load a pretrained causal LM (``None``: the shipped stand-in), extend its vocabulary
        and wrap it with LoRA + trainable new-token rows (``finetune="lora"``), or leave every
        weight trainable (``finetune="full"``; saved like a merged model, the full weights)."""
        if finetune not in ("lora", "full"):
            raise ValueError(f"finetune must be 'lora' or 'full', not {finetune!r}")
        model, tokenizer = load_causal_lm(base, gguf_file)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        vocab = extend_vocabulary(model, tokenizer, codebook_size, num_tokens)
        base_ref = None if base is None else str(base) + (f"::{gguf_file}" if gguf_file else "")
        if finetune == "full":
            model.requires_grad_(True)
            return cls(model, tokenizer, vocab, base_ref, lora, merged=True)
        return cls(apply_lora(model, vocab, lora), tokenizer, vocab, base_ref, lora, merged=False)

    # --- code-level inference -----------------------------------------------------------------

    def caption_codes(self, codes: torch.Tensor, max_new_tokens: int = 48, sampling: Sampling = Sampling()) -> list[str]:
        """(B, num_tokens) codes -> captions."""
        prompts = [self.builder.caption_prompt(c, reserve=max_new_tokens) for c in torch.as_tensor(codes)]
        return generate_text(self.model, self.tokenizer, prompts, self.vocab, max_new_tokens, sampling)

    def answer_codes(self, codes: torch.Tensor, questions: Sequence[str], max_new_tokens: int = 8, sampling: Sampling = Sampling()) -> list[str]:
        """(B, num_tokens) codes and B questions -> short answers."""
        codes = torch.as_tensor(codes)
        if len(questions) != codes.shape[0]:
            raise ValueError(f"{codes.shape[0]} images but {len(questions)} questions")
        prompts = [self.builder.vqa_prompt(c, q, reserve=max_new_tokens) for c, q in zip(codes, questions)]
        return generate_text(self.model, self.tokenizer, prompts, self.vocab, max_new_tokens, sampling)

    def draw_codes(self, texts: Sequence[str], sampling: Sampling = Sampling()) -> torch.Tensor:
        """B texts -> (B, num_tokens) codes (exactly num_tokens, all in the codebook)."""
        prompts = [self.builder.draw_prompt(t) for t in texts]
        return generate_image_codes(self.model, prompts, self.vocab, self.tokenizer.pad_token_id, sampling)

    # --- image-level inference ----------------------------------------------------------------

    def _encode(self, image_tokenizer: Any, images: Sequence[Any]) -> torch.Tensor:
        from seedtok.api import encode_images

        results = encode_images(image_tokenizer, list(images))
        bad = [r for r in results if r.error]
        if bad:
            raise ValueError(bad[0].error)
        return torch.tensor([r.ids for r in results])

    def caption(self, images: Sequence[Any], image_tokenizer: Any, **kw: Any) -> list[str]:
        return self.caption_codes(self._encode(image_tokenizer, images), **kw)

    def answer(self, images: Sequence[Any], questions: Sequence[str], image_tokenizer: Any, **kw: Any) -> list[str]:
        return self.answer_codes(self._encode(image_tokenizer, images), questions, **kw)

    def draw(self, texts: Sequence[str], render: Callable[[torch.Tensor], Any], sampling: Sampling = Sampling()) -> Any:
        """Texts -> images: constrained codes, then ``render(codes)`` (the de-tokenizer)."""
        return render(self.draw_codes(texts, sampling))

    # --- persistence --------------------------------------------------------------------------

    def merge(self) -> "SeedLLM":
        """The deployment form: LoRA and token rows folded into the weights (same outputs)."""
        if self.merged:
            return self
        return SeedLLM(merge_lora(self.model).eval(), self.tokenizer, self.vocab, self.base, self.lora, merged=True)

    def save(self, directory: str | os.PathLike) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        meta = {"vocab": json.loads(self.vocab.to_json()), "base": self.base, "lora": asdict(self.lora), "merged": self.merged,
                "sha256": checksum_files(out)}  # verified on load: a truncated/tampered file is refused
        atomic_write_json(out / META, meta)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike, base: str | os.PathLike | None = None) -> "SeedLLM":
        """Load what :meth:`save` wrote. ``base`` overrides the recorded base-model path."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(directory)
        if not (path / META).is_file():
            raise FileNotFoundError(f"{path}: no {META}; not a SEED-LLM directory")
        meta = json.loads((path / META).read_text())
        verify_checksums(path, meta.get("sha256", {}))
        vocab = ImageVocab.from_dict(meta["vocab"])
        lora = LoraSettings(**{**meta["lora"], "target_modules": tuple(meta["lora"]["target_modules"])})
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        check_tokenizer(tokenizer, vocab)
        if meta["merged"]:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
            return cls(model.eval(), tokenizer, vocab, meta["base"], lora, merged=True)
        base_ref = str(base) if base is not None else meta["base"]
        base_path, _, gguf = (base_ref or "").partition("::")
        model, _ = load_causal_lm(base_path or None, gguf or None)
        model.resize_token_embeddings(vocab.vocab_size, mean_resizing=False)
        model = PeftModel.from_pretrained(model, path, is_trainable=False)
        return cls(model.eval(), tokenizer, vocab, base_ref, lora, merged=False)
