"""Build a Topology: from the forward pass of a module or a .pt2 archive (trace.py), or from a
bare state_dict (an MLP chain, a recurrent network, or every Linear layer on its own).

The forward pass is the source of truth (METRICS.md section 9): layer order and wiring come from
torch.export, never from the alphabetical order of keys. A state_dict without its module can
only be read where the keys alone say how the layers connect.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Mapping

from nngraph.errors import NNGraphError, first_line

from .network import Topology, WeightLayer
from .recurrent import unroll
from .fx_nodes import block_of
from .trace import from_exported

LOG = logging.getLogger("nngraph")


def from_module(module, input_shape: tuple[int, ...] | None = None, *, time_steps: int | None = None,
                fold_batch_norm: bool = True) -> Topology:
    """Trace a module with torch.export on a zero input of `input_shape` (without the batch);
    recurrent models on `time_steps` steps, Hugging Face models on `time_steps` tokens (8 by default)
    or, for images, on the size their config gives when `input_shape` does not."""
    import torch

    check_time_steps(time_steps)
    args, kwargs = _example(module, input_shape, time_steps)
    shape = tuple(next(iter(kwargs.values())).shape[1:]) if kwargs else tuple(args[0].shape[1:])
    was_training = module.training
    module.eval()  # normalisation and dropout in their inference form
    try:
        with torch.no_grad():
            try:
                module(*args, **kwargs)
            except Exception as exc:  # the user's model: whatever it raises means the input does not fit
                if getattr(getattr(module, "config", None), "is_encoder_decoder", False):
                    raise NNGraphError(f"{type(module).__name__} is an encoder-decoder model, which runs on decoder "
                                       "inputs too: nngraph reads an encoder or a decoder alone (save "
                                       "model.get_encoder(), or a T5EncoderModel)") from None
                raise NNGraphError(f"the model does not run on an input of shape {shape} ({type(exc).__name__}: "
                                   f"{first_line(exc)}); check --input-shape (without the batch) or "
                                   "--time-steps") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # export's notes on RNN flat weights and the like
                program = torch.export.export(module, args, kwargs=kwargs, strict=False)
        except Exception as exc:  # it runs but cannot be traced: data-dependent control flow, opaque ops
            return untraced(module, first_line(exc))
    finally:
        module.train(was_training)
    return from_exported(program, fold_batch_norm=fold_batch_norm)


def untraced(module, error: str) -> Topology:
    """What can be read without the forward pass: every Linear layer on its own (as
    --topology bipartite); every other module with weights listed with the reason."""
    import torch.nn as nn

    LOG.warning("the forward pass could not be traced (%s): each Linear layer is read on its own, and the "
                "modules between them are listed as skipped", error)
    linear = {f"{name}.{key}" if name else key: tensor for name, sub in module.named_modules()
              if isinstance(sub, nn.Linear) for key, tensor in sub.state_dict().items()}
    if not linear:
        raise NNGraphError(f"the forward pass could not be traced ({error}), and the model has no Linear layers "
                           "to read on their own; save it with torch.export.save, or simplify its forward")
    topology = bipartite_from_state_dict(linear, "the model")
    reason = f"the forward pass could not be traced ({error}): not connected"
    for name, sub in module.named_modules():
        if not isinstance(sub, nn.Linear) and any(True for _ in sub.parameters(recurse=False)):
            topology.skip(name, type(sub).__name__, reason)
    topology.skip("(the whole model)", type(module).__name__, reason)
    return topology


def check_time_steps(time_steps) -> None:
    if time_steps is not None and (isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1):
        raise NNGraphError(f"--time-steps {time_steps!r}: give a whole number of steps, 1 or more")


def _example(module, input_shape, time_steps):
    """Example arguments for export: token ids for a Hugging Face model, else a zero tensor."""
    import torch

    if hasattr(module, "config") and getattr(module, "main_input_name", None) == "input_ids":
        ids = torch.zeros((1, time_steps or 8), dtype=torch.long)
        kwargs = {"input_ids": ids}
        if hasattr(module.config, "use_cache"):
            kwargs["use_cache"] = False  # the cache object is not a tensor output
        return (), kwargs
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    if input_shape is None and getattr(module, "main_input_name", None) == "pixel_values":
        input_shape = _config_image_shape(module.config)
    if input_shape is None:
        input_shape = _infer_input_shape(module, time_steps)
    elif time_steps is not None and _first_recurrent(module) is not None:
        input_shape = (time_steps, *input_shape[1:])
    recurrent = _first_recurrent(module)
    if recurrent is not None and not recurrent.batch_first:  # (T, batch, features)
        return (torch.zeros((input_shape[0], 1, *input_shape[1:]), dtype=dtype),), {}
    return (torch.zeros((1, *input_shape), dtype=dtype),), {}


def _config_image_shape(config) -> tuple[int, ...] | None:
    """(channels, height, width) of a Hugging Face vision config (ViT's image_size: 224 or
    [224, 224]), else None."""
    size, channels = getattr(config, "image_size", None), getattr(config, "num_channels", None)
    if isinstance(size, int):
        size = (size, size)
    if not isinstance(channels, int) or not isinstance(size, (tuple, list)) or len(size) != 2:
        return None
    return (channels, *size)


def _first_recurrent(module):
    import torch.nn as nn

    for sub in module.modules():
        if isinstance(sub, (nn.RNN, nn.LSTM, nn.GRU)):
            return sub
        if isinstance(sub, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return None
    return None


def _infer_input_shape(module, time_steps) -> tuple[int, ...]:
    import torch.nn as nn

    for sub in module.modules():
        if isinstance(sub, (nn.RNN, nn.LSTM, nn.GRU)):
            if time_steps is None:
                raise NNGraphError("a recurrent model is unrolled over a number of time steps: give "
                                   "time_steps=T (CLI: --time-steps T)")
            return (time_steps, sub.input_size)
        if isinstance(sub, nn.Linear):
            return (sub.in_features,)
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise NNGraphError("a convolutional model needs its input size to build the graph: "
                               "give input_shape=(C, H, W) (CLI: --input-shape C,H,W)")
    raise NNGraphError("the model has no Linear, Conv or recurrent layers: nothing to turn into a graph")


RECURRENT_KEY = re.compile(r"^(?:(.*)\.)?weight_ih_l(\d+)$")
CELLS = {1: "rnn", 3: "gru", 4: "lstm"}  # stacked gate rows per hidden unit


def from_state_dict(tensors: Mapping, source: str, time_steps: int | None = None) -> Topology:
    """A bare state_dict: its 2-D `*.weight` tensors, in order, must chain as an MLP, after a
    recurrent layer (`*.weight_ih_l0`...) unrolled over `time_steps` when there is one."""
    topology = Topology()
    keys = list(tensors.keys())
    recurrent = [m for m in map(RECURRENT_KEY.match, keys) if m]
    previous = None
    if recurrent:
        previous, used = _recurrent(topology, tensors, recurrent, source, time_steps)
        keys = [k for k in keys if k not in used]
    weight_keys = [k for k in keys if k.endswith("weight") and len(tensors[k].shape) == 2]
    conv_keys = [k for k in keys if k.endswith("weight") and len(tensors[k].shape) in (3, 4, 5)]
    if conv_keys:
        raise NNGraphError(
            f"{source}: {conv_keys[0]} is a convolution kernel, and a state_dict alone does not say "
            "its stride, padding or input size. Pass --arch package.module:factory (a function "
            "returning the nn.Module) with --input-shape C,H,W, or save the model with "
            "torch.export.save and pass the .pt2 file")
    if not weight_keys and previous is None:
        raise NNGraphError(f"{source}: no Linear weights (2-D '*.weight' tensors) found: "
                           "nothing to turn into a graph")
    used = set(weight_keys) | set(tensors.keys()) - set(keys)
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
                    "If this is not a plain MLP, pass --arch package.module:factory or a .pt2 file; for a "
                    "transformer, its model directory (config.json and safetensors); or --topology bipartite "
                    "to read every Linear layer on its own")
            src = previous
        bias_key = prefix + "bias" if prefix + "bias" in tensors else None
        if bias_key is not None:
            used.add(bias_key)
            if tuple(tensors[bias_key].shape) != (out_features,):
                raise NNGraphError(f"{source}: layer {name}: bias shape "
                                   f"{tuple(tensors[bias_key].shape)} does not match {out_features} outputs")
        dst = topology.add_node_layer(name, "linear", (out_features,))
        topology.weight_layers.append(WeightLayer(name, "linear", key, (bias_key,) if bias_key else (), src, dst))
        previous = dst
    for key in keys:
        if key not in used:
            topology.skip(key.rsplit(".", 1)[0], "tensor",
                          "not a Linear weight or bias: no graph (normalisation or other parameters)")
    return topology


def _recurrent(topology: Topology, tensors: Mapping, matches, source: str, time_steps):
    """One recurrent module's weight_ih_l0.. (the state_dict of nn.RNN, LSTM or GRU), unrolled;
    returns the last hidden layer and the keys it used."""
    prefixes = {m.group(1) for m in matches}
    if len(prefixes) > 1 or any(k.endswith("_reverse") for k in tensors.keys()):
        raise NNGraphError(f"{source}: more than one recurrent module, or a bidirectional one: a state_dict alone "
                           "does not say how they connect. Pass --arch package.module:factory")
    if time_steps is None:
        raise NNGraphError(f"{source}: a recurrent network is unrolled over a number of time steps: give "
                           "--time-steps T")
    check_time_steps(time_steps)
    prefix = matches[0].group(1)
    key = (lambda name: f"{prefix}.{name}" if prefix else name)  # noqa: E731
    depth, stacked, used = len(matches), [], set()
    for layer in range(depth):
        names = {part: key(f"{part.replace('w_', 'weight_').replace('b_', 'bias_')}_l{layer}")
                 for part in ("w_ih", "w_hh", "b_ih", "b_hh")}
        if names["w_hh"] not in tensors:
            raise NNGraphError(f"{source}: {names['w_ih']} has no {names['w_hh']}: not a recurrent state_dict")
        stacked.append({part: (n if n in tensors else None) for part, n in names.items()})
        used.update(n for n in names.values() if n in tensors)
    hidden = int(tensors[stacked[0]["w_hh"]].shape[1])
    gates = int(tensors[stacked[0]["w_ih"]].shape[0]) // hidden
    if gates not in CELLS or len(tensors[stacked[0]["w_ih"]].shape) != 2:
        raise NNGraphError(f"{source}: {stacked[0]['w_ih']} has {gates} stacked gates; expected 1 (RNN), "
                           "3 (GRU) or 4 (LSTM)")
    input_size = int(tensors[stacked[0]["w_ih"]].shape[1])
    inputs = [topology.add_node_layer(f"x[{t}]", "input", (input_size,)) for t in range(1, time_steps + 1)]
    sequence, _ = unroll(topology, CELLS[gates], stacked, inputs, hidden, prefix or CELLS[gates])
    return sequence[-1], used




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
        group = block_of(key)
        src = topology.add_node_layer(f"{name} (inputs)", "input", (in_features,), group)
        dst = topology.add_node_layer(name, "linear", (out_features,), group)
        topology.weight_layers.append(WeightLayer(name, "linear", key, (bias_key,) if bias_key else (), src, dst))
        used.update({key, bias_key})
    if not topology.weight_layers:
        raise NNGraphError(f"{source}: no Linear weights (2-D '*.weight' tensors) found: nothing to turn into a graph")
    for key in tensors.keys():
        if key not in used:
            topology.skip(key.rsplit(".", 1)[0], "tensor",
                          "not a Linear weight or bias: no graph (normalisation or other parameters)")
    return topology
