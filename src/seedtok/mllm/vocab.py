"""Image tokens in an LLM's vocabulary (paper sec. 3.3, "Multimodal autoregression").

SEED-OPT appends ``codebook_size`` image tokens ``<img_00000>`` ... and the markers ``<img>`` /
``</img>`` to the LLM's vocabulary (the naming follows the reference's SEED-LLaMA code). An image
inside text is ``<img>`` + ``num_tokens`` image tokens + ``</img>``.

The code <-> token-id mapping is one contiguous block, added in this order::

    image_offset + c   <->   code c  (0 <= c < codebook_size),   name  f"<img_{c:05d}>"
    img_start_id = image_offset + codebook_size   ("<img>")
    img_end_id   = image_offset + codebook_size + 1   ("</img>")

``image_offset`` is the tokenizer length before extension. :func:`extend_vocabulary` adds the
tokens in that order, checks that the tokenizer assigned exactly those ids, and resizes the
model's input embeddings (and LM head) to match. Paper: "a fully-connected layer projects the
codes into OPT's word-embedding space" — the new embedding rows are that map applied to one-hot
codes; the new LM-head rows let the LLM emit codes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

IMG_START = "<img>"
IMG_END = "</img>"


class VocabularyError(ValueError):
    """An id, token or tokenizer that does not fit the image vocabulary."""


def image_token_name(code: int) -> str:
    """``<img_00042>`` for code 42 (five digits cover SEED-1's 8192 codes)."""
    return f"<img_{code:05d}>"


@dataclass(frozen=True)
class ImageVocab:
    """Where the image tokens live in the extended vocabulary (see module docstring)."""

    image_offset: int
    codebook_size: int
    num_tokens: int = 32

    def __post_init__(self) -> None:
        if self.image_offset < 1 or self.codebook_size < 1 or self.num_tokens < 1:
            raise VocabularyError(f"invalid image vocabulary {self}")

    @property
    def img_start_id(self) -> int:
        return self.image_offset + self.codebook_size

    @property
    def img_end_id(self) -> int:
        return self.image_offset + self.codebook_size + 1

    @property
    def vocab_size(self) -> int:
        """Size of the extended vocabulary."""
        return self.image_offset + self.codebook_size + 2

    @property
    def new_token_ids(self) -> list[int]:
        """Every added id (image tokens and both markers): the trainable rows."""
        return list(range(self.image_offset, self.vocab_size))

    def code_to_token_id(self, codes: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Codes (any shape) -> token ids. Raises :class:`VocabularyError` for a code outside
        ``[0, codebook_size)``."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            bad = codes[(codes < 0) | (codes >= self.codebook_size)][0].item()
            raise VocabularyError(f"image code {bad} is outside the codebook [0, {self.codebook_size})")
        return codes + self.image_offset

    def token_id_to_code(self, token_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Token ids (any shape) -> codes. Raises for an id that is not an image token."""
        ids = torch.as_tensor(token_ids, dtype=torch.long)
        if ids.numel() and not self.is_image_token(ids).all():
            bad = ids[~self.is_image_token(ids)][0].item()
            raise VocabularyError(f"token id {bad} is not an image token")
        return ids - self.image_offset

    def is_image_token(self, token_ids: torch.Tensor) -> torch.Tensor:
        return (token_ids >= self.image_offset) & (token_ids < self.image_offset + self.codebook_size)

    def image_span(self, codes: torch.Tensor | Sequence[int]) -> list[int]:
        """``<img>`` + ``num_tokens`` image-token ids + ``</img>`` for one image's codes."""
        codes = torch.as_tensor(codes, dtype=torch.long).flatten()
        if codes.numel() != self.num_tokens:
            raise VocabularyError(f"an image has {self.num_tokens} codes, got {codes.numel()}")
        return [self.img_start_id, *self.code_to_token_id(codes).tolist(), self.img_end_id]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageVocab":
        return cls(int(data["image_offset"]), int(data["codebook_size"]), int(data.get("num_tokens", 32)))


def check_tokenizer(tokenizer: Any, vocab: ImageVocab) -> None:
    """Assert that ``tokenizer`` maps every image-token name and marker to its documented id."""
    names = [image_token_name(c) for c in range(vocab.codebook_size)] + [IMG_START, IMG_END]
    got = tokenizer.convert_tokens_to_ids(names)
    want = list(range(vocab.image_offset, vocab.vocab_size))
    if got != want:
        first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        raise VocabularyError(f"tokenizer maps {names[first]!r} to {got[first]}, expected {want[first]}")


def extend_vocabulary(model: Any, tokenizer: Any, codebook_size: int, num_tokens: int = 32) -> ImageVocab:
    """Add the image tokens and markers to ``tokenizer`` and resize ``model``'s embeddings (any
    Hugging Face causal LM). Returns the id mapping. The model's existing rows are unchanged;
    new rows get transformers' default initialisation (mean of the old rows plus noise)."""
    offset = len(tokenizer)
    if any(t in tokenizer.get_vocab() for t in (IMG_START, image_token_name(0))):
        raise VocabularyError("tokenizer already has image tokens; load its ImageVocab instead of extending twice")
    names = [image_token_name(c) for c in range(codebook_size)] + [IMG_START, IMG_END]
    tokenizer.add_tokens(names, special_tokens=True)
    vocab = ImageVocab(offset, codebook_size, num_tokens)
    check_tokenizer(tokenizer, vocab)
    model.resize_token_embeddings(vocab.vocab_size, mean_resizing=False)
    _init_new_rows(model, vocab)
    return vocab


@torch.no_grad()
def _init_new_rows(model: Any, vocab: ImageVocab) -> None:
    """New rows ~ N(mean of old rows, their per-dimension std): on the scale of the text
    embeddings, but distinct so image codes start distinguishable (cheaper than transformers'
    full-covariance init for an 8192-row block)."""
    layers = [model.get_input_embeddings(), model.get_output_embeddings()]
    seen: set[int] = set()
    for layer in layers:
        if layer is None or id(layer.weight) in seen:
            continue
        seen.add(id(layer.weight))
        w = layer.weight
        old = w[: vocab.image_offset]
        gen = torch.Generator().manual_seed(vocab.codebook_size)
        noise = torch.randn(vocab.vocab_size - vocab.image_offset, w.shape[1], generator=gen)
        w[vocab.image_offset :] = (old.mean(0) + noise * old.std(0)).to(w.dtype)
