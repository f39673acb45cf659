"""SetAttentivePruning implements Eq. 6 and 11-13 and is a set function."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import SetAttentivePruning
from featnet_tf.layers.set_attentive_pruning import LOG_FLOOR, MAX_EXPONENT
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


def test_fields_readout_matches_numpy_isab_second_stage():
    """§2.4's readout: H = Score''·X_i (Eq. 13), Q = X_i W_Qᵀ (Eq. 7), K_H = H W_Hᵀ,
    A = S_g(ReLU(Q K_Hᵀ)) and X'_i = X_i + A·H, an M×D output per subset."""
    rng = np.random.default_rng(2)
    shape = (2, 3, 5, 4)
    subsets = rng.normal(size=shape).astype(np.float32)
    layer = SetAttentivePruning(num_queries=6, readout="fields")
    w_k, queries, tau = set_weights(layer, shape, rng)
    w_q = rng.normal(size=(3, 4, 4)).astype(np.float32)
    w_h = rng.normal(size=(3, 4, 4)).astype(np.float32)
    read_tau = rng.normal(size=(3, 6)).astype(np.float32)
    layer.query_kernel.assign(np.transpose(w_q, (0, 2, 1)))
    layer.summary_key_kernel.assign(np.transpose(w_h, (0, 2, 1)))
    layer.readout_threshold.threshold.assign(read_tau[:, None, :])
    out, scores = layer(subsets)
    summaries, want_scores = numpy_sapn(subsets, w_k, queries, tau)
    want = np.empty(shape, dtype=np.float32)
    for b in range(2):
        for i in range(3):
            h = summaries[b, i]
            reads = numpy_soft_threshold(
                np.maximum((subsets[b, i] @ w_q[i].T) @ (h @ w_h[i].T).T, 0.0), read_tau[i][None, :]
            )
            want[b, i] = subsets[b, i] + reads @ h
    assert out.shape == shape
    np.testing.assert_allclose(scores.numpy(), want_scores, atol=1e-4)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-3)


def test_logarithmic_readout_is_the_product_of_the_kept_fields_to_their_scores():
    """X'_i[e] = Π_m |x_m|^Score''[e, m] (|x| floored, exponent bounded): a field the
    thresholds pruned (score 0) contributes 1, and the scores are the learned orders."""
    rng = np.random.default_rng(5)
    shape = (2, 3, 5, 4)
    subsets = rng.normal(size=shape).astype(np.float32)
    layer = SetAttentivePruning(num_queries=6, readout="logarithmic")
    w_k, queries, tau = set_weights(layer, shape, rng)
    out, scores = layer(subsets)
    _, want_scores = numpy_sapn(subsets, w_k, queries, tau)
    logs = np.log(np.maximum(np.abs(subsets), LOG_FLOOR))[:, :, None, :, :]
    want = np.exp(np.clip((want_scores[..., None] * logs).sum(axis=3), -MAX_EXPONENT, MAX_EXPONENT))  # (B, S, E, D)
    assert out.shape == (2, 3, 6, 4)
    np.testing.assert_allclose(scores.numpy(), want_scores, atol=1e-4)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-3)
    assert np.any(want_scores == 0.0)


def second_difference(function, x, field_a, field_b, step=0.5):
    """f(x + δa + δb) − f(x + δa) − f(x + δb) + f(x): zero when no term of f
    depends on fields a and b together."""
    rng = np.random.default_rng(7)
    delta_a = np.zeros_like(x)
    delta_b = np.zeros_like(x)
    delta_a[..., field_a, :] = step * rng.normal(size=x.shape[-1])
    delta_b[..., field_b, :] = step * rng.normal(size=x.shape[-1])
    return function(x + delta_a + delta_b) - function(x + delta_a) - function(x + delta_b) + function(x)


