"""SEED-2 de-tokenization through Stable unCLIP (issue 18), with tiny random components: the
loader, the equality with diffusers' stock StableUnCLIPImg2ImgPipeline, sizes, batching, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from seed2_helpers import EMBED_DIM, dummy_unclip, save_dummy_unclip_dir, tiny_seed2
from seedtok.decode import DecodeError, DecoderLoadError, load_detokenizer
from seedtok.decode.unclip import UNCLIP_DEFAULTS, UnclipDetokenizer

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "seedtok" / "assets" / "samples"


@pytest.fixture(scope="module")
def unclip_dir(tmp_path_factory, one_thread):
    return save_dummy_unclip_dir(tmp_path_factory.mktemp("unclip"))


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_seed2()


@pytest.fixture(scope="module")
def detok(unclip_dir, tokenizer):
    d = load_detokenizer(unclip_dir, tokenizer)
    d.set_progress_bar_config(disable=True)
    return d


def test_loads_without_image_encoder(detok):
    assert isinstance(detok, UnclipDetokenizer)
    assert detok.pipe.image_encoder is None and detok.pipe.text_encoder is None
    assert detok.embed_dim == EMBED_DIM


def test_equals_stock_diffusers_pipeline(detok, tokenizer, tmp_path):
    ids = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(1))
    ours = detok(ids=ids, num_inference_steps=3, height=32, width=32, seed=7).pixels
    pipe = dummy_unclip(tmp_path)  # same seeded components, stock pipeline incl. its image encoder
    gens = [torch.Generator().manual_seed(7 + i) for i in range(2)]
    ref = pipe(prompt=[""] * 2, image_embeds=tokenizer.decode_ids(ids), generator=gens, noise_level=0,
               num_inference_steps=3, guidance_scale=10.0, height=32, width=32, output_type="pt").images
    assert (ours - ref).abs().max() < 1e-5
    assert ours.std() > 0.01  # not a constant image


def test_encode_ids_embedding_image_of_requested_size(detok, tokenizer):
    from seedtok.api import encode_images

    [res] = encode_images(tokenizer, [SAMPLES / "chelsea.png"])
    assert len(res.ids) == 32 and all(0 <= i < 8192 for i in res.ids)
    emb = tokenizer.decode_ids(torch.tensor([res.ids]))
    assert emb.shape == (1, EMBED_DIM)
    out = detok(ids=[res.ids], num_inference_steps=2, height=48, width=64)
    assert out.pixels.shape == (1, 3, 48, 64) and out.images[0].size == (64, 48)
    assert 0.0 <= float(out.pixels.min()) and float(out.pixels.max()) <= 1.0


def test_batch_equals_one_by_one_and_seeds(detok):
    ids = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(2))
    both = detok(ids=ids, num_inference_steps=2, height=32, width=32, seed=3).pixels
    first = detok(ids=ids[:1], num_inference_steps=2, height=32, width=32, seed=3).pixels
    second = detok(ids=ids[1:], num_inference_steps=2, height=32, width=32, seed=4).pixels
    assert (both - torch.cat([first, second])).abs().max() < 1e-5
    other = detok(ids=ids[:1], num_inference_steps=2, height=32, width=32, seed=5).pixels
    assert (other - first).abs().max() > 1e-3


def test_defaults_are_the_reference_decode():
    d = UNCLIP_DEFAULTS
    assert (d.num_inference_steps, d.guidance_scale, d.height, d.width) == (20, 10.0, 768, 768)


def test_bad_inputs(detok):
    with pytest.raises(DecodeError, match="out of range"):
        detok(ids=torch.full((1, 32), 8192), num_inference_steps=1, height=32, width=32)
    with pytest.raises(DecodeError, match="shape"):
        detok(embeds=torch.zeros(1, EMBED_DIM + 1), num_inference_steps=1, height=32, width=32)
    with pytest.raises(DecodeError, match="multiples"):
        detok(embeds=torch.zeros(1, EMBED_DIM), num_inference_steps=1, height=30, width=32)


def test_missing_component_is_named(unclip_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(unclip_dir, broken)
    shutil.rmtree(broken / "image_noising_scheduler")
    with pytest.raises(DecoderLoadError, match="image_noising_scheduler"):
        load_detokenizer(broken)


def test_wrong_tokenizer_for_decoder(unclip_dir, tiny_model, tmp_path):
    from decode_helpers import save_dummy_sd_dir

    with pytest.raises(DecoderLoadError, match="image embeddings"):
        load_detokenizer(unclip_dir, tiny_model)  # a SEED-1-layout tokenizer has no unCLIP embedding
    sd = save_dummy_sd_dir(tmp_path)
    with pytest.raises(DecoderLoadError, match="Stable unCLIP"):
        load_detokenizer(sd, tiny_seed2())


def test_cli_reconstruct_and_decode_with_seed2(unclip_dir, tokenizer, tmp_path, capsys):
    import json

    from seedtok.checkpoint import save_pretrained
    from seedtok.cli import main

    model = save_pretrained(tokenizer, tmp_path / "seed2")
    size = ["--steps", "2", "--height", "32", "--width", "48"]
    out = tmp_path / "recon"
    assert main(["reconstruct", str(SAMPLES / "coffee.png"), "--model", str(model), "--decoder", str(unclip_dir),
                 "--out", str(out), *size]) == 0
    from PIL import Image

    assert Image.open(out / "grid.png").size[1] > 0
    assert main(["encode", str(SAMPLES / "coffee.png"), "--model", str(model), "--json"]) == 0
    ids = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ids"]
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    assert main(["decode", str(tmp_path / "ids.json"), "--model", str(model), "--decoder", str(unclip_dir),
                 "--out", str(tmp_path / "dec"), *size]) == 0
    [png] = list((tmp_path / "dec").glob("*.png"))
    assert Image.open(png).size == (48, 32)
    assert main(["decode", str(tmp_path / "ids.json"), "--model", str(model), "--out", str(tmp_path / "x")]) == 1
    assert "Stable unCLIP" in capsys.readouterr().err  # a SEED-2 model needs --decoder
