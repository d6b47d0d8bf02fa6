"""Whole stage runs from a dataset path to an output directory (what ``seedtok train`` calls).

- :func:`run_encoder` (stage 0a): tiny ViT vs frozen MiniLM -> ``encoder.safetensors`` +
  ``provenance.json`` (the shipped stand-in).
- :func:`run_stage1`: preset + stand-in ViT (or a model directory, or a reference Q-Former
  checkpoint) -> Causal Q-Former trained -> ``save_pretrained`` directory.
- :func:`run_stage2`: stage-1 model directory -> codebook + de-tokenizer trained ->
  ``save_pretrained`` directory + ``reconstruction.safetensors`` (training-only head).

Each takes ``stream`` (:class:`~seedtok.train.stream_runs.StreamOptions`): in memory (the
default for small data, faster) or streaming over webdataset shards (:mod:`seedtok.train.streaming`),
chosen by size (``auto``) or forced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from seedtok.checkpoint import atomic_write_bytes, save_pretrained
from seedtok.config import TokenizerConfig, get_preset
from seedtok.models import SeedTokenizer
from seedtok.text import cached_text_states
from seedtok.train.core import TrainArgs, TrainingError
from seedtok.train.data import ImageTextSet, TensorBatches, load_image_text
from seedtok.eval.tokenizer import text_features
from seedtok.train.loop import fit, make_accelerator
from seedtok.train.pretrained import (
    is_seedtok_qformer_file,
    load_qformer_weights,
    load_reference_qformer,
    load_tokenizer,
    load_vision_weights,
)
from seedtok.train.stage1 import stage1_tensors, train_stage1
from seedtok.train.stage2 import DEFAULT_WEIGHTS, ReconstructionHead, loss_weights, stage2_tensors, train_stage2
from seedtok.train.stream_runs import StreamOptions, bytes_per_sample
from seedtok.train.streaming import choose_stream

log = logging.getLogger(__name__)

STANDIN_DIR = Path(__file__).resolve().parents[1] / "assets" / "standins"
TINY_ENCODER = STANDIN_DIR / "tiny_vit.safetensors"
# Stage 0d's stand-in Q-Former (BLIP-2's pretrained Q-Former in the tiny world); stage 1 of the
# tiny presets starts from it when the file is shipped (``seedtok train qformer``).
TINY_QFORMER = STANDIN_DIR / "tiny_qformer.safetensors"
QFORMER_STANDIN_PRESET = "tiny-stage1-bidirectional"
RECON_NAME = "reconstruction.safetensors"
# Weight of stage 1's image-grounded generation term in the tiny world (MSE per element of the
# MiniLM targets is ~0.05 against a contrastive loss of ~1.5-4; docs/training.md).
TINY_GENERATION_WEIGHT = 10.0


def default_cache(data: str, cache_dir: str | None) -> str:
    """Text-state cache: ``cache_dir``, else ``.seedtok-cache`` in the dataset folder (beside a
    shard file or pattern)."""
    if cache_dir:
        return cache_dir
    path = Path(data)
    return str((path if path.is_dir() else path.parent) / ".seedtok-cache")


def with_codebook(config: TokenizerConfig, kind: str | None) -> TokenizerConfig:
    if kind is None or kind == config.codebook.kind:
        return config
    return config.replace(codebook=dataclasses.replace(config.codebook, kind=kind))


def _is_main() -> bool:
    from seedtok.losses import world_info

    return world_info()[0] == 0


def _write_json(path: Path, obj: Any) -> None:
    if _is_main():
        atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def run_encoder(data: str, args: TrainArgs, preset: str = "tiny", cache_dir: str | None = None,
                limit: int | None = None, clip_weight: float = 0.0, probe_train: int = 4000,
                stream: StreamOptions | None = None) -> dict[str, Any]:
    """Stage 0a: train the stand-in ViT on the shapes world's cell labels (+ optional CLIP term);
    score it with the per-cell-average linear probe on the test split; write the stand-in."""
    config = get_preset(preset)
    stream = stream or StreamOptions()
    if _streaming(stream, data, SeedTokenizer(config) if stream.mode == "auto" else None, "encoder", limit):
        return _stream_encoder(data, args, config, preset, cache_dir, clip_weight, probe_train, stream)
    return _memory_encoder(data, args, config, preset, cache_dir, limit, clip_weight, probe_train)


def _streaming(stream: StreamOptions, data: str, model: SeedTokenizer | None, stage: str, limit: int | None) -> bool:
    on = choose_stream(stream.mode, data, bytes_per_sample(model, stage) if model is not None else 0, stream.threshold_gb)
    if on and limit is not None:
        raise TrainingError("--limit reads a subset into memory; it does not combine with --stream on")
    return on


def scene_cell_labels(data: ImageTextSet, what: str) -> torch.Tensor:
    """(N, 9, 3) grid-cell labels from the shapes world's scene metadata; ``what`` needs them
    (a clear error for data without metadata)."""
    from seedtok.eval.probe import cell_labels

    if any(not isinstance(s, dict) for s in data.scenes):
        raise TrainingError(f"{what} needs scene metadata (a shapes-world dataset)")
    return cell_labels(data.scenes)


def _encoder_module(config, args: TrainArgs, clip_weight: float):
    from seedtok.train.encoder import POSITION_WEIGHT, EncoderPretrainModule

    args.extra.setdefault("clip_weight", clip_weight)
    args.extra.setdefault("position_weight", POSITION_WEIGHT)
    return EncoderPretrainModule(config.vision, clip_weight, position_weight=float(args.extra["position_weight"]))


def _stream_encoder(data, args, config, preset, cache_dir, clip_weight, probe_train, stream) -> dict[str, Any]:
    from seedtok.train.encoder import clamp_temperature
    from seedtok.eval.tokenizer import encoder_probe
    from seedtok.train.stream_runs import stream_encoder

    # the probe's sets (bounded: probe_train + the test split) are read before any process group
    probe_set = load_image_text(data, "train", config.vision.image_size, probe_train)
    test = load_image_text(data, "test", config.vision.image_size)
    torch.manual_seed(args.seed)
    module = _encoder_module(config, args, clip_weight)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = stream_encoder(module, config, data, args, stream, default_cache(data, cache_dir), clip_weight,
                             clamp_temperature(module))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    probe = encoder_probe(module.vision, probe_set.pixels, probe_set.scenes, test)
    info = {k: v for k, v in summary.get("data", {}).items() if k != "positions"}
    return _encoder_outputs(module, config, preset, data, args, summary, wall, cpu, probe, len(probe_set),
                            {"source": str(data), **info})


def _memory_encoder(data, args, config, preset, cache_dir, limit, clip_weight, probe_train):
    from seedtok.train.encoder import clamp_temperature
    from seedtok.eval.tokenizer import encoder_probe

    # Read every split before the Accelerator starts: the loader shards by rank once a
    # process group exists, and the in-memory batching already splits by rank.
    train = load_image_text(data, "train", config.vision.image_size, limit)
    test = load_image_text(data, "test", config.vision.image_size)
    tensors = {"pixel_values": train.pixels, "cell_labels": scene_cell_labels(train, "stand-in encoder pretraining")}
    if clip_weight > 0:
        states, mask = cached_text_states(train.captions, config.generation_len, default_cache(data, cache_dir),
                                          progress=args.progress)
        tensors.update(text_states=states, text_mask=mask)
    torch.manual_seed(args.seed)
    module = _encoder_module(config, args, clip_weight)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = fit(module, TensorBatches(tensors, args.seed), args, {"stage": "encoder", "config": config.to_dict()},
                  clamp_temperature(module))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = min(probe_train, len(train))
    probe = encoder_probe(module.vision, train.pixels[:n], train.scenes[:n], test)
    return _encoder_outputs(module, config, preset, data, args, summary, wall, cpu, probe, n,
                            {"source": str(data), "train_samples": len(train), "skipped": train.skipped})


def _encoder_outputs(module, config, preset, data, args, summary, wall, cpu, probe, n, data_info) -> dict[str, Any]:
    out = Path(args.out)
    if _is_main():
        save_file(module.vision_state_dict(), str(out / "encoder.safetensors"), metadata={"format": "pt"})
    provenance = {
        "what": "stand-in EVA ViT for the tiny preset (stage 0a): conv-stem ViT whose every patch token is trained "
                "to classify its grid cell's colour/shape/size (+ optional CLIP term against frozen MiniLM-L6)",
        "preset": preset, "vision_config": dataclasses.asdict(config.vision),
        "params": sum(p.numel() for p in module.vision.parameters()),
        "data": data_info,
        "args": args.to_dict(), "steps": args.steps, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "torch_threads": torch.get_num_threads(), "final_loss": summary["last"].get("loss"),
        "probe": {"what": f"per-cell-average linear probe, trained on {n} train images, scored on the test split",
                  **probe},
    }
    _write_json(out / "provenance.json", provenance)
    return provenance


def probe_encoder(data: str, encoder: str | None = None, model_dir: str | None = None, preset: str = "tiny",
                  split: str = "test", train_images: int = 4000) -> dict[str, Any]:
    """``seedtok train probe``: the per-cell-average linear probe of a ViT (a stand-in file, by
    default the shipped one, or a model directory's), beside the same probe on raw pixels."""
    from seedtok.eval.tokenizer import encoder_probe, pixel_probe

    if model_dir:
        vision = load_tokenizer(model_dir).vision
    else:
        model = SeedTokenizer(get_preset(preset))
        load_vision_weights(model, encoder or TINY_ENCODER)
        vision = model.vision
    size = vision.config.image_size
    train = load_image_text(data, "train", size, train_images)
    test = load_image_text(data, split, size)
    if any(not isinstance(s, dict) for s in train.scenes + test.scenes):
        raise TrainingError("the probe needs scene metadata (a shapes-world dataset)")
    return {"encoder": str(model_dir or encoder or TINY_ENCODER), "split": split, "train_images": len(train),
            "encoder_probe": encoder_probe(vision, train.pixels, train.scenes, test),
            "pixel_probe": pixel_probe(vision.config.patch_size, train.pixels, train.scenes, test)}


def build_stage1_model(preset: str, encoder: str | None, init: str | None, qformer_init: str | None) -> SeedTokenizer:
    """Stage-1 starting point: a model directory, or the preset + stand-in ViT (+ reference Q-Former)."""
    if init:
        return load_tokenizer(init)
    model = SeedTokenizer(get_preset(preset))
    if encoder is None and preset.startswith("tiny"):
        encoder = str(TINY_ENCODER)
    if encoder is not None:
        load_vision_weights(model, encoder)
    else:
        log.warning("no image encoder weights given: the ViT stays random")
    if qformer_init is None and preset.startswith("tiny") and preset != QFORMER_STANDIN_PRESET and TINY_QFORMER.is_file():
        qformer_init = str(TINY_QFORMER)
    if qformer_init and qformer_init != "none":
        if is_seedtok_qformer_file(qformer_init):
            load_qformer_weights(model, qformer_init)
        else:
            load_reference_qformer(model, qformer_init)
    return model


def run_stage1(data: str, args: TrainArgs, preset: str = "tiny-stage1", encoder: str | None = None, init: str | None = None,
               qformer_init: str | None = None, limit: int | None = None, cache_dir: str | None = None,
               stream: StreamOptions | None = None) -> dict[str, Any]:
    model = build_stage1_model(preset, encoder, init, qformer_init)
    stream = stream or StreamOptions()
    weight = float(args.extra.setdefault("generation_weight", default_generation_weight(preset, init)))
    scene_weight = float(args.extra.get("scene_weight", 0.0))
    if _streaming(stream, data, model, "stage1", limit):
        if scene_weight > 0:
            raise TrainingError("the scene term (scene_weight > 0) reads scene metadata in memory; run it with --stream off")
        from seedtok.train.stream_runs import stream_stage1

        args.extra.setdefault("init", {"encoder": encoder, "init": init, "qformer_init": qformer_init, "data": str(data)})
        if weight > 0:
            args.extra.setdefault("generation_target", "canonical" if (Path(data) / "index.json").is_file() else "caption")
        summary = stream_stage1(model, data, args, stream, default_cache(data, cache_dir), args.extra.get("feature_cache"))
        summary["generation_weight"] = weight
        return _finish_stream(model, args, summary)
    train = load_image_text(data, "train", model.config.vision.image_size, limit)
    args.extra.setdefault("init", {"encoder": encoder, "init": init, "qformer_init": qformer_init, "data": str(data)})
    tensors = stage1_tensors(model, train, args.extra.get("feature_cache"), default_cache(data, cache_dir))
    if weight > 0:
        target = args.extra.setdefault("generation_target", default_target(train))
        tensors["target"], _ = generation_targets(model.config, train, target, default_cache(data, cache_dir), args.progress)
    if scene_weight > 0:
        tensors["cell_labels"] = scene_cell_labels(train, "the scene term (scene_weight > 0)")
    summary = train_stage1(model, tensors, args)
    if _is_main():
        save_pretrained(model.eval(), args.out)
    summary.update(skipped=train.skipped, train_samples=len(train), generation_weight=weight)
    _write_json(Path(args.out) / "train_summary.json", summary)
    return summary


def _finish_stream(model: SeedTokenizer, args: TrainArgs, summary: dict[str, Any]) -> dict[str, Any]:
    if _is_main():
        save_pretrained(model.eval(), args.out)
    data = summary.get("data", {})
    summary.update(skipped=data.get("skipped", 0), train_samples=summary["steps"] * _global_batch(args), stream=True)
    _write_json(Path(args.out) / "train_summary.json", summary)
    return summary


def _global_batch(args: TrainArgs) -> int:
    from seedtok.losses import world_info

    return args.batch_size * world_info()[1] * args.grad_accum


def generation_captions(data: ImageTextSet, target: str) -> list[str]:
    """The captions whose text-encoder states stage 2 regresses. ``"caption"``: each image's own
    caption (the paper's choice, for real image-text data). ``"canonical"``: the scene's caption
    in one fixed template, built from the shapes world's scene metadata - a caption drawn from
    five templates cannot be predicted from the image (docs/training.md)."""
    if target == "caption":
        return list(data.captions)
    if target != "canonical":
        raise TrainingError(f"generation target must be 'caption' or 'canonical', got {target!r}")
    if any(not isinstance(s, dict) for s in data.scenes):
        raise TrainingError("the 'canonical' generation target needs scene metadata (a shapes-world dataset); "
                            "use --target caption for other data")
    from seedtok.data.scene import Scene, caption

    return [caption(Scene.from_dict(s), template=0) for s in data.scenes]


def default_generation_weight(preset: str, init: str | None) -> float:
    """Stage 1's image-grounded generation term (:mod:`seedtok.train.stage1`): on for the tiny
    world (``TINY_GENERATION_WEIGHT``), off for the paper presets and when continuing from a
    model directory (the paper's stage 1 is contrastive only)."""
    return TINY_GENERATION_WEIGHT if init is None and preset.startswith("tiny") else 0.0


def generation_targets(config: TokenizerConfig, data: ImageTextSet, target: str, cache: str,
                       progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, generation_len, generation_dim) frozen text-encoder states of the generation captions
    and their (N, generation_len) token mask (0 on the padding)."""
    targets, mask = cached_text_states(generation_captions(data, target), config.generation_len, cache, progress=progress)
    if targets.shape[-1] != config.generation_dim:
        raise TrainingError(f"text targets are {targets.shape[-1]}-d, the preset wants {config.generation_dim}")
    return targets, mask


def stage1_trained_generation(directory: str | Path) -> bool:
    """Whether the stage-1 run in ``directory`` trained the generation path (its summary says so)."""
    path = Path(directory) / "train_summary.json"
    try:
        return float(json.loads(path.read_text()).get("generation_weight", 0.0)) > 0
    except (OSError, ValueError, AttributeError):
        return False


def default_target(data: ImageTextSet) -> str:
    """'canonical' for the shapes world (every sample has a scene), else 'caption'."""
    return "canonical" if data.scenes and all(isinstance(s, dict) for s in data.scenes) else "caption"


def run_stage2(data: str, args: TrainArgs, init: str, codebook: str | None = None, reinit: bool | None = None,
               cache_dir: str | None = None, limit: int | None = None, health_every: int = 50,
               target: str | None = None, stream: StreamOptions | None = None) -> dict[str, Any]:
    """Stage 2 from a stage-1 directory. ``codebook`` switches the quantizer kind ('reference' /
    'cosine'); dead-code re-initialisation defaults to on for 'cosine', off for 'reference'.
    ``target`` names the generation target (:func:`generation_captions`; default: 'canonical'
    for the shapes world, 'caption' otherwise); it is recorded in the run's arguments."""
    stage1 = load_tokenizer(init)
    config = with_codebook(stage1.config, codebook)
    model = SeedTokenizer(config)
    model.load_state_dict(stage1.state_dict(), strict=True)  # the codebook is still untrained
    reinit = config.codebook.kind == "cosine" if reinit is None else reinit
    stream = stream or StreamOptions()
    if _streaming(stream, data, model, "stage2", limit):
        return _stream_stage2(model, data, args, stream, init, reinit, cache_dir, health_every, target)
    train = load_image_text(data, "train", config.vision.image_size, limit)
    target = args.extra.setdefault("generation_target", target or default_target(train))
    targets, mask = generation_targets(config, train, target, default_cache(data, cache_dir), args.progress)
    # A generation path already trained in stage 1 keeps its weights (no restart at the mean).
    args.extra.setdefault("init_generation_head", not stage1_trained_generation(init))
    tensors = stage2_tensors(model, train, targets, feature_cache=args.extra.get("feature_cache"))
    tensors["target_mask"] = mask
    weights = loss_weights(args.extra.get("loss_weights", DEFAULT_WEIGHTS))
    if weights[3] > 0:  # contrastive term on the codes: frozen text-branch features as targets
        tensors["text_feats"] = text_features(model, train.captions, default_cache(data, cache_dir))
    args.extra.setdefault("init", {"init": str(init), "data": str(data)})
    summary, module = train_stage2(model, tensors, args, reinit=reinit, health_every=health_every)
    if _is_main():
        save_pretrained(model.eval(), args.out)
        save_file({k: v.contiguous() for k, v in module.recon.state_dict().items()}, str(Path(args.out) / RECON_NAME))
    summary.update(skipped=train.skipped, train_samples=len(train), reinit=reinit, codebook_kind=config.codebook.kind)
    _write_json(Path(args.out) / "train_summary.json", summary)
    return summary


def _stream_stage2(model, data, args, stream, init, reinit, cache_dir, health_every, target) -> dict[str, Any]:
    from seedtok.train.stream_runs import stream_stage2

    shapes = (Path(data) / "index.json").is_file()
    target = args.extra.setdefault("generation_target", target or ("canonical" if shapes else "caption"))
    args.extra.setdefault("init", {"init": str(init), "data": str(data)})
    args.extra.setdefault("init_generation_head", not stage1_trained_generation(init))
    summary, module = stream_stage2(model, data, args, stream, default_cache(data, cache_dir), target, reinit,
                                    health_every, args.extra.get("feature_cache"))
    summary.update(reinit=reinit, codebook_kind=model.config.codebook.kind)
    summary = _finish_stream(model, args, summary)
    if _is_main():
        save_file({k: v.contiguous() for k, v in module.recon.state_dict().items()}, str(Path(args.out) / RECON_NAME))
    return summary


def load_reconstruction(directory: str | Path, config: TokenizerConfig) -> ReconstructionHead:
    head = ReconstructionHead.for_config(config)
    path = Path(directory) / RECON_NAME
    if not path.is_file():
        raise TrainingError(f"{directory}: no {RECON_NAME} (needed to retrieve from codes; written by stage 2)")
    head.load_state_dict(load_file(str(path)), strict=True)
    return head.eval()
