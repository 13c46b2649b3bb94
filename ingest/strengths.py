"""Node strengths of one weight layer, vectorised (METRICS.md section 3).

Dense layers here are the GPU's and half precision's (float layers on the CPU take the compiled
pass of fused_sums.py): read in row blocks sized to stay in cache (on CUDA: to bound device
memory), each block gives its row sums, adds to the column sums and to the moments of the link
weights. Conv strengths come from two convolutions over all-ones inputs: the graph is never
built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

BLOCK_ELEMENTS = 1 << 20  # measured: 1M floats (4 MB) per block is fastest on a 16 MB L3


@dataclass(slots=True)
class Moments:
    """Exact running moments and extremes of a set of numbers (float64 accumulators)."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, block: torch.Tensor, total=None) -> None:
        """Adds a block of values; `total` is their sum when the caller already has it."""
        flat = block.reshape(-1)
        if flat.numel() == 0:
            return
        low, high = torch.aminmax(flat)
        self.count += flat.numel()
        self.total += float(flat.sum() if total is None else total)
        self.squares += float(torch.dot(flat, flat))
        self.low = min(self.low, float(low))
        self.high = max(self.high, float(high))

    @classmethod
    def of_vector(cls, values: np.ndarray) -> "Moments":
        """The moments of a small vector, in one compiled call (numpy takes five, torch more)."""
        from .fused_sums import vector_moments

        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
        return cls(values.size, *vector_moments(values.reshape(-1))) if values.size else cls()

    def merged(self, other: "Moments") -> "Moments":
        return Moments(self.count + other.count, self.total + other.total,
                       self.squares + other.squares, min(self.low, other.low), max(self.high, other.high))

    @property
    def finite(self) -> bool:
        return (math.isfinite(self.total) and math.isfinite(self.squares) and math.isfinite(self.low)
                and math.isfinite(self.high))

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def std(self) -> float:
        return max(self.squares / self.count - self.mean ** 2, 0.0) ** 0.5


def _as_float(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    tensor = tensor.to(device, non_blocking=True)
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def dense_strengths(weight: torch.Tensor, bias: torch.Tensor | None, device: torch.device,
                    block_elements: int = BLOCK_ELEMENTS):
    """Returns (in-strength of outputs incl. bias, out-strength of inputs, weight moments).
    The weight moves to `device` one block of rows at a time: memory is bounded by the block."""
    out_features, in_features = weight.shape
    rows = max(1, block_elements // max(in_features, 1))
    row_sums = []
    col_sums = None
    moments = Moments()
    for start in range(0, out_features, rows):
        block = _as_float(weight[start:start + rows], device)
        rows_part = block.sum(1)
        part = block.sum(0)
        col_sums = part if col_sums is None else col_sums.add_(part)
        row_sums.append(rows_part)
        moments.add(block, total=rows_part.sum())
    s_in = torch.cat(row_sums)
    if bias is not None:
        s_in = s_in + _as_float(bias, device)
    return s_in, col_sums, moments


def conv_strengths(weight: torch.Tensor, bias: torch.Tensor | None, in_shape: tuple[int, ...], *,
                   stride, pads, dilation, groups: int, device: torch.device,
                   paper_in_strength: bool = False):
    """In- and out-strengths of a conv layer's pixel-level graph, plus the edge count.

    out-strength of input node (c, *pos): the gradient of sum(conv(x)) with respect to x
    (a transposed conv with the right output padding), i.e. the kernel entries of every
    output position whose window covers that node.
    in-strength of output node (c', *pos'): conv of an all-ones input (padding contributes
    nothing: padding positions are not nodes) plus the bias; with `paper_in_strength` the
    whole kernel sum at every position, as the authors' code does (counts padding edges).
    pads: (before, after) per spatial dimension; the input is padded with zeros explicitly, as
    torch's conv pads only evenly.
    """
    dims = len(in_shape) - 1
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    conv_input_grad = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input,
                       3: torch.nn.grad.conv3d_input}[dims]
    kernel = _as_float(weight, device)
    options = dict(stride=stride, dilation=dilation)
    ones = F.pad(torch.ones((1, *in_shape), dtype=kernel.dtype, device=device),
                 [side for pair in reversed(pads) for side in pair])  # F.pad lists the last dimension first
    exact_in = conv(ones, kernel, None, groups=groups, **options)[0]
    real = tuple(slice(before, before + size) for (before, _), size in zip(pads, in_shape[1:]))
    s_out = conv_input_grad(ones.shape, kernel, torch.ones_like(exact_in)[None], groups=groups, **options)
    s_out = s_out[(..., *real)]
    if paper_in_strength:
        per_channel = kernel.sum(dim=tuple(range(1, kernel.dim())))
        s_in = per_channel.reshape(-1, *([1] * dims)).expand_as(exact_in)
    else:
        s_in = exact_in
    bias_per_node = None
    if bias is not None:
        bias_per_node = _as_float(bias, device).reshape(-1, *([1] * dims)).expand_as(exact_in)
        s_in = s_in + bias_per_node
        bias_per_node = bias_per_node.reshape(-1)
    # real (non-padding) taps per output position, from one channel; every channel pair repeats it
    taps = conv(ones[:, :1], torch.ones((1, 1, *kernel.shape[2:]), dtype=kernel.dtype, device=device),
                None, **options).sum()
    edges = int(taps.item()) * kernel.shape[0] * kernel.shape[1]
    moments = Moments()
    moments.add(kernel.detach())
    return s_in.reshape(-1), s_out.reshape(-1), bias_per_node, edges, moments
