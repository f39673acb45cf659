"""xDeepFM (Lian et al., KDD 2018)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import CompressedInteraction
from featnet_tf.models.base import EmbeddingModel, deep_tower


@keras.utils.register_keras_serializable(package="featnet_tf")
class XDeepFM(EmbeddingModel):
    """``ŷ = σ(w_linearᵀa + w_dnnᵀx_dnn + w_cinᵀp⁺ + b)`` (xDeepFM Eq. 9).

    Args:
        cin_layer_sizes: feature maps per CIN layer. Default ``(200, 200, 200)``.
        hidden_units: the DNN. Default ``(400, 400)`` (the paper's).
        dropout: DNN dropout. Default 0.5.

    References:
        Lian et al., "xDeepFM: Combining Explicit and Implicit Feature
        Interactions for Recommender Systems", KDD 2018.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        cin_layer_sizes: Sequence[int] = (200, 200, 200),
        hidden_units: Sequence[int] = (400, 400),
        dropout: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.cin_layer_sizes, self.hidden_units, self.dropout = (
            tuple(cin_layer_sizes),
            tuple(hidden_units),
            float(dropout),
        )
        self.linear = self.linear_term()
        self.cin = CompressedInteraction(self.cin_layer_sizes, name="cin")
        self.cin_logit = keras.layers.Dense(1, name="cin_logit")
        self.dnn = deep_tower(self.hidden_units, self.dropout, False, name="dnn")

    def call(self, inputs, training=None) -> tf.Tensor:
        embeddings = self.field_embedding(inputs)
        flat = tf.reshape(embeddings, [-1, self.feature_spec.num_fields * self.embedding_dim])
        return self.linear(inputs) + self.cin_logit(self.cin(embeddings)) + self.dnn(flat, training=training)

    def _config(self):
        return {
            "cin_layer_sizes": list(self.cin_layer_sizes),
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
        }
