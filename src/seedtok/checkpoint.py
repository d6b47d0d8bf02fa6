"""Weights I/O: seedtok's own format and the reference SEED-1 checkpoints.

Own format (``save_pretrained`` / ``from_pretrained``): a directory with ``config.json``
(the :class:`TokenizerConfig`, a format version and the sha256 of the weights file) and
``model.safetensors``. Writes are atomic (temp file + rename); loads verify the checksum.

Reference format: state dicts under the reference key names (see :mod:`seedtok.keymap`),
either one dict (``.safetensors`` or ``.pth``) or the three released files
``eva_vit_g.pth`` (BLIP-2), ``causal_qformer.pth`` and ``seed_tokenizer.pth`` (SEED-1).
Pickles are read with ``torch.load(weights_only=True)``; a ``"model"`` entry is unwrapped.
Loading is strict: every expected key must be present with its shape; a key that is neither
expected nor on :data:`seedtok.keymap.IGNORED_REFERENCE_KEYS` is an error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seedtok.config import SEED1_TEXT_VOCAB, TokenizerConfig, config_from_dict, get_preset
from seedtok.fileio import atomic_write_bytes, sha256_file
from seedtok.keymap import from_reference_key, ignore_reason, to_reference_key
from seedtok.models import SeedTokenizer
from seedtok.models.seed2 import build_tokenizer

if TYPE_CHECKING:
    from seedtok.models.pixelvq import PixelVQTokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked: missing, corrupt, or not matching."""


@dataclass
class LoadReport:
    """What a reference load used and what it deliberately skipped (key -> reason)."""

    loaded: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)


# -- own format -------------------------------------------------------------------------------
def save_pretrained(model: SeedTokenizer, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{WEIGHTS_NAME}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "seedtok_format": str(FORMAT_VERSION)})
        digest = sha256_file(tmp)
        os.replace(tmp, directory / WEIGHTS_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {"format_version": FORMAT_VERSION, "weights_sha256": digest, "config": model.config.to_dict()}
    atomic_write_bytes(directory / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True).encode())
    return directory


def load_config(directory: str | os.PathLike) -> TokenizerConfig:
    """The model's config (a :class:`~seedtok.config.Seed2Config` for a SEED-2 directory)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG_NAME} (not a seedtok model directory)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    return config_from_dict(meta.get("config", meta))


def open_pretrained(directory: str | os.PathLike, verify: bool = True) -> tuple[SeedTokenizer, Path]:
    """(model built on the meta device from ``config.json``, path of the checked weights file)."""
    directory = Path(directory)
    config = load_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS_NAME}")
    expected = json.loads((directory / CONFIG_NAME).read_text()).get("weights_sha256")
    if verify and expected and sha256_file(weights) != expected:
        raise CheckpointError(f"{weights}: sha256 does not match config.json (file corrupt or modified)")
    return _build(config), weights


def from_pretrained(directory: str | os.PathLike, verify: bool = True) -> SeedTokenizer:
    """Load a model written by :func:`save_pretrained`, strictly, in eval mode."""
    model, weights = open_pretrained(directory, verify)
    state = read_safetensors(weights)
    load_state_dict_strict(model, state, source=str(weights))
    return model.eval()


# -- reading any checkpoint file --------------------------------------------------------------
def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


class SafetensorsReader:
    """Reads a ``.safetensors`` file one tensor at a time with plain reads (no memory map, so a
    tensor that has been dropped no longer counts in the process's resident memory)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb")
        try:
            n = int.from_bytes(self._file.read(8), "little")
            size = self.path.stat().st_size
            if not 0 < n <= size - 8:
                raise ValueError(f"header length {n}")
            header = json.loads(self._file.read(n))
            header.pop("__metadata__", None)
            self._entries = {k: (_ST_DTYPES[e["dtype"]], tuple(e["shape"]), *e["data_offsets"]) for k, e in header.items()}
            self._base = 8 + n
            for k, (dtype, shape, begin, end) in self._entries.items():
                numel = 1
                for d in shape:
                    numel *= d
                if end - begin != numel * dtype.itemsize or self._base + end > size:
                    raise ValueError(f"tensor {k} does not fit the file")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            self._file.close()
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None

    def keys(self) -> list[str]:
        return list(self._entries)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: e[1] for k, e in self._entries.items()}

    def read(self, key: str) -> torch.Tensor:
        dtype, shape, begin, end = self._entries[key]
        out = torch.empty(shape, dtype=dtype)
        self._file.seek(self._base + begin)
        if end > begin and self._file.readinto(out.view(-1).view(torch.uint8).numpy()) != end - begin:
            raise CheckpointError(f"{self.path}: truncated at tensor {key}")
        return out

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SafetensorsReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a pickled ``.pth``/``.bin``/``.ckpt`` (``weights_only``;
    code-carrying pickles are refused). A ``"model"`` or ``"state_dict"`` entry is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: refused or unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return dict(obj)


