"""Smoke tests of the demo's pieces (issue 17): the shipped model and its checks, the defaults,
the report keys and table, and a tiny end-to-end ``seedtok demo``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from seedtok.demo.report import FLOORS, metrics_table, missing_keys, required_keys, split_entry
from seedtok.release import SHIPPED_DIR, ReleaseError, verify_release


def _fake_split(v: float) -> dict:
    ret = {f"{d}_r{k}": v for d in ("i2t", "t2i") for k in (1, 5, 10)}
    return split_entry(10, ret, {"color_shape": v, "exact": v / 2}, {"exact_scene_match": v, "bleu4": v, "cider": 3 * v},
                       {"accuracy": v, "per_type": {t: {"accuracy": v} for t in ("color", "count", "exist", "position", "shape")}},
                       {"color_shape": v, "exact_scene_match": v})


def test_report_keys_floors_and_table():
    report = {"wall_seconds": 1.0, "parity": {"ids_equal": True, "worst": 1e-6},
              "splits": {"test": _fake_split(0.9), "compositional": _fake_split(0.1)}}
    assert missing_keys(report) == []
    assert "splits.test.vqa.by_type.position" in required_keys()
    table = metrics_table(report)
    assert table.count("PASS") == len(FLOORS) and "floors met: 5/5" in table
    report["splits"]["test"]["caption"]["exact"] = 0.1
    assert "floors met: 4/5" in metrics_table(report)
    del report["splits"]["compositional"]["draw"]
    assert missing_keys(report) == ["splits.compositional.draw.object_acc", "splits.compositional.draw.exact"]


def test_shipped_model_verifies_and_a_modified_file_is_refused(tmp_path):
    prov = verify_release()
    assert {"tokenizer/model.safetensors", "tokenizer/reconstruction.safetensors", "llm/model.safetensors",
            "decoder/model.safetensors"} <= set(prov["sha256"])
    assert prov["git_commit"] and prov["commands"] and prov["stages"]["stage3"]["steps"]
    copy = tmp_path / "seed-tiny"
    shutil.copytree(SHIPPED_DIR, copy)
    verify_release(copy)
    weights = copy / "llm" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="sha256 does not match"):
        verify_release(copy)
    (copy / "provenance.json").unlink()
    with pytest.raises(ReleaseError, match="not installed"):
        verify_release(copy)


def test_all_shipped_assets_fit_the_budget():
    assets = SHIPPED_DIR.parents[1]
    total = sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())
    assert total <= 25 * 2**20, f"shipped assets {total / 2**20:.1f} MiB > 25 MiB"


def test_package_release_keeps_codes_bit_identical(tmp_path):
    from safetensors.torch import save_file

    from seedtok.checkpoint import from_pretrained, save_pretrained
    from seedtok.config import get_preset
    from seedtok.mllm.model import SeedLLM
    from seedtok.models.seed2 import build_tokenizer
    from seedtok.release import package_release
    from seedtok.train.stage2 import ReconstructionHead

    torch.manual_seed(0)
    config = get_preset("tiny-stage1")
    tok = build_tokenizer(config).eval()
    save_pretrained(tok, tmp_path / "stage2")
    save_file(ReconstructionHead.for_config(config).state_dict(), str(tmp_path / "stage2" / "reconstruction.safetensors"))
    SeedLLM.from_base(None, config.codebook.codebook_size, config.num_tokens).save(tmp_path / "llm")
    prov = package_release(tmp_path / "stage2", tmp_path / "llm", tmp_path / "model", ["seedtok test"])
    assert prov["commands"] == ["seedtok test"] and verify_release(tmp_path / "model")
    shipped = from_pretrained(tmp_path / "model" / "tokenizer")
    x = torch.randn(4, 3, config.vision.image_size, config.vision.image_size)
    with torch.no_grad():
        assert torch.equal(tok.encode(x)[0], shipped.encode(x)[0])
    SeedLLM.load(tmp_path / "model" / "llm")


def test_cli_defaults_use_the_shipped_model(capsys):
    from seedtok.cli import main

    sample = str(Path(SHIPPED_DIR).parents[1] / "samples" / "coffee.png")
    assert main(["encode", sample]) == 0
    out, err = capsys.readouterr()
    assert "shipped model seed-tiny" in err and len(out.split("\t")[1].split()) == 32
    assert main(["ask", sample, "how many shapes are there?"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() and "[LLM]" in err


def test_pipeline_api_default():
    from seedtok.api import encode_images, load_pipeline, load_tokenizer

    seed = load_pipeline()
    sample = Path(SHIPPED_DIR).parents[1] / "samples" / "chelsea.png"
    ids = seed.encode([sample])
    assert ids.shape == (1, 32)
    assert ids[0].tolist() == encode_images(load_tokenizer(), [sample])[0].ids  # the same default tokenizer
    assert isinstance(seed.caption([sample])[0], str)
    assert seed.ask([sample], ["how many shapes are there?"])[0]
    assert seed.draw(["a large red circle at the top left"])[0].size == (64, 64)


def test_demo_end_to_end_small(tmp_path):
    from seedtok.demo import run_demo

    out = tmp_path / "demo"
    assert run_demo(str(out), num_test=12, num_compositional=6, keep=3, progress=False) == 0
    report = json.loads((out / "report.json").read_text())
    assert missing_keys(report) == []
    assert report["splits"]["test"]["num_images"] == 12 and report["splits"]["compositional"]["num_images"] == 6
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 20 and page.count('src="data:image/png;base64,') == page.count("<img")
    assert "http://" not in page and "https://" not in page
    details = json.loads((out / "details.json").read_text())
    assert len(details["codebook"]["per_position_used"]) == 32


def test_demo_train_rebuilds_a_model_at_tiny_scale(tmp_path):
    """The `seedtok demo --train` recipe end to end at 1% scale: data, stages 1, 2, 3, packaging."""
    from seedtok.demo.train import build_model
    from seedtok.release import verify_release

    model = build_model(tmp_path / "train", scale=0.01, threads=1, progress=False)
    prov = verify_release(model)
    assert [c.split()[1:3] for c in prov["commands"]] == [["data", "shapes"], ["train", "stage1"], ["train", "stage2"],
                                                          ["train", "llm"]]
    assert prov["rebuild"]["scale"] == 0.01 and prov["stages"]["stage3"]["steps"] == 15
    assert (model / "tokenizer" / "reconstruction.safetensors").is_file()
