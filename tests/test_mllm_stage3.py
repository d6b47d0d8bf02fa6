"""Issue 16 pieces, fast: stage 0c's read-back documents fill the whole length, the stage-3
loss weightings, the curriculum switch, oracle codes and the oracle bench (in-process CLI)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from seedtok.cli import main
from seedtok.data.scene import Scene, caption, sample_scene, vqa_pairs
from seedtok.mllm.corpus import LAYOUT_PROMPT, DocumentSampler, corpus_lines, layout_line, scene_lines
from seedtok.mllm.oracle import oracle_codes, oracle_scene
from seedtok.mllm.standin import build_standin, build_text_tokenizer
from seedtok.mllm.train import CausalLMObjective, weighted_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = sample_scene(rng)
        out.append({"scene": s.to_dict(), "caption": caption(s, rng), "vqa": vqa_pairs(s, rng)})
    return out


@pytest.fixture(scope="module")
def text_tokenizer():
    return build_text_tokenizer(corpus_lines(_records(200)), vocab_size=512)


def test_documents_fill_the_length_and_hold_the_prompt_words(text_tokenizer):
    tok = text_tokenizer
    docs = DocumentSampler(_records(50, seed=1), tok, length=160, seed=0)
    for i in range(8):
        d = docs.document(i)
        assert len(d) == 160 and d[0] == tok.bos_token_id
        assert d.count(tok.eos_token_id) >= 4  # several lines packed, each ended by eos
        assert d == docs.document(i)  # a pure function of (seed, index)
    assert docs.document(0) != docs.document(1)
    # the prompt words are vocabulary tokens, not letters
    for words, n in ((" a photo of", 3), (" Question:", 2), (" Short answer.", 3), ("Generate an image:", 4)):
        assert len(tok(words, add_special_tokens=False).input_ids) == n, words
    # a scene's first line describes it; its answers need that line
    lines = scene_lines(_records(1, seed=2)[0]["scene"], random.Random(0))
    assert lines[0].startswith(("Generate an image:", " a photo of"))
    assert sum(l.startswith(" Question:") for l in lines) >= 3


def test_layout_lines_list_every_cell_in_slot_order(text_tokenizer):
    from seedtok.data.scene import POSITIONS, ShapeObject

    scene = Scene((ShapeObject("star", "red", "small", "bottom right"), ShapeObject("circle", "blue", "large", "top")), "white")
    assert layout_line(scene) == f"{LAYOUT_PROMPT} nothing; large blue circle; " + "; ".join(["nothing"] * 6) + "; small red star"
    named = layout_line(scene, "named")[len(LAYOUT_PROMPT):].split(";")
    assert [c.split(":")[0].strip() for c in named] == POSITIONS and named[1].strip() == "top: large blue circle"
    rec = _records(1, seed=3)[0]
    assert not any(l.startswith(LAYOUT_PROMPT) for l in scene_lines(rec["scene"], random.Random(0)))
    lines = scene_lines(rec["scene"], random.Random(0), "unnamed")
    assert sum(l.startswith(LAYOUT_PROMPT) for l in lines) == 1 and not lines[0].startswith(LAYOUT_PROMPT)
    docs = DocumentSampler(_records(50, seed=1), text_tokenizer, length=160, seed=0, layout="unnamed")
    assert LAYOUT_PROMPT.strip() in text_tokenizer.decode(docs.document(0))
    with pytest.raises(ValueError, match="layout"):
        DocumentSampler(_records(5), text_tokenizer, length=160, layout="sideways")


def test_weighted_loss_by_token_sequence_and_task():
    # seq 0: one target (loss 2), seq 1: three targets (loss 0), seq 2: no target
    per_token = torch.tensor([[2.0, 9.0, 9.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    valid = torch.tensor([[True, False, False], [True, True, True], [False, False, False]])
    assert weighted_loss(per_token, valid, "token").item() == pytest.approx(0.5)
    assert weighted_loss(per_token, valid, "sequence").item() == pytest.approx(1.0)
    # tasks: rows 0 and 2 are task 2, row 1 is task 0 -> mean(2.0, 0.0)
    assert weighted_loss(per_token, valid, "task", torch.tensor([2, 0, 2])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="task_ids"):
        weighted_loss(per_token, valid, "task")
    with pytest.raises(ValueError, match="unknown loss weighting"):
        weighted_loss(per_token, valid, "batch")


def test_objective_token_mean_matches_the_model_and_sequence_mean_differs(text_tokenizer):
    model = build_standin(text_tokenizer, seed=0, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, ffn_dim=64)
    ids = torch.randint(4, len(text_tokenizer), (2, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, :10] = -100  # row 0: 2 targets, row 1: 11 targets
    labels[1, 0] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "task_ids": torch.tensor([2, 0])}
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=batch["attention_mask"], labels=labels).loss
        token = CausalLMObjective(model, weighting="token")(batch)["loss"]
        seq = CausalLMObjective(model, weighting="sequence")(batch)["loss"]
        logits = model(input_ids=ids).logits[:, :-1]
        per = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:].clamp(min=0), reduction="none")
        mask = labels[:, 1:] != -100
        manual = torch.stack([(per[i] * mask[i]).sum() / mask[i].sum() for i in range(2)]).mean()
    torch.testing.assert_close(token, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seq, manual, rtol=1e-5, atol=1e-6)
    assert abs(seq.item() - token.item()) > 1e-4


def test_curriculum_switch():
    from seedtok.mllm.cache import IdCache
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.stage3 import Stage3Preset, TaskMixture
    from seedtok.mllm.standin import STANDIN_DIR

    if not (STANDIN_DIR / "config.json").is_file():
        pytest.skip("stand-in LLM not shipped")
    recs = _records(20)
    cache = IdCache(torch.stack([oracle_codes(Scene.from_dict(r["scene"])) for r in recs]), recs,
                    {"codebook_size": 1024, "num_tokens": 32})
    llm = SeedLLM.from_base(None, 1024, 32)
    preset = Stage3Preset(steps=10, batch_size=16, lr=1e-3, curriculum=((0.3, (1.0, 0.0, 0.0)), (0.5, (0.0, 0.0, 1.0))))
    assert preset.weights_at(0) == (1.0, 0.0, 0.0) and preset.weights_at(3) == (0.0, 0.0, 1.0)
    assert preset.weights_at(5) == preset.task_weights
    assert preset.weights_at(5, total_steps=20) == (1.0, 0.0, 0.0)  # fractions of the run's steps
    mix = TaskMixture(cache, llm.builder, preset, seed=0, batches_per_step=2)
    assert {int(t) for i in range(6) for t in mix.make(i, 16)["task_ids"]} == {0}  # steps 0-2
    assert {int(t) for i in range(6, 10) for t in mix.make(i, 16)["task_ids"]} == {2}  # steps 3-4
    late = {int(t) for i in range(10, 14) for t in mix.make(i, 16)["task_ids"]}
    assert late == {0, 1, 2}
    batch = mix.make(0, 4)
    assert batch["task_ids"].shape == (4,) and batch["input_ids"].shape[0] == 4


def test_draw_tail_weight_down_weights_the_codes_after_the_head(text_tokenizer):
    from seedtok.mllm.cache import IdCache
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.stage3 import Stage3Preset, TaskMixture
    from seedtok.mllm.standin import STANDIN_DIR

    if not (STANDIN_DIR / "config.json").is_file():
        pytest.skip("stand-in LLM not shipped")
    recs = _records(20)
    cache = IdCache(torch.stack([oracle_codes(Scene.from_dict(r["scene"])) for r in recs]), recs,
                    {"codebook_size": 1024, "num_tokens": 32})
    llm = SeedLLM.from_base(None, 1024, 32)
    plain = Stage3Preset(steps=10, batch_size=16, lr=1e-3)
    assert "label_weights" not in TaskMixture(cache, llm.builder, plain).make(0, 16)
    preset = Stage3Preset(steps=10, batch_size=16, lr=1e-3, draw_head=9, draw_tail_weight=0.25)
    batch = TaskMixture(cache, llm.builder, preset).make(0, 16)
    w, labels, tasks = batch["label_weights"], batch["labels"], batch["task_ids"]
    assert (tasks == 1).any() and (tasks != 1).any()
    lo, hi = llm.vocab.image_offset, llm.vocab.image_offset + 1024
    for row in range(16):
        code = (labels[row] >= lo) & (labels[row] < hi)
        if tasks[row] == 1:  # the first 9 codes and the markers keep weight 1, the other 23 codes 0.25
            assert int((w[row] == 0.25).sum()) == 23 and bool(code[w[row] == 0.25].all())
            assert code.sum() == 32 and int(((w[row] == 1.0) & code).sum()) == 9
        else:
            assert bool((w[row] == 1.0).all())
    # the objective takes a weighted mean: weight 0 on a target removes it from the loss
    model = llm.model
    ids = batch["input_ids"][:2]
    sub = {"input_ids": ids, "attention_mask": batch["attention_mask"][:2], "labels": labels[:2].clone()}
    obj = CausalLMObjective(model, weighting="token")
    with torch.no_grad():
        zero = dict(sub, label_weights=torch.ones(ids.shape))
        zero["label_weights"][:, -3:] = 0.0
        masked = dict(sub, labels=sub["labels"].clone())
        masked["labels"][:, -3:] = -100
        torch.testing.assert_close(obj(zero)["loss"], obj(masked)["loss"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="draw_head"):
        Stage3Preset(steps=1, batch_size=1, lr=1e-3, draw_head=40)


def test_oracle_codes_invert_exactly():
    rng = random.Random(0)
    for _ in range(300):
        scene = sample_scene(rng)
        codes = oracle_codes(scene)
        assert codes.shape == (32,) and int(codes.max()) < 1024 and (codes[9:] == 0).all()
        assert oracle_scene(codes).signature() == scene.signature()
    assert oracle_scene(torch.full((32,), 1000)).objects == ()  # codes outside the table: empty cells


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seedtok.data.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp("oracle")
    write_shapes_dataset(root / "shapes", 60, seed=5)
    return root


def test_train_and_bench_on_oracle_codes(world):
    from seedtok.mllm.standin import STANDIN_DIR

    if not (STANDIN_DIR / "config.json").is_file():
        pytest.skip("stand-in LLM not shipped")
    run, data = world / "run", str(world / "shapes")
    assert main(["-q", "train", "llm", "--oracle", "--data", data, "--out", str(run), "--steps", "2",
                 "--loss-weighting", "task"]) == 0
    report = json.loads((run / "train_report.json").read_text())
    assert report["image_tokenizer"] == "oracle-v1" and report["preset"]["loss_weighting"] == "task"
    out = world / "bench.json"
    assert main(["-q", "llm", "bench", "--oracle", "--data", data, "--llm", str(run), "--limit", "3", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["codes"] == "oracle"
    for split in ("test", "compositional"):
        r = res[split]
        assert r["caption"]["n"] == 3 and 0.0 <= r["caption"]["exact_scene_match"] <= 1.0
        assert r["vqa"]["n"] >= 9 and set(r["vqa"]["per_type"]) <= {"color", "shape", "count", "exist", "position"}
        # the oracle "de-tokenizer" is exact: the true codes draw the true scene
        assert r["draw"]["true_codes_ceiling"]["exact_scene_match"] == 1.0
    assert res["timing"]["stage3"]["steps"] is not None and res["timing"]["stage3"]["train_cpu_seconds"] >= 0
    assert main(["-q", "llm", "bench", "--oracle", "--tokenizer", "x", "--data", data, "--llm", str(run),
                 "--out", str(world / "b2.json")]) == 1


def test_train_lm_documents_cli(world):
    out = world / "lm"
    assert main(["-q", "train", "lm", "--data", str(world / "shapes"), "--out", str(out), "--steps", "2",
                 "--batch-size", "2", "--length", "48", "--layout", "unnamed"]) == 0
    prov = json.loads((out / "model" / "provenance.json").read_text())
    assert prov["document_length"] == 48 and prov["steps"] == 2
    assert {"train_cpu_seconds", "total_cpu_seconds", "val_loss", "probe"} <= set(prov)
    assert 0.0 <= prov["probe"]["vqa"] <= 1.0 and 0.0 <= prov["probe"]["layout_cells"] <= 1.0
    assert prov["layout"] == "unnamed"
