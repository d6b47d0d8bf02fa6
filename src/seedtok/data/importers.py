"""Importers for real captioned image sets that install offline through package registries
(see ../shared/docs/assets.md). They install nothing: when a source is missing they raise
:class:`SourceMissing` naming the one command to run. Licensed art is read from the install
location and written only to the user's output directory, never into the repository.

- Noto emoji (``npm install emoji-datasource-google``, MIT/Apache-2.0): 64 px PNGs, caption =
  the Unicode name ("grinning face").
- Tux Paint stamps (``apt-get install tuxpaint-stamps-default``, GPL-2): PNG stamps with a
  ``.txt`` whose first line is the English caption.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from seedtok.data.shards import ShardWriter

log = logging.getLogger(__name__)

EMOJI_PACKAGE = "emoji-datasource-google"
EMOJI_INSTALL = f"npm install {EMOJI_PACKAGE}"
TUXPAINT_DIR = "/usr/share/tuxpaint/stamps"
TUXPAINT_INSTALL = "apt-get install tuxpaint-stamps-default"


class SourceMissing(FileNotFoundError):
    """The source data set is not installed; the message names the command to install it."""


def find_emoji_package(path: str | os.PathLike | None = None) -> Path:
    """Locate the emoji-datasource-google package: ``path`` (the package folder or a folder
    holding ``node_modules``), else ``./node_modules/emoji-datasource-google``."""
    candidates = [Path(path)] if path else [Path.cwd()]
    for c in candidates:
        for p in (c, c / "node_modules" / EMOJI_PACKAGE):
            if (p / "emoji.json").is_file():
                return p
    where = path or "./node_modules"
    raise SourceMissing(f"Noto emoji not found in {where}. Install it with:  {EMOJI_INSTALL}  (then pass --source node_modules/{EMOJI_PACKAGE})")


def emoji_samples(package: Path, size: int = 64) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, files) for every emoji with a Google image of the given size, in emoji.json order."""
    entries = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    img_dir = package / "img" / "google" / str(size)
    if not img_dir.is_dir():
        raise SourceMissing(f"{img_dir}: no {size} px images in {package}; reinstall with:  {EMOJI_INSTALL}")
    for e in entries:
        name = (e.get("name") or e.get("short_name") or "").replace("_", " ").strip().lower()
        image = img_dir / e.get("image", "")
        if not name or not e.get("has_img_google", True) or not image.is_file():
            continue
        meta: dict[str, Any] = {"category": e.get("category"), "subcategory": e.get("subcategory"), "source": EMOJI_PACKAGE}
        key = "emoji-" + Path(e["image"]).stem.replace(".", "_")
        yield key, {"png": image.read_bytes(), "txt": name.encode("utf-8"), "json": json.dumps(meta, sort_keys=True).encode()}


def tuxpaint_samples(root: str | os.PathLike = TUXPAINT_DIR) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, files) for every PNG stamp under ``root`` with a caption file, in path order."""
    base = Path(root)
    if not base.is_dir() or not any(base.rglob("*.png")):
        raise SourceMissing(f"Tux Paint stamps not found in {base}. Install them with:  {TUXPAINT_INSTALL}")
    for png in sorted(base.rglob("*.png")):
        if png.name.endswith(("_mirror.png", "_flip.png")) or png.stem.endswith(("_thumb", "_shadow")):
            continue
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            continue
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = lines[0].strip() if lines else ""
        if not caption:
            continue
        rel = png.relative_to(base).with_suffix("")
        key = "tux-" + "-".join(rel.parts).replace(".", "_").replace(" ", "_")
        meta = {"path": str(rel), "source": "tuxpaint-stamps-default"}
        yield key, {"png": png.read_bytes(), "txt": caption.encode("utf-8"), "json": json.dumps(meta, sort_keys=True).encode()}


def import_to_shards(samples: Iterator[tuple[str, dict[str, bytes]]], out_dir: str | os.PathLike, prefix: str, max_count: int = 1000) -> dict[str, Any]:
    """Write importer samples to ``out_dir/<prefix>-NNNNNN.tar``; returns shards and count."""
    with ShardWriter(out_dir, prefix, max_count) as writer:
        for key, files in samples:
            writer.write(key, files)
    log.info("imported %d samples into %d shards under %s", writer.count, len(writer.paths), out_dir)
    return {"shards": writer.paths, "count": writer.count}
