"""Shape tests and invariants of the tiny tokenizer (STYLE.md test pyramid 1-2)."""

import dataclasses

import pytest
import torch

from seedtok.config import get_preset
from seedtok.models import QFormer, SeedTokenizer, VectorQuantizer


def test_tiny_shapes(tiny_model):
    c = tiny_model.config
    x = torch.randn(2, 3, c.vision.image_size, c.vision.image_size)
    with torch.no_grad():
        out = tiny_model(x)
    n = c.vision.num_patches + 1
    assert out.vit_features.shape == (2, n, c.vision.hidden_size)
    assert out.causal_embeds.shape == (2, 32, c.qformer.hidden_size)
    assert out.codebook_inputs.shape == (2, 32, c.codebook.codebook_dim)
    assert out.ids.shape == (2, 32) and out.ids.dtype == torch.int64
    assert out.generation_embeds.shape == (2, c.generation_len, c.generation_dim)
    assert out.usage.sum() == 64 and 1 <= out.perplexity <= 64


def test_wrong_image_size_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="expected 64x64"):
        tiny_model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("j", [0, 5, 31])
def test_causal_qformer_query_j_does_not_affect_earlier_outputs(j):
    torch.manual_seed(0)
    qf = QFormer(get_preset("tiny").qformer).eval()
    enc = torch.randn(2, 65, 128)
    with torch.no_grad():
        base = qf(enc)
        qf.query_tokens[0, j] += torch.randn(128)
        moved = qf(enc)
    assert torch.equal(base[:, :j], moved[:, :j])
    assert not torch.allclose(base[:, j:], moved[:, j:])


def test_bidirectional_qformer_is_not_causal():
    torch.manual_seed(0)
    qf = QFormer(dataclasses.replace(get_preset("tiny").qformer, causal=False)).eval()
    enc = torch.randn(1, 65, 128)
    with torch.no_grad():
        base = qf(enc)
        qf.query_tokens[0, 31] += 1.0
        moved = qf(enc)
    assert (base[:, 0] - moved[:, 0]).abs().max() > 0  # query 0 sees query 31


def test_eval_encoding_is_deterministic(tiny_model):
    x = torch.randn(3, 3, 64, 64)
    a, ea = tiny_model.encode(x)
    b, eb = tiny_model.encode(x)
    assert torch.equal(a, b) and torch.equal(ea, eb)


def test_batch_of_two_equals_two_batches_of_one(tiny_model):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = tiny_model(x)
        one = [tiny_model(x[i : i + 1]) for i in range(2)]
    assert torch.equal(both.ids, torch.cat([o.ids for o in one]))
    torch.testing.assert_close(both.generation_embeds, torch.cat([o.generation_embeds for o in one]), atol=1e-5, rtol=1e-5)


def test_decode_ids_equals_quantized_path(tiny_model):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = tiny_model(x)
    assert torch.equal(tiny_model.quantizer.lookup(out.ids), out.quantized)
    assert torch.equal(tiny_model.decode_ids(out.ids), out.generation_embeds)


def test_decode_ids_rejects_bad_ids(tiny_model):
    n = tiny_model.config.codebook.codebook_size
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tiny_model.decode_ids(torch.full((1, 32), n))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tiny_model.decode_ids(torch.full((1, 32), -1))
    with pytest.raises(ValueError, match="shape"):
        tiny_model.decode_ids(torch.zeros(1, 31, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        tiny_model.decode_ids(torch.zeros(1, 32))


def test_straight_through_gradient_and_reference_vq_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(get_preset("tiny").codebook)
    z = torch.randn(2, 32, 32, requires_grad=True)
    out = vq(z)
    (out.quantized * 3.0).sum().backward()
    assert torch.equal(z.grad, torch.full_like(z, 3.0))  # identity gradient through the codes
    zq = vq.embedding.weight[out.ids]
    expected = ((zq - z) ** 2).mean() * (1 + 0.25)
    torch.testing.assert_close(out.loss, expected)
    assert torch.equal(out.ids, ((z[..., None, :] - vq.embedding.weight) ** 2).sum(-1).argmin(-1))


def test_every_trainable_parameter_gets_a_gradient():
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    cfg = cfg.replace(qformer=dataclasses.replace(cfg.qformer, vocab_size=100))
    model = SeedTokenizer(cfg).train()
    out = model(torch.randn(2, 3, 64, 64))
    text = model.qformer.encode_text(torch.randint(1, 100, (2, 7)))
    img = torch.nn.functional.normalize(model.qformer.vision_proj(out.causal_embeds[:, -1]), dim=-1)
    txt = torch.nn.functional.normalize(model.qformer.text_proj(text[:, 0]), dim=-1)
    loss = out.generation_embeds.pow(2).mean() + out.vq_loss + (img @ txt.t() / model.qformer.temp).mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    # The padding row of the word embedding is zero by construction and receives no gradient.
    assert no_grad == [], no_grad


def test_text_branch_absent_raises():
    qf = QFormer(get_preset("tiny").qformer)
    with pytest.raises(RuntimeError, match="no text branch"):
        qf.encode_text(torch.ones(1, 3, dtype=torch.long))


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = SeedTokenizer(get_preset("tiny")).train()
    x = torch.randn(2, 3, 64, 64)

    def grads():
        model.zero_grad()
        model(x).generation_embeds.pow(2).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    for m in (model.vision, model.qformer, model.reverse_qformer):
        m.set_grad_checkpointing(True)
    ckpt = grads()
    assert plain.keys() == ckpt.keys()
    for n in plain:
        torch.testing.assert_close(plain[n], ckpt[n], rtol=1e-5, atol=1e-6, msg=n)
