"""The SENET field re-weighting of FiBiNET (Huang et al., RecSys 2019)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh

EXCITATIONS = ("relu", "sigmoid")


@keras.utils.register_keras_serializable(package="featnet_tf")
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze, excite, re-weight (FiBiNET Eq. 1-4).

    ``z_i = mean_d(e_i)`` (squeeze), ``A = σ2(W2 σ1(W1 z))`` with
    ``W1 ∈ R^{M/r × M}``, ``W2 ∈ R^{M × M/r}`` and ReLU for σ1 (excitation),
    ``v_i = a_i · e_i`` (re-weight).

    σ2 is FiBiNET's ReLU by default. With ``excitation="sigmoid"`` it is
    ``2·sigmoid(W2 · + b2)``, the gate of the original SENET (Hu et al.,
    CVPR 2018) centred so that every weight starts near 1: re-weighting then
    begins as the identity, and the bias ``b2`` lets a field be turned down
    for every row (FeatNet's `field_gating` uses it).

    Args:
        reduction_ratio: r. Default 3, as in FiBiNET.
        excitation: σ2, ``"relu"`` (FiBiNET) or ``"sigmoid"`` (2·sigmoid with
            a bias).

    Input shape: ``(batch, M, D)``. Output: the same.

    References:
        Huang et al., "FiBiNET: Combining Feature Importance and Bilinear
        feature Interaction for Click-Through Rate Prediction", RecSys 2019, §3.3.
        Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
    """

    def __init__(self, reduction_ratio: float = 3.0, excitation: str = "relu", **kwargs) -> None:
        super().__init__(**kwargs)
        if reduction_ratio <= 0:
            raise ValueError(f"`reduction_ratio` must be positive. Received: reduction_ratio={reduction_ratio}")
        if excitation not in EXCITATIONS:
            raise ValueError(f"`excitation` must be one of {EXCITATIONS}. Received: excitation={excitation!r}")
        self.reduction_ratio = float(reduction_ratio)
        self.excitation = excitation

    def build(self, input_shape: tf.TensorShape) -> None:
        fields = int(input_shape[1])
        reduced = max(1, int(fields / self.reduction_ratio))
        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel", shape=(fields, reduced), initializer=fresh("glorot_uniform")
        )
        self.excite_kernel = self.add_weight(
            name="excite_kernel", shape=(reduced, fields), initializer=fresh("glorot_uniform")
        )
        if self.excitation == "sigmoid":
            self.excite_bias = self.add_weight(name="excite_bias", shape=(fields,), initializer="zeros")
        super().build(input_shape)

    def field_weights(self, embeddings: tf.Tensor) -> tf.Tensor:
        """``A``, ``(batch, M)``: the weight of each field in each row."""
        if not self.built:  # also reached without `__call__`
            self.build(embeddings.shape)
        z = tf.reduce_mean(embeddings, axis=2)
        excited = tf.nn.relu(z @ self.squeeze_kernel) @ self.excite_kernel
        if self.excitation == "sigmoid":
            return 2.0 * tf.sigmoid(excited + self.excite_bias)
        return tf.nn.relu(excited)

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        return embeddings * self.field_weights(embeddings)[:, :, None]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio, excitation=self.excitation)
        return config
