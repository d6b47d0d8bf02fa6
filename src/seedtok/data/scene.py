"""The shapes world: vocabulary, scenes, captions and VQA pairs (DESIGN.md section 4).

A scene holds 1-3 objects on a plain background. Each object has a shape, a colour, a size
(small/large) and a position on a 3x3 grid, one object per cell, so objects never overlap.
Everything is drawn from a ``random.Random`` using only ``rng.random()``, whose sequence
Python guarantees across versions and machines, so a seed fixes the data everywhere.

The world stands in for the image-text corpora SEED trains on (paper sec. 4.1: CC3M,
Unsplash, COCO): its captions are compositional, and every attribute can be read back
exactly by :func:`seedtok.data.parse.parse_scene`, so captioning, VQA and text-to-image can
be scored without a learned judge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (240, 210, 0),
    "green": (30, 160, 50),
    "cyan": (0, 190, 210),
    "blue": (30, 60, 220),
    "purple": (140, 40, 180),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "black": (0, 0, 0)}
SHAPES: list[str] = ["circle", "square", "triangle", "diamond", "star"]
SIZES: list[str] = ["small", "large"]
# Object extent as a fraction of the image side: 12 and 18 px at 64x64. A grid cell is 21.3 px,
# so neighbours keep a gap of >= 3.3 px that blur does not bridge.
SIZE_FRACTION: dict[str, float] = {"small": 12 / 64, "large": 18 / 64}
POSITIONS: list[str] = [
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
]  # fmt: skip
COUNT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# (colour, shape) pairs held out of train/val/test for the compositional test split: colour i
# with shape i mod 5, so every colour and every shape is still seen in training.
HELDOUT_PAIRS: list[tuple[str, str]] = [(c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(COLORS)]


@dataclass(frozen=True)
class ShapeObject:
    """One object. Attributes may be ``None`` in scenes parsed from free text."""

    shape: str | None
    color: str | None
    size: str | None
    position: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "size": self.size, "position": self.position}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShapeObject":
        return cls(d.get("shape"), d.get("color"), d.get("size"), d.get("position"))


def _pos_index(position: str | None) -> int:
    return POSITIONS.index(position) if position in POSITIONS else len(POSITIONS)


@dataclass(frozen=True)
class Scene:
    """Objects in reading order of their grid cells, on a named background."""

    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)
    background: str = "white"

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.objects, key=lambda o: _pos_index(o.position)))
        object.__setattr__(self, "objects", ordered)

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects], "background": self.background}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        return cls(tuple(ShapeObject.from_dict(o) for o in d.get("objects", [])), d.get("background", "white"))

    def signature(self) -> str:
        """Canonical text form: equal scenes have equal signatures."""
        objs = ";".join(f"{o.position}|{o.size}|{o.color}|{o.shape}" for o in self.objects)
        return f"{self.background}#{objs}"

    def pairs(self) -> set[tuple[str | None, str | None]]:
        return {(o.color, o.shape) for o in self.objects}


# --- sampling (only rng.random(): stable across Python versions) -------------------------


def _choice(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


def _sample(rng: random.Random, seq: Sequence[Any], k: int) -> list[Any]:
    pool, out = list(seq), []
    for _ in range(k):
        out.append(pool.pop(min(int(rng.random() * len(pool)), len(pool) - 1)))
    return out


def sample_scene(
    rng: random.Random,
    min_objects: int = 1,
    max_objects: int = 3,
    backgrounds: Sequence[str] = ("white",),
    colors: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
) -> Scene:
    """Draw a scene: object count uniform in [min_objects, max_objects], distinct grid cells,
    independent uniform shape / colour / size per object."""
    colors, shapes = list(colors or COLORS), list(shapes or SHAPES)
    n = min_objects + min(int(rng.random() * (max_objects - min_objects + 1)), max_objects - min_objects)
    cells = _sample(rng, POSITIONS, n)
    objs = [ShapeObject(_choice(rng, shapes), _choice(rng, colors), _choice(rng, SIZES), p) for p in cells]
    return Scene(tuple(objs), _choice(rng, list(backgrounds)))


# --- captions -------------------------------------------------------------------------------


def position_phrase(position: str) -> str:
    return "in the center" if position == "center" else f"at the {position}"


def object_phrase(o: ShapeObject) -> str:
    words = [w for w in (o.size, o.color, o.shape) if w]
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _obj_pos_first(o: ShapeObject) -> str:
    return f"{position_phrase(o.position)} {object_phrase(o)}"


def _obj_pos_last(o: ShapeObject) -> str:
    return f"{object_phrase(o)} {position_phrase(o.position)}"


def _tpl_plain(objs: list[ShapeObject]) -> str:
    return _join([_obj_pos_last(o) for o in objs])


def _tpl_there(objs: list[ShapeObject]) -> str:
    return ("there is " if len(objs) == 1 else "there are ") + _join([_obj_pos_last(o) for o in objs])


def _tpl_image(objs: list[ShapeObject]) -> str:
    return "an image of " + _join([_obj_pos_last(o) for o in objs])


def _tpl_count(objs: list[ShapeObject]) -> str:
    noun = "shape" if len(objs) == 1 else "shapes"
    return f"{COUNT_WORDS[len(objs)]} {noun}: " + _join([_obj_pos_last(o) for o in objs])


def _tpl_pos_first(objs: list[ShapeObject]) -> str:
    return _join([_obj_pos_first(o) for o in objs])


CAPTION_TEMPLATES = [_tpl_plain, _tpl_there, _tpl_image, _tpl_count, _tpl_pos_first]


def caption(scene: Scene, rng: random.Random | None = None, template: int | None = None) -> str:
    """Compositional English caption, e.g. "a large red circle at the top left and a small
    blue star at the bottom". ``template`` picks one of :data:`CAPTION_TEMPLATES`; otherwise
    ``rng`` draws one (template 0 without an rng)."""
    if template is None:
        template = 0 if rng is None else _choice(rng, range(len(CAPTION_TEMPLATES)))
    text = CAPTION_TEMPLATES[template](list(scene.objects))
    if scene.background != "white":
        text += f" on a {scene.background} background"
    return text


# --- VQA ------------------------------------------------------------------------------------


def _unique(objs: Sequence[ShapeObject], attr: str) -> list[ShapeObject]:
    values = [getattr(o, attr) for o in objs]
    return [o for o in objs if values.count(getattr(o, attr)) == 1]


def vqa_pairs(scene: Scene, rng: random.Random | None = None) -> list[dict[str, str]]:
    """Template questions with one-word/phrase answers (types: color, shape, count, exist,
    position), as in SEED's VQA fine-tuning data (paper sec. 4.2). Only unambiguous questions
    are asked: "what color is the circle?" only when exactly one circle is present."""
    rng = rng or random.Random(0)
    objs = list(scene.objects)
    qa: list[dict[str, str]] = []
    if by_shape := _unique(objs, "shape"):
        o = _choice(rng, by_shape)
        qa.append({"question": f"what color is the {o.shape}?", "answer": o.color, "type": "color"})
    if by_color := _unique(objs, "color"):
        o = _choice(rng, by_color)
        qa.append({"question": f"what shape is the {o.color} object?", "answer": o.shape, "type": "shape"})
    qa.append({"question": "how many shapes are there?", "answer": COUNT_WORDS[len(objs)], "type": "count"})
    color = _choice(rng, list(COLORS))
    n_color = sum(o.color == color for o in objs)
    qa.append({"question": f"how many {color} shapes are there?", "answer": COUNT_WORDS[n_color], "type": "count"})
    if rng.random() < 0.5:
        o = _choice(rng, objs)
        color, shape = o.color, o.shape
    else:
        color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    present = any(o.color == color and o.shape == shape for o in objs)
    qa.append({"question": f"is there a {color} {shape}?", "answer": "yes" if present else "no", "type": "exist"})
    pairs = [o for o in objs if sum(p.color == o.color and p.shape == o.shape for p in objs) == 1]
    if pairs:
        o = _choice(rng, pairs)
        qa.append({"question": f"where is the {o.color} {o.shape}?", "answer": o.position, "type": "position"})
    return qa
