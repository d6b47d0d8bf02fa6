"""``seedtok ablate`` (issue 11): variants are data, the table's statistics, and a smoke run of
the whole pipeline (every variant, a few steps each) through the CLI."""

from __future__ import annotations

import json
import math

import pytest

from seedtok.ablate import HEADLINE, SCALES, VARIANTS, markdown, summarise
from seedtok.config import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_variants_are_presets_and_weights_not_code_paths():
    assert list(VARIANTS) == ["seed", "bidirectional", "pixel-vq", "contrastive-only", "reconstruction-only", "oracle"]
    assert get_preset(VARIANTS["seed"].preset).qformer.causal
    assert not get_preset(VARIANTS["bidirectional"].preset).qformer.causal
    bi, seed = get_preset(VARIANTS["bidirectional"].preset), get_preset(VARIANTS["seed"].preset)
    assert bi.replace(qformer=seed.qformer) == seed  # only the causal flag differs
    assert VARIANTS["contrastive-only"].stage2_weights == (5.0, 0.0, 0.0, 1.0)
    assert not VARIANTS["contrastive-only"].generation_phase and VARIANTS["seed"].generation_phase
    recon = VARIANTS["reconstruction-only"]
    assert not recon.stage1 and recon.qformer_init == "none" and recon.stage2_weights[3] == 0.0  # no contrastive term anywhere
    assert VARIANTS["pixel-vq"].kind == "pixel" and VARIANTS["oracle"].kind == "oracle"
    # Every other field is the shipped recipe's: the variants differ only where their claim says.
    from seedtok.train.bench import TINY_STAGE2_WEIGHTS

    assert VARIANTS["seed"].stage2_weights == VARIANTS["bidirectional"].stage2_weights == TINY_STAGE2_WEIGHTS
    assert SCALES["default"].stage3_preset == "tiny-full"


def _fake(name: str, seed: int, value: float) -> dict:
    """A run result with every headline number equal to ``value``."""
    retrieval = None if name == "pixel-vq" else {"codes": {"i2t_r1": value}}
    codebook = {"codes_used_pct": value, "perplexity": value}
    tokenizer = {"retrieval": retrieval, "reconstruction": {"color_shape": value}, "codebook": codebook}
    curves = {"step": [1, 2], "image_loss": [9.0, value], "text_loss": [9.0, value]}
    llm = {"caption": {"exact_scene_match": value, "cider": value}, "code_entropy": value,
           "vqa": {"accuracy": value, "per_type": {"color": {"accuracy": value}}},
           "draw": {"color_shape": value, "exact_scene_match": value}, "curves": curves}
    return {"variant": {"name": name}, "seed": seed, "tokenizer": tokenizer, "llm": llm}


def test_code_entropy_is_per_position_entropy():
    import torch

    from seedtok.ablate import code_entropy

    ids = torch.zeros(8, 32, dtype=torch.long)
    assert code_entropy(ids) == 0.0
    ids[:, 0] = torch.arange(8)  # position 0 uniform over 8 codes, the others constant
    assert math.isclose(code_entropy(ids), math.log(8) / 32, rel_tol=1e-6)


def test_summary_is_mean_and_sample_std_over_seeds():
    results = [_fake("seed", s, v) for s, v in enumerate([0.2, 0.4, 0.6])] + [_fake("pixel-vq", 0, 0.5)]
    meta = {"scale_name": "smoke", "scale": {}, "command": "seedtok ablate"}
    table = summarise(results, meta)["table"]
    assert list(table) == ["seed", "pixel-vq"]
    vqa = table["seed"]["vqa_accuracy"]
    assert math.isclose(vqa["mean"], 0.4) and math.isclose(vqa["std"], 0.2) and vqa["n"] == 3
    assert table["pixel-vq"]["retrieval_i2t_r1_codes"] == {"mean": None, "std": None, "n": 0}
    md = markdown(summarise(results, meta))
    assert "| `seed` |" in md and "0.400 ± 0.200" in md and "n/a" in md and "Reproduce: `seedtok ablate`" in md
    assert math.isclose(table["seed"]["vqa_per_type"]["color"]["mean"], 0.4)
    assert table["seed"]["image_nats_from_text"]["mean"] == 0.0  # entropy - last image loss, both = value


