"""The bilinear interaction layer of FiBiNET (Huang et al., RecSys 2019)."""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import stacked

BILINEAR_TYPES = ("field_all", "field_each", "field_interaction")


@keras.utils.register_keras_serializable(package="featnet_tf")
class BilinearInteraction(keras.layers.Layer):
    """``p_ij = (v_i · W) ∘ v_j`` for every pair i < j (FiBiNET Eq. 5-7).

    Args:
        bilinear_type: `field_all` (one W ∈ R^{D×D}), `field_each` (one
            W_i per field) or `field_interaction` (one W_ij per pair).

    Input shape: ``(batch, M, D)``. Output: ``(batch, M(M−1)/2, D)``.

    References:
        Huang et al., "FiBiNET", RecSys 2019, §3.4.
    """

    def __init__(self, bilinear_type: str = "field_interaction", **kwargs) -> None:
        super().__init__(**kwargs)
        if bilinear_type not in BILINEAR_TYPES:
            raise ValueError(
                f"`bilinear_type` must be one of {BILINEAR_TYPES}. Received: bilinear_type={bilinear_type!r}"
            )
        self.bilinear_type = bilinear_type

    def build(self, input_shape: tf.TensorShape) -> None:
        fields, dim = int(input_shape[1]), int(input_shape[2])
        pairs = np.array(list(itertools.combinations(range(fields), 2)), dtype=np.int32).reshape(-1, 2)
        self._left, self._right = pairs[:, 0], pairs[:, 1]
        count = {"field_all": 1, "field_each": fields, "field_interaction": len(pairs)}[self.bilinear_type]
        self.kernel = self.add_weight(name="kernel", shape=(count, dim, dim), initializer=stacked("glorot_uniform"))
        super().build(input_shape)

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        left = tf.gather(embeddings, self._left, axis=1)
        right = tf.gather(embeddings, self._right, axis=1)
        if self.bilinear_type == "field_all":
            projected = tf.einsum("bpd,de->bpe", left, self.kernel[0])
        elif self.bilinear_type == "field_each":
            projected = tf.einsum("bpd,pde->bpe", left, tf.gather(self.kernel, self._left))
        else:
            projected = tf.einsum("bpd,pde->bpe", left, self.kernel)
        return projected * right

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(bilinear_type=self.bilinear_type)
        return config
