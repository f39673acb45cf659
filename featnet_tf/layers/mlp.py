"""A plain multilayer perceptron, Eq. 14 of FeatNet (WWW'22)."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh


@keras.utils.register_keras_serializable(package="featnet_tf")
class MLP(keras.layers.Layer):
    """``a^(l) = σ(W^(l) a^(l−1) + b^(l))`` for each hidden layer (Eq. 14).

    Args:
        hidden_units: width of each hidden layer, e.g. ``(128, 128, 128)``.
        activation: σ. Default ReLU.
        dropout: dropout rate after each hidden layer, 0 for none.
        use_batch_norm: batch normalisation before each activation, with its
            batch statistics synchronised across the replicas of a
            distribution strategy, so that two replicas of batch B/2 train
            as one device with batch B does.
        batch_norm_momentum: how much of its moving mean and variance batch
            normalisation keeps at each step (Keras' `momentum`). Keras'
            default 0.99 averages over ~100 steps; PyTorch's default (its
            `momentum=0.1`) is 0.9 here, ~10 steps, which is what FuxiCTR's
            models use. Default 0.99.
        kernel_initializer: initializer of every kernel.

    Input shape: ``(batch, ..., features)``; output ``(batch, ..., hidden_units[-1])``.

    Example:
        >>> MLP((64, 32))(tf.zeros([8, 10])).shape  # (8, 32)
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        batch_norm_momentum: float = 0.99,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = tuple(int(units) for units in hidden_units)
        if not hidden_units or any(units <= 0 for units in hidden_units):
            raise ValueError(f"`hidden_units` must be positive widths. Received: hidden_units={hidden_units}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if not 0.0 < batch_norm_momentum < 1.0:
            raise ValueError(
                f"`batch_norm_momentum` must be in (0, 1). Received: batch_norm_momentum={batch_norm_momentum}"
            )
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = float(dropout)
        self.use_batch_norm = bool(use_batch_norm)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.blocks = []
        for index, units in enumerate(hidden_units):
            block = [
                keras.layers.Dense(units, kernel_initializer=fresh(self.kernel_initializer), name=f"dense_{index}")
            ]
            if use_batch_norm:
                block.append(
                    keras.layers.BatchNormalization(
                        momentum=self.batch_norm_momentum, synchronized=True, name=f"batch_norm_{index}"
                    )
                )
            block.append(keras.layers.Activation(activation, name=f"activation_{index}"))
            if dropout:
                block.append(keras.layers.Dropout(dropout, name=f"dropout_{index}"))
            self.blocks.append(block)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.hidden_units[-1]])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            dropout=self.dropout,
            use_batch_norm=self.use_batch_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            batch_norm_momentum=self.batch_norm_momentum,
        )
        return config
