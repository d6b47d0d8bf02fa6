"""Crash-safe file writing: temp file in the same folder, fsync, atomic rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``,
    so a crash or a full disk never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


# -- nested state (optimizer, scheduler, RNG) without pickle ------------------------------------
def _flatten(obj: Any, tensors: dict[str, Any], path: str) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        key = path or "root"
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"{path}: only str/int dict keys can be stored")
        return {"__dict__": [[k, _flatten(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{path}: cannot store a {type(obj).__name__} without pickle")


def _unflatten(node: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__tuple__" in node:
            return tuple(_unflatten(v, tensors) for v in node["__tuple__"])
        if "__dict__" in node:
            return {k: _unflatten(v, tensors) for k, v in node["__dict__"]}
    return node


def save_tree(obj: Any, directory: str | os.PathLike, name: str) -> list[Path]:
    """Store nested dicts/lists/tuples of tensors and JSON scalars as ``name.safetensors`` (the
    tensors) + ``name.json`` (the structure): no pickle, so loading can never run code."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    skeleton = _flatten(obj, tensors, "")
    directory = Path(directory)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    atomic_write_bytes(directory / f"{name}.json", json.dumps(skeleton).encode())
    return [directory / f"{name}.safetensors", directory / f"{name}.json"]


def load_tree(directory: str | os.PathLike, name: str) -> Any:
    from safetensors.torch import load_file

    directory = Path(directory)
    tensors = load_file(str(directory / f"{name}.safetensors"))
    return _unflatten(json.loads((directory / f"{name}.json").read_text()), tensors)


def checksum_files(directory: str | os.PathLike, pattern: str = "*.safetensors") -> dict[str, str]:
    """sha256 of every file matching ``pattern`` in ``directory`` (name -> hex digest)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).glob(pattern)) if p.is_file()}


def verify_checksums(directory: str | os.PathLike, sums: dict[str, str]) -> None:
    """Raise ``ValueError`` naming the first file that is missing or differs from its sha256."""
    for name, digest in sums.items():
        path = Path(directory) / name
        if not path.is_file():
            raise ValueError(f"{path}: missing (listed in the checkpoint's checksums)")
        if sha256_file(path) != digest:
            raise ValueError(f"{path}: sha256 does not match the recorded checksum (file corrupt or modified)")
