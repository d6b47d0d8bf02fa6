"""The ablation's variants, scales and headline metrics: data, not code paths (see
:mod:`seedtok.ablate`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """One image tokenizer of the ablation: data, not a code path of its own."""

    name: str
    title: str
    claim: str
    kind: str = "seed"  # "seed" (the SEED stages) or "pixel" (the 2-D pixel VQ baseline)
    preset: str = "tiny-stage1"
    stage1: bool = True  # False: skip the contrastive stage (random frozen Q-Former)
    stage2_weights: tuple[float, ...] = (5.0, 2.0, 0.5)  # vq, cosine, generation MSE[, contrastive]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("seed", "SEED (causal Q-Former, stages 1+2)", "reference"),
    Variant("bidirectional", "bidirectional queries (causal mask off)", "(i) causal 1-D dependency",
            preset="tiny-stage1-bidirectional"),
    Variant("pixel-vq", "2-D pixel VQ tokens (reconstruction only)", "(ii) semantics over pixels", kind="pixel"),
    Variant("contrastive-only", "SEED without stage-2 reconstruction losses", "(iii) both objectives",
            stage2_weights=(5.0, 0.0, 0.0, 1.0)),
    Variant("reconstruction-only", "SEED without the contrastive stage 1", "(iii) both objectives", stage1=False),
)}


@dataclass(frozen=True)
class Scale:
    """Step counts and evaluation sizes, shared by every variant."""

    steps1: int = 150
    steps2: int = 150
    steps_pixel: int = 2000  # batch 32: ~3.5 min on one thread, like the SEED stages
    steps3: int = 400
    batch_size: int = 128
    batch3: int = 32
    eval_num: int = 300  # test images for reconstruction / captioning / VQA / text-to-image
    limit: int | None = None  # training images (None: the whole split)


SCALES = {
    "default": Scale(),
    # A few steps each on a small dataset: exercises every stage (``make test``).
    "smoke": Scale(steps1=3, steps2=3, steps_pixel=3, steps3=3, batch_size=16, batch3=4, eval_num=8, limit=64),
}

HEADLINE = (  # (key in a run's metrics, label, higher is better)
    ("retrieval_i2t_r1_codes", "i2t R@1 (codes)"),
    ("reconstruction_color_shape", "reconstruction (obj.)"),
    ("caption_exact", "caption exact"),
    ("caption_cider", "caption CIDEr"),
    ("vqa_accuracy", "VQA acc."),
    ("t2i_color_shape", "text-to-image (obj.)"),
    ("t2i_exact", "text-to-image exact"),
    ("llm_image_loss", "LLM loss on image tokens"),
    ("llm_text_loss", "LLM loss on text"),
    ("code_entropy", "code entropy (nats/token)"),
    ("image_nats_from_text", "entropy − image loss"),
    ("codebook_used_pct", "codes used %"),
    ("codebook_perplexity", "code perplexity"),
)
