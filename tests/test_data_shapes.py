"""Shapes world: deterministic shards, disjoint splits, compositional hold-out, rendering."""

import argparse
import filecmp
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seedtok.commands.data import cmd_shapes
from seedtok.data import image_text_loader
from seedtok.data.render import encode_png, render_array
from seedtok.data.scene import HELDOUT_PAIRS, Scene, ShapeObject, caption, sample_scene, vqa_pairs
from seedtok.data.shapes import SPLITS, split_shards, write_shapes_dataset


def _shapes(out: Path, num: int = 2000, seed: int = 0) -> None:
    ns = argparse.Namespace(out=str(out), num=num, seed=seed, image_size=64, shard_size=1000, backgrounds="white", quiet=True)
    assert cmd_shapes(ns) == 0


@pytest.fixture(scope="module")
def check_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes") / "shapes-check"
    _shapes(out)
    return out


@pytest.fixture(scope="module")
def samples(check_dir):
    loader = image_text_loader(str(check_dir), batch_size=500)
    out = []
    for b in loader:
        out += [dict(key=k, caption=c, scene=s) for k, c, s in zip(b["key"], b["caption"], b["scene"])]
    assert loader.skipped.count == 0
    return out


def test_cli_twice_gives_byte_identical_shards(check_dir, tmp_path):
    again = tmp_path / "again"
    _shapes(again)
    names = sorted(p.name for p in check_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert any(n.endswith(".tar") for n in names) and "index.json" in names
    match, mismatch, errors = filecmp.cmpfiles(check_dir, again, names, shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_differs(tmp_path):
    write_shapes_dataset(tmp_path / "a", 40, seed=1, shard_size=100)
    write_shapes_dataset(tmp_path / "b", 40, seed=2, shard_size=100)
    assert (tmp_path / "a" / "train-000000.tar").read_bytes() != (tmp_path / "b" / "train-000000.tar").read_bytes()


def test_reader_yields_2000_pairs_with_scenes(samples, check_dir):
    assert len(samples) == 2000
    assert all(isinstance(s["scene"], dict) and s["scene"]["objects"] for s in samples)
    index = json.loads((check_dir / "index.json").read_text())
    assert sum(v["count"] for v in index["splits"].values()) == 2000
    assert len({s["key"] for s in samples}) == 2000


def test_splits_disjoint_and_compositional_held_out(samples):
    sigs = {s: set() for s in SPLITS}
    pairs = {s: set() for s in SPLITS}
    for smp in samples:
        split = smp["key"].split("-")[0]
        scene = Scene.from_dict(smp["scene"])
        sigs[split].add(scene.signature())
        pairs[split] |= scene.pairs()
        if split == "compositional":
            assert scene.pairs() & set(HELDOUT_PAIRS)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not sigs[a] & sigs[b], (a, b)
    for split in ("train", "val", "test"):
        assert not pairs[split] & set(HELDOUT_PAIRS)
    # every colour and every shape is still seen in training
    assert {c for c, _ in pairs["train"]} == {c for c, _ in HELDOUT_PAIRS}
    assert {s for _, s in pairs["train"]} == {s for _, s in HELDOUT_PAIRS}


def test_split_shards_and_caption_matches_scene(check_dir, samples):
    assert [Path(p).name for p in split_shards(check_dir, "val")] == ["val-000000.tar"]
    from seedtok.data.parse import parse_caption, scene_match

    for smp in samples[:200]:
        assert scene_match(parse_caption(smp["caption"]), Scene.from_dict(smp["scene"]))


def test_render_is_antialiased_and_png_roundtrips():
    scene = Scene((ShapeObject("circle", "red", "large", "center"), ShapeObject("star", "blue", "small", "top left")))
    arr = render_array(scene, 64)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
    n_colors = len({tuple(p) for p in arr.reshape(-1, 3)})
    assert n_colors > 10  # edge pixels blend object and background
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(arr))))
    assert (decoded == arr).all()
    assert render_array(scene, 128).shape == (128, 128, 3)


def test_scene_dict_roundtrip_and_vqa():
    rng = random.Random(3)
    for _ in range(50):
        scene = sample_scene(rng, backgrounds=("white", "black"))
        assert Scene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene
        qa = vqa_pairs(scene, rng)
        types = {q["type"] for q in qa}
        assert {"count", "exist"} <= types
        for q in qa:
            if q["type"] == "count" and q["question"] == "how many shapes are there?":
                assert q["answer"] == ["zero", "one", "two", "three"][len(scene.objects)]
    s = Scene((ShapeObject("circle", "red", "large", "top left"), ShapeObject("star", "blue", "small", "bottom")))
    assert caption(s) == "a large red circle at the top left and a small blue star at the bottom"
