"""seedtok: SEED image tokenizer (arXiv 2307.08041), trainable and tested."""

from seedtok.config import PRESETS, TokenizerConfig, get_preset

__version__ = "0.1.0"

__all__ = ["PRESETS", "TokenizerConfig", "get_preset", "__version__"]
