"""Explicit two-way key map between seedtok's state dict and the reference SEED-1 layout.

Reference layout (AILab-CVC/SEED v1 ``SEEDVisualTokenizer`` and BLIP-2's checkpoints):
``visual_encoder.*`` (EVA ViT-g, from ``eva_vit_g.pth``, stored there *without* the
``visual_encoder.`` prefix), ``ln_vision.*``, ``query_tokens``, ``Qformer.bert.*``,
``vision_proj``/``text_proj``/``temp`` (from ``causal_qformer.pth``), and ``quantize.*``,
``encode_task_layer.*``, ``decode_task_layer.*``, ``pos_embed_text``, ``blocks_text.*``,
``reverse_tokens``, ``Reverse_Qformer.bert.*``, ``distill_text_proj.*`` (from
``seed_tokenizer.pth``).

Each rule pairs a seedtok key prefix with a reference key prefix; ``{i}`` stands for a layer
number. A prefix ending in ``.`` matches that module's parameters; one without matches
exactly one key. Rules are tried in order, so the more specific ones come first.
"""

from __future__ import annotations

import re

Rule = tuple[str, str]


def _qformer_rules(ours: str, ref: str, ref_queries: str) -> list[Rule]:
    layer_o, layer_r = f"{ours}.layers.{{i}}.", f"{ref}.bert.encoder.layer.{{i}}."
    attn = []
    for o_attn, r_attn in (("self_attn", "attention"), ("cross_attn", "crossattention")):
        attn += [
            (f"{layer_o}{o_attn}.q_proj.", f"{layer_r}{r_attn}.self.query."),
            (f"{layer_o}{o_attn}.k_proj.", f"{layer_r}{r_attn}.self.key."),
            (f"{layer_o}{o_attn}.v_proj.", f"{layer_r}{r_attn}.self.value."),
            (f"{layer_o}{o_attn}.out_proj.", f"{layer_r}{r_attn}.output.dense."),
            (f"{layer_o}{o_attn}.norm.", f"{layer_r}{r_attn}.output.LayerNorm."),
        ]
    return [
        (f"{ours}.query_tokens", ref_queries),
        (f"{ours}.embed_norm.", f"{ref}.bert.embeddings.LayerNorm."),
        (f"{ours}.word_embed.", f"{ref}.bert.embeddings.word_embeddings."),
        (f"{ours}.pos_embed.", f"{ref}.bert.embeddings.position_embeddings."),
        *attn,
        (f"{layer_o}ffn.fc1.", f"{layer_r}intermediate_query.dense."),
        (f"{layer_o}ffn.fc2.", f"{layer_r}output_query.dense."),
        (f"{layer_o}ffn.norm.", f"{layer_r}output_query.LayerNorm."),
        (f"{layer_o}text_ffn.fc1.", f"{layer_r}intermediate.dense."),
        (f"{layer_o}text_ffn.fc2.", f"{layer_r}output.dense."),
        (f"{layer_o}text_ffn.norm.", f"{layer_r}output.LayerNorm."),
    ]


RULES: list[Rule] = [
    ("vision.patch_embed.", "visual_encoder.patch_embed.proj."),
    ("vision.", "visual_encoder."),
    ("ln_vision.", "ln_vision."),
    *_qformer_rules("qformer", "Qformer", "query_tokens"),
    ("qformer.vision_proj.", "vision_proj."),
    ("qformer.text_proj.", "text_proj."),
    ("qformer.temp", "temp"),
    ("encode_task.", "encode_task_layer."),
    ("quantizer.embedding.", "quantize.embedding."),
    ("decode_task.", "decode_task_layer."),
    ("code_decoder.pos_embed", "pos_embed_text"),
    ("code_decoder.blocks.", "blocks_text."),
    *_qformer_rules("reverse_qformer", "Reverse_Qformer", "reverse_tokens"),
    ("generation_proj.", "distill_text_proj."),
]

# Reference keys that are accepted and deliberately not loaded, with the reason.
IGNORED_REFERENCE_KEYS: list[tuple[str, str]] = [
    (r"(Reverse_)?Qformer\.bert\.embeddings\.position_ids", "non-learned position-index buffer"),
    (r"(Reverse_)?Qformer\.cls\..*", "BERT LM head of the Q-Former text branch, unused by SEED"),
    (
        r"Reverse_Qformer\.bert\.(embeddings\.(word|position)_embeddings|encoder\.layer\.\d+\.(intermediate|output))\..*",
        "text parts of the Reverse Q-Former, deleted by the reference and never used",
    ),
    (r"pos_embed|blocks\.\d+\..*", "training-only cosine-reconstruction head of seed_tokenizer.pth (stage 2)"),
    (r"itm_head\..*", "BLIP-2 image-text matching head, unused by SEED"),
    (r"visual_encoder\.(fc_norm|head)\..*", "EVA classification head, unused (SEED takes patch features)"),
    (r"visual_encoder\.norm\..*", "EVA final norm, absent from SEED's ViT (loaded only when final_norm=True)"),
]

_IGNORE_RE = [(re.compile(p), why) for p, why in IGNORED_REFERENCE_KEYS]


def _compile(template: str) -> tuple[re.Pattern[str], bool]:
    exact = not template.endswith(".")
    body = re.escape(template).replace(re.escape("{i}"), r"(\d+)")
    return re.compile("^" + body + ("$" if exact else "")), exact


_FORWARD = [(_compile(o), r) for o, r in RULES]
_BACKWARD = [(_compile(r), o) for o, r in RULES]


def _apply(key: str, table: list[tuple[tuple[re.Pattern[str], bool], str]]) -> str | None:
    for (pattern, _exact), target in table:
        m = pattern.match(key)
        if m:
            dst = target
            for g in m.groups():
                dst = dst.replace("{i}", g, 1)
            return dst + key[m.end():]
    return None


def to_reference_key(key: str) -> str:
    """seedtok key -> reference key. Raises KeyError for a key with no rule."""
    out = _apply(key, _FORWARD)
    if out is None:
        raise KeyError(f"no reference name for seedtok key {key!r}")
    return out


def from_reference_key(key: str) -> str | None:
    """reference key -> seedtok key, or None when the key has no seedtok counterpart."""
    return _apply(key, _BACKWARD)


def ignore_reason(reference_key: str) -> str | None:
    """Why a reference key is deliberately not loaded, or None if it is not on the list."""
    for pattern, why in _IGNORE_RE:
        if pattern.fullmatch(reference_key):
            return why
    return None
