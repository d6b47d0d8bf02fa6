import collections.abc
from itertools import repeat
import torch
from torch import nn
trunc_normal_ = nn.init.trunc_normal_
def to_2tuple(x):
    return tuple(x) if isinstance(x, collections.abc.Iterable) else tuple(repeat(x, 2))
def drop_path(x, drop_prob=0.0, training=False):
    assert drop_prob == 0.0 or not training
    return x
class DropPath(nn.Module):
    def __init__(self, drop_prob=None):
        super().__init__(); self.drop_prob = drop_prob
    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)
