"""Scale-out smoke: stage 3 (LoRA on SEED tokens) on 2 CPU processes through `accelerate launch`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seedtok
from seedtok.cli import main
from seedtok.mllm.standin import STANDIN_DIR


@pytest.mark.skipif(not (STANDIN_DIR / "config.json").is_file(), reason="stand-in LLM not shipped")
def test_two_process_stage3_smoke(tmp_path):
    pytest.importorskip("accelerate")
    from seedtok.data.shapes import write_shapes_dataset

    write_shapes_dataset(tmp_path / "shapes", 40, seed=4)
    # One process builds the id cache (pre-tokenized images) first: tokenizing a dataset is a
    # separate offline job (`seedtok tokenize-dataset` at scale), not something every rank redoes.
    one = tmp_path / "one"
    assert main(["-q", "train", "llm", "--data", str(tmp_path / "shapes"), "--out", str(one), "--steps", "1"]) == 0
    two = tmp_path / "two"
    two.mkdir()
    for cache in one.glob("ids-train-*"):
        shutil.copytree(cache, two / cache.name)
    src = str(Path(seedtok.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "seedtok.cli", "-q", "train", "llm",
           "--data", str(tmp_path / "shapes"), "--out", str(two), "--steps", "2", "--threads", "1"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    latest = (two / "checkpoints" / "latest").read_text().strip()
    info = json.loads((two / "checkpoints" / latest / "run.json").read_text())
    assert info["world_size"] == 2
    assert (two / "adapter_model.safetensors").is_file() and (two / "seed_llm.json").is_file()
    losses = [json.loads(l)["loss"] for l in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(l == l and l < 1e4 for l in losses)
