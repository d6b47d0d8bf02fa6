"""Explicit two-way key map between seedtok's SEED-2 state dict and the reference layout of
``seed_quantizer.pt`` (AILab-CVC/SEED ``main``, ``models/seed_qformer/qformer_quantizer.py``,
``Blip2QformerQuantizer`` as ``ImageTokenizer`` builds it: ``use_qformer_image=False``).

Reference layout: ``visual_encoder.*`` (EVA ViT-g; in the reference it comes from BLIP-2's
``eva_vit_g.pth`` unless ``seed_quantizer.pt`` overrides it), ``ln_vision.*``, ``query_tokens``,
``Qformer.bert.*``, ``quantize.embedding.weight``, ``encode_task_layer.*``,
``decode_task_layer.*``, ``pos_embed_image``, ``blocks_image.*``, ``image_down.{0,2,4}.weight``
and ``distill_image_proj.*``. Rules work as in :mod:`seedtok.keymap` (same Q-Former rules).
"""

from __future__ import annotations

import re

from seedtok.keymap import Rule, _apply, _compile, _qformer_rules

RULES_SEED2: list[Rule] = [
    ("vision.patch_embed.", "visual_encoder.patch_embed.proj."),
    ("vision.", "visual_encoder."),
    ("ln_vision.", "ln_vision."),
    *_qformer_rules("qformer", "Qformer", "query_tokens"),
    ("encode_task.", "encode_task_layer."),
    ("quantizer.embedding.", "quantize.embedding."),
    ("decode_task.", "decode_task_layer."),
    ("code_decoder.pos_embed", "pos_embed_image"),
    ("code_decoder.blocks.", "blocks_image."),
    ("image_down.", "image_down."),
    ("image_proj.", "distill_image_proj."),
]

# Reference keys that are accepted and deliberately not loaded, with the reason.
IGNORED_SEED2_KEYS: list[tuple[str, str]] = [
    (r"Qformer\.bert\.embeddings\.position_ids", "non-learned position-index buffer"),
    (r"Qformer\.cls\..*", "BERT LM head of the Q-Former text branch, set to None by the reference"),
    (
        r"Qformer\.bert\.(embeddings\.(word|position)_embeddings|encoder\.layer\.\d+\.(intermediate|output))\..*",
        "text branch of the Causal Q-Former (stage-1 training), set to None by the reference model",
    ),
    (r"vision_proj\..*|text_proj\..*|temp|itm_head\..*", "stage-1 contrastive/matching heads, absent from the reference model"),
    (r"pos_embed|blocks\.\d+\..*", "training-only reconstruction head (recon_s: pos_embed + blocks), unused by get_codebook_entry"),
    (r"visual_encoder\.(fc_norm|head)\..*", "EVA classification head, unused (SEED takes patch features)"),
    (r"visual_encoder\.norm\..*", "EVA final norm, absent from SEED's ViT"),
]

_IGNORE_RE = [(re.compile(p), why) for p, why in IGNORED_SEED2_KEYS]
_FORWARD = [(_compile(o), r) for o, r in RULES_SEED2]
_BACKWARD = [(_compile(r), o) for o, r in RULES_SEED2]

# Keys that only one of the two releases has: they name the mismatch when the wrong one is given.
SEED1_ONLY = ("Reverse_Qformer.", "reverse_tokens", "distill_text_proj.", "pos_embed_text", "blocks_text.")
SEED2_ONLY = ("pos_embed_image", "blocks_image.", "image_down.", "distill_image_proj.")


def to_reference_key(key: str) -> str:
    """seedtok SEED-2 key -> reference key. Raises KeyError for a key with no rule."""
    out = _apply(key, _FORWARD)
    if out is None:
        raise KeyError(f"no SEED-2 reference name for seedtok key {key!r}")
    return out


def from_reference_key(key: str) -> str | None:
    """reference key -> seedtok SEED-2 key, or None when the key has no counterpart."""
    return _apply(key, _BACKWARD)


def ignore_reason(reference_key: str) -> str | None:
    """Why a SEED-2 reference key is deliberately not loaded, or None if it is not on the list."""
    for pattern, why in _IGNORE_RE:
        if pattern.fullmatch(reference_key):
            return why
    return None


def release_mismatch(keys, expect: str) -> str | None:
    """A message naming the mismatch when ``keys`` belong to the other SEED release, else None.
    ``expect`` is ``'seed1'`` or ``'seed2'``."""
    keys = list(keys)
    s1 = sorted(k for k in keys if k.startswith(SEED1_ONLY))
    s2 = sorted(k for k in keys if k.startswith(SEED2_ONLY))
    if expect == "seed2" and s1:
        if "distill_image_proj.weight" in keys:
            return (f"this checkpoint has a Reverse Q-Former image decoder ({s1[0]}, ...): the SEED-2 training "
                    "variant use_qformer_image=True, not the released seed_quantizer.pt layout (image_down); not supported")
        return (f"this is a SEED-1 checkpoint, not SEED-2: it has SEED-1's decoder keys {s1[:3]} (Reverse Q-Former "
                "-> 77x768 SD-1 text states) and none of SEED-2's pos_embed_image/blocks_image/image_down/"
                "distill_image_proj; load it as SEED-1 (seedtok convert without --seed2, preset seed1)")
    if expect == "seed1" and s2:
        return (f"this is a SEED-2 (SEED-LLaMA seed_quantizer.pt) checkpoint, not SEED-1: it has SEED-2's decoder "
                f"keys {s2[:3]} (-> one 1,024-d unCLIP image embedding); load it with seedtok convert --seed2 / preset seed2")
    return None
