"""Issue 15's pieces: the conv-stem stand-in ViT and its per-patch cell objective, the
cell-average probe, the MiniLM text tower of stage 1, stage 2's generation-head start and the
canonical generation targets. Each is a fast smoke test; the learned quality is a benchmark
(``seedtok train bench`` / ``seedtok train probe``)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from train_helpers import blocks_world, micro_config

from seedtok.config import ConfigError, QFormerConfig, TokenizerConfig, VisionConfig, get_preset
from seedtok.data.scene import Scene, ShapeObject, caption
from seedtok.eval.probe import cell_average, cell_labels, cell_probe, num_classes, patch_cells
from seedtok.models import SeedTokenizer
from seedtok.models.vit import ConvStem, VisionTransformer
from seedtok.train import TrainArgs, TrainingError
from seedtok.train.data import ImageTextSet, TensorBatches
from seedtok.train.stage1 import train_stage1

pytestmark = pytest.mark.usefixtures("one_thread")

SCENE = Scene((ShapeObject("star", "red", "large", "top left"), ShapeObject("circle", "blue", "small", "center")))


def test_conv_stem_keeps_the_token_grid_and_config_round_trips():
    vc = get_preset("tiny").vision
    assert vc.stem == "conv"
    vit = VisionTransformer(vc)
    assert isinstance(vit.patch_embed, ConvStem)
    assert vit(torch.randn(2, 3, 64, 64)).shape == (2, 65, 128)
    assert TokenizerConfig.from_dict(get_preset("tiny").to_dict()) == get_preset("tiny")
    with pytest.raises(ConfigError, match="power-of-two"):
        VisionConfig(image_size=60, patch_size=6, stem="conv")
    with pytest.raises(ConfigError, match="stem"):
        VisionConfig(stem="other")
    legacy = get_preset("tiny").to_dict()
    del legacy["vision"]["stem"]  # model directories written before the field: patch embedding
    assert TokenizerConfig.from_dict(legacy).vision.stem == "patch"


def test_cell_labels_patch_cells_and_cell_average():
    labels = cell_labels([SCENE.to_dict()])
    assert labels.shape == (1, 9, 3)
    empty = torch.tensor([n - 1 for n in num_classes()])
    assert labels[0, 0].tolist() == [0, 4, 1]  # red, star, large at the top left
    assert labels[0, 4].tolist() == [5, 0, 0]  # blue, circle, small in the center
    assert all(torch.equal(labels[0, c], empty) for c in (1, 2, 3, 5, 6, 7, 8))
    cells = patch_cells(64, 8)  # 8x8 patches: centres 4, 12, 20 | 28, 36 | 44, 52, 60 px
    grid = cells.view(8, 8)
    assert grid[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2] and grid[:, 0].tolist() == [0, 0, 0, 3, 3, 6, 6, 6]
    tokens = torch.arange(64.0).view(1, 64, 1)
    avg = cell_average(tokens, cells)
    assert avg.shape == (1, 9, 1) and float(avg[0, 0, 0]) == pytest.approx(torch.tensor([0, 1, 2, 8, 9, 10, 16, 17, 18.0]).mean())


def test_cell_probe_reads_informative_features_and_not_noise():
    from seedtok.data.scene import COLORS, POSITIONS, SHAPES

    g = torch.Generator().manual_seed(0)
    scenes = []
    for i in range(120):
        cells = torch.randperm(9, generator=g)[: 1 + i % 3].tolist()
        scenes.append(Scene(tuple(ShapeObject(SHAPES[(i + c) % 5], list(COLORS)[(i * 3 + c) % 7], "small" if (i + c) % 2 else "large",
                                              POSITIONS[c]) for c in cells)).to_dict())
    labels = cell_labels(scenes)  # (N, 9, 3)
    informative = torch.cat([torch.nn.functional.one_hot(labels[..., j], n).float() for j, n in enumerate(num_classes())], -1)
    good = cell_probe(informative[:80], scenes[:80], informative[80:], scenes[80:], steps=100)
    assert good["color_shape_size"] == 1.0
    noise = torch.randn(informative.shape, generator=g)
    bad = cell_probe(noise[:80], scenes[:80], noise[80:], scenes[80:], steps=100)
    assert bad["color_shape_size"] < 0.3


def test_encoder_cell_objective_learns_one_batch(tmp_path):
    from seedtok.data.render import render_array
    from seedtok.train.encoder import EncoderPretrainModule
    from seedtok.train.loop import fit

    torch.manual_seed(0)
    vc = VisionConfig(image_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=2, mlp_hidden_size=64, stem="conv")
    module = EncoderPretrainModule(vc)
    pixels = torch.stack([torch.as_tensor(render_array(SCENE, 32)).permute(2, 0, 1).float() / 127.5 - 1] * 4)
    batch = {"pixel_values": pixels, "cell_labels": cell_labels([SCENE] * 4)}
    args = TrainArgs(out=str(tmp_path), steps=40, batch_size=4, lr=3e-3, warmup=2, ckpt_every=1000, progress=False)
    fit(module, TensorBatches(batch), args, {"stage": "encoder"})
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < 0.3 * rows[0]["loss"] and rows[-1]["patch_acc"] > 0.9
    # the position term: every token learns to name its grid cell (chance 1/9)
    assert rows[-1]["position"] < 0.5 * rows[0]["position"] and rows[-1]["position_acc"] > 0.6
    assert set(module.vision_state_dict()) == {f"vision.{k}" for k in module.vision.state_dict()}
    plain = EncoderPretrainModule(vc, position_weight=0.0)
    assert not hasattr(plain, "position_head") and "position" not in plain(batch)
    with pytest.raises(ValueError, match="position_weight"):
        EncoderPretrainModule(vc, position_weight=-1.0)


def minilm_world(n: int = 16, queries: int | None = None) -> tuple[SeedTokenizer, dict[str, torch.Tensor]]:
    """Micro tokenizer with the MiniLM text tower; 'states' are fixed random vectors per caption."""
    torch.manual_seed(0)
    config = micro_config(vocab_size=0)
    config = config.replace(qformer=dataclasses.replace(config.qformer, text_tower="minilm", text_state_dim=24,
                                                        num_queries=queries or config.qformer.num_queries))
    tokenizer = SeedTokenizer(config)
    data = blocks_world(n)
    g = torch.Generator().manual_seed(2)
    per_caption = {c: torch.randn(6, 24, generator=g) for c in sorted(set(data.captions))}
    states = torch.stack([per_caption[c] for c in data.captions])
    mask = torch.ones(n, 6, dtype=torch.long)
    mask[:, 5] = 0
    with torch.no_grad():
        vit = tokenizer.vision.eval()(data.pixels)
    return tokenizer, {"vit_features": vit, "text_states": states, "text_mask": mask}


def test_minilm_text_tower_is_a_config_choice_and_trains_in_stage1(tmp_path):
    assert get_preset("tiny-stage1").qformer.text_tower == "minilm" and not get_preset("tiny-stage1").qformer.has_text_branch
    assert get_preset("seed1-stage1").qformer.text_tower == "qformer" and get_preset("seed1-stage1").qformer.has_text_branch
    with pytest.raises(ConfigError, match="vocab_size"):
        QFormerConfig(vocab_size=10, text_tower="minilm")
    tokenizer, tensors = minilm_world(16)
    assert not hasattr(tokenizer.qformer, "word_embed") and hasattr(tokenizer.qformer, "text_head")
    start = tokenizer.qformer.text_head.inp.weight.detach().clone()
    args = TrainArgs(out=str(tmp_path), steps=60, batch_size=16, lr=3e-3, warmup=2, ckpt_every=1000, progress=False)
    train_stage1(tokenizer, tensors, args)
    curve = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert curve[-1] <= 0.5 * curve[0], (curve[0], curve[-1])
    assert not torch.equal(start, tokenizer.qformer.text_head.inp.weight)  # the head trains


def test_stage2_generation_head_starts_at_the_target_mean():
    from seedtok.train.stage2 import init_generation_head, prepare_stage2, stage2_tensors

    tokenizer, _ = minilm_world(8)
    data = blocks_world(8)
    g = torch.Generator().manual_seed(3)
    L, G = tokenizer.config.generation_len, tokenizer.config.generation_dim
    offset = 5.0 * torch.randn(G, generator=g)  # large per-dimension means, like MiniLM's states
    targets = offset + 0.3 * torch.randn(8, L, G, generator=g)
    tensors = stage2_tensors(tokenizer, data, targets)
    module = prepare_stage2(tokenizer)
    with torch.no_grad():
        before = module(TensorBatches(tensors).batch(0, 0, 1, 8))["mse"]
    init_generation_head(tokenizer, targets)
    with torch.no_grad():
        after = module(TensorBatches(tensors).batch(0, 0, 1, 8))["mse"]
    constant = float(((targets - targets.mean((0, 1))) ** 2).mean())
    assert torch.allclose(tokenizer.generation_proj.bias, targets.mean((0, 1)))
    assert float(after) < 1.5 * constant < float(before), (float(before), float(after), constant)


def test_canonical_generation_targets_come_from_the_scene():
    from seedtok.train.runs import default_target, generation_captions

    data = ImageTextSet(torch.zeros(2, 3, 8, 8), [caption(SCENE, template=3), caption(SCENE, template=2)], ["a", "b"],
                        [SCENE.to_dict(), SCENE.to_dict()])
    assert default_target(data) == "canonical"
    canonical = generation_captions(data, "canonical")
    assert canonical == [caption(SCENE, template=0)] * 2  # one fixed template, whatever the sample's
    assert generation_captions(data, "caption") == data.captions
    plain = ImageTextSet(torch.zeros(1, 3, 8, 8), ["a cat"], ["c"], [None])
    assert default_target(plain) == "caption"
    with pytest.raises(TrainingError, match="scene metadata"):
        generation_captions(plain, "canonical")
    with pytest.raises(TrainingError, match="must be"):
        generation_captions(data, "other")


def train_stage1_term(tokenizer, tensors: dict, out, extra: dict, missing: str, key: str, value: torch.Tensor) -> list[dict]:
    """An optional stage-1 term: without its inputs (``key``) a clear error naming ``missing``;
    with them, 60 steps at lr 3e-3 in ``out/run``; returns the metrics rows."""
    with pytest.raises(TrainingError, match=missing):
        train_stage1(tokenizer, dict(tensors), TrainArgs(out=str(out / "x"), steps=1, batch_size=16, progress=False, extra=extra))
    tensors[key] = value
    args = TrainArgs(out=str(out / "run"), steps=60, batch_size=16, lr=3e-3, warmup=2, ckpt_every=1000, progress=False,
                     extra=extra)
    train_stage1(tokenizer, tensors, args)
    return [json.loads(l) for l in (out / "run" / "metrics.jsonl").read_text().splitlines()]


def test_stage1_generation_term_trains_the_generation_path_and_queries(tmp_path):
    """Stage 1's image-grounded generation term: the generation path reads the unquantized causal
    embeddings and its MSE to per-scene targets falls; without targets it is a clear error."""
    from seedtok.train.runs import default_generation_weight, stage1_trained_generation

    tokenizer, tensors = minilm_world(16)
    L, G = tokenizer.config.generation_len, tokenizer.config.generation_dim
    g = torch.Generator().manual_seed(4)
    data = blocks_world(16)
    # Targets built from the caption's words (colour and place), as the canonical caption's states are.
    words = {w: torch.randn(L, G, generator=g) for c in data.captions for w in c.split()[1:2] + c.split()[-1:]}
    per_caption = {c: words[c.split()[1]] + words[c.split()[-1]] for c in data.captions}
    start = tokenizer.reverse_qformer.query_tokens.detach().clone()
    rows = train_stage1_term(tokenizer, tensors, tmp_path / "g", {"generation_weight": 10.0}, "generation targets",
                             "target", torch.stack([per_caption[c] for c in data.captions]))
    assert rows[-1]["mse"] <= 0.7 * rows[0]["mse"], (rows[0]["mse"], rows[-1]["mse"])
    assert not torch.equal(start, tokenizer.reverse_qformer.query_tokens)  # the generation path trains
    assert default_generation_weight("tiny-stage1", None) > 0 and default_generation_weight("seed1-stage1", None) == 0
    assert default_generation_weight("tiny-stage1", "some/dir") == 0
    (tmp_path / "g" / "run" / "train_summary.json").write_text(json.dumps({"generation_weight": 10.0}))
    assert stage1_trained_generation(tmp_path / "g" / "run") and not stage1_trained_generation(tmp_path / "missing")


@pytest.mark.parametrize("read", ["attend", "slots"])
def test_stage1_scene_term_names_every_cell_from_the_queries(tmp_path, read):
    """The scene term (stage 0d's): a training-only head reads the query outputs (one attention read
    per cell, or query k for cell k) and names every grid cell's attributes; its cross-entropy falls,
    the Q-Former trains, missing labels are a clear error."""
    from seedtok.eval.probe import num_classes

    tokenizer, tensors = minilm_world(16, queries=10 if read == "slots" else None)
    data = blocks_world(16)
    # Cell labels as the scene metadata gives them: the block's colour in the cell of its place, the rest empty.
    colours, places = ["red", "green", "blue", "white"], ["top left", "top right", "bottom left", "bottom right"]

    def labels(text: str) -> torch.Tensor:
        out = torch.tensor([n - 1 for n in num_classes()]).repeat(9, 1)
        cell = (0, 2, 6, 8)[places.index(text.split(" at the ")[1])]
        out[cell] = torch.tensor([colours.index(text.split()[1]), 0, 0])
        return out

    start = tokenizer.qformer.query_tokens.detach().clone()
    rows = train_stage1_term(tokenizer, tensors, tmp_path, {"scene_weight": 1.0, "scene_read": read}, "cell labels",
                             "cell_labels", torch.stack([labels(c) for c in data.captions]))
    assert rows[-1]["scene"] <= 0.5 * rows[0]["scene"], (rows[0]["scene"], rows[-1]["scene"])
    assert rows[-1]["scene_acc"] > rows[0]["scene_acc"]
    assert not torch.equal(start, tokenizer.qformer.query_tokens)
    assert not any(k.startswith("scene_head") for k in tokenizer.state_dict())  # training-only, not shipped
    if read == "slots":  # query k names cell k: cell 0 (top left) depends on query 0 alone
        from seedtok.train.stage1 import SceneHead

        head = SceneHead(8, 2, "slots")
        q = torch.randn(2, 12, 8)
        moved = q.clone()
        moved[:, 1:] += 1.0
        assert torch.equal(head(q)[0][:, 0], head(moved)[0][:, 0]) and not torch.equal(head(q)[0][:, 1], head(moved)[0][:, 1])
        with pytest.raises(TrainingError, match="needs >= 9 queries"):
            head(q[:, :4])
        with pytest.raises(TrainingError, match="scene read"):
            SceneHead(8, 2, "bogus")


def test_stage2_generation_phase_trains_only_the_generation_path(tmp_path):
    from seedtok.train.stage2 import dequantized_codes, stage2_tensors, train_generation_phase, train_stage2

    tokenizer, _ = minilm_world(16)
    data = blocks_world(16)
    L, G = tokenizer.config.generation_len, tokenizer.config.generation_dim
    g = torch.Generator().manual_seed(5)
    words = {w: torch.randn(L, G, generator=g) for c in data.captions for w in (c.split()[1], c.split()[-1])}
    targets = torch.stack([words[c.split()[1]] + words[c.split()[-1]] for c in data.captions])
    tensors = stage2_tensors(tokenizer, data, targets)
    args = TrainArgs(out=str(tmp_path), steps=5, batch_size=16, lr=3e-3, warmup=1, ckpt_every=1000, progress=False,
                     extra={"generation_steps": 40})
    summary, _ = train_stage2(tokenizer, tensors, args)
    rows = [json.loads(l) for l in (tmp_path / "generation" / "metrics.jsonl").read_text().splitlines()]
    assert summary["generation_phase"]["steps"] == 40 and rows[-1]["step"] == 40
    assert rows[-1]["mse"] <= 0.85 * rows[0]["mse"], (rows[0]["mse"], rows[-1]["mse"])
    # The phase itself leaves the codebook and its projections alone and moves the generation path.
    fixed = {k: v.clone() for k, v in tokenizer.state_dict().items() if k.startswith(("quantizer.", "encode_task.", "decode_task."))}
    head = tokenizer.generation_proj.weight.detach().clone()
    codes = TensorBatches({"codes_up": dequantized_codes(tokenizer, tensors["causal_embeds"]), "target": targets})
    train_generation_phase(tokenizer, codes, dataclasses.replace(args, out=str(tmp_path / "again")), 5)
    assert all(torch.equal(v, tokenizer.state_dict()[k]) for k, v in fixed.items())
    assert not torch.equal(head, tokenizer.generation_proj.weight)
    with pytest.raises(TrainingError, match="generation_steps"):
        train_generation_phase(tokenizer, codes, args, -1)


def test_generation_phase_pad_weight_and_batch_size(tmp_path):
    """``generation_pad_weight`` re-weights the target's padding positions (weight 1 is the plain
    MSE, weight 0 ignores them) and ``generation_batch_size`` sets the phase's samples per step."""
    from seedtok.train.stage2 import GenerationPhase, dequantized_codes, stage2_tensors, train_generation_phase, weighted_mse

    pred, target = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])
    assert torch.allclose(weighted_mse(pred, target, mask, 1.0), torch.nn.functional.mse_loss(pred, target))
    assert torch.allclose(weighted_mse(pred, target, None, 0.3), torch.nn.functional.mse_loss(pred, target))
    words_only = ((pred - target) ** 2).mean(-1)[mask.bool()].mean()
    assert torch.allclose(weighted_mse(pred, target, mask, 0.0), words_only)
    moved = target.clone()
    moved[~mask.bool()] += 10.0  # a large error only on the padding
    assert torch.allclose(weighted_mse(moved, target, mask, 0.3), torch.tensor(0.3 * 6 * 100 / (6 + 0.3 * 6)))
    with pytest.raises(TrainingError, match="pad_weight"):
        GenerationPhase(minilm_world(4)[0], pad_weight=-1.0)

    tokenizer, _ = minilm_world(16)
    data = blocks_world(16)
    L, G = tokenizer.config.generation_len, tokenizer.config.generation_dim
    targets = torch.randn(16, L, G, generator=torch.Generator().manual_seed(1))
    tensors = stage2_tensors(tokenizer, data, targets)
    batches = TensorBatches({"codes_up": dequantized_codes(tokenizer, tensors["causal_embeds"]), "target": targets,
                             "target_mask": (torch.arange(L) < 3).long().expand(16, L)})
    args = TrainArgs(out=str(tmp_path), steps=5, batch_size=16, lr=3e-3, warmup=1, ckpt_every=1000, progress=False,
                     extra={"generation_batch_size": 4, "generation_pad_weight": 0.3})
    train_generation_phase(tokenizer, batches, args, 3)
    rows = [json.loads(l) for l in (tmp_path / "generation" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["samples"] == 12  # 3 steps x 4
    assert rows[-1]["loss"] != rows[-1]["mse"]  # the loss is the weighted one, the logged mse the plain one
