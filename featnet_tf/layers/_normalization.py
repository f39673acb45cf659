"""Normalisation shared by the layers and models."""

from __future__ import annotations

import tensorflow as tf

# Small against the variance of uniform(±0.05) embeddings (8e-4): Keras'
# LayerNormalization default of 1e-3 would leave such vectors unnormalised.
NORM_EPSILON = 1e-6


def standardize(x: tf.Tensor, epsilon: float = NORM_EPSILON) -> tf.Tensor:
    """``(x − mean) / √(variance + ε)`` over the last axis, without a learned
    scale or shift.

    Its gradient is written out, ``dx = (dy − mean(dy) − y·mean(dy·y)) /
    √(variance + ε)``: two reductions and a few products, where automatic
    differentiation of the moments tiles the mean and the variance back over
    the input (a third of the subset towers' normalisation cost, measured in
    BENCHMARKS.md)."""

    @tf.custom_gradient
    def forward(x):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
        y = centered * inverse_std

        def backward(dy):
            mean_dy = tf.reduce_mean(dy, axis=-1, keepdims=True)
            mean_dy_y = tf.reduce_mean(dy * y, axis=-1, keepdims=True)
            return (dy - mean_dy - y * mean_dy_y) * inverse_std

        return y, backward

    return forward(x)
