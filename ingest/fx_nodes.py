"""What the forward-pass walk (trace.py) knows about a torch.export graph: the families of aten
ops it treats alike, the values it tracks, and how to read a graph node's module, shape and
arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nngraph.errors import NNGraphError

from .folding import Affine

VIEWS = {"view", "reshape", "_unsafe_view", "transpose", "permute", "expand", "unsqueeze", "squeeze", "flatten",
         "contiguous", "clone", "alias", "detach", "t", "unflatten", "repeat_interleave", "_to_copy", "to",
         "lift_fresh_copy", "dropout", "feature_dropout", "alpha_dropout", "getitem", "type_as", "reshape_as",
         "view_as", "expand_as", "movedim", "swapaxes", "swapdims", "numpy_T", "dropout_", "feature_dropout_",
         "alpha_dropout_"}
SHAPED_LIKE = {"type_as", "reshape_as", "view_as", "expand_as"}  # the second value gives only its type or shape
# constants made in a value's shape (Swin's attention mask of shifted windows): no nodes
CONSTANT_LIKE = {"new_zeros", "new_ones", "new_full", "new_empty", "zeros_like", "ones_like", "full_like",
                 "empty_like", "rand_like", "randn_like"}
BATCH_NORMS = {"batch_norm": 7, "native_batch_norm": 7, "_native_batch_norm_legit_no_training": 6,
               "_native_batch_norm_legit": 7}  # op -> position of eps
NORMS = {"layer_norm": (2, 3), "native_layer_norm": (2, 3), "rms_norm": (2, None), "group_norm": (2, 3),
         "native_group_norm": (1, 2), "instance_norm": (1, 2)}  # op -> positions of gain and bias
CONV = {"conv1d", "conv2d", "conv3d", "convolution"}
AVG_POOLS = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
             "adaptive_avg_pool3d", "_adaptive_avg_pool2d"}
ATTENTION = {"scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention"}
MATMUL = {"matmul", "bmm", "mm", "einsum", "baddbmm"}
ARITHMETIC = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
SOFTMAX = {"softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax"}
# ops that move, pick, mask or zero-pad a node's values without changing them, or shift them by a
# number (`x + c`, `1 - x`): no activation
PICKS = {"select", "slice", "index", "index_select", "gather", "narrow", "roll", "flip", "masked_fill", "where", "pad",
         "constant_pad_nd", "rsub"} | ARITHMETIC
REDUCTIONS = {"mean", "sum", "var", "std", "var_mean", "amax", "amin", "norm", "linalg_vector_norm", "logsumexp"}
# ops that read a value through links or standardise it: whatever they are, not an activation
READS = {"linear", "addmm", "cat", "stack", "split", "split_with_sizes", "chunk", "unbind"} | CONV | MATMUL \
    | NORMS.keys() | BATCH_NORMS.keys() | AVG_POOLS | ATTENTION | REDUCTIONS
REASONS = {
    "max_pool": "max pooling selects by data: no fixed links, the graph is cut here",
    "pool": "this pooling has no fixed links (uneven windows, ceil mode or a divisor): the graph is cut here",
    "embedding": "an embedding is a lookup table indexed by token id, not links: its output is an input layer",
    "attention_only": "feeds only the attention pattern (q and k have in-links only): no links",
    "scores": "attention scores depend on the data: no fixed links",
    "regrouped": "read with its values regrouped into other nodes (a feature map as a sequence of its positions): "
                 "no fixed links, the graph is cut here",
    "product": "an elementwise product of node layers depends on the data: the graph is cut here",
    "head_norm": "a norm of each head on its own: its gain does not fold into per-node links, the graph is cut here",
    "standardise": "its per-sample standardisation has no weights and is left out; its gain is folded into the links "
                   "next to it (entering its nodes, or reading them directly)",
    "batch_norm": "BatchNorm in eval mode folded into the weight layer that feeds it",
    "batch_norm_kept": "BatchNorm kept as a pass-through (nothing to fold it into, or --batchnorm pass-through)",
    "batch_norm_read": "BatchNorm in eval mode, not next to the links entering its nodes: folded as a gain into the "
                       "links that read it (a Linear's, an identity's)",
    "gain_activated": "its gain acts before an activation, so it does not fold into the links after it: left out "
                      "of them",
    "learned_positions": "learned values of token positions (a class token, position embeddings): positions are "
                         "samples, not nodes, so they have no links: left out",
    "computed_weight": "its weight is computed in the forward pass (weight standardisation, a weight-norm "
                       "parametrisation), not stored as used: nngraph reads stored weights, the graph is cut here",
    "gain_map": "its gain is read by a convolution or pooling, which nngraph does not fold a gain into: left out of "
                "those links",
}
BLOCK = re.compile(r"^(.*?(?:^|\.)(?:layer\d*|layers|h|block|blocks|stages?|encoder\.layer|decoder\.layer)\.\d+)(?:\.|$)")


@dataclass(frozen=True)
class Ref:
    layer: int | None  # None: not created yet, see `root`
    root: object = None  # the graph node whose value becomes the layer on first use
    gains: tuple[Affine, ...] = ()  # pre-norm gains, folded into the links that read these nodes
    # the values passed an activation since the links entering the nodes: a gain or BatchNorm
    # applied now is not next to those links and does not fold into them
    activated: bool = False


@dataclass(frozen=True)
class Seq:
    layers: tuple[int, ...]
    time_dim: int


@dataclass(frozen=True)
class Parts:
    """The outputs of an op that returns several values (a split, a recurrent layer)."""

    values: tuple


@dataclass(frozen=True)
class Opaque:
    root: object
    layers: frozenset
    notes: tuple = ()  # (module path, kind, reason)


def operands(node) -> list:
    """The graph values among a node's arguments (not its numbers, shapes or lists)."""
    return [a for a in node.args if hasattr(a, "op")]


def op_name(node) -> str:
    return getattr(node.target, "_opname", None) or getattr(node.target, "__name__", str(node.target))


def module_label(node) -> tuple[str, str]:
    """(module path, module class) of the module a graph node came from."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return node.name, op_name(node)
    path, cls = list(stack.values())[-1]
    cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return path or node.name, cls_name.rsplit(".", 1)[-1]


def block_of(path: str) -> str:
    match = BLOCK.match(path)
    return match.group(1) if match else ""


def shape_of(node) -> tuple[int, ...]:
    value = node.meta.get("val")
    return tuple(int(s) for s in value.shape) if hasattr(value, "shape") else ()


def numel(shape) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def expand(value, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    return value * dims if len(value) == 1 else value


def conv_padding(padding, kernel, dilation, name: str):
    """Explicit padding as given; 'valid' and 'same' turned into sizes."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple(0 for _ in kernel)
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in totals):
            raise NNGraphError(f"layer {name}: padding='same' with an even kernel pads unevenly; use explicit padding")
        return tuple(t // 2 for t in totals)
    return padding
