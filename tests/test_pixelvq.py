"""The 2-D pixel tokenizer baseline (models/pixelvq.py, train/pixelvq.py): shapes, invariants,
config and checkpoint round trips, overfitting one batch, and a run on a tiny shapes world
through training, evaluation and an id cache."""

from __future__ import annotations

import json

import pytest
import torch

from seedtok.checkpoint import CheckpointError, load_pixel_vq, save_pixel_vq
from seedtok.config import CLIP_MEAN, CLIP_STD, CodebookConfig, ConfigError
from seedtok.models.pixelvq import PixelVQConfig, PixelVQTokenizer
from seedtok.models.quantizer import TokenIdError
from seedtok.train.core import TrainArgs

pytestmark = pytest.mark.usefixtures("one_thread")

MICRO = PixelVQConfig(image_size=32, widths=(8, 16), codebook=CodebookConfig(64, 8, kind="cosine"))


def _model(config: PixelVQConfig = MICRO, seed: int = 0) -> PixelVQTokenizer:
    torch.manual_seed(seed)
    return PixelVQTokenizer(config).eval()


def _pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_default_is_a_drop_in_32_token_tokenizer():
    model = _model(PixelVQConfig())
    cfg = model.config
    assert (cfg.num_tokens, cfg.vision.image_size, cfg.codebook.codebook_size) == (32, 64, 1024)
    assert cfg.image_mean == CLIP_MEAN and cfg.codebook.kind == "cosine"
    assert 0.3e6 < sum(p.numel() for p in model.parameters()) < 2e6
    ids, second = model.encode(_pixels(2, 64))
    assert ids.shape == (2, 32) and ids.dtype == torch.int64 and second is None
    assert 0 <= int(ids.min()) and int(ids.max()) < 1024
    pixels = model.decode_pixels(ids)
    assert pixels.shape == (2, 3, 64, 64) and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
    images = model.decode_images(ids)
    assert len(images) == 2 and images[0].size == (64, 64) and images[0].mode == "RGB"


def test_decoding_ids_equals_the_quantized_path_and_batches_are_independent():
    model, x = _model(), _pixels(3, 32)
    with torch.no_grad():
        direct = model.decode_codes(model.quantizer(model.latents(x)).quantized)
    ids = model.encode(x)[0]
    assert torch.equal(model.decode_pixels(ids), direct)
    assert torch.equal(model.encode(x[:1])[0], ids[:1])
    assert torch.allclose(model.decode_pixels(ids[1]), direct[1:2], atol=1e-6)  # a single (32,) row


@pytest.mark.parametrize("ids", [torch.full((1, 32), 64), torch.full((1, 32), -1), torch.zeros(1, 32),
                                 torch.zeros(1, 31, dtype=torch.long), torch.zeros(0, 32, dtype=torch.long), [0] * 32])
def test_bad_ids_raise(ids):
    with pytest.raises(TokenIdError):
        _model().decode_pixels(ids)


def test_config_round_trips_and_rejects_bad_values():
    for cfg in (PixelVQConfig(), MICRO):
        assert PixelVQConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    bad = [{"grid": [3, 8]}, {"widths": [12, 32]}, {"image_size": 48}, {"grid": [4]}, {"vq_weight": -1.0},
           {"nope": 1}, {"codebook": {"kind": "lfq"}}, {"image_std": [0.2, 0.2, 0.0]}, {"grid": "4x8"}]
    for change in bad:
        with pytest.raises(ConfigError):
            PixelVQConfig.from_dict({**PixelVQConfig().to_dict(), **change})


def _blocks(n: int, size: int) -> torch.Tensor:
    """n white images with one coloured square each, CLIP-normalised (B, 3, S, S)."""
    unit = torch.ones(n, 3, size, size)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        r, c = torch.randint(0, size // 2, (2,), generator=g).tolist()
        unit[i, :, r : r + size // 2, c : c + size // 2] = torch.rand(3, 1, 1, generator=g)
    return (unit - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def test_every_parameter_gets_a_gradient_and_overfitting_one_batch_lowers_the_loss():
    model, x = _model().train(), _blocks(8, 32)
    model({"pixel_values": x})["loss"].backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model({"pixel_values": x})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert out["_ids"].shape == (8, 32) and out["_z"].shape == (8, 32, 8)


def test_save_load_is_exact_and_tampering_or_mismatch_is_refused(tmp_path):
    model, x = _model(), _pixels(2, 32)
    save_pixel_vq(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["kind"] == "pixel-vq" and len(meta["weights_sha256"]) == 64
    loaded = load_pixel_vq(tmp_path / "m")
    ids = model.encode(x)[0]
    assert torch.equal(loaded.encode(x)[0], ids) and torch.equal(loaded.decode_pixels(ids), model.decode_pixels(ids))

    meta["config"]["widths"] = [8, 24]  # other shapes, weights untouched (checksum still matches)
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_pixel_vq(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**meta, "kind": "seed"}))
    with pytest.raises(CheckpointError, match="not a 'pixel-vq'"):
        load_pixel_vq(tmp_path / "m")

    save_pixel_vq(model, tmp_path / "t")
    weights = tmp_path / "t" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="sha256"):
        load_pixel_vq(tmp_path / "t")


def test_train_evaluate_and_cache_ids_on_a_tiny_shapes_world(tmp_path):
    from seedtok.data.shapes import split_shards, write_shapes_dataset
    from seedtok.mllm.cache import build_id_cache, load_cache
    from seedtok.train.pixelvq import PIXEL_VQ_DEFAULTS, evaluate_pixel_vq, pixel_vq_args, run_pixel_vq

    data = str(tmp_path / "shapes")
    write_shapes_dataset(data, 40, seed=0)
    args = pixel_vq_args(str(tmp_path / "run"), steps=4, batch_size=4, progress=False)
    assert (args.lr, args.warmup) == (PIXEL_VQ_DEFAULTS["lr"], PIXEL_VQ_DEFAULTS["warmup"])
    summary = run_pixel_vq(data, args, limit=16, health_every=2, config=MICRO)
    assert summary["steps"] == 4 and summary["train_samples"] == 16
    assert "reinit_codes" in summary["codebook"]  # dead codes were re-initialised
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["steps"] == 4

    model = load_pixel_vq(tmp_path / "run")
    report = evaluate_pixel_vq(model, data, num=4)
    assert report["scenes"] == 4 and 0 <= report["color_shape"] <= 1 and report["parser_on_inputs"] == 1.0
    assert report["pixel_mse"] > 0 and report["codebook"]["codes_used"] >= 1

    cache = build_id_cache(split_shards(data, "test"), model, tmp_path / "cache", batch_size=3)
    assert cache.ids.shape[1] == 32 and len(cache) == len(cache.records) > 0
    assert cache.meta["num_tokens"] == 32 and cache.meta["codebook_size"] == 64
    assert torch.equal(load_cache(tmp_path / "cache", model).ids, cache.ids.long())
