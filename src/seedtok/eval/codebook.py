"""Codebook metrics (paper sec. 3.1, VQ codebook): codes used (count and % of the codebook),
perplexity, dead codes, and distinct codes per token position (the 32 causal slots)."""

from __future__ import annotations

from typing import Any

import torch


def position_counts(ids: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """ids (B, Q) -> counts (Q, K) of each code at each position."""
    Q = ids.shape[1]
    flat = ids.long() + torch.arange(Q, device=ids.device) * codebook_size
    return torch.bincount(flat.reshape(-1), minlength=Q * codebook_size).view(Q, codebook_size)


def codebook_report(counts: torch.Tensor) -> dict[str, Any]:
    """Health figures from per-position counts (Q, K)."""
    total = counts.sum(0).double()
    K = total.numel()
    probs = total / total.sum().clamp(min=1)
    perplexity = float(torch.exp(-(probs * probs.clamp(min=1e-12).log()).sum()))
    used = int((total > 0).sum())
    return {
        "codes_used": used,
        "codes_used_pct": 100.0 * used / K,
        "dead_codes": K - used,
        "perplexity": perplexity,
        "per_position_used": (counts > 0).sum(1).tolist(),
    }
