"""Two CPU processes (gloo, ``accelerate launch``) equal one process on the global batch, and a
killed run resumes to the exact losses of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import seedtok

WORKER = Path(__file__).resolve().parent / "train_worker.py"


def _env() -> dict[str, str]:
    src = str(Path(seedtok.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_two_process_stage1_equals_one_process(tmp_path):
    pytest.importorskip("accelerate")
    from train_worker import stage1_loss_and_grads

    from seedtok.train import TrainArgs
    from seedtok.train.loop import make_accelerator

    out = tmp_path / "grads.pt"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(WORKER), "grads", str(out)]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    assert two["world"] == 2
    loss, grads = stage1_loss_and_grads(make_accelerator(TrainArgs(out=str(tmp_path))))
    assert abs(two["loss"] - loss) <= 1e-5
    assert set(grads) == set(two["grads"])
    for name, g in grads.items():
        torch.testing.assert_close(two["grads"][name], g, rtol=0, atol=1e-5, msg=name)


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l]
    return {r["step"]: r["loss"] for r in rows}


def _worker(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(WORKER), "stage1", str(out), "--steps", "60", *extra]


def test_sigkill_then_resume_gives_identical_losses(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_worker(ref), env=_env(), check=True, timeout=240)
    proc = subprocess.Popen(_worker(killed), env=_env())
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 200
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed_from = int(latest.read_text().split("-")[1])
    assert proc.returncode == -signal.SIGKILL and resumed_from < 60, "the run finished before it was killed"
    subprocess.run(_worker(killed, "--resume"), env=_env(), check=True, timeout=240)
    want, got = _losses(ref), _losses(killed)
    assert sorted(got) == list(range(1, 61))
    assert [got[s] for s in range(resumed_from + 1, 61)] == [want[s] for s in range(resumed_from + 1, 61)]
