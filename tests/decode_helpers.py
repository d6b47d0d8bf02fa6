"""Tiny random Stable Diffusion components built from small configs, as diffusers' own fast
tests build them (no downloads): a 2-level UNet with cross-attention width 32, a 2-level VAE,
a 2-layer CLIP text encoder and a CLIP BPE tokenizer over a letters-only vocabulary."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

CROSS_DIM = 32
TEXT_LEN = 77


def write_clip_tokenizer(folder: Path) -> Path:
    """A CLIPTokenizer vocabulary: the two specials plus single letters (word-final or not)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(string.ascii_lowercase) + [c + "</w>" for c in string.ascii_lowercase]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=TEXT_LEN)


def dummy_sd(folder: Path):
    """(unet, vae, text_encoder, tokenizer, scheduler) with seeded random weights."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CROSS_DIM, norm_num_groups=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    tok = clip_tokenizer(folder / "tokenizer-src")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=CROSS_DIM, intermediate_size=37,
            num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=TEXT_LEN,
        )
    ).eval()  # fmt: skip
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    return unet, vae, text_encoder, tok, scheduler


def save_dummy_sd_dir(folder: Path) -> Path:
    """The dummy components saved in diffusers layout under ``folder/sd``."""
    unet, vae, text_encoder, tok, scheduler = dummy_sd(folder)
    root = folder / "sd"
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    text_encoder.save_pretrained(root / "text_encoder")
    tok.save_pretrained(root / "tokenizer")
    scheduler.save_pretrained(root / "scheduler")
    return root
