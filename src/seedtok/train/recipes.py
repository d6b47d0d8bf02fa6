"""The paper's SEED-1 training recipe as data, and the compute it implies (DESIGN.md sec. 1).

Batch sizes, learning rates, warm-up and weight decay follow the paper and the reference
configs; the paper trained on 5M image-text pairs (CC3M, Unsplash, COCO) with 64 V100s for
5.7 days in all. Costs here are *estimates*: FLOPs per sample counted by torch on the meta
device (forward of each part; a trained part costs ~3x its forward with the backward pass),
turned into GPU-hours at an assumed fraction of the GPU's peak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

PAPER_PAIRS = 5_000_000
PAPER_GPU_HOURS = 64 * 5.7 * 24  # 64 V100 x 5.7 days, tokenizer training in all (paper)
GPU_PEAK_TFLOPS = {"V100 (fp16)": 125.0, "A100 (bf16)": 312.0, "H100 SXM (bf16)": 989.0}


@dataclass(frozen=True)
class StageRecipe:
    stage: str
    trains: str
    frozen: str
    global_batch: int
    lr: float
    warmup_steps: int
    weight_decay: float
    schedule: str = "linear warm-up, cosine decay"
    optimizer: str = "AdamW (no decay on 1-D parameters)"


SEED1_RECIPE = {
    "stage1": StageRecipe("stage1", "ln_vision + Causal Q-Former (+ text branch)", "EVA ViT-g", 4096, 3e-5, 2000, 0.05),
    "stage2": StageRecipe("stage2", "codebook, task layers, de-tokenizer (blocks + Reverse Q-Former + projection)",
                          "EVA ViT-g, Causal Q-Former", 16384, 1e-4, 2000, 0.05),
}


def _forward_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def seed1_flops_per_sample(text_len: int = 32) -> dict[str, int]:
    """Forward FLOPs per image of each SEED-1 part (meta device: nothing is allocated)."""
    from seedtok.config import get_preset
    from seedtok.models import SeedTokenizer

    with torch.device("meta"), torch.no_grad():
        m = SeedTokenizer(get_preset("seed1-stage1")).eval().requires_grad_(False)
        px = torch.empty(1, 3, 224, 224)
        feats = torch.empty(1, 257, 1408)
        causal = torch.empty(1, 32, 768)
        codes = torch.empty(1, 32, 32)
        ids = torch.zeros(1, text_len, dtype=torch.long)
        return {
            "vit": _forward_flops(lambda: m.vision(px)),
            "qformer_queries": _forward_flops(lambda: m.qformer(feats)),
            "qformer_text": _forward_flops(lambda: m.qformer.encode_text(ids)),
            "codebook_and_detokenizer": _forward_flops(lambda: (m.quantizer.nearest(m.encode_task(causal)), m.decode_codes(codes))),
        }


def seed1_costs(efficiency: float = 0.4, epochs: float = 1.0) -> dict[str, Any]:
    """GPU-hours per epoch over the paper's 5M pairs, with and without cached ViT features."""
    f = seed1_flops_per_sample()
    per_sample = {
        "stage1": f["vit"] + 3 * (f["qformer_queries"] + f["qformer_text"]),
        "stage1_cached_vit": 3 * (f["qformer_queries"] + f["qformer_text"]),
        "stage2": f["vit"] + f["qformer_queries"] + 3 * f["codebook_and_detokenizer"],
        "stage2_cached_vit": f["qformer_queries"] + 3 * f["codebook_and_detokenizer"],
    }
    table = {}
    for name, flops in per_sample.items():
        total = flops * PAPER_PAIRS * epochs
        table[name] = {
            "gflop_per_sample": flops / 1e9,
            "steps_per_epoch": PAPER_PAIRS // SEED1_RECIPE[name.split("_")[0]].global_batch,
            "gpu_hours": {gpu: total / (tf * 1e12 * efficiency) / 3600 for gpu, tf in GPU_PEAK_TFLOPS.items()},
        }
    return {
        "label": f"ESTIMATE: {epochs:g} epoch(s) over {PAPER_PAIRS:,} pairs at {efficiency:.0%} of peak",
        "forward_gflop_per_sample": {k: v / 1e9 for k, v in f.items()},
        "stages": table,
        "paper_reported_gpu_hours": PAPER_GPU_HOURS,
        "recipe": {k: asdict(v) for k, v in SEED1_RECIPE.items()},
    }
