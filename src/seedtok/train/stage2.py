"""Stage 2: VQ codebook + de-tokenizer targets (paper sec. 3.1, "Training Stage II").

The Causal Q-Former is frozen (its causal embeddings are computed once up front). Trained:
``encode_task`` -> VQ codebook -> ``decode_task``, then two heads on the de-quantized codes:
- the *reconstruction head* (its own ``pos_embed`` + blocks; training-only, kept out of the
  inference :class:`SeedTokenizer`) regresses the causal embeddings by cosine similarity;
- the inference path ``code_decoder`` -> Reverse Q-Former -> ``generation_proj`` regresses the
  frozen text encoder's states of the caption (SD's CLIP-L for ``seed1``, MiniLM in the tiny
  world).
Loss = 5 * L_vq + 2 * (1 - cos) + 0.5 * MSE (reference weights). An optional *generation
phase* (``generation_steps`` > 0) follows: codebook, ``encode_task`` and ``decode_task`` frozen,
the generation path alone regresses the targets from the fixed de-quantized codes (half the cost
of a joint step; the path needs far more steps than the codebook, docs/training.md). An optional fourth weight
adds a contrastive term on the codes (the last *reconstructed* query through stage 1's frozen
``vision_proj`` against the frozen text branch's [CLS]); the ablation's "contrastive only"
variant sets the weights to (5, 0, 0, 1) (``seedtok ablate``, issue 11).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.config import TokenizerConfig
from seedtok.losses import contrastive_loss, stage2_loss
from seedtok.models import SeedTokenizer
from seedtok.models.tokenizer import CodeDecoder
from seedtok.train.codebook import CodebookMonitor
from seedtok.train.core import TrainArgs, TrainingError, freeze
from seedtok.train.data import ImageTextSet, TensorBatches, frozen_features, map_in_chunks
from seedtok.train.loop import fit, make_accelerator

DEFAULT_WEIGHTS = (5.0, 2.0, 0.5)  # VQ, causal-embedding cosine, generation MSE (+ optional contrastive)
# Learning-rate factor of the generation path (code_decoder -> Reverse Q-Former -> generation_proj)
# over stage 2's base lr (``--generation-lr-scale``). Trained alone on fixed oracle codes, that path
# went from 0.20x the per-position-mean MSE (lr 1e-3, 1,000 steps) to 0.14x (3e-3, 600 steps), but
# inside the joint stage-2 run 3x was worse (0.49x vs 0.46x, seed 0), so the default stays 1
# (docs/training.md).
GENERATION_LR_SCALE = 1.0
GENERATION_PATH = ("code_decoder.", "reverse_qformer.", "generation_proj.")
# lr factor of the generation phase over stage 2's base lr (trained alone on fixed inputs, the path
# learned best at 3e-3: docs/training.md).
GENERATION_PHASE_LR_SCALE = 3.0
# Loss weight, in the generation phase, of the target positions past the caption's end (the text
# encoder's padding states; ``generation_pad_weight``). 1 is the plain MSE over all positions.
# The padding half of a shapes-world target carries no object words and drawing barely reads
# it (the shipped decoder draws 0.993 per object from the true caption words with *predicted*
# padding states); weighting it 0.3 let the path spend its steps on the words: 0.044 x the
# per-position-mean MSE after 1,600 steps x 64 against 0.065 x with weight 1 (docs/training.md).
GENERATION_PAD_WEIGHT = 1.0


def loss_weights(weights) -> tuple[float, float, float, float]:
    """(vq, cosine, mse[, contrastive]) -> a checked 4-tuple."""
    w = tuple(float(x) for x in weights)
    if len(w) == 3:
        w = w + (0.0,)
    if len(w) != 4 or any(not x >= 0 for x in w) or w[0] <= 0 or not any(w[1:]):
        raise TrainingError(f"stage-2 loss weights must be (vq>0, cos, mse[, contrastive]) >= 0 with one task term > 0, got {weights!r}")
    return w  # type: ignore[return-value]


class ReconstructionHead(CodeDecoder):
    """Training-only ``pos_embed`` + ViT blocks: de-quantized codes (B, Q, H) -> causal (B, Q, H)."""

    @classmethod
    def for_config(cls, config: TokenizerConfig) -> "ReconstructionHead":
        return cls(config.decoder, config.qformer.hidden_size, config.num_tokens)


class Stage2Module(nn.Module):
    """Trainable part of stage 2 (see module docstring)."""

    def __init__(self, tokenizer: SeedTokenizer, recon: ReconstructionHead, weights=DEFAULT_WEIGHTS) -> None:
        super().__init__()
        self.weights = loss_weights(weights)
        # Stage 1's projection and temperature, frozen (only used by the contrastive term).
        self.vision_proj = tokenizer.qformer.vision_proj if self.weights[3] > 0 else None
        self.temperature = float(tokenizer.qformer.temp.detach()) if self.weights[3] > 0 else 1.0
        self.encode_task = tokenizer.encode_task
        self.quantizer = tokenizer.quantizer
        self.decode_task = tokenizer.decode_task
        self.code_decoder = tokenizer.code_decoder
        self.reverse_qformer = tokenizer.reverse_qformer
        self.generation_proj = tokenizer.generation_proj
        self.recon = recon

    def reconstruct_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """code vectors (B, Q, D) -> reconstructed causal embeddings (B, Q, H)."""
        return self.recon(self.decode_task(codes))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        causal = batch["causal_embeds"]  # (B, Q, H), frozen
        z = self.encode_task(causal)  # (B, Q, D)
        q = self.quantizer(z)
        up = self.decode_task(q.quantized)  # (B, Q, H)
        recon = self.recon(up)
        target = batch["target"]
        if self.weights[2] > 0:
            generation = self.generation_proj(self.reverse_qformer(self.code_decoder(up)))  # (B, G_len, G)
        else:  # the generation path trains only in the generation phase: its MSE is only logged, on 8 samples
            with torch.no_grad():
                generation = self.generation_proj(self.reverse_qformer(self.code_decoder(up[:8].detach())))
            target = target[:8]
        losses = stage2_loss(q.loss, recon, causal, generation, target, self.weights[:3])
        out = {"loss": losses.total, "vq": losses.vq, "cos": losses.cosine, "mse": losses.mse}
        if self.vision_proj is not None:
            img = F.normalize(self.vision_proj(recon[:, -1]), dim=-1)
            con, acc = contrastive_loss(img, batch["text_feats"], torch.tensor(self.temperature, device=img.device))
            out.update(loss=out["loss"] + self.weights[3] * con, contrastive=con.detach(), i2t_acc=acc)
        return {
            **out,
            "batch_perplexity": q.perplexity.detach(),
            "_ids": q.ids.detach(),
            "_z": z.detach(),
        }


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                 pad_weight: float = GENERATION_PAD_WEIGHT) -> torch.Tensor:
    """MSE over (B, L, G) with the positions where ``mask`` (B, L) is 0 (the caption's padding)
    weighted ``pad_weight`` against 1 for the caption's tokens; a weighted *mean*, so weight 1
    (or no mask) is exactly ``F.mse_loss``."""
    if mask is None or pad_weight == 1.0:
        return F.mse_loss(prediction, target)
    weight = torch.where(mask.bool(), 1.0, float(pad_weight)).to(prediction.dtype)  # (B, L)
    per_position = ((prediction - target) ** 2).mean(-1)
    return (per_position * weight).sum() / weight.sum().clamp_min(1e-12)


class GenerationPhase(nn.Module):
    """The generation path alone: fixed de-quantized codes ``codes_up`` (B, Q, H) -> MSE to the
    targets (the padding positions weighted ``pad_weight`` when the batch has ``target_mask``)."""

    def __init__(self, tokenizer: SeedTokenizer, pad_weight: float = GENERATION_PAD_WEIGHT) -> None:
        super().__init__()
        if not pad_weight >= 0:
            raise TrainingError(f"generation_pad_weight must be >= 0, got {pad_weight!r}")
        self.pad_weight = float(pad_weight)
        self.code_decoder = tokenizer.code_decoder
        self.reverse_qformer = tokenizer.reverse_qformer
        self.generation_proj = tokenizer.generation_proj

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        generation = self.generation_proj(self.reverse_qformer(self.code_decoder(batch["codes_up"]))).float()
        target = batch["target"].float()
        loss = weighted_mse(generation, target, batch.get("target_mask"), self.pad_weight)
        mse = loss if self.pad_weight == 1.0 or "target_mask" not in batch else F.mse_loss(generation, target)
        return {"loss": loss, "mse": mse.detach()}


@torch.no_grad()
def dequantized_codes(tokenizer: SeedTokenizer, causal: torch.Tensor) -> torch.Tensor:
    """Causal embeddings (N, Q, H) -> what the generation path reads at inference: decode_task(codes)."""
    return map_in_chunks(lambda c: tokenizer.decode_task(tokenizer.quantizer.lookup(
        tokenizer.quantizer.nearest(tokenizer.encode_task(c)))), causal)


def train_generation_phase(tokenizer: SeedTokenizer, data, args: TrainArgs, steps: int, accelerator=None) -> dict[str, Any]:
    """Stage 2's generation phase (module docstring) on batches of ``codes_up`` + ``target`` (+
    ``target_mask``): ``steps`` steps of ``generation_batch_size`` samples (default: stage 2's
    batch size) at ``GENERATION_PHASE_LR_SCALE`` x the base lr, padding positions weighted
    ``generation_pad_weight``; checkpoints and metrics in ``<out>/generation`` (resumable like
    any run). Returns its summary (steps, wall_s, last)."""
    if steps < 0:
        raise TrainingError(f"generation_steps must be >= 0, got {steps}")
    requested = args.extra.get("generation_batch_size")
    batch_size = args.batch_size if requested is None else int(requested)
    if batch_size < 1:
        raise TrainingError(f"generation_batch_size must be >= 1, got {batch_size}")
    freeze(tokenizer)
    module = GenerationPhase(tokenizer, float(args.extra.get("generation_pad_weight", GENERATION_PAD_WEIGHT)))
    module.train().requires_grad_(True)
    phase = dataclasses.replace(args, out=str(Path(args.out) / "generation"), steps=steps, batch_size=batch_size,
                                lr=args.lr * GENERATION_PHASE_LR_SCALE, warmup=min(args.warmup, steps), samples=None,
                                extra={**args.extra, "phase": "generation"})
    run_info = {"stage": "stage2-generation", "config": tokenizer.config.to_dict()}
    summary = fit(module, data, phase, run_info, None, accelerator)
    return {"steps": summary["steps"], "wall_s": summary["wall_s"], "last": summary["last"]}


@torch.no_grad()
def init_generation_head(tokenizer: SeedTokenizer, targets: torch.Tensor) -> None:
    """Start ``generation_proj`` at the target statistics: bias = the per-dimension mean of the
    targets (B, L, G), weights scaled down so the start is that mean. Text-encoder states have
    large per-dimension means (half of MiniLM's target energy); from PyTorch's default init AdamW
    moves a bias by at most the sum of its learning rates, and stage 2 settled near a constant
    worse than the per-position mean (docs/training.md)."""
    proj = tokenizer.generation_proj
    proj.bias.copy_(targets.float().mean(dim=(0, 1)))
    proj.weight.mul_(0.1)


def prepare_stage2(tokenizer: SeedTokenizer, recon: ReconstructionHead | None = None, weights=DEFAULT_WEIGHTS) -> Stage2Module:
    """Freezing policy of stage 2: ViT, ln_vision and Causal Q-Former frozen; the rest trains."""
    freeze(tokenizer)
    module = Stage2Module(tokenizer, recon or ReconstructionHead.for_config(tokenizer.config), weights)
    module.train().requires_grad_(True)
    if module.vision_proj is not None:
        module.vision_proj.eval().requires_grad_(False)
    return module


@torch.no_grad()
def stage2_tensors(tokenizer: SeedTokenizer, data: ImageTextSet, targets: torch.Tensor,
                   feature_cache: str | None = None) -> dict[str, torch.Tensor]:
    """Frozen causal embeddings (B, Q, H; optionally cached on disk) and the text-encoder targets."""
    tokenizer.eval()
    frozen = torch.nn.ModuleList([tokenizer.vision, tokenizer.ln_vision, tokenizer.qformer])
    causal = frozen_features(frozen, tokenizer.causal_embeddings, data.pixels, feature_cache, "causal")
    want = (tokenizer.config.generation_len, tokenizer.config.generation_dim)
    if tuple(targets.shape[1:]) != want:
        raise ValueError(f"stage-2 targets have shape {tuple(targets.shape[1:])}, the preset needs {want}")
    return {"causal_embeds": causal, "target": targets.float()}


def train_stage2(
    tokenizer: SeedTokenizer,
    tensors: dict[str, torch.Tensor],
    args: TrainArgs,
    recon: ReconstructionHead | None = None,
    reinit: bool = False,
    health_every: int = 50,
    accelerator=None,
) -> tuple[dict[str, Any], Stage2Module]:
    """Run stage 2 in place on ``tokenizer``; returns (loop summary, trained module)."""
    if args.extra.get("init_generation_head", True):
        init_generation_head(tokenizer, tensors["target"])
    module = prepare_stage2(tokenizer, recon, args.extra.get("loss_weights", DEFAULT_WEIGHTS))
    scale = float(args.extra.setdefault("generation_lr_scale", GENERATION_LR_SCALE))
    if not scale > 0:
        raise TrainingError(f"generation_lr_scale must be > 0, got {scale!r}")
    module.lr_scales = dict.fromkeys(GENERATION_PATH, scale)
    acc = accelerator or make_accelerator(args)
    monitor = CodebookMonitor(module.quantizer, tokenizer.config.num_tokens, args.seed, acc, reinit, health_every)
    run_info = {"stage": "stage2", "config": tokenizer.config.to_dict(), "reinit": reinit, "health_every": health_every}
    summary = fit(module, TensorBatches(tensors, args.seed), args, run_info, monitor, acc)
    summary["codebook"] = monitor.last_report
    steps = int(args.extra.get("generation_steps", 0))
    if steps:
        fixed = {"codes_up": dequantized_codes(tokenizer, tensors["causal_embeds"]), "target": tensors["target"]}
        if "target_mask" in tensors:
            fixed["target_mask"] = tensors["target_mask"]
        codes = TensorBatches(fixed, args.seed + 1)
        summary["generation_phase"] = train_generation_phase(tokenizer, codes, args, steps, acc)
    return summary, module
