"""AFN and AFN+ (Cheng, Shen and Huang, AAAI 2020)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers import LogarithmicTransformation
from featnet_tf.models.base import EmbeddingModel, deep_tower


@keras.utils.register_keras_serializable(package="featnet_tf")
class AFN(EmbeddingModel):
    """Logarithmic neurons learn adaptive-order cross features; an MLP maps
    them to the logit (AFN Eq. 7). With `ensemble_units`, AFN+: a DNN on the
    plain embeddings whose logit is ensembled (added) with AFN's. (The
    authors' AFN+ gives the DNN its own embedding table; here both share one.)

    Args:
        num_neurons: H, logarithmic neurons. Default 400.
        hidden_units: the MLP after the transformation. Default ``(400, 400, 400)``.
        dropout: MLP dropout.
        ensemble_units: the DNN of AFN+ (empty: plain AFN).
        batch_norm_momentum: the momentum of the MLP's batch normalisation
            (see `MLP`). Default 0.99.

    References:
        Cheng, Shen and Huang, "Adaptive Factorization Network: Learning
        Adaptive-Order Feature Interactions", AAAI 2020.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        num_neurons: int = 400,
        hidden_units: Sequence[int] = (400, 400, 400),
        dropout: float = 0.0,
        ensemble_units: Sequence[int] = (),
        batch_norm_momentum: float = 0.99,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        self.num_neurons, self.hidden_units, self.dropout = int(num_neurons), tuple(hidden_units), float(dropout)
        self.ensemble_units = tuple(ensemble_units)
        self.logarithmic = LogarithmicTransformation(self.num_neurons, name="logarithmic")
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.mlp = deep_tower(
            self.hidden_units, self.dropout, True, name="mlp", batch_norm_momentum=batch_norm_momentum
        )
        self.ensemble = (
            deep_tower(self.ensemble_units, self.dropout, False, name="ensemble") if self.ensemble_units else None
        )

    def call(self, inputs, training=None) -> tf.Tensor:
        embeddings = self.field_embedding(inputs)
        logit = self.mlp(self.logarithmic(embeddings, training=training), training=training)
        if self.ensemble is not None:
            flat = tf.reshape(embeddings, [-1, self.feature_spec.num_fields * self.embedding_dim])
            logit += self.ensemble(flat, training=training)
        return logit

    def _config(self):
        return {
            "num_neurons": self.num_neurons,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "ensemble_units": list(self.ensemble_units),
            "batch_norm_momentum": self.batch_norm_momentum,
        }


# AFN+: AFN ensembled with a DNN (the registry's `afn_plus`).
AFN_PLUS = {"ensemble_units": (400, 400, 400)}
