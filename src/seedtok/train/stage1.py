"""Stage 1: the Causal Q-Former (paper sec. 3.1, "Training Stage I").

Image-text contrastive learning between the LAST causal query embedding (through
``vision_proj``, L2-normalised; under causal attention it is the only query that has seen all
others) and the text side (``text_proj``, L2-normalised): the [CLS] state of the Q-Former's own
text branch (SEED-1, BERT-initialised), or, in the tiny world (``text_tower='minilm'``), a small
trainable head over the frozen pretrained MiniLM-L6's token states; learnable temperature (init 0.07, clamped to [0.001, 0.5] as in BLIP-2), label smoothing 0.1,
negatives from every rank. The ViT is frozen, so its features are computed once up front;
``ln_vision`` and the Q-Former train.

Optional image-grounded generation term (``generation_weight`` > 0; the tiny world's default):
the de-tokenizer's generation path (``code_decoder`` -> Reverse Q-Former -> ``generation_proj``)
reads ALL causal embeddings, unquantized, and regresses the generation target (the text
encoder's states of the scene's canonical caption); loss = contrastive + weight * MSE. It is the
tiny world's analogue of what BLIP-2's pretraining (image-text contrastive + image-grounded text
generation) gives the Q-Former that SEED starts from: queries that carry the whole image, not
only what tells a batch's captions apart. Contrastive alone keeps too little of each scene for
the de-tokenizer (docs/training.md, "Where reconstruction is lost"). Stage 2 then starts its
generation path from the one trained here.

Optional scene term (``scene_weight`` > 0; stage 0d's default, the stand-in Q-Former): a
training-only :class:`SceneHead` reads the 32 query outputs and names every grid cell's colour,
shape and size (each with an "empty" class) from the scene metadata, by cross-entropy; it reads
either query k for cell k (``scene_read='slots'``, stage 0d's default) or all queries through one
learned attention query per cell (``'attend'``). It is the
discrete analogue of BLIP-2's image-grounded text generation (a cross-entropy on every word of
the caption; the shapes world's canonical caption is a function of these cell labels): the
regression term alone left the queries with 32 % of each scene's objects (docs/training.md).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seedtok.config import QFormerConfig
from seedtok.losses import contrastive_loss
from seedtok.models import SeedTokenizer
from seedtok.text import cached_text_states, tokenize
from seedtok.train.core import TrainArgs, TrainingError, freeze
from seedtok.train.data import ImageTextSet, TensorBatches, frozen_features
from seedtok.train.loop import fit

log = logging.getLogger(__name__)

TEMP_RANGE = (0.001, 0.5)
MAX_TEXT_LEN = 48
TEXT_STATE_LEN = 32  # MiniLM tokens per caption; the longest shapes caption has 30
# lr factor of the generation path in stage 1 (it learns best near 3e-3, docs/training.md).
GENERATION_LR_SCALE = 3.0


SCENE_READS = ("attend", "slots")


class SceneHead(nn.Module):
    """Training-only reader of the query outputs (B, Q, H) -> per grid cell and attribute the
    logits (B, 9, classes) (module docstring, scene term).

    ``read='attend'``: one learned query per cell attends over all query outputs, then a linear
    classifier; the scene may be spread over the queries in any way. ``read='slots'``: query k
    (k < 9) names cell k through one shared LayerNorm + linear classifier, so each of the first
    nine queries carries one cell on its own: what a per-query codebook keeps (docs/training.md)."""

    def __init__(self, hidden: int, num_heads: int, read: str = "attend") -> None:
        super().__init__()
        from seedtok.eval.probe import GRID, num_classes

        if read not in SCENE_READS:
            raise TrainingError(f"scene read must be one of {SCENE_READS}, got {read!r}")
        self.read, self.num_cells = read, GRID * GRID
        self.sizes = num_classes()
        self.norm = nn.LayerNorm(hidden)
        if read == "attend":
            self.cells = nn.Parameter(torch.randn(self.num_cells, hidden) * 0.02)
            self.attend = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.classify = nn.Linear(hidden, sum(self.sizes))

    def forward(self, queries: torch.Tensor) -> list[torch.Tensor]:
        if self.read == "slots":
            if queries.shape[1] < self.num_cells:
                raise TrainingError(f"the slot scene read needs >= {self.num_cells} queries, got {queries.shape[1]}")
            read = self.norm(queries[:, : self.num_cells])
        else:
            kv = self.norm(queries)
            read, _ = self.attend(self.cells.expand(len(queries), -1, -1), kv, kv, need_weights=False)
        return list(self.classify(read).split(self.sizes, dim=-1))

    def loss(self, queries: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mean cross-entropy over attributes, fraction of cells with all three right)."""
        logits = self(queries)
        ce = sum(F.cross_entropy(lg.flatten(0, 1), labels[..., j].flatten()) for j, lg in enumerate(logits)) / len(logits)
        right = torch.stack([lg.argmax(-1) == labels[..., j] for j, lg in enumerate(logits)]).all(0)
        return ce, right.float().mean()


