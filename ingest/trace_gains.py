"""Where a map on a node layer's values goes, for the walk (trace.py): a norm's gain and shift,
BatchNorm's affine map, a learned per-node gain, a number the nodes are multiplied by. Each folds
into the links entering the nodes when nothing else reads them (post-norm, a conv's BatchNorm),
else it waits on the value (`Ref.gains`, pre-norm) for the links that read it; no map folds
across an activation, and a gain that cannot reach links is listed, never dropped silently.

A part of Walk: these methods read and write the walk's state (trace.py's dataclass).
"""

from __future__ import annotations

from dataclasses import replace

from .folding import Affine
from .fx_nodes import BATCH_NORMS, NORMS, PICKS, READS, REASONS, VIEWS, Opaque, Ref, module_label, numel, op_name, \
    operands, shape_of
from .value_flow import only_into


class Gains:
    def fold_out(self, index: int, affine: Affine, node) -> None:
        """Nodes become scale * y + shift: every weight layer entering them carries it, each its own
        nodes' part (a concatenation's parts enter a run of nodes each), the shift once a node.
        On a feature map the map is per channel: a conv's rows are its channels; links of no
        kernel (a residual's identity) enter every position of each. `per` 0: one stored number
        for every node, read by each layer's every row."""
        shape, shifted = self.topology.node_layers[index].shape, []  # runs of nodes given the shift
        for i in self.entering(index):
            layer = self.topology.weight_layers[i]
            start, stop = (layer.dst_offset, layer.dst_offset + layer.size) if layer.kind == "identity" \
                else (0, numel(shape))
            part = replace(affine, start=start) if start else affine
            if any(start < end and begin < stop for begin, end in shifted):
                part = replace(part, with_shift=False)
            else:
                shifted.append((start, stop))
            if affine.per == 0:
                part = replace(part, per=shape[0] if layer.is_conv else numel(shape))
            elif len(shape) > 1 and not layer.is_conv and affine.keys():
                part = replace(part, per=numel(shape[1:]))
            self.topology.weight_layers[i] = replace(layer, out_affines=(*layer.out_affines, part))
        self.head[index] = node  # the folded map's output now holds these nodes

    def batch_norm(self, node, op: str) -> None:
        """BatchNorm in eval mode is a per-channel affine map: folded as a norm's gain, into the
        links entering its nodes when next to them (conv, BatchNorm), else into the links that
        read it (after an activation: Linear, ReLU, BatchNorm, Linear)."""
        ref = self.ref(node.args[0])
        path, cls = module_label(node)
        if not self.fold_batch_norm or not isinstance(ref, Ref):
            self.topology.skip(path, cls, REASONS["batch_norm_kept"])
            self.origin[node] = ref
            return
        stored = [a if self.is_param(a) else None for a in node.args[1:5]]  # gain, shift, mean, variance
        keys = [self.params[a.name] if a is not None else None for a in stored]
        adjacent = self.next_to_links(ref, node)
        self.origin[node] = self.with_gain(ref, node, Affine(*keys, float(node.args[BATCH_NORMS[op]])),
                                           next((a for a in stored if a is not None), None))
        self.topology.skip(path, cls, REASONS["batch_norm" if adjacent else "batch_norm_read"])

    def norm(self, node, op: str) -> None:
        x = node.args[0]
        ref = self.ref(x)
        gain_at, bias_at = NORMS[op]
        args = list(node.args) + [None] * 4
        gain = self.params[args[gain_at].name] if self.is_param(args[gain_at]) else None
        shift = self.params[args[bias_at].name] if bias_at is not None and self.is_param(args[bias_at]) else None
        self.origin[node] = self.with_gain(ref, node, Affine(gain, shift), args[gain_at])
        if not self.cut_here(node):
            self.topology.skip(*module_label(node), REASONS["standardise"])

    def with_gain(self, ref, node, affine: Affine, gain):
        """A gain on these nodes: folded into the links entering them when nothing else reads
        them (post-norm), else into the links that read the result (pre-norm). A gain of one
        value per head dimension (Persimmon's norm of q and k, head by head) is no per-node map:
        cut."""
        if isinstance(ref, Ref) and ref.layer is not None and gain is not None:
            shape = self.topology.node_layers[self.find(ref.layer)].shape
            if len(shape) == 1 and numel(shape_of(gain)) not in (1, shape[0]):
                return Opaque(node, frozenset({self.find(ref.layer)}), (self.note(node, REASONS["head_norm"]),))
        if self.next_to_links(ref, node):
            self.fold_out(self.find(ref.layer), affine, node)
            return Ref(self.find(ref.layer))
        if isinstance(ref, Ref) and affine.keys():  # a norm with no gain (OLMo's) leaves nothing to fold
            self.pending[affine] = (module_label(node), numel(shape_of(gain)) if gain is not None else 0)
            return replace(ref, gains=(*ref.gains, affine))
        return ref

    def read_gains(self, ref, src: int) -> tuple[Affine, ...]:
        """The pending gains as links from layer src read them: a gain of one value per channel of
        a feature map read node by node (flattened for a Linear layer) acts on each position."""
        gains, shape = ref.gains if isinstance(ref, Ref) else (), self.topology.node_layers[src].shape
        if len(shape) < 2:
            return gains
        return tuple(replace(a, per=numel(shape[1:])) if self.pending[a][1] == shape[0] else a for a in gains)

    def next_to_links(self, ref, node) -> bool:
        """Do the values of ref come straight from the links entering its nodes (no pending gain, no
        activation between), and flow only into this op? Then a map applied here folds into them."""
        return isinstance(ref, Ref) and ref.layer is not None and not ref.gains and not ref.activated \
            and self.fresh(self.find(ref.layer), node)

    def leave_out(self, ref, reason: str):
        """The nodes without their pending gains, each listed: the links that read them here (through
        an activation, a convolution or a pooling) do not carry them."""
        if not isinstance(ref, Ref) or not ref.gains:
            return ref
        for affine in ref.gains:
            self.topology.skip(*self.pending[affine][0], reason)
        return replace(ref, gains=())

    def activate(self, ref: Ref) -> Ref:
        """The nodes after an activation: pending gains stay out of the links after it, and no map
        applied later folds into the links before it."""
        return replace(self.leave_out(ref, REASONS["gain_activated"]), activated=True)

    def scaled(self, node, op: str, x, number: Affine) -> None:
        """x times a constant: a number, or a stored one-element tensor (`number`, as an Affine: a
        stored one may differ between versions). The model's input scaled (Granite's
        embedding_multiplier, Gemma's sqrt(d)) is the input. A layer's nodes that flow only into
        the product (Granite's residual_multiplier, ReZero's learned gain) become the product: the
        number folds into the links entering them. Elsewhere the product is part of an activation
        (GELU's 0.5 * x, a number scaling what tanh reads) or sets the attention pattern's
        temperature: the same nodes."""
        ref = self.ref(x)
        if isinstance(ref, Ref) and not ref.gains and ref.layer is None \
                and only_into(ref.root, (node,), self.position, self.is_param):
            self.origin[node] = Ref(None, node)
        elif not self.pattern_only[node] and not self.feeds_activation(node) and self.next_to_links(ref, node):
            self.fold_out(self.find(ref.layer), number, node)
            self.origin[node] = Ref(self.find(ref.layer))
        elif isinstance(ref, Ref):
            self.origin[node] = ref  # a number commutes with gains; no activation
        else:
            self.elementwise(node, op, [x])

    def feeds_activation(self, node) -> bool:
        """Does the value flow, through views, into an activation? Then a number it was multiplied
        by belongs to that activation (Gemma 2's softcapping, cap * tanh(x / cap))."""
        return any(self.feeds_activation(user) if op_name(user) in VIEWS else self.changes_values(user)
                   for user in node.users)

    def changes_values(self, node) -> bool:
        """Is this an activation: an op of one value (besides parameters: PReLU's slope) that
        changes each node's value? Not a view, a pick, arithmetic (a number's scale or shift; with a
        per-sample statistic or a mask, as a norm written by hand computes), nor a read through
        links or a norm."""
        op = op_name(node)
        values = [a for a in operands(node) if not self.is_param(a)]
        return len(values) == 1 and op not in VIEWS and op not in PICKS and op not in READS

    def stored_behind(self, value) -> tuple[object, float] | None:
        """(the stored tensor's graph node, a number added to it) when the value is a stored tensor,
        cast (`w.float()`) or plus a number (Gemma's norms: `x * (1 + w)`); else None."""
        offset = 0.0
        while hasattr(value, "op") and op_name(value) in ("to", "_to_copy", "type_as", "add") and not value.kwargs:
            if op_name(value) == "add":
                if not isinstance(value.args[1], (int, float)):
                    return None
                offset += value.args[1]
            value = value.args[0]
        return (value, offset) if self.is_param(value) else None
