"""Recurrent layers unrolled over T time steps (METRICS.md section 9).

Node layers per step t = 1..T: the input x[t], one layer per gate, the cell state (LSTM) and
the hidden state h[t]. Links (h[0] = 0 has no nodes, so step 1 has no recurrent links):
- Elman RNN: x[t] -> h[t] (W_ih, bias b_ih + b_hh), h[t-1] -> h[t] (W_hh).
- LSTM, gates i, f, g, o (PyTorch's order of the stacked rows): x[t] -> gate (its rows of W_ih,
  bias b_ih + b_hh), h[t-1] -> gate (its rows of W_hh); c[t] receives identity links from i[t],
  f[t], g[t] and c[t-1]; h[t] from o[t] and c[t]. The products (f * c, i * g, o * tanh c)
  depend on the data, so the gates meet their targets through identity links of weight 1.
- GRU, gates r, z, n: r and z as the LSTM gates; x[t] -> n[t] (W_in, bias b_in + b_hn),
  h[t-1] -> n[t] (W_hn), r[t] -> n[t] identity; h[t] receives identity links from n[t], z[t]
  and h[t-1].
A stacked layer reads the hidden states of the one below as its x[t]. Repeated uses of the
same weights are tied to their first use: the link-weight sample counts them once.
"""

from __future__ import annotations

from .network import Topology, WeightLayer

GATES = {"rnn_tanh": ("h",), "rnn_relu": ("h",), "rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
RECURRENT_OPS = {"rnn_tanh", "rnn_relu", "lstm", "gru"}


def unroll(topology: Topology, cell: str, keys: list[dict], inputs: list[int], hidden: int, name: str,
           group: str = "") -> tuple[list[int], list[int]]:
    """Unrolls `cell` ("rnn", "lstm" or "gru") over the node layers `inputs` (one per step), one
    stacked layer per entry of `keys` ({"w_ih", "w_hh", "b_ih", "b_hh"}; biases may be None).
    Returns (the top layer's h[1..T], the last h of every stacked layer)."""
    gates = GATES[cell]
    first_use = {}

    def link(label, key, rows, src, dst, bias_keys=()):
        tie = (key, rows)
        layer = WeightLayer(label, "linear", key, tuple(k for k in bias_keys if k), src, dst,
                            rows=rows if len(gates) > 1 else None, tied_to=first_use.get(tie))
        first_use.setdefault(tie, label)
        topology.weight_layers.append(layer)

    def identity(label, src, dst):
        topology.weight_layers.append(WeightLayer(label, "identity", None, (), src, dst, size=hidden))

    lasts = []
    for depth, weights in enumerate(keys):
        prefix = name if len(keys) == 1 else f"{name}.l{depth}"
        h_prev, c_prev, outputs = None, None, []
        for t, x in enumerate(inputs, 1):
            node = lambda label: topology.add_node_layer(f"{prefix}.{label}[{t}]", cell, (hidden,), group)  # noqa: E731
            gate_layers = {}
            for number, gate in enumerate(gates):
                rows = (number * hidden, (number + 1) * hidden)
                target = gate_layers[gate] = node(gate)
                biases = [weights["b_ih"], weights["b_hh"]]
                link(f"{prefix}.{gate}.ih[{t}]", weights["w_ih"], rows, x, target, biases)
                if h_prev is not None:
                    link(f"{prefix}.{gate}.hh[{t}]", weights["w_hh"], rows, h_prev, target)
            if cell == "lstm":
                c = node("c")
                for gate in ("i", "f", "g"):
                    identity(f"{prefix}.{gate}->c[{t}]", gate_layers[gate], c)
                if c_prev is not None:
                    identity(f"{prefix}.c->c[{t}]", c_prev, c)
                h = node("h")
                identity(f"{prefix}.o->h[{t}]", gate_layers["o"], h)
                identity(f"{prefix}.c->h[{t}]", c, h)
                c_prev = c
            elif cell == "gru":
                identity(f"{prefix}.r->n[{t}]", gate_layers["r"], gate_layers["n"])
                h = node("h")
                identity(f"{prefix}.n->h[{t}]", gate_layers["n"], h)
                identity(f"{prefix}.z->h[{t}]", gate_layers["z"], h)
                if h_prev is not None:
                    identity(f"{prefix}.h->h[{t}]", h_prev, h)
            else:
                h = gate_layers["h"]
            outputs.append(h)
            h_prev = h
        lasts.append(outputs[-1])
        inputs = outputs
    return inputs, lasts


def unroll_op(topology: Topology, op: str, args, x_shape, weight_keys: list[str], name: str, group: str):
    """An aten lstm/gru/rnn_* call unrolled; returns (top sequence, last states) or the reason it
    cannot be (a string)."""
    has_biases, num_layers, bidirectional, batch_first = bool(args[3]), int(args[4]), bool(args[7]), bool(args[8])
    if bidirectional:
        return "a bidirectional recurrent layer is not unrolled (METRICS.md section 9 reads one direction)"
    per_layer = 4 if has_biases else 2
    if len(weight_keys) != per_layer * num_layers:
        return "a recurrent layer with projections (proj_size) is not unrolled"
    steps = x_shape[1] if batch_first else x_shape[0]
    inputs = [topology.add_node_layer(f"x[{t}]", "input", (x_shape[-1],), group) for t in range(1, steps + 1)]
    keys = []
    for depth in range(num_layers):
        part = weight_keys[depth * per_layer:(depth + 1) * per_layer]
        keys.append({"w_ih": part[0], "w_hh": part[1], "b_ih": part[2] if has_biases else None,
                     "b_hh": part[3] if has_biases else None})
    cell = {"rnn_tanh": "rnn", "rnn_relu": "rnn"}.get(op, op)
    return unroll(topology, cell, keys, inputs, _hidden(args, x_shape, op), name, group)


def _hidden(args, x_shape, op) -> int:
    hx = args[1][0] if op == "lstm" else args[1]
    return int(hx.meta["val"].shape[-1])