def test_eq13_readout_has_no_cross_field_term_and_fields_readout_has_one():
    """Eq. 13 makes each summary a sum of per-field terms: changing two fields
    together changes it by exactly the sum of the two separate changes. The
    fields readout multiplies fields with summaries of the others."""
    subsets = np.random.default_rng(3).normal(size=(4, 2, 6, 8)).astype(np.float32)
    differences = {}
    for readout in ("induced", "fields", "logarithmic"):
        layer = SetAttentivePruning(num_queries=4, initial_threshold=-6.0, readout=readout)
        layer.build(subsets.shape)
        layer.queries.assign(np.abs(layer.queries.numpy()))  # keep scores positive: away from the ReLU's kink
        layer.key_kernel.assign(np.broadcast_to(np.eye(8, dtype=np.float32), (2, 8, 8)))
        function = lambda x, layer=layer: layer(tf.constant(np.abs(x)))[0].numpy()  # noqa: E731
        differences[readout] = np.abs(second_difference(function, subsets, 1, 4)).max()
    assert differences["induced"] < 1e-5
    assert differences["fields"] > 1e-2 and differences["logarithmic"] > 1e-2


@pytest.mark.parametrize(
    "options",
    [{}, {"scale_scores": True, "use_value_projection": True, "use_layer_norm": True}, {"readout": "logarithmic"}],
)
def test_permuting_the_features_of_a_subset_changes_nothing(options):
    layer = SetAttentivePruning(num_queries=4, initial_threshold=-1.0, **options)
    subsets = tf.random.normal([3, 2, 7, 8])
    permutation = np.random.default_rng(0).permutation(7)
    out, scores = layer(subsets)
    out_permuted, scores_permuted = layer(tf.gather(subsets, permutation, axis=2))
    np.testing.assert_allclose(out_permuted.numpy(), out.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores_permuted.numpy(), tf.gather(scores, permutation, axis=3).numpy(), atol=1e-5)


def test_fields_readout_permutes_with_its_fields():
    layer = SetAttentivePruning(num_queries=4, initial_threshold=-1.0, readout="fields")
    subsets = tf.random.normal([3, 2, 7, 8])
    permutation = np.random.default_rng(0).permutation(7)
    out, _ = layer(subsets)
    out_permuted, _ = layer(tf.gather(subsets, permutation, axis=2))
    np.testing.assert_allclose(out_permuted.numpy(), tf.gather(out, permutation, axis=2).numpy(), rtol=1e-5, atol=1e-4)


def test_stacked_kernels_start_with_each_subsets_own_glorot_fans():
    """A (S, D, D) stack of Glorot kernels: limit √(6 / 2D), not Keras' fans
    for a rank-3 (convolution) shape, which fold S in."""
    layer = SetAttentivePruning(num_queries=16, readout="fields")
    layer.build((None, 10, 5, 16))
    for kernel, fans in ((layer.key_kernel, 32), (layer.query_kernel, 32), (layer.queries, 32)):
        limit = np.sqrt(6.0 / fans)
        values = np.abs(kernel.numpy())
        assert values.max() <= limit and values.max() > 0.9 * limit, kernel.name


def test_accepts_sets_of_any_size():
    layer = SetAttentivePruning(num_queries=4)
    for fields in (2, 9, 40):
        out, scores = layer(tf.random.normal([2, 3, fields, 8]))
        assert out.shape == (2, 3, 4, 8) and scores.shape == (2, 3, 4, fields)
    fields_layer = SetAttentivePruning(num_queries=4, readout="fields")
    for fields in (2, 9):
        assert fields_layer(tf.random.normal([2, 3, fields, 8]))[0].shape == (2, 3, fields, 8)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="num_queries=0"):
        SetAttentivePruning(num_queries=0)
    with pytest.raises(ValueError, match="readout='queries'"):
        SetAttentivePruning(readout="queries")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"scale_scores": True, "use_value_projection": True, "use_layer_norm": True},
        {"readout": "fields"},
        {"readout": "logarithmic"},
    ],
)
def test_serialization_round_trip(options):
    run_serialization_test(SetAttentivePruning(num_queries=3, **options), tf.random.normal([2, 3, 5, 4]), atol=1e-5)
