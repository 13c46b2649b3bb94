"""A Topology from the forward pass: walk a torch.export graph in execution order.

Every value of the graph is, for the walk, one of:
- a `Ref` to a node layer (its nodes, possibly with a norm's gain still to fold into the
  links that read them), or to a not-yet-created layer (`layer` None: the model's input, an
  embedding's output), made on first use;
- a `Seq` of node layers, one per time step (a recurrent layer's output), or `Parts` (the
  values of an op with several outputs);
- an `Opaque` value: computed from node layers by something with no fixed links (max
  pooling, rotary embeddings, attention scores); it becomes a new "cut" layer when a weight
  layer reads it, and its reasons are listed as skipped;
- nothing (constants, masks, indices): no nodes.

The rules (METRICS.md section 9): Linear/Conv are weight layers (a Linear over the channels of
a feature map is a 1x1 convolution: node_layout.py finds which nodes a value holds; a conv over
the input's non-overlapping patches read as tokens is a Linear over one patch); a number
the nodes are multiplied by, when nothing else reads them, folds into the links entering them;
a norm (BatchNorm too) whose input nothing else reads (post-norm, a conv's BatchNorm) folds its
gain into the links entering those nodes, otherwise (pre-norm) into the links that read it; no
map folds across an activation (a gain read through one, or by a conv, is left out and
listed); average pooling is a fixed kernel; zeros padded by hand are the padding of the conv
reading them; a residual addition makes the fresh operand's nodes receive identity links from
the other operand; a product of two fresh layers (gated MLP) merges them into one layer with
both weight layers entering it; attention makes a new layer o with identity links from v (q
and k only set the pattern); concatenation places node layers side by side (learned tokens put
before a token sequence's positions keep its nodes: positions are samples); recurrent layers
unroll (recurrent.py).

The walk's parts: trace.py holds its state, the node layers and the ops that read through
weights; trace_gains.py the maps that fold; trace_joins.py the ops that join node layers;
trace_result.py the renumbered result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from nngraph.errors import NNGraphError

from .folding import Affine
from .fx_nodes import (ATTENTION, AVG_POOLS, BATCH_NORMS, CONSTANT_LIKE, CONV, MATMUL, NORMS, REASONS, REDUCTIONS,
                       SHAPED_LIKE, SOFTMAX, VIEWS, Opaque, Parts, Ref, Seq, block_of, conv_padding, expand,
                       module_label, numel, op_name, operands, shape_of)
from .fused_parts import SPLITS
from .network import Topology, WeightLayer
from .node_layout import channels_last_order, holds_channels_last, holds_tokens, placement, sample_order
from .recurrent import RECURRENT_OPS, unroll_op
from .trace_gains import Gains
from .trace_joins import Joins
from .trace_result import Finish
from .value_flow import only_into, pattern_only


@dataclass
class Walk(Gains, Joins, Finish):
    """One walk over one exported program (its parts: the module docstring)."""

    program: object
    fold_batch_norm: bool = True
    topology: Topology = field(default_factory=Topology)
    origin: dict = field(default_factory=dict)  # graph node -> Ref | Seq | Opaque
    created: dict = field(default_factory=dict)  # root graph node -> node-layer index
    alias: dict = field(default_factory=dict)  # merged node layer -> the layer that absorbed it
    head: dict = field(default_factory=dict)  # node layer -> the graph node that last produced it whole
    orders: dict = field(default_factory=dict)  # node layer -> its head's elements in (position, node) order
    born: dict = field(default_factory=dict)  # node layer -> the graph node that made it
    pending: dict = field(default_factory=dict)  # a pending gain's Affine -> ((module path, class) of its norm, values)
    padded: dict = field(default_factory=dict)  # a feature map padded with zeros -> (the map, F.pad's sizes)

    def __post_init__(self):
        signature = self.program.graph_signature
        self.params = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
        self.position = {node: number for number, node in enumerate(self.program.graph.nodes)}

    # --- node layers -------------------------------------------------------------------------
    def find(self, index: int) -> int:
        while index in self.alias:
            index = self.alias[index]
        return index

    def new_layer(self, name: str, kind: str, shape, node) -> int:
        index = self.topology.add_node_layer(name, kind, shape, block_of(name))
        self.head[index] = self.born[index] = node
        return index

    def layer_of(self, value, node, nodes: int, why: str, shape: tuple | None = None) -> int:
        """The node layer a weight op (or residual) reads: created from the input, an embedding or
        an opaque value on first use (shaped as `shape` if given), then shared by every reader of
        the same value."""
        ref = self.ref(value)
        if isinstance(ref, Ref) and ref.layer is not None:
            index = self.find(ref.layer)
            if self.topology.node_layers[index].nodes == nodes and not self.reordered(index, value):
                return index
            # read with another size, or its nodes in another order: views changed what a node is
            # (Swin's feature map read as a sequence of its positions, ShuffleNet's channel shuffle)
            ref = Opaque(value, frozenset({index}), (self.note(value, REASONS["regrouped"]),))
        cut = not isinstance(ref, Ref)
        root = ref.root if isinstance(ref, (Ref, Opaque)) else value
        if isinstance(ref, Opaque):
            for note in ref.notes:
                self.topology.skip(*note)
        if (root, nodes) not in self.created:
            first = not self.topology.node_layers
            kind = "cut" if cut and not first else "input"
            name = _input_name(root) if kind == "input" else f"before {why}"  # the model's input, or where it was cut
            self.created[root, nodes] = self.new_layer(name, kind, shape or self.node_shape(value, nodes), root)
        return self.created[root, nodes]

    def node_shape(self, value, nodes: int):
        shape = shape_of(value)
        return shape[1:] if numel(shape[1:]) == nodes else (nodes,)

    def ref(self, value) -> Ref | None:
        found = self.origin.get(value)
        if found is None and hasattr(value, "op") and self.is_data(value):
            return Ref(None, value)
        return found

    def is_data(self, node) -> bool:
        """A user input (not a parameter): the start of the graph."""
        return node.op == "placeholder" and node.name not in self.params

    def is_param(self, node) -> bool:
        return getattr(node, "op", None) == "placeholder" and node.name in self.params

    def fresh(self, index: int, *consumers) -> bool:
        """Does everything computed from this layer's nodes, as produced, flow only into the
        consumers (value_flow.only_into)? Then they may fold into its links."""
        head = self.head.get(index)
        if head is None or not any(w.dst == index for w in self.topology.weight_layers):
            return False
        return only_into(head, consumers, self.position, self.is_param)

    def placement(self, index: int, value) -> torch.Tensor | None:
        """Which of the layer's nodes each element of `value` holds (node_layout.placement), the
        value reached from the op that made the layer through ops on this layer's nodes alone."""
        chain, made = [], self.born.get(index)
        if made is None:  # a layer of an unrolled recurrence
            return None
        while value is not made:
            mine = [a for a in operands(value) if isinstance(self.origin.get(a), Ref)
                    and self.origin[a].layer is not None and self.find(self.origin[a].layer) == index]
            if not mine:
                return None
            chain.append((value, mine[0]))
            value = mine[0]
        return placement(made, chain[::-1], self.topology.node_layers[index].nodes, self.orders.get(index))

    def reordered(self, index: int, value) -> bool:
        """Does the value hold a feature map's nodes in an order of its own (views moved them)?"""
        if len(self.topology.node_layers[index].shape) < 2:
            return False
        place = self.placement(index, value)
        return place is not None and sample_order(place) is not None

    def channels_last(self, ref, x, channels: int) -> tuple[int, ...] | None:
        """The feature map's shape (C, *positions) when x is its nodes with the channels last and C
        == channels (ConvNeXt's `x.permute(0, 2, 3, 1)` before its Linear layers); else None."""
        if not isinstance(ref, Ref) or ref.layer is None or ref.gains:
            return None
        shape = self.topology.node_layers[self.find(ref.layer)].shape
        if len(shape) < 2 or shape[0] != channels:
            return None
        return shape if holds_channels_last(self.placement(self.find(ref.layer), x), shape) else None

    @functools.cached_property
    def pattern_only(self) -> dict:
        return pattern_only(self.program.graph)

    # --- weight layers -------------------------------------------------------------------------
    def add_weight_layer(self, layer: WeightLayer) -> None:
        self.topology.weight_layers.append(layer)

    def entering(self, index: int) -> list[int]:
        return [i for i, w in enumerate(self.topology.weight_layers) if self.find(w.dst) == index]

    # --- the walk ------------------------------------------------------------------------------
    def run(self) -> Topology:
        for node in self.program.graph.nodes:
            if node.op == "call_function":
                self.visit(node, op_name(node))
        for value in self.program.graph.output_node().all_input_nodes:  # cut after the last layer: listed too
            if isinstance(self.origin.get(value), Opaque):
                for note in self.origin[value].notes:
                    self.topology.skip(*note)
        if not self.topology.weight_layers:
            notes = [note for value in self.origin.values() if isinstance(value, Opaque) for note in value.notes]
            first = f" (first left out: {notes[0][0]}: {notes[0][2]})" if notes else ""
            raise NNGraphError(f"the model has no Linear or Conv layers with stored weights: nothing to turn into a "
                               f"graph{first}")
        return self.finish()

    def visit(self, node, op: str) -> None:
        tensors = operands(node)
        lists = [a for arg in node.args if isinstance(arg, (list, tuple)) for a in arg if hasattr(a, "op")]  # cat
        if "embedding" in op:  # token ids in, the data's first nodes out
            self.topology.skip(module_label(node)[0], "Embedding", REASONS["embedding"])
            self.origin[node] = Ref(None, node)
            return
        if node in self.origin or op.startswith("_assert") or op in CONSTANT_LIKE \
                or isinstance(node.meta.get("val"), torch.SymInt):
            return  # a part of a fused layer, read with the first of its sibling selects; a check; a constant
        inputs = [self.ref(a) for a in tensors + lists]
        if not any(inputs):
            return  # constants, masks, positions: no nodes
        if op in RECURRENT_OPS:
            return self.recurrent(node, op)
        if op in ("linear", "addmm", "mm", "matmul") and (read := self.linear_read(node, op)) is not None:
            return self.linear(node, op, *read)
        if op in CONV and self.is_param(node.args[1]):
            return self.conv(node, op)
        if (op in CONV or op == "linear") and self.ref(node.args[1]) is None:  # a weight computed, not stored
            return self.opaque(node, [node.args[0]], REASONS["computed_weight"])
        if op in BATCH_NORMS:
            return self.batch_norm(node, op)
        if op in NORMS:
            return self.norm(node, op)
        if op in REDUCTIONS:
            return self.reduction(node, op)
        if op in AVG_POOLS:
            return self.avg_pool(node, op)
        if op in ATTENTION:
            return self.attention(node, node.args[0], node.args[1], node.args[2])
        if op in MATMUL:
            return self.matmul(node)
        if len(tensors) == 1 and (factor := _number_factor(node)) is not None:
            return self.scaled(node, op, tensors[0], Affine(factor=factor))
        if op in ("add", "add_") and len(tensors) == 2:
            return self.binary(node, "add")
        if op in ("mul", "mul_") and len(tensors) == 2:
            return self.binary(node, "mul")
        if op == "cat":
            return self.concat(node)
        if op in ("pad", "constant_pad_nd"):
            return self.pad(node, op)
        if op in SPLITS or op in ("select", "slice") and isinstance(self.origin.get(node.args[0]), Ref):
            return self.split(node, op, tensors)
        if op == "select" and isinstance(self.origin.get(node.args[0]), Seq):
            return self.select_step(node)
        if op == "getitem" and isinstance(self.origin.get(node.args[0]), Parts):
            self.origin[node] = self.origin[node.args[0]].values[int(node.args[1])]
            return
        self.elementwise(node, op, tensors + [a for a in lists if hasattr(a.meta.get("val"), "shape")])  # stack's

    def linear_read(self, node, op: str):
        """(the 2-D parameter a linear map reads, whether it is stored (in, out), the run of its rows
        read or None, its bias's keys) or None: `x @ W` stores W as (in, out); `x @ W.T` (Falcon's
        Linear) stores it (out, in), as `linear` does. nn.MultiheadAttention reads runs of its
        in_proj_weight's rows (q's, then k's and v's) when q is not k and v; its bias must be the
        same rows of one."""
        weight = node.args[1] if op in ("linear", "mm", "matmul") else node.args[2]
        bias = node.args[2] if op == "linear" and len(node.args) > 2 else (node.args[0] if op == "addmm" else None)
        stored_in_out, rows = op != "linear", None
        if stored_in_out and getattr(weight, "op", None) == "call_function" \
                and op_name(weight) in ("t", "numpy_T", "transpose", "permute") and self.is_param(weight.args[0]):
            weight, stored_in_out = weight.args[0], False
        if op == "linear":
            weight, rows = self.row_run(weight)
            if bias is not None:
                bias, bias_rows = self.row_run(bias)
                if bias_rows != rows:
                    return None
        if not self.is_param(weight) or len(shape_of(weight)) != 2:
            return None
        return weight, stored_in_out, rows, self.param_keys(bias)

    def param_keys(self, value) -> tuple[str, ...]:
        """The stored key of a parameter (a bias), or none."""
        return (self.params[value.name],) if self.is_param(value) else ()

    def row_run(self, value) -> tuple:
        """(the parameter, (start, stop)) when the value is a run of a parameter's rows (`p[a:b]`, a
        part of `p.split(sizes)`), else (the value, None)."""
        op = op_name(value) if getattr(value, "op", None) == "call_function" else None
        if op == "getitem" and op_name(value.args[0]) in ("split", "split_with_sizes"):
            split, index = value.args[0], int(value.args[1])
            source, sizes, dim = (list(split.args) + [0])[:3]
            if self.is_param(source) and dim == 0:
                total = shape_of(source)[0]
                sizes = [sizes] * -(-total // sizes) if isinstance(sizes, int) else list(sizes)
                start = sum(sizes[:index])
                return source, (start, min(start + sizes[index], total))
        if op == "slice" and self.is_param(value.args[0]):
            source, dim, start, stop, step = (list(value.args) + [0, None, None, 1])[:5]
            total = shape_of(source)[0]
            if dim == 0 and step == 1:
                return source, (start or 0, min(total if stop is None else stop, total))
        return value, None

    def linear(self, node, op: str, weight, transposed: bool, rows, bias_keys: tuple) -> None:
        x = node.args[1] if op == "addmm" else node.args[0]
        key = self.params[weight.name]
        out_features, in_features = shape_of(weight)[::-1] if transposed else shape_of(weight)
        name = key.rsplit(".", 1)[0]
        if rows is not None:  # named after the rows it reads
            out_features, name = rows[1] - rows[0], f"{name}[{rows[0]}:{rows[1]}]"
        ref = self.ref(x)
        feature_map = None if transposed or rows else self.channels_last(ref, x, in_features)
        if feature_map:
            return self.pointwise(node, name, key, bias_keys, self.find(ref.layer), feature_map, out_features)
        src = self.layer_of(x, node, in_features, name)
        dst = self.new_layer(name, "linear", (out_features,), node)
        self.add_weight_layer(WeightLayer(name, "linear", key, bias_keys, src, dst, transposed=transposed, rows=rows,
                                          in_affines=self.read_gains(ref, src)))
        self.origin[node] = Ref(dst)

    def pointwise(self, node, name: str, key: str, bias_keys: tuple, src: int, feature_map: tuple,
                  out_features: int) -> None:
        """A Linear layer over the channels of a feature map is a 1x1 convolution: a node per
        channel and position, as every conv layer's. Its output holds them with the channels last."""
        dims, positions = len(feature_map) - 1, feature_map[1:]
        dst = self.new_layer(name, f"conv{dims}d", (out_features, *positions), node)
        self.orders[dst] = channels_last_order(out_features, positions)
        self.add_weight_layer(WeightLayer(name, f"conv{dims}d", key, bias_keys, src, dst, in_shape=feature_map,
                                          stride=(1,) * dims, padding=(0,) * dims, dilation=(1,) * dims))
        self.origin[node] = Ref(dst)

    def conv(self, node, op: str) -> None:
        x, weight = node.args[0], node.args[1]
        args = list(node.args) + [None] * 9
        if op == "convolution" and args[6]:
            return self.opaque(node, [x], "a transposed convolution is not in METRICS.md: the graph is cut here")
        key = self.params[weight.name]
        name = key.rsplit(".", 1)[0]
        w_shape, x_shape = shape_of(weight), shape_of(x)
        dims = len(w_shape) - 2
        if op == "convolution":
            stride, padding, dilation, groups = args[3], args[4], args[5], args[8]
        else:
            stride, padding, dilation, groups = args[3] or 1, args[4] or 0, args[5] or 1, args[6] or 1
        stride, dilation = expand(stride, dims), expand(dilation, dims)
        padding = expand(conv_padding(padding, w_shape[2:], dilation, name), dims)
        bias_keys = self.param_keys(args[2])
        tokens = self.patch_tokens(node, x, w_shape[2:], stride, padding, dilation, groups)
        if tokens is not None:
            return self.patch_embedding(node, x, name, key, w_shape, bias_keys, tokens)
        padding_end = padding
        if x in self.padded:  # zeros padded by hand: the conv pads by as much more
            x, sizes = self.padded[x]
            x_shape = shape_of(x)
            padding, padding_end = (tuple(p + q for p, q in zip(padding, more)) for more in _by_dimension(sizes, dims))
        self.leave_out(self.ref(x), REASONS["gain_map"])
        src = self.layer_of(x, node, numel(x_shape[1:]), name)
        dst = self.new_layer(name, f"conv{dims}d", shape_of(node)[1:], node)
        self.add_weight_layer(WeightLayer(name, f"conv{dims}d", key, bias_keys, src, dst, in_shape=x_shape[1:],
                                          stride=stride, padding=padding,
                                          padding_end=padding_end if padding_end != padding else (),
                                          dilation=dilation, groups=int(groups)))
        self.origin[node] = Ref(dst)

    def patch_tokens(self, node, x, kernel, stride, padding, dilation, groups) -> object | None:
        """The value reading this conv's map only as a sequence of its positions, each one's
        channels, when the conv cuts the model's input into patches (kernel = stride, no padding):
        a ViT's patch embedding, `x.flatten(2).transpose(1, 2)`. Else None."""
        ref = self.ref(x)
        if not isinstance(ref, Ref) or ref.layer is not None or ref.gains or x in self.padded \
                or tuple(kernel) != tuple(stride) or any(padding) or any(d != 1 for d in dilation) or groups != 1:
            return None
        chain, value = [], node
        while len(value.users) == 1 and op_name(user := next(iter(value.users))) in VIEWS:
            chain.append((user, value))
            value = user
        shape = shape_of(node)[1:]
        return value if holds_tokens(placement(node, chain, numel(shape), None), shape) else None

    def patch_embedding(self, node, x, name: str, key: str, w_shape: tuple, bias_keys: tuple, tokens) -> None:
        """A conv over non-overlapping patches read as tokens is a Linear over each patch: its
        input layer is one patch (C, *kernel), its output the token's channels, and the patches are
        samples, as a transformer's positions are (METRICS.md section 9). The links are the conv's
        over one patch."""
        patch, dims = (shape_of(x)[1], *w_shape[2:]), len(w_shape) - 2
        src = self.layer_of(x, node, numel(patch), name, shape=patch)
        dst = self.new_layer(name, "linear", (w_shape[0],), tokens)
        self.add_weight_layer(WeightLayer(name, f"conv{dims}d", key, bias_keys, src, dst, in_shape=patch,
                                          stride=tuple(w_shape[2:]), padding=(0,) * dims, dilation=(1,) * dims))
        self.origin[node] = Ref(dst)

    def cut_here(self, node) -> bool:
        """Was the graph cut at this node (rather than before it)?"""
        found = self.origin.get(node)
        return isinstance(found, Opaque) and found.root is node

    def reduction(self, node, op: str) -> None:
        """A mean over a feature map's positions is global average pooling; over token positions
        it keeps the nodes (positions are not nodes); over the features it is a per-sample
        statistic (a norm's mean or variance): no nodes. Any other reduction of a map is cut."""
        x = node.args[0]
        ref, shape = self.origin.get(x), shape_of(x)
        if not isinstance(ref, Ref) or ref.layer is None or not shape:
            return
        dims = node.args[1] if len(node.args) > 1 and isinstance(node.args[1], (list, tuple)) else range(len(shape))
        reduced = sorted(int(d) % len(shape) for d in dims)
        if self.is_map(ref, shape) and len(shape) > 2:  # (batch, features) is no map: its mean is a statistic
            if op == "mean" and reduced == list(range(2, len(shape))):
                return self.avg_pool(node, op)
            return self.opaque(node, [x], f"{op} over a feature map has no fixed links: the graph is cut here")
        nodes = self.topology.node_layers[self.find(ref.layer)].nodes
        if shape[-1] == nodes and len(shape) - 1 not in reduced and 0 not in reduced:
            self.origin[node] = ref

    def avg_pool(self, node, op: str) -> None:
        x = node.args[0]
        x_shape, y_shape = shape_of(x), shape_of(node)
        ref = self.origin.get(x)
        dims = len(x_shape) - 2
        if not isinstance(ref, Ref) or ref.layer is None or dims < 1 or not self.is_map(ref, x_shape):
            return self.elementwise(node, op, [x])
        if op == "mean":  # over every position (reduction() checked)
            kernel, stride, padding = x_shape[2:], x_shape[2:], (0,) * dims
        elif op.startswith(("adaptive", "_adaptive")):
            out = y_shape[2:]
            if any(i % o for i, o in zip(x_shape[2:], out)):
                return self.opaque(node, [x], REASONS["pool"])
            kernel = stride = tuple(i // o for i, o in zip(x_shape[2:], out))
            padding = (0,) * dims
        else:
            args = list(node.args) + [None] * 7
            kernel = expand(args[1], dims)
            stride = expand(args[2] or kernel, dims)
            padding = expand(args[3] or 0, dims)
            if args[4] or args[5] is False and any(padding) or args[6] is not None:
                return self.opaque(node, [x], REASONS["pool"])
        path, _ = module_label(node)
        self.leave_out(ref, REASONS["gain_map"])
        src = self.layer_of(x, node, numel(x_shape[1:]), path)
        dst = self.new_layer(path, f"avgpool{dims}d", (x_shape[1], *y_shape[2:]) if len(y_shape) > 2
                             else (x_shape[1],) + (1,) * dims, node)
        self.add_weight_layer(WeightLayer(path, f"avgpool{dims}d", None, (), src, dst, in_shape=x_shape[1:],
                                          stride=stride, padding=padding, dilation=(1,) * dims,
                                          groups=x_shape[1], kernel=tuple(kernel)))
        self.origin[node] = Ref(dst)

    def is_map(self, ref, shape) -> bool:
        """Is this value a feature map of its layer (every non-batch position a node)?"""
        return (isinstance(ref, Ref) and ref.layer is not None
                and self.topology.node_layers[self.find(ref.layer)].nodes == numel(shape[1:]))

    def pad(self, node, op: str) -> None:
        """Zeros around a feature map's positions: no nodes (padding positions are not nodes), so a
        convolution reading them pads by as much (TensorFlow's "same" padding, which MobileNet and
        EfficientNet apply by hand, often more after than before). Any other reader is cut."""
        args = list(node.args) + [None, None]
        x, sizes = args[0], list(args[1])
        mode, value = (args[2] or "constant", args[3]) if op == "pad" else ("constant", args[2])  # constant_pad_nd
        ref, shape = self.ref(x), shape_of(x)
        on_map = isinstance(ref, Ref) and (ref.layer is None or self.is_map(ref, shape))  # or the input image
        if mode == "constant" and not value and on_map and len(sizes) <= 2 * (len(shape) - 2) \
                and all(size >= 0 for size in sizes):
            self.padded[node] = (x, sizes)
        self.elementwise(node, op, [x])

    def select_step(self, node) -> None:
        seq = self.origin[node.args[0]]
        dim, index = int(node.args[1]), int(node.args[2])
        if dim % len(shape_of(node.args[0])) != seq.time_dim % len(shape_of(node.args[0])):
            return self.opaque(node, [node.args[0]], "a slice across a sequence's features: the graph is cut here")
        self.origin[node] = Ref(seq.layers[index])

    def recurrent(self, node, op: str) -> None:
        x = node.args[0]
        ref = self.origin.get(x)
        path, cls = module_label(node)
        if isinstance(ref, Opaque) or isinstance(ref, Ref) and ref.layer is not None:
            self.topology.skip(path, cls, "its input sequence is computed by earlier layers; it is read as fresh "
                                          "input layers, one per time step")
        weights = [self.params.get(getattr(a, "name", None)) for a in node.args[2]]
        if any(w is None for w in weights):
            return self.opaque(node, [x], "a recurrent layer whose weights are not parameters: the graph is cut here")
        before = len(self.topology.node_layers)
        result = unroll_op(self.topology, op, node.args, shape_of(x), weights, path, block_of(path))
        if isinstance(result, str):
            self.topology.skip(path, cls, result)
            return self.opaque(node, [x], result)
        sequence, last = result
        for index in range(before, len(self.topology.node_layers)):  # every step's values come from this op
            self.head[index] = node
        # (output sequence, final hidden states[, final cell states: no links read them here])
        self.origin[node] = Parts((Seq(tuple(sequence), 1 if node.args[8] else 0), Seq(tuple(last), 0), None))

    def elementwise(self, node, op: str, tensors) -> None:
        """Views, activations and other one-input maps keep the nodes; anything that changes the
        node set, or combines node layers without fixed links, is opaque."""
        if op in SHAPED_LIKE:
            tensors = tensors[:1]  # the second gives only the type or shape
        refs = [self.ref(t) for t in tensors]
        mapped = [r for r in refs if r is not None]
        if op in SOFTMAX:  # weights over positions: attention's probabilities, whatever they were summed from
            return self.opaque(node, tensors, REASONS["scores"])
        view = op in VIEWS or _whole_slice(node, op)
        if len(mapped) == 1 and isinstance(mapped[0], Ref) and (view or self.keeps_nodes(node, mapped[0])):
            self.origin[node] = self.activate(mapped[0]) if self.changes_values(node) else mapped[0]
            return
        if len(mapped) == 1 and isinstance(mapped[0], (Opaque, Seq)) and (view or len(operands(node)) == 1):
            self.origin[node] = mapped[0]
            return
        reason = REASONS["max_pool"] if "max_pool" in op else f"{op} has no fixed links (METRICS.md section 9): " \
                                                                  "the graph is cut here"
        self.opaque(node, tensors, reason)

    def keeps_nodes(self, node, ref: Ref) -> bool:
        if ref.layer is None:
            return True
        nodes = self.topology.node_layers[self.find(ref.layer)].nodes
        shape = shape_of(node)
        return bool(shape) and (numel(shape[1:]) == nodes or shape[-1] == nodes)

    def opaque(self, node, values, reason: str) -> None:
        layers, notes = set(), []
        for value in values:
            ref = self.origin.get(value)
            if isinstance(ref, Ref) and ref.layer is not None:
                layers.add(self.find(ref.layer))
            elif isinstance(ref, Opaque):
                layers |= ref.layers
                notes += ref.notes
        self.origin[node] = Opaque(node, frozenset(layers), tuple(dict.fromkeys([*notes, self.note(node, reason)])))

    def note(self, node, reason: str) -> tuple[str, str, str]:
        """What a cut at this node is listed as: a cut on the way to q and k's pattern costs no links."""
        return (*module_label(node), REASONS["attention_only"] if self.pattern_only[node] else reason)


def _input_name(root) -> str:
    """The module an input layer comes from (an embedding): an op of the model's own forward
    (Granite's `embeddings * multiplier`) is named after what it reads."""
    while getattr(root, "op", "") == "call_function" and module_label(root)[0] == root.name and operands(root):
        root = operands(root)[0]
    return module_label(root)[0] if getattr(root, "op", "") == "call_function" else "input"


def _number_factor(node) -> float | None:
    """c for `x * c`, `c * x` or `x / c` with c a plain number (not zero for a division); else None."""
    op, args = op_name(node).rstrip("_"), node.args
    if node.kwargs or len(args) != 2:
        return None
    numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if op == "mul" and len(numbers) == 1:
        return float(numbers[0])
    if op == "div" and args[1] in numbers and args[1] != 0:
        return 1.0 / args[1]
    return None


def _by_dimension(sizes: list, dims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """F.pad's sizes ((before, after) pairs from the last dimension) as (before per dimension,
    after per dimension) over the last `dims` dimensions."""
    pairs = [(0, 0)] * dims + [tuple(sizes[i:i + 2]) for i in range(0, len(sizes), 2)][::-1]
    return tuple(zip(*pairs[-dims:]))


def _whole_slice(node, op: str) -> bool:
    """A slice that keeps all of its input: a view. Exported with a dynamic batch, LLaMA's
    repeat_kv keeps its `v[:, :, None]` as a slice over the whole batch (a static export drops it)."""
    return op == "slice" and shape_of(node) == shape_of(node.args[0])


def from_exported(program, *, fold_batch_norm: bool = True) -> Topology:
    """Walk a torch.export ExportedProgram in execution order."""
    return Walk(program, fold_batch_norm=fold_batch_norm).run()


def with_values(program, *, fold_batch_norm: bool = True):
    """The topology; per node layer, the graph node whose value holds its nodes as produced
    (after folded norms, residual sums and merges): what data-dependent metrics read; and for
    the parts of a fused layer whose values hold their nodes in another order (GPT-NeoX's q, k
    and v, (batch, heads, positions, head_dim)), the order of a sample's elements as
    (position, node) rows."""
    walk = Walk(program, fold_batch_norm=fold_batch_norm)
    topology = walk.run()
    walk.place_heads()
    return topology, {new: walk.head[old] for old, new in walk.numbering.items() if old in walk.head}, \
        {new: walk.orders[old] for old, new in walk.numbering.items() if old in walk.orders}
