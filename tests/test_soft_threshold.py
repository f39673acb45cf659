"""SoftThreshold implements Eq. 4: S_g(p, τ) = sign(p)·ReLU(|p| − sigmoid(τ))."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import SoftThreshold
from tests.helpers import run_serialization_test


def numpy_soft_threshold(p, tau):
    return np.sign(p) * np.maximum(np.abs(p) - 1.0 / (1.0 + np.exp(-tau)), 0.0)


def test_matches_numpy_with_one_threshold_per_element():
    layer = SoftThreshold()
    p = np.random.default_rng(0).normal(size=(4, 3, 5)).astype(np.float32)
    layer.build(p.shape)
    tau = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    layer.set_weights([tau])
    assert layer.threshold.shape == (3, 5)
    np.testing.assert_allclose(layer(p).numpy(), numpy_soft_threshold(p, tau), atol=1e-6)


def test_exact_zeros_below_threshold_and_sign_kept():
    layer = SoftThreshold(initial_threshold=0.0)  # threshold sigmoid(0) = 0.5
    out = layer(tf.constant([[0.2, -0.49, -0.9, 1.5, 0.0]])).numpy()
    np.testing.assert_array_equal(out[0, :2], [0.0, 0.0])
    np.testing.assert_allclose(out[0, 2:], [-0.4, 1.0, 0.0], atol=1e-6)


def test_large_negative_threshold_prunes_nothing_in_unit_range():
    p = tf.random.uniform([64, 10, 8], -1.0, 1.0)
    p = tf.where(tf.abs(p) < 1e-3, 0.5, p)  # keep away from exact zeros
    out = SoftThreshold(initial_threshold=-10.0)(p)
    assert np.count_nonzero(out.numpy()) == p.shape.num_elements()
    np.testing.assert_allclose(out.numpy(), p.numpy(), atol=1e-4)


def test_gradients_reach_tau_where_kept_and_the_input():
    layer = SoftThreshold(initial_threshold=0.0)
    p = tf.constant([[0.2, 0.9, -1.2]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(p)
        out = tf.reduce_sum(layer(p))
    tau_grad = tape.gradient(out, layer.threshold).numpy()
    input_grad = tape.gradient(out, p).numpy()
    assert tau_grad[0] == 0.0  # pruned: no gradient
    assert tau_grad[1] < 0.0 and tau_grad[2] > 0.0  # kept: −sign(p)·σ'(τ)
    np.testing.assert_allclose(tau_grad[1:], [-0.25, 0.25], atol=1e-6)
    np.testing.assert_allclose(input_grad, [[0.0, 1.0, 1.0]])


def test_shared_axes_share_one_tau():
    layer = SoftThreshold(shared_axes=[2])
    layer(tf.zeros([2, 3, 7]))
    assert layer.threshold.shape == (3, 1)
    with pytest.raises(ValueError, match="shared_axes=\\[0\\]"):
        SoftThreshold(shared_axes=[0])


def test_serialization_round_trip():
    run_serialization_test(SoftThreshold(initial_threshold=-2.0, shared_axes=[1]), tf.random.normal([2, 3, 4]))


def test_the_threshold_of_a_relu_is_one_relu_of_the_logits_minus_the_threshold():
    """`soft_threshold_of_relu(l, τ) = S_g(ReLU(l), τ)`, values and gradients."""
    from featnet_tf.layers.soft_threshold import soft_threshold, soft_threshold_of_relu

    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(size=(64, 5)).astype(np.float32))
    tau = tf.Variable(rng.normal(size=(5,)).astype(np.float32))
    results = []
    for function in (lambda values, t: soft_threshold(tf.nn.relu(values), t), soft_threshold_of_relu):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            out = function(logits, tau)
            loss = tf.reduce_sum(out * tf.range(5, dtype=tf.float32))
        results.append([out, *tape.gradient(loss, [logits, tau])])
    assert np.any(results[1][0].numpy() == 0) and np.any(results[1][0].numpy() > 0)
    for want, got in zip(*results):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
