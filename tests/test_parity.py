"""Parity with the reference SEED-1 tokenizer (shared/parity/README.md): golden data produced
by the reference code at a reduced size, loaded through the public reference loader."""

import json

import torch

from seedtok.checkpoint import to_reference_state_dict
from seedtok.config import get_preset
from seedtok.keymap import ignore_reason, to_reference_key
from seedtok.models import SeedTokenizer
from seedtok.parity import FLOAT_KEYS, load_golden

TOL = 1e-4


def test_golden_outputs_reproduced(golden_dir):
    model, pixels, golden, meta = load_golden(golden_dir)
    assert not model.training
    assert pixels.shape == golden["pixel_values"].shape
    with torch.no_grad():
        out = model(pixels)
    ours = {"pixel_values": pixels, **{k: getattr(out, k) for k in FLOAT_KEYS[1:]}}
    for key in FLOAT_KEYS:
        assert ours[key].shape == golden[key].shape, key
        diff = (ours[key] - golden[key]).abs().max().item()
        assert diff <= TOL, f"{key}: max|diff| {diff:.3e} > {TOL}"
    assert out.ids.dtype == torch.int64
    assert torch.equal(out.ids, golden["ids"])
    if "vq_loss" in meta:
        assert abs(out.vq_loss.item() - meta["vq_loss"]) < 1e-5


def test_batch_split_gives_same_result(golden_dir):
    model, pixels, golden, _ = load_golden(golden_dir)
    with torch.no_grad():
        whole = model(pixels)
        parts = [model(pixels[:1]), model(pixels[1:])]
    assert torch.equal(torch.cat([p.ids for p in parts]), whole.ids)
    assert torch.equal(whole.ids, golden["ids"])
    for key in FLOAT_KEYS[1:]:
        split = torch.cat([getattr(p, key) for p in parts])
        assert (split - getattr(whole, key)).abs().max() <= TOL, key
        assert (split - golden[key]).abs().max() <= TOL, key


def test_encode_and_decode_ids_match_forward(golden_dir):
    model, pixels, golden, _ = load_golden(golden_dir)
    ids, causal = model.encode(pixels)
    assert torch.equal(ids, golden["ids"])
    assert (causal - golden["causal_embeds"]).abs().max() <= TOL
    assert (model.decode_ids(ids) - golden["generation_embeds"]).abs().max() <= TOL


def _manifest(path):
    return {k: tuple(v["shape"]) for k, v in json.loads(path.read_text())["keys"].items()}


def test_seed1_maps_exactly_onto_reference_manifest(manifest_path):
    manifest = _manifest(manifest_path)
    with torch.device("meta"):
        model = SeedTokenizer(get_preset("seed1"))
    mapped = {to_reference_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    extra = set(mapped) - set(manifest)
    missing = set(manifest) - set(mapped)
    assert not extra, sorted(extra)[:10]
    # Only documented non-learned buffers are absent from our model.
    assert missing == {"Qformer.bert.embeddings.position_ids", "Reverse_Qformer.bert.embeddings.position_ids"}
    assert all(ignore_reason(k) for k in missing)
    wrong = {k: (mapped[k], manifest[k]) for k in mapped if mapped[k] != manifest[k]}
    assert not wrong, wrong
    total = sum(torch.Size(s).numel() for s in mapped.values()) + 2 * 512
    assert total == json.loads(manifest_path.read_text())["total_elements"]


def test_seed1_stage1_adds_only_the_qformer_text_branch(manifest_path):
    manifest = _manifest(manifest_path)
    with torch.device("meta"):
        model = SeedTokenizer(get_preset("seed1-stage1"))
    mapped = {to_reference_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    extra = {k: s for k, s in mapped.items() if k not in manifest}
    assert extra["Qformer.bert.embeddings.word_embeddings.weight"] == (30523, 768)
    assert extra["Qformer.bert.embeddings.position_embeddings.weight"] == (512, 768)
    assert extra["vision_proj.weight"] == (256, 768) and extra["text_proj.weight"] == (256, 768)
    assert extra["temp"] == ()
    assert extra["Qformer.bert.encoder.layer.11.intermediate.dense.weight"] == (3072, 768)
    assert extra["Qformer.bert.encoder.layer.11.output.LayerNorm.bias"] == (768,)
    assert len(extra) == 2 + 5 + 12 * 6  # embeddings, projections+temp, 6 text-FFN tensors per layer


def test_reference_state_dict_round_trip_is_exact(golden_dir):
    model, _, _, _ = load_golden(golden_dir)
    ref = to_reference_state_dict(model)
    from safetensors.torch import load_file

    golden_weights = load_file(str(golden_dir / "weights.safetensors"))
    for k, v in ref.items():
        assert torch.equal(v, golden_weights[k].float()), k
