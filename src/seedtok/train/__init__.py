"""Training of the SEED tokenizer (paper sec. 3.1): stage 0a stand-in encoder (tiny world),
stage 1 Causal Q-Former, stage 2 codebook + de-tokenizer targets, on ``accelerate``."""

from seedtok.train.core import TrainArgs, TrainingError

__all__ = ["TrainArgs", "TrainingError"]
