"""Codebook health and dead-code re-initialisation for stage 2 (paper sec. 3.1, VQ codebook).

Health, per window of steps and at eval time: codes used (count and % of the codebook),
perplexity, dead codes, and distinct codes per token position (the 32 causal slots).

Re-initialisation (an improvement for new runs, off for the SEED-1 reference recipe): at the
end of each window, codes no rank used are replaced by encoder outputs drawn from the current
global batch. Usage counts are all-reduced and the draw uses a generator seeded by the step,
so every rank replaces the same codes with the same vectors and the replicas stay equal. The
model never sees any of this: statistics are computed here and the weights edited in place.
"""

from __future__ import annotations

from typing import Any

import torch

from seedtok.eval.codebook import codebook_report, position_counts
from seedtok.models.quantizer import VectorQuantizer


class CodebookMonitor:
    """``after_step`` hook of stage 2: accumulates usage, reports and re-initialises per window."""

    def __init__(
        self, quantizer: VectorQuantizer, num_tokens: int, seed: int, accelerator, reinit: bool = False, window: int = 50
    ) -> None:
        self.quantizer, self.seed, self.acc = quantizer, seed, accelerator
        self.reinit, self.window = reinit, max(1, window)
        self.counts = torch.zeros(num_tokens, quantizer.config.codebook_size, dtype=torch.long)
        self.last_report: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts.copy_(state["counts"])

    def __call__(self, step: int, outputs: dict[str, Any]) -> dict[str, Any]:
        self.counts += position_counts(outputs["_ids"].cpu(), self.counts.shape[1])
        if (step + 1) % self.window:
            return {}
        counts = self.acc.reduce(self.counts.to(self.acc.device), reduction="sum").cpu()
        report = codebook_report(counts)
        if self.reinit and report["dead_codes"]:
            report["reinit_codes"] = self._reinit(counts.sum(0) == 0, outputs["_z"], step)
        self.counts.zero_()
        self.last_report = report
        return {f"codebook/{k}": v for k, v in report.items()}

    @torch.no_grad()
    def _reinit(self, dead: torch.Tensor, z: torch.Tensor, step: int) -> int:
        candidates = self.acc.gather(z.reshape(-1, z.shape[-1]).contiguous()).cpu()  # (W*B*Q, D)
        g = torch.Generator().manual_seed(self.seed * 7919 + step)
        pick = torch.randint(len(candidates), (int(dead.sum()),), generator=g)
        weight = self.quantizer.embedding.weight
        weight[dead.to(weight.device)] = candidates[pick].to(weight)
        return int(dead.sum())
