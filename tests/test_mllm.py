"""SEED-OPT core: id mapping, LoRA freezing, sequences, constrained decoding, merge, bad input.
All on a tiny random OPT with a byte-level BPE built offline (no downloads)."""

from __future__ import annotations

import warnings

import pytest
import torch

from seedtok.mllm.generate import Sampling
from seedtok.mllm.lora import LoraSettings
from seedtok.mllm.model import SeedLLM
from seedtok.mllm.sequences import IGNORE_INDEX, PromptError, collate
from seedtok.mllm.standin import build_standin, build_text_tokenizer
from seedtok.mllm.train import train_lm
from seedtok.train.core import TrainArgs
from seedtok.mllm.vocab import ImageVocab, VocabularyError, image_token_name

CODEBOOK, NTOK = 64, 32
LINES = [
    "a large red circle at the top left and a small blue star at the bottom",
    "there is a small green square in the center",
    "what color is the circle? red",
    "how many shapes are there? two",
]
TINY_ARCH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, max_position_embeddings=128, init_std=0.2)

warnings.filterwarnings("ignore", category=FutureWarning)



pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny random OPT + tokenizer saved like any local transformers model."""
    tokenizer = build_text_tokenizer(LINES * 10, vocab_size=300)
    model = build_standin(tokenizer, seed=0, **TINY_ARCH)
    path = tmp_path_factory.mktemp("base")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def llm(base_dir) -> SeedLLM:
    torch.manual_seed(0)
    return SeedLLM.from_base(base_dir, CODEBOOK, NTOK)


def _codes(seed: int) -> torch.Tensor:
    return torch.randint(0, CODEBOOK, (NTOK,), generator=torch.Generator().manual_seed(seed))


def test_id_mapping_round_trip(llm):
    v = llm.vocab
    codes = torch.arange(CODEBOOK)
    ids = v.code_to_token_id(codes)
    assert torch.equal(v.token_id_to_code(ids), codes)
    assert ids.tolist() == list(range(v.image_offset, v.image_offset + CODEBOOK))
    # the tokenizer agrees: names <-> ids, and text with image tokens tokenizes to them
    assert llm.tokenizer.convert_tokens_to_ids([image_token_name(c) for c in (0, 7, CODEBOOK - 1)]) == ids[[0, 7, -1]].tolist()
    text = "<img>" + "".join(image_token_name(c) for c in (3, 5)) + "</img>"
    assert llm.tokenizer(text, add_special_tokens=False).input_ids == [v.img_start_id, *ids[[3, 5]].tolist(), v.img_end_id]
    assert llm.model.get_input_embeddings().weight.shape[0] == v.vocab_size == len(llm.tokenizer)
    assert ImageVocab.from_dict(__import__("json").loads(v.to_json())) == v


def test_out_of_codebook_and_bad_ids_raise(llm):
    with pytest.raises(VocabularyError, match="outside the codebook"):
        llm.vocab.code_to_token_id([0, CODEBOOK])
    with pytest.raises(VocabularyError, match="outside the codebook"):
        llm.caption_codes(torch.full((1, NTOK), -1))
    with pytest.raises(VocabularyError, match="not an image token"):
        llm.vocab.token_id_to_code([llm.vocab.img_end_id])
    with pytest.raises(VocabularyError, match="32 codes"):
        llm.builder.caption_prompt(list(range(5)))


def test_only_lora_and_new_rows_get_gradients(llm):
    b = llm.builder
    batch = collate([b.caption_example(_codes(0), LINES[0]), b.draw_example(LINES[1], _codes(1))], llm.tokenizer.pad_token_id)
    llm.model.train()
    llm.model(**batch).loss.backward()
    for name, p in llm.model.named_parameters():
        trainable = "lora_" in name or "trainable_tokens_delta" in name
        assert p.requires_grad == trainable, name
        if trainable:  # lora_A's gradient is zero until lora_B (initialised to 0) moves
            assert p.grad is not None and ("lora_A" in name or p.grad.abs().sum() > 0), name
        else:
            assert p.grad is None, name
    delta = next(p for n, p in llm.model.named_parameters() if "trainable_tokens_delta" in n)
    assert delta.shape[0] == len(llm.vocab.new_token_ids) == CODEBOOK + 2


def test_sequences_mask_the_prompt(llm):
    b, v = llm.builder, llm.vocab
    ex = b.caption_example(_codes(0), "a red circle")
    n_target = len(b.text_ids(" a red circle")) + 1
    assert ex.labels[:-n_target] == [IGNORE_INDEX] * (len(ex.labels) - n_target)
    assert ex.labels[-1] == llm.tokenizer.eos_token_id
    assert ex.input_ids[1] == v.img_start_id and ex.input_ids[2 + NTOK] == v.img_end_id
    ex = b.draw_example("a red circle", _codes(1))
    target = [t for t in ex.labels if t != IGNORE_INDEX]
    assert target == v.image_span(_codes(1)) + [llm.tokenizer.eos_token_id]
    ex = b.vqa_example(_codes(2), "what color is the circle?", "red")
    assert llm.tokenizer.decode([t for t in ex.labels if t != IGNORE_INDEX], skip_special_tokens=True) == " red"


def test_bad_prompts_raise_clear_errors(llm):
    with pytest.raises(PromptError, match="question is empty"):
        llm.answer_codes(_codes(0)[None], ["  "])
    with pytest.raises(PromptError, match="text is empty"):
        llm.draw_codes([""])
    with pytest.raises(PromptError, match="exceeds the model's maximum length 128"):
        llm.draw_codes(["red " * 200])
    with pytest.raises(PromptError, match="maximum length"):
        llm.answer_codes(_codes(0)[None], ["what " * 100])


def test_constrained_decoding_always_32_in_range(llm):
    # An untrained model prefers arbitrary tokens; the grammar must still hold, greedy and sampled.
    texts = ["a red circle", "two shapes", "there is a small green square in the center"]
    for sampling in [Sampling(), *(Sampling(temperature=1.5, seed=s) for s in range(3))]:
        codes = llm.draw_codes(texts, sampling)
        assert codes.shape == (len(texts), NTOK) and codes.dtype == torch.long
        assert int(codes.min()) >= 0 and int(codes.max()) < CODEBOOK
    a = llm.draw_codes(texts, Sampling(temperature=1.0, seed=7))
    assert torch.equal(a, llm.draw_codes(texts, Sampling(temperature=1.0, seed=7)))  # seeded


def test_text_generation_never_emits_image_tokens(llm):
    caps = llm.caption_codes(torch.stack([_codes(0), _codes(1)]), max_new_tokens=6, sampling=Sampling(temperature=2.0, seed=1))
    assert len(caps) == 2 and all("<img" not in c for c in caps)


def test_overfit_one_caption_and_one_image(llm, tmp_path):
    """The tiny model memorises one caption and one image sequence through LoRA + new rows."""
    b, tok = llm.builder, llm.tokenizer
    img_codes, draw_codes = _codes(0), _codes(1)
    batch = collate([b.caption_example(img_codes, LINES[0]), b.draw_example(LINES[1], draw_codes)], tok.pad_token_id)
    args = TrainArgs(out=str(tmp_path), steps=100, batch_size=2, lr=1e-2, weight_decay=0.0, warmup=10, progress=False)
    fit = train_lm(llm.model, lambda index, size: batch, args, "overfit")
    # The frozen random base bounds how peaked text logits can get; memorisation is the check.
    assert fit["history"][-1][1] < 0.3 * fit["history"][0][1]
    assert llm.caption_codes(img_codes[None])[0] == LINES[0]
    assert torch.equal(llm.draw_codes([LINES[1]])[0], draw_codes)


def test_merged_equals_unmerged_and_save_load(llm, tmp_path):
    with torch.no_grad():  # make LoRA and the token rows non-trivial
        for n, p in llm.model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    llm.model.eval()
    b = llm.builder
    batch = collate([b.caption_example(_codes(0), LINES[0]), b.draw_example(LINES[1], _codes(1))], llm.tokenizer.pad_token_id)
    with torch.no_grad():
        before = llm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    codes_before = llm.draw_codes(LINES[:2])
    llm.save(tmp_path / "adapter")
    loaded = SeedLLM.load(tmp_path / "adapter")
    merged = llm.merge()
    for other in (loaded, merged):
        with torch.no_grad():
            after = other.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
        assert torch.equal(other.draw_codes(LINES[:2]), codes_before)
    merged.save(tmp_path / "merged")
    again = SeedLLM.load(tmp_path / "merged")
    assert again.merged and torch.equal(again.draw_codes(LINES[:2]), codes_before)


def test_lora_settings_are_configurable(base_dir):
    llm = SeedLLM.from_base(base_dir, CODEBOOK, NTOK, LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj")))
    names = [n for n, p in llm.model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert names and all(("q_proj" in n or "v_proj" in n) for n in names)
    a = next(p for n, p in llm.model.named_parameters() if "lora_A" in n)
    assert a.shape[0] == 4


def test_id_cache_and_task_mixture(llm, tmp_path):
    from seedtok.config import get_preset
    from seedtok.mllm.cache import IdCache, load_cache, save_cache, tokenizer_fingerprint
    from seedtok.mllm.stage3 import Stage3Preset, TaskMixture
    from seedtok.models import SeedTokenizer

    torch.manual_seed(0)
    tok = SeedTokenizer(get_preset("tiny")).eval()
    records = [{"key": str(i), "caption": LINES[i % 2], "vqa": [{"question": "how many shapes are there?", "answer": "two", "type": "count"}]}
               for i in range(4)]
    ids = torch.stack([_codes(i) for i in range(4)]).int()
    save_cache(IdCache(ids, records, {"tokenizer": tokenizer_fingerprint(tok), "codebook_size": CODEBOOK, "num_tokens": NTOK}), tmp_path)
    cache = load_cache(tmp_path, tok)
    assert torch.equal(cache.ids, ids.long()) and cache.records == records
    torch.manual_seed(1)
    with pytest.raises(ValueError, match="another image tokenizer"):
        load_cache(tmp_path, SeedTokenizer(get_preset("tiny")))
    mix = TaskMixture(cache, llm.builder, Stage3Preset(steps=10, batch_size=12, lr=1e-3), seed=0)
    a, b = mix.make(5, 12), mix.make(5, 12)
    assert all(torch.equal(a[k], b[k]) for k in a)  # a pure function of (seed, index)
    starts = {int(row[row != IGNORE_INDEX][0]) for row in a["labels"]}
    assert llm.vocab.img_start_id in starts and len(starts) >= 2  # draw targets and text targets


def test_tampered_adapter_is_refused(llm, tmp_path):
    import json as _json

    llm.save(tmp_path / "adapter")
    meta = _json.loads((tmp_path / "adapter" / "seed_llm.json").read_text())
    assert meta["sha256"]  # every weights file of the directory is checksummed
    weights = tmp_path / "adapter" / next(iter(meta["sha256"]))
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 does not match"):
        SeedLLM.load(tmp_path / "adapter")


def test_objective_splits_the_loss_into_image_and_text_tokens(llm):
    """The per-step image-token / text losses (ablation curves) recombine into the LM loss."""
    from seedtok.mllm.train import CausalLMObjective

    b, lo = llm.builder, llm.vocab.image_offset
    batch = collate([b.caption_example(_codes(0), LINES[0]), b.draw_example(LINES[1], _codes(1))], llm.tokenizer.pad_token_id)
    with torch.no_grad():
        out = CausalLMObjective(llm.model, (lo, lo + CODEBOOK))(batch)
    labels = batch["labels"][:, 1:]
    n_img = int(((labels >= lo) & (labels < lo + CODEBOOK)).sum())
    n_all = int((labels != IGNORE_INDEX).sum())
    assert n_img == NTOK  # the draw example's 32 codes; markers and text count as text
    combined = (out["image_loss"] * n_img + out["text_loss"] * (n_all - n_img)) / n_all
    assert torch.allclose(combined, out["loss"], atol=1e-5)
    only_text = collate([b.caption_example(_codes(0), LINES[0])], llm.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.isnan(CausalLMObjective(llm.model, (lo, lo + CODEBOOK))(only_text)["image_loss"])


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_llama_family_standin_trains_draws_and_merges(tmp_path, finetune):
    """The LLaMA-family stand-in (rotary positions) goes through the same stage-3 path."""
    tokenizer = build_text_tokenizer(LINES * 10, vocab_size=300)
    model = build_standin(tokenizer, seed=0, family="llama", **TINY_ARCH)
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    torch.manual_seed(0)
    llm = SeedLLM.from_base(tmp_path / "base", CODEBOOK, NTOK, finetune=finetune)
    b = llm.builder
    batch = collate([b.caption_example(_codes(0), LINES[0]), b.draw_example(LINES[1], _codes(1))], llm.tokenizer.pad_token_id)
    args = TrainArgs(out=str(tmp_path / "run"), steps=60, batch_size=2, lr=1e-2, weight_decay=0.0, warmup=5, progress=False)
    fit = train_lm(llm.model, lambda index, size: batch, args, "llama")
    assert fit["history"][-1][1] < 0.5 * fit["history"][0][1]
    codes = llm.draw_codes(LINES[:2])
    assert codes.shape == (2, NTOK) and int(codes.min()) >= 0 and int(codes.max()) < CODEBOOK
    llm.save(tmp_path / "out")
    assert torch.equal(SeedLLM.load(tmp_path / "out").draw_codes(LINES[:2]), codes)
    with pytest.raises(ValueError, match="family"):
        build_standin(tokenizer, family="gpt5")


def test_id_cache_head_keeps_the_first_images_with_their_records():
    import torch

    from seedtok.mllm.cache import IdCache

    cache = IdCache(torch.arange(12).view(4, 3), [{"i": i} for i in range(4)], {"num_tokens": 3})
    two = cache.head(2)
    assert len(two) == 2 and two.ids.tolist() == [[0, 1, 2], [3, 4, 5]] and two.records == [{"i": 0}, {"i": 1}]
    assert two.meta is cache.meta and cache.head(None) is cache and len(cache.head(10)) == 4