class Stage1Module(nn.Module):
    """Trainable part of stage 1: ``ln_vision`` + Causal Q-Former (with its text branch), the
    generation path when ``generation_weight`` > 0 and a :class:`SceneHead` when ``scene_weight`` > 0."""

    def __init__(self, tokenizer: SeedTokenizer, generation_weight: float = 0.0, scene_weight: float = 0.0,
                 scene_read: str = "attend") -> None:
        super().__init__()
        if not tokenizer.qformer.config.is_contrastive:
            raise TrainingError("stage 1 needs a text side (qformer.vocab_size > 0 or text_tower='minilm')")
        if not (generation_weight >= 0 and scene_weight >= 0):
            raise TrainingError(f"generation_weight and scene_weight must be >= 0, got {generation_weight!r}, {scene_weight!r}")
        self.scene_weight = float(scene_weight)
        if self.scene_weight > 0:
            cfg = tokenizer.qformer.config
            self.scene_head = SceneHead(cfg.hidden_size, cfg.num_heads, scene_read)
        self.ln_vision = tokenizer.ln_vision
        self.qformer = tokenizer.qformer
        self.generation_weight = float(generation_weight)
        if self.generation_weight > 0:
            self.code_decoder = tokenizer.code_decoder
            self.reverse_qformer = tokenizer.reverse_qformer
            self.generation_proj = tokenizer.generation_proj

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        causal = self.qformer(self.ln_vision(batch["vit_features"]))  # (B, Q, H)
        img = F.normalize(self.qformer.vision_proj(causal[:, -1]), dim=-1)
        txt = self.qformer.text_embedding(batch)  # (B, P)
        loss, acc = contrastive_loss(img, txt, self.qformer.temp)
        out = {"loss": loss, "contrastive": loss.detach(), "i2t_acc": acc, "temp": self.qformer.temp.detach()}
        if self.generation_weight > 0:
            generation = self.generation_proj(self.reverse_qformer(self.code_decoder(causal)))
            mse = F.mse_loss(generation.float(), batch["target"].float())
            out.update(loss=out["loss"] + self.generation_weight * mse, mse=mse.detach())
        if self.scene_weight > 0:
            ce, acc = self.scene_head.loss(causal, batch["cell_labels"])
            out.update(loss=out["loss"] + self.scene_weight * ce, scene=ce.detach(), scene_acc=acc)
        return out


def prepare_stage1(tokenizer: SeedTokenizer, generation_weight: float = 0.0, scene_weight: float = 0.0,
                   scene_read: str = "attend") -> Stage1Module:
    """Freezing policy of stage 1: everything frozen except ``ln_vision`` + Causal Q-Former (and
    the generation path when ``generation_weight`` > 0, the scene head when ``scene_weight`` > 0)."""
    freeze(tokenizer)
    module = Stage1Module(tokenizer, generation_weight, scene_weight, scene_read)
    module.train().requires_grad_(True)
    if module.generation_weight > 0:
        from seedtok.train.stage2 import GENERATION_PATH

        module.lr_scales = dict.fromkeys(GENERATION_PATH, GENERATION_LR_SCALE)
    return module


def text_inputs(config: QFormerConfig, captions: list[str], text_cache: str | None = None) -> dict[str, torch.Tensor]:
    """What the text side reads: token ids for the own text branch, or the frozen MiniLM-L6
    token states (cached per caption list in ``text_cache``) for ``text_tower='minilm'``."""
    if config.has_text_head:
        states, mask = cached_text_states(captions, TEXT_STATE_LEN, text_cache)
        return {"text_states": states, "text_mask": mask}
    ids, mask = tokenize(captions, min(MAX_TEXT_LEN, config.max_text_len))
    return {"input_ids": ids, "attention_mask": mask}


def stage1_tensors(tokenizer: SeedTokenizer, data: ImageTextSet, feature_cache: str | None = None,
                   text_cache: str | None = None) -> dict[str, torch.Tensor]:
    """Frozen ViT features (optionally cached on disk) and the text side's inputs for every sample."""
    vit = frozen_features(tokenizer.vision, tokenizer.vision.eval(), data.pixels, feature_cache, "vit")
    return {"vit_features": vit, **text_inputs(tokenizer.qformer.config, data.captions, text_cache)}


def clamp_temperature(module: Stage1Module):
    def after_step(step: int, outputs: dict[str, Any]) -> dict[str, float]:
        with torch.no_grad():
            module.qformer.temp.clamp_(*TEMP_RANGE)
        return {}

    return after_step


def train_stage1(
    tokenizer: SeedTokenizer, data: ImageTextSet | dict[str, torch.Tensor], args: TrainArgs, accelerator=None
) -> dict[str, Any]:
    """Run stage 1 in place on ``tokenizer``; returns the loop summary."""
    weight = float(args.extra.get("generation_weight", 0.0))
    scene_weight = float(args.extra.get("scene_weight", 0.0))
    scene_read = str(args.extra.get("scene_read", "attend"))
    module = prepare_stage1(tokenizer, weight, scene_weight, scene_read)
    tensors = data if isinstance(data, dict) else stage1_tensors(
        tokenizer, data, args.extra.get("feature_cache"), args.extra.get("text_cache"))
    if scene_weight > 0 and "cell_labels" not in tensors:
        raise TrainingError("scene_weight > 0 needs the scene's cell labels ('cell_labels', B x 9 x 3) in the stage-1 data")
    if weight > 0:
        if "target" not in tensors:
            raise TrainingError("generation_weight > 0 needs generation targets ('target', B x L x G) in the stage-1 data")
        from seedtok.train.stage2 import init_generation_head

        init_generation_head(tokenizer, tensors["target"])
    run_info = {"stage": "stage1", "config": tokenizer.config.to_dict(), "generation_weight": weight,
                "scene_weight": scene_weight, "scene_read": scene_read}
    return fit(module, TensorBatches(tensors, args.seed), args, run_info, clamp_temperature(module), accelerator)
