"""Code agreement between two encoders of the same tokenizer (e.g. fp32 and the int8 ViT).

A code flips where the second encoder's round-off moves a query's codebook input across the
boundary between its two nearest codes, so the agreement is reported beside the reference's
*nearest-code margin* (second-nearest minus nearest distance, in the codebook's own metric):
on random weights margins are tiny and flips mean little; on trained weights they are not.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from seedtok.models import SeedTokenizer

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5)


@torch.no_grad()
def nearest_margins(model: SeedTokenizer, causal: torch.Tensor) -> torch.Tensor:
    """Causal embeddings (B, Q, H) -> (B, Q) gap between the second-nearest and the nearest code
    distance (squared Euclidean; on unit vectors for a cosine codebook, as the lookup)."""
    z = model.encode_task(causal)
    flat, codes = model.quantizer._prepare(z.reshape(-1, z.shape[-1]).float(), model.quantizer.embedding.weight.float())
    dist = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * flat @ codes.t()  # (BQ, K)
    two = dist.topk(2, dim=1, largest=False).values
    return (two[:, 1] - two[:, 0]).view(z.shape[:-1])


@torch.no_grad()
def encode_all(model: SeedTokenizer, pixels: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) -> (ids (N, Q), causal embeddings (N, Q, H)), in batches."""
    ids, causal = zip(*(model.encode(pixels[i : i + batch]) for i in range(0, len(pixels), batch)))
    return torch.cat(ids), torch.cat(causal)


def agreement_report(
    ref: tuple[torch.Tensor, torch.Tensor], other: tuple[torch.Tensor, torch.Tensor], margins: torch.Tensor
) -> dict[str, Any]:
    """Compare (ids, causal) of a reference encoder with another's; ``margins`` (N, Q) are the
    reference's nearest-code margins."""
    ids_ref, causal_ref = ref
    ids, causal = other
    same = ids == ids_ref  # (N, Q)
    cos = F.cosine_similarity(causal, causal_ref, dim=-1)  # (N, Q)
    flipped = margins[~same]
    return {
        "images": int(ids.shape[0]),
        "positions": int(same.numel()),
        "agreement": float(same.float().mean()),
        "agreement_per_position": [round(float(a), 4) for a in same.float().mean(0)],
        "images_with_identical_codes": int(same.all(1).sum()),
        "causal_cosine_mean": float(cos.mean()),
        "causal_cosine_min": float(cos.min()),
        "margin_quantiles": {f"q{int(q * 100):02d}": float(margins.quantile(q)) for q in QUANTILES},
        "margin_of_flipped_codes": {
            "count": int(flipped.numel()),
            "max": float(flipped.max()) if flipped.numel() else None,
            "median": float(flipped.median()) if flipped.numel() else None,
        },
        "share_of_positions_with_margin_below_max_flipped": (
            float((margins <= flipped.max()).float().mean()) if flipped.numel() else 0.0
        ),
    }


def compare_encoders(ref: SeedTokenizer, other: SeedTokenizer, pixels: torch.Tensor, batch: int = 64) -> dict[str, Any]:
    """Encode ``pixels`` with both and report :func:`agreement_report`."""
    a = encode_all(ref, pixels, batch)
    b = encode_all(other, pixels, batch)
    return agreement_report(a, b, nearest_margins(ref, a[1]))
