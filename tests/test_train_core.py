"""Training core: overfit one batch per stage, freezing policy, schedule, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from train_helpers import blocks_world, micro_config

from seedtok.losses import contrastive_loss
from seedtok.models import SeedTokenizer
from seedtok.train import TrainArgs, TrainingError
from seedtok.train.checkpoint import latest_checkpoint
from seedtok.train.core import build_optimizer, lr_factor
from seedtok.train.data import TensorBatches, batch_indices, materialise
from seedtok.train.loop import fit
from seedtok.train.stage1 import prepare_stage1, stage1_tensors, train_stage1
from seedtok.train.stage2 import prepare_stage2, stage2_tensors, train_stage2


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def losses(out) -> list[float]:
    return [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()]


def micro_world(n: int = 16):
    torch.manual_seed(0)
    tokenizer = SeedTokenizer(micro_config())
    data = blocks_world(n)
    data.pixels = torch.randn(data.pixels.shape, generator=torch.Generator().manual_seed(1))
    return tokenizer, data


def test_stage1_overfits_one_batch(tmp_path):
    tokenizer, data = micro_world(16)
    args = TrainArgs(out=str(tmp_path), steps=150, batch_size=16, lr=3e-3, warmup=2, ckpt_every=1000, progress=False)
    train_stage1(tokenizer, data, args)
    curve = losses(tmp_path)
    assert curve[-1] <= 0.5 * curve[0], (curve[0], curve[-1])
    assert (tmp_path / "checkpoints" / "latest").is_file()


def test_stage2_reconstructs_one_batch_and_uses_codes(tmp_path):
    tokenizer, data = micro_world(16)
    targets = torch.randn(16, tokenizer.config.generation_len, tokenizer.config.generation_dim)
    tensors = stage2_tensors(tokenizer, data, targets)
    args = TrainArgs(out=str(tmp_path), steps=150, batch_size=16, lr=3e-3, warmup=2, ckpt_every=1000, progress=False,
                     extra={"generation_lr_scale": 2.0})
    summary, module = train_stage2(tokenizer, tensors, args, health_every=50)
    module.eval()
    with torch.no_grad():
        z = module.encode_task(tensors["causal_embeds"])
        ids = module.quantizer.nearest(z)
        recon = module.reconstruct_from_codes(module.quantizer.lookup(ids))
    cos = torch.nn.functional.cosine_similarity(recon, tensors["causal_embeds"], dim=-1).mean()
    assert cos >= 0.9, float(cos)
    assert ids.unique().numel() > 1
    assert summary["codebook"]["codes_used"] > 1
    # inference path: decode_ids(encode(x)) equals what stage 2 trained
    ids2, _ = tokenizer.encode(data.pixels)
    assert torch.equal(ids, ids2)
    # --generation-lr-scale: the generation path trains at 2 x the base lr, everything else at lr
    from seedtok.train.stage2 import GENERATION_PATH

    fast = {id(p) for n, p in module.named_parameters() if n.startswith(GENERATION_PATH) and p.requires_grad}
    for group in build_optimizer(module, 1e-3, 0.05).param_groups:
        want = 2e-3 if id(group["params"][0]) in fast else 1e-3
        assert group["lr"] == pytest.approx(want)
        assert all((id(p) in fast) == (id(group["params"][0]) in fast) for p in group["params"])


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_freezing_policy_every_trainable_param_gets_grad(stage):
    tokenizer, data = micro_world(8)
    if stage == "stage1":
        module, tensors = prepare_stage1(tokenizer), stage1_tensors(tokenizer, data)
        frozen = list(tokenizer.vision.parameters()) + list(tokenizer.quantizer.parameters())
    else:
        targets = torch.randn(8, tokenizer.config.generation_len, tokenizer.config.generation_dim)
        module = prepare_stage2(tokenizer)
        tensors = stage2_tensors(tokenizer, data, targets)
        module.train()
        frozen = list(tokenizer.vision.parameters()) + list(tokenizer.qformer.parameters())
    module(TensorBatches(tensors).batch(0, 0, 1, 8))["loss"].backward()
    for name, p in module.named_parameters():
        assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert not tokenizer.vision.training


def test_contrastive_loss_single_process_matches_reference():
    torch.manual_seed(0)
    a, b = nn.functional.normalize(torch.randn(6, 4), dim=-1), nn.functional.normalize(torch.randn(6, 4), dim=-1)
    t = torch.tensor(0.07)
    loss, _ = contrastive_loss(a, b, t)
    logits = a @ b.t() / t
    y = torch.arange(6)
    ref = 0.5 * (nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
                 + nn.functional.cross_entropy(logits.t(), y, label_smoothing=0.1))
    torch.testing.assert_close(loss, ref)


def test_schedule_and_no_decay_groups():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)
    opt = build_optimizer(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), 1e-3, 0.05)
    decays = sorted((g["weight_decay"], sum(p.numel() for p in g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 9), (0.05, 9)]
    # lr_scales: named parameters train at a multiple of the base lr, decay policy kept
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    net.lr_scales = {"1.": 3.0}
    groups = sorted((g["lr"], g["weight_decay"], sum(p.numel() for p in g["params"])) for g in build_optimizer(net, 1e-3, 0.05).param_groups)
    assert groups == [(1e-3, 0.0, 3), (1e-3, 0.05, 9), (pytest.approx(3e-3), 0.0, 2), (pytest.approx(3e-3), 0.05, 6)]


def test_batches_are_a_function_of_step_and_split_over_ranks():
    n, b = 10, 4
    full = batch_indices(n, 2 * b, seed=3, micro_step=7)
    data = TensorBatches({"i": torch.arange(n)}, seed=3)
    halves = torch.cat([data.batch(7, r, 2, b)["i"] for r in range(2)])
    assert torch.equal(full, halves)
    epoch = torch.cat([batch_indices(n, 5, 3, s) for s in range(2)])
    assert sorted(epoch.tolist()) == list(range(n))


def test_corrupt_samples_are_skipped_and_counted():
    good = {"pixel_values": torch.zeros(3, 4, 4), "caption": "ok", "key": "a"}
    bad = [{"caption": "no pixels"}, {"pixel_values": torch.full((3, 4, 4), float("nan")), "caption": "nan"},
           {"pixel_values": torch.zeros(3, 5, 5), "caption": "wrong size"}, {"pixel_values": torch.zeros(3, 4, 4), "caption": " "}]
    data = materialise([good, *bad, good], skipped=2)
    assert len(data) == 2 and data.skipped == 6
    with pytest.raises(TrainingError, match="no usable samples"):
        materialise([bad[0], bad[1], bad[3]])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    tokenizer, data = micro_world(8)
    args = TrainArgs(out=str(tmp_path / "nothing"), steps=2, batch_size=8, resume=True, progress=False)
    with pytest.raises(TrainingError, match="no checkpoint found"):
        train_stage1(tokenizer, data, args)


def test_resume_with_other_config_is_refused(tmp_path):
    tokenizer, data = micro_world(8)
    tensors = stage1_tensors(tokenizer, data)
    args = TrainArgs(out=str(tmp_path), steps=4, batch_size=8, ckpt_every=2, progress=False)
    train_stage1(tokenizer, tensors, args)
    before = (latest_checkpoint(tmp_path) / "trainable.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="lr"):
        train_stage1(tokenizer, tensors, TrainArgs(**{**args.to_dict(), "steps": 6, "lr": 5e-4, "resume": True}))
    other = SeedTokenizer(micro_config(kind="cosine"))
    with pytest.raises(TrainingError, match="codebook.kind"):
        train_stage1(other, tensors, TrainArgs(**{**args.to_dict(), "steps": 6, "resume": True}))
    assert (latest_checkpoint(tmp_path) / "trainable.safetensors").read_bytes() == before


class Poisoned(nn.Module):
    """Loss w^2 that turns NaN from call ``bad_from`` on."""

    def __init__(self, bad_from: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.calls, self.bad_from = 0, bad_from

    def forward(self, batch):
        self.calls += 1
        loss = (self.w**2).sum() * batch["x"].mean()
        return {"loss": loss * float("nan") if self.calls >= self.bad_from else loss}


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    module = Poisoned(bad_from=8)
    args = TrainArgs(out=str(tmp_path), steps=20, batch_size=2, lr=0.1, warmup=0, ckpt_every=5, progress=False)
    with pytest.raises(TrainingError, match="non-finite loss .* step 8.*intact"):
        fit(module, TensorBatches({"x": torch.ones(4, 1)}), args, {"stage": "test"})
    last = latest_checkpoint(tmp_path)
    assert last.name == "step-00000005"
    resumed = Poisoned(bad_from=10**9)
    summary = fit(resumed, TensorBatches({"x": torch.ones(4, 1)}), TrainArgs(**{**args.to_dict(), "resume": True}),
                  {"stage": "test"})
    assert summary["start_step"] == 5 and torch.isfinite(resumed.w).all()


def test_shipped_standin_encoder_loads_strictly_with_provenance():
    from seedtok.config import get_preset
    from seedtok.train.pretrained import load_vision_weights
    from seedtok.train.runs import TINY_ENCODER

    model = SeedTokenizer(get_preset("tiny"))
    load_vision_weights(model, TINY_ENCODER)
    provenance = json.loads(TINY_ENCODER.with_suffix(".json").read_text())
    assert {"command", "steps", "wall_s", "cpu_s", "probe", "data"} <= set(provenance)
    assert provenance["probe"]["color_shape_size"] >= 0.90  # what a Q-Former can read (issue 15)
    total = sum(p.stat().st_size for p in TINY_ENCODER.parent.iterdir())
    assert total <= 20 * 1024 * 1024


def test_grad_checkpointing_switch_reaches_vit_qformers_and_hf_llms():
    import warnings

    from transformers import OPTConfig, OPTForCausalLM

    from seedtok.config import get_preset
    from seedtok.models import SeedTokenizer
    from seedtok.train.core import enable_grad_checkpointing

    tok = SeedTokenizer(get_preset("tiny"))
    assert enable_grad_checkpointing(tok) == 3
    assert tok.vision.grad_checkpointing and tok.qformer.grad_checkpointing and tok.reverse_qformer.grad_checkpointing
    lm = OPTForCausalLM(OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                                  vocab_size=50, max_position_embeddings=32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert enable_grad_checkpointing(lm) == 1 and lm.is_gradient_checkpointing


def test_frozen_features_disk_cache(tmp_path, caplog):
    import logging

    from seedtok.config import get_preset
    from seedtok.models import SeedTokenizer
    from seedtok.train.data import frozen_features

    torch.manual_seed(0)
    tok = SeedTokenizer(get_preset("tiny")).eval()
    x = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        first = frozen_features(tok.vision, tok.vision, x, str(tmp_path), "vit")
        assert len(list(tmp_path.glob("vit-*.safetensors"))) == 1
        with caplog.at_level(logging.INFO, logger="seedtok.train.data"):
            again = frozen_features(tok.vision, tok.vision, x, str(tmp_path), "vit")
        assert "from cache" in caplog.text and torch.equal(first, again)
        torch.nn.init.zeros_(tok.vision.cls_token)  # other weights -> another cache entry
        frozen_features(tok.vision, tok.vision, x, str(tmp_path), "vit")
        assert len(list(tmp_path.glob("vit-*.safetensors"))) == 2
        assert torch.equal(frozen_features(tok.vision, tok.vision, x, None, "vit"), tok.vision(x))


def test_stage2_contrastive_term_trains_codes_against_frozen_text_features():
    """The ablation's 'contrastive only' stage 2 (weights 5/0/0/1): codes -> last reconstructed
    query -> stage 1's frozen vision_proj against the frozen text branch."""
    from seedtok.eval.tokenizer import text_features
    from seedtok.train.stage2 import loss_weights

    tokenizer, data = micro_world(8)
    targets = torch.randn(8, tokenizer.config.generation_len, tokenizer.config.generation_dim)
    tensors = stage2_tensors(tokenizer, data, targets)
    tensors["text_feats"] = text_features(tokenizer, data.captions)
    module = prepare_stage2(tokenizer, weights=(5.0, 0.0, 0.0, 1.0))
    out = module(TensorBatches(tensors).batch(0, 0, 1, 8))
    out["loss"].backward()
    assert out["contrastive"] > 0 and torch.isclose(out["loss"], 5 * out["vq"] + out["contrastive"], atol=1e-5)
    assert all(p.grad is None and not p.requires_grad for p in tokenizer.qformer.vision_proj.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in module.generation_proj.parameters())  # untrained
    assert all(p.grad.abs().sum() > 0 for p in module.encode_task.parameters())  # codes train through the term
    assert loss_weights((5, 2, 0.5)) == (5.0, 2.0, 0.5, 0.0)
    for bad in [(0, 1, 1), (5, 0, 0), (5, -1, 1), (5, 1)]:
        with pytest.raises(TrainingError, match="loss weights"):
            loss_weights(bad)
