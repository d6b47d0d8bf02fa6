"""Whole-scene linear probe along a trained tokenizer (issue 15; docs/training.md, "What limits it now").

python docs/results/probe_along_tokenizer.py STAGE2_MODEL_DIR SHAPES_DATA
One linear probe (seedtok.eval.probe.scene_probe; 6,000 train images, test split) on each of:
causal embeddings -> encode_task outputs z -> nearest codes -> decode_task(codes), and the
first nine codes alone (the slot queries)."""
import sys, json, torch, torch.nn.functional as F
from seedtok.train.pretrained import load_tokenizer
from seedtok.train.data import load_image_text, map_in_chunks
from seedtok.eval.probe import scene_probe
torch.set_num_threads(1)
model = load_tokenizer(sys.argv[1]).eval()
data = sys.argv[2]
tr = load_image_text(data, "train", 64, 6000); te = load_image_text(data, "test", 64)
out = {}
with torch.no_grad():
    def feats(px):
        c = map_in_chunks(model.causal_embeddings, px)
        z = model.encode_task(c)
        codes = model.quantizer.lookup(model.quantizer.nearest(z))
        return {"causal": c, "z": z, "codes": codes, "up": model.decode_task(codes), "slots_codes": codes[:, :9]}
    a, b = feats(tr.pixels), feats(te.pixels)
for k in a:
    out[k] = scene_probe(a[k], tr.scenes, b[k], te.scenes)
    print(k, json.dumps(out[k]), flush=True)
