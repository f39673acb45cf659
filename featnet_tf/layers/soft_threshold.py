"""Soft-threshold pruning, Eq. 4 of FeatNet (WWW'22)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="featnet_tf")
class SoftThreshold(keras.layers.Layer):
    """Prunes small values with a learnable threshold (FeatNet Eq. 4).

    ``S_g(p, τ) = sign(p) · ReLU(|p| − g(τ))`` with ``g = sigmoid``. Values whose
    magnitude is below ``sigmoid(τ)`` become exact zeros; the others shrink
    towards zero by ``sigmoid(τ)`` and keep their sign. Gradients reach both the
    input (where it is kept) and τ.

    Args:
        initial_threshold: initial value of every τ. The default −10
            (``sigmoid(−10) ≈ 4.5e-5``, the paper's literal setting) prunes
            nothing at first, and Adam moves τ by about its learning rate a
            step, so pruning only begins once τ has travelled far: within a
            short run it may never begin (`FeatNet` starts at −3, where
            ``sigmoid(τ) ≈ 0.047`` prunes from the first steps). Values near 0
            prune strongly from the first step (the paper, §2.3.2).
        shared_axes: axes of the input (batch axis = 0) along which one τ is
            shared, like `PReLU`'s argument. By default there is one τ per
            element of the input without the batch axis, the paper's
            ``τ ∈ R^{M×S}``. SAPN shares τ over the feature axis so that it
            stays a set function.

    Input shape: ``(batch, d1, ..., dn)``. Output shape: the same.

    Example:
        >>> layer = SoftThreshold(initial_threshold=0.0)  # threshold 0.5
        >>> layer(tf.constant([[0.2, -0.9, 1.5]]))  # [[0.0, -0.4, 1.0]]

    References:
        Kusupati et al., "Soft Threshold Weight Reparameterization for
        Learnable Sparsity", ICML 2020; FeatNet, WWW 2022, Eq. 4.
    """

    def __init__(
        self,
        initial_threshold: float = -10.0,
        shared_axes: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.initial_threshold = float(initial_threshold)
        self.shared_axes = tuple(int(axis) for axis in shared_axes) if shared_axes else None
        if self.shared_axes is not None and any(axis <= 0 for axis in self.shared_axes):
            raise ValueError(
                f"`shared_axes` cannot contain the batch axis 0 or negative axes. Received: shared_axes={shared_axes}"
            )

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        threshold_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis >= input_shape.rank:
                raise ValueError(
                    f"`shared_axes` has axis {axis}, but the input has rank {input_shape.rank}: {input_shape}"
                )
            threshold_shape[axis - 1] = 1
        if any(dim is None for dim in threshold_shape):
            raise ValueError(
                "SoftThreshold needs static sizes for the axes it does not share. "
                f"Received input shape {input_shape} with shared_axes={self.shared_axes}"
            )
        self.threshold = self.add_weight(
            name="threshold",
            shape=threshold_shape,
            initializer=keras.initializers.Constant(self.initial_threshold),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return soft_threshold(inputs, self.threshold)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            initial_threshold=self.initial_threshold,
            shared_axes=list(self.shared_axes) if self.shared_axes else None,
        )
        return config


def soft_threshold(inputs: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """``S_g(inputs, τ) = sign(inputs) · ReLU(|inputs| − sigmoid(τ))`` (Eq. 4),
    with τ broadcast against the inputs. For layers that hold their τ in a
    `SoftThreshold` but compute in another layout."""
    threshold = tf.sigmoid(tf.cast(threshold, inputs.dtype))
    return tf.sign(inputs) * tf.nn.relu(tf.abs(inputs) - threshold)


def soft_threshold_of_relu(logits: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """``S_g(ReLU(logits), τ)``, FSGN's Eq. 3-4 and SAPN's Eq. 11-12, as ``ReLU(logits − sigmoid(τ))``.

    For ``p = ReLU(l) ≥ 0``, ``sign(p)·ReLU(|p| − g) = ReLU(p − g)``, and as
    ``g = sigmoid(τ) > 0``, ``ReLU(ReLU(l) − g) = ReLU(l − g)``: the same
    values, and the same gradients for ``l`` and τ wherever they are defined
    (not at ``l = g``). One subtraction and one ReLU instead of a ReLU, a
    sign, an absolute value, a subtraction, a ReLU and a product, each over
    the whole ``(B, S, M)`` or ``(B, S, M, E)`` tensor (BENCHMARKS.md). The
    threshold is negated before it is added: the gradient of a broadcast
    subtraction negates the whole incoming gradient before summing it down to
    τ's shape, that of an addition only sums it."""
    return tf.nn.relu(logits + (-tf.sigmoid(tf.cast(threshold, logits.dtype))))
