"""Generation for SEED-OPT: text (captions, answers) and constrained image tokens (paper sec.
3.3: the LLM "generates" an image as 32 SEED tokens that the de-tokenizer renders).

Both run through ``model.generate`` (KV cache, greedy or sampling) with a logits processor that
enforces the grammar, so a malformed sequence cannot occur:

- image mode: the prompt ends with ``<img>``; steps 1..num_tokens may only be image tokens
  ``[image_offset, image_offset + codebook_size)``, step num_tokens+1 must be ``</img>``, and
  generation stops there (``max_new_tokens = num_tokens + 1``);
- text mode: image tokens and markers are forbidden; generation stops at eos or
  ``max_new_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from seedtok.mllm.sequences import left_pad
from seedtok.mllm.vocab import ImageVocab, VocabularyError


@dataclass(frozen=True)
class Sampling:
    """Greedy when ``temperature == 0``; otherwise sampling with temperature / top-k / top-p
    from a generator seeded with ``seed``."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature <= 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_k": self.top_k or None, "top_p": self.top_p}


class ImageGrammar:
    """Logits processor for image mode (see module docstring). ``prompt_len`` is the padded
    prompt width, so the step index is ``input_ids.shape[1] - prompt_len``."""

    def __init__(self, vocab: ImageVocab, prompt_len: int) -> None:
        self.vocab, self.prompt_len = vocab, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        if step < self.vocab.num_tokens:
            allowed[self.vocab.image_offset : self.vocab.image_offset + self.vocab.codebook_size] = True
        else:
            allowed[self.vocab.img_end_id] = True
        return scores.masked_fill(~allowed, float("-inf"))


class TextGrammar:
    """Logits processor for text mode: no image tokens, no markers."""

    def __init__(self, vocab: ImageVocab) -> None:
        self.vocab = vocab

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, self.vocab.image_offset : self.vocab.vocab_size] = float("-inf")
        return scores


def _run(model: Any, prompts: Sequence[list[int]], pad_id: int, eos_id: int, max_new: int, processor: Any, sampling: Sampling) -> torch.Tensor:
    from transformers import LogitsProcessorList

    ids, mask = left_pad(prompts, pad_id)
    ids, mask = ids.to(model.device), mask.to(model.device)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(sampling.seed)
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=0,
            logits_processor=LogitsProcessorList([processor]), eos_token_id=eos_id, pad_token_id=pad_id,
            use_cache=True, **sampling.generate_kwargs(),
        )
    return out[:, ids.shape[1] :].cpu()


def generate_image_codes(
    model: Any, prompts: Sequence[list[int]], vocab: ImageVocab, pad_id: int, sampling: Sampling = Sampling()
) -> torch.Tensor:
    """Prompts ending in ``<img>`` -> codes (B, num_tokens), always in range."""
    width = max(len(p) for p in prompts)
    if any(p[-1] != vocab.img_start_id for p in prompts):
        raise VocabularyError("an image prompt must end with <img>")
    new = _run(model, prompts, pad_id, vocab.img_end_id, vocab.num_tokens + 1, ImageGrammar(vocab, width), sampling)
    if new.shape[1] != vocab.num_tokens + 1 or not (new[:, -1] == vocab.img_end_id).all():
        raise RuntimeError(f"constrained decoding broke its grammar: {new.tolist()}")  # cannot happen
    return vocab.token_id_to_code(new[:, : vocab.num_tokens])


def generate_text(
    model: Any, tokenizer: Any, prompts: Sequence[list[int]], vocab: ImageVocab, max_new_tokens: int = 48,
    sampling: Sampling = Sampling(),
) -> list[str]:
    """Prompts -> generated text (up to eos), decoded without special tokens."""
    eos = tokenizer.eos_token_id
    new = _run(model, prompts, tokenizer.pad_token_id, eos, max_new_tokens, TextGrammar(vocab), sampling)
    texts = []
    for row in new.tolist():
        row = row[: row.index(eos)] if eos in row else row
        texts.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts
