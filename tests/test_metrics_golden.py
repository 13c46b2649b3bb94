"""The hand-computed checks of METRICS.md section 8, A to F, in PyTorch layouts."""

import numpy as np
import pytest
import torch

from helpers import conv, metrics_of, mlp

W0 = [[1, -2, 0.5], [0, 3, -1]]
B0 = [0.1, -0.2, 0.3]
W1 = [[2, -1], [0.5, 0.5], [-3, 1]]
B1 = [1, -1]
KERNEL_1_9 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_a_mlp_strengths_and_fluctuation(device):
    result = metrics_of(mlp([W0, W1], [B0, B1]), device=device)
    strengths = [layer.strength for layer in result.node_layers]
    np.testing.assert_allclose(strengths[0], [-0.5, 2])
    np.testing.assert_allclose(strengths[1], [2.1, 1.8, -2.2])
    np.testing.assert_allclose(strengths[2], [0.5, -0.5])
    np.testing.assert_allclose([m.fluctuation for m in result.node_layers], [1.25, 1.9601587237, 0.5])


def test_a_without_bias_and_not_ddof1(device):
    result = metrics_of(mlp([W0, W1], [[0, 0, 0], [0, 0]]), device=device)
    assert result.node_layers[1].fluctuation == pytest.approx(2.1213203, abs=1e-7)
    with_bias = metrics_of(mlp([W0, W1], [B0, B1]), device=device).node_layers[1]
    assert with_bias.fluctuation != pytest.approx(2.4006943, abs=1e-3)  # the ddof=1 mistake
    assert np.std(with_bias.strength, ddof=1) == pytest.approx(2.4006943, abs=1e-7)


def conv_strengths(kernel, bias, size, device, **geometry):
    result = metrics_of(conv(kernel, bias, **geometry), (1, size, size), device=device)
    first, last = result.node_layers
    out_shape = last.layer.shape[1:]
    return first.s_out.reshape(size, size), last.s_in.reshape(out_shape), result


def test_b_conv_stride_1(device):
    s_out, s_in, _ = conv_strengths(KERNEL_1_9, 0.5, 4, device)
    np.testing.assert_allclose(s_out, [[1, 3, 5, 3], [5, 12, 16, 9], [11, 24, 28, 15], [7, 15, 17, 9]])
    np.testing.assert_allclose(s_in, np.full((2, 2), 45.5))
    coverage, _, _ = conv_strengths(np.ones((3, 3)), 0.0, 4, device)
    np.testing.assert_allclose(coverage, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_c_signed_kernel(device):
    s_out, s_in, _ = conv_strengths([[1, -1, 0], [2, 0, -2], [0, 1, 1]], -0.25, 4, device)
    np.testing.assert_allclose(s_out, [[1, 0, -1, 0], [3, 2, -3, -2], [2, 3, 0, -1], [0, 1, 2, 1]])
    np.testing.assert_allclose(s_in, np.full((2, 2), 1.75))


def test_d_stride_2(device):
    s_out, s_in, _ = conv_strengths(KERNEL_1_9, 0.5, 5, device, stride=2)
    np.testing.assert_allclose(s_out, [[1, 2, 4, 2, 3], [4, 5, 10, 5, 6], [8, 10, 20, 10, 12],
                                       [4, 5, 10, 5, 6], [7, 8, 16, 8, 9]])
    np.testing.assert_allclose(s_in, np.full((2, 2), 45.5))


def test_e_padding_exact_and_paper(device):
    s_out, s_in, result = conv_strengths(KERNEL_1_9, 0.5, 4, device, padding=1)
    np.testing.assert_allclose(s_out, [[12, 21, 21, 16], [27, 45, 45, 33], [27, 45, 45, 33], [24, 39, 39, 28]])
    np.testing.assert_allclose(s_in, [[28.5, 39.5, 39.5, 24.5], [33.5, 45.5, 45.5, 27.5],
                                      [33.5, 45.5, 45.5, 27.5], [16.5, 21.5, 21.5, 12.5]])
    paper = metrics_of(conv(KERNEL_1_9, 0.5, padding=1), (1, 4, 4), device=device, paper_conv_in_strength=True)
    np.testing.assert_allclose(paper.node_layers[1].s_in, np.full(16, 45.5))
    np.testing.assert_allclose(paper.node_layers[0].s_out, s_out.reshape(-1))  # out-strength is unaffected
    # per axis the output positions see 2, 3, 3, 2 real (non-padding) taps: 10 x 10 edges
    assert result.weight_layers[0].edges == sum(a * b for a in (2, 3, 3, 2) for b in (2, 3, 3, 2))


def test_f_invariants(device):
    torch.manual_seed(1)
    module = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()
    base = metrics_of(module, device=device)
    out_0, in_1 = base.node_layers[0].s_out, base.node_layers[1].s_in
    assert out_0.sum() == pytest.approx(in_1.sum() - module[0].bias.sum().item())

    plus_one = metrics_of(module, device=device, plus_one=True)
    np.testing.assert_allclose([m.fluctuation for m in plus_one.node_layers],
                               [m.fluctuation for m in base.node_layers])
    np.testing.assert_allclose(plus_one.node_layers[0].strength, base.node_layers[0].strength + 1)

    permuted = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()
    order = torch.randperm(5)
    with torch.no_grad():
        permuted[0].weight.copy_(module[0].weight[order])
        permuted[0].bias.copy_(module[0].bias[order])
        permuted[2].weight.copy_(module[2].weight[:, order])
        permuted[2].bias.copy_(module[2].bias)
        scaled = [p.mul_(-3.0) for p in module.parameters()]
    np.testing.assert_allclose([m.fluctuation for m in metrics_of(permuted, device=device).node_layers],
                               [m.fluctuation for m in base.node_layers])
    assert scaled
    np.testing.assert_allclose([m.fluctuation for m in metrics_of(module, device=device).node_layers],
                               [3 * m.fluctuation for m in base.node_layers])
