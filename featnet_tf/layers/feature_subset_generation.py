"""Feature Subset Generation Network (FSGN), Eq. 2-5 of FeatNet (WWW'22)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh
from featnet_tf.layers.soft_threshold import SoftThreshold, soft_threshold_of_relu


@keras.utils.register_keras_serializable(package="featnet_tf")
class FeatureSubsetGeneration(keras.layers.Layer):
    """Soft-assigns every field to S feature subsets and prunes (Eq. 2-5).

    For the field matrix ``x ∈ R^{M×D}`` of one example:

    * Eq. 2: ``x_r = σ(W1 · xᵀ) ∈ R^{r×M}``, ``W1 ∈ R^{r×D}`` (σ = sigmoid);
    * Eq. 3: ``p = ReLU(W2 · x_r) ∈ R^{S×M}``, ``W2 ∈ R^{S×r}``;
    * Eq. 4: ``p^s = S_g(p, τ)`` with one learnable τ per (subset, field);
    * Eq. 5: ``X_i = diag(p^s_i) · x``, the re-weighted subsets
      ``X ∈ R^{S×M×D}``.

    W1 and W2 are shared by all fields, as in the paper (no biases).

    Args:
        num_subsets: S, the number of feature subsets. Default 10 (§3.1.4).
        expand_ratio: r, the width of the non-linear transform of Eq. 2.
            Default 4 (§3.1.4).
        initial_threshold: initial τ of the soft threshold; −10 prunes
            nothing at first.
        kernel_initializer: initializer of W1 and W2.

    Input shape: ``(batch, M, D)`` with static M and D.
    Output: the tuple ``(X, p^s)`` of shapes ``(batch, S, M, D)`` and
    ``(batch, S, M)``.

    Example:
        >>> fsgn = FeatureSubsetGeneration(num_subsets=3, expand_ratio=4)
        >>> subsets, weights = fsgn(tf.random.normal([2, 5, 8]))
        >>> subsets.shape, weights.shape  # (2, 3, 5, 8), (2, 3, 5)

    References:
        FeatNet: Feature Interaction Pruning Networks for CTR Prediction,
        WWW 2022, §2.3.1-2.3.2.
    """

    def __init__(
        self,
        num_subsets: int = 10,
        expand_ratio: int = 4,
        initial_threshold: float = -10.0,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_subsets <= 0:
            raise ValueError(f"`num_subsets` must be positive. Received: num_subsets={num_subsets}")
        if expand_ratio <= 0:
            raise ValueError(f"`expand_ratio` must be positive. Received: expand_ratio={expand_ratio}")
        self.num_subsets = int(num_subsets)
        self.expand_ratio = int(expand_ratio)
        self.initial_threshold = float(initial_threshold)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.soft_threshold = SoftThreshold(initial_threshold, name="soft_threshold")

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"FeatureSubsetGeneration expects inputs (batch, M, D) with static M and D. Received: {input_shape}"
            )
        num_fields, embedding_dim = input_shape[1], input_shape[2]
        self.expand_kernel = self.add_weight(
            name="expand_kernel",  # W1ᵀ of Eq. 2
            shape=(embedding_dim, self.expand_ratio),
            initializer=fresh(self.kernel_initializer),
        )
        self.subset_kernel = self.add_weight(
            name="subset_kernel",  # W2ᵀ of Eq. 3
            shape=(self.expand_ratio, self.num_subsets),
            initializer=fresh(self.kernel_initializer),
        )
        self.soft_threshold.build(tf.TensorShape([None, self.num_subsets, num_fields]))
        super().build(input_shape)

    def probabilities(self, x: tf.Tensor) -> tf.Tensor:
        """``p`` of Eq. 3 before the threshold, ``(batch, S, M)``: with
        `call`'s ``p^s`` it tells the entries the ReLU zeroes from those the
        threshold prunes."""
        return tf.nn.relu(self._logits(x))  # Eq. 3

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        expanded = tf.sigmoid(tf.einsum("bmd,dr->bmr", x, self.expand_kernel))  # Eq. 2
        return tf.einsum("bmr,rs->bsm", expanded, self.subset_kernel)  # Eq. 3 before its ReLU

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        subset_weights = soft_threshold_of_relu(self._logits(x), self.soft_threshold.threshold)  # Eq. 2-4
        subsets = subset_weights[:, :, :, None] * x[:, None, :, :]  # Eq. 5
        return subsets, subset_weights

    def compute_output_shape(self, input_shape):
        batch, num_fields, embedding_dim = tf.TensorShape(input_shape).as_list()
        return (
            tf.TensorShape([batch, self.num_subsets, num_fields, embedding_dim]),
            tf.TensorShape([batch, self.num_subsets, num_fields]),
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_subsets=self.num_subsets,
            expand_ratio=self.expand_ratio,
            initial_threshold=self.initial_threshold,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
