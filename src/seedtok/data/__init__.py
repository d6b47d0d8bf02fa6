"""Data: image-text datasets (webdataset shards, folders, JSONL), transforms, and the
built-in shapes world (:mod:`seedtok.data.shapes`). DESIGN.md section 4."""

from seedtok.data.datasets import (
    ImageTextDataset,
    ImageTextLoader,
    SampleError,
    SkipCounter,
    collate_samples,
    decode_sample,
    image_text_loader,
)
from seedtok.data.shards import ShardWriter, pack, write_shards
from seedtok.data.transforms import EvalTransform, TrainTransform, clean_caption, eval_transform, train_transform

__all__ = [
    "ImageTextDataset", "ImageTextLoader", "SampleError", "SkipCounter", "collate_samples", "decode_sample",
    "image_text_loader", "ShardWriter", "pack", "write_shards", "EvalTransform", "TrainTransform",
    "clean_caption", "eval_transform", "train_transform",
]  # fmt: skip
