"""SEED-OPT: a causal LLM that reads and writes SEED image tokens (paper sec. 3.3; DESIGN.md
sections 1 and 3). Heavy dependencies (transformers, peft) load on first use of a submodule."""

from seedtok.mllm.generate import Sampling
from seedtok.mllm.lora import LoraSettings, apply_lora, merge_lora
from seedtok.mllm.model import SeedLLM
from seedtok.mllm.sequences import PromptError, SequenceBuilder
from seedtok.mllm.vocab import IMG_END, IMG_START, ImageVocab, VocabularyError, extend_vocabulary, image_token_name

__all__ = [
    "Sampling", "LoraSettings", "apply_lora", "merge_lora", "SeedLLM", "PromptError", "SequenceBuilder",
    "IMG_END", "IMG_START", "ImageVocab", "VocabularyError", "extend_vocabulary", "image_token_name",
]  # fmt: skip
