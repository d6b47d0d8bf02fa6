"""SEED-OPT CLI, in-process, a handful of steps: train llm -> caption / ask / draw / merge /
bench, on a 40-sample shapes world, a random tiny image tokenizer, the shipped stand-in LLM and
a random tiny one-step decoder (plumbing, not quality)."""

from __future__ import annotations

import json

import pytest
import torch

from seedtok.cli import main
from seedtok.mllm.standin import STANDIN_DIR



pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seedtok.config import get_preset
    from seedtok.data.shapes import write_shapes_dataset
    from seedtok.decode.pipeline import DecodeDefaults
    from seedtok.decode.standin import OneStepConfig, OneStepGenerator, save_standin

    root = tmp_path_factory.mktemp("llm_cli")
    write_shapes_dataset(root / "shapes", 60, seed=3)
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    gen = OneStepGenerator(OneStepConfig(hidden_size=32, num_layers=1, num_heads=2, cross_attention_dim=cfg.generation_dim))
    uncond = torch.zeros(1, cfg.generation_len, cfg.generation_dim)
    save_standin(root / "decoder", gen, uncond, DecodeDefaults(num_inference_steps=1, guidance_scale=1.0, height=64, width=64))
    return root


@pytest.mark.skipif(not (STANDIN_DIR / "config.json").is_file(), reason="stand-in LLM not shipped")
def test_train_caption_ask_draw_merge_bench(world, capsys):
    run = world / "run"
    assert main(["-q", "train", "llm", "--data", str(world / "shapes"), "--out", str(run), "--steps", "3"]) == 0
    assert (run / "seed_llm.json").is_file() and (run / "adapter_model.safetensors").is_file()
    report = json.loads((run / "train_report.json").read_text())
    assert report["trainable"] < report["total"]
    # resume from the step-3 checkpoint with more steps
    assert main(["-q", "train", "llm", "--data", str(world / "shapes"), "--out", str(run), "--steps", "4", "--resume"]) == 0
    assert json.loads((run / "train_report.json").read_text())["resumed_at"] == 3

    img = next((world / "shapes").glob("test-*.tar"))
    import tarfile

    with tarfile.open(img) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".png"))
        (world / "x.png").write_bytes(tar.extractfile(member).read())
    capsys.readouterr()
    assert main(["-q", "caption", str(world / "x.png"), "--llm", str(run)]) == 0
    assert str(world / "x.png") in capsys.readouterr().out
    assert main(["-q", "ask", str(world / "x.png"), "how many shapes are there?", "--llm", str(run)]) == 0
    assert main(["-q", "ask", str(world / "x.png"), " ", "--llm", str(run)]) == 1  # empty question
    assert "question is empty" in capsys.readouterr().err
    out_png = world / "drawn.png"
    assert main(["-q", "draw", "a red circle", "--out", str(out_png), "--llm", str(run), "--decoder", str(world / "decoder")]) == 0
    codes = capsys.readouterr().out.split("\t")[1].split()
    assert out_png.is_file() and len(codes) == 32
    assert main(["-q", "llm", "merge", "--llm", str(run), "--out", str(world / "merged")]) == 0
    assert json.loads((world / "merged" / "seed_llm.json").read_text())["merged"] is True
    bench = world / "bench.json"
    assert main(["-q", "llm", "bench", "--data", str(world / "shapes"), "--llm", str(world / "merged"),
                 "--decoder", str(world / "decoder"), "--limit", "4", "--out", str(bench)]) == 0
    res = json.loads(bench.read_text())
    for split in ("test", "compositional"):
        assert set(res[split]) == {"caption", "vqa", "draw"}
        assert 0.0 <= res[split]["caption"]["exact_scene_match"] <= 1.0


def test_missing_llm_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["-q", "caption", "x.png", "--llm", str(tmp_path / "nope")]) == 1
    assert "not a SEED-LLM directory" in capsys.readouterr().err
