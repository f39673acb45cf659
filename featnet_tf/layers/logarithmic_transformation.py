"""The logarithmic transformation layer of AFN (Cheng et al., AAAI 2020)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh


@keras.utils.register_keras_serializable(package="featnet_tf")
class LogarithmicTransformation(keras.layers.Layer):
    """Adaptive-order interactions: ``y_j = exp(Σ_i w_ij ln|e_i|)`` (AFN Eq. 5-6).

    Each of the H logarithmic neurons learns the (real-valued) order
    ``w_ij`` of every field in its cross feature. Embeddings are made positive
    by ``max(|e|, ε)`` before the logarithm, and the neurons' outputs are
    batch-normalised in log space and after the exponential, as in the
    authors' implementation.

    Args:
        num_neurons: H. Default 256 (a paper-scale setting for Criteo is 1500).
        epsilon: the clip ε of the logarithm's input.

    Input shape: ``(batch, M, D)``. Output: ``(batch, H·D)``.

    References:
        Cheng, Shen and Huang, "Adaptive Factorization Network: Learning
        Adaptive-Order Feature Interactions", AAAI 2020, §3.3.
    """

    def __init__(self, num_neurons: int = 256, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_neurons <= 0:
            raise ValueError(f"`num_neurons` must be positive. Received: num_neurons={num_neurons}")
        self.num_neurons = int(num_neurons)
        self.epsilon = float(epsilon)
        self.log_norm = keras.layers.BatchNormalization(name="log_norm")
        self.exp_norm = keras.layers.BatchNormalization(name="exp_norm")

    def build(self, input_shape: tf.TensorShape) -> None:
        fields, dim = int(input_shape[1]), int(input_shape[2])
        self.kernel = self.add_weight(
            name="kernel", shape=(fields, self.num_neurons), initializer=fresh("glorot_uniform")
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_neurons, 1), initializer="zeros")
        self.log_norm.build(tf.TensorShape([None, fields, dim]))
        self.exp_norm.build(tf.TensorShape([None, self.num_neurons * dim]))
        super().build(input_shape)

    def call(self, embeddings: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        logs = tf.math.log(tf.maximum(tf.abs(embeddings), self.epsilon))
        logs = self.log_norm(logs, training=training)
        crossed = tf.exp(tf.einsum("bmd,mh->bhd", logs, self.kernel) + self.bias)
        flat = tf.reshape(crossed, [-1, self.num_neurons * embeddings.shape[-1]])
        return self.exp_norm(flat, training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_neurons=self.num_neurons, epsilon=self.epsilon)
        return config
