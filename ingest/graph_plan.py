"""What the graph call (graph_pass.py) needs of a topology, the same for each of its versions.

Folding a layer's norms and biases in Python (folding.py) cost MiniLM's 55 layers 0.48 ms a
version, a tenth of the metrics. The plan turns the topology's folding rules into tables of
integers once: the stored tensors each layer reads (each key once), its row slice, its biases,
the affine maps folded into it. A version then gives only its tensors' addresses, and the call
folds them as folding.py does (graph_fold.py). It also keeps each layer's link-weight sample
positions and where its sample goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from .folding import links_have_bias
from .network import kept_per_topology

LINEAR, IDENTITY, OWN = 0, 1, 2  # OWN: a layer the call never reads (its own pass, layer_passes.py)
NONE = -1
# the columns of Plan.dims
KEY, ROW0, ROWS, COLUMNS = range(4)
# the columns of Plan.affines: the keys of an affine map's gain, shift, mean and variance, whether
# its shift is added here, whether torch computes it (folding.Affine.given), how many nodes it acts on,
# and where its scale and shift go in their buffer
GAIN, SHIFT, MEAN, VAR, WITH_SHIFT, GIVEN, SIZE, AT = range(8)


@dataclass
class Plan:
    topology: object  # kept, so that its id stays its own
    exact_limit: int
    keys: list[str]  # every stored tensor the call reads, once
    shapes: list  # each key's shape when the plan was made: a version with another takes its own passes
    matrix: list[bool]  # each key's role: a weight (read by rows) or a vector (read whole)
    kind: np.ndarray  # per weight layer: LINEAR, IDENTITY or OWN
    key_lists: list[list[int]]  # per weight layer, the keys it reads
    dims: np.ndarray  # per weight layer: (weight key, first row, rows, columns)
    links: np.ndarray  # per weight layer: rows x columns, an identity layer's one a row
    weight_bytes: np.ndarray  # the stored weights it reads (identity links: none)
    bias_keys: np.ndarray  # the keys of the layers' biases, end to end
    bias_at: np.ndarray  # where each layer's start and end in bias_keys
    affine_uses: np.ndarray  # the affine maps folded into the layers (rows of `affines`), end to end
    in_at: np.ndarray  # where each layer's in-affines (read: reversed) start and end in affine_uses
    out_at: np.ndarray  # ... and its out-affines
    affines: np.ndarray  # each affine map at one size: the columns above
    affine_values: int  # the length of the buffer of their scales and shifts
    given: list  # (folding.Affine, size, where, keys) of those torch computes (folding.Affine.given)
    node_at: np.ndarray  # (first node read, first node entered) in the node sums
    has_bias: np.ndarray
    positions: np.ndarray  # the sample positions of the weights, of every layer end to end
    position_at: np.ndarray
    bias_positions: np.ndarray
    bias_position_at: np.ndarray
    sample_at: np.ndarray  # where each layer's sample starts and ends: those of one length end to end,
    # so that LinkWeightStats sorts them where they are (link_weights.py)


_PLANS: dict = {}


def plan_of(network, link_weights, node_sums) -> Plan:
    """The topology's plan, made from this version's tensors' shapes the first time."""
    return kept_per_topology(_PLANS, network.topology, link_weights.exact_limit,
                             lambda: _Builder(network, link_weights, node_sums).plan())


