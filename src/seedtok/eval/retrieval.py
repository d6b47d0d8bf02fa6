"""Zero-shot image-text retrieval, paper Table 1 protocol (Flickr30K in the paper).

Image->text: for each image, rank all captions by similarity; a hit at k when one of the top-k
captions describes the same scene (``match``). Text->image: for each caption, rank all images;
a hit when one of the top-k images shows the scene it describes. Recall@k = hits / queries.
No model code here: callers pass L2-normalised features and the match matrix.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

KS = (1, 5, 10)


def match_matrix(keys_a: Sequence[str], keys_b: Sequence[str]) -> torch.Tensor:
    """(Na, Nb) bool: True where the scene keys (e.g. scene signatures) are equal."""
    ids: dict[str, int] = {}
    a = torch.tensor([ids.setdefault(k, len(ids)) for k in keys_a])
    b = torch.tensor([ids.setdefault(k, len(ids)) for k in keys_b])
    return a[:, None] == b[None, :]


def recall_at_k(sim: torch.Tensor, match: torch.Tensor, ks: Sequence[int] = KS) -> dict[int, float]:
    """sim, match (Nq, Nc): queries in rows. Recall@k over the rows."""
    k_max = min(max(ks), sim.shape[1])
    top = sim.topk(k_max, dim=1).indices  # (Nq, k_max)
    hits = match.gather(1, top)  # (Nq, k_max) bool
    return {k: float(hits[:, : min(k, k_max)].any(dim=1).float().mean()) for k in ks}


def retrieval_scores(
    image_feats: torch.Tensor, text_feats: torch.Tensor, match: torch.Tensor, ks: Sequence[int] = KS
) -> dict[str, Any]:
    """image_feats (Ni, P), text_feats (Nt, P) normalised; match (Ni, Nt) -> i2t/t2i R@k."""
    sim = image_feats.float() @ text_feats.float().t()
    i2t, t2i = recall_at_k(sim, match, ks), recall_at_k(sim.t(), match.t(), ks)
    out: dict[str, Any] = {f"i2t_r{k}": v for k, v in i2t.items()}
    out.update({f"t2i_r{k}": v for k, v in t2i.items()})
    out["num_images"], out["num_texts"] = int(sim.shape[0]), int(sim.shape[1])
    return out
