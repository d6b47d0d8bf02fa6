"""Fuzz targets over seedtok's untrusted inputs, and a driver that runs many of them.

Each target takes raw bytes (the currency of coverage-guided fuzzers such as atheris) and
either accepts the input (checking what it produced) or rejects it with one of the package's
*typed* errors, listed in :data:`EXPECTED`. Anything else is a crash. Targets:

- ``image_bytes``: a seed image in one of several formats, mutated (bit flips, overwrites,
  truncation, insertions) -> :func:`seedtok.image.load_image` -> normalised tensor, and the
  dataset decoder a training job uses;
- ``caption_text``: arbitrary bytes as a caption file -> text cleaning, caption parsing and
  the dataset decoder;
- ``token_ids``: arbitrary integer sequences, shapes and dtypes -> ``decode_ids``;
- ``config_dict``: a preset's dict with fields replaced by odd values -> ``from_dict``.

``python -m seedtok.fuzzing --runs N`` drives every target with N inputs from a seeded
random mutator and prints the counts; ``--engine atheris`` runs the same targets under
atheris' coverage-guided engine (``pip install atheris``).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from PIL import Image

from seedtok.config import ConfigError, TokenizerConfig, get_preset
from seedtok.image import ImageError, load_image, normalize
from seedtok.models import SeedTokenizer, TokenIdError
from seedtok.textinput import TextError, clean_text

EXPECTED: tuple[type[BaseException], ...] = (ImageError, TextError, TokenIdError, ConfigError)


@lru_cache(maxsize=1)
def seed_images() -> tuple[bytes, ...]:
    """Small valid images in the formats PIL decodes most often, as fuzzing seeds."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    out = []
    for fmt, img, kw in (
        ("PNG", rgb, {}),
        ("PNG", rgb.convert("P"), {"transparency": 0}),
        ("PNG", Image.fromarray(rng.integers(0, 65535, (6, 5), dtype=np.uint16)), {}),
        ("JPEG", rgb, {"quality": 80}),
        ("JPEG", rgb.convert("CMYK"), {}),
        ("GIF", rgb.convert("P"), {}),
        ("BMP", rgb, {}),
        ("TIFF", rgb.convert("RGBA"), {}),
        ("WEBP", rgb, {}),
    ):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    return tuple(out)


