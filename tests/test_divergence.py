"""The reports' distances against scipy and scikit-learn, and by hand."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance
from sklearn.metrics import adjusted_rand_score

from nngraph.analysis import divergence as dv


def test_symmetric_kl_by_hand():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = 0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75) + 0.25 * np.log(0.5) + 0.75 * np.log(0.75 / 0.5)
    assert dv.symmetric_kl(p, q) == pytest.approx(expected, rel=1e-6)
    assert dv.symmetric_kl(p, p) == pytest.approx(0.0, abs=1e-9)


def test_jensen_shannon_equals_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.random(16), rng.random(16)
        p[rng.random(16) < 0.3] = 0
        p, q = p / p.sum(), q / q.sum()
        assert dv.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


def test_wasserstein_on_a_grid_equals_scipy_on_bin_centres():
    rng = np.random.default_rng(1)
    edges = np.linspace(-3, 3, 61)
    centres = (edges[:-1] + edges[1:]) / 2
    p, q = rng.random(60), rng.random(60)
    p, q = p / p.sum(), q / q.sum()
    assert dv.wasserstein(p, q, edges) == pytest.approx(wasserstein_distance(centres, centres, p, q), rel=1e-9)


def test_adjusted_rand_equals_scikit_learn():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.integers(0, 4, 50), rng.integers(0, 5, 50)
        b[:25] = a[:25]
        assert dv.adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert dv.adjusted_rand(np.array([0, 0, 1]), np.array([5, 5, 2])) == 1.0


def test_rebin_keeps_the_mass_where_it_was():
    edges, counts = np.array([0.0, 1.0, 2.0]), np.array([3, 1])
    moved = dv.rebin(edges, counts, np.array([-1.0, 0.5, 1.0, 3.0]))
    np.testing.assert_allclose(moved, [0.375, 0.375, 0.25])
    assert dv.density(np.array([0.1, 0.2, 1.5]), edges).tolist() == pytest.approx([2 / 3, 1 / 3])
