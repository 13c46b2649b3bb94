"""The weights a graph's links carry, computed from one version's stored tensors.

A weight layer names its tensors and the exact affine maps folded into them (METRICS.md
section 9): BatchNorm in eval mode and post-norm gains act on the nodes the links enter
(`W' = diag(s) W`, `b' = s b + t`); pre-norm LayerNorm/RMSNorm gains act on the nodes the
links read (`W' = W diag(g)`, `b' = b + W beta`); a map without a shift (RMSNorm, or one whose
shift another layer entering the same nodes adds) gives no bias. A fused qkv (or an RNN's
stacked gates) is a row slice of one stored matrix, or a slice of every period of rows (q, k
and v stored head by head). Identity links (residual additions, attention's v -> o)
are a diagonal, kept as its vector. Average pooling is a fixed depthwise kernel. The graph call
(graph_pass.py) folds the float32 layers it reads by the same rules, in the same order
(graph_fold.py): a change here is a change there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import prod
from typing import Mapping

import torch


@dataclass(frozen=True)
class Affine:
    """x -> scale * x + shift per node: a norm's gain and bias, or BatchNorm's running statistics
    (`scale = gain / sqrt(var + eps)`, `shift = bias - mean * scale`). `with_shift` is False on all
    but one of several weight layers entering the same nodes: the shift is added once."""

    gain_key: str | None = None
    shift_key: str | None = None
    mean_key: str | None = None
    var_key: str | None = None
    eps: float = 0.0
    with_shift: bool = True
    gain_offset: float = 0.0  # a gain stored as its difference from one: Gemma's `x * (1 + w)`
    factor: float = 1.0  # a constant the nodes are multiplied by: Granite's residual_multiplier
    per: int = 1  # nodes each stored value acts on: a feature map's channel, on links that enter its every position
    start: int = 0  # the first node the links enter, of those the map acts on: a part of a concatenation
    stored_rows: bool = False  # one value per row of a fused weight, folded before a split (LeViT's qkv BatchNorm)

    @property
    def shifts(self) -> bool:
        """Does it add a shift (a norm's bias, BatchNorm's statistics)? RMSNorm's gain alone, or
        a map whose shift another layer entering the same nodes adds, gives the links no bias."""
        return self.with_shift and (self.shift_key is not None or self.var_key is not None)

    @property
    def given(self) -> bool:
        """Does torch compute its scale and shift for the graph call (graph_fold.py)?"""
        return self.var_key is not None or self.gain_offset != 0 or self.factor != 1 or self.per != 1

    def keys(self) -> list[str]:
        return [k for k in (self.gain_key, self.shift_key, self.mean_key, self.var_key) if k is not None]

    def scale_shift(self, tensors: Mapping, size: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        read = lambda key, fill: (  # noqa: E731
            tensors[key].to(dtype).reshape(-1).repeat_interleave(self.per)[self.start:self.start + size] if key
            else torch.full((size,), fill, dtype=dtype))
        scale = (read(self.gain_key, 1.0) + self.gain_offset) * self.factor
        shift = read(self.shift_key, 0.0)
        if self.var_key is not None:
            scale = scale / torch.sqrt(read(self.var_key, 1.0) + self.eps)
            shift = shift - read(self.mean_key, 0.0) * scale
        return scale, shift if self.with_shift else torch.zeros_like(shift)


@dataclass(frozen=True)
class Folded:
    """A weight layer's links as its stored weight with the scales folded into them:
    `diag(row_scale) weight diag(col_scale)` (None: no scale; identity links: both per link), and
    the bias with every shift folded in. Kept apart, a pass over the weight can fold them as it
    reads (fused_sums.py) instead of copying the weight first."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    row_scale: torch.Tensor | None = None
    col_scale: torch.Tensor | None = None
    # the shift of the norms the links read: `diag(row_scale) weight read_shift` belongs to the
    # bias too, left to whoever reads the weight, so one read serves both (fused_sums.py)
    read_shift: torch.Tensor | None = None

    def bias_size(self) -> int:
        """The length of the full bias (0: none)."""
        if self.read_shift is not None:
            return self.weight.shape[0]
        return 0 if self.bias is None else self.bias.numel()

    def full_bias(self) -> torch.Tensor | None:
        """The bias with the read shift folded in."""
        if self.read_shift is None:
            return self.bias
        shifted = self.weight @ self.read_shift
        if self.row_scale is not None:
            shifted = shifted * self.row_scale
        return shifted if self.bias is None else self.bias + shifted

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) as the links carry them."""
        weight = self.weight
        if self.col_scale is not None:
            weight = weight * self.col_scale
        if self.row_scale is not None:
            weight = weight * self.row_scale.reshape(-1, *([1] * (weight.dim() - 1)))
        return weight, self.full_bias()


def folded(layer, tensors: Mapping, channels: int, maps: dict | None = None) -> Folded:
    """The weight layer's stored weight, the scales to fold into it and its bias. `channels`: the
    input channels of a pooling layer (its kernel is fixed, not stored). `maps` keeps each affine
    map's (scale, shift) across the layers of one version: a norm is read by several layers (q, k,
    v and a residual)."""
    maps = {} if maps is None else maps
    if layer.kind.startswith("avgpool"):
        kernel = torch.full((channels, 1, *layer.kernel), 1.0 / prod(layer.kernel), dtype=torch.float64)
        return Folded(kernel, None)
    weight = _base_weight(layer, tensors, channels)
    dtype = weight.dtype if weight.dtype in (torch.float32, torch.float64) else torch.float32
    weight = _as(weight, dtype)
    bias = None
    for key in layer.bias_keys:
        part = _rows(_as(tensors[key], dtype).reshape(-1), layer)
        bias = part if bias is None else bias + part
    identity = layer.kind == "identity"
    col_scale = row_scale = read_shift = None
    for affine in reversed(layer.in_affines):  # the links read g * x + beta, of the last map applied
        gain, beta = _scale_shift(maps, affine, tensors, _read_nodes(layer, weight), dtype)
        if identity and layer.repeat > 1:  # each source read by several links (grouped-query attention)
            sources = layer.identity_sources()
            gain, beta = gain[sources], beta[sources]
        if col_scale is not None:  # beta is read through the gains already folded
            beta = beta * col_scale
        if identity and affine.shifts:  # a vector: folded now
            bias = weight * beta if bias is None else bias + weight * beta
        elif affine.shifts:  # W beta: a read of the whole weight, left to the pass over it
            read_shift = beta if read_shift is None else read_shift + beta
        col_scale = gain if col_scale is None else col_scale * gain
    for affine in layer.out_affines:  # the nodes entered become s * y + t
        if affine.stored_rows:  # the layer's rows of it
            rows = tensors[layer.weight_key].shape[1 if layer.transposed else 0]
            scale, shift = (_rows(v, layer) for v in _scale_shift(maps, affine, tensors, rows, dtype))
        else:
            scale, shift = _scale_shift(maps, affine, tensors, weight.shape[0], dtype)
        row_scale = scale if row_scale is None else row_scale * scale
        if affine.shifts:
            bias = shift if bias is None else torch.addcmul(shift, bias, scale)
        elif bias is not None:
            bias = bias * scale
    return Folded(weight, bias, row_scale, col_scale, read_shift)


def _as(tensor: torch.Tensor, dtype) -> torch.Tensor:
    # most tensors are in the type already: a call of .to() costs more than this test
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _scale_shift(maps: dict, affine: Affine, tensors: Mapping, size: int, dtype):
    key = (id(affine), size, dtype)  # the topology's own objects: hashing their fields cost more
    found = maps.get(key)
    if found is None:
        found = maps[key] = affine.scale_shift(tensors, size, dtype)
    return found


def _read_nodes(layer, weight) -> int:
    return layer.identity_reads if layer.kind == "identity" else weight.shape[-1]


def _base_weight(layer, tensors: Mapping, channels: int) -> torch.Tensor:
    if layer.kind == "identity":  # as precise as the maps folded into them (a float64 model's)
        maps = [tensors[key].dtype for affine in (*layer.in_affines, *layer.out_affines) for key in affine.keys()]
        return _ones(layer.size, torch.float64 if torch.float64 in maps else torch.float32)
    weight = tensors[layer.weight_key]
    if layer.transposed:  # stored (in, out), as GPT-2's Conv1D keeps it
        weight = weight.t()
    if layer.is_conv and weight.dim() == 2:  # a Linear over a feature map's channels: a 1x1 kernel
        weight = weight.reshape(*weight.shape, *[1] * (len(layer.in_shape) - 1))
    return _rows(weight, layer)


def _rows(tensor: torch.Tensor, layer) -> torch.Tensor:
    """The stored rows the layer reads: one run, or a run in every period (a gather: a copy)."""
    if layer.rows is None:
        return tensor
    start, stop = layer.rows
    if not layer.row_period:
        return tensor[start:stop]
    rest = tensor.shape[1:]
    return tensor.reshape(-1, layer.row_period, *rest)[:, start:stop].reshape(-1, *rest)


@functools.lru_cache(maxsize=256)
def _ones(size: int, dtype) -> torch.Tensor:
    """Identity links' weights before folding; shared, so never written in place."""
    return torch.ones(size, dtype=dtype)


def links_have_bias(layer) -> bool:
    """Do the layer's links come with a bias: stored, or a shift folded in?"""
    return bool(layer.bias_keys) or any(affine.shifts for affine in (*layer.in_affines, *layer.out_affines))


def needed_keys(layer) -> list[str]:
    keys = [layer.weight_key] if layer.weight_key else []
    keys += list(layer.bias_keys)
    for affine in (*layer.in_affines, *layer.out_affines):
        keys += affine.keys()
    return keys