class _Builder:
    def __init__(self, network, link_weights, node_sums):
        self.network, self.link_weights, self.node_sums = network, link_weights, node_sums
        self.keys: dict[str, int] = {}
        self.shapes, self.matrix = [], []
        self.affine_rows: dict[tuple, int] = {}
        self.affines, self.given, self.affine_values = [], [], 0

    def plan(self) -> Plan:
        layers = self.network.topology.weight_layers
        kind, layer_keys, dims, bias_keys, bias_at, uses, in_at, out_at = [], [], [], [], [], [], [], []
        node_at, has_bias, positions, bias_positions = [], [], [], []
        for layer in layers:
            read = self._layer(layer)
            if read is None:
                read = OWN, [], (None, 0, 0, 0), [], [], []
            layer_kind, keys, (weight, row0, rows, columns), biases, ins, outs = read
            kind.append(layer_kind)
            layer_keys.append([self._key(*key) for key in keys])
            dims.append((NONE if weight is None else self.keys[weight], row0, rows, columns))
            bias_at.append((len(bias_keys), len(bias_keys) + len(biases)))
            bias_keys += [self.keys[key] for key in biases]
            in_at.append((len(uses), len(uses) + len(ins)))
            uses += [self._affine(affine, columns) for affine in ins]
            out_at.append((len(uses), len(uses) + len(outs)))
            uses += [self._affine(affine, rows) for affine in outs]
            n_bias = rows if layer_kind != OWN and links_have_bias(layer) else 0
            has_bias.append(n_bias > 0)
            node_at.append(self.node_sums.first_nodes(layer))
            n_links = rows if layer_kind == IDENTITY else rows * columns
            weights, bias = self.link_weights.positions(layer, n_links, n_bias)
            positions.append(weights)
            bias_positions.append(bias)
        dims, kind = np.array(dims, np.int64).reshape(-1, 4), np.array(kind, np.int64)
        links = np.where(kind == IDENTITY, dims[:, ROWS], dims[:, ROWS] * dims[:, COLUMNS])
        lengths = np.array([w.size + b.size for w, b in zip(positions, bias_positions)], np.int64)
        by_length = np.argsort(lengths, kind="stable")
        ends = np.empty_like(lengths)
        ends[by_length] = np.cumsum(lengths[by_length])
        return Plan(self.network.topology, self.link_weights.exact_limit, list(self.keys), self.shapes, self.matrix,
                    kind, layer_keys, dims, links, np.where(kind == LINEAR, 4 * links, 0),
                    np.array(bias_keys, np.int64), _pairs(bias_at), np.array(uses, np.int64), _pairs(in_at),
                    _pairs(out_at), np.array(self.affines, np.int64).reshape(-1, AT + 1), self.affine_values,
                    self.given, _pairs(node_at), np.array(has_bias), *_flat(positions), *_flat(bias_positions),
                    np.stack((ends - lengths, ends), 1))

    def _layer(self, layer):
        """(kind, [(key, is matrix, shape)], dims, bias keys, in-affines, out-affines) of a layer the
        call can read, or None. The vectors must hold one value per node they act on (bind checks
        the same): the call reads them by address. Each shape is read once (a lazy mapping loads
        the tensor to give it)."""
        tensors, node_layers = self.network.tensors, self.network.topology.node_layers
        if layer.kind == "identity" and layer.repeat == 1:
            weight, row0, rows = None, 0, layer.size
            columns, stored_rows, keys = rows, rows, []
        elif layer.kind == "linear" and not layer.transposed and layer.weight_key is not None and not layer.row_period:
            weight = layer.weight_key
            shape = tensors[weight].shape
            if len(shape) != 2:
                return None
            stored_rows, columns = shape
            row0, stop = layer.rows if layer.rows is not None else (0, stored_rows)
            rows, keys = stop - row0, [(weight, True, shape)]
            if not 0 <= row0 < stop <= stored_rows:
                return None
        else:
            return None
        if columns != node_layers[layer.src].nodes or layer.dst_offset + rows > node_layers[layer.dst].nodes:
            return None  # the node sums it adds into (bind refuses such a version)
        vectors = [(key, stored_rows) for key in layer.bias_keys]
        vectors += [(key, size // affine.per) for affines, size in ((layer.in_affines, columns),
                                                                     (layer.out_affines, rows))
                    for affine in affines for key in affine.keys()]
        for key, size in vectors:
            shape = tensors[key].shape
            if prod(shape) != size:  # a map of more nodes than the links enter (a concatenation's part)
                return None
            keys.append((key, False, shape))
        return (IDENTITY if weight is None else LINEAR), keys, (weight, row0, rows, columns), \
            list(layer.bias_keys), layer.in_affines, layer.out_affines

    def _key(self, key: str, matrix: bool, shape) -> int:
        if key not in self.keys:
            self.keys[key] = len(self.keys)
            self.shapes.append(shape)
            self.matrix.append(matrix)
        return self.keys[key]

    def _affine(self, affine, size: int) -> int:
        """The row of an affine map at one size: computed once a version, however many layers read it."""
        found = self.affine_rows.get((affine, size))
        if found is None:
            found = self.affine_rows[affine, size] = len(self.affines)
            keys = [NONE if key is None else self.keys[key] for key in
                    (affine.gain_key, affine.shift_key, affine.mean_key, affine.var_key)]
            self.affines.append((*keys, affine.with_shift, affine.given, size, self.affine_values))
            if affine.given:
                self.given.append((affine, size, self.affine_values, [k for k in keys if k != NONE]))
            self.affine_values += 2 * size
        return found


def _pairs(pairs: list) -> np.ndarray:
    return np.array(pairs, np.int64).reshape(-1, 2)


def _flat(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The arrays end to end, and where each starts and ends."""
    sizes = np.array([a.size for a in arrays], np.int64)
    ends = np.cumsum(sizes)
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    return flat.astype(np.int64, copy=False), np.stack((ends - sizes, ends), 1)
