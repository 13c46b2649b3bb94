"""The values of an unrolled recurrent layer's node layers (recurrent.py), step by step, for
data-dependent metrics: a recurrent op computes all its steps at once, so they are computed
again here, from the op's own inputs and weights, with PyTorch's equations.

Per step t, NS and NA of each node layer (METRICS.md section 6):
- Elman: h[t]: NS = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, NA = tanh or relu of it.
- LSTM: gates i, f, g, o: NS their pre-activations, NA sigmoid (tanh for g); c[t] and h[t]
  hold products (f c + i g, o tanh c), not sums over links: NS = NA = their value.
- GRU: r and z as the LSTM gates; n: NS = W_in x + b_in + r (W_hn h + b_hn), NA = tanh of it;
  h[t] = (1 - z) n + z h_{t-1}: NS = NA = its value.
"""

from __future__ import annotations

import re

import torch

STEP_LAYER = re.compile(r"^(?P<prefix>.*)\.(?P<gate>[a-z])\[(?P<t>\d+)\]$")


def step_of(name: str, op_path: str, num_layers: int) -> tuple[int, str, int] | None:
    """(depth, gate, t) of an unrolled node layer named as recurrent.unroll names it."""
    match = STEP_LAYER.match(name)
    if match is None:
        return None
    prefix, depth = match["prefix"], 0
    if num_layers > 1:
        depth_match = re.fullmatch(re.escape(op_path) + r"\.l(\d+)", prefix)
        if depth_match is None:
            return None
        depth = int(depth_match[1])
    elif prefix != op_path:
        return None
    return depth, match["gate"], int(match["t"])


def step_values(op: str, args) -> dict[tuple[int, str, int], tuple[torch.Tensor, torch.Tensor]]:
    """{(depth, gate, t): (NS, NA)}, each (batch, hidden), from an aten rnn_tanh / rnn_relu /
    lstm / gru call's arguments (input, hx, params, has_biases, num_layers, dropout, train,
    bidirectional, batch_first)."""
    x, hx, params, has_biases, num_layers = args[0], args[1], list(args[2]), bool(args[3]), int(args[4])
    batch_first = bool(args[8])
    sequence = x if batch_first else x.transpose(0, 1)  # (batch, T, features)
    per_layer = 4 if has_biases else 2
    values = {}
    for depth in range(num_layers):
        w_ih, w_hh, *biases = params[depth * per_layer:(depth + 1) * per_layer]
        b_ih, b_hh = biases if has_biases else (None, None)
        h = hx[0][depth] if op == "lstm" else hx[depth]
        c = hx[1][depth] if op == "lstm" else None
        outputs = []
        for t in range(sequence.shape[1]):
            from_input = _affine(sequence[:, t], w_ih, b_ih)
            from_state = _affine(h, w_hh, b_hh)
            step = t + 1
            if op == "lstm":
                i, f, g, o = (from_input + from_state).chunk(4, dim=-1)
                gates = {"i": (i, torch.sigmoid(i)), "f": (f, torch.sigmoid(f)), "g": (g, torch.tanh(g)),
                         "o": (o, torch.sigmoid(o))}
                c = gates["f"][1] * c + gates["i"][1] * gates["g"][1]
                h = gates["o"][1] * torch.tanh(c)
                gates.update({"c": (c, c), "h": (h, h)})
            elif op == "gru":
                r_in, z_in, n_in = from_input.chunk(3, dim=-1)
                r_h, z_h, n_h = from_state.chunk(3, dim=-1)
                r, z = r_in + r_h, z_in + z_h
                n = n_in + torch.sigmoid(r) * n_h
                h = (1 - torch.sigmoid(z)) * torch.tanh(n) + torch.sigmoid(z) * h
                gates = {"r": (r, torch.sigmoid(r)), "z": (z, torch.sigmoid(z)), "n": (n, torch.tanh(n)),
                         "h": (h, h)}
            else:
                z = from_input + from_state
                h = torch.relu(z) if op == "rnn_relu" else torch.tanh(z)
                gates = {"h": (z, h)}
            for gate, pair in gates.items():
                values[depth, gate, step] = pair
            outputs.append(h)
        sequence = torch.stack(outputs, dim=1)
    return values


ACTIVATION_OF = {"rnn_tanh": {"h": "tanh"}, "rnn_relu": {"h": "relu"},
                 "lstm": {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"},
                 "gru": {"r": "sigmoid", "z": "sigmoid", "n": "tanh"}}


def _affine(x, weight, bias):
    return torch.nn.functional.linear(x, weight, bias)
