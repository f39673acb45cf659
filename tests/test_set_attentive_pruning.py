"""SetAttentivePruning implements Eq. 6 and 11-13 and is a set function."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import SetAttentivePruning
from tests.helpers import run_serialization_test
from tests.test_soft_threshold import numpy_soft_threshold


def numpy_sapn(subsets, w_k, queries, tau):
    """Per subset i: K = X_i W_Kᵀ, Score' = ReLU(I Kᵀ), Score'' = S_g(Score'), X' = Score'' X_i."""
    outputs, scores = [], []
    for example in subsets:
        out_i, score_i = [], []
        for i, x_i in enumerate(example):
            keys = x_i @ w_k[i].T  # Eq. 6
            score = np.maximum(queries[i] @ keys.T, 0.0)  # Eq. 11: E×M
            pruned = numpy_soft_threshold(score, tau[i][:, None])  # Eq. 12
            out_i.append(pruned @ x_i)  # Eq. 13
            score_i.append(pruned)
        outputs.append(out_i)
        scores.append(score_i)
    return np.array(outputs), np.array(scores)


def set_weights(layer, shape, rng):
    _, subsets, _, dim = shape
    w_k = rng.normal(size=(subsets, dim, dim)).astype(np.float32)
    queries = rng.normal(size=(subsets, layer.num_queries, dim)).astype(np.float32)
    tau = rng.normal(size=(subsets, layer.num_queries)).astype(np.float32)
    layer.build(shape)
    layer.key_kernel.assign(np.transpose(w_k, (0, 2, 1)))
    layer.queries.assign(queries)
    layer.soft_threshold.threshold.assign(tau[:, :, None])
    return w_k, queries, tau


def test_matches_numpy_on_set_weights():
    rng = np.random.default_rng(0)
    shape = (2, 3, 5, 4)
    subsets = rng.normal(size=shape).astype(np.float32)
    layer = SetAttentivePruning(num_queries=6)
    w_k, queries, tau = set_weights(layer, shape, rng)
    out, scores = layer(subsets)
    want_out, want_scores = numpy_sapn(subsets, w_k, queries, tau)
    assert out.shape == (2, 3, 6, 4) and scores.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(scores.numpy(), want_scores, atol=1e-4)
    np.testing.assert_allclose(out.numpy(), want_out, atol=1e-4)
    assert np.any(scores.numpy() == 0.0) and np.any(scores.numpy() > 0.0)


@pytest.mark.parametrize(
    "options", [{}, {"scale_scores": True, "use_value_projection": True, "use_layer_norm": True}]
)
def test_permuting_the_features_of_a_subset_changes_nothing(options):
    layer = SetAttentivePruning(num_queries=4, initial_threshold=-1.0, **options)
    subsets = tf.random.normal([3, 2, 7, 8])
    permutation = np.random.default_rng(0).permutation(7)
    out, scores = layer(subsets)
    out_permuted, scores_permuted = layer(tf.gather(subsets, permutation, axis=2))
    np.testing.assert_allclose(out_permuted.numpy(), out.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores_permuted.numpy(), tf.gather(scores, permutation, axis=3).numpy(), atol=1e-5)


def test_accepts_sets_of_any_size():
    layer = SetAttentivePruning(num_queries=4)
    for fields in (2, 9, 40):
        out, scores = layer(tf.random.normal([2, 3, fields, 8]))
        assert out.shape == (2, 3, 4, 8) and scores.shape == (2, 3, 4, fields)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="num_queries=0"):
        SetAttentivePruning(num_queries=0)


@pytest.mark.parametrize("options", [{}, {"scale_scores": True, "use_value_projection": True, "use_layer_norm": True}])
def test_serialization_round_trip(options):
    run_serialization_test(SetAttentivePruning(num_queries=3, **options), tf.random.normal([2, 3, 5, 4]), atol=1e-5)
