"""The tokenizer stages in streaming mode (``--stream on``, or ``auto`` on a large corpus).

Same modules, freezing policy, loss and loop as the in-memory runs of :mod:`seedtok.train.runs`;
only the data path differs (:mod:`seedtok.train.streaming`): the frozen parts run on each batch
(or their outputs are read from a per-shard ``--feature-cache``), the text-encoder states come
from a per-shard cache beside the data (computed when a shard is first read).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from seedtok.data.featcache import FeatureCache, TextStateCache, canonical_caption, own_caption
from seedtok.data.stream import ShardStream
from seedtok.models import SeedTokenizer
from seedtok.train.core import TrainArgs, TrainingError
from seedtok.train.loop import fit, make_accelerator
from seedtok.train.streaming import DEFAULT_SHUFFLE_BUFFER, DEFAULT_THRESHOLD_GB, StreamBatches, make_stream

log = logging.getLogger(__name__)


@dataclass
class StreamOptions:
    """``mode``: auto | on | off; ``threshold_gb``: auto streams above this in-memory estimate;
    ``shuffle_buffer``: samples per shuffled block; ``workers``: DataLoader workers per rank;
    ``key_log``: folder for per-rank sample-key logs (tests)."""

    mode: str = "auto"
    threshold_gb: float = DEFAULT_THRESHOLD_GB
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    workers: int = 0
    key_log: str | None = None

    def identity(self) -> dict[str, Any]:
        return {"data": "stream", "shuffle_buffer": self.shuffle_buffer, "workers": self.workers}


def bytes_per_sample(model: SeedTokenizer, stage: str) -> int:
    """fp32 bytes the in-memory mode holds per training sample (pixels, frozen features, text)."""
    c = model.config
    pixels = 3 * c.vision.image_size**2 * 4
    tokens = 1 + (c.vision.image_size // c.vision.patch_size) ** 2
    text = 32 * 384 * 4 + 32 * 8
    if stage == "stage2":
        return pixels + c.num_tokens * c.qformer.hidden_size * 4 + c.generation_len * c.generation_dim * 4
    if stage == "encoder":
        return pixels + 9 * 3 * 8
    return pixels + tokens * c.vision.hidden_size * 4 + text


def _no_grad(fn, x: torch.Tensor, like: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return fn(x.to(next(like.parameters()).device))


def _batches(stream: ShardStream, featurize, opts: StreamOptions) -> StreamBatches:
    return StreamBatches(stream, featurize, opts.workers, opts.key_log)


def stream_stage1(model: SeedTokenizer, data: str, args: TrainArgs, opts: StreamOptions, text_cache: str,
                  feature_cache: str | None = None) -> dict[str, Any]:
    """Stage 1 over shards: frozen ViT per batch (or cached per shard), MiniLM states per shard."""
    from seedtok.text import bert_tokenizer, tokenize
    from seedtok.train.stage1 import MAX_TEXT_LEN, TEXT_STATE_LEN, clamp_temperature, prepare_stage1

    acc = make_accelerator(args)
    weight = float(args.extra.get("generation_weight", 0.0))
    module = prepare_stage1(model, weight)
    model.vision.to(acc.device)
    config = model.qformer.config
    caches: list[Any] = [TextStateCache(text_cache, TEXT_STATE_LEN, own_caption)] if config.has_text_head else []
    if weight > 0:  # image-grounded generation term: the generation targets per shard, as in stage 2
        from seedtok.train.stage2 import init_generation_head

        target_cache = _target_cache(model, text_cache, args.extra.get("generation_target", "caption"))
        caches.append(target_cache)
        init_generation_head(model, _target_mean(data, args, opts, target_cache)[None])
    if feature_cache:
        caches.append(FeatureCache(feature_cache, "vit", model.vision, model.vision, "vit_features"))
    stream = make_stream(data, model.config.vision.image_size, args.batch_size, args.seed, opts.shuffle_buffer, caches,
                         need_pixels=not feature_cache)
    tok = None if config.has_text_head else bert_tokenizer()

    def featurize(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        vit = b["vit_features"] if "vit_features" in b else _no_grad(model.vision, b["pixel_values"], model.vision)
        out = {"vit_features": vit} if weight <= 0 else {"vit_features": vit, "target": b["target"].float()}
        if config.has_text_head:
            return {**out, "text_states": b["text_states"].float(), "text_mask": b["text_mask"].long()}
        ids, mask = tokenize(b["caption"], min(MAX_TEXT_LEN, config.max_text_len), tok)
        return {**out, "input_ids": ids, "attention_mask": mask}

    run_info = {"stage": "stage1", "config": model.config.to_dict(), **opts.identity()}
    return fit(module, _batches(stream, featurize, opts), args, run_info, clamp_temperature(module), acc)


def _target_cache(model: SeedTokenizer, text_cache: str, target: str) -> TextStateCache:
    """Per-shard cache of the generation targets: MiniLM states of the canonical or own caption."""
    if model.config.generation_dim != 384:
        raise TrainingError(f"streaming regresses MiniLM states (384-d); the preset wants {model.config.generation_dim}")
    caption_fn = canonical_caption if target == "canonical" else own_caption
    return TextStateCache(text_cache, model.config.generation_len, caption_fn, states_as="target", mask_as="target_mask")


def _target_mean(data: str, args: TrainArgs, opts: StreamOptions, cache: TextStateCache, n: int = 1024) -> torch.Tensor:
    """Mean target state over the stream's first ``n`` samples as one process would read them
    (the same on every rank): the streaming stand-in for the whole-set mean of
    :func:`~seedtok.train.stage2.init_generation_head`."""
    stream = make_stream(data, 8, min(n, 256), args.seed, opts.shuffle_buffer, [cache], need_pixels=False)
    total, count = None, 0
    for b in stream:
        t = b["target"].float()
        total = t.sum(0) if total is None else total + t.sum(0)
        count += len(t)
        if count >= n:
            break
    return total / count  # (L, G)


def stream_stage2(model: SeedTokenizer, data: str, args: TrainArgs, opts: StreamOptions, text_cache: str,
                  target: str, reinit: bool, health_every: int, feature_cache: str | None = None):
    """Stage 2 over shards: frozen ViT + Causal Q-Former per batch (or cached per shard), the
    generation targets' MiniLM states per shard. Returns (loop summary, trained module)."""
    from seedtok.train.codebook import CodebookMonitor
    from seedtok.train.stage1 import TEXT_STATE_LEN
    from seedtok.train.stage2 import DEFAULT_WEIGHTS, init_generation_head, loss_weights, prepare_stage2

    config = model.config
    weights = loss_weights(args.extra.get("loss_weights", DEFAULT_WEIGHTS))
    target_cache = _target_cache(model, text_cache, target)
    caches: list[Any] = [target_cache]
    if weights[3] > 0 and config.qformer.has_text_head:
        caches.append(TextStateCache(text_cache, TEXT_STATE_LEN, own_caption))
    if args.extra.get("init_generation_head", True):
        init_generation_head(model, _target_mean(data, args, opts, target_cache)[None])
    acc = make_accelerator(args)
    torch.manual_seed(args.seed)  # the new heads' init must not depend on what ran before in this process
    module = prepare_stage2(model, None, weights)
    frozen = torch.nn.ModuleList([model.vision, model.ln_vision, model.qformer]).to(acc.device)
    if feature_cache:
        caches.append(FeatureCache(feature_cache, "causal", frozen, model.causal_embeddings, "causal_embeds"))
    stream = make_stream(data, config.vision.image_size, args.batch_size, args.seed, opts.shuffle_buffer, caches,
                         need_pixels=not feature_cache)
    tok = None
    if weights[3] > 0 and not config.qformer.has_text_head:
        from seedtok.text import bert_tokenizer

        tok = bert_tokenizer()

    def featurize(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        causal = b["causal_embeds"] if "causal_embeds" in b else _no_grad(model.causal_embeddings, b["pixel_values"], frozen)
        out = {"causal_embeds": causal, "target": b["target"].float()}
        if weights[3] > 0:
            out["text_feats"] = _text_feats(model, b, tok)
        return out

    monitor = CodebookMonitor(module.quantizer, config.num_tokens, args.seed, acc, reinit, health_every)
    run_info = {"stage": "stage2", "config": config.to_dict(), "reinit": reinit, "health_every": health_every,
                **opts.identity()}
    summary = fit(module, _batches(stream, featurize, opts), args, run_info, monitor, acc)
    summary["codebook"] = monitor.last_report
    steps = int(args.extra.get("generation_steps", 0))
    if steps:  # the generation phase reads the now fixed codes, computed per batch
        from seedtok.train.stage2 import dequantized_codes, train_generation_phase

        def codes(b: dict[str, Any]) -> dict[str, torch.Tensor]:
            f = featurize(b)
            return {"codes_up": dequantized_codes(model, f["causal_embeds"]), "target": f["target"],
                    "target_mask": b["target_mask"]}

        stream = make_stream(data, config.vision.image_size, args.batch_size, args.seed + 1, opts.shuffle_buffer,
                             caches, need_pixels=not feature_cache)
        summary["generation_phase"] = train_generation_phase(model, _batches(stream, codes, opts), args, steps, acc)
    return summary, module


@torch.no_grad()
def _text_feats(model: SeedTokenizer, b: dict[str, Any], tok: Any) -> torch.Tensor:
    from seedtok.text import tokenize
    from seedtok.train.stage1 import MAX_TEXT_LEN

    config = model.qformer.config
    if config.has_text_head:
        inputs = {"text_states": b["text_states"].float(), "text_mask": b["text_mask"].long()}
    else:
        ids, mask = tokenize(b["caption"], min(MAX_TEXT_LEN, config.max_text_len), tok)
        inputs = {"input_ids": ids, "attention_mask": mask}
    dev = next(model.qformer.parameters()).device
    return model.qformer.text_embedding({k: v.to(dev) for k, v in inputs.items()})


def stream_encoder(module: torch.nn.Module, config: Any, data: str, args: TrainArgs, opts: StreamOptions,
                   text_cache: str, clip_weight: float, after_step) -> dict[str, Any]:
    """Stage 0a over shards: pixels + per-cell labels from each sample's scene (+ MiniLM states)."""
    from seedtok.eval.probe import cell_labels

    caches = [TextStateCache(text_cache, config.generation_len, own_caption)] if clip_weight > 0 else []
    stream = make_stream(data, config.vision.image_size, args.batch_size, args.seed, opts.shuffle_buffer, caches)

    def featurize(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        if any(not isinstance(s, dict) for s in b["scene"]):
            raise TrainingError("stand-in encoder pretraining needs scene metadata (a shapes-world dataset)")
        out = {"pixel_values": b["pixel_values"], "cell_labels": cell_labels(b["scene"])}
        if clip_weight > 0:
            out.update(text_states=b["text_states"].float(), text_mask=b["text_mask"].long())
        return out

    run_info = {"stage": "encoder", "config": config.to_dict(), **opts.identity()}
    return fit(module, _batches(stream, featurize, opts), args, run_info, after_step)


def stream_decoder(data: str, args: TrainArgs, opts: StreamOptions, text_cache: str, length: int = 32,
                   n_mean: int = 1024) -> tuple[StreamBatches, torch.Tensor]:
    """Stage 0b's data over shards: ``{"pixels" uint8, "states" (B, length, 384)}`` batches, and the
    mean caption state over the stream's first ``n_mean`` samples (the one-step objective's
    shrink target; in memory it is the whole set's mean)."""
    from seedtok.config import CLIP_MEAN, CLIP_STD
    from seedtok.decode.data import to_uint8

    cache = TextStateCache(text_cache, length, own_caption, states_as="states", mask_as=None)
    first = make_stream(data, 8, min(n_mean, 256), args.seed, opts.shuffle_buffer, [cache], need_pixels=False)
    total, count = None, 0
    for b in first:
        total = b["states"].float().sum(0) if total is None else total + b["states"].float().sum(0)
        count += len(b["states"])
        if count >= n_mean:
            break
    stream = make_stream(data, 64, args.batch_size, args.seed, opts.shuffle_buffer, [cache])

    def featurize(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"pixels": to_uint8(b["pixel_values"], CLIP_MEAN, CLIP_STD), "states": b["states"]}

    return _batches(stream, featurize, opts), total / count
