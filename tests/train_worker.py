"""Subprocess entry for the distributed and resume tests (run as a script, not collected).

    train_worker.py grads OUT.pt      one stage-1 step on the micro world; rank 0 saves loss + grads
    train_worker.py stage1 OUT [--steps N] [--resume]   a stage-1 run on the micro world
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_helpers import blocks_world, micro_config  # noqa: E402

from seedtok.models import SeedTokenizer  # noqa: E402
from seedtok.train import TrainArgs  # noqa: E402
from seedtok.train.data import TensorBatches  # noqa: E402
from seedtok.train.loop import make_accelerator  # noqa: E402
from seedtok.train.stage1 import prepare_stage1, stage1_tensors, train_stage1  # noqa: E402

GLOBAL_BATCH = 8


def micro_stage1(seed: int = 0):
    torch.manual_seed(seed)
    tokenizer = SeedTokenizer(micro_config())
    data = blocks_world(32)
    data.pixels = torch.randn(data.pixels.shape, generator=torch.Generator().manual_seed(1))
    return tokenizer, stage1_tensors(tokenizer, data)


def stage1_loss_and_grads(accelerator) -> tuple[float, dict[str, torch.Tensor]]:
    """One forward/backward of stage 1 on global batch 0, split over the ranks."""
    tokenizer, tensors = micro_stage1()
    module = prepare_stage1(tokenizer)
    model = accelerator.prepare(module)
    world = accelerator.num_processes
    batch = TensorBatches(tensors, seed=0).batch(0, accelerator.process_index, world, GLOBAL_BATCH // world)
    loss = model(batch)["loss"]
    accelerator.backward(loss)
    mean_loss = float(accelerator.reduce(loss.detach(), reduction="mean"))
    grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    return mean_loss, grads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["grads", "stage1"])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--resume", action="store_true")
    a = parser.parse_args()
    torch.set_num_threads(1)
    if a.mode == "grads":
        acc = make_accelerator(TrainArgs(out=a.out))
        loss, grads = stage1_loss_and_grads(acc)
        if acc.is_main_process:
            torch.save({"loss": loss, "grads": grads, "world": acc.num_processes}, a.out)
        return
    tokenizer, tensors = micro_stage1()
    args = TrainArgs(out=a.out, steps=a.steps, batch_size=8, lr=1e-3, warmup=3, ckpt_every=5,
                     keep_checkpoints=3, resume=a.resume, progress=False)
    train_stage1(tokenizer, tensors, args)


if __name__ == "__main__":
    main()
