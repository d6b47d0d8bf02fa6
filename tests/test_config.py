import dataclasses
import json

import pytest

from seedtok.config import PRESETS, ConfigError, TokenizerConfig, config_from_dict, config_from_parity_meta, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_round_trips_through_dict_and_json(name):
    cfg = get_preset(name)
    cls = type(cfg)  # TokenizerConfig, or Seed2Config for seed2
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_dict(json.loads(cfg.to_json())) == cfg
    assert config_from_dict(json.loads(cfg.to_json())) == cfg


def test_seed1_is_paper_exact():
    c = get_preset("seed1")
    assert (c.vision.hidden_size, c.vision.num_layers, c.vision.num_heads, c.vision.mlp_hidden_size) == (1408, 39, 16, 6144)
    assert c.vision.qkv_bias == "qv" and not c.vision.final_norm and c.vision.num_patches == 256
    q = c.qformer
    assert (q.hidden_size, q.num_layers, q.num_heads, q.intermediate_size, q.num_queries) == (768, 12, 12, 3072, 32)
    assert q.causal and q.ln_eps == 1e-12 and [i for i in range(12) if q.has_cross_attention(i)] == [0, 2, 4, 6, 8, 10]
    assert (c.codebook.codebook_size, c.codebook.codebook_dim, c.codebook.beta) == (8192, 32, 0.25)
    r = c.reverse_qformer
    assert (r.num_layers, r.num_queries, r.causal, r.encoder_width) == (4, 77, False, 768)
    assert (c.generation_len, c.generation_dim, c.ln_vision_eps) == (77, 768, 1e-5)
    assert get_preset("seed1-stage1").qformer.vocab_size == 30523


def test_tiny_is_small():
    c = get_preset("tiny")
    assert c.vision.image_size in (32, 64) and c.codebook.codebook_size <= 1024 and c.num_tokens == 32


def test_causality_is_an_explicit_field_not_inferred():
    cfg = get_preset("tiny")
    bi = dataclasses.replace(cfg.qformer, causal=False)
    assert bi.num_queries == 32 and not bi.causal
    rev = dataclasses.replace(cfg.reverse_qformer, num_queries=32, causal=True)
    assert rev.causal


def test_parity_meta_gives_reduced_config(golden_dir):
    meta = json.loads((golden_dir / "meta.json").read_text())
    c = config_from_parity_meta(meta)
    assert c.vision.hidden_size == meta["vit"]["width"] and c.vision.mlp_hidden_size == meta["vit"]["mlp_hidden"]
    assert c.qformer.hidden_size == meta["qformer"]["hidden"] and c.reverse_qformer.num_queries == 77


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="unknown keys"):
        TokenizerConfig.from_dict({"visionn": {}})
    with pytest.raises(ConfigError, match="divide"):
        TokenizerConfig.from_dict({"vision": {"hidden_size": 100, "num_heads": 3}, "qformer": {"encoder_width": 100}})
    with pytest.raises(ConfigError, match="encoder_width"):
        TokenizerConfig.from_dict({"vision": {"hidden_size": 64, "num_heads": 4}})
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")
