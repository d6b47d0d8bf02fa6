"""Golden data for seedtok's SEED-2 parity test, made by running the reference SEED-2 tokenizer
(AILab-CVC/SEED, branch main, models/seed_qformer/qformer_quantizer.py::Blip2QformerQuantizer,
built as models/seed_llama_tokenizer.py::ImageTokenizer builds it) on CPU in fp32, eval mode,
at reduced widths, with deterministic random weights. Network-touching constructors
(bert-base-uncased tokenizer/config/weights, eva_vit_g.pth) are replaced by local builds of the
same reference classes; timm is stubbed (only trivial helpers are imported from it).

How tests/golden/seed2_small was made (2026-11-30, torch 2.13.0 CPU, transformers 4.30.2 as the
reference's requirements.txt pins, in a separate venv; timm is not installable beside torch 2.13):

    git -C SEED checkout main   # AILab-CVC/SEED
    PYTHONPATH=tests/golden/seed2_harness/timm_stub:tests/golden/seed2_harness:SEED \
        python make_seed2_golden.py OUT_DIR IMAGES_DIR     # IMAGES_DIR: the three bundled PNGs
    PYTHONPATH=(same) python make_seed2_manifest.py tests/golden/seed2_manifest.json

Not part of the package or the test suite.
"""
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

torch.set_num_threads(1)

from models.seed_qformer import blip2, eva_vit, qformer_quantizer as qq  # noqa: E402
from models.seed_qformer.qformer_causual import BertConfig, BertLMHeadModel  # noqa: E402

SIZES = {}


def _init_tokenizer(cls, truncation_side="right"):
    return None  # the tokenizer is only used by training code


def _init_vision_encoder(self, model_name, img_size, drop_path_rate, use_grad_checkpoint, precision):
    v = SIZES["vit"]
    visual_encoder = eva_vit.VisionTransformer(
        img_size=img_size, patch_size=14, use_mean_pooling=False, embed_dim=v["width"], depth=v["depth"],
        num_heads=v["heads"], mlp_ratio=4.3637, qkv_bias=True, drop_path_rate=drop_path_rate,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), use_checkpoint=use_grad_checkpoint,
    )
    ln_vision = blip2.LayerNorm(visual_encoder.num_features)
    self.vit_name = model_name
    return visual_encoder, ln_vision


def _init_Qformer(cls, num_query_token, vision_width, cross_attention_freq=2):
    q = SIZES["qformer"]
    # bert-base-uncased's config.json, with reduced widths (hidden, layers, FFN)
    encoder_config = BertConfig(
        vocab_size=30522, hidden_size=q["hidden"], num_hidden_layers=q["layers"], num_attention_heads=q["heads"],
        intermediate_size=q["intermediate"], hidden_act="gelu", hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
        layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute",
    )
    encoder_config.encoder_width = vision_width
    encoder_config.add_cross_attention = True
    encoder_config.cross_attention_freq = cross_attention_freq
    encoder_config.query_length = num_query_token
    Qformer = BertLMHeadModel(config=encoder_config)
    query_tokens = nn.Parameter(torch.zeros(1, num_query_token, encoder_config.hidden_size))
    query_tokens.data.normal_(mean=0.0, std=encoder_config.initializer_range)
    return Qformer, query_tokens


blip2.Blip2Base.init_tokenizer = classmethod(_init_tokenizer)
blip2.Blip2Base.init_vision_encoder = _init_vision_encoder
blip2.Blip2Base.init_Qformer = classmethod(_init_Qformer)


def build(sizes, image_features_dim):
    SIZES.clear()
    SIZES.update(sizes)
    # the arguments ImageTokenizer -> Blip2QformerQuantizer.from_pretrained passes (fp32 here)
    return qq.Blip2QformerQuantizer(vit_model="eva_clip_g", img_size=224, drop_path_rate=0, use_grad_checkpoint=False,
                                    vit_precision="fp32", freeze_vit=True, num_query_token=32, cross_attention_freq=2,
                                    max_txt_len=32, image_features_dim=image_features_dim)