# -- strict loading ---------------------------------------------------------------------------
def _build(config: TokenizerConfig) -> SeedTokenizer:
    with torch.device("meta"):
        return build_tokenizer(config)  # SeedTokenizer, or Seed2Tokenizer for a Seed2Config


def check_state_shapes(own: Mapping[str, tuple], state: Mapping[str, tuple], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the keys of ``own``, each with
    its shape (both map key -> shape)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k}: checkpoint {tuple(state[k])} vs model {tuple(own[k])}"
        for k in set(own) & set(state)
        if tuple(state[k]) != tuple(own[k])
    )
    problems = []
    if missing:
        problems.append(f"missing keys {_head(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_head(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_head(wrong)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` (seedtok names) into ``model``: all keys, right shapes, nothing extra.
    Works for models built on the meta device (tensors are assigned, cast to fp32)."""
    own = model.state_dict()
    check_state_shapes({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state.items()}, source)
    cast = {k: v.to(own[k].dtype if own[k].dtype.is_floating_point else v.dtype) for k, v in state.items()}
    model.load_state_dict(cast, strict=True, assign=True)


def _head(items: list[str], n: int = 10) -> str:
    return str(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# -- reference layout -------------------------------------------------------------------------
def to_reference_state_dict(model: SeedTokenizer) -> dict[str, torch.Tensor]:
    """seedtok state dict -> reference key names (the inverse of the reference loader)."""
    return {to_reference_key(k): v for k, v in model.state_dict().items()}


def map_reference_state_dict(
    reference: Mapping[str, torch.Tensor], model_keys: set[str], from_key=from_reference_key, why_ignored=ignore_reason,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename reference keys to seedtok keys; ignored ones go to the report, unknown ones raise.
    ``from_key`` / ``why_ignored`` are the key map's (SEED-1's by default; SEED-2's in
    :mod:`seedtok.checkpoint_seed2`)."""
    report = LoadReport()
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for ref_key, tensor in reference.items():
        ours = from_key(ref_key)
        if ours is not None and ours in model_keys:
            mapped[ours] = tensor
            report.loaded.append(ref_key)
            continue
        reason = why_ignored(ref_key)
        if reason is not None:
            report.ignored[ref_key] = reason
        else:
            unknown.append(ref_key)
    if unknown and from_key is from_reference_key:
        from seedtok.keymap_seed2 import release_mismatch

        mismatch = release_mismatch(reference, "seed1")
        if mismatch:
            raise CheckpointError(mismatch)
    if unknown:
        hint = ""
        if from_key is from_reference_key and any("word_embeddings" in k or k in ("temp", "vision_proj.weight") for k in unknown):
            hint = " (the checkpoint has a Q-Former text branch: use a config with qformer.vocab_size > 0, e.g. preset 'seed1-stage1')"
        raise CheckpointError(f"unexpected reference keys {_head(sorted(unknown))}{hint}")
    return mapped, report


def tokenizer_from_reference(
    reference: Mapping[str, torch.Tensor], config: TokenizerConfig, source: str = "reference state dict"
) -> tuple[SeedTokenizer, LoadReport]:
    """Build a :class:`SeedTokenizer` for ``config`` from a state dict in reference key names."""
    model = _build(config)
    mapped, report = map_reference_state_dict(reference, set(model.state_dict()))
    load_state_dict_strict(model, mapped, source)
    for key, why in sorted(report.ignored.items()):
        log.info("ignored %s: %s", key, why)
    return model.eval(), report


def load_reference_files(
    eva_vit: str | os.PathLike,
    causal_qformer: str | os.PathLike,
    seed_tokenizer: str | os.PathLike,
    config: TokenizerConfig | None = None,
) -> tuple[SeedTokenizer, LoadReport]:
    """Load the released SEED-1 weights from the three local files (nothing is downloaded).

    ``eva_vit_g.pth`` holds the ViT without the ``visual_encoder.`` prefix; the two SEED files
    are merged in the reference's order (a later file overrides an earlier one). With
    ``config=None`` the preset is ``seed1``, or ``seed1-stage1`` when ``causal_qformer.pth``
    carries the Q-Former's text branch, so its learned text weights are kept.
    """
    merged: dict[str, torch.Tensor] = {}
    for k, v in read_state_dict(eva_vit).items():
        merged[k if k.startswith("visual_encoder.") else f"visual_encoder.{k}"] = v
    qformer_sd = read_state_dict(causal_qformer)
    merged.update(qformer_sd)
    merged.update(read_state_dict(seed_tokenizer))
    if config is None:
        has_text = "Qformer.bert.embeddings.word_embeddings.weight" in qformer_sd
        config = get_preset("seed1-stage1" if has_text else "seed1")
        if has_text:
            vocab = qformer_sd["Qformer.bert.embeddings.word_embeddings.weight"].shape[0]
            if vocab != SEED1_TEXT_VOCAB:
                config = config.replace(qformer=_with_vocab(config, vocab))
    return tokenizer_from_reference(merged, config, source=f"{eva_vit} + {causal_qformer} + {seed_tokenizer}")


def _with_vocab(config: TokenizerConfig, vocab: int):
    import dataclasses

    return dataclasses.replace(config.qformer, vocab_size=vocab)


# -- the 2-D pixel tokenizer (ablation baseline, not SEED) ------------------------------------
PIXEL_VQ_KIND = "pixel-vq"


def save_pixel_vq(model: "PixelVQTokenizer", directory: str | os.PathLike) -> Path:
    """Write a :class:`~seedtok.models.pixelvq.PixelVQTokenizer` as ``config.json`` (kind
    ``pixel-vq``, its config, the weights' sha256) + ``model.safetensors``, both atomically."""
    import hashlib

    from safetensors.torch import save

    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    blob = save(tensors, metadata={"format": "pt", "seedtok_format": str(FORMAT_VERSION)})
    atomic_write_bytes(directory / WEIGHTS_NAME, blob)
    meta = {"kind": PIXEL_VQ_KIND, "format_version": FORMAT_VERSION, "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "config": model.config.to_dict()}
    atomic_write_bytes(directory / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True).encode())
    return directory


def load_pixel_vq(directory: str | os.PathLike) -> "PixelVQTokenizer":
    """Load a directory written by :func:`save_pixel_vq`, strictly and checksum-verified, in eval mode."""
    from seedtok.models.pixelvq import PixelVQConfig, PixelVQTokenizer

    directory = Path(directory)
    path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not path.is_file() or not weights.is_file():
        raise CheckpointError(f"{directory}: needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if meta.get("kind") != PIXEL_VQ_KIND:
        raise CheckpointError(f"{directory}: kind {meta.get('kind')!r}, not a {PIXEL_VQ_KIND!r} model")
    if sha256_file(weights) != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights}: sha256 does not match config.json (file corrupt or modified)")
    model = PixelVQTokenizer(PixelVQConfig.from_dict(meta["config"]))  # small: no meta-device build
    load_state_dict_strict(model, read_safetensors(weights), source=str(weights))
    return model.eval()
