"""Evaluation of a trained tokenizer (stages 1 + 2; paper Table 1 protocol, see
:mod:`seedtok.eval.retrieval`).

- from causal embeddings: the last causal query through ``vision_proj`` (stage 1's image side);
- from codes: the 32 ids -> codebook -> ``decode_task`` -> stage-2 reconstruction head ->
  reconstructed causal embeddings -> last one through ``vision_proj`` (the paper's "SEED
  (causal code)" row), so only what the discrete tokens carry is used;
text side: the Q-Former text branch's [CLS] through ``text_proj``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from seedtok.eval.codebook import codebook_report, position_counts
from seedtok.eval.retrieval import match_matrix, retrieval_scores
from seedtok.models import SeedTokenizer
from seedtok.train.data import ImageTextSet, map_in_chunks, scene_key
from seedtok.train.stage1 import text_inputs


def _match(data: ImageTextSet) -> torch.Tensor:
    keys = [scene_key(s, c) for s, c in zip(data.scenes or [None] * len(data), data.captions)]
    return match_matrix(keys, keys)


@torch.no_grad()
def encoder_probe(vision: torch.nn.Module, train_pixels: torch.Tensor, train_scenes: list, test: ImageTextSet) -> dict[str, Any]:
    """Per-cell-average linear probe of a (frozen) ViT: what cross-attention can read
    (:mod:`seedtok.eval.probe`); trained on ``train_pixels``, scored on ``test``."""
    from seedtok.eval.probe import cell_average, cell_probe, patch_cells

    vision.eval()
    cfg = vision.config
    cells = patch_cells(cfg.image_size, cfg.patch_size)
    feats = [cell_average(map_in_chunks(vision, px)[:, 1:], cells) for px in (train_pixels, test.pixels)]
    return cell_probe(feats[0], train_scenes, feats[1], test.scenes)


def pixel_probe(patch_size: int, train_pixels: torch.Tensor, train_scenes: list, test: ImageTextSet) -> dict[str, Any]:
    """The same probe on raw pixel patches (B, P, 3*p*p) averaged per cell: the baseline an
    encoder should beat."""
    from seedtok.eval.probe import cell_average, cell_probe, patch_cells

    def patches(px: torch.Tensor) -> torch.Tensor:
        return F.unfold(px, patch_size, stride=patch_size).transpose(1, 2)  # (B, P, 3*p*p)

    cells = patch_cells(test.pixels.shape[-1], patch_size)
    feats = [cell_average(patches(px), cells) for px in (train_pixels, test.pixels)]
    return cell_probe(feats[0], train_scenes, feats[1], test.scenes)


@torch.no_grad()
def text_features(model: SeedTokenizer, captions: list[str], text_cache: str | None = None) -> torch.Tensor:
    """Captions -> (N, P) normalised stage-1 text features (own text branch or MiniLM head)."""
    model.eval()
    inputs = text_inputs(model.qformer.config, captions, text_cache)
    return torch.cat([model.qformer.text_embedding({k: v[i : i + 256] for k, v in inputs.items()})
                      for i in range(0, len(captions), 256)])


@torch.no_grad()
def tokenizer_retrieval(model: SeedTokenizer, data: ImageTextSet, recon=None, text_cache: str | None = None) -> dict[str, Any]:
    """R@1/5/10 both ways from causal embeddings and (with the stage-2 ``recon`` head) from codes,
    plus codebook health on this split."""
    model.eval()
    causal = map_in_chunks(model.causal_embeddings, data.pixels)  # (N, Q, H)
    txt = text_features(model, data.captions, text_cache)
    match = _match(data)
    out: dict[str, Any] = {"causal": retrieval_scores(F.normalize(model.qformer.vision_proj(causal[:, -1]), dim=-1), txt, match)}
    if recon is not None:
        ids = model.quantizer.nearest(model.encode_task(causal))  # (N, Q)
        rebuilt = map_in_chunks(lambda c: recon(model.decode_task(c)), model.quantizer.lookup(ids))
        img = F.normalize(model.qformer.vision_proj(rebuilt[:, -1]), dim=-1)
        out["codes"] = retrieval_scores(img, txt, match)
        out["codes"]["reconstruction_cosine"] = float(F.cosine_similarity(rebuilt, causal, dim=-1).mean())
        out["codebook"] = codebook_report(position_counts(ids, model.config.codebook.codebook_size))
    return out
