"""SEED-2 (SEED-LLaMA's tokenizer, issue 18): parity with golden data made by the reference SEED-2
code at reduced widths (tests/golden/seed2_small, made by tests/golden/seed2_harness), the
full-size key manifest, the strict loader and the SEED-1/SEED-2 mismatch errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seedtok.checkpoint import CheckpointError, from_pretrained, read_state_dict, tokenizer_from_reference
from seedtok.checkpoint_seed2 import load_seed2_files, seed2_from_reference, seed2_to_reference_state_dict
from seedtok.config import Seed2Config, config_from_dict, config_from_parity_meta, get_preset
from seedtok.keymap_seed2 import from_reference_key, ignore_reason, to_reference_key
from seedtok.models.seed2 import Seed2Tokenizer
from seedtok.parity import SEED2_FLOAT_KEYS, check_parity, load_golden

GOLDEN = Path(__file__).parent / "golden"
SEED2_DIR = GOLDEN / "seed2_small"
MANIFEST = GOLDEN / "seed2_manifest.json"
TOL = 1e-4


@pytest.fixture(scope="module")
def golden(one_thread):
    return load_golden(SEED2_DIR)


def test_golden_meta_says_seed2():
    meta = json.loads((SEED2_DIR / "meta.json").read_text())
    assert meta["release"] == "SEED-2" and meta["min_code_margin"] > 1e-3


def test_golden_outputs_reproduced(golden):
    model, pixels, ref, _ = golden
    assert isinstance(model, Seed2Tokenizer) and not model.training
    with torch.no_grad():
        out = model(pixels)
    ours = {"pixel_values": pixels, **{k: getattr(out, k) for k in SEED2_FLOAT_KEYS[1:]}}
    for key in SEED2_FLOAT_KEYS:
        assert ours[key].shape == ref[key].shape, key
        diff = (ours[key] - ref[key]).abs().max().item()
        assert diff <= TOL, f"{key}: max|diff| {diff:.3e} > {TOL}"
    assert out.ids.dtype == torch.int64 and torch.equal(out.ids, ref["ids"])
    assert len(set(ref["ids"].flatten().tolist())) > 10  # a non-degenerate golden set


def test_batch_of_three_equals_one_plus_two(golden):
    model, pixels, ref, _ = golden
    with torch.no_grad():
        whole, parts = model(pixels), [model(pixels[:1]), model(pixels[1:])]
    assert torch.equal(torch.cat([p.ids for p in parts]), whole.ids)
    for key in SEED2_FLOAT_KEYS[1:]:
        split = torch.cat([getattr(p, key) for p in parts])
        assert (split - getattr(whole, key)).abs().max() <= TOL, key
        assert (split - ref[key]).abs().max() <= TOL, key


def test_encode_and_decode_ids_give_ids_and_unclip_embedding(golden):
    model, pixels, ref, _ = golden
    ids, causal = model.encode(pixels)
    assert torch.equal(ids, ref["ids"])
    assert (causal - ref["causal_embeds"]).abs().max() <= TOL
    emb = model.decode_ids(ids)
    assert emb.shape == (3, model.config.image_embed_dim)
    assert (emb - ref["unclip_embeds"]).abs().max() <= TOL


def test_check_parity_reports_seed2(golden):
    res = check_parity(SEED2_DIR)
    assert res["release"] == "SEED-2" and res["ids_equal"] and res["worst"] <= TOL
    assert set(res["max_abs_diff"]) == set(SEED2_FLOAT_KEYS)


def _manifest():
    data = json.loads(MANIFEST.read_text())
    return {k: tuple(v["shape"]) for k, v in data["keys"].items()}, data["total_elements"]


def test_seed2_preset_maps_exactly_onto_reference_manifest():
    manifest, total = _manifest()
    with torch.device("meta"):
        model = Seed2Tokenizer(get_preset("seed2"))
    mapped = {to_reference_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    assert not set(mapped) - set(manifest), sorted(set(mapped) - set(manifest))[:10]
    missing = set(manifest) - set(mapped)
    # only the position-index buffer and the training-only recon_s head (pos_embed + 4 blocks)
    assert missing == {"Qformer.bert.embeddings.position_ids", "pos_embed"} | {
        k for k in manifest if k.startswith("blocks.")}
    assert len([k for k in missing if k.startswith("blocks.")]) == 4 * 12
    assert all(ignore_reason(k) for k in missing)
    wrong = {k: (mapped[k], manifest[k]) for k in mapped if mapped[k] != manifest[k]}
    assert not wrong, wrong
    ours = sum(torch.Size(s).numel() for s in mapped.values())
    assert ours + sum(torch.Size(manifest[k]).numel() for k in missing) == total
    assert ours == 1_121_622_464  # the count `seedtok info --preset seed2` prints


def test_key_map_inverts_exactly():
    with torch.device("meta"):
        model = Seed2Tokenizer(get_preset("seed2"))
    for key in model.state_dict():
        assert from_reference_key(to_reference_key(key)) == key


def test_reference_round_trip_is_exact(golden):
    model = golden[0]
    weights = load_file(str(SEED2_DIR / "weights.safetensors"))
    for k, v in seed2_to_reference_state_dict(model).items():
        assert torch.equal(v, weights[k].float()), k


def test_seed1_checkpoint_given_as_seed2_is_refused():
    seed1 = read_state_dict(GOLDEN / "seed1_small" / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"SEED-1 checkpoint, not SEED-2.*Reverse_Qformer"):
        seed2_from_reference(seed1, golden_config())


def test_seed2_checkpoint_given_as_seed1_is_refused():
    seed2 = read_state_dict(SEED2_DIR / "weights.safetensors")
    meta1 = json.loads((GOLDEN / "seed1_small" / "meta.json").read_text())
    with pytest.raises(CheckpointError, match=r"SEED-2 .*not SEED-1.*(blocks_image|distill_image_proj|image_down)"):
        tokenizer_from_reference(seed2, config_from_parity_meta(meta1))


def golden_config() -> Seed2Config:
    from seedtok.config import seed2_config_from_parity_meta

    return seed2_config_from_parity_meta(json.loads((SEED2_DIR / "meta.json").read_text()))


def test_strict_loading_names_keys():
    ref = read_state_dict(SEED2_DIR / "weights.safetensors")
    with pytest.raises(CheckpointError, match="bogus.weight"):
        seed2_from_reference({**ref, "bogus.weight": torch.zeros(1)}, golden_config())
    partial = {k: v for k, v in ref.items() if k != "image_down.2.weight"}
    with pytest.raises(CheckpointError, match="image_down"):
        seed2_from_reference(partial, golden_config())
    no_vit = {k: v for k, v in ref.items() if not k.startswith("visual_encoder.")}
    with pytest.raises(CheckpointError, match="eva_vit_g.pth"):
        seed2_from_reference(no_vit, golden_config())
    bad = dict(ref, **{"distill_image_proj.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="wrong shapes.*image_proj"):
        seed2_from_reference(bad, golden_config())
    with pytest.raises(CheckpointError, match="Seed2Config"):
        seed2_from_reference(ref, get_preset("tiny"))


def _split_like_release(tmp_path: Path) -> tuple[Path, Path]:
    """eva_vit_g.pth (ViT without the visual_encoder. prefix) + seed_quantizer.pt (the rest,
    wrapped in {"model": ...}), both pickles read with weights_only=True."""
    ref = read_state_dict(SEED2_DIR / "weights.safetensors")
    eva = {k[len("visual_encoder."):]: v for k, v in ref.items() if k.startswith("visual_encoder.")}
    rest = {k: v for k, v in ref.items() if not k.startswith("visual_encoder.")}
    torch.save(eva, tmp_path / "eva_vit_g.pth")
    torch.save({"model": rest, "epoch": torch.tensor(3)}, tmp_path / "seed_quantizer.pt")
    return tmp_path / "eva_vit_g.pth", tmp_path / "seed_quantizer.pt"


def test_release_files_load(golden, tmp_path):
    eva, quant = _split_like_release(tmp_path)
    model, report = load_seed2_files(quant, eva, golden_config())
    assert "pos_embed" in report.ignored and "blocks.0.attn.qkv.weight" in report.ignored
    assert torch.equal(model.encode(golden[1])[0], golden[2]["ids"])
    with pytest.raises(CheckpointError, match="eva_vit_g.pth"):
        load_seed2_files(quant, None, golden_config())


def test_convert_seed2_then_encode_and_info(golden, tmp_path, monkeypatch, capsys):
    """`seedtok convert --seed2`, `seedtok encode --model`, `seedtok info`: the reduced golden
    config stands in for the full seed2 preset."""
    import seedtok.checkpoint_seed2 as ck2
    from seedtok.cli import main

    eva, quant = _split_like_release(tmp_path)
    monkeypatch.setattr(ck2, "get_preset", lambda name: golden_config())
    out = tmp_path / "seed2-model"
    assert main(["convert", "--seed2", "--seed-quantizer", str(quant), "--eva-vit", str(eva), "--out", str(out)]) == 0
    assert "ignored pos_embed" in capsys.readouterr().out
    assert isinstance(config_from_dict(json.loads((out / "config.json").read_text())["config"]), Seed2Config)
    assert isinstance(from_pretrained(out), Seed2Tokenizer)
    images = [str(SEED2_DIR / f"{n}.png") for n in ("astronaut", "coffee", "chelsea")]
    assert main(["encode", *images, "--model", str(out), "--json"]) == 0
    ids = [json.loads(line)["ids"] for line in capsys.readouterr().out.splitlines()]
    assert ids == golden[2]["ids"].tolist()
    assert main(["convert", "--seed-quantizer", str(quant), "--out", str(tmp_path / "x")]) == 1
    assert "--seed2" in capsys.readouterr().err
    assert main(["info", "--model", str(out)]) == 0
    assert "image_proj" in capsys.readouterr().out


def test_info_prints_seed2_parameter_count(capsys):
    from seedtok.cli import main

    assert main(["info", "--preset", "seed2"]) == 0
    out = capsys.readouterr().out
    assert '"kind": "seed2"' in out and "1,121,622,464" in out


def test_parity_command_accepts_seed2(capsys):
    from seedtok.cli import main

    assert main(["parity", str(SEED2_DIR)]) == 0
    out = capsys.readouterr().out
    assert "unclip_embeds" in out and "PASS" in out


def test_config_round_trip():
    cfg = get_preset("seed2")
    back = config_from_dict(json.loads(cfg.to_json()))
    assert back == cfg and back.down_dims == (256, 128, 32) and isinstance(back.down_dims[0], int)


def test_convert_refuses_the_other_release(tmp_path, capsys):
    """`seedtok convert --seed2` on SEED-1 files, and SEED-1 conversion on a SEED-2 file."""
    from seedtok.cli import main

    seed1 = read_state_dict(GOLDEN / "seed1_small" / "weights.safetensors")
    torch.save({"model": seed1}, tmp_path / "seed_tokenizer.pth")
    assert main(["convert", "--seed2", "--seed-quantizer", str(tmp_path / "seed_tokenizer.pth"), "--out", str(tmp_path / "a")]) == 1
    assert "SEED-1 checkpoint, not SEED-2" in capsys.readouterr().err
    eva, quant = _split_like_release(tmp_path)
    args = ["convert", "--eva-vit", str(eva), "--causal-qformer", str(quant), "--seed-tokenizer", str(quant)]
    assert main([*args, "--out", str(tmp_path / "b")]) == 1
    assert "SEED-2 (SEED-LLaMA seed_quantizer.pt) checkpoint, not SEED-1" in capsys.readouterr().err


def test_bilinear_resample_matches_the_reference_scripts(golden, tmp_path, monkeypatch, capsys):
    """clip_transform.yaml's Resize((224, 224)) is torchvision's default bilinear, which on a PIL
    image is PIL's bilinear resize; a SEED-2 config with resample='bilinear' encodes that way."""
    import numpy as np
    from PIL import Image

    import seedtok.checkpoint_seed2 as ck2
    from seedtok.api import encode_images
    from seedtok.cli import main
    from seedtok.config import CLIP_MEAN, CLIP_STD
    from seedtok.image import normalize

    img = Image.open(SEED2_DIR / "coffee.png").convert("RGB")
    want = np.asarray(img.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
    want = (torch.from_numpy(want).permute(2, 0, 1) - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
    bilinear = normalize(img, 224, resample="bilinear")
    assert torch.equal(bilinear, want) and (bilinear - normalize(img, 224)).abs().max() > 0.01
    eva, quant = _split_like_release(tmp_path)
    monkeypatch.setattr(ck2, "get_preset", lambda name: golden_config())
    out = tmp_path / "bilinear"
    assert main(["convert", "--seed2", "--seed-quantizer", str(quant), "--eva-vit", str(eva), "--resample", "bilinear",
                 "--out", str(out)]) == 0
    model = from_pretrained(out)
    assert model.config.resample == "bilinear"
    [res] = encode_images(model, [SEED2_DIR / "coffee.png"])
    assert res.ids == model.encode(bilinear.unsqueeze(0))[0][0].tolist()
    assert main(["convert", "--eva-vit", str(eva), "--causal-qformer", str(quant), "--seed-tokenizer", str(quant),
                 "--resample", "bilinear", "--out", str(tmp_path / "x")]) == 1
