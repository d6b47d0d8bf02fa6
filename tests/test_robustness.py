"""Crash safety and bad data (issue: robustness): full disks, corrupt shards, odd text."""

import errno
import io
import os

import pytest
import torch
from PIL import Image

from seedtok.checkpoint import from_pretrained, save_pretrained
from seedtok.data import ShardWriter, eval_transform, image_text_loader
from seedtok.fileio import atomic_write_bytes
from seedtok.textinput import TextError, clean_text


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_atomic_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    atomic_write_bytes(path, b"old")
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"new and longer")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["report.json"]  # no temp file left behind


def test_disk_full_during_save_pretrained_keeps_previous_model(tmp_path, tiny_model, monkeypatch):
    import seedtok.checkpoint as ck

    d = save_pretrained(tiny_model, tmp_path / "m")
    before = sorted(os.listdir(d))
    real_save = ck.save_file

    def partial_then_full(tensors, filename, metadata=None):
        real_save(dict(list(tensors.items())[:3]), filename, metadata=metadata)
        _disk_full()

    monkeypatch.setattr(ck, "save_file", partial_then_full)
    torch.manual_seed(1)
    other = type(tiny_model)(tiny_model.config)
    with pytest.raises(OSError, match="No space"):
        save_pretrained(other, d)
    assert sorted(os.listdir(d)) == before
    loaded = from_pretrained(d)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), tiny_model.state_dict().values()))


def test_interrupted_shard_writer_leaves_no_partial_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, "data", max_count=2) as w:
            for i in range(3):
                w.write(f"k{i}", {"txt": b"x"})
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["data-000000.tar"]  # the finished shard only


def _png(seed):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 7 % 256, 50, 90)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("workers", [0, 2])
def test_shard_job_with_five_percent_corrupt_images_reports_exactly_those(tmp_path, workers):
    corrupt = {3, 21, 40, 66, 97}  # 5 of 100
    with ShardWriter(tmp_path, "data", max_count=25) as w:
        for i in range(100):
            img = _png(i)
            if i in corrupt:
                img = img[: len(img) // 2] if i % 2 else b"not an image at all"
            w.write(f"s{i:03d}", {"png": img, "txt": f"sample {i}".encode()})
    loader = image_text_loader(str(tmp_path), eval_transform(16), batch_size=8, num_workers=workers)
    keys = [k for batch in loader for k in batch["key"]]
    assert len(keys) == 95 and not {f"s{i:03d}" for i in corrupt} & set(keys)
    assert loader.skipped.count == 5 and loader.skipped.as_dict() == {"corrupt image": 5}


def test_caption_files_with_bad_bytes_and_control_characters(tmp_path):
    with ShardWriter(tmp_path, "data") as w:
        w.write("a", {"png": _png(1), "txt": b"a red\x00 circle \xff\xfe\tat the top\x1b[31m"})
        w.write("b", {"png": _png(2), "txt": b"\x00\x01  \n"})  # nothing left: skipped
    loader = image_text_loader(str(tmp_path), eval_transform(16), batch_size=4)
    captions = [c for batch in loader for c in batch["caption"]]
    assert captions == ["a red circle \ufffd\ufffd at the top [31m"]
    assert loader.skipped.as_dict() == {"missing caption": 1}


def test_clean_text_limits():
    assert clean_text("  What   colour\u200bis it?\n") == "What colour is it?"
    with pytest.raises(TextError, match="empty"):
        clean_text("\x00 \u200b")
    with pytest.raises(TextError, match="exceeds the limit of 10"):
        clean_text("x" * 11, max_chars=10)
    assert clean_text("word " * 10, max_chars=12, truncate=True) == "word word"
