"""CLI smoke tests for de-tokenization, in-process: decode, reconstruct, train decoder (with
resume), bench decode; ids-file layouts and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from seedtok.cli import main
from seedtok.decode import OneStepConfig, OneStepGenerator
from seedtok.decode.pipeline import DecodeDefaults
from seedtok.decode.standin import save_standin
from seedtok.decode.tools import IdsFileError, output_names, read_ids_file

SMALL = OneStepConfig(hidden_size=32, num_layers=1, num_heads=2, refine_channels=4)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    torch.manual_seed(0)
    defaults = DecodeDefaults(num_inference_steps=1, guidance_scale=1.0, height=64, width=64, seed=42, scheduler="ddim")
    return save_standin(tmp_path_factory.mktemp("s") / "dec", OneStepGenerator(SMALL), torch.zeros(1, 32, 384), defaults)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from seedtok.data.shapes import write_shapes_dataset

    out = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(out, num=48, seed=0)
    return out


def test_read_ids_file_layouts(tmp_path):
    ids = list(range(32))
    cases = {
        "one.json": json.dumps(ids),
        "many.json": json.dumps([ids, ids]),
        "obj.json": json.dumps({"image": "a/cat.png", "ids": ids}),
        "lines.jsonl": json.dumps({"image": "x.png", "ids": ids}) + "\n" + json.dumps({"image": "y.png", "ids": ids}) + "\n",
    }
    counts = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        names, rows = read_ids_file(tmp_path / name)
        counts[name] = len(rows)
        assert all(r == ids for r in rows)
    assert counts == {"one.json": 1, "many.json": 2, "obj.json": 1, "lines.jsonl": 2}
    assert output_names(["a/cat.png", None]) == ["0000-cat.png", "0001.png"]
    for bad, msg in [('{"x": 1}', "without an 'ids'"), ('[[1, 2.5]]', "integers"), ("nonsense", "neither JSON"), ("[]", "no ids")]:
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(IdsFileError, match=msg):
            read_ids_file(tmp_path / "bad.json")


def test_decode_command(tmp_path, standin, capsys):
    (tmp_path / "ids.json").write_text(json.dumps([list(range(32)), [5] * 32]))
    rc = main(["-q", "decode", str(tmp_path / "ids.json"), "--preset", "tiny", "--decoder", str(standin), "--out", str(tmp_path / "o")])
    assert rc == 0
    files = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert files == ["0000.png", "0001.png"]
    assert Image.open(tmp_path / "o" / "0000.png").size == (64, 64)


def test_decode_command_errors(tmp_path, standin, capsys):
    (tmp_path / "short.json").write_text(json.dumps([1, 2, 3]))
    assert main(["decode", str(tmp_path / "short.json"), "--decoder", str(standin), "--out", str(tmp_path / "o")]) == 1
    assert "shape (B, 32)" in capsys.readouterr().err
    (tmp_path / "range.json").write_text(json.dumps([5000] * 32))
    assert main(["decode", str(tmp_path / "range.json"), "--decoder", str(standin), "--out", str(tmp_path / "o")]) == 1
    assert "out of range [0, 1024)" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "range.json"), "--decoder", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "no such decoder" in capsys.readouterr().err
    rc = main(["decode", str(tmp_path / "range.json"), "--preset", "seed1", "--out", str(tmp_path / "o")])
    assert rc == 1 and "Stable Diffusion" in capsys.readouterr().err


def test_reconstruct_command_writes_grid(tmp_path, standin, shapes):
    from seedtok.data.shapes import render_scene, sample_scene
    import random

    paths = []
    for i in range(2):
        p = tmp_path / f"s{i}.png"
        render_scene(sample_scene(random.Random(i))).save(p)
        paths.append(str(p))
    out = tmp_path / "rec"
    assert main(["-q", "reconstruct", *paths, "--preset", "tiny", "--decoder", str(standin), "--out", str(out)]) == 0
    grid = Image.open(out / "grid.png")
    assert grid.size == (2 * 64 + 3 * 4, 2 * (64 + 4) + 4)
    rows = [json.loads(line) for line in (out / "ids.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["ids"]) == 32 for r in rows)


def test_train_decoder_resume_and_bench(tmp_path, shapes):
    run = tmp_path / "run"
    common = ["-q", "train", "decoder", "--kind", "onestep", "--data", str(shapes), "--out", str(run), "--width", "32",
              "--batch-size", "4", "--ckpt-every", "2", "--eval-samples", "3", "--threads", "1"]  # fmt: skip
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    prov = json.loads((run / "decoder" / "provenance.json").read_text())
    assert prov["steps"] == 4 and prov["metrics"]["sd_upper_bound"]["scenes"] == 3
    out = tmp_path / "b.json"
    rc = main(["-q", "bench", "decode", "--data", str(shapes), "--decoder", str(run / "decoder"), "--num", "3",
               "--repeats", "1", "--out", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    entry = res["decoders"][str(run / "decoder")]
    assert entry["kind"] == "onestep" and entry["latency"]["median_s_per_image"] > 0
    assert entry["training"]["steps"] == 4 and res["parser_on_ground_truth"]["color_shape"] == 1.0
