"""SEED-LLaMA plumbing (issue 18) with a tiny random LLaMA of the released vocabulary layout
(32,000 text tokens + 8192 <img_xxxxx> + <img>, </img>), a tiny random SEED-2 tokenizer and tiny
random Stable unCLIP components: vocabulary, prompt templates, caption/ask/draw end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from seed2_helpers import save_dummy_unclip_dir, save_tiny_seed_llama, tiny_seed2
from seedtok.checkpoint import save_pretrained
from seedtok.cli import main
from seedtok.mllm.generate import Sampling
from seedtok.mllm.seed_llama import TEMPLATES, SeedLlama, choose_template, load_llm, read_vocab
from seedtok.mllm.vocab import VocabularyError

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "seedtok" / "assets" / "samples"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("seedllama")
    tok_dir = save_pretrained(tiny_seed2(), root / "seed2")
    return SimpleNamespace(llm=save_tiny_seed_llama(root), tokenizer=tok_dir, unclip=save_dummy_unclip_dir(root))


@pytest.fixture(scope="module")
def llm(dirs):
    return SeedLlama.load(dirs.llm, template="vicuna")


def test_vocabulary_is_read_from_the_tokenizer(llm):
    v = llm.vocab
    assert (v.image_offset, v.codebook_size, v.img_start_id, v.img_end_id) == (32000, 8192, 40192, 40193)
    assert llm.tokenizer.convert_tokens_to_ids("<img_08191>") == 32000 + 8191


def test_tokenizer_without_image_tokens_is_refused(dirs):
    from transformers import AutoTokenizer

    base = AutoTokenizer.from_pretrained(dirs.llm)
    broken = SimpleNamespace(unk_token_id=0, convert_tokens_to_ids=lambda names: [
        0 if n == "<img_00000>" else base.convert_tokens_to_ids(n) for n in names] if isinstance(names, list) else 0)
    with pytest.raises(VocabularyError, match="no '<img_00000>'"):
        read_vocab(broken)


def test_prompts_match_the_reference_scripts(llm):
    codes = torch.arange(32) * 7
    img = "<img>" + "".join(f"<img_{c:05d}>" for c in codes.tolist()) + "</img>"
    q = "What is this animal?"
    # scripts/seed_llama_inference_8B.py: bos + "USER:" + " " + img_tokens + question + "\n" + "ASSISTANT:"
    assert llm.prompt_text(llm.image_tokens(codes) + q) == "<s>" + "USER:" + " " + img + q + "\n" + "ASSISTANT:"
    # scripts/seed_llama_inference_14B.py: bos + "[INST] " + img_tokens + question + " [/INST]" + "\n"
    llama2 = SeedLlama(llm.model, llm.tokenizer, llm.vocab, TEMPLATES["llama2"])
    assert llama2.prompt_text(img + q) == "<s>" + "[INST] " + img + q + " [/INST]" + "\n"
    assert llm.prompt_text("a dog", force_image=True).endswith("ASSISTANT:<img>")
    ids = llm.encode_prompt(llm.prompt_text(img + q), codes)
    span = [40192, *(32000 + codes).tolist(), 40193]
    assert ids[0] == 1 and any(ids[i : i + 34] == span for i in range(len(ids)))


def test_template_choice(tmp_path):
    cfg8 = SimpleNamespace(hidden_size=4096, num_hidden_layers=32)
    cfg14 = SimpleNamespace(hidden_size=5120, num_hidden_layers=40)
    other = SimpleNamespace(hidden_size=16, num_hidden_layers=2)
    assert choose_template(tmp_path, cfg8, None).name == "vicuna"
    assert choose_template(tmp_path, cfg14, None).name == "llama2"
    assert choose_template(tmp_path, cfg8, "llama2").name == "llama2"
    with pytest.raises(ValueError, match="--template"):
        choose_template(tmp_path, other, None)
    (tmp_path / "seed_llama.json").write_text(json.dumps({"template": "llama2"}))
    assert choose_template(tmp_path, other, None).name == "llama2"


def test_draw_always_yields_32_in_range_codes(llm):
    for seed in range(3):
        codes = llm.draw_codes(["a cat on the grass", "a red dog"], Sampling(temperature=1.5, seed=seed))
        assert codes.shape == (2, 32) and codes.dtype == torch.int64
        assert int(codes.min()) >= 0 and int(codes.max()) < 8192


def test_caption_and_answer_give_text(llm, dirs):
    from seedtok.checkpoint import from_pretrained

    tok = from_pretrained(dirs.tokenizer)
    [cap] = llm.caption([SAMPLES / "chelsea.png"], tok, max_new_tokens=6)
    [ans] = llm.answer([SAMPLES / "coffee.png"], ["what is this?"], tok, max_new_tokens=6)
    assert isinstance(cap, str) and cap and isinstance(ans, str) and ans
    with pytest.raises(ValueError, match="SEED-2"):
        llm.caption([SAMPLES / "chelsea.png"], torch.nn.Module())  # not a SEED-2 tokenizer


def test_cli_caption_ask_draw_end_to_end(dirs, tmp_path, capsys):
    common = ["--llm", str(dirs.llm), "--tokenizer", str(dirs.tokenizer), "--template", "vicuna"]
    assert main(["caption", str(SAMPLES / "astronaut.png"), *common]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(SAMPLES / "astronaut.png") + "\t") and len(line.split("\t")[1]) > 0
    assert main(["ask", str(SAMPLES / "coffee.png"), "what is this?", *common]) == 0
    assert capsys.readouterr().out.strip()
    out = tmp_path / "draw.png"
    draw = ["draw", "a cat on the grass", *common, "--decoder", str(dirs.unclip), "--steps", "2", "--height", "48", "--width", "64"]
    assert main([*draw, "--out", str(out)]) == 0
    path, codes = capsys.readouterr().out.strip().split("\t")
    codes = [int(c) for c in codes.split()]
    assert len(codes) == 32 and all(0 <= c < 8192 for c in codes)
    assert Image.open(out).size == (64, 48)


def test_cli_errors_name_the_problem(dirs, capsys):
    assert main(["caption", str(SAMPLES / "astronaut.png"), "--llm", str(dirs.llm), "--tokenizer", str(dirs.tokenizer)]) == 1
    assert "--template" in capsys.readouterr().err  # tiny config: no size rule applies
    assert main(["draw", "a dog", "--llm", str(dirs.llm), "--template", "vicuna", "--out", "x.png"]) == 1
    assert "--decoder" in capsys.readouterr().err


def test_load_llm_dispatches(dirs):
    assert isinstance(load_llm(dirs.llm, "llama2"), SeedLlama)


def test_missing_tokenizer_is_named(dirs, tmp_path):
    import shutil

    bare = tmp_path / "llm-without-tokenizer"
    bare.mkdir()
    for f in dirs.llm.iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, bare / f.name)
    with pytest.raises((FileNotFoundError, VocabularyError), match="--llm-tokenizer"):
        SeedLlama.load(bare, template="vicuna")
    assert SeedLlama.load(bare, template="vicuna", tokenizer_path=dirs.llm).vocab.image_offset == 32000
