"""The floors: logistic regression and the factorization machine."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import FactorizationMachine
from featnet_tf.models.base import EmbeddingModel


@keras.utils.register_keras_serializable(package="featnet_tf")
class LogisticRegression(EmbeddingModel):
    """``logit = w_0 + Σ_i w_i(x_i)``: first-order effects only.

    `embedding_dim` is accepted for a uniform interface and unused."""

    def __init__(self, feature_spec, embedding_dim: int = 16, embeddings_regularizer=None, **kwargs) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.linear = self.linear_term()

    def call(self, inputs, training=None) -> tf.Tensor:
        return self.linear(inputs)


@keras.utils.register_keras_serializable(package="featnet_tf")
class FM(EmbeddingModel):
    """Factorization machine: ``w_0 + Σ_i w_i + Σ_{i<j} <v_i, v_j>``.

    References:
        Rendle, "Factorization Machines", ICDM 2010.
    """

    def __init__(self, feature_spec, embedding_dim: int = 16, embeddings_regularizer=None, **kwargs) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.linear = self.linear_term()
        self.fm = FactorizationMachine(name="fm")

    def call(self, inputs, training=None) -> tf.Tensor:
        return self.linear(inputs) + self.fm(self.field_embedding(inputs))
