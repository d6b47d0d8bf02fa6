"""Shared fixtures for the training tests: a micro preset and a synthetic image-caption world."""

from __future__ import annotations

import dataclasses

import torch

from seedtok.config import CodebookConfig, DecoderBlocksConfig, QFormerConfig, TokenizerConfig, VisionConfig
from seedtok.train.data import ImageTextSet

COLORS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "white": (1.0, 1.0, 1.0)}
PLACES = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}


def micro_config(kind: str = "reference", vocab_size: int = 30522) -> TokenizerConfig:
    return TokenizerConfig(
        vision=VisionConfig(image_size=16, patch_size=8, hidden_size=32, num_layers=1, num_heads=2, mlp_hidden_size=64),
        qformer=QFormerConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, num_queries=8,
                              encoder_width=32, vocab_size=vocab_size, max_text_len=32, proj_dim=16),
        codebook=CodebookConfig(codebook_size=64, codebook_dim=8, kind=kind),
        decoder=DecoderBlocksConfig(num_layers=1, num_heads=2),
        reverse_qformer=QFormerConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, num_queries=6,
                                      causal=False, encoder_width=32),
        generation_dim=12,
    )


def blocks_world(n: int, size: int = 16, seed: int = 0) -> ImageTextSet:
    """n images of one coloured block in one quadrant; caption '<colour> block at <place>'."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.full((n, 3, size, size), -0.5)
    captions, keys = [], []
    colors, places = list(COLORS), list(PLACES)
    for i in range(n):  # every (colour, place) pair once per 16 samples
        c, p = colors[i % 4], places[(i // 4) % 4]
        r, q = PLACES[p]
        h = size // 2
        pixels[i, :, r * h : (r + 1) * h, q * h : (q + 1) * h] = torch.tensor(COLORS[c])[:, None, None]
        captions.append(f"a {c} block at the {p}")
        keys.append(f"{i:05d}")
    return ImageTextSet(pixels + 0.05 * torch.randn(pixels.shape, generator=g), captions, keys, [None] * n)


def shapes_world_with_encoder(root, num: int, shard_size: int | None = None):
    """A shapes world of ``num`` samples under ``root/shapes`` and a random tiny stand-in ViT at
    ``root/enc.safetensors`` (the CLI tests' world)."""
    from safetensors.torch import save_file

    from seedtok.config import get_preset
    from seedtok.data.shapes import write_shapes_dataset
    from seedtok.models import SeedTokenizer

    write_shapes_dataset(root / "shapes", num, 0, **({} if shard_size is None else {"shard_size": shard_size}))
    torch.manual_seed(0)
    vision = SeedTokenizer(get_preset("tiny")).vision
    save_file({f"vision.{k}": v.contiguous() for k, v in vision.state_dict().items()}, str(root / "enc.safetensors"))
    return root


def run_train_cli(*argv: str) -> int:
    """``seedtok -q train ARGV --threads 1``, restoring torch's thread count afterwards."""
    from seedtok.cli import main

    old = torch.get_num_threads()
    try:
        return main(["-q", "train", *argv, "--threads", "1"])
    finally:
        torch.set_num_threads(old)
