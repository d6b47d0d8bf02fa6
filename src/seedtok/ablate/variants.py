"""The ablation's variants, scales and headline metrics: data, not code paths (see
:mod:`seedtok.ablate`)."""

from __future__ import annotations

from dataclasses import dataclass

from seedtok.train.bench import (TINY_GENERATION_BATCH, TINY_GENERATION_PAD_WEIGHT, TINY_GENERATION_STEPS,
                                 TINY_SCENE_WEIGHT, TINY_STAGE1_STEPS, TINY_STAGE2_STEPS, TINY_STAGE2_WEIGHTS)


@dataclass(frozen=True)
class Variant:
    """One image tokenizer of the ablation: data, not a code path of its own.

    ``kind``: "seed" (the SEED stages), "pixel" (the 2-D pixel VQ baseline) or "oracle" (no
    tokenizer: the true scene written into the codes, :mod:`seedtok.mllm.oracle`, the LLM's
    ceiling). ``qformer_init``: "standin" (stage 1 starts from the shipped stand-in Q-Former,
    BLIP-2's analogue) or "none" (random). ``stage1`` False skips the contrastive stage: the
    Q-Former stays as initialised and frozen. ``generation_phase`` False skips stage 2's
    generation phase (the generation path is never fitted to the codes)."""

    name: str
    title: str
    claim: str
    kind: str = "seed"
    preset: str = "tiny-stage1"
    stage1: bool = True
    qformer_init: str = "standin"
    stage2_weights: tuple[float, ...] = TINY_STAGE2_WEIGHTS  # vq, cosine, generation MSE, contrastive on codes
    generation_phase: bool = True


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("seed", "SEED (causal Q-Former, stages 1+2)", "reference"),
    Variant("bidirectional", "bidirectional queries (causal mask off)", "(i) causal 1-D dependency",
            preset="tiny-stage1-bidirectional"),
    Variant("pixel-vq", "2-D pixel VQ tokens (reconstruction only)", "(ii) semantics over pixels", kind="pixel"),
    Variant("contrastive-only", "SEED without stage-2 reconstruction losses", "(iii) both objectives",
            stage2_weights=(5.0, 0.0, 0.0, 1.0), generation_phase=False),
    Variant("reconstruction-only", "SEED without any contrastive training", "(iii) both objectives",
            stage1=False, qformer_init="none", stage2_weights=(5.0, 2.0, 0.0, 0.0)),
    Variant("oracle", "oracle codes (the true scene; no tokenizer)", "ceiling", kind="oracle"),
)}


@dataclass(frozen=True)
class Scale:
    """Step counts and evaluation sizes, shared by every variant. The default is the shipped
    model's recipe (``seedtok demo --train``): stage 1 and 2 as ``seedtok train bench``,
    stage 3 the ``tiny-full`` preset."""

    steps1: int = TINY_STAGE1_STEPS
    scene_weight: float = TINY_SCENE_WEIGHT
    steps2: int = TINY_STAGE2_STEPS
    generation_steps: int = TINY_GENERATION_STEPS
    generation_batch: int = TINY_GENERATION_BATCH
    generation_pad_weight: float = TINY_GENERATION_PAD_WEIGHT
    steps_pixel: int = 2000  # batch 32: ~3.5 min on one thread
    stage3_preset: str = "tiny-full"
    steps3: int | None = None  # None: the preset's
    batch3: int | None = None
    batch_size: int = 128
    eval_num: int = 300  # test images for reconstruction / captioning / VQA / text-to-image
    limit: int | None = None  # training images (None: the whole split)


SCALES = {
    "default": Scale(),
    # A few steps each on a small dataset: exercises every stage (``make test``).
    "smoke": Scale(steps1=3, steps2=3, generation_steps=3, generation_batch=8, steps_pixel=3, steps3=3, batch3=4,
                   batch_size=16, eval_num=8, limit=64),
}

HEADLINE = (  # (key in a run's metrics, label)
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

# Which rows each claim compares (variant against the reference ``seed``), for the significance note.
COMPARISONS = (
    ("bidirectional", "seed"),
    ("pixel-vq", "seed"),
    ("contrastive-only", "seed"),
    ("reconstruction-only", "seed"),
    ("oracle", "seed"),
)
