"""Initializer helpers shared by the layers."""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras as keras


def fresh(initializer: Any) -> keras.initializers.Initializer:
    """A new instance of `initializer`. Keras returns identical values when one
    unseeded instance initialises two weights, so each weight gets its own."""
    return keras.initializers.deserialize(keras.initializers.serialize(keras.initializers.get(initializer)))


def stacked(initializer: Any):
    """Initialises a stacked kernel ``(N, ...)`` slice by slice, each slice as
    if it were a weight of its own.

    Keras' fan-based initializers (Glorot, He, LeCun) read a rank-3 shape as a
    convolution kernel and fold the stacking axis into both fans: a stack of
    ten ``(16, 16)`` kernels would start with Glorot limit 0.137 instead of
    0.433. Each slice gets its own initializer instance (see `fresh`).
    """

    def initialize(shape, dtype=None):
        return tf.stack([fresh(initializer)(shape[1:], dtype=dtype) for _ in range(shape[0])])

    return initialize


def output_major_dense(initializer: Any):
    """Initialises a kernel of shape ``(units, *inputs)`` as the ``(∏inputs,
    units)`` kernel of a Dense layer, laid out output-major.

    For CIN's ``(H_k, H_{k-1}, M)`` kernel, a dense map from the
    ``H_{k-1}·M`` outer products to H_k feature maps: Keras would read the
    rank-3 shape as a convolution and take fans ``H_{k-1}·H_k`` and ``M·H_k``.
    """

    def initialize(shape, dtype=None):
        units, inputs = shape[0], shape[1:]
        kernel = fresh(initializer)((math.prod(inputs), units), dtype=dtype)
        return tf.reshape(tf.transpose(kernel), shape)

    return initialize
