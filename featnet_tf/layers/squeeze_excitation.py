"""The SENET field re-weighting of FiBiNET (Huang et al., RecSys 2019)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh


@keras.utils.register_keras_serializable(package="featnet_tf")
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze, excite, re-weight (FiBiNET Eq. 1-4).

    ``z_i = mean_d(e_i)`` (squeeze), ``A = σ2(W2 σ1(W1 z))`` with
    ``W1 ∈ R^{M/r × M}``, ``W2 ∈ R^{M × M/r}`` and ReLU for σ1, σ2
    (excitation), ``v_i = a_i · e_i`` (re-weight).

    Args:
        reduction_ratio: r. Default 3, as in FiBiNET.

    Input shape: ``(batch, M, D)``. Output: the same.

    References:
        Huang et al., "FiBiNET: Combining Feature Importance and Bilinear
        feature Interaction for Click-Through Rate Prediction", RecSys 2019, §3.3.
    """

    def __init__(self, reduction_ratio: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if reduction_ratio <= 0:
            raise ValueError(f"`reduction_ratio` must be positive. Received: reduction_ratio={reduction_ratio}")
        self.reduction_ratio = float(reduction_ratio)

    def build(self, input_shape: tf.TensorShape) -> None:
        fields = int(input_shape[1])
        reduced = max(1, int(fields / self.reduction_ratio))
        self.squeeze_kernel = self.add_weight(name="squeeze_kernel", shape=(fields, reduced), initializer=fresh("glorot_uniform"))
        self.excite_kernel = self.add_weight(name="excite_kernel", shape=(reduced, fields), initializer=fresh("glorot_uniform"))
        super().build(input_shape)

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        z = tf.reduce_mean(embeddings, axis=2)
        weights = tf.nn.relu(tf.nn.relu(z @ self.squeeze_kernel) @ self.excite_kernel)
        return embeddings * weights[:, :, None]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio)
        return config
