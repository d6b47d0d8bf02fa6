"""Scoring images with the exact shapes scene parser (no learned judge; it replaces the paper's
CLIP similarity, sec. 4.1 Table 2): each image is parsed back into a scene and its objects are
paired with the reference scene's by grid cell (:func:`seedtok.data.parse.object_accuracy`).
``color_shape`` (colour and shape right, per object) is the headline figure; ``exact`` is the
share of images whose parsed scene equals the reference."""

from __future__ import annotations

from typing import Any, Sequence

import torch

KEYS = ("color_shape", "object", "color", "shape", "size", "position", "count", "exact")
SCENE_KEYS = ("count", "exact")  # averaged over scenes; the other keys over objects


def _as_parser_input(image: Any) -> Any:
    if isinstance(image, torch.Tensor):  # (3, H, W) in [0, 1]
        return image.permute(1, 2, 0).double().numpy()
    return image  # PIL image or array: parse_scene reads it directly


def score_images(images: torch.Tensor | Sequence[Any], scenes: Sequence[Any]) -> dict[str, float]:
    """Mean accuracies of images ((N, 3, H, W) in [0, 1], or PIL images / arrays) against their
    scenes (:class:`Scene` or dicts); also ``scenes`` and ``objects`` (the counts)."""
    from seedtok.data.shapes import Scene, object_accuracy, parse_scene

    totals = dict.fromkeys(KEYS, 0.0)
    n_obj = 0
    for img, scene in zip(images, scenes):
        ref = scene if isinstance(scene, Scene) else Scene.from_dict(scene)
        acc = object_accuracy(parse_scene(_as_parser_input(img)), ref)
        n_obj += int(acc["n"])
        for k in KEYS:
            totals[k] += acc[k] * (1.0 if k in SCENE_KEYS else acc["n"])
    n = len(scenes)
    out = {k: totals[k] / max(n if k in SCENE_KEYS else n_obj, 1) for k in KEYS}
    out.update(scenes=n, objects=n_obj)
    return out