@torch.no_grad()
def randomize(model, seed):
    """Deterministic random weights on a scale where every layer matters."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 1 and ("norm" in name.lower() or "LayerNorm" in name or name.startswith("ln_vision")) and name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif p.dim() == 1:
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
        elif name == "quantize.embedding.weight":
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        else:
            fan_in = p.shape[-1] if p.dim() == 2 else max(1, p[0].numel())
            std = 0.02 if p.dim() != 2 else 1.0 / fan_in ** 0.5
            p.copy_(std * torch.randn(p.shape, generator=g))


def preprocess(path):
    # ImageTokenizer.processor: Resize((224, 224), interpolation=3 = bicubic) on a PIL image (torchvision
    # calls PIL's resize), ToTensor, Normalize(CLIP mean/std)
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy() / 255.0).permute(2, 0, 1)
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073))[:, None, None]
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711))[:, None, None]
    return (x - mean) / std


@torch.no_grad()
def run(model, pixels):
    """The reference's own entry points: get_codebook_indices then get_codebook_entry(ids), with
    hooks recording the intermediates."""
    rec = {}
    hooks = [
        model.visual_encoder.register_forward_hook(lambda m, i, o: rec.__setitem__("vit_features", o)),
        model.ln_vision.register_forward_hook(lambda m, i, o: rec.__setitem__("image_embeds", o)),
        model.encode_task_layer.register_forward_hook(lambda m, i, o: rec.__setitem__("codebook_inputs", o)),
        model.quantize.register_forward_hook(lambda m, i, o: rec.__setitem__("quantized", o[0])),
        model.blocks_image[-1].register_forward_hook(lambda m, i, o: rec.__setitem__("decoded_embeds", o)),
        model.image_down.register_forward_hook(lambda m, i, o: rec.__setitem__("down_embeds", o)),
        model.Qformer.bert.register_forward_hook(lambda m, i, o: rec.__setitem__("causal_embeds", o.last_hidden_state)),
    ]
    ids, _ = model.get_codebook_indices(pixels)
    unclip = model.get_codebook_entry(ids)
    for h in hooks:
        h.remove()
    z = rec["codebook_inputs"].reshape(-1, rec["codebook_inputs"].shape[-1])
    d = (z ** 2).sum(1, keepdim=True) + (model.quantize.embedding.weight ** 2).sum(1) - 2 * z @ model.quantize.embedding.weight.t()
    two = d.topk(2, largest=False).values
    margin = float((two[:, 1] - two[:, 0]).min())
    return {"pixel_values": pixels, **rec, "ids": ids.long(), "unclip_embeds": unclip}, margin


def main():
    out = Path(sys.argv[1])
    sizes = {
        "vit": {"image_size": 224, "patch_size": 14, "width": 64, "depth": 2, "heads": 4, "mlp_hidden": int(64 * 4.3637),
                "qkv_bias": "q and v only", "ln_eps": 1e-6, "final_norm": False},
        "qformer": {"hidden": 96, "layers": 4, "heads": 12, "intermediate": 192, "ln_eps": 1e-12,
                    "cross_attention_every": 2, "num_queries": 32, "causal": True},
    }
    embed_dim = 256
    torch.manual_seed(0)
    model = build(sizes, embed_dim).eval()
    randomize(model, 0)
    model.eval()
    assert not model.training and all(not m.training for m in model.modules())
    names = ["astronaut", "coffee", "chelsea"]
    src = Path(sys.argv[2])
    pixels = torch.stack([preprocess(src / f"{n}.png") for n in names])
    outputs, margin = run(model, pixels)
    batch1, _ = run(model, pixels[:1])
    batch2, _ = run(model, pixels[1:])
    for k in outputs:
        split = torch.cat([batch1[k], batch2[k]])
        assert (split.float() - outputs[k].float()).abs().max() < 1e-4, k
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "weights.safetensors"))
    save_file({k: v.detach().contiguous() for k, v in outputs.items()}, str(out / "outputs.safetensors"))
    for n in names:
        shutil.copy(src / f"{n}.png", out / f"{n}.png")
    meta = {
        "release": "SEED-2",
        "reference": "AILab-CVC/SEED main models/seed_qformer/qformer_quantizer.py Blip2QformerQuantizer "
                     "(use_qformer_image=False, recon_s=True, blocks_for_image=True), get_codebook_indices + get_codebook_entry",
        "seed": 0, **sizes,
        "codebook": {"size": 8192, "dim": 32},
        "decoder_blocks": {"depth": 4, "heads": 12, "mlp_ratio": 4.0, "ln_eps": 1e-6},
        "image_decoder": {"down_dims": [256, 128, 32], "embed_dim": embed_dim},
        "images": names,
        "preprocess": "PIL bicubic resize to 224x224 (ImageTokenizer.processor, interpolation=3), /255, CLIP mean/std",
        "min_code_margin": margin,
        "shapes": {k: list(v.shape) for k, v in outputs.items()},
        "torch": torch.__version__,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps({k: meta[k] for k in ("min_code_margin", "shapes")}))
    print("ids[0]", outputs["ids"][0].tolist())
    print("unique ids", len(set(outputs["ids"].flatten().tolist())))


if __name__ == "__main__":
    main()
