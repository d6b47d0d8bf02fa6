"""What a Q-Former can read from frozen image features: the per-cell-average linear probe.

A Q-Former reads the frozen ViT through cross-attention, i.e. weighted *averages* of patch
tokens (paper sec. 3.1). So the check of a stand-in image encoder is not a probe on single
tokens but on tokens averaged over each cell of the shapes world's 3x3 grid: a linear
classifier of the cell's colour, shape and size (each with an "empty" class) trained on the
train split and scored per object on another split. Score: the fraction of objects whose
colour, shape and size are all right (DESIGN.md sec. 3). The same cell labels are the
training targets of the stand-in encoder (``seedtok.train.encoder``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

GRID = 3
ATTRIBUTES = ("color", "shape", "size")


def attribute_values() -> dict[str, list[str]]:
    from seedtok.data.scene import COLORS, SHAPES, SIZES

    return {"color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES)}


def num_classes() -> tuple[int, ...]:
    """Classes per attribute, the last one of each being "empty cell"."""
    return tuple(len(v) + 1 for v in attribute_values().values())


def cell_labels(scenes: Sequence[Any]) -> torch.Tensor:
    """Scenes (dicts or :class:`Scene`) -> (N, 9, 3) long: colour, shape, size index per grid
    cell in reading order; ``len(values)`` marks an empty cell."""
    from seedtok.data.scene import POSITIONS, Scene

    values = attribute_values()
    out = torch.tensor([len(values[a]) for a in ATTRIBUTES]).repeat(len(scenes), GRID * GRID, 1)
    for i, scene in enumerate(scenes):
        scene = Scene.from_dict(scene) if isinstance(scene, Mapping) else scene
        for obj in scene.objects:
            cell = POSITIONS.index(obj.position)
            out[i, cell] = torch.tensor([values[a].index(getattr(obj, a)) for a in ATTRIBUTES])
    return out


def patch_cells(image_size: int, patch_size: int) -> torch.Tensor:
    """(P,) grid cell (0..8, reading order) that covers each patch's centre."""
    n = image_size // patch_size
    centre = (torch.arange(n) + 0.5) * patch_size  # pixels
    band = (centre * GRID / image_size).floor().long().clamp(max=GRID - 1)  # (n,)
    return (band[:, None] * GRID + band[None, :]).flatten()


def cell_average(tokens: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Patch tokens (N, P, C) -> (N, 9, C), the mean of the tokens whose centre is in each cell."""
    onehot = F.one_hot(cells, GRID * GRID).float()  # (P, 9)
    return torch.einsum("npc,pk->nkc", tokens, onehot / onehot.sum(0, keepdim=True))


def fit_probe(x: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 0.05, seed: int = 0) -> torch.nn.Linear:
    """Multinomial logistic regression, one linear map for all attributes (features
    standardised by the caller): x (M, C), y (M, 3) -> Linear(C, sum(classes))."""
    torch.manual_seed(seed)
    sizes = num_classes()
    head = torch.nn.Linear(x.shape[1], sum(sizes))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = sum(F.cross_entropy(logits, y[:, j]) for j, logits in enumerate(head(x).split(sizes, dim=1)))
            loss.backward()
            opt.step()
    return head


@torch.no_grad()
def probe_scores(head: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Per-object accuracy (non-empty cells) of each attribute and of all three at once."""
    pred = torch.stack([logits.argmax(1) for logits in head(x).split(num_classes(), dim=1)], dim=1)  # (M, 3)
    return _scores(pred, y)


def _scores(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    empty = torch.tensor([n - 1 for n in num_classes()])
    objects = (y != empty).all(1)
    ok = (pred == y)[objects]
    out = {a: float(ok[:, j].float().mean()) for j, a in enumerate(ATTRIBUTES)}
    out["color_shape_size"] = float(ok.all(1).float().mean())
    out["empty_cells"] = float((pred == y)[~objects].all(1).float().mean()) if (~objects).any() else 1.0
    out["objects"] = int(objects.sum())
    return out


def cell_probe(train_feats: torch.Tensor, train_scenes: Sequence[Any], test_feats: torch.Tensor,
               test_scenes: Sequence[Any], steps: int = 300) -> dict[str, float]:
    """Per-cell features (N, 9, C) of two splits -> probe scores on the second."""
    xtr, xte = train_feats.flatten(0, 1).float(), test_feats.flatten(0, 1).float()
    mean, std = xtr.mean(0), xtr.std(0).clamp(min=1e-6)
    head = fit_probe((xtr - mean) / std, cell_labels(train_scenes).flatten(0, 1), steps)
    return probe_scores(head, (xte - mean) / std, cell_labels(test_scenes).flatten(0, 1))


def scene_probe(train_feats: torch.Tensor, train_scenes: Sequence[Any], test_feats: torch.Tensor,
                test_scenes: Sequence[Any], steps: int = 300, batch: int = 512, seed: int = 0) -> dict[str, float]:
    """Whole-scene linear probe: one feature vector per image (N, C) -> every grid cell's colour /
    shape / size (one linear map to 9 x classes, Adam, minibatches). What the 32 causal
    embeddings (flattened) keep of a scene, which the de-tokenizer must rebuild; per-object scores
    on the test set as in :func:`probe_scores`."""
    xtr, xte = train_feats.flatten(1).float(), test_feats.flatten(1).float()
    mean, std = xtr.mean(0), xtr.std(0).clamp(min=1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ytr, yte = cell_labels(train_scenes), cell_labels(test_scenes)  # (N, 9, 3)
    sizes = num_classes()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = torch.nn.Linear(xtr.shape[1], 9 * sum(sizes))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(0, len(xtr), (min(batch, len(xtr)),), generator=g)
            logits = head(xtr[idx]).view(len(idx), 9, -1).split(sizes, dim=-1)
            loss = sum(F.cross_entropy(l.reshape(-1, l.shape[-1]), ytr[idx][..., j].reshape(-1)) for j, l in enumerate(logits))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        logits = head(xte).view(len(xte), 9, -1).split(sizes, dim=-1)
    return _scores(torch.stack([l.argmax(-1) for l in logits], dim=-1).flatten(0, 1), yte.flatten(0, 1))
