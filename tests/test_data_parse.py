"""Scene parser (exact on clean renders, robust to noise and blur) and caption parser."""

import random

import numpy as np

from seedtok.data.parse import object_accuracy, parse_caption, parse_scene, scene_match
from seedtok.data.render import render_array, render_scene
from seedtok.data.scene import CAPTION_TEMPLATES, COLORS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject, caption, sample_scene
from seedtok.data.shapes import add_noise, gaussian_blur


def test_every_single_object_parses_exactly():
    for i, (shape, size) in enumerate((s, z) for s in SHAPES for z in SIZES):
        for j, pos in enumerate(POSITIONS):
            color = list(COLORS)[(i + j) % len(COLORS)]
            scene = Scene((ShapeObject(shape, color, size, pos),))
            assert scene_match(parse_scene(render_scene(scene)), scene), scene


def test_clean_renders_exact_match():
    rng = random.Random(7)
    scenes = [sample_scene(rng, backgrounds=("white", "black")) for _ in range(300)]
    exact = sum(scene_match(parse_scene(render_array(s)), s) for s in scenes)
    assert exact / len(scenes) >= 0.995


def _attribute_accuracy(corrupt, n=150, seed=11):
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    tot, n_obj = {}, 0
    for _ in range(n):
        scene = sample_scene(rng)
        acc = object_accuracy(parse_scene(corrupt(render_array(scene) / 255.0, nrng)), scene)
        n_obj += acc["n"]
        for k in ("position", "color", "shape", "size"):
            tot[k] = tot.get(k, 0.0) + acc[k] * acc["n"]
    return {k: v / n_obj for k, v in tot.items()}


def test_noise_robust():
    acc = _attribute_accuracy(lambda a, r: add_noise(a, 0.1, r))
    assert min(acc.values()) >= 0.95, acc


def test_blur_robust():
    acc = _attribute_accuracy(lambda a, r: gaussian_blur(a, 1.0))
    assert min(acc.values()) >= 0.95, acc


def test_parser_accepts_other_sizes_and_uint8():
    scene = Scene((ShapeObject("triangle", "green", "large", "bottom right"), ShapeObject("diamond", "orange", "small", "top")))
    assert scene_match(parse_scene(render_array(scene, 96)), scene)
    assert scene_match(parse_scene(render_array(scene, 64)), scene)


def test_caption_parser_roundtrips_every_template():
    rng = random.Random(5)
    for _ in range(300):
        scene = sample_scene(rng, backgrounds=("white", "black"))
        for t in range(len(CAPTION_TEMPLATES)):
            text = caption(scene, template=t)
            assert scene_match(parse_caption(text), scene), text


def test_caption_parser_partial_text():
    s = parse_caption("A red circle at the top left, and a large star.")
    assert [o.to_dict() for o in s.objects] == [
        {"shape": "circle", "color": "red", "size": None, "position": "top left"},
        {"shape": "star", "color": None, "size": "large", "position": None},
    ]


def test_object_accuracy_counts_wrong_attributes():
    ref = Scene((ShapeObject("circle", "red", "large", "top"), ShapeObject("star", "blue", "small", "left")))
    pred = Scene((ShapeObject("circle", "green", "large", "top"),))
    acc = object_accuracy(pred, ref)
    assert acc["n"] == 2 and acc["position"] == 0.5 and acc["shape"] == 0.5 and acc["color"] == 0.0
    assert acc["color_shape"] == 0.0 and acc["count"] == 0.0 and acc["exact"] == 0.0
    assert object_accuracy(ref, ref)["exact"] == 1.0
