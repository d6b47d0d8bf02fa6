"""The int8-ViT encoder (issue 20): per-channel int8 layers, built without an fp32 copy, close
to fp32; the fp32 inference shortcuts change no number; agreement and FLOP accounting."""

import pytest
import torch
from safetensors.torch import save_file

from seedtok.bench import count_flops, peak_rss_mib
from seedtok.checkpoint import CheckpointError, SafetensorsReader, save_pretrained
from seedtok.config import get_preset
from seedtok.eval.agreement import compare_encoders, nearest_margins
from seedtok.fast import Int8Linear, int8_vision, load_int8, quantize_vision_
from seedtok.models import SeedTokenizer
from seedtok.models.layers import ViTBlock
from seedtok.parity import load_golden

pytestmark = pytest.mark.usefixtures("one_thread")


def test_int8_vision_close_to_fp32_on_golden_data(golden_dir):
    model, pixels, golden, _ = load_golden(golden_dir)
    fast = int8_vision(model)
    assert type(model.vision.blocks[0].attn.qkv) is torch.nn.Linear  # the original is untouched
    attn = fast.vision.blocks[0].attn
    assert isinstance(attn.qkv, Int8Linear) and attn.bias_mode == "qkv" and not hasattr(attn, "q_bias")  # q/v bias folded
    assert not any(isinstance(m, torch.nn.Linear) for m in fast.vision.modules())
    assert fast.qformer.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    ids, causal = fast.encode(pixels)
    cos = torch.nn.functional.cosine_similarity(causal, golden["causal_embeds"], dim=-1)
    assert cos.min() > 0.999
    assert (ids == golden["ids"]).float().mean() > 0.85  # measured 0.94 on these random reduced weights


def test_load_int8_equals_in_memory_quantization_and_is_strict(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path / "m")
    loaded = load_int8(tmp_path / "m")
    expected = quantize_vision_(tiny_model)
    x = torch.randn(2, 3, 64, 64)
    (ids_a, c_a), (ids_b, c_b) = loaded.encode(x), expected.encode(x)
    assert torch.equal(ids_a, ids_b) and torch.equal(c_a, c_b)
    assert not any(p.is_meta for p in loaded.parameters())
    assert sum(isinstance(m, Int8Linear) for m in loaded.modules()) == 4 * len(loaded.vision.blocks)
    # a file missing one ViT weight is refused before anything is loaded
    state = {k: v.contiguous() for k, v in SeedTokenizer(tiny_model.config).state_dict().items() if k != "vision.blocks.0.mlp.fc1.weight"}
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing keys.*fc1.weight"):
        load_int8(tmp_path / "m", verify=False)


def test_safetensors_reader_round_trip_and_truncation(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2).half(), "d": torch.tensor([True, False]),
               "e": torch.randn(2, 2).bfloat16(), "s": torch.tensor(1.5)}
    save_file(tensors, tmp_path / "t.safetensors")
    with SafetensorsReader(tmp_path / "t.safetensors") as r:
        assert r.shapes()["a"] == (3, 4)
        for k, v in tensors.items():
            assert torch.equal(r.read(k), v), k
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-8])
    with pytest.raises(CheckpointError, match="does not fit"):
        SafetensorsReader(tmp_path / "cut.safetensors")


def test_vit_block_inference_shortcuts_change_nothing():
    torch.manual_seed(0)
    block = ViTBlock(32, 4, 64, 1e-6, "qv").eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 5, 32)
    keep = x.clone()
    with torch.no_grad():
        fast = block(x)  # in-place GELU and residual, q/v bias in the addmm
    assert torch.equal(x, keep)  # the caller's tensor is never modified
    slow = block(x)  # grad mode: the out-of-place path
    assert torch.equal(fast, slow.detach())
    slow.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_flop_count_includes_attention(tiny_model):
    tiny_model.requires_grad_(False)
    x = torch.randn(1, 3, 64, 64)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as plain:
        tiny_model.encode(x)
    with torch.device("meta"):
        meta = SeedTokenizer(tiny_model.config).eval().requires_grad_(False)
        meta_flops = count_flops(lambda: meta.encode(torch.empty(1, 3, 64, 64)))
    counted = count_flops(lambda: tiny_model.encode(x))
    assert counted == meta_flops > plain.get_total_flops()  # torch alone misses the CPU SDPA kernel


