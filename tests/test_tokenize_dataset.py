"""Offline dataset tokenization with Ray Data (local Ray) against the single-process encoder."""

import io
import json
import os

import pytest
import torch
from PIL import Image

from seedtok.api import load_tokenizer
from seedtok.data.shapes import write_shapes_dataset
from seedtok.image import preprocess
from seedtok.tokenize_dataset import read_token_shards, tokenize_dataset


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(d, num=120, seed=3, shard_size=20)
    return d


def _by_key(folder):
    return {r["key"]: r for r in read_token_shards(str(folder))}


def test_ray_equals_single_process_and_resumes_one_shard(shards, tmp_path):
    local = tokenize_dataset(str(shards), tmp_path / "local", engine="local")
    assert local["images"] == 120 and local["skipped"] == 0
    ray_res = tokenize_dataset(str(shards), tmp_path / "ray", engine="ray", workers=2)
    assert ray_res["images"] == 120 and ray_res["shards_done_now"] == local["shards_total"]
    a, b = _by_key(tmp_path / "local"), _by_key(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 120
    assert all(a[k]["ids"] == b[k]["ids"] and a[k]["caption"] == b[k]["caption"] for k in a)

    # The ids are those of the plain encoder on the same images.
    model = load_tokenizer(None, "tiny", 0)
    import tarfile

    first = sorted(p for p in os.listdir(shards) if p.endswith(".tar"))[0]
    with tarfile.open(shards / first) as tf:
        pngs = {m.name[:-4]: tf.extractfile(m).read() for m in tf if m.name.endswith(".png")}
    keys = sorted(pngs)[:4]
    ids, _ = model.encode(preprocess([pngs[k] for k in keys], 64))
    assert ids.tolist() == [a[k]["ids"] for k in keys]

    # Delete one output shard: a re-run redoes exactly that shard.
    victim = sorted((tmp_path / "ray").glob("*.tar"))[1]
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.tar") if p != victim}
    victim.unlink()
    again = tokenize_dataset(str(shards), tmp_path / "ray", engine="ray", workers=2)
    assert again["shards_done_now"] == 1 and again["per_shard"][0]["output"] == str(victim)
    assert victim.is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.tar") if p != victim} == before
    assert _by_key(tmp_path / "ray") == b


def test_bad_images_are_skipped_and_counted_per_shard(tmp_path):
    from seedtok.data import ShardWriter

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buf, "PNG")
    with ShardWriter(tmp_path / "in", "data", max_count=10) as w:
        for i in range(20):
            w.write(f"s{i:02d}", {"png": b"broken" if i in (4, 15) else buf.getvalue(), "txt": b"a red square"})
    res = tokenize_dataset(str(tmp_path / "in"), tmp_path / "out", engine="local")
    assert res["images"] == 18 and res["skipped"] == 2
    assert [r["skipped_by_reason"] for r in res["per_shard"]] == [{"corrupt image": 1}, {"corrupt image": 1}]
    summary = json.loads((tmp_path / "out" / "data-000000.summary.json").read_text())
    assert summary["images"] == 9 and summary["skipped"] == 1


def test_folder_source_is_refused_with_a_hint(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="seedtok data pack"):
        tokenize_dataset(str(tmp_path), tmp_path / "out", engine="local")
