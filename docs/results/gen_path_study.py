"""Generation-path study of issue 15 (docs/training.md, "Where reconstruction is lost").

Trains the generation path alone (code decoder -> Reverse Q-Former -> projection, the tiny
preset's sizes) on FIXED inputs and scores the shipped decoder's drawings with the scene parser:

    python docs/results/gen_path_study.py SOURCE LR STEPS --model STAGE2_DIR --data SHAPES_DIR

SOURCE: ``oracle`` (true attributes of the 9 grid cells as codes, learned embeddings),
``causal`` (the model's unquantized causal embeddings) or ``codes`` (its de-quantized codes).
Canonical MiniLM targets, batch 128, AdamW (no decay), warm-up 20 + cosine, 1 torch thread.
Prints test MSE / per-position-mean baseline every 200 steps and the reconstruction of 300
test scenes at the end.
"""

import argparse
import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from seedtok.data.shapes import Scene
from seedtok.eval.decode import _generate
from seedtok.eval.images import score_images
from seedtok.decode.standin import load_standin
from seedtok.mllm.oracle import oracle_codes
from seedtok.models.qformer import QFormer
from seedtok.models.tokenizer import CodeDecoder
from seedtok.text import cached_text_states
from seedtok.train.data import load_image_text, map_in_chunks
from seedtok.train.pretrained import load_tokenizer
from seedtok.train.runs import default_cache, generation_captions

p = argparse.ArgumentParser()
p.add_argument("source", choices=["oracle", "causal", "codes"])
p.add_argument("lr", type=float)
p.add_argument("steps", type=int)
p.add_argument("--model", required=True, help="a stage-2 directory (its tokenizer gives causal embeddings / codes)")
p.add_argument("--data", required=True)
p.add_argument("--layers", type=int, default=2, help="Reverse Q-Former layers")
p.add_argument("--batch", type=int, default=128, help="samples per step")
p.add_argument("--head", choices=["linear", "mlp"], default="linear", help="generation head after the Reverse Q-Former")
p.add_argument("--pad-weight", type=float, default=1.0, help="loss weight of the caption's padding positions")
a = p.parse_args()
torch.set_num_threads(1)
m = load_tokenizer(a.model).eval()
cache = default_cache(a.data, None)
tr = load_image_text(a.data, "train", 64)
te = load_image_text(a.data, "test", 64, 800)
ttr, mtr = cached_text_states(generation_captions(tr, "canonical"), 32, cache)
ttr = ttr.float()
wtr = torch.where(mtr.bool(), 1.0, a.pad_weight).unsqueeze(-1)
tte = cached_text_states(generation_captions(te, "canonical"), 32, cache)[0].float()
torch.manual_seed(0)
learned = a.source == "oracle"
if learned:
    xtr = torch.stack([oracle_codes(Scene.from_dict(s)) for s in tr.scenes])
    xte = torch.stack([oracle_codes(Scene.from_dict(s)) for s in te.scenes])
    embed, pos = torch.nn.Embedding(1024, 128), torch.nn.Parameter(torch.zeros(1, 32, 128))
else:
    def codes(x):
        return m.decode_task(m.quantizer(m.encode_task(m.causal_embeddings(x))).quantized)

    with torch.no_grad():
        fn = codes if a.source == "codes" else m.causal_embeddings
        xtr, xte = map_in_chunks(fn, tr.pixels), map_in_chunks(fn, te.pixels)
    embed, pos = torch.nn.Identity(), None
cfg = m.config
dec = CodeDecoder(cfg.decoder, 128, 32)
rev = QFormer(dataclasses.replace(cfg.reverse_qformer, num_layers=a.layers))
last = torch.nn.Linear(128 if a.head == "linear" else 512, 384)
with torch.no_grad():  # the generation head starts at the target mean, as in stage 2
    last.weight.mul_(0.1)
    last.bias.copy_(ttr.mean((0, 1)))
proj = last if a.head == "linear" else torch.nn.Sequential(torch.nn.Linear(128, 512), torch.nn.GELU(), last)
params = [*embed.parameters(), *dec.parameters(), *rev.parameters(), *proj.parameters()] + ([pos] if learned else [])
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))


def forward(x):
    h = embed(x) + (pos if learned else 0)
    return proj(rev(dec(h)))


g = torch.Generator().manual_seed(0)
t0, c0 = time.time(), time.process_time()
base = ((tte - tte.mean(0)) ** 2).mean()
for step in range(a.steps):
    idx = torch.randint(0, len(xtr), (a.batch,), generator=g)
    loss = ((forward(xtr[idx]) - ttr[idx]) ** 2 * wtr[idx]).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if (step + 1) % max(200, a.steps // 5) == 0 or step == a.steps - 1:
        with torch.no_grad():
            pred = map_in_chunks(forward, xte)
        mse = float(((pred - tte) ** 2).mean())
        print(f"step {step + 1}: test MSE {mse:.5f} = {mse / float(base):.3f} x baseline; "
              f"wall {time.time() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s", flush=True)
print("reconstruction (300 test scenes):", score_images(_generate(load_standin(), pred[:300], 50), te.scenes[:300]))
