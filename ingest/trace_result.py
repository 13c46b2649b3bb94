"""The walk's result (trace.py): merged layers dropped, pieces without learned links listed,
node layers renumbered in forward order.

A part of Walk: these methods read the walk's state (trace.py's dataclass).
"""

from __future__ import annotations

import heapq
from dataclasses import replace

from nngraph.errors import NNGraphError

from .fx_nodes import REASONS
from .network import Topology
from .node_layout import sample_order


class Finish:
    def finish(self) -> Topology:
        """Drop merged layers, layers nothing links and pieces without learned links, renumber in
        forward order."""
        old = self.topology
        kept = self.drop_unlearned_pieces(old.weight_layers)
        numbering = self.numbering = {}
        result = Topology(skipped=old.skipped)
        for index in self.forward_order(kept):
            layer = old.node_layers[index]
            numbering[index] = result.add_node_layer(layer.name, layer.kind, layer.shape, layer.group)
        for layer in kept:
            result.weight_layers.append(replace(layer, src=numbering[self.find(layer.src)],
                                                dst=numbering[self.find(layer.dst)]))
        return result

    def place_heads(self) -> None:
        """The order of each feature map's nodes in its head's value, where a folded norm or a
        residual sum moved the head past a view (ConvNeXt's norm, read with the channels last)."""
        for index, head in self.head.items():
            if head is self.born.get(index) or index not in self.numbering:
                continue
            place = self.placement(index, head)
            if place is not None:
                self.orders[index] = sample_order(place)
        self.orders = {index: order for index, order in self.orders.items() if order is not None}

    def forward_order(self, weight_layers: list) -> list[int]:
        """The linked node layers, each after every layer that links into it, otherwise in the
        order they were made. A layer two projections enter is made by the first (Phi's attention
        output, which its MLP's output later joins), so the order made is not always forward."""
        into, out_of = {}, {}
        for w in weight_layers:
            src, dst = self.find(w.src), self.find(w.dst)
            into.setdefault(src, set())
            into.setdefault(dst, set()).add(src)
            out_of.setdefault(src, set()).add(dst)
        waiting = {layer: len(sources) for layer, sources in into.items()}
        ready = [layer for layer, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            layer = heapq.heappop(ready)
            order.append(layer)
            for dst in out_of.get(layer, ()):
                waiting[dst] -= 1
                if waiting[dst] == 0:
                    heapq.heappush(ready, dst)
        if len(order) != len(into):  # a forward pass read as links never loops back; say so if it did
            raise NNGraphError("the graph read from the forward pass has a cycle: report this model to nngraph")
        return order

    def drop_unlearned_pieces(self, weight_layers: list) -> list:
        """The weight layers of the graph's connected pieces that hold a learned link. A piece of
        identity or pooling links alone between cut layers (rotary position embeddings of part of
        q and k, as GPT-NeoX and Phi apply them: feeding only the attention pattern) carries no
        weight: it is listed, not kept."""
        piece = {}

        def root(layer):
            while piece.get(layer, layer) != layer:
                layer = piece[layer]
            return layer

        for w in weight_layers:
            piece[root(self.find(w.src))] = root(self.find(w.dst))
        learned = {root(self.find(w.dst)) for w in weight_layers if w.learned}
        kept = []
        for w in weight_layers:
            if root(self.find(w.dst)) in learned:
                kept.append(w)
            elif self.pattern_only[self.head[self.find(w.dst)]]:  # rotary embeddings of part of q and k
                self.topology.skip(w.name, w.kind, REASONS["attention_only"])
            else:
                self.topology.skip(w.name, w.kind, "links between cut layers that no learned link reaches or "
                                                   "leaves: left out")
        return kept
