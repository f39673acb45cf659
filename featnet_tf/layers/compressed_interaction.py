"""The Compressed Interaction Network of xDeepFM (Lian et al., KDD 2018)."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import output_major_dense


@keras.utils.register_keras_serializable(package="featnet_tf")
class CompressedInteraction(keras.layers.Layer):
    """CIN: explicit vector-wise interactions of bounded order.

    Layer k computes (xDeepFM Eq. 6) for each of its ``H_k`` feature maps
    ``X^k_{h,*} = Σ_i Σ_j W^{k,h}_{ij} (X^{k−1}_{i,*} ∘ X^0_{j,*})``, and every
    layer's feature maps are sum-pooled over D (Eq. 8); the pooled maps of all
    layers are concatenated: ``p⁺ = [p¹, ..., p^T]``. Every map of layer k
    feeds layer k+1 (no split-half).

    Args:
        layer_sizes: ``H_1, ..., H_T``. Default ``(16, 16)``.
        activation: applied to each layer's maps (the paper: identity).
        kernel_initializer: initializer of the ``W^k``.

    Input shape: ``(batch, M, D)``. Output: ``(batch, Σ H_k)``.

    References:
        Lian et al., "xDeepFM: Combining Explicit and Implicit Feature
        Interactions for Recommender Systems", KDD 2018, §3.2.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int] = (16, 16),
        activation: str = "linear",
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        layer_sizes = tuple(int(size) for size in layer_sizes)
        if not layer_sizes or any(size <= 0 for size in layer_sizes):
            raise ValueError(f"`layer_sizes` must be positive. Received: layer_sizes={layer_sizes}")
        self.layer_sizes = layer_sizes
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation = keras.activations.get(activation)

    def build(self, input_shape: tf.TensorShape) -> None:
        fields = int(input_shape[1])
        previous = fields
        self.kernels = []
        for index, size in enumerate(self.layer_sizes):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{index}",
                    shape=(size, previous, fields),
                    initializer=output_major_dense(self.kernel_initializer),
                )
            )
            previous = size
        super().build(input_shape)

    def call(self, x0: tf.Tensor) -> tf.Tensor:
        pooled, hidden = [], x0
        for kernel in self.kernels:
            # z_{b,i,j,d} = X^{k-1}_{b,i,d} · X^0_{b,j,d};  X^k_{b,h,d} = Σ_ij W_{h,i,j} z_{b,i,j,d}
            hidden = self._activation(tf.einsum("hij,bid,bjd->bhd", kernel, hidden, x0))
            pooled.append(tf.reduce_sum(hidden, axis=2))
        return tf.concat(pooled, axis=1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], sum(self.layer_sizes)])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            layer_sizes=list(self.layer_sizes),
            activation=self.activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