def mutate(data: bytes, rnd: random.Random, max_ops: int = 8) -> bytes:
    """Random byte-level mutations: flips, overwrites, truncation, insertion, duplication."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, max_ops)):
        op = rnd.randrange(5)
        if not buf:
            buf.extend(rnd.randbytes(rnd.randint(1, 16)))
            continue
        i = rnd.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            buf[i] = rnd.choice((0, 0xFF, 0x7F, 0x80, rnd.randrange(256)))
        elif op == 2:
            del buf[rnd.randrange(len(buf)) :]
        elif op == 3:
            buf[i:i] = rnd.randbytes(rnd.randint(1, 32))
        else:
            j = rnd.randrange(len(buf))
            buf[i:i] = buf[j : j + rnd.randint(1, 64)]
    return bytes(buf)


def _dataset_decode(files: dict[str, bytes]) -> None:
    from seedtok.data.datasets import SampleError, decode_sample
    from seedtok.data.transforms import eval_transform

    try:
        out = decode_sample({"__key__": "fuzz", **files}, eval_transform(16))
    except SampleError:
        return
    assert out["pixel_values"].shape == (3, 16, 16) and torch.isfinite(out["pixel_values"]).all()
    assert isinstance(out["caption"], str) and out["caption"]


def target_image_bytes(data: bytes) -> None:
    seeds = seed_images()
    raw = mutate(seeds[data[0] % len(seeds)], random.Random(data[1:])) if len(data) > 1 else data
    _dataset_decode({"png": raw, "txt": b"a red circle"})  # a training job skips, never dies
    img = load_image(raw, name="fuzz")
    assert img.mode == "RGB"
    x = normalize(img, 16)
    assert x.shape == (3, 16, 16) and torch.isfinite(x).all()


def target_caption_text(data: bytes) -> None:
    from seedtok.data.shapes import parse_caption
    from seedtok.data.transforms import clean_caption

    _dataset_decode({"png": seed_images()[0], "txt": data})
    text = clean_text(data, max_chars=500, name="caption")
    assert text == text.strip() and "\x00" not in text and len(text) <= 500
    parse_caption(text)
    clean_caption(text)


@lru_cache(maxsize=1)
def _tiny_model() -> SeedTokenizer:
    torch.manual_seed(0)
    return SeedTokenizer(get_preset("tiny")).eval()


def target_token_ids(data: bytes) -> None:
    model = _tiny_model()
    rnd = random.Random(data)
    n = rnd.choice((32, 32, 32, 0, 1, 31, 33, 64))
    dtype = rnd.choice((torch.int64, torch.int32, torch.int16, torch.uint8, torch.float32, torch.bool))
    hi = rnd.choice((1024, 1025, 2**15, 2**31 - 1))
    values = [rnd.randrange(-hi, hi) if rnd.random() < 0.1 else rnd.randrange(0, hi) for _ in range(n * rnd.randint(1, 2))]
    ids = torch.tensor(values, dtype=torch.int64).clamp(-(2**15), 2**15 - 1)
    ids = ids.to(dtype)
    if n and ids.numel() % n == 0 and rnd.random() < 0.8:
        ids = ids.view(-1, n)
    gen = model.decode_ids(ids)
    assert gen.shape[1:] == (model.config.generation_len, model.config.generation_dim)
    assert torch.isfinite(gen).all()


_ODD_VALUES = (0, -1, 1, 3, 2**40, 1.5, float("nan"), float("inf"), True, None, "x", "", [], [1, 2], {}, {"a": 1})


def target_config_dict(data: bytes) -> None:
    rnd = random.Random(data)
    d = get_preset(rnd.choice(("tiny", "seed1"))).to_dict()
    for _ in range(rnd.randint(1, 4)):
        node = d
        path = []
        while isinstance(node, dict) and node and rnd.random() < 0.8:
            key = rnd.choice(sorted(node, key=repr))
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if not path:
            d = rnd.choice(_ODD_VALUES)
            break
        parent = d
        for key in path[:-1]:
            parent = parent[key]
        action = rnd.randrange(3)
        if action == 0:
            parent[path[-1]] = rnd.choice(_ODD_VALUES)
        elif action == 1:
            del parent[path[-1]]
        else:
            parent[rnd.choice(("extra", 7, None))] = 1
    cfg = TokenizerConfig.from_dict(d)  # type: ignore[arg-type]
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg


TARGETS: dict[str, Callable[[bytes], None]] = {
    "image_bytes": target_image_bytes,
    "caption_text": target_caption_text,
    "token_ids": target_token_ids,
    "config_dict": target_config_dict,
}


def run_random(runs: int, seed: int = 0, targets: list[str] | None = None) -> dict:
    """Drive each target with ``runs`` random inputs; typed errors are counted, others raise."""
    import warnings

    warnings.simplefilter("ignore")  # PIL warns about every corrupt EXIF block it survives
    rnd = random.Random(seed)
    report = {"engine": "random", "seed": seed, "targets": {}}
    for name in targets or list(TARGETS):
        fn, typed, t0 = TARGETS[name], 0, time.perf_counter()
        for _ in range(runs):
            data = rnd.randbytes(rnd.randint(0, 64))
            try:
                fn(data)
            except EXPECTED:
                typed += 1
        report["targets"][name] = {"inputs": runs, "typed_errors": typed, "crashes": 0, "seconds": round(time.perf_counter() - t0, 2)}
    report["total_inputs"] = runs * len(report["targets"])
    return report


def _instrument_for_atheris(atheris) -> None:  # pragma: no cover - needs atheris
    """Coverage-instrument seedtok's and Pillow's Python code (not torch's: too large)."""
    import inspect

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("seedtok", "PIL")):
            continue
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == name:
                try:
                    setattr(module, fn.__name__, atheris.instrument_func(fn))
                except Exception:
                    pass


def run_atheris(target: str, runs: int) -> None:  # pragma: no cover - needs atheris
    import atheris

    fn = TARGETS[target]

    def one(data: bytes) -> None:
        try:
            fn(data)
        except EXPECTED:
            pass

    import warnings

    warnings.simplefilter("ignore")
    _instrument_for_atheris(atheris)
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-seed=1"], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2500, help="inputs per target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=("random", "atheris"), default="random")
    p.add_argument("--target", choices=sorted(TARGETS), help="atheris: which target")
    p.add_argument("--out", help="write the report as JSON")
    args = p.parse_args(argv)
    if args.engine == "atheris":
        run_atheris(args.target or "image_bytes", args.runs)
        return 0
    report = run_random(args.runs, args.seed)
    for name, r in report["targets"].items():
        print(f"{name:<14} {r['inputs']:>7} inputs  {r['typed_errors']:>6} typed errors  0 crashes  {r['seconds']:.1f} s")
    print(f"total: {report['total_inputs']} inputs, 0 crashes")
    if args.out:
        from seedtok.fileio import atomic_write_json

        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
