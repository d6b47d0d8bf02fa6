"""Does the stage-3 LLM write the right slot codes when it draws? (issue 16, docs/llm.md)

python docs/results/draw_slots_study.py TOKENIZER_DIR LLM_DIR SHAPES_DIR [N]

With the slot read, code k (k < 9) of an image names grid cell k. For the first N test images
(default 200) this compares the LLM's codes for the image's caption with the image's own codes
at the nine slots, split by occupied / empty cells: teacher-forced (the true previous codes in
context, argmax of the next) and greedy (``SeedLLM.draw_codes``, as ``llm bench`` draws).
"""
import sys

import torch

from seedtok.api import load_tokenizer
from seedtok.config import CLIP_MEAN, CLIP_STD
from seedtok.data.shapes import Scene
from seedtok.decode.data import to_uint8
from seedtok.mllm.model import SeedLLM
from seedtok.mllm.oracle import oracle_codes
from seedtok.mllm.sequences import collate
from seedtok.train.data import load_image_text

torch.set_num_threads(1)
tok = load_tokenizer(sys.argv[1]).eval()
llm = SeedLLM.load(sys.argv[2])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
test = load_image_text(sys.argv[3], "test", 64, n)
unit = to_uint8(test.pixels, CLIP_MEAN, CLIP_STD).float() / 255.0
mean = torch.tensor(tok.config.image_mean).view(1, 3, 1, 1)
std = torch.tensor(tok.config.image_std).view(1, 3, 1, 1)
with torch.no_grad():
    ids = torch.cat([tok.encode((unit[i : i + 100] - mean) / std)[0] for i in range(0, n, 100)])
cells = torch.stack([oracle_codes(Scene.from_dict(s) if isinstance(s, dict) else s)[:9] for s in test.scenes])
occupied = cells > 0

batch = collate([llm.builder.draw_example(test.captions[i], ids[i]) for i in range(n)], llm.tokenizer.pad_token_id)
with torch.no_grad():
    argmax = llm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
forced = torch.zeros(n, 9, dtype=torch.bool)
for i in range(n):
    pos = (batch["labels"][i] != -100).nonzero().flatten()[1:10]  # after <img>: the nine slot codes
    forced[i] = argmax[i, pos - 1] == batch["labels"][i, pos]
with torch.no_grad():
    greedy = torch.cat([llm.draw_codes(test.captions[i : i + 50]) for i in range(0, n, 50)])
same = greedy[:, :9] == ids[:, :9]
for name, hit in (("teacher-forced", forced), ("greedy", same)):
    print(f"{name}: slot code = the image's own code on occupied cells {float(hit[occupied].float().mean()):.3f}, "
          f"on empty cells {float(hit[~occupied].float().mean()):.3f}")
