"""Build a Topology: from a torch.export graph (modules and .pt2 files) or a bare state_dict.

Rules (METRICS.md section 1, and the documented ones for layers the paper does not define):
- Linear and Conv1d/2d/3d are weight layers; their input and output neurons are node layers.
- Activations, dropout, flatten and reshapes keep the same nodes (flatten orders (c, h, w)).
- Normalisation rescales each node without edges: its nodes pass through unchanged; it is
  listed as skipped with that reason.
- Anything else that consumes neurons (pooling, residual additions, attention, embeddings,
  recurrent cells) has no graph: it is listed as skipped and the graph is cut there; the
  next weight layer starts from a new node layer (kind "cut") with only out-strength.
"""

from __future__ import annotations

import re

from typing import Mapping

from nngraph.errors import NNGraphError

from .network import Topology, WeightLayer

PASS_THROUGH = {
    "relu", "relu_", "gelu", "tanh", "sigmoid", "silu", "elu", "selu", "celu", "leaky_relu",
    "hardtanh", "softplus", "mish", "hardswish", "hardsigmoid", "softmax", "log_softmax",
    "_softmax", "_log_softmax", "dropout", "feature_dropout", "alpha_dropout", "clone",
    "contiguous", "detach", "_to_copy", "to", "alias", "lift_fresh_copy", "flatten", "view",
    "reshape", "_unsafe_view", "squeeze", "unsqueeze", "getitem", "identity",
}
NORMALISATION = {
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit", "layer_norm", "native_layer_norm", "group_norm",
    "native_group_norm", "instance_norm", "rms_norm",
}
CONV = {"conv1d", "conv2d", "conv3d", "convolution"}
REASONS = {
    "pool": "pooling has no weights and changes the node set: the graph is cut here",
    "add": "a residual addition merges node layers without weights: the graph is cut here",
    "attention": "attention weights depend on the data, not on stored weights: no fixed graph",
    "embedding": "an embedding is a lookup table, not weighted links between neurons",
    "recurrent": "recurrent cells are not supported yet (METRICS.md section 6): the graph is cut here",
}
NORM_REASON = "normalisation rescales each node without links: its nodes pass through unchanged"


def op_name(node) -> str:
    return getattr(node.target, "_opname", None) or getattr(node.target, "__name__", str(node.target))


def reason_for(op: str) -> str:
    if "pool" in op:
        return REASONS["pool"]
    if op in {"add", "add_", "sub", "cat"}:
        return REASONS["add"]
    if op in {"scaled_dot_product_attention", "matmul", "bmm", "baddbmm", "einsum"}:
        return REASONS["attention"]
    if "embedding" in op:
        return REASONS["embedding"]
    if op in {"lstm", "gru", "rnn_tanh", "rnn_relu"}:
        return REASONS["recurrent"]
    return f"{op} has no graph under the METRICS.md rules: the graph is cut here"


