"""Training and inference sequences for SEED-OPT (paper sec. 3.3 and 4.2; DESIGN.md section 1).

Three tasks, each a prompt and a target; the loss covers only the target (labels are -100 on
the prompt and on padding)::

    image -> text:  [bos] <img> c1..c32 </img> " a photo of"                 -> " caption" [eos]
    text -> image:  [bos] "Generate an image: caption"                        -> <img> c1..c32 </img> [eos]
    VQA:            [bos] <img> c1..c32 </img> " Question: {q} Short answer." -> " answer" [eos]

Text is tokenized without the tokenizer's own special tokens; ``[bos]`` is added here when the
tokenizer has one, so every tokenizer gets the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from seedtok.mllm.vocab import ImageVocab

CAPTION_PROMPT = " a photo of"
DRAW_PROMPT = "Generate an image: {text}"
VQA_PROMPT = " Question: {question} Short answer."
IGNORE_INDEX = -100
TASKS = ("caption", "draw", "vqa")


class PromptError(ValueError):
    """A prompt that cannot be built: empty question or text, or longer than the model allows."""


@dataclass(frozen=True)
class Example:
    """One sequence: ``input_ids`` and ``labels`` (-100 where no loss) of equal length."""

    input_ids: list[int]
    labels: list[int]


class SequenceBuilder:
    """Builds prompts (for inference) and examples (for training) for one tokenizer + vocab.

    ``max_length`` is the longest sequence the model accepts (prompt plus generated tokens)."""

    def __init__(self, tokenizer: Any, vocab: ImageVocab, max_length: int) -> None:
        self.tokenizer, self.vocab, self.max_length = tokenizer, vocab, max_length
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        if tokenizer.eos_token_id is None:
            raise PromptError("the tokenizer has no eos token; SEED-OPT needs one to end text")
        self.eos_id = int(tokenizer.eos_token_id)

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _check_length(self, ids: list[int], reserve: int, what: str) -> list[int]:
        if len(ids) + reserve > self.max_length:
            raise PromptError(
                f"{what} is {len(ids)} tokens; with {reserve} tokens to generate it exceeds the model's "
                f"maximum length {self.max_length}"
            )
        return ids

    # --- prompts (inference) ------------------------------------------------------------------

    def caption_prompt(self, codes: Sequence[int] | torch.Tensor, reserve: int = 1) -> list[int]:
        ids = self.bos + self.vocab.image_span(codes) + self.text_ids(CAPTION_PROMPT)
        return self._check_length(ids, reserve, "caption prompt")

    def vqa_prompt(self, codes: Sequence[int] | torch.Tensor, question: str, reserve: int = 1) -> list[int]:
        question = _nonempty(question, "question")
        ids = self.bos + self.vocab.image_span(codes) + self.text_ids(VQA_PROMPT.format(question=question))
        return self._check_length(ids, reserve, "question prompt")

    def draw_prompt(self, text: str) -> list[int]:
        """Ends with ``<img>``: the 32 image tokens and ``</img>`` are generated (constrained)."""
        text = _nonempty(text, "text")
        ids = self.bos + self.text_ids(DRAW_PROMPT.format(text=text)) + [self.vocab.img_start_id]
        return self._check_length(ids, self.vocab.num_tokens + 1, "draw prompt")

    # --- examples (training) ------------------------------------------------------------------

    def _example(self, prompt: list[int], target: list[int]) -> Example:
        ids = prompt + target
        self._check_length(ids, 0, "training sequence")
        return Example(ids, [IGNORE_INDEX] * len(prompt) + target)

    def caption_example(self, codes: Sequence[int] | torch.Tensor, caption: str) -> Example:
        target = self.text_ids(" " + _nonempty(caption, "caption")) + [self.eos_id]
        return self._example(self.caption_prompt(codes, reserve=0), target)

    def vqa_example(self, codes: Sequence[int] | torch.Tensor, question: str, answer: str) -> Example:
        target = self.text_ids(" " + _nonempty(answer, "answer")) + [self.eos_id]
        return self._example(self.vqa_prompt(codes, question, reserve=0), target)

    def draw_example(self, text: str, codes: Sequence[int] | torch.Tensor) -> Example:
        prompt = self.draw_prompt(text)[:-1]  # <img> belongs to the target during training
        return self._example(prompt, self.vocab.image_span(codes) + [self.eos_id])


def _nonempty(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"the {what} is empty")
    return text.strip()


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: ``input_ids``, ``attention_mask``, ``labels`` (B, T)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts for batched generation: ``input_ids`` and ``attention_mask`` (B, T)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    return ids, mask