def test_significance_flags_only_differences_beyond_two_std():
    seed = [_fake("seed", s, v) for s, v in enumerate([0.40, 0.42, 0.44])]  # std 0.02
    far = [_fake("bidirectional", s, v) for s, v in enumerate([0.60, 0.61, 0.62])]  # +0.19 > 2 * 0.02
    near = [_fake("contrastive-only", s, v) for s, v in enumerate([0.43, 0.44, 0.45])]  # +0.02 < 0.04
    meta = {"scale_name": "smoke", "scale": {}, "command": "x"}
    summary = summarise(seed + far + near, meta)
    sig = summary["significance"]
    assert set(sig) == {"bidirectional vs seed", "contrastive-only vs seed"}  # only pairs with both rows
    assert "vqa_accuracy" in sig["bidirectional vs seed"] and "vqa_color" in sig["bidirectional vs seed"]
    assert math.isclose(sig["bidirectional vs seed"]["vqa_accuracy"]["diff"], 0.19)
    assert sig["contrastive-only vs seed"] == {}
    md = markdown(summary)
    assert "- bidirectional vs seed: " in md and "VQA acc. +0.190" in md and "- contrastive-only vs seed: none" in md


def test_blind_baselines_answer_from_question_priors():
    from seedtok.ablate import blind_baselines
    from seedtok.data.scene import Scene, ShapeObject, caption

    scene = Scene((ShapeObject("circle", "red", "large", "center"),))
    qa = [{"question": "what color is the circle?", "answer": "red", "type": "color"},
          {"question": "how many shapes are there?", "answer": "one", "type": "count"}]
    train = [{"caption": caption(scene), "vqa": qa, "scene": scene.to_dict()}] * 3
    test = [{"caption": caption(scene), "vqa": qa + [{"question": "new?", "answer": "one", "type": "count"}],
             "scene": scene.to_dict()}]
    out = blind_baselines(train, test)
    assert out["vqa_accuracy"] == 1.0  # same-question prior, then the type's prior
    assert out["caption"] == caption(scene) and out["caption_exact"] == 1.0 and out["caption_cider"] >= 0.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seedtok.data.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp("ablate")
    write_shapes_dataset(root / "shapes", 100, seed=3)
    return root


def test_smoke_ablation_every_variant_through_the_cli(world, capsys):
    from seedtok.cli import main

    out = world / "ablation"
    argv = ["ablate", "--data", str(world / "shapes"), "--out", str(out), "--scale", "smoke", "--seeds", "0", "--jobs", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "ablation.json").read_text())
    assert sorted(summary["table"]) == sorted(VARIANTS)
    assert summary["scale"] == {**vars(SCALES["smoke"])}
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in VARIANTS:
        row = summary["table"][name]
        assert row["seeds"] == [0]
        tokenizer_keys = ("reconstruction_color_shape", "codebook_used_pct")
        for key in ("caption_cider", "vqa_accuracy", "t2i_color_shape", "llm_image_loss", "code_entropy", *tokenizer_keys):
            if name == "oracle" and key in tokenizer_keys:  # no tokenizer to score
                assert row[key]["n"] == 0, key
                continue
            assert row[key]["n"] == 1 and row[key]["mean"] is not None, (name, key)
        result = json.loads((out / name / "seed0" / "result.json").read_text())
        curves = result["llm"]["curves"]
        assert len(curves["step"]) == SCALES["smoke"].steps3 and len(curves["image_loss"]) == len(curves["step"])
        assert "| `" + name + "` |" in printed
    assert 0.0 <= summary["blind"]["vqa_accuracy"] <= 1.0 and "| no image (priors) | control |" in printed
    assert summary["table"]["pixel-vq"]["retrieval_i2t_r1_codes"]["n"] == 0  # no text side
    assert summary["table"]["seed"]["retrieval_i2t_r1_codes"]["n"] == 1
    # Re-running resumes: every finished run is reused, not retrained (here through the
    # process pool that --jobs 2 uses).
    stamp = (out / "seed" / "seed0" / "result.json").stat().st_mtime_ns
    table = {f: (out / f).read_bytes() for f in ("ablation.json", "ablation.md", "loss_curves.png")}
    assert main(argv[:-1] + ["2"]) == 0
    # Summarising cached runs is byte-identical (the table does not depend on the invocation).
    assert {f: (out / f).read_bytes() for f in table} == table
    assert json.loads((out / "invocation.json").read_text())["jobs"] == 2
    # Resuming with other step counts would mix two setups in one table: refused.
    assert main([*argv[:-4], "--scale", "default", "--seeds", "0", "--jobs", "1"]) == 1
    assert "holds runs of another setup" in capsys.readouterr().err
    assert (out / "seed" / "seed0" / "result.json").stat().st_mtime_ns == stamp
