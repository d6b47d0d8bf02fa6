"""Tiny random SEED-2 pieces for plumbing tests (no downloads): a small Seed2Config, and Stable
unCLIP components built from small configs as diffusers' own fast tests build them."""

from __future__ import annotations

from pathlib import Path

import torch

from decode_helpers import clip_tokenizer
from seedtok.config import (CodebookConfig, DecoderBlocksConfig, QFormerConfig, Seed2Config, VisionConfig)

EMBED_DIM = 32  # the tiny unCLIP image-embedding width (1024 at full size)
TEXT_DIM = 32

TINY_SEED2 = Seed2Config(
    vision=VisionConfig(image_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=4, mlp_hidden_size=64),
    qformer=QFormerConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, num_queries=32, encoder_width=32),
    codebook=CodebookConfig(codebook_size=8192, codebook_dim=8),  # SEED-LLaMA reads 8192 codes
    decoder=DecoderBlocksConfig(num_layers=1, num_heads=4),
    down_dims=(16, 8, 4),
    image_embed_dim=EMBED_DIM,
)


def tiny_seed2(seed: int = 0):
    from seedtok.models.seed2 import Seed2Tokenizer

    torch.manual_seed(seed)
    return Seed2Tokenizer(TINY_SEED2).eval()


def dummy_unclip(folder: Path):
    """A StableUnCLIPImg2ImgPipeline of seeded random tiny components (image encoder included,
    so the stock pipeline can run)."""
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline,
                           UNet2DConditionModel)
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    torch.manual_seed(0)
    tok = clip_tokenizer(folder / "tokenizer-src")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=TEXT_DIM, intermediate_size=37, projection_dim=32,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=77)).eval()
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=EMBED_DIM, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        intermediate_size=37, patch_size=4)).eval()
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM, norm_num_groups=2, attention_head_dim=(2, 4), class_embed_type="projection",
        projection_class_embeddings_input_dim=EMBED_DIM * 2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=EMBED_DIM)
    with torch.no_grad():
        normalizer.mean.normal_(0, 0.1)
        normalizer.std.uniform_(0.5, 1.5)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        image_normalizer=normalizer, image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tok, text_encoder=text_encoder, unet=unet,
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1),
        vae=vae,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_dummy_unclip_dir(folder: Path) -> Path:
    pipe = dummy_unclip(folder)
    root = folder / "unclip"
    pipe.save_pretrained(root, safe_serialization=True)
    return root


WORDS = ("a an the cat dog photo of on in with grass green red blue picture image animal what is this "
         "please provide accurate and concise description given generate can you make wear sunglasses").split()


def save_tiny_seed_llama(folder: Path, seed: int = 0) -> Path:
    """A tiny random LLaMA with SEED-LLaMA's vocabulary layout: 32,000 text tokens (ids 0/1/2 =
    <unk>/<s>/</s> as in LLaMA), then <img_00000>..<img_08191> at 32,000 + code, then <img>, </img>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in WORDS + ["?", ".", ":", "USER", "ASSISTANT", "[INST]", "[/INST]"]:
        vocab.setdefault("\u2581" + w, len(vocab))
        vocab.setdefault(w, len(vocab))
    while len(vocab) < 32000:
        vocab[f"<filler_{len(vocab)}>"] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok = LlamaTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.add_tokens([f"<img_{c:05d}>" for c in range(8192)], special_tokens=True)
    tok.add_tokens(["<img>", "</img>"], special_tokens=True)
    assert len(tok) == 40194
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False))
    root = folder / "seed-llama-tiny"
    model.save_pretrained(root)
    tok.save_pretrained(root)
    return root
