"""Tiny-world stand-ins for SD (DESIGN.md sec. 3): the one-step generator and the pixel-space
diffusion UNet share the de-tokenizer interface; stand-in directories round-trip exactly."""

from __future__ import annotations

import json

import pytest
import torch

from seedtok.decode import DecodeError, DecoderLoadError, OneStepConfig, OneStepGenerator, load_detokenizer
from seedtok.decode.pipeline import DecodeDefaults
from seedtok.decode.standin import (
    DECODER_WEIGHTS,
    STANDIN_DIR,
    build_unet,
    load_standin_model,
    save_standin,
    tiny_unet_config,
)
from seedtok.decode.train import NoisePredictionObjective, ReconstructionObjective

SMALL = OneStepConfig(hidden_size=32, num_layers=1, num_heads=2, refine_channels=4)
DEFAULTS = DecodeDefaults(num_inference_steps=2, guidance_scale=2.0, height=64, width=64, seed=42, scheduler="ddim")


def states(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 32, 384, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def onestep_dir(tmp_path):
    torch.manual_seed(0)
    return save_standin(tmp_path / "onestep", OneStepGenerator(SMALL), states(1, 9), DEFAULTS, {"what": "test"}, torch.float32)


@pytest.fixture(scope="module")
def diffusion_dir(tmp_path_factory):
    torch.manual_seed(0)
    unet = build_unet(tiny_unet_config(width=8))
    return save_standin(tmp_path_factory.mktemp("diff") / "d", unet, states(1, 9), DEFAULTS, None, torch.float32)


def test_one_step_generator_shape_and_determinism():
    torch.manual_seed(0)
    g = OneStepGenerator(SMALL).eval()
    out = g(states(3))
    assert out.shape == (3, 3, 64, 64)
    torch.testing.assert_close(g(states(3)[:1]), out[:1], atol=1e-5, rtol=0)


def test_standin_round_trip_exact(onestep_dir):
    model, uncond, meta = load_standin_model(onestep_dir)
    torch.manual_seed(0)
    ref = OneStepGenerator(SMALL)
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert torch.equal(uncond, states(1, 9)) and meta["kind"] == "onestep"


def test_fp16_store_loads_as_fp32(tmp_path):
    torch.manual_seed(0)
    g = OneStepGenerator(SMALL)
    save_standin(tmp_path / "h", g, states(1), DEFAULTS, None, torch.float16)
    model, _, _ = load_standin_model(tmp_path / "h")
    for k, v in g.state_dict().items():
        assert model.state_dict()[k].dtype == torch.float32
        assert torch.equal(model.state_dict()[k], v.half().float()), k


def test_one_step_decoder_interface(onestep_dir):
    dec = load_detokenizer(onestep_dir)
    assert dec.one_step and dec.embedding_shape == (32, 384)
    e = states(2)
    plain = dec(embeds=e, guidance_scale=1.0).pixels
    assert plain.shape == (2, 3, 64, 64)
    assert torch.equal(plain, dec(embeds=e, guidance_scale=1.0, seed=5).pixels)  # deterministic: seed unused
    guided = dec(embeds=e, guidance_scale=2.0).pixels
    out_c, out_u = dec.denoiser(e), dec.denoiser(dec.uncond)
    torch.testing.assert_close(guided, ((out_u + 2.0 * (out_c - out_u)) / 2 + 0.5).clamp(0, 1))
    with pytest.raises(DecodeError, match="64x64 images only"):
        dec(embeds=e, height=32, width=32)


def test_diffusion_standin_decodes(diffusion_dir):
    dec = load_detokenizer(diffusion_dir)
    assert not dec.one_step and dec.latent_factor == 1
    dec.set_progress_bar_config(disable=True)
    a = dec(embeds=states(1), seed=1).pixels
    b = dec(embeds=states(1), seed=2).pixels
    assert a.shape == (1, 3, 64, 64) and (a - b).abs().max() > 1e-3
    with pytest.raises(DecodeError, match="multiples of 8"):
        dec(embeds=states(1), height=60, width=60)


def test_corrupt_or_foreign_standin_dirs(onestep_dir, tmp_path):
    (onestep_dir / DECODER_WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(DecoderLoadError, match="sha256"):
        load_detokenizer(onestep_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "decoder.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DecoderLoadError, match="not a seedtok decoder"):
        load_detokenizer(bad)
    with pytest.raises(DecoderLoadError, match="no such"):
        load_detokenizer(tmp_path / "missing")


def test_overfit_one_batch_one_step():
    torch.manual_seed(0)
    obj = ReconstructionObjective(OneStepGenerator(SMALL))
    batch = {"pixels": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), "states": states(4).half()}
    opt = torch.optim.AdamW(obj.parameters(), lr=3e-3)
    first = float(obj(batch)["loss"].detach())
    for _ in range(40):
        loss = obj(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(obj(batch)["loss"].detach()) < 0.5 * first


def test_noise_prediction_gradients_reach_every_parameter():
    torch.manual_seed(0)
    obj = NoisePredictionObjective(build_unet(tiny_unet_config(width=8)), states(1, 9), cond_dropout=0.5)
    batch = {"pixels": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), "states": states(4).half()}
    out = obj(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    missing = [n for n, p in obj.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing
    assert not any(n.startswith("uncond") for n, _ in obj.named_parameters())  # frozen buffer


def test_shipped_standin_if_present():
    if not (STANDIN_DIR / "decoder.json").is_file():
        pytest.skip("no shipped stand-in in this checkout")
    dec = load_detokenizer(None)
    assert dec.embedding_shape == (32, 384)
    prov = json.loads((STANDIN_DIR / "provenance.json").read_text())
    for key in ("command", "seed", "steps", "wall_s_total", "device", "metrics"):
        assert key in prov


def test_condition_augmentation_only_in_training():
    torch.manual_seed(0)
    s = states(4)
    obj = ReconstructionObjective(OneStepGenerator(SMALL), mean_state=torch.zeros(32, 384), shrink=1.0, noise=0.0)
    aug = obj.augment(s)
    ratio = (aug / s).flatten(1)  # shrink toward a zero mean: each sample scaled by 1 - a, a in [0, 1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    assert bool(((ratio[:, 0] > 0) & (ratio[:, 0] <= 1)).all())
    batch = {"pixels": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), "states": s.half()}
    obj.eval()
    assert torch.equal(obj(batch)["loss"], obj(batch)["loss"])
