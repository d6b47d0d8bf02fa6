"""Every state-dict key (shape, dtype) of the full-size reference SEED-2 tokenizer, built on the meta
device from the reference code with the arguments ImageTokenizer uses (see make_seed2_golden.py)."""
import json, sys
import torch
from make_seed2_golden import build

sizes = {"vit": {"width": 1408, "depth": 39, "heads": 16},
         "qformer": {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072}}
_linspace = torch.linspace
torch.linspace = lambda *a, **k: _linspace(*a, **{**k, "device": "cpu"})  # eva_vit calls .item() on it
with torch.device("meta"):
    model = build(sizes, 1024)
torch.linspace = _linspace
sd = model.state_dict()
keys = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in sd.items()}
total = sum(v.numel() for v in sd.values())
about = ("State-dict keys of the reference SEED-2 tokenizer (AILab-CVC/SEED main, models/seed_qformer/"
         "qformer_quantizer.py Blip2QformerQuantizer with ImageTokenizer's arguments: use_qformer_image=False, "
         "recon_s=True, blocks_for_image=True, EVA ViT-g 1408x39, BERT-base Q-Former, image_features_dim=1024), "
         "built on the meta device by running the reference code (derived from the code, not read from the "
         "released seed_quantizer.pt, which could not be obtained here).")
json.dump({"about": about, "total_elements": total, "keys": keys}, open(sys.argv[1], "w"), indent=1)
print(len(keys), total)
