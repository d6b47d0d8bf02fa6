"""Checkpoint round trips, the reference key map, strict loading and the three-file loader."""

import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from seedtok.checkpoint import (
    CheckpointError,
    from_pretrained,
    load_reference_files,
    read_state_dict,
    save_pretrained,
    to_reference_state_dict,
    tokenizer_from_reference,
)
from seedtok.config import get_preset
from seedtok.keymap import RULES, from_reference_key, to_reference_key
from seedtok.models import SeedTokenizer
from seedtok.parity import load_golden


def test_save_and_load_round_trip_bit_exact(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m")
    assert loaded.config == tiny_model.config and not loaded.training
    a, b = tiny_model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(tiny_model.encode(x)[0], loaded.encode(x)[0])
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_key_map_inverts_exactly_on_every_key():
    for preset in ("seed1-stage1", "tiny"):
        with torch.device("meta"):
            keys = SeedTokenizer(get_preset(preset)).state_dict().keys()
        refs = [to_reference_key(k) for k in keys]
        assert len(set(refs)) == len(refs)
        assert [from_reference_key(r) for r in refs] == list(keys)


def test_key_map_rules_are_unambiguous():
    ours = [o for o, _ in RULES]
    assert len(set(ours)) == len(ours)
    assert from_reference_key("not.a.reference.key") is None


def _tiny_reference(tiny_model):
    return {k: v.clone() for k, v in to_reference_state_dict(tiny_model).items()}


def test_missing_key_is_named(tiny_model):
    ref = _tiny_reference(tiny_model)
    del ref["Qformer.bert.encoder.layer.1.attention.self.key.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \['qformer.layers.1.self_attn.k_proj.weight'\]"):
        tokenizer_from_reference(ref, tiny_model.config)


def test_wrong_shape_is_named(tiny_model):
    ref = _tiny_reference(tiny_model)
    ref["quantize.embedding.weight"] = torch.zeros(512, 32)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*quantizer.embedding.weight: checkpoint \(512, 32\) vs model \(1024, 32\)"):
        tokenizer_from_reference(ref, tiny_model.config)


def test_unexpected_key_is_rejected_but_documented_ones_are_ignored(tiny_model):
    ref = _tiny_reference(tiny_model)
    ref["Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    ref["pos_embed"] = torch.zeros(1, 32, 128)  # training-only recon head of seed_tokenizer.pth
    ref["blocks.0.norm1.weight"] = torch.zeros(128)
    model, report = tokenizer_from_reference(ref, tiny_model.config)
    assert set(report.ignored) == {"Qformer.bert.embeddings.position_ids", "pos_embed", "blocks.0.norm1.weight"}
    ref["something.else"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected reference keys \['something.else'\]"):
        tokenizer_from_reference(ref, tiny_model.config)


def test_text_branch_checkpoint_into_inference_config_gives_a_hint(tiny_model):
    ref = _tiny_reference(tiny_model)
    ref["Qformer.bert.embeddings.word_embeddings.weight"] = torch.zeros(10, 128)
    with pytest.raises(CheckpointError, match="vocab_size"):
        tokenizer_from_reference(ref, tiny_model.config)


def _split_like_release(golden_dir, tmp_path):
    """Write the golden weights as the three released files, in their layouts."""
    ref = load_file(str(golden_dir / "weights.safetensors"))
    eva = {k[len("visual_encoder."):]: v for k, v in ref.items() if k.startswith("visual_encoder.")}
    qf_keys = ("query_tokens", "ln_vision.", "Qformer.")
    qf = {k: v for k, v in ref.items() if k.startswith(qf_keys)}
    tok = {k: v for k, v in ref.items() if not k.startswith(qf_keys + ("visual_encoder.",))}
    tok["pos_embed"] = torch.zeros_like(ref["pos_embed_text"])  # training-only head, ignored
    paths = tmp_path / "eva_vit_g.pth", tmp_path / "causal_qformer.pth", tmp_path / "seed_tokenizer.pth"
    torch.save({k: v.half() if v.dim() > 1 else v for k, v in eva.items()}, paths[0])  # fp16 like BLIP-2
    torch.save({"model": qf, "epoch": 3}, paths[1])
    torch.save({"model": tok, "config": {"lr": 1e-4}}, paths[2])
    return paths


def test_three_release_files_load_like_one_state_dict(golden_dir, tmp_path):
    paths = _split_like_release(golden_dir, tmp_path)
    reference_model, pixels, golden, _ = load_golden(golden_dir)
    model, report = load_reference_files(*paths, config=reference_model.config)
    assert "pos_embed" in report.ignored
    ids, _ = model.encode(pixels)
    assert torch.equal(ids, golden["ids"])


def test_code_carrying_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(CheckpointError, match="refused or unreadable"):
        read_state_dict(path)
    assert not marker.exists()


def test_tampered_or_truncated_weights_are_refused(tmp_path, tiny_model):
    d = save_pretrained(tiny_model, tmp_path / "m")
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        from_pretrained(d)
    w.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CheckpointError):
        from_pretrained(d, verify=False)


def test_missing_directory_and_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "missing.pth")


def test_safetensors_reference_file_reads(tmp_path, tiny_model):
    save_file(to_reference_state_dict(tiny_model), str(tmp_path / "ref.safetensors"))
    model, _ = tokenizer_from_reference(read_state_dict(tmp_path / "ref.safetensors"), tiny_model.config)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model.encode(x)[0], tiny_model.encode(x)[0])


def test_convert_command_writes_a_loadable_model(golden_dir, tmp_path, monkeypatch, capsys):
    """`seedtok convert` on the three files; the reduced golden config stands in for seed1."""
    import seedtok.checkpoint as ck
    from seedtok.cli import main

    paths = _split_like_release(golden_dir, tmp_path)
    reference_model, pixels, golden, _ = load_golden(golden_dir)
    monkeypatch.setattr(ck, "get_preset", lambda name: reference_model.config)
    args = ["convert", "--eva-vit", str(paths[0]), "--causal-qformer", str(paths[1]), "--seed-tokenizer", str(paths[2])]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert "ignored pos_embed" in capsys.readouterr().out
    assert torch.equal(from_pretrained(tmp_path / "out").encode(pixels)[0], golden["ids"])
