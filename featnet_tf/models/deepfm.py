"""DeepFM (Guo et al., IJCAI 2017)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import FactorizationMachine
from featnet_tf.models.base import EmbeddingModel, deep_tower


@keras.utils.register_keras_serializable(package="featnet_tf")
class DeepFM(EmbeddingModel):
    """``ŷ = σ(y_FM + y_DNN)`` over shared embeddings (DeepFM Eq. 1-4).

    The FM component is the linear term plus all pairwise inner products;
    the DNN sees the concatenated field embeddings.

    Args:
        hidden_units: the DNN. Default ``(400, 400, 400)`` (the paper's).
        dropout: DNN dropout. Default 0.5 (the paper's).
        use_batch_norm: batch normalisation in the DNN.
        batch_norm_momentum: its moving statistics' momentum (see `MLP`).
            Default 0.9 (PyTorch's, as BARS runs DeepFM): with Keras' 0.99 the
            batch-normalised DNN collapses under BARS' recipe (BENCHMARKS.md).

    References:
        Guo et al., "DeepFM: A Factorization-Machine based Neural Network for
        CTR Prediction", IJCAI 2017.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        hidden_units: Sequence[int] = (400, 400, 400),
        dropout: float = 0.5,
        use_batch_norm: bool = False,
        batch_norm_momentum: float = 0.9,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.hidden_units, self.dropout, self.use_batch_norm = tuple(hidden_units), float(dropout), bool(use_batch_norm)
        self.linear = self.linear_term()
        self.fm = FactorizationMachine(name="fm")
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.dnn = deep_tower(
            self.hidden_units, self.dropout, self.use_batch_norm, name="dnn", batch_norm_momentum=batch_norm_momentum
        )

    def call(self, inputs, training=None) -> tf.Tensor:
        embeddings = self.field_embedding(inputs)
        flat = tf.reshape(embeddings, [-1, self.feature_spec.num_fields * self.embedding_dim])
        return self.linear(inputs) + self.fm(embeddings) + self.dnn(flat, training=training)

    def _config(self):
        return {
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "use_batch_norm": self.use_batch_norm,
            "batch_norm_momentum": self.batch_norm_momentum,
        }
