"""Which generation-embedding errors make the one-step decoder draw wrong scenes? (issue 15,
docs/training.md, "The generation phase")

python docs/results/gen_error_study.py STAGE2_MODEL_DIR SHAPES_DIR [DECODER_DIR]

300 test images -> ids -> generation embeddings; the shipped decoder (or DECODER_DIR) draws
from them and from controlled mixtures with the true canonical-caption states: the true words
with the predicted padding and the reverse, the true states plus the model's error of another
scene, and Gaussian noise of the same MSE. Each drawing is scored by the scene parser.
"""
import sys

import torch

from seedtok.config import CLIP_MEAN, CLIP_STD
from seedtok.decode.data import to_uint8
from seedtok.decode.standin import STANDIN_DIR, load_standin
from seedtok.eval.decode import _generate
from seedtok.eval.images import score_images
from seedtok.text import cached_text_states
from seedtok.train.data import load_image_text
from seedtok.train.pretrained import load_tokenizer
from seedtok.train.runs import default_cache, generation_captions

torch.set_num_threads(1)
tok = load_tokenizer(sys.argv[1]).eval()
data, n = sys.argv[2], 300
detok = load_standin(sys.argv[3] if len(sys.argv) > 3 else STANDIN_DIR, tokenizer=tok)
test = load_image_text(data, "test", 64, n)
unit = to_uint8(test.pixels, CLIP_MEAN, CLIP_STD).float() / 255.0
mean = torch.tensor(tok.config.image_mean).view(1, 3, 1, 1)
std = torch.tensor(tok.config.image_std).view(1, 3, 1, 1)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    emb = tok.decode_ids(tok.encode((unit - mean) / std)[0])
    tgt, mask = cached_text_states(generation_captions(test, "canonical"), tok.config.generation_len, default_cache(data, None))
words = mask.bool().unsqueeze(-1)
err = emb - tgt
per_position = (err**2).mean(-1)
print(f"MSE on the caption's words {float(per_position[mask.bool()].mean()):.4f}, on its padding "
      f"{float(per_position[~mask.bool()].mean()):.4f} ({float(1 - mask.float().mean()):.0%} of the positions)")
noise = float(err.pow(2).mean().sqrt())
variants = {
    "the model's generation embeddings": emb,
    "true canonical-caption states": tgt,
    "predicted words + true padding": torch.where(words, emb, tgt),
    "true words + predicted padding": torch.where(words, tgt, emb),
    "true states + another scene's error": tgt + err[torch.randperm(n, generator=g)],
    f"true states + Gaussian noise (std {noise:.3f})": tgt + noise * torch.randn(tgt.shape, generator=g),
}
for name, states in variants.items():
    r = score_images(_generate(detok, states, 50), test.scenes[:n])
    print(f"{name}: colour+shape {r['color_shape']:.3f}, count right {r['count']:.2f}, exact {r['exact']:.2f}", flush=True)
