"""``seedtok demo --train``: rebuild the shipped tiny model from the shipped stand-ins.

The same commands a user would type, run in-process through :func:`seedtok.cli.main` (so the
recipe is exactly the CLI's defaults, and the provenance records the commands verbatim):

1. ``seedtok data shapes --num 16000 --seed 0``              the training world (data seed 0)
2. ``seedtok train stage1 --scene-weight 1 --scene-read slots``
                                                              Causal Q-Former from the shipped stand-ins
3. ``seedtok train stage2 --loss-weights 5 2 0 1 --steps 300 --generation-steps 2000
   --generation-batch-size 64 --generation-pad-weight 0.3``
                                                              codebook, then the generation path
4. ``seedtok train llm --preset tiny-full``                   stage 3 on the shipped stand-in LM
5. :func:`seedtok.release.package_release`                     -> ``WORK/model`` (the shipped layout)

Each stage that already finished in ``WORK`` is skipped and an interrupted one resumes from its
last checkpoint (``--resume``), so rerunning the same command continues an interrupted rebuild.
``scale`` < 1 shrinks every stage's steps and the training set (smoke tests only).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from seedtok.fileio import atomic_write_json

log = logging.getLogger(__name__)

FULL_DATA = 16000
LLM_STEPS = 1500  # stage 3; the tokenizer's steps are the bench recipe's (seedtok.train.bench)


def _command(argv: list[str]) -> str:
    return "seedtok " + " ".join(a for a in argv if a != "-q")


def _run(argv: list[str], commands: list[str], times: dict[str, Any], name: str) -> None:
    from seedtok.cli import main

    commands.append(_command(argv))
    print(f"   $ {_command(argv)}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    rc = main(argv)
    times[name] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
    if rc:
        raise RuntimeError(f"`seedtok {' '.join(argv)}` failed with exit code {rc}")


def _done(path: Path) -> bool:
    return (path / "model.safetensors").is_file()


def stage_commands(work: Path, data: Path, scale: float, threads: int | None, seed: int,
                   progress: bool = True) -> list[tuple[str, list[str], Path]]:
    """(name, argv, output that marks it done) for each stage."""
    from seedtok.train.bench import (TINY_GENERATION_BATCH, TINY_GENERATION_PAD_WEIGHT, TINY_GENERATION_STEPS,
                                     TINY_SCENE_WEIGHT, TINY_STAGE1_STEPS, TINY_STAGE2_STEPS, TINY_STAGE2_WEIGHTS)

    STEPS = {"stage1": TINY_STAGE1_STEPS, "stage2": TINY_STAGE2_STEPS, "generation": TINY_GENERATION_STEPS,
             "llm": LLM_STEPS}

    def n(stage: str) -> str:
        return str(STEPS[stage] if scale == 1.0 else max(2, round(STEPS[stage] * scale)))

    def steps(stage: str) -> list[str]:
        return [] if scale == 1.0 and stage != "stage2" else ["--steps", n(stage)]

    thr = ["--threads", str(threads)] if threads else []
    common = ["--seed", str(seed), *thr]
    q = [] if progress else ["-q"]
    small = [] if scale == 1.0 else ["--batch-size", "16", "--ckpt-every", "1000"]
    return [
        ("stage1", [*q, "train", "stage1", "--data", str(data), "--out", str(work / "stage1"), *steps("stage1"),
                    "--scene-weight", str(TINY_SCENE_WEIGHT), "--scene-read", "slots", *small, *common], work / "stage1"),
        ("stage2", [*q, "train", "stage2", "--data", str(data), "--out", str(work / "stage2"), "--init", str(work / "stage1"),
                    "--loss-weights", *map(str, TINY_STAGE2_WEIGHTS), *steps("stage2"), "--generation-steps", n("generation"),
                    "--generation-batch-size", str(TINY_GENERATION_BATCH if scale == 1.0 else 16),
                    "--generation-pad-weight", str(TINY_GENERATION_PAD_WEIGHT), *small, *common], work / "stage2"),
        ("stage3", [*q, "train", "llm", "--data", str(data), "--out", str(work / "llm"), "--tokenizer", str(work / "stage2"),
                    "--preset", "tiny-full", *steps("llm"), *common], work / "llm"),
    ]


def build_model(work: str | os.PathLike, data: str | None = None, scale: float = 1.0, threads: int | None = None,
                seed: int = 0, progress: bool = True) -> Path:
    """Run the recipe in ``work``; returns the packaged model directory ``work/model``."""
    from seedtok.release import package_release

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    times: dict[str, Any] = {}
    t0 = time.perf_counter()
    data_dir = Path(data) if data else work / "data"
    print(f"== train: rebuild the tiny SEED model from the shipped stand-ins in {work} ==", flush=True)
    if not (data_dir / "index.json").is_file():
        num = FULL_DATA if scale == 1.0 else max(200, round(FULL_DATA * scale))
        _run(["-q", "data", "shapes", "--out", str(data_dir), "--num", str(num), "--seed", "0"], commands, times, "data")
    for name, argv, done in stage_commands(work, data_dir, scale, threads, seed, progress):
        if _done(done):
            print(f"   {name}: already done in {done} (skipped)")
            commands.append(_command(argv))
            continue
        print(f"== train: {name}  [{time.perf_counter() - t0:5.0f} s] ==", flush=True)
        resume = ["--resume"] if (done / "checkpoints" / "latest").exists() else []  # an interrupted stage continues
        _run(argv + resume, commands, times, name)
    times["total_wall_s"] = round(time.perf_counter() - t0, 1)
    extra = {"rebuild": {"by": "seedtok demo --train", "scale": scale, "seconds": times}}
    package_release(work / "stage2", work / "llm", work / "model", commands, str(data_dir), extra=extra)
    atomic_write_json(work / "rebuild.json", {"commands": commands, "seconds": times})
    print(f"   model: {work / 'model'} ({times['total_wall_s']:.0f} s)")
    return work / "model"

