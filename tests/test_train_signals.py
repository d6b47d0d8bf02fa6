"""Crash safety of training (robustness issue): SIGTERM saves a final checkpoint and exits
cleanly; SIGKILL at random moments always leaves a loadable checkpoint, and resuming completes."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seedtok.fileio import load_tree
from seedtok.train.checkpoint import latest_checkpoint, verify_checkpoint

WORKER = Path(__file__).with_name("train_worker.py")


def _start(out, steps, resume=False, ckpt_every=2):
    cmd = [sys.executable, str(WORKER), "stage1", str(out), "--steps", str(steps), "--ckpt-every", str(ckpt_every)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd + (["--resume"] if resume else []), env=env, stderr=subprocess.PIPE, text=True)


def _checkpoint_loadable(out) -> int:
    """The latest checkpoint verifies against its manifest and all its parts load; -> its step."""
    path = latest_checkpoint(out)
    manifest = verify_checkpoint(path)
    from safetensors.torch import load_file

    assert load_file(str(path / "trainable.safetensors"))
    assert load_tree(path, "optimizer")["optimizer"]["state"]
    state = load_tree(path, "state")
    assert state["step"] == manifest["step"]
    return state["step"]


def _wait_for_checkpoint(out, timeout=120):
    t0 = time.time()
    while not (Path(out) / "checkpoints" / "latest").is_file():
        assert time.time() - t0 < timeout, "no checkpoint appeared"
        time.sleep(0.1)


def test_sigterm_saves_a_final_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, steps=10_000, ckpt_every=1000)  # periodic checkpoints far away
    # wait until training runs (metrics appear), then ask it to stop
    t0 = time.time()
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().strip():
        assert time.time() - t0 < 120 and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    step = _checkpoint_loadable(out)
    logged = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert step == logged[-1] and step < 1000  # the final checkpoint is the last completed step


@pytest.mark.slow
def test_sigkill_at_20_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    out, steps, rnd = tmp_path / "run", 40, random.Random(0)
    kills, resumed = 0, False
    while kills < 20:
        proc = _start(out, steps, resume=resumed)
        time.sleep(rnd.uniform(0.2, 4.0))
        if proc.poll() is not None:  # finished before the kill: start over for more kills
            assert proc.returncode == 0, proc.stderr.read()
            import shutil

            shutil.rmtree(out)
            resumed = False
            continue
        proc.kill()
        proc.wait()
        kills += 1
        if (out / "checkpoints" / "latest").is_file():
            _checkpoint_loadable(out)
            resumed = True
    proc = _start(out, steps, resume=resumed)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert _checkpoint_loadable(out) == steps
