"""FeatureSubsetGeneration implements Eq. 2-5."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import FeatureSubsetGeneration
from tests.helpers import run_serialization_test
from tests.test_soft_threshold import numpy_soft_threshold


def numpy_fsgn(x, w1, w2, tau):
    """The paper's notation: W1 ∈ R^{r×D}, W2 ∈ R^{S×r}, τ ∈ R^{M×S}."""
    outputs, weights = [], []
    for example in x:  # example: M×D
        x_r = 1.0 / (1.0 + np.exp(-(w1 @ example.T)))  # Eq. 2: r×M
        p = np.maximum(w2 @ x_r, 0.0)  # Eq. 3: S×M
        p_s = numpy_soft_threshold(p.T, tau).T  # Eq. 4 with τ ∈ R^{M×S}
        outputs.append(np.stack([p_s[i][:, None] * example for i in range(p_s.shape[0])]))  # Eq. 5
        weights.append(p_s)
    return np.array(outputs), np.array(weights)


def test_matches_numpy_on_set_weights():
    rng = np.random.default_rng(0)
    batch, fields, dim, subsets, ratio = 3, 5, 4, 6, 2
    x = rng.normal(size=(batch, fields, dim)).astype(np.float32)
    w1 = rng.normal(size=(ratio, dim)).astype(np.float32)
    w2 = rng.normal(size=(subsets, ratio)).astype(np.float32)
    tau = rng.normal(size=(fields, subsets)).astype(np.float32)
    layer = FeatureSubsetGeneration(num_subsets=subsets, expand_ratio=ratio)
    layer.build(x.shape)
    layer.expand_kernel.assign(w1.T)
    layer.subset_kernel.assign(w2.T)
    layer.soft_threshold.threshold.assign(tau.T)
    subsets_out, weights_out = layer(x)
    want_subsets, want_weights = numpy_fsgn(x, w1, w2, tau)
    assert subsets_out.shape == (batch, subsets, fields, dim) and weights_out.shape == (batch, subsets, fields)
    np.testing.assert_allclose(weights_out.numpy(), want_weights, atol=1e-5)
    np.testing.assert_allclose(subsets_out.numpy(), want_subsets, atol=1e-5)
    assert np.any(weights_out.numpy() == 0.0), "ReLU and the threshold should prune some weights"


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="num_subsets=0"):
        FeatureSubsetGeneration(num_subsets=0)
    with pytest.raises(ValueError, match="expand_ratio=-1"):
        FeatureSubsetGeneration(expand_ratio=-1)


def test_serialization_round_trip():
    run_serialization_test(
        FeatureSubsetGeneration(num_subsets=3, expand_ratio=2, initial_threshold=-1.0), tf.random.normal([2, 4, 5])
    )
