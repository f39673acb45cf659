"""Each baseline's interaction layer against a NumPy version of its paper's equation."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.layers import (
    BilinearInteraction,
    CompressedInteraction,
    FactorizationMachine,
    LogarithmicTransformation,
    MultiHeadSelfAttention,
    SqueezeExcitation,
    SubsetTowers,
)
from tests.helpers import run_serialization_test

RNG = np.random.default_rng(0)
E = RNG.normal(size=(3, 5, 4)).astype(np.float32)  # batch 3, M 5 fields, D 4


def test_factorization_machine_sums_pairwise_inner_products():
    want = np.array([[sum(E[b, i] @ E[b, j] for i, j in itertools.combinations(range(5), 2))] for b in range(3)])
    np.testing.assert_allclose(FactorizationMachine()(E).numpy(), want, rtol=1e-5)


def test_cin_matches_xdeepfm_eq6_and_sum_pooling():
    layer = CompressedInteraction((3, 2))
    out = layer(E).numpy()
    w1, w2 = (kernel.numpy() for kernel in layer.kernels)
    x0 = E
    x1 = np.einsum("hij,bid,bjd->bhd", w1, x0, x0)
    x1_loop = np.zeros_like(x1)
    for b, h, i, j in itertools.product(range(3), range(3), range(5), range(5)):
        x1_loop[b, h] += w1[h, i, j] * x0[b, i] * x0[b, j]
    x2 = np.einsum("hij,bid,bjd->bhd", w2, x1_loop, x0)
    np.testing.assert_allclose(out, np.concatenate([x1_loop.sum(-1), x2.sum(-1)], axis=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bilinear_type", ["field_all", "field_each", "field_interaction"])
def test_bilinear_interaction_matches_fibinet_eq5_to_7(bilinear_type):
    layer = BilinearInteraction(bilinear_type)
    out = layer(E).numpy()
    kernel = layer.kernel.numpy()
    pairs = list(itertools.combinations(range(5), 2))
    for p, (i, j) in enumerate(pairs):
        w = kernel[{"field_all": 0, "field_each": i, "field_interaction": p}[bilinear_type]]
        np.testing.assert_allclose(out[:, p], (E[:, i] @ w) * E[:, j], rtol=1e-4, atol=1e-5)
    assert out.shape == (3, 10, 4)


def test_squeeze_excitation_matches_fibinet_eq1_to_4():
    layer = SqueezeExcitation(reduction_ratio=2)
    out = layer(E).numpy()
    w1, w2 = layer.squeeze_kernel.numpy(), layer.excite_kernel.numpy()
    z = E.mean(axis=2)
    a = np.maximum(np.maximum(z @ w1, 0) @ w2, 0)
    np.testing.assert_allclose(out, E * a[:, :, None], rtol=1e-5, atol=1e-6)


def test_squeeze_excitation_with_a_sigmoid_gate_is_2_sigmoid_of_the_excitation_plus_bias():
    layer = SqueezeExcitation(reduction_ratio=2, excitation="sigmoid")
    layer(E)
    layer.excite_bias.assign(np.linspace(-1.0, 1.0, E.shape[1]).astype(np.float32))
    w1, w2, bias = layer.squeeze_kernel.numpy(), layer.excite_kernel.numpy(), layer.excite_bias.numpy()
    a = 2.0 / (1.0 + np.exp(-(np.maximum(E.mean(axis=2) @ w1, 0) @ w2 + bias)))
    np.testing.assert_allclose(layer(E).numpy(), E * a[:, :, None], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="excitation='tanh'"):
        SqueezeExcitation(excitation="tanh")


def test_logarithmic_transformation_matches_afn_eq5_6_at_initial_normalisation():
    layer = LogarithmicTransformation(num_neurons=3)
    out = layer(E, training=False).numpy()
    w, bias = layer.kernel.numpy(), layer.bias.numpy()
    scale = 1.0 / np.sqrt(1.0 + 1e-3)  # BatchNormalization at its initial moving statistics
    logs = np.log(np.maximum(np.abs(E), 1e-7)) * scale
    crossed = np.exp(np.einsum("bmd,mh->bhd", logs, w) + bias)
    np.testing.assert_allclose(out, crossed.reshape(3, -1) * scale, rtol=1e-4)


def test_multi_head_self_attention_matches_autoint_eq5_to_8():
    layer = MultiHeadSelfAttention(num_heads=2, head_dim=3)
    out = layer(E).numpy()
    wq, wk, wv, wr = (
        layer.query_kernel.numpy(),
        layer.key_kernel.numpy(),
        layer.value_kernel.numpy(),
        layer.residual_kernel.numpy(),
    )
    heads = []
    for h in range(2):
        q, k, v = E @ wq[h], E @ wk[h], E @ wv[h]
        scores = np.einsum("bmk,bnk->bmn", q, k)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        heads.append(attention @ v)
    want = np.maximum(np.concatenate(heads, axis=-1) + E @ wr, 0)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        FactorizationMachine(),
        CompressedInteraction((3, 2)),
        BilinearInteraction("field_each"),
        SqueezeExcitation(2),
        LogarithmicTransformation(3),
        MultiHeadSelfAttention(2, 3),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_serialization_round_trips(layer):
    run_serialization_test(layer, tf.constant(E), atol=1e-5)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="bilinear_type='pairwise'"):
        BilinearInteraction("pairwise")
    with pytest.raises(ValueError, match="layer_sizes=\\(0,\\)"):
        CompressedInteraction((0,))
    with pytest.raises(ValueError, match="num_neurons=0"):
        LogarithmicTransformation(0)


def glorot_limit(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


@pytest.mark.parametrize(
    "layer, input_shape, kernel_of, fans",
    [
        # (P, D, D): each pair's D×D matrix alone.
        (BilinearInteraction("field_interaction"), (2, 39, 16), lambda layer: layer.kernel, (16, 16)),
        # (H, D, d'): each head's D×d' projection alone.
        (MultiHeadSelfAttention(2, 32), (2, 39, 16), lambda layer: layer.query_kernel, (16, 32)),
        # (H_k, H_{k-1}, M): a dense map from H_{k-1}·M products to H_k maps.
        (CompressedInteraction((200, 200)), (2, 39, 16), lambda layer: layer.kernels[1], (200 * 39, 200)),
        (SubsetTowers((128,)), (2, 10, 256), lambda layer: layer.kernels[0], (256, 128)),
    ],
    ids=["bilinear", "autoint", "cin", "towers"],
)
def test_stacked_kernels_start_with_their_own_glorot_fans(layer, input_shape, kernel_of, fans):
    """Keras reads a rank-3 kernel as a convolution and folds the stacking axis
    into both fans (FiBiNET's bilinear kernels would start up to 27× too small
    on Criteo); every stacked kernel here is initialised with its slice's fans."""
    layer(tf.zeros(input_shape))
    values = np.abs(kernel_of(layer).numpy())
    limit = glorot_limit(*fans)
    assert 0.9 * limit < values.max() <= limit
