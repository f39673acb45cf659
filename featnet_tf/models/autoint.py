"""AutoInt and AutoInt+ (Song et al., CIKM 2019)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import MultiHeadSelfAttention
from featnet_tf.models.base import EmbeddingModel, deep_tower


@keras.utils.register_keras_serializable(package="featnet_tf")
class AutoInt(EmbeddingModel):
    """Stacked interacting layers (multi-head self-attention with residuals)
    over the field embeddings, then ``ŷ = σ(wᵀ(e_1^Res ⊕ ... ⊕ e_M^Res) + b)``
    (AutoInt Eq. 9). With `hidden_units`, AutoInt+: a parallel DNN whose
    logit is added.

    Args:
        num_layers: interacting layers. Default 3 (the paper's).
        num_heads: heads per layer. Default 2.
        head_dim: d′ per head. Default 32.
        hidden_units: the parallel DNN of AutoInt+ (empty: plain AutoInt).
        dropout: DNN dropout.

    References:
        Song et al., "AutoInt: Automatic Feature Interaction Learning via
        Self-Attentive Neural Networks", CIKM 2019.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        num_layers: int = 3,
        num_heads: int = 2,
        head_dim: int = 32,
        hidden_units: Sequence[int] = (),
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        if num_layers <= 0:
            raise ValueError(f"`num_layers` must be positive. Received: num_layers={num_layers}")
        self.num_layers, self.num_heads, self.head_dim = int(num_layers), int(num_heads), int(head_dim)
        self.hidden_units, self.dropout = tuple(hidden_units), float(dropout)
        self.interacting = [
            MultiHeadSelfAttention(num_heads, head_dim, name=f"interacting_{i}") for i in range(self.num_layers)
        ]
        self.attention_logit = keras.layers.Dense(1, name="attention_logit")
        self.dnn = deep_tower(self.hidden_units, self.dropout, False, name="dnn") if self.hidden_units else None

    def call(self, inputs, training=None) -> tf.Tensor:
        embeddings = self.field_embedding(inputs)
        hidden = embeddings
        for layer in self.interacting:
            hidden = layer(hidden)
        logit = self.attention_logit(
            tf.reshape(hidden, [-1, self.feature_spec.num_fields * self.num_heads * self.head_dim])
        )
        if self.dnn is not None:
            flat = tf.reshape(embeddings, [-1, self.feature_spec.num_fields * self.embedding_dim])
            logit += self.dnn(flat, training=training)
        return logit

    def _config(self):
        return {
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
        }


# AutoInt+: AutoInt with a parallel DNN, the paper's 2 × 400 (the registry's `autoint_plus`).
AUTOINT_PLUS = {"hidden_units": (400, 400)}
