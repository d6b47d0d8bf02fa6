"""Fast CPU inference for encoding: int8 weights for the frozen ViT, built without an fp32 copy.

The ViT is ~95% of SEED-1's encode FLOPs (EVA ViT-g, paper sec. 3.1) and is frozen, so each of
its Linear layers becomes an :class:`Int8Linear`: int8 weights with one symmetric scale per
output channel, activations quantized per call (dynamic, one scale per tensor), int32
accumulation, fp32 out. The Q-Former, codebook and everything after stay fp32, so codes can
differ from fp32 only where the ViT's round-off moves a query across a nearest-code boundary;
``seedtok bench encode --int8`` measures how often.

Memory: :func:`load_int8` reads ``model.safetensors`` tensor by tensor and quantizes each ViT
weight as it arrives, so the process never holds the fp32 ViT (1.0 B parameters, 4 GB for
ViT-g) — only one fp32 layer at a time. :func:`quantize_vision_` converts a model already in
memory, layer by layer, freeing each fp32 weight as it goes.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from seedtok.models import SeedTokenizer
from seedtok.models.layers import FusedSelfAttention, Mlp


# Per-call activation quantization uses torch's quantized-tensor API, which torch marks deprecated.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated")


def _has_onednn_int8() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")


def _quantize_u7(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """Dynamic per-tensor activation quantization to 7-bit unsigned integers (range [0, 127],
    the range always holding 0, as torch's ``reduce_range``): returns the plain uint8 tensor, its
    scale and zero point. One ``aminmax`` pass and one quantize pass; the uint8 tensor is a view of
    the quantized tensor's storage (``int_repr`` would copy it element by element, which cost as
    much as the quantization itself on ViT-g's fc2 input)."""
    lo, hi = torch.aminmax(x)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 127.0
    if not scale > 0:  # an all-zero input (or a NaN, which the fp32 path would carry as well)
        scale = 1.0
    zero = int(min(max(round(-lo / scale), 0), 127))
    q = torch.quantize_per_tensor(x.contiguous(), scale, zero, torch.quint8)
    raw = torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.shape, q.stride())
    return raw, scale, zero


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` int8 (symmetric, one scale per output channel) and ``x``
    quantized per call to 7-bit unsigned integers (one scale per tensor: 7 bits, so the AVX2
    u8 x s8 pair sums cannot saturate int16); int32 accumulation, fp32 out. (..., in) -> (..., out).
    CPU inference only.

    Weights are held once, in oneDNN's packed int8 layout (1.06x the int8 size). torch's
    ``quantized::linear_prepack`` for oneDNN keeps the unpacked int8 copy as well (2.0x), which
    would put an int8 ViT-g above 0.6x of the fp32 process; FBGEMM (1.1x) is the fallback
    where torch has no oneDNN, at a lower speed (1.6x fp32 at batch 8 vs oneDNN's 2.1x)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.gelu = gelu  # exact (erf) GELU applied to the output (fused into oneDNN's epilogue)
        w = weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)  # (out,)
        self.register_buffer("weight_scale", scale, persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone(), persistent=False)
        qweight = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)  # (out, in)
        self.onednn = _has_onednn_int8()
        if self.onednn:
            self._packed = torch.ops.onednn.qlinear_prepack(qweight, None)
            self._zero_points = torch.zeros(self.out_features, dtype=torch.long)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch marks its quantized-tensor API as deprecated
                q = torch._make_per_channel_quantized_tensor(qweight, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0)
            before = torch.backends.quantized.engine
            torch.backends.quantized.engine = "fbgemm"
            try:
                self._packed = torch.ops.quantized.linear_prepack(q, self.bias)
            finally:
                torch.backends.quantized.engine = before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.onednn:
            y = torch.ops.quantized.linear_dynamic(x, self._packed, True)
            return torch.ops.aten.gelu_(y) if self.gelu else y
        lead = x.shape[:-1]
        xq, scale, zero = _quantize_u7(x.reshape(-1, self.in_features))
        y = torch.ops.onednn.qlinear_pointwise(
            xq, scale, zero, self._packed, self.weight_scale, self._zero_points,
            self.bias, 1.0, 0, torch.float32, *(("gelu", [], "none") if self.gelu else ("none", [], "")))
        return y.view(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"
                + (", gelu" if self.gelu else ""))


def _vit_linears(vision: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent module, attribute, dotted name) of every Linear in the ViT blocks, in order."""
    out = []
    for name, module in vision.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.Linear):
                out.append((module, attr, f"{name}.{attr}" if name else attr))
    return out


def _folded_bias(parent: nn.Module, attr: str, bias: torch.Tensor | None) -> tuple[torch.Tensor | None, bool]:
    """EVA's q/v biases (``bias_mode='qv'``) go into the int8 layer's bias: one fused GEMM
    epilogue instead of a separate (B, N, 3C) add. Returns (bias, folded)."""
    if isinstance(parent, FusedSelfAttention) and attr == "qkv" and parent.bias_mode == "qv":
        return parent.qkv_bias().detach(), True
    return bias, False


def _replace(parent: nn.Module, attr: str, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    bias, folded = _folded_bias(parent, attr, bias)
    gelu = isinstance(parent, Mlp) and attr == "fc1"  # fc1 -> GELU as one GEMM with a GELU epilogue
    setattr(parent, attr, Int8Linear(weight, bias, gelu=gelu))  # Mlp.fc1_applies_gelu reads the flag
    if folded:  # the projection now carries the whole qkv bias
        del parent.q_bias, parent.v_bias
        parent.bias_mode = "qkv"


def quantize_vision_(model: SeedTokenizer) -> SeedTokenizer:
    """Swap the ViT's Linear layers for :class:`Int8Linear` in place, one layer at a time (each
    fp32 weight is freed once its int8 copy exists: peak = model + one int8 layer)."""
    model.eval().requires_grad_(False)
    for parent, attr, _ in _vit_linears(model.vision):
        old = getattr(parent, attr)
        _replace(parent, attr, old.weight, old.bias)
        del old
    return model


def int8_vision(model: SeedTokenizer, inplace: bool = False) -> SeedTokenizer:
    """A model whose ViT Linear layers run in int8 (a deep copy unless ``inplace``)."""
    import copy

    return quantize_vision_(model if inplace else copy.deepcopy(model))


def _fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() else t


def load_int8(directory: str | os.PathLike, verify: bool = True) -> SeedTokenizer:
    """``from_pretrained`` for int8 inference: the fp32 ViT weights are read one tensor at a time
    (plain reads, no memory map) and quantized on arrival, so peak memory is the int8 ViT + the
    fp32 rest + one fp32 layer. Same strict key and shape checks as ``from_pretrained``."""
    from seedtok.checkpoint import SafetensorsReader, check_state_shapes, open_pretrained

    model, weights = open_pretrained(directory, verify)  # built on the meta device
    linears = {f"vision.{name}": (parent, attr) for parent, attr, name in _vit_linears(model.vision)}
    with SafetensorsReader(weights) as reader:
        check_state_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, reader.shapes(), str(weights))
        rest = {k: _fp32(reader.read(k)) for k in reader.keys() if k.removesuffix(".weight") not in linears}
        for prefix, (parent, attr) in linears.items():
            if isinstance(parent, FusedSelfAttention) and attr == "qkv" and parent.bias_mode == "qv":
                base = prefix.rsplit(".", 1)[0]
                parent.q_bias = nn.Parameter(rest.pop(f"{base}.q_bias"), requires_grad=False)
                parent.v_bias = nn.Parameter(rest.pop(f"{base}.v_bias"), requires_grad=False)
            _replace(parent, attr, reader.read(f"{prefix}.weight"), rest.pop(f"{prefix}.bias", None))
    model.load_state_dict(rest, strict=False, assign=True)  # the key set was checked above
    left = [k for k, v in model.state_dict().items() if v.is_meta]
    if left:
        raise RuntimeError(f"{weights}: tensors not loaded {left[:5]}")  # a bug here, not in the file
    return model.eval().requires_grad_(False)


def sample_batch(size: int, batch: int) -> torch.Tensor:
    """``batch`` real photos (the bundled samples, shifted crops) preprocessed to ``size``."""
    from PIL import Image

    from seedtok.demo import SAMPLES
    from seedtok.image import normalize

    photos = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("*.png"))]
    out = []
    for i in range(batch):
        img = photos[i % len(photos)]
        s = 8 * (i // len(photos))
        out.append(normalize(img.crop((s, s, img.width - s, img.height - s)), size))
    return torch.stack(out)
