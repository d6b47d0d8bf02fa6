"""Image-text reader: pack/read round trip, skip counting, manifests, transforms, splitting."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from seedtok.data import (
    ImageTextDataset,
    ShardWriter,
    clean_caption,
    eval_transform,
    image_text_loader,
    pack,
    train_transform,
)


def _png(color, size=(20, 14), fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "pairs"
    (d / "sub").mkdir(parents=True)
    for i in range(6):
        ext = "jpg" if i % 2 else "png"
        where = d / "sub" if i == 5 else d
        (where / f"img{i}.{ext}").write_bytes(_png((40 * i, 100, 200 - 30 * i), fmt="JPEG" if ext == "jpg" else "PNG"))
        (where / f"img{i}.txt").write_text(f"caption number {i}\n")
    return d


def _read_all(source, **kw):
    loader = image_text_loader(source, eval_transform(32), batch_size=4, **kw)
    out = {}
    for b in loader:
        for k, c, x in zip(b["key"], b["caption"], b["pixel_values"]):
            out[k] = (c, x)
    return out, loader


def test_pack_folder_and_read_back_identically(folder, tmp_path):
    r = pack(folder, tmp_path / "shards", max_count=4)
    assert r["written"] == 6 and len(r["shards"]) == 2 and not r["skipped"]
    direct, _ = _read_all(str(folder))
    packed, loader = _read_all(str(tmp_path / "shards"))
    assert loader.skipped.count == 0 and len(packed) == 6
    assert sorted(c for c, _ in direct.values()) == sorted(c for c, _ in packed.values())
    by_caption = {c: x for c, x in direct.values()}
    for c, x in packed.values():
        assert torch.equal(by_caption[c], x)


def test_jsonl_manifest(folder, tmp_path):
    lines = [json.dumps({"image": str(folder / "img0.png"), "caption": "zero", "scene": {"objects": []}}),
             json.dumps({"image": "pairs/img1.jpg", "caption": "one"})]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    got, loader = _read_all(str(manifest))
    assert sorted(c for c, _ in got.values()) == ["one", "zero"]
    ds = ImageTextDataset(str(manifest))
    assert [s.get("scene") for s in ds] == [{"objects": []}, None]


def _bad_shard(tmp_path):
    with ShardWriter(tmp_path / "bad", "part", max_count=100) as w:
        for i in range(5):
            w.write(f"good{i}", {"png": _png((i * 50, 0, 0)), "txt": f"good {i}".encode()})
        w.write("corrupt", {"png": b"\x89PNG\r\n\x1a\nnot really a png", "txt": b"broken image"})
        w.write("nocaption", {"png": _png((0, 255, 0))})
    return w.paths


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_and_missing_caption_are_skipped_and_counted(tmp_path, workers, caplog):
    paths = _bad_shard(tmp_path)
    got, loader = _read_all(paths[0], num_workers=workers)
    assert sorted(got) == [f"good{i}" for i in range(5)]
    assert loader.skipped.count == 2
    assert loader.skipped.as_dict() == {"corrupt image": 1, "missing caption": 1}
    assert loader.samples == 5


def test_brace_pattern_and_shard_splitting(tmp_path):
    with ShardWriter(tmp_path / "s", "data", max_count=3) as w:
        for i in range(10):
            w.write(f"k{i:02d}", {"png": _png((i, i, i)), "txt": f"c{i}".encode()})
    pattern = str(tmp_path / "s" / "data-{000000..000003}.tar")
    got, _ = _read_all(pattern, num_workers=2)
    assert sorted(got) == [f"k{i:02d}" for i in range(10)]
    loader = image_text_loader(pattern, eval_transform(16), batch_size=10, shuffle_buffer=4, seed=1)
    orders = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        orders.append([k for b in loader for k in b["key"]])
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(got) and orders[0] != orders[1]


def test_shards_are_byte_identical(tmp_path):
    for name in ("a", "b"):
        with ShardWriter(tmp_path / name, "x") as w:
            w.write("k", {"txt": b"hi", "png": _png((1, 2, 3))})
    assert (tmp_path / "a" / "x-000000.tar").read_bytes() == (tmp_path / "b" / "x-000000.tar").read_bytes()


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such shard"):
        image_text_loader(str(tmp_path / "nope-{000000..000001}.tar"))
    with pytest.raises(FileNotFoundError):
        image_text_loader(str(tmp_path / "missing_dir"))


def test_transforms():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    tf = train_transform(32, generator=torch.Generator().manual_seed(0))
    a = tf(img)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not tf.hflip
    for _ in range(50):
        l, t, r, b = tf.crop_box(60, 40)
        assert 0 <= l < r <= 60 and 0 <= t < b <= 40
        assert 0.5 * 2400 * 0.9 <= (r - l) * (b - t) <= 2400
    tf2 = train_transform(32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tf2(img), a)
    e = eval_transform(32)(img)
    assert e.shape == (3, 32, 32)


def test_clean_caption():
    assert clean_caption('A "Red" Circle! (big) #1: yes; ok~') == "a red circle big 1 yes ok"
    assert clean_caption(" ".join(["w"] * 80)).count("w") == 50
    assert clean_caption("x y z", max_words=2) == "x y"
