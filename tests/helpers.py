"""Small builders shared by the tests: networks with exactly the weights a check gives."""

import torch
import torch.nn as nn

from nngraph.ingest import compute_metrics, network_from_module


def mlp(weights_in_out, biases):
    """An MLP from weights in the paper's layout W[in, out] (transposed to PyTorch's (out, in))."""
    layers = []
    for w, b in zip(weights_in_out, biases):
        w = torch.tensor(w, dtype=torch.float64).T
        linear = nn.Linear(w.shape[1], w.shape[0]).double()
        with torch.no_grad():
            linear.weight.copy_(w)
            linear.bias.copy_(torch.tensor(b, dtype=torch.float64))
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def conv(kernel, bias, stride=1, padding=0):
    kernel = torch.tensor(kernel, dtype=torch.float64)
    layer = nn.Conv2d(1, 1, kernel.shape[-1], stride=stride, padding=padding).double()
    with torch.no_grad():
        layer.weight.copy_(kernel.reshape(1, 1, *kernel.shape))
        layer.bias.fill_(bias)
    return layer


def metrics_of(module, input_shape=None, **options):
    return compute_metrics(network_from_module(module, input_shape), **options)
