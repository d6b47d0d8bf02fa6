"""SEED-LLaMA (arXiv 2310.01218): the released 8B / 14B models that read and write SEED-2 codes,
run from a local checkpoint (transformers LLaMA layout; nothing is downloaded).

Vocabulary (read from the checkpoint's tokenizer, checked, never assumed): LLaMA's 32,000
tokens, then ``<img_00000>`` .. ``<img_08191>`` (token id = 32,000 + code in the release) and
the markers ``<img>`` / ``</img>``. An image in a prompt is ``<img>`` + 32 image tokens +
``</img>``.

Prompts, as the reference scripts build them (``scripts/seed_llama_inference_8B.py`` /
``_14B.py``; the tokenizer reads the whole string, ``add_special_tokens=False``):

- ``vicuna`` (SEED-LLaMA-8B, from Vicuna-7B):  ``<s>USER: {content}\\nASSISTANT:``
- ``llama2`` (SEED-LLaMA-14B, from LLaMA2-Chat-13B): ``<s>[INST] {content} [/INST]\\n``

``content`` is the image span followed directly by the question (captioning asks the
reference's evaluation question), or the drawing request. Drawing forces image generation as the
reference demo does (``force_boi``): the prompt ends in ``<img>``, and the constrained grammar of
:mod:`seedtok.mllm.generate` then yields exactly 32 in-range codes and ``</img>``.

The template comes from ``--template``, else ``seed_llama.json`` (``{"template": ...}``) in the
checkpoint directory, else the checkpoint's size (hidden 4096 x 32 layers: the 8B, ``vicuna``;
5120 x 40: the 14B, ``llama2``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from seedtok.mllm.generate import Sampling, generate_image_codes, generate_text
from seedtok.mllm.vocab import IMG_END, IMG_START, ImageVocab, VocabularyError, image_token_name

log = logging.getLogger(__name__)

CAPTION_QUESTION = "Please provide an accurate and concise description of the given image."
TEMPLATE_FILE = "seed_llama.json"
NUM_CODES = 8192  # SEED-2's codebook
NUM_TOKENS = 32


@dataclass(frozen=True)
class PromptTemplate:
    """``bos + prefix + content + suffix`` (one user turn, the assistant about to answer)."""

    name: str
    prefix: str
    suffix: str

    def render(self, bos: str, content: str) -> str:
        return f"{bos}{self.prefix}{content}{self.suffix}"


TEMPLATES: dict[str, PromptTemplate] = {
    "vicuna": PromptTemplate("vicuna", "USER: ", "\nASSISTANT:"),
    "llama2": PromptTemplate("llama2", "[INST] ", " [/INST]\n"),
}
# (hidden_size, num_hidden_layers) of the released checkpoints -> template
_BY_SIZE = {(4096, 32): "vicuna", (5120, 40): "llama2"}


@dataclass(frozen=True)
class MarkedImageVocab(ImageVocab):
    """An :class:`ImageVocab` whose markers have their own ids (read from the tokenizer) instead
    of following the codes; the grammar code uses it unchanged."""

    start_id: int = -1
    end_id: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        top = self.image_offset + self.codebook_size
        if min(self.start_id, self.end_id) < top or self.start_id == self.end_id:
            raise VocabularyError(f"<img>/</img> ids {self.start_id}/{self.end_id} must follow the image tokens (< {top})")

    @property
    def img_start_id(self) -> int:
        return self.start_id

    @property
    def img_end_id(self) -> int:
        return self.end_id

    @property
    def vocab_size(self) -> int:
        return max(self.start_id, self.end_id) + 1


def read_vocab(tokenizer: Any, codebook_size: int = NUM_CODES, num_tokens: int = NUM_TOKENS) -> MarkedImageVocab:
    """The image vocabulary of a SEED-LLaMA tokenizer; raises naming the first token that is
    missing or out of place."""
    unk = tokenizer.unk_token_id
    names = [image_token_name(c) for c in range(codebook_size)]
    ids = tokenizer.convert_tokens_to_ids(names)
    offset = ids[0]
    if offset is None or offset == unk:
        raise VocabularyError(f"the tokenizer has no {names[0]!r}: not a SEED-LLaMA tokenizer (pass --llm-tokenizer DIR)")
    for c, i in enumerate(ids):
        if i != offset + c:
            raise VocabularyError(f"tokenizer maps {names[c]!r} to {i}, expected {offset + c} (image tokens must be contiguous)")
    start, end = tokenizer.convert_tokens_to_ids([IMG_START, IMG_END])
    for tok, i in ((IMG_START, start), (IMG_END, end)):
        if i is None or i == unk:
            raise VocabularyError(f"the tokenizer has no {tok!r} token")
    if offset != 32000:
        log.warning("image tokens start at id %d; the released SEED-LLaMA tokenizer has them at 32000", offset)
    return MarkedImageVocab(offset, codebook_size, num_tokens, start_id=int(start), end_id=int(end))


def choose_template(path: Path, config: Any, name: str | None) -> PromptTemplate:
    """``name`` if given, else ``seed_llama.json``, else the checkpoint's size (module docstring)."""
    if name is None and (path / TEMPLATE_FILE).is_file():
        name = json.loads((path / TEMPLATE_FILE).read_text()).get("template")
    if name is None:
        name = _BY_SIZE.get((getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None)))
    if name is None:
        raise ValueError(f"{path}: cannot tell the prompt template of this checkpoint (hidden_size "
                         f"{getattr(config, 'hidden_size', '?')}, {getattr(config, 'num_hidden_layers', '?')} layers): "
                         f"pass --template {' or '.join(TEMPLATES)}, or write {TEMPLATE_FILE}")
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}; choose one of {sorted(TEMPLATES)}")
    return TEMPLATES[name]


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer, LlamaTokenizerFast

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (ValueError, OSError, KeyError, AttributeError):  # e.g. tokenizer_class "SeedLlamaTokenizer"
        try:
            return LlamaTokenizerFast.from_pretrained(path, local_files_only=True)
        except (ValueError, OSError, KeyError, AttributeError, TypeError) as exc:
            raise FileNotFoundError(f"{path}: cannot load a LLaMA tokenizer there ({exc}); pass --llm-tokenizer DIR, "
                                    "a local copy of the SEED-LLaMA tokenizer (seed-tokenizer-2)") from None


