"""`LazyAdam`: Adam on the embedding rows a batch reads, nothing on the others."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from featnet_tf import config as config_lib
from featnet_tf import experiments
from featnet_tf.optimizers import FusedAdam, LazyAdam, build_optimizer


def sparse_gradient(values: np.ndarray, rows: list[int], table_rows: int) -> tf.IndexedSlices:
    return tf.IndexedSlices(
        tf.constant(values, tf.float32), tf.constant(rows, tf.int64), tf.constant([table_rows, values.shape[1]])
    )


def test_rows_a_batch_reads_follow_adam_and_the_other_rows_do_not_move():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    table = tf.Variable(start)
    read_rows = tf.Variable(start[[1, 4]])  # Adam on the two rows alone, as a dense variable
    lazy, adam = LazyAdam(0.1), keras.optimizers.Adam(0.1)
    for _ in range(4):
        values = rng.normal(size=(3, 3)).astype(np.float32)
        lazy.apply_gradients([(sparse_gradient(values, [1, 4, 1], 6), table)])  # row 1 twice: summed
        adam.apply_gradients([(tf.constant(np.stack([values[0] + values[2], values[1]])), read_rows)])

    np.testing.assert_allclose(table.numpy()[[1, 4]], read_rows.numpy(), rtol=1e-5, atol=1e-5)  # float32 rounding
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(table.numpy()[untouched], start[untouched])
    moments = [slot.numpy()[untouched] for slot in lazy.variables if slot.shape == (6, 3)]
    assert len(moments) == 2 and not any(np.any(moment) for moment in moments)


def test_where_adam_moves_every_row_lazy_adam_moves_only_the_rows_read():
    table, reference = tf.Variable(tf.ones([4, 2])), tf.Variable(tf.ones([4, 2]))
    lazy, adam = LazyAdam(0.1), keras.optimizers.Adam(0.1)
    for rows in ([0], [1]):
        lazy.apply_gradients([(sparse_gradient(np.ones((1, 2), np.float32), rows, 4), table)])
        adam.apply_gradients([(sparse_gradient(np.ones((1, 2), np.float32), rows, 4), reference)])
    # in step 2 Adam still moves row 0 by its decayed first moment; LazyAdam leaves it
    assert reference.numpy()[0, 0] < table.numpy()[0, 0] < 1.0
    np.testing.assert_array_equal(table.numpy()[2:], np.ones((2, 2)))


def test_dense_gradients_get_adams_update():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5, 4)).astype(np.float32)
    lazy_kernel, adam_kernel = tf.Variable(start), tf.Variable(start)
    lazy, adam = LazyAdam(1e-2), keras.optimizers.Adam(1e-2)
    for _ in range(3):
        gradient = tf.constant(rng.normal(size=(5, 4)).astype(np.float32))
        lazy.apply_gradients([(gradient, lazy_kernel)])
        adam.apply_gradients([(gradient, adam_kernel)])
    np.testing.assert_allclose(lazy_kernel.numpy(), adam_kernel.numpy(), rtol=1e-5, atol=1e-6)  # fused kernel rounding


def test_the_config_chooses_the_optimizer_and_rejects_an_unknown_one():
    config = experiments.experiment("deepfm", assignments=["training.optimizer=lazy_adam"])
    assert isinstance(build_optimizer(config.training.optimizer, 1e-3), LazyAdam)
    assert type(build_optimizer("adam", 1e-3)) is FusedAdam
    with pytest.raises(ValueError, match=r"training\.optimizer.*'rmsprop'"):
        experiments.experiment("deepfm", assignments=["training.optimizer=rmsprop"])
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(1e-3, amsgrad=True)
    assert config_lib.OPTIMIZERS == ("adam", "lazy_adam")


def test_lazy_adam_round_trips_through_its_config():
    optimizer = LazyAdam(3e-3, beta_1=0.8)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, LazyAdam)
    assert restored.get_config()["beta_1"] == 0.8


def test_fused_adam_is_keras_adam_on_dense_and_sparse_gradients():
    rng = np.random.default_rng(2)
    start_table, start_kernel = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    fused_vars = [tf.Variable(start_table), tf.Variable(start_kernel)]
    keras_vars = [tf.Variable(start_table), tf.Variable(start_kernel)]
    fused, reference = FusedAdam(0.05), keras.optimizers.Adam(0.05)
    for step in range(5):
        rows = [step % 8, 3, step % 8]  # a duplicate, and rows left out of most steps
        table_gradient = sparse_gradient(rng.normal(size=(3, 3)).astype(np.float32), rows, 8)
        kernel_gradient = tf.constant(rng.normal(size=(3, 2)).astype(np.float32))
        fused.apply_gradients(zip([table_gradient, kernel_gradient], fused_vars))
        reference.apply_gradients(zip([table_gradient, kernel_gradient], keras_vars))
    for mine, theirs in zip(fused_vars + fused.variables, keras_vars + reference.variables):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fused_vars[0].numpy()[5:], start_table[5:])  # never read: no moment, no move


def test_fused_adam_refuses_the_options_it_does_not_compute():
    for option in ("amsgrad", "adaptive_epsilon"):
        with pytest.raises(ValueError, match=option):
            FusedAdam(1e-3, **{option: True})


@pytest.mark.parametrize("optimizer_name", ["adam", "lazy_adam"])
def test_global_clipnorm_clips_the_gradient_before_the_update(optimizer_name):
    """A gradient of norm 500 clipped to 5 moves the weights exactly as the gradient scaled to norm 5 does
    (the second step: Adam's first step is blind to the gradient's scale)."""
    clipped, scaled = tf.Variable([0.0, 0.0]), tf.Variable([0.0, 0.0])
    with_clipping = build_optimizer(optimizer_name, 0.1, global_clipnorm=5.0)
    without = build_optimizer(optimizer_name, 0.1)
    for gradient_clipped, gradient_scaled in (([1.0, 1.0], [1.0, 1.0]), ([300.0, 400.0], [3.0, 4.0])):
        with_clipping.apply_gradients([(tf.constant(gradient_clipped), clipped)])
        without.apply_gradients([(tf.constant(gradient_scaled), scaled)])
    np.testing.assert_allclose(clipped.numpy(), scaled.numpy(), rtol=1e-6)
    unclipped = tf.Variable([0.0, 0.0])
    plain = build_optimizer(optimizer_name, 0.1)
    for gradient in ([1.0, 1.0], [300.0, 400.0]):
        plain.apply_gradients([(tf.constant(gradient), unclipped)])
    assert not np.allclose(unclipped.numpy(), clipped.numpy()), "the clipping changed nothing"


def test_the_config_sets_gradient_clipping_and_rejects_a_non_positive_norm():
    assert experiments.experiment("deepfm", assignments=["training.global_clipnorm=10"]).training.global_clipnorm == 10
    assert experiments.experiment("deepfm").training.global_clipnorm is None
    with pytest.raises(ValueError, match="training.global_clipnorm=0"):
        experiments.experiment("deepfm", assignments=["training.global_clipnorm=0"])
