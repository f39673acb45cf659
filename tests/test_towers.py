"""MLP and SubsetTowers implement Eq. 14; the towers are S independent MLPs."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import MLP, SubsetTowers
from tests.helpers import run_serialization_test


def test_subset_towers_equal_independent_numpy_mlps():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(4, 3, 6)).astype(np.float32)
    towers = SubsetTowers((5, 2))
    towers(inputs)
    weights = [w.numpy() for w in towers.weights]  # kernel_0, bias_0, kernel_1, bias_1
    out = towers(inputs).numpy()
    for s in range(3):
        a = inputs[:, s]
        for kernel, bias in zip(weights[0::2], weights[1::2]):
            a = np.maximum(a @ kernel[s] + bias[s], 0.0)
        np.testing.assert_allclose(out[:, s], a, atol=1e-5)


def test_towers_start_different():
    towers = SubsetTowers((8,))
    towers(tf.zeros([1, 4, 5]))
    kernel = towers.kernels[0].numpy()
    assert not np.allclose(kernel[0], kernel[1])


def test_mlp_matches_numpy():
    mlp = MLP((4, 3), activation="relu")
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    out = mlp(x).numpy()
    a = x
    for dense in (mlp.blocks[0][0], mlp.blocks[1][0]):
        kernel, bias = dense.get_weights()
        a = np.maximum(a @ kernel + bias, 0.0)
    np.testing.assert_allclose(out, a, atol=1e-5)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="hidden_units=\\(0,\\)"):
        SubsetTowers((0,))
    with pytest.raises(ValueError, match="dropout=1.5"):
        MLP((4,), dropout=1.5)
    with pytest.raises(ValueError, match="batch_norm_momentum=1.0"):
        MLP((4,), use_batch_norm=True, batch_norm_momentum=1.0)


def test_serialization_round_trips():
    run_serialization_test(SubsetTowers((4, 2), dropout=0.1), tf.random.normal([2, 3, 5]))
    run_serialization_test(MLP((4, 2), dropout=0.1, use_batch_norm=True), tf.random.normal([2, 5]))
    rebuilt = run_serialization_test(
        MLP((4, 2), use_batch_norm=True, batch_norm_momentum=0.9), tf.random.normal([2, 5])
    )
    assert [block[1].momentum for block in rebuilt.blocks] == [0.9, 0.9]


def test_batch_norm_momentum_sets_how_fast_the_moving_statistics_follow_the_batches():
    """After one training step on a batch of mean 10, the moving mean is (1 − momentum)·10 of the way there."""
    inputs = tf.fill([16, 3], 10.0)
    for momentum in (0.99, 0.9):
        mlp = MLP((3,), use_batch_norm=True, batch_norm_momentum=momentum, kernel_initializer="identity")
        mlp(inputs, training=True)
        moving_mean = mlp.blocks[0][1].moving_mean.numpy()
        np.testing.assert_allclose(moving_mean, (1 - momentum) * 10.0, rtol=1e-5)


def test_standardize_has_the_gradient_of_its_moments():
    """`standardize` writes its gradient out; it must be the one automatic
    differentiation gives the textbook formula, ε included."""
    from featnet_tf.layers._normalization import standardize

    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(4, 3, 7)) * 0.05)
    weights = tf.constant(rng.normal(size=(4, 3, 7)))

    def textbook(x):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-6)

    values, gradients = [], []
    for function in (standardize, textbook):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        values.append(y.numpy())
        gradients.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(values[0], values[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-8, atol=1e-10)
