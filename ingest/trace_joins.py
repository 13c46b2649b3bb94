"""The ops that join node layers, for the walk (trace.py): a residual sum's identity links, a
gated product's merged layer, attention's links from v, concatenation side by side, and a fused
projection split into one weight layer per part.

A part of Walk: these methods read and write the walk's state (trace.py's dataclass).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .folding import Affine
from .fx_nodes import REASONS, Opaque, Parts, Ref, Seq, module_label, numel, op_name, shape_of
from .fused_parts import parts_of, siblings, views_between
from .network import WeightLayer


class Joins:
    def identity(self, src_ref: Ref, src: int, dst: int, name: str, offset: int = 0) -> None:
        size = self.topology.node_layers[src].nodes
        self.add_weight_layer(WeightLayer(name, "identity", None, (), src, dst, size=size, dst_offset=offset,
                                          in_affines=self.read_gains(src_ref, src)))

    def merge(self, keep: int, drop: int) -> None:
        self.alias[drop] = keep

    def binary(self, node, op: str) -> None:
        a, b = node.args[0], node.args[1]
        refs = [self.ref(a), self.ref(b)]
        mapped = [r for r in refs if isinstance(r, Ref)]
        if len(mapped) == 2 and all(r.layer is None for r in mapped):
            self.origin[node] = Ref(None, node)  # embeddings summed before any layer: still the input
            return
        if len(mapped) == 2 and self.find(mapped[0].layer) == self.find(mapped[1].layer):
            if op == "mul" or any(r.activated for r in mapped):  # f(x) * g(x), x + f(x): GELU's tanh form, SiLU
                self.leave_out(mapped[1], REASONS["gain_activated"])
                self.origin[node] = self.activate(mapped[0])
                return
            if mapped[0].gains == mapped[1].gains:  # x + x
                self.origin[node] = mapped[0]
                return
        if len(mapped) == 1 and not any(isinstance(r, (Opaque, Seq)) for r in refs):
            ref, value, other = (refs[0], a, b) if isinstance(refs[0], Ref) else (refs[1], b, a)
            stored = self.stored_behind(other)
            if stored is not None and _per_position(shape_of(value), shape_of(stored[0])):  # a ViT's positions
                return self.learned_positions(node, ref)
            vector = stored is not None and numel(shape_of(stored[0])) > 1
            if vector and (op == "mul" or not stored[1]):  # a learned per-node gain or shift
                key, offset = self.params[stored[0].name], stored[1]
                affine = Affine(key, None, gain_offset=offset) if op == "mul" else Affine(None, key)
                self.origin[node] = self.with_gain(ref, node, affine, other)
                path, cls = module_label(node)
                if "norm" in cls.lower() and not self.cut_here(node):  # RMSNorm written by hand
                    self.topology.skip(path, cls, REASONS["standardise"])
            elif stored is not None and op == "mul":  # a stored number: Gemma's embedding scale, ReZero's gain
                self.scaled(node, op, value, Affine(self.params[stored[0].name], gain_offset=stored[1], per=0))
            else:
                self.origin[node] = ref  # a constant or a per-sample statistic: the same nodes
            return
        if len(mapped) == 2 and all(r.layer is not None for r in mapped):
            first, second = (self.find(r.layer) for r in mapped)
            if first != second:
                return self.residual(node, mapped, a, b) if op == "add" else self.gate(node, first, second)
        if op == "add" and len(mapped) + len([r for r in refs if isinstance(r, Opaque)]) == 2:
            own = {self.find(r.layer) for r in mapped if r.layer is not None}
            if not any(isinstance(r, Opaque) and r.layers & own for r in refs):  # not x + f(x) without links
                return self.residual(node, [r if isinstance(r, Ref) else Ref(None, r.root) for r in refs], a, b)
        self.elementwise(node, op, [a, b])

    def residual(self, node, refs, a, b) -> None:
        """y = f(x) + x: the fresh operand's nodes become y's, and receive identity links from x.
        Two fresh operands (a projection shortcut) merge; no fresh operand gives a new layer."""
        layers = [self.find(r.layer) if r.layer is not None else None for r in refs]
        fresh = [i for i, layer in enumerate(layers) if layer is not None and not refs[i].gains
                 and self.fresh(layer, node)]
        path, _ = module_label(node)
        # the nodes of the layer the sum becomes: the other operand is read as that many (a map
        # read as a sequence of its positions is cut there, as regrouped)
        known = [self.topology.node_layers[layers[i]].nodes for i in fresh] or \
            [self.topology.node_layers[layer].nodes for layer in layers if layer is not None]
        nodes = known[0] if known else shape_of(node)[-1]
        if fresh:
            dst = layers[fresh[0]]
            for other in fresh[1:]:
                self.merge(dst, layers[other])
        else:
            dst = self.new_layer(f"{path} (sum)", "residual", self.node_shape(node, nodes), node)
        for i, value in enumerate((a, b)):
            if i in fresh:
                continue
            src = self.layer_of(value, node, nodes, path)
            self.identity(refs[i], src, dst, f"{path} (residual)")
        self.head[dst] = node
        self.origin[node] = Ref(dst, activated=any(refs[i].activated for i in fresh))

    def gate(self, node, first: int, second: int) -> None:
        """A gated MLP's act(gate(x)) * up(x): one hidden layer with both weight layers entering.
        Layers of different nodes (FocalNet's tokens times a feature map) make no one layer."""
        layers = self.topology.node_layers
        if layers[first].shape == layers[second].shape and self.fresh(first, node) and self.fresh(second, node):
            self.merge(first, second)
            self.head[first] = node
            self.origin[node] = Ref(first, activated=True)
            return
        self.opaque(node, list(node.args[:2]), REASONS["product"])

    def attention(self, node, q, k, v) -> None:
        """o receives identity links from v (per dimension; each of grouped-query attention's
        shared v heads feeds its group of query heads); q and k only set the pattern."""
        for value in (q, k):
            ref = self.origin.get(value)
            if isinstance(ref, Opaque):
                for path, kind, _ in ref.notes:
                    self.topology.skip(path, kind, REASONS["attention_only"])
        v_ref = self.origin.get(v)
        if not isinstance(v_ref, Ref) or v_ref.layer is None:
            return self.opaque(node, [v], REASONS["scores"])
        src = self.find(v_ref.layer)
        v_nodes = self.topology.node_layers[src].nodes
        out = shape_of(node)
        heads, head_dim = (out[1], out[-1]) if len(out) == 4 else (1, out[-1])
        folded = len(out) == 3 and v_nodes % head_dim == 0 and out[0] % (v_nodes // head_dim) == 0
        if folded:  # (batch * heads, positions, head_dim), as Bloom computes it
            heads = v_nodes // head_dim
        o_nodes = heads * head_dim
        if o_nodes % v_nodes:
            return self.opaque(node, [v], REASONS["scores"])
        path, _ = module_label(node)
        dst = self.new_layer(f"{path} (o)", "attention", (o_nodes,), node)
        if folded and heads > 1:  # a sample's (heads, positions, head_dim) read as (positions, heads * head_dim)
            self.orders[dst] = torch.arange(numel(out[1:]) * heads).reshape(heads, out[1], head_dim).transpose(0, 1) \
                .reshape(-1)
        repeat = o_nodes // v_nodes
        self.add_weight_layer(WeightLayer(f"{path} (v -> o)", "identity", None, (), src, dst, size=o_nodes,
                                          in_affines=self.read_gains(v_ref, src), repeat=repeat, head_dim=head_dim))
        self.origin[node] = Ref(dst)

    def matmul(self, node) -> None:
        """Hand-written attention: scores = q @ k^T (no links), then scores @ v: o from v."""
        a, b = node.args[1:3] if op_name(node) == "baddbmm" else node.args[:2]  # baddbmm: bias + a @ b
        a_ref, b_ref = self.origin.get(a), self.origin.get(b)
        if isinstance(b_ref, Ref) and b_ref.layer is not None and not isinstance(a_ref, Ref):
            return self.attention(node, a, a, b)
        self.opaque(node, [a, b], REASONS["scores"])

    def concat(self, node) -> None:
        """Node layers side by side: identity links at offsets. A part with no fixed links (max
        pooling's output, as DenseNet concatenates it in each of its blocks) is a cut layer, as a
        weight layer reading it makes one."""
        parts, dim = node.args[0], (node.args[1] if len(node.args) > 1 else 0)
        refs = [self.ref(p) for p in parts]
        if len(refs) == 1:  # one part (DenseNet's first layer of a block): the same values
            self.origin[node] = refs[0]
            return
        shape = shape_of(node)
        linked = [(r, p) for r, p in zip(refs, parts) if isinstance(r, Ref) and r.layer is not None]
        if len(shape) == 3 and int(dim) % 3 == 1 and len(linked) == 1 and refs.count(None) == len(refs) - 1 \
                and self.topology.node_layers[self.find(linked[0][0].layer)].nodes == shape[-1]:
            return self.learned_positions(node, linked[0][0])  # a class token put before a ViT's patches
        # parts computed from node layers (not a class token: a stored constant), not only for q and k
        derived = all(isinstance(r, Ref) or isinstance(r, Opaque) and r.layers for r in refs)
        if linked and shape and derived and not self.pattern_only[node]:
            maps = len(self.topology.node_layers[self.find(linked[0][0].layer)].shape) > 1  # along their channels
            if int(dim) % len(shape) == (1 if maps else len(shape) - 1) \
                    and all(self.held_as_made(self.find(r.layer), p, maps) for r, p in linked):
                return self.place_side_by_side(node, parts, refs, maps)
        self.opaque(node, parts, "a concatenation along positions, or of values without fixed links: the graph is "
                                 "cut here")

    def learned_positions(self, node, ref: Ref) -> None:
        """Learned values of a token sequence's positions (a class token before the patches,
        position embeddings added): positions are samples, not nodes, so they make no links. The
        same nodes; listed."""
        self.topology.skip(*module_label(node), REASONS["learned_positions"])
        self.origin[node] = ref

    def held_as_made(self, index: int, value, maps: bool) -> bool:
        """Does the value hold the layer's nodes as the layer numbers them: a feature map (C,
        *positions) in order, or features last (not a map read as a sequence: CvT's tokens)?"""
        layer, shape = self.topology.node_layers[index], shape_of(value)
        if maps:
            return tuple(shape[1:]) == tuple(layer.shape) and not self.reordered(index, value)
        return len(layer.shape) == 1 and shape[-1] == layer.nodes

    def place_side_by_side(self, node, parts, refs, maps: bool) -> None:
        """A concat layer: identity links from each part's nodes, at its offset."""
        path, _ = module_label(node)
        sources = []
        for part, ref in zip(parts, refs):
            if isinstance(ref, Ref) and ref.layer is not None:
                sources.append((ref, self.find(ref.layer)))
            else:  # the model's input, or a value with no fixed links: a layer of its own
                nodes = numel(shape_of(part)[1:]) if maps else shape_of(part)[-1]
                own = ref if isinstance(ref, Ref) else Ref(None, part)
                sources.append((own, self.layer_of(part, node, nodes, path)))
        nodes = sum(self.topology.node_layers[src].nodes for _, src in sources)
        dst = self.new_layer(f"{path} (concat)", "concat", self.node_shape(node, nodes), node)
        offset = 0
        for ref, src in sources:
            self.identity(ref, src, dst, f"{path} (concat)", offset)
            offset += self.topology.node_layers[src].nodes
        self.origin[node] = Ref(dst)

    def split(self, node, op: str, tensors) -> None:
        """A fused projection (qkv) split into parts, or indexed part by part (Bloom's selects of a
        (heads, 3, head_dim) view, Phi-3's slices of its qkv output): one weight layer per part,
        each reading the stored rows its part holds, found by replaying the views between them
        (fused_parts.py). Anything else split is cut."""
        source = node.args[0]
        indexed = op in ("select", "slice")
        ends = siblings(node, op) if indexed else [node]  # the first of them reads every part
        ref = self.origin.get(source)
        layer = self.find(ref.layer) if isinstance(ref, Ref) and ref.layer is not None else None
        entering = self.entering(layer) if layer is not None else []
        parts = None
        fused = self.topology.weight_layers[entering[0]] if len(entering) == 1 else None
        # a run of rows, split again (nn.MultiheadAttention's k and v) only into runs of its own
        runs = fused is not None and fused.rows is not None and not fused.row_period and not fused.out_affines
        if fused is not None and fused.kind == "linear" and (fused.rows is None or runs) \
                and self.fresh(layer, *ends) and (op != "slice" or source is self.head[layer]):  # not rotary's slices
            views = views_between(self.head[layer], source)
            parts = views is not None and parts_of(shape_of(self.head[layer]), self.topology.node_layers[layer].nodes,
                                                  views, ends)
            if parts and runs and any(part.period for part in parts):
                parts = None
        if not parts or len(parts) < 2:
            if indexed:
                return self.elementwise(node, op, tensors)  # a position picked (BERT's pooler reads token 0)
            return self.opaque(node, [source], "a split of node layers: the graph is cut here")
        values = ends if indexed else [user for user in node.users if op_name(user) == "getitem"]
        values = dict(enumerate(values)) if indexed else {int(user.args[-1]): user for user in values}
        refs, nodes = [], self.topology.node_layers[layer].nodes
        for number, part in enumerate(parts):
            name = f"{fused.name}[{number}]"
            rows = part.rows if fused.rows is None else (fused.rows[0] + part.rows[0], fused.rows[0] + part.rows[1])
            weights = replace(fused, name=name, rows=rows, row_period=part.period,  # maps folded so far: all rows
                              out_affines=tuple(replace(a, stored_rows=True) for a in fused.out_affines))
            size = weights.rows_of(nodes)
            dst = layer if number == 0 else self.new_layer(name, "linear", (size,), node)
            self.head[dst] = values.get(number, node)  # the part's own value
            if part.order is not None:
                self.orders[dst] = part.order
            self.topology.node_layers[dst] = replace(self.topology.node_layers[dst], name=name, shape=(size,))
            if number == 0:
                self.topology.weight_layers[entering[0]] = replace(weights, dst=dst)
            else:
                self.add_weight_layer(replace(weights, dst=dst))
            refs.append(Ref(dst))
        if indexed:
            for number, user in values.items():
                self.origin[user] = refs[number]
        else:
            self.origin[node] = Parts(tuple(refs))


def _per_position(value_shape: tuple, stored_shape: tuple) -> bool:
    """Does a stored tensor broadcast over a token sequence (batch, positions, features) hold a
    value per position (position embeddings of shape (1, positions, features))?"""
    return len(value_shape) == 3 and len(stored_shape) == 3 and stored_shape[1] > 1