def test_agreement_of_an_encoder_with_itself(tiny_model):
    x = torch.randn(3, 3, 64, 64)
    rep = compare_encoders(tiny_model, tiny_model, x, batch=2)
    assert rep["agreement"] == 1.0 and rep["images_with_identical_codes"] == 3 and len(rep["agreement_per_position"]) == 32
    assert rep["margin_of_flipped_codes"]["count"] == 0 and abs(rep["causal_cosine_min"] - 1) < 1e-6
    margins = nearest_margins(tiny_model, tiny_model.encode(x)[1])
    assert margins.shape == (3, 32) and (margins >= 0).all()


def test_peak_rss_of_a_child_process(tmp_path, tiny_model, golden_dir):
    save_pretrained(tiny_model, tmp_path / "m")
    rss = peak_rss_mib(["encode", "--model", str(tmp_path / "m"), str(golden_dir / "coffee.png"), "--int8"])
    assert 50 < rss < 2000  # the child's own peak: an interpreter with torch and a tiny model


def test_int8_api_and_preset_path(tmp_path, tiny_model, golden_dir, capsys):
    from seedtok.api import load_tokenizer
    from seedtok.cli import main

    assert isinstance(load_tokenizer(preset="tiny", int8=True).vision.blocks[0].mlp.fc1, Int8Linear)
    save_pretrained(tiny_model, tmp_path / "m")
    assert main(["encode", str(golden_dir / "coffee.png"), "--model", str(tmp_path / "m"), "--int8"]) == 0
    assert len(capsys.readouterr().out.split("\t")[1].split()) == 32


def test_activation_quantization_and_fused_gelu():
    from seedtok.fast import _quantize_u7

    torch.manual_seed(0)
    x = torch.randn(37, 64) * 3 + 1
    raw, scale, zero = _quantize_u7(x)
    assert raw.dtype == torch.uint8 and raw.shape == x.shape and int(raw.max()) <= 127
    ref = torch.quantize_per_tensor(x, scale, zero, torch.quint8).int_repr()
    assert torch.equal(raw, ref)  # a view of the quantized storage, the same bytes as int_repr
    assert ((raw.float() - zero) * scale - x).abs().max() <= scale / 2 + 1e-6
    assert _quantize_u7(torch.zeros(4, 8))[0].eq(0).all()  # all-zero input: no division by zero
    lin = torch.nn.Linear(64, 96)
    with torch.no_grad():
        plain, fused = Int8Linear(lin.weight, lin.bias), Int8Linear(lin.weight, lin.bias, gelu=True)
        want = torch.nn.functional.gelu(lin(x))
        assert torch.allclose(fused(x), torch.nn.functional.gelu(plain(x)), atol=1e-4)
        assert (fused(x) - want).abs().max() < 0.05 * want.abs().max()

    from seedtok.fast import _replace, _vit_linears

    block = ViTBlock(64, 4, 96, 1e-6, "qv").eval()
    with torch.no_grad():
        want = block(x.view(1, 37, 64).clone())
        for parent, attr, _ in _vit_linears(block):
            _replace(parent, attr, getattr(parent, attr).weight, getattr(parent, attr).bias)
        assert block.mlp.fc1.gelu and block.mlp.fc1_applies_gelu and not block.mlp.fc2.gelu
        got = block(x.view(1, 37, 64).clone())  # GELU applied once (fused), not twice
    delta_want, delta_got = want - x, got - x  # the block's residual branches
    assert (delta_got - delta_want).abs().max() < 0.05 * delta_want.abs().max()  # measured 0.021 (0.25 with GELU applied twice)
