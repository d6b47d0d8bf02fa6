"""De-tokenizer plumbing on tiny dummy Stable Diffusion components (paper sec. 3.1: generation
embeddings replace the text encoder's states; CFG against the empty prompt)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from decode_helpers import CROSS_DIM, TEXT_LEN, dummy_sd, save_dummy_sd_dir
from seedtok.config import get_preset
from seedtok.decode import DecodeError, DecoderLoadError, SeedDetokenizer, load_detokenizer
from seedtok.decode.sd import SD_DEFAULTS, empty_prompt_states
from seedtok.models import SeedTokenizer

STEPS = 2


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return save_dummy_sd_dir(tmp_path_factory.mktemp("dummy-sd"))


@pytest.fixture(scope="module")
def tokenizer():
    """The tiny tokenizer re-sized to emit the dummy SD's (77, 32) text-state shape."""
    tiny = get_preset("tiny")
    config = tiny.replace(reverse_qformer=dataclasses.replace(tiny.reverse_qformer, num_queries=TEXT_LEN), generation_dim=CROSS_DIM)
    torch.manual_seed(0)
    return SeedTokenizer(config).eval()


@pytest.fixture(scope="module")
def decoder(sd_dir, tokenizer) -> SeedDetokenizer:
    dec = load_detokenizer(sd_dir, tokenizer=tokenizer)
    dec.set_progress_bar_config(disable=True)
    return dec


def embeds(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, TEXT_LEN, CROSS_DIM, generator=torch.Generator().manual_seed(seed))


def run(dec, e, **kw):
    kw = {"num_inference_steps": STEPS, "height": 32, "width": 32, "scheduler": "ddim", **kw}
    return dec(embeds=e, **kw)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "pndm"])
def test_requested_size(decoder, scheduler):
    out = run(decoder, embeds(), height=32, width=48, scheduler=scheduler)
    assert out.pixels.shape == (2, 3, 32, 48)
    assert [im.size for im in out.images] == [(48, 32), (48, 32)]
    assert 0.0 <= float(out.pixels.min()) and float(out.pixels.max()) <= 1.0


def test_same_seed_identical_different_seeds_differ(decoder):
    e = embeds()
    a, b = run(decoder, e, seed=7).pixels, run(decoder, e, seed=7).pixels
    c = run(decoder, e, seed=8).pixels
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_guidance_one_equals_unguided_path(decoder):
    """g = 1.0 goes through the plain conditional path; the CFG formula with g = 1 must give
    the same image, and g = 7.5 a different one."""
    e = embeds()
    plain = run(decoder, e, guidance_scale=1.0, seed=3).pixels
    cfg_at_one = decoder.denoise(e, decoder.uncond, 1.0, STEPS, 32, 32, 3, "ddim")
    guided = run(decoder, e, guidance_scale=7.5, seed=3).pixels
    torch.testing.assert_close(plain, cfg_at_one, atol=1e-5, rtol=0)
    assert (plain - guided).abs().max() > 1e-3


def test_batch_equals_one_by_one(decoder):
    e = embeds(2)
    both = run(decoder, e, seed=11).pixels
    first = run(decoder, e[:1], seed=11).pixels
    second = run(decoder, e[1:], seed=12).pixels
    torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-5, rtol=0)


def test_ids_path_and_bad_ids(decoder, tokenizer):
    ids = torch.randint(0, tokenizer.config.codebook.codebook_size, (1, 32), generator=torch.Generator().manual_seed(0))
    out = decoder(ids=ids, num_inference_steps=1, height=32, width=32, scheduler="ddim")
    assert out.pixels.shape == (1, 3, 32, 32)
    torch.testing.assert_close(decoder.embeddings_from_ids(ids), tokenizer.decode_ids(ids))
    with pytest.raises(DecodeError, match=r"shape \(B, 32\)"):
        decoder(ids=ids[:, :31])
    with pytest.raises(DecodeError, match="out of range"):
        decoder(ids=torch.full((1, 32), tokenizer.config.codebook.codebook_size))
    with pytest.raises(DecodeError, match="out of range"):
        decoder(ids=-torch.ones(1, 32, dtype=torch.long))
    with pytest.raises(DecodeError, match="integers"):
        decoder(ids=torch.zeros(1, 32))


def test_bad_embeddings_and_options(decoder):
    with pytest.raises(DecodeError, match=r"shape \(B, 77, 32\)"):
        decoder(embeds=torch.randn(1, 32, 384))
    with pytest.raises(DecodeError, match="NaN"):
        decoder(embeds=torch.full((1, TEXT_LEN, CROSS_DIM), float("nan")))
    with pytest.raises(DecodeError, match="exactly one"):
        decoder()
    with pytest.raises(DecodeError, match="multiples of 4"):
        run(decoder, embeds(1), height=30)
    with pytest.raises(DecodeError, match="unknown scheduler"):
        run(decoder, embeds(1), scheduler="euler-a")


def test_ids_need_a_tokenizer(sd_dir):
    dec = load_detokenizer(sd_dir)
    with pytest.raises(DecodeError, match="tokenizer"):
        dec(ids=[[0] * 32])


def test_uncond_is_clip_states_of_empty_prompt(decoder, tmp_path):
    _, _, text_encoder, tok, _ = dummy_sd(tmp_path)
    torch.testing.assert_close(decoder.uncond, empty_prompt_states(text_encoder, tok))
    assert decoder.uncond.shape == (1, TEXT_LEN, CROSS_DIM)


def test_sd_defaults_are_the_reference_demo():
    assert (SD_DEFAULTS.num_inference_steps, SD_DEFAULTS.guidance_scale) == (50, 7.5)
    assert (SD_DEFAULTS.height, SD_DEFAULTS.width, SD_DEFAULTS.seed) == (512, 512, 42)


def test_progress_bar_can_be_disabled(decoder, capsys):
    run(decoder, embeds(1))
    assert "denoise" not in capsys.readouterr().err
    run(decoder, embeds(1), progress=True)
    assert "denoise" in capsys.readouterr().err


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "tokenizer", "scheduler"])
def test_missing_sd_component_is_named(sd_dir, tmp_path, component):
    broken = tmp_path / "sd"
    shutil.copytree(sd_dir, broken)
    shutil.rmtree(broken / component)
    with pytest.raises(DecoderLoadError, match=f"component '{component}'"):
        load_detokenizer(broken)


def test_missing_weights_file_is_named(sd_dir, tmp_path):
    broken = tmp_path / "sd"
    shutil.copytree(sd_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(DecoderLoadError, match="no weights file in unet/"):
        load_detokenizer(broken)


def test_tokenizer_shape_must_match_sd(sd_dir):
    torch.manual_seed(0)
    with pytest.raises(DecoderLoadError, match=r"\(32, 384\)"):
        load_detokenizer(sd_dir, tokenizer=SeedTokenizer(get_preset("tiny")))


def test_single_file_needs_local_config(tmp_path, sd_dir):
    ckpt = tmp_path / "sd15.safetensors"
    ckpt.write_bytes(b"not read")
    with pytest.raises(DecoderLoadError, match="--sd-config"):
        load_detokenizer(ckpt)
    with pytest.raises(DecoderLoadError, match="component 'unet'"):
        load_detokenizer(ckpt, sd_config=tmp_path)
    with pytest.raises(DecoderLoadError, match="no such"):
        load_detokenizer(tmp_path / "absent.ckpt")
    wrong = tmp_path / "model.bin"
    wrong.write_bytes(b"x")
    with pytest.raises(DecoderLoadError, match=r"\.ckpt or \.safetensors"):
        load_detokenizer(wrong, sd_config=sd_dir)
