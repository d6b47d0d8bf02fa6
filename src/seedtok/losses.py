"""Training losses of SEED (paper sec. 3.1, "Training Stage I / II").

- :func:`contrastive_loss`: stage-1 image-text contrastive loss (BLIP-2 ITC as SEED uses it):
  the last causal query against the text [CLS], learnable temperature, label smoothing 0.1,
  symmetric cross-entropy. Negatives come from every rank *only* when a process group with
  world size > 1 exists; the gather is gradient-correct, so W ranks with per-rank batch b
  compute the same loss and (after DDP's gradient averaging) the same gradients as one
  process with batch W*b.
- :func:`cosine_reconstruction_loss`: stage-2 ``1 - cos(reconstructed, causal)``.
- :func:`stage2_loss`: ``w_vq * L_vq + w_cos * L_cos + w_mse * MSE(generation, target)``.

The VQ loss itself is computed by :class:`seedtok.models.VectorQuantizer`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

LABEL_SMOOTHING = 0.1


def world_info() -> tuple[int, int]:
    """(rank, world_size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every rank's gradient for the local slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, world = world_info()
        ctx.rank, ctx.batch = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(b, ...) per rank -> (W*b, ...) in rank order; identity when world size is 1."""
    if world_info()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)


def contrastive_loss(
    image_feats: torch.Tensor,
    text_feats: torch.Tensor,
    temp: torch.Tensor,
    label_smoothing: float = LABEL_SMOOTHING,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE with label smoothing (paper sec. 3.1, stage I).

    image_feats, text_feats: (b, P) L2-normalised, row i of both is a positive pair.
    Returns (loss, i2t accuracy of the local rows). Every rank computes its local rows against
    all gathered columns; the mean over ranks equals the single-process loss on the global batch.
    """
    rank, _ = world_info()
    all_images, all_texts = gather_with_grad(image_feats), gather_with_grad(text_feats)
    b = image_feats.shape[0]
    targets = torch.arange(rank * b, rank * b + b, device=image_feats.device)
    logits_i2t = image_feats @ all_texts.t() / temp  # (b, W*b)
    logits_t2i = text_feats @ all_images.t() / temp  # (b, W*b)
    loss = 0.5 * (
        F.cross_entropy(logits_i2t, targets, label_smoothing=label_smoothing)
        + F.cross_entropy(logits_t2i, targets, label_smoothing=label_smoothing)
    )
    acc = (logits_i2t.argmax(dim=1) == targets).float().mean()
    return loss, acc.detach()


def cosine_reconstruction_loss(reconstructed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos`` over tokens: (B, Q, H) vs (B, Q, H) (target is not back-propagated)."""
    return (1.0 - F.cosine_similarity(reconstructed, target.detach(), dim=-1)).mean()


class Stage2Loss(NamedTuple):
    total: torch.Tensor
    vq: torch.Tensor
    cosine: torch.Tensor
    mse: torch.Tensor


def stage2_loss(
    vq_loss: torch.Tensor,
    reconstructed: torch.Tensor,
    causal: torch.Tensor,
    generation: torch.Tensor,
    target: torch.Tensor,
    weights: tuple[float, float, float] = (5.0, 2.0, 0.5),
) -> Stage2Loss:
    """Stage-II objective (paper sec. 3.1; weights 5 / 2 / 0.5 of the reference configs)."""
    cos = cosine_reconstruction_loss(reconstructed, causal)
    mse = F.mse_loss(generation, target.detach())
    total = weights[0] * vq_loss + weights[1] * cos + weights[2] * mse
    return Stage2Loss(total, vq_loss.detach(), cos.detach(), mse.detach())
