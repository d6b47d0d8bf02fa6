"""Stage 0c pretraining documents: text that teaches the stand-in LM to *read back* over stage
3's whole sequence length (DESIGN.md section 3; issue 16).

A pretrained OPT has read long documents in which later text depends on earlier text. The
first tiny stand-in saw only single lines of <= 32 tokens, so its positions >= 32 kept their
random embeddings and nothing in it could look 40 tokens back; stage 3 (targets at positions
40-75, the answer to a question about an image at ~64) then had to learn long-range reading
through LoRA from nothing. The documents here are built from the *text* of the training split
(scene descriptions, never images):

    [bos] Generate an image: <caption in template A> [eos] a photo of <caption in template B>
    [eos] Question: <q1> Short answer. <a1> [eos] Question: <q2> Short answer. <a2> [eos] ...
    [eos] <next scene, same pattern> ...  (cut at ``length`` tokens)

Every line after a scene's first one can only be predicted by reading that first line (the
paraphrase, the answers), the prompt words of stage 3 (" a photo of", " Question:",
" Short answer.", "Generate an image:") are frequent enough to become vocabulary tokens, and
scenes are packed until the document fills ``length`` positions, so every position is trained.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any, Iterator, Sequence

from seedtok.mllm.sequences import CAPTION_PROMPT, DRAW_PROMPT, VQA_PROMPT


def scene_records(source: str | os.PathLike | Sequence[str]) -> list[dict[str, Any]]:
    """``{"caption", "vqa", "scene"}`` per sample of shapes-world shards (images not decoded)."""
    from seedtok.data.sources import iter_raw_samples, resolve_source

    kind, items = resolve_source(source)
    out = []
    for raw in iter_raw_samples(kind, items):
        meta = json.loads(raw["json"]) if "json" in raw else {}
        meta = meta if isinstance(meta, dict) else {}
        rec = {"caption": raw["txt"].decode("utf-8", errors="replace").strip() if "txt" in raw else "",
               "vqa": meta.get("vqa", []), "scene": meta.get("scene")}
        if "__key__" in raw:
            rec["key"] = raw["__key__"]
        out.append(rec)
    if not out:
        raise ValueError(f"{source}: no samples found")
    return out


LAYOUT_PROMPT = " Layout:"
LAYOUT_KINDS = ("none", "unnamed", "named")


def layout_line(scene: Any, kind: str = "unnamed") -> str:
    """The scene cell by cell in grid order (:data:`~seedtok.data.scene.POSITIONS`, the order of
    the image tokens' slots), e.g. " Layout: nothing; large red circle; nothing; ...";
    ``named`` puts each cell's name first (" Layout: top left: nothing; top: large red
    circle; ...")."""
    from seedtok.data.scene import POSITIONS

    at = {o.position: " ".join(w for w in (o.size, o.color, o.shape) if w) for o in scene.objects}
    cells = [at.get(p, "nothing") for p in POSITIONS]
    if kind == "named":
        cells = [f"{p}: {c}" for p, c in zip(POSITIONS, cells)]
    return f"{LAYOUT_PROMPT} {'; '.join(cells)}"


def scene_lines(scene_dict: dict[str, Any], rng: random.Random, layout: str = "none") -> list[str]:
    """The lines of one scene: a "Generate an image:" or " a photo of" line (the description
    the rest depends on), the other one in another caption template, and every question of a
    fresh draw of :func:`~seedtok.data.scene.vqa_pairs` with its answer, in random order."""
    from seedtok.data.scene import CAPTION_TEMPLATES, Scene, caption, vqa_pairs

    scene = Scene.from_dict(scene_dict)
    t1, t2 = rng.sample(range(len(CAPTION_TEMPLATES)), 2)
    describe = [DRAW_PROMPT.format(text=caption(scene, template=t1)), f"{CAPTION_PROMPT} {caption(scene, template=t2)}"]
    if rng.random() < 0.5:
        describe.reverse()
    qa = [f"{VQA_PROMPT.format(question=p['question'])} {p['answer']}" for p in vqa_pairs(scene, rng)]
    rest = [describe[1], *qa]
    if layout != "none":
        rest.append(layout_line(scene, layout))
    rng.shuffle(rest)
    return [describe[0], *rest]


def corpus_lines(records: Sequence[dict[str, Any]], seed: int = 0, repeats: int = 2, layout: str = "none") -> Iterator[str]:
    """Every document line ``repeats`` times per scene (for learning the BPE)."""
    rng = random.Random(seed)
    for _ in range(repeats):
        for rec in records:
            if rec.get("scene"):
                yield from scene_lines(rec["scene"], rng, layout)


class DocumentSampler:
    """``document(index)`` -> token ids of one packed document of exactly ``length`` tokens
    (a pure function of ``(seed, index)``): [bos], then scenes' lines each ended by [eos],
    scenes drawn at random from ``records`` until ``length`` is filled (the last line cut)."""

    def __init__(self, records: Sequence[dict[str, Any]], tokenizer: Any, length: int, seed: int = 0,
                 layout: str = "none") -> None:
        if layout not in LAYOUT_KINDS:
            raise ValueError(f"layout must be one of {LAYOUT_KINDS}, got {layout!r}")
        self.layout = layout
        self.scenes = [r["scene"] for r in records if r.get("scene")]
        if not self.scenes:
            raise ValueError("no scenes to build documents from (shapes-world records needed)")
        self.tokenizer, self.length, self.seed = tokenizer, length, seed
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id

    def lines_ids(self, scene: dict[str, Any], rng: random.Random) -> list[int]:
        ids: list[int] = []
        for line in scene_lines(scene, rng, self.layout):
            ids += self.tokenizer(line, add_special_tokens=False).input_ids  # exactly as stage 3 tokenizes it
            ids.append(self.eos)
        return ids

    def document(self, index: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + index)
        ids = [self.bos]
        while len(ids) < self.length:
            ids += self.lines_ids(self.scenes[int(rng.random() * len(self.scenes))], rng)
        return ids[: self.length]
