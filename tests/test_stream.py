"""Streaming data (:mod:`seedtok.data.stream`, :mod:`seedtok.train.streaming`): rank/worker
split, exact mid-epoch resume, bad data skipped and counted, per-shard caches, mode choice."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from seedtok.data import eval_transform
from seedtok.data.featcache import FeatureCache
from seedtok.data.shards import write_shards
from seedtok.data.stream import ShardStream, StreamPosition
from seedtok.train.streaming import StreamBatches, choose_stream


def _png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value % 256, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    """8 shards x 10 samples, keys s000..s079."""
    root = tmp_path_factory.mktemp("shards")
    samples = ((f"s{i:03d}", {"png": _png(i), "txt": f"caption {i}".encode()}) for i in range(80))
    return write_shards(samples, root, "train", max_count=10)


def _stream(shards, batch=4, buffer=15, caches=(), **kw) -> ShardStream:
    return ShardStream(shards, eval_transform(8), batch, seed=3, shuffle_buffer=buffer, caches=caches, **kw)


def _keys(batches: StreamBatches, n: int, rank: int = 0, world: int = 1) -> list[str]:
    out = []
    for i in range(n):
        batches.batch(batches.next_micro_step or 0, rank, world, batches.stream.batch_size)
        out += batches.last_keys
    return out


def _source(shards, workers=0, **kw) -> StreamBatches:
    return StreamBatches(_stream(shards, **kw), lambda b: {"x": b.get("pixel_values", b.get("feat"))}, workers)


def test_one_epoch_sees_every_sample_once_shuffled(shards):
    keys = _keys(_source(shards), 20)
    assert sorted(keys) == [f"s{i:03d}" for i in range(80)]
    assert keys != sorted(keys)  # block-shuffled across shards
    assert _keys(_source(shards), 20) == keys  # a pure function of the seed


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_split_an_epoch(shards, workers):
    seen = []
    for rank in range(2):  # 2 ranks x 1 or 2 workers over 8 shards: 40 samples per rank
        seen += _keys(_source(shards, workers, batch=5), 8, rank, 2)
    assert sorted(seen) == [f"s{i:03d}" for i in range(80)]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_exactly(shards, workers):
    full = _keys(_source(shards, workers), 30)  # crosses an epoch boundary (20 batches each)
    first = _source(shards, workers)
    head = _keys(first, 9)
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    second = _source(shards, workers)
    second.load_state_dict(state)
    assert head + _keys(second, 21) == full


def test_resume_refuses_another_stream(shards):
    first = _source(shards)
    _keys(first, 2)
    other = _source(shards, buffer=7)
    with pytest.raises(Exception, match="shuffle_buffer"):
        other.load_state_dict(first.state_dict())


def _corrupt_copy(src: str, dst: Path, truncate: bool = False) -> str:
    with tarfile.open(src) as t_in, tarfile.open(dst, "w") as t_out:
        for m in t_in.getmembers():
            t_out.addfile(m, t_in.extractfile(m))
        for name, payload in (("bad.png", b"not a png"), ("bad.txt", b"a caption")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            t_out.addfile(info, io.BytesIO(payload))
    if truncate:
        data = dst.read_bytes()
        dst.write_bytes(data[: len(data) // 2])  # cut inside a member
    return str(dst)


def test_corrupt_member_and_truncated_shard_are_skipped_and_counted(shards, tmp_path):
    bad = [_corrupt_copy(shards[0], tmp_path / "a.tar"), _corrupt_copy(shards[1], tmp_path / "b.tar", truncate=True)]
    src = _source(bad + shards[2:], buffer=0)
    keys = _keys(src, 20)  # one epoch (10 + 7 + 60 usable samples: the cut shard ends early) + 3
    summary = src.summary()
    # the bad image is counted; webdataset ends a cut shard silently, its torn last sample is counted
    assert summary["skipped_reasons"] == {"corrupt image": 1, "missing caption": 1}
    assert "bad" not in keys and len(set(keys[:77])) == len(set(keys)) == 77


def test_feature_cache_computed_once_then_read(shards, tmp_path):
    calls = []
    module = torch.nn.Linear(1, 1)

    def fn(x):
        calls.append(len(x))
        return x.mean(dim=(1, 2, 3))[:, None]

    cache = FeatureCache(tmp_path, "mean", module, fn, "feat")
    a = _keys(_source(shards, caches=[cache], need_pixels=False), 20)
    n = len(calls)
    src = StreamBatches(_stream(shards, caches=[cache], need_pixels=False), lambda b: {"f": b["feat"]}, 0)
    first = src.batch(0, 0, 1, 4)
    assert len(calls) == n and first["f"].shape == (4, 1)  # read from the per-shard files
    assert len(list((tmp_path / cache.name).glob("*.safetensors"))) == len(shards) and len(a) == 80


def test_position_round_trips():
    p = StreamPosition(epoch=2, shard=3, offset=7, skipped={"corrupt image": 1})
    p.emit("k")
    assert StreamPosition.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_auto_mode_streams_above_the_threshold(shards):
    d = str(Path(shards[0]).parent)
    assert not choose_stream("auto", d, 1000, threshold_gb=1.0)
    assert choose_stream("auto", d, 10**9, threshold_gb=1.0)
    assert choose_stream("on", d, 1) and not choose_stream("off", d, 10**12)