class SeedLlama:
    """A SEED-LLaMA checkpoint with its tokenizer, image vocabulary and prompt template. Same
    image-level interface as :class:`~seedtok.mllm.model.SeedLLM` (caption, answer, draw_codes)."""

    def __init__(self, model: Any, tokenizer: Any, vocab: MarkedImageVocab, template: PromptTemplate) -> None:
        self.model, self.tokenizer, self.vocab, self.template = model, tokenizer, vocab, template
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.unk_token  # as the reference tokenizer does
        rows = model.get_input_embeddings().weight.shape[0]
        if rows < vocab.vocab_size:
            raise VocabularyError(f"the model has {rows} token embeddings but the tokenizer's image vocabulary needs {vocab.vocab_size}")

    @classmethod
    def load(cls, path: str | os.PathLike, template: str | None = None, tokenizer_path: str | os.PathLike | None = None,
             dtype: str = "float32") -> "SeedLlama":
        """Load from local directories: the LLM (``config.json`` + weights) and its tokenizer
        (the LLM directory, or ``tokenizer_path``, e.g. a local seed-tokenizer-2 copy)."""
        from transformers import AutoConfig, LlamaForCausalLM

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json; not a transformers LLaMA checkpoint")
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        if config.model_type != "llama":
            raise ValueError(f"{path}: model_type {config.model_type!r}; SEED-LLaMA is a LLaMA model")
        chosen = choose_template(path, config, template)
        tokenizer = _load_tokenizer(Path(tokenizer_path) if tokenizer_path else path)
        vocab = read_vocab(tokenizer)
        model = LlamaForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), local_files_only=True,
                                                 low_cpu_mem_usage=True)
        return cls(model.eval(), tokenizer, vocab, chosen)

    # --- prompts ------------------------------------------------------------------------------
    def image_tokens(self, codes: torch.Tensor | Sequence[int]) -> str:
        codes = self.vocab.code_to_token_id(codes).flatten() - self.vocab.image_offset
        if codes.numel() != self.vocab.num_tokens:
            raise VocabularyError(f"an image has {self.vocab.num_tokens} codes, got {codes.numel()}")
        return IMG_START + "".join(image_token_name(int(c)) for c in codes) + IMG_END

    def prompt_text(self, content: str, force_image: bool = False) -> str:
        return self.template.render(self.tokenizer.bos_token or "", content) + (IMG_START if force_image else "")

    def encode_prompt(self, text: str, codes: torch.Tensor | None = None) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if codes is not None:  # the image must arrive as <img> + its 32 token ids + </img>
            span = self.vocab.image_span(codes)
            if not any(ids[i : i + len(span)] == span for i in range(len(ids) - len(span) + 1)):
                raise VocabularyError("the tokenizer did not keep the image tokens intact in the prompt")
        return ids

    # --- inference ----------------------------------------------------------------------------
    def answer_codes(self, codes: torch.Tensor, questions: Sequence[str], max_new_tokens: int = 64,
                     sampling: Sampling = Sampling()) -> list[str]:
        codes = torch.as_tensor(codes)
        if len(questions) != codes.shape[0]:
            raise ValueError(f"{codes.shape[0]} images but {len(questions)} questions")
        prompts = [self.encode_prompt(self.prompt_text(self.image_tokens(c) + q), c) for c, q in zip(codes, questions)]
        return generate_text(self.model, self.tokenizer, prompts, self.vocab, max_new_tokens, sampling)

    def caption_codes(self, codes: torch.Tensor, max_new_tokens: int = 64, sampling: Sampling = Sampling()) -> list[str]:
        codes = torch.as_tensor(codes)
        return self.answer_codes(codes, [CAPTION_QUESTION] * codes.shape[0], max_new_tokens, sampling)

    def draw_codes(self, texts: Sequence[str], sampling: Sampling = Sampling()) -> torch.Tensor:
        """B texts -> (B, 32) codes, always exactly 32 in-range codes."""
        prompts = [self.encode_prompt(self.prompt_text(t, force_image=True)) for t in texts]
        return generate_image_codes(self.model, prompts, self.vocab, self.tokenizer.pad_token_id, sampling)

    def _encode(self, image_tokenizer: Any, images: Sequence[Any]) -> torch.Tensor:
        from seedtok.api import encode_images

        cfg = getattr(image_tokenizer, "config", None)
        if getattr(cfg, "kind", None) != "seed2" or cfg.codebook.codebook_size != self.vocab.codebook_size:
            raise ValueError("SEED-LLaMA reads SEED-2 codes: pass --tokenizer DIR, a SEED-2 model from "
                             f"`seedtok convert --seed2` (codebook {self.vocab.codebook_size})")
        results = encode_images(image_tokenizer, list(images))
        bad = [r for r in results if r.error]
        if bad:
            raise ValueError(bad[0].error)
        return torch.tensor([r.ids for r in results])

    def caption(self, images: Sequence[Any], image_tokenizer: Any, **kw: Any) -> list[str]:
        return self.caption_codes(self._encode(image_tokenizer, images), **kw)

    def answer(self, images: Sequence[Any], questions: Sequence[str], image_tokenizer: Any, **kw: Any) -> list[str]:
        return self.answer_codes(self._encode(image_tokenizer, images), questions, **kw)


def is_seed_llama_dir(path: str | os.PathLike) -> bool:
    """A transformers checkpoint that is not a seedtok SEED-OPT directory (no ``seed_llm.json``)."""
    p = Path(path)
    return (p / "config.json").is_file() and not (p / "seed_llm.json").is_file()


def load_llm(path: str | os.PathLike, template: str | None = None, tokenizer_path: str | None = None,
             dtype: str = "float32") -> Any:
    """A seedtok SEED-OPT directory (:class:`SeedLLM`) or a SEED-LLaMA checkpoint (:class:`SeedLlama`)."""
    if is_seed_llama_dir(path):
        return SeedLlama.load(path, template, tokenizer_path, dtype)
    from seedtok.mllm.model import SeedLLM

    return SeedLLM.load(path)
