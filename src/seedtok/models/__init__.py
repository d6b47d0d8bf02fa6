"""Pure nn.Modules: no file I/O, no network, no torch.distributed."""

from seedtok.models.qformer import QFormer
from seedtok.models.quantizer import QuantizerOutput, TokenIdError, VectorQuantizer
from seedtok.models.tokenizer import SeedTokenizer, TokenizerOutput
from seedtok.models.vit import VisionTransformer

__all__ = [
    "QFormer",
    "QuantizerOutput",
    "SeedTokenizer",
    "TokenIdError",
    "TokenizerOutput",
    "VectorQuantizer",
    "VisionTransformer",
]
