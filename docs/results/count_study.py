"""Object-count errors of reconstruction (issue 15; docs/training.md, "What limits it now").

python docs/results/count_study.py STAGE2_MODEL_DIR SHAPES_DATA
300 test images -> ids -> generation embeddings -> the shipped one-step decoder -> scene
parser: how many reconstructions have more / the same / fewer objects than the scene, beside
the same decoder drawing from the true canonical-caption states."""
import sys, torch, collections
torch.set_num_threads(1)
from seedtok.train.pretrained import load_tokenizer
from seedtok.decode.standin import STANDIN_DIR, load_standin
from seedtok.eval.decode import _generate
from seedtok.config import CLIP_MEAN, CLIP_STD
from seedtok.decode.data import to_uint8
from seedtok.train.data import load_image_text
from seedtok.data.parse import parse_scene
from seedtok.data.scene import Scene
from seedtok.text import cached_text_states
from seedtok.train.runs import generation_captions, default_cache
tok = load_tokenizer(sys.argv[1]).eval(); data = sys.argv[2]; n = 300
detok = load_standin(STANDIN_DIR, tokenizer=tok)
test = load_image_text(data, "test", 64, n)
unit = to_uint8(test.pixels, CLIP_MEAN, CLIP_STD).float() / 255.0
mean, std = torch.tensor(tok.config.image_mean).view(1,3,1,1), torch.tensor(tok.config.image_std).view(1,3,1,1)
with torch.no_grad():
    ids = tok.encode((unit - mean) / std)[0]
    emb = tok.decode_ids(ids)
    tgt, _ = cached_text_states(generation_captions(test, "canonical"), tok.config.generation_len, default_cache(data, None))
    for name, e in (("recon", emb), ("true_states", tgt)):
        px = _generate(detok, e, 50)
        c = collections.Counter()
        for i in range(len(px)):
            true = Scene.from_dict(test.scenes[i]) if isinstance(test.scenes[i], dict) else test.scenes[i]
            pred = parse_scene(px[i].permute(1, 2, 0).double().numpy())
            d = len(pred.objects) - len(true.objects)
            c["more" if d > 0 else "fewer" if d < 0 else "same"] += 1
        print(name, dict(c), "mse", float(((e - tgt) ** 2).mean()))
