"""One MLP tower per feature subset, computed as batched einsums (Eq. 14)."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh


@keras.utils.register_keras_serializable(package="featnet_tf")
class SubsetTowers(keras.layers.Layer):
    """S independent MLPs, one per subset, as one einsum per layer (Eq. 14).

    Tower ``i`` maps the squeezed interactions ``X''_i ∈ R^{E·D}`` of its
    subset through ``a^(l) = σ(W_i^(l) a^(l−1) + b_i^(l))``. The kernels of all
    towers are stacked into ``(S, in, out)`` tensors, so a layer of all S
    towers is one ``einsum("bsi,sio->bso")``.

    Args:
        hidden_units: widths of each tower's layers. Default ``(128,)*3``
            (§3.1.4: depth 3, 128 neurons).
        activation: σ. Default ReLU.
        dropout: dropout rate after each layer, 0 for none.
        kernel_initializer: initializer of every kernel.

    Input shape: ``(batch, S, features)``; output ``(batch, S, hidden_units[-1])``.

    Example:
        >>> SubsetTowers((32, 16))(tf.zeros([4, 10, 256])).shape  # (4, 10, 16)
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (128, 128, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = tuple(int(units) for units in hidden_units)
        if not hidden_units or any(units <= 0 for units in hidden_units):
            raise ValueError(f"`hidden_units` must be positive widths. Received: hidden_units={hidden_units}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation = keras.activations.get(activation)
        self._dropout = keras.layers.Dropout(dropout) if dropout else None

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"SubsetTowers expects inputs (batch, S, features). Received: {input_shape}")
        num_towers, width = input_shape[1], input_shape[2]
        self.kernels, self.biases = [], []
        for index, units in enumerate(self.hidden_units):
            initializer = _stacked(self.kernel_initializer, num_towers)
            self.kernels.append(self.add_weight(name=f"kernel_{index}", shape=(num_towers, width, units), initializer=initializer))
            self.biases.append(self.add_weight(name=f"bias_{index}", shape=(num_towers, units), initializer="zeros"))
            width = units
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        for kernel, bias in zip(self.kernels, self.biases):
            x = self._activation(tf.einsum("bsi,sio->bso", x, kernel) + bias)
            if self._dropout is not None:
                x = self._dropout(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.hidden_units[-1]])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _stacked(initializer: keras.initializers.Initializer, num_towers: int):
    """Initialises each tower's ``(in, out)`` kernel as if it were alone, so
    fan-in/fan-out scaling ignores the tower axis. Each tower gets its own
    initializer instance: Keras returns identical values when one unseeded
    instance is called twice."""
    
    def initialize(shape, dtype=None):
        towers = [fresh(initializer)(shape[1:], dtype=dtype) for _ in range(num_towers)]
        return tf.stack(towers)

    return initialize
