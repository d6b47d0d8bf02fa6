"""`seedtok data` commands: importers (fake sources, missing sources), pack, accuracy, bench."""

import argparse
import io
import json

import pytest
from PIL import Image

from seedtok.commands import data as data_cmd
from seedtok.data import image_text_loader
from seedtok.data.bench import bench_reader
from seedtok.data.importers import SourceMissing, emoji_samples, find_emoji_package, tuxpaint_samples
from seedtok.data.shapes import write_shapes_dataset


def _parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("-q", "--quiet", action="store_true")
    sub = p.add_subparsers(dest="command")
    data_cmd.add_parsers(sub)
    return p.parse_args(argv)


def _run(argv):
    args = _parse(argv)
    return args.func(args)


def _png(color):
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def test_importers_name_the_install_command_when_missing(tmp_path):
    with pytest.raises(SourceMissing, match="npm install emoji-datasource-google"):
        find_emoji_package(tmp_path)
    with pytest.raises(SourceMissing, match="apt-get install tuxpaint-stamps-default"):
        next(tuxpaint_samples(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="npm install"):
        _run(["data", "import-emoji", "--source", str(tmp_path), "--out", str(tmp_path / "o")])


def test_emoji_import_from_a_fake_package(tmp_path, capsys):
    pkg = tmp_path / "node_modules" / "emoji-datasource-google"
    (pkg / "img" / "google" / "64").mkdir(parents=True)
    entries = [{"name": "GRINNING FACE", "image": "1f600.png", "category": "Smileys", "has_img_google": True},
               {"name": None, "short_name": "red_heart", "image": "2764-fe0f.png", "has_img_google": True},
               {"name": "NO IMAGE", "image": "0000.png", "has_img_google": False}]
    (pkg / "emoji.json").write_text(json.dumps(entries))
    for e in entries[:2]:
        (pkg / "img" / "google" / "64" / e["image"]).write_bytes(_png((255, 200, 0, 255)))
    assert [k for k, _ in emoji_samples(find_emoji_package(tmp_path))] == ["emoji-1f600", "emoji-2764-fe0f"]
    assert _run(["data", "import-emoji", "--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    loader = image_text_loader(str(tmp_path / "out"), batch_size=8)
    batch = next(iter(loader))
    assert batch["caption"] == ["grinning face", "red heart"]


def test_tuxpaint_import_from_a_fake_tree(tmp_path):
    d = tmp_path / "stamps" / "animals"
    d.mkdir(parents=True)
    (d / "frog.png").write_bytes(_png((0, 150, 0, 255)))
    (d / "frog.txt").write_text("A frog.\nfr.utf8=Une grenouille.\n")
    (d / "nocap.png").write_bytes(_png((0, 0, 0, 255)))
    assert [(k, f["txt"]) for k, f in tuxpaint_samples(tmp_path / "stamps")] == [("tux-animals-frog", b"A frog.")]
    assert _run(["data", "import-tuxpaint", "--source", str(tmp_path / "stamps"), "--out", str(tmp_path / "o")]) == 0


def test_parser_accuracy_and_bench_commands(tmp_path):
    out = tmp_path / "acc.json"
    assert _run(["data", "parser-accuracy", "--num", "20", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["clean"]["exact"] >= 0.95 and res["caption_roundtrip"] == 1.0
    write_shapes_dataset(tmp_path / "s", 64, seed=0, shard_size=32)
    r = bench_reader(str(tmp_path / "s"), workers=0, batch_size=16, repeats=1)
    assert r["samples_per_epoch"] == 64 and r["pairs_per_s"] > 0
    assert _run(["data", "bench", str(tmp_path / "s"), "--workers", "0", "--repeats", "1", "--out", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["benchmark"] == "data_reader"


def test_shapes_pack_show_commands(tmp_path, capsys):
    assert _run(["data", "shapes", "--out", str(tmp_path / "s"), "--num", "30", "--shard-size", "10"]) == 0
    assert _run(["data", "show", str(tmp_path / "s"), "--num", "2"]) == 0
    assert "30 samples, 0 skipped" in capsys.readouterr().out
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png((1, 2, 3, 255)))
    (folder / "a.txt").write_text("an a")
    (folder / "b.png").write_bytes(_png((1, 2, 3, 255)))
    assert _run(["data", "pack", str(folder), "--out", str(tmp_path / "p")]) == 0
    assert "packed 1 samples" in capsys.readouterr().out
