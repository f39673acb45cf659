"""StatelessDropout is Keras' inverted dropout with masks from stateless kernels."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import StatelessDropout
from tests.helpers import run_serialization_test


def test_zeroes_a_rate_of_the_values_and_scales_the_others():
    out = StatelessDropout(0.2, seed=1)(tf.ones([500, 200]), training=True).numpy()
    assert set(np.unique(out)) == {0.0, 1.25}  # kept values scaled by 1 / (1 - rate)
    assert abs((out == 0).mean() - 0.2) < 0.01


def test_every_call_draws_a_new_mask_eagerly_and_in_a_graph():
    layer = StatelessDropout(0.5, seed=2)
    x = tf.ones([100, 100])
    step = tf.function(lambda x: layer(x, training=True))
    for draw in (lambda: layer(x, training=True), lambda: step(x)):
        first, second = draw().numpy(), draw().numpy()
        assert abs((first != second).mean() - 0.5) < 0.05  # independent masks differ at 2·p·(1-p)


def test_the_same_seed_gives_the_same_masks():
    x = tf.ones([50, 40])
    one, other = StatelessDropout(0.3, seed=7), StatelessDropout(0.3, seed=7)
    for _ in range(2):
        np.testing.assert_array_equal(one(x, training=True).numpy(), other(x, training=True).numpy())


@pytest.mark.parametrize("training", [False, None])
def test_is_the_identity_at_inference(training):
    x = tf.random.normal([8, 3])
    np.testing.assert_array_equal(StatelessDropout(0.9)(x, training=training).numpy(), x.numpy())


def test_a_noise_shape_shares_the_mask_along_its_unit_axes():
    out = StatelessDropout(0.5, noise_shape=(None, 1), seed=3)(tf.ones([64, 10]), training=True).numpy()
    assert all(len(set(row)) == 1 for row in out)


def test_serialization_round_trips():
    run_serialization_test(StatelessDropout(0.25, seed=4), tf.ones([2, 3]))
