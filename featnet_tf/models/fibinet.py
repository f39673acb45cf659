"""FiBiNET (Huang, Zhang and Zhang, RecSys 2019)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import BilinearInteraction, SqueezeExcitation
from featnet_tf.models.base import EmbeddingModel, deep_tower


@keras.utils.register_keras_serializable(package="featnet_tf")
class FiBiNET(EmbeddingModel):
    """SENET re-weights the embeddings E into V; bilinear interactions of E
    (p) and of V (q) are concatenated and fed to a DNN; the linear part is
    added to the DNN's logit (FiBiNET §3, "deep" variant).

    Args:
        bilinear_type: `field_all`, `field_each` or `field_interaction`.
            Default `field_interaction`.
        reduction_ratio: SENET's r. Default 3.
        hidden_units: the DNN. Default ``(400, 400, 400)``.
        dropout: DNN dropout.

    References:
        Huang et al., "FiBiNET: Combining Feature Importance and Bilinear
        feature Interaction for Click-Through Rate Prediction", RecSys 2019.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        bilinear_type: str = "field_interaction",
        reduction_ratio: float = 3.0,
        hidden_units: Sequence[int] = (400, 400, 400),
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.bilinear_type, self.reduction_ratio = bilinear_type, float(reduction_ratio)
        self.hidden_units, self.dropout = tuple(hidden_units), float(dropout)
        self.linear = self.linear_term()
        self.senet = SqueezeExcitation(self.reduction_ratio, name="senet")
        self.bilinear = BilinearInteraction(bilinear_type, name="bilinear")
        self.bilinear_senet = BilinearInteraction(bilinear_type, name="bilinear_senet")
        self.dnn = deep_tower(self.hidden_units, self.dropout, False, name="dnn")

    def call(self, inputs, training=None) -> tf.Tensor:
        embeddings = self.field_embedding(inputs)
        p = self.bilinear(embeddings)
        q = self.bilinear_senet(self.senet(embeddings))
        pairs = self.feature_spec.num_fields * (self.feature_spec.num_fields - 1) // 2
        flat = tf.reshape(tf.concat([p, q], axis=1), [-1, 2 * pairs * self.embedding_dim])
        return self.linear(inputs) + self.dnn(flat, training=training)

    def _config(self):
        return {
            "bilinear_type": self.bilinear_type,
            "reduction_ratio": self.reduction_ratio,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
        }