def module_label(node) -> tuple[str, str]:
    """(module path, module class) of the module a graph node came from."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return node.name, op_name(node)
    path, cls = list(stack.values())[-1]
    cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return path or node.name, cls_name.rsplit(".", 1)[-1]


def _shape(node) -> tuple[int, ...]:
    return tuple(int(s) for s in node.meta["val"].shape)


def _conv_padding(padding, kernel: tuple[int, ...], dilation: tuple[int, ...], name: str):
    """Explicit padding as given; 'valid' and 'same' turned into sizes."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple(0 for _ in kernel)
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in totals):
            raise NNGraphError(f"layer {name}: padding='same' with an even kernel pads unevenly; "
                               "use explicit padding")
        return tuple(t // 2 for t in totals)
    return padding


def _expand(value, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    return value * dims if len(value) == 1 else value


def from_exported(program) -> Topology:
    """Walk a torch.export ExportedProgram in execution order."""
    signature = program.graph_signature
    params = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
    topology = Topology()
    origin = {}  # graph node -> node-layer index, or the graph node where a cut started
    created = {}  # cut-start graph node -> node-layer index

    def node_layer(tensor_node, shape, cut_name):
        source = origin.get(tensor_node, tensor_node)
        if isinstance(source, int):
            if topology.node_layers[source].nodes == _numel(shape):
                return source
            source = tensor_node  # a reshape that changed the node set: start afresh
        if source not in created:
            is_input = source.op == "placeholder"
            created[source] = topology.add_node_layer("input" if is_input else cut_name,
                                                      "input" if is_input else "cut", shape)
        return created[source]

    for node in program.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op != "call_function":
            continue
        op = op_name(node)
        tensor_args = [a for a in node.args if hasattr(a, "op")]
        if op in PASS_THROUGH or op in NORMALISATION:
            if tensor_args:
                origin[node] = origin.get(tensor_args[0], tensor_args[0])
            if op in NORMALISATION:
                path, cls = module_label(node)
                topology.skip(path, cls, NORM_REASON)
            continue
        weight_arg = node.args[1] if len(node.args) > 1 else None
        is_weight_op = (op == "linear" or op in CONV) and getattr(weight_arg, "name", None) in params
        if is_weight_op and op == "convolution" and node.args[6]:
            is_weight_op = False  # transposed convolution: not in METRICS.md
        if not is_weight_op:
            uses = [a for a in tensor_args if a.op != "placeholder" or a.name in params
                    or a.name in signature.user_inputs]
            if uses:
                path, cls = module_label(node)
                topology.skip(path, cls, reason_for(op))
            continue
        _add_weight_layer(topology, node, op, params, node_layer, origin)

    if not topology.weight_layers:
        raise NNGraphError("the model has no Linear or Conv layers: nothing to turn into a graph")
    return topology


def _numel(shape) -> int:
    count = 1
    for s in shape:
        count *= s
    return count


def _add_weight_layer(topology, node, op, params, node_layer, origin):
    x, w = node.args[0], node.args[1]
    bias_arg = node.args[2] if len(node.args) > 2 else None
    weight_key = params[w.name]
    bias_key = params[bias_arg.name] if bias_arg is not None else None
    name = weight_key.rsplit(".", 1)[0] if "." in weight_key else weight_key
    w_shape, x_shape, y_shape = _shape(w), _shape(x), _shape(node)
    cut_name = f"before {name}"
    if op == "linear":
        src = node_layer(x, (w_shape[1],), cut_name)
        dst = topology.add_node_layer(name, "linear", (w_shape[0],))
        topology.weight_layers.append(WeightLayer(name, "linear", weight_key, bias_key, src, dst))
    else:
        dims = len(w_shape) - 2
        args = list(node.args) + [None] * 9
        if op == "convolution":
            stride, padding, dilation, groups = args[3], args[4], args[5], args[8]
        else:
            stride, padding, dilation, groups = args[3] or 1, args[4] or 0, args[5] or 1, args[6] or 1
        stride, dilation = _expand(stride, dims), _expand(dilation, dims)
        padding = _expand(_conv_padding(padding, w_shape[2:], dilation, name), dims)
        in_shape = x_shape[1:]
        src = node_layer(x, in_shape, cut_name)
        dst = topology.add_node_layer(name, f"conv{dims}d", y_shape[1:])
        topology.weight_layers.append(WeightLayer(
            name, f"conv{dims}d", weight_key, bias_key, src, dst, in_shape=in_shape,
            stride=stride, padding=padding, dilation=dilation, groups=int(groups)))
    origin[node] = dst


def from_module(module, input_shape: tuple[int, ...] | None = None) -> Topology:
    """Trace a module with torch.export on a zero input of `input_shape` (without the batch)."""
    import torch

    if input_shape is None:
        input_shape = _infer_input_shape(module)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    example = torch.zeros((1, *input_shape), dtype=dtype)
    was_training = module.training
    module.eval()  # normalisation and dropout in their inference form
    try:
        program = torch.export.export(module, (example,), strict=False)
    except Exception as exc:  # export raises many types; all mean the same to the user
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NNGraphError(f"could not trace the model with an input of shape {tuple(input_shape)}: "
                           f"{first_line}. Check --input-shape, or save it with torch.export.save "
                           "and pass the .pt2 file") from None
    finally:
        module.train(was_training)
    return from_exported(program)


def _infer_input_shape(module) -> tuple[int, ...]:
    import torch.nn as nn

    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return (sub.in_features,)
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise NNGraphError("a convolutional model needs its input size to build the graph: "
                               "give input_shape=(C, H, W) (CLI: --input-shape C,H,W)")
    raise NNGraphError("the model has no Linear or Conv layers: nothing to turn into a graph")


def from_state_dict(tensors: Mapping, source: str) -> Topology:
    """A bare state_dict: its 2-D `*.weight` tensors, in order, must chain as an MLP."""
    topology = Topology()
    keys = list(tensors.keys())
    weight_keys = [k for k in keys if k.endswith("weight") and len(tensors[k].shape) == 2]
    conv_keys = [k for k in keys if k.endswith("weight") and len(tensors[k].shape) in (3, 4, 5)]
    if conv_keys:
        raise NNGraphError(
            f"{source}: {conv_keys[0]} is a convolution kernel, and a state_dict alone does not say "
            "its stride, padding or input size. Pass --arch package.module:factory (a function "
            "returning the nn.Module) with --input-shape C,H,W, or save the model with "
            "torch.export.save and pass the .pt2 file")
    if not weight_keys:
        raise NNGraphError(f"{source}: no Linear weights (2-D '*.weight' tensors) found: "
                           "nothing to turn into a graph")
    used = set(weight_keys)
    previous = None
    for key in weight_keys:
        out_features, in_features = (int(s) for s in tensors[key].shape)
        prefix = key[: -len("weight")]
        name = prefix.rstrip(".") or key
        if previous is None:
            src = topology.add_node_layer("input", "input", (in_features,))
        else:
            if topology.node_layers[previous].nodes != in_features:
                raise NNGraphError(
                    f"{source}: shapes do not chain: layer {name} takes {in_features} inputs but "
                    f"the layer before it gives {topology.node_layers[previous].nodes} outputs. "
                    "If this is not a plain MLP, pass --arch package.module:factory or a .pt2 file, "
                    "or --topology bipartite to read every Linear layer on its own (transformers)")
            src = previous
        bias_key = prefix + "bias" if prefix + "bias" in tensors else None
        if bias_key is not None:
            used.add(bias_key)
            if tuple(tensors[bias_key].shape) != (out_features,):
                raise NNGraphError(f"{source}: layer {name}: bias shape "
                                   f"{tuple(tensors[bias_key].shape)} does not match {out_features} outputs")
        dst = topology.add_node_layer(name, "linear", (out_features,))
        topology.weight_layers.append(WeightLayer(name, "linear", key, bias_key, src, dst))
        previous = dst
    for key in keys:
        if key not in used:
            topology.skip(key.rsplit(".", 1)[0], "tensor",
                          "not a Linear weight or bias: no graph (normalisation or other parameters)")
    return topology


BLOCK = re.compile(r"^(.*?(?:^|\.)(?:layer|layers|h|block|blocks)\.\d+)\.")


def bipartite_from_state_dict(tensors: Mapping, source: str) -> Topology:
    """Every Linear weight on its own: a bipartite graph from its inputs to its outputs (the
    shapes need not chain), grouped by the block in its name (`encoder.layer.3.` -> block
    `encoder.layer.3`). The way to read a transformer's state_dict: its Linear layers share
    inputs and meet at residual additions, which a chain cannot express. Embeddings are
    lookup tables, not links, and are listed as skipped with everything else that is not a
    Linear weight or bias."""
    topology = Topology()
    used = set()
    natural = lambda key: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]  # noqa: E731
    for key in sorted(tensors.keys(), key=natural):  # block 10 after block 9
        tensor = tensors[key]
        if not key.endswith("weight") or len(tensor.shape) != 2:
            continue
        prefix = key[: -len("weight")]
        name = prefix.rstrip(".") or key
        if "embed" in key.lower():
            topology.skip(name, "embedding", "a lookup table indexed by token id, not links between neurons")
            used.add(key)
            continue
        out_features, in_features = (int(s) for s in tensor.shape)
        bias_key = prefix + "bias" if prefix + "bias" in tensors else None
        block = BLOCK.match(key)
        group = block.group(1) if block else ""
        src = topology.add_node_layer(f"{name} (inputs)", "input", (in_features,), group)
        dst = topology.add_node_layer(name, "linear", (out_features,), group)
        topology.weight_layers.append(WeightLayer(name, "linear", key, bias_key, src, dst))
        used.update({key, bias_key})
    if not topology.weight_layers:
        raise NNGraphError(f"{source}: no Linear weights (2-D '*.weight' tensors) found: nothing to turn into a graph")
    for key in tensors.keys():
        if key not in used:
            topology.skip(key.rsplit(".", 1)[0], "tensor",
                          "not a Linear weight or bias: no graph (normalisation or other parameters)")
    return topology
