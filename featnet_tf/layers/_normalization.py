"""Normalisation shared by the layers and models."""

from __future__ import annotations

import tensorflow as tf

# Small against the variance of uniform(±0.05) embeddings (8e-4): Keras'
# LayerNormalization default of 1e-3 would leave such vectors unnormalised.
NORM_EPSILON = 1e-6


def standardize(x: tf.Tensor, epsilon: float = NORM_EPSILON) -> tf.Tensor:
    """``(x − mean) / √(variance + ε)`` over the last axis, without a learned
    scale or shift."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon)
