"""One MLP tower per feature subset, computed as batched matmuls (Eq. 14)."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import stacked
from featnet_tf.layers._normalization import NORM_EPSILON, standardize


@keras.utils.register_keras_serializable(package="featnet_tf")
class SubsetTowers(keras.layers.Layer):
    """S independent MLPs, one per subset, as one batched matmul per layer (Eq. 14).

    Tower ``i`` maps the squeezed interactions ``X''_i ∈ R^{E·D}`` of its
    subset through ``a^(l) = σ(W_i^(l) a^(l−1) + b_i^(l))``. The kernels of all
    towers are stacked into ``(S, in, out)`` tensors, so a layer of all S
    towers is one ``matmul`` over the subset axis.

    With `normalize_inputs`, each tower first layer-normalises its input
    (mean 0, variance 1 over the features, then its own learned scale and
    shift). The paper does not write it; it makes the towers' inputs
    independent of the embeddings' scale (BENCHMARKS.md has the ablation).
    The epsilon must be small against the inputs' variance: with Keras'
    default 1e-3 and embeddings of scale 0.05 the "normalisation" does nothing.

    Internally the towers run subset-major, ``(S, batch, features)``, so each
    layer is one batched matmul with no transposes in between.

    Args:
        hidden_units: widths of each tower's layers. Default ``(128,)*3``
            (§3.1.4: depth 3, 128 neurons).
        activation: σ. Default ReLU.
        dropout: dropout rate after each layer, 0 for none.
        normalize_inputs: layer-normalise each tower's input. Default False.
        norm_epsilon: the variance epsilon of that normalisation.
        kernel_initializer: initializer of every kernel (per tower, so the
            fans are each tower's own; see `stacked`).

    Input shape: ``(batch, S, features)``; output ``(batch, S, hidden_units[-1])``.

    Example:
        >>> SubsetTowers((32, 16))(tf.zeros([4, 10, 256])).shape  # (4, 10, 16)
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (128, 128, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize_inputs: bool = False,
        norm_epsilon: float = NORM_EPSILON,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = tuple(int(units) for units in hidden_units)
        if not hidden_units or any(units <= 0 for units in hidden_units):
            raise ValueError(f"`hidden_units` must be positive widths. Received: hidden_units={hidden_units}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if norm_epsilon <= 0:
            raise ValueError(f"`norm_epsilon` must be positive. Received: norm_epsilon={norm_epsilon}")
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = float(dropout)
        self.normalize_inputs = bool(normalize_inputs)
        self.norm_epsilon = float(norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation = keras.activations.get(activation)
        self._dropout = keras.layers.Dropout(dropout) if dropout else None

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"SubsetTowers expects inputs (batch, S, features). Received: {input_shape}")
        num_towers, width = input_shape[1], input_shape[2]
        if self.normalize_inputs:
            self.norm_scale = self.add_weight(name="norm_scale", shape=(num_towers, 1, width), initializer="ones")
            self.norm_shift = self.add_weight(name="norm_shift", shape=(num_towers, 1, width), initializer="zeros")
        self.kernels, self.biases = [], []
        for index, units in enumerate(self.hidden_units):
            initializer = stacked(self.kernel_initializer)
            self.kernels.append(
                self.add_weight(name=f"kernel_{index}", shape=(num_towers, width, units), initializer=initializer)
            )
            self.biases.append(self.add_weight(name=f"bias_{index}", shape=(num_towers, 1, units), initializer="zeros"))
            width = units
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = tf.transpose(inputs, [1, 0, 2])  # (S, batch, features)
        if self.normalize_inputs:
            x = standardize(x, self.norm_epsilon) * self.norm_scale + self.norm_shift
        for kernel, bias in zip(self.kernels, self.biases):
            x = self._activation(tf.matmul(x, kernel) + bias)  # Eq. 14 for all towers at once
            if self._dropout is not None:
                x = self._dropout(x, training=training)
        return tf.transpose(x, [1, 0, 2])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.hidden_units[-1]])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            dropout=self.dropout,
            normalize_inputs=self.normalize_inputs,
            norm_epsilon=self.norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
