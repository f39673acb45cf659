"""What every baseline shares: the FeatureSpec, field embeddings and config."""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import FeatureSpec
from featnet_tf.layers import MLP, FieldEmbedding


class EmbeddingModel(keras.Model):
    """Base of every CTR model here, FeatNet included: the `FeatureSpec`, the
    field embeddings of Eq. 1 (indexed inputs → ``(batch, M, D)``) and the
    config of both; subclasses map them to ``(batch, 1)`` logits.

    Subclasses set up their layers after calling ``super().__init__`` and
    list their own constructor arguments in `_config`.

    Args:
        feature_spec: the inputs (a `FeatureSpec` or its dict).
        embedding_dim: D, the size of the field embeddings.
        embeddings_regularizer: optional regularizer of the id tables.
        embeddings_initializer: initializer of the id tables. Default
            uniform(±0.05), Keras' own; FuxiCTR's is normal(std 1e-4).
        regularize_first_order: `embeddings_regularizer` also on the
            first-order weights of a `LinearTerm` (one more id table), as
            FuxiCTR's `embedding_regularizer` covers every id table.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: int = 16,
        embeddings_regularizer: Any = None,
        embeddings_initializer: Any = "uniform",
        regularize_first_order: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(feature_spec, Mapping):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        self.feature_spec = feature_spec
        self.embedding_dim = int(embedding_dim)
        self.embeddings_regularizer = embeddings_regularizer
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.regularize_first_order = bool(regularize_first_order)
        self.field_embedding = FieldEmbedding(
            feature_spec,
            embedding_dim,
            embeddings_initializer=self.embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            name="field_embedding",
        )

    def _config(self) -> dict[str, Any]:
        return {}

    def linear_term(self) -> "LinearTerm":
        """The first-order part of this model, its weights penalised when `regularize_first_order`."""
        regularizer = self.embeddings_regularizer if self.regularize_first_order else None
        return LinearTerm(self.feature_spec, embeddings_regularizer=regularizer, name="linear")

    def get_config(self) -> dict[str, Any]:
        regularizer = keras.regularizers.get(self.embeddings_regularizer) if self.embeddings_regularizer else None
        return {
            "name": self.name,
            "feature_spec": self.feature_spec.to_dict(),
            "embedding_dim": self.embedding_dim,
            "embeddings_regularizer": keras.regularizers.serialize(regularizer) if regularizer else None,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "regularize_first_order": self.regularize_first_order,
            **self._config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)


@keras.utils.register_keras_serializable(package="featnet_tf")
class LinearTerm(keras.layers.Layer):
    """``w_0 + Σ_i w_i(x_i)``: one scalar weight per id (and per value-scaled
    numeric), the first-order part of LR, FM, DeepFM and xDeepFM.

    Input: the indexed inputs of `FieldEmbedding`. Output: ``(batch, 1)``.
    `embeddings_regularizer` (optional) penalises the weights per id.
    """

    def __init__(
        self, feature_spec: FeatureSpec | Mapping[str, Any], embeddings_regularizer: Any = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(feature_spec, Mapping):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        self.feature_spec = feature_spec
        self.embeddings_regularizer = embeddings_regularizer
        self.weights_per_id = FieldEmbedding(
            feature_spec,
            1,
            embeddings_initializer="zeros",
            embeddings_regularizer=embeddings_regularizer,
            name="weights",
        )

    def build(self, input_shape) -> None:
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs) -> tf.Tensor:
        return tf.reduce_sum(self.weights_per_id(inputs), axis=[1, 2])[:, None] + self.bias

    def get_config(self) -> dict:
        config = super().get_config()
        regularizer = keras.regularizers.get(self.embeddings_regularizer) if self.embeddings_regularizer else None
        config.update(
            feature_spec=self.feature_spec.to_dict(),
            embeddings_regularizer=keras.regularizers.serialize(regularizer) if regularizer else None,
        )
        return config


def deep_tower(
    hidden_units, dropout: float, use_batch_norm: bool, name: str, batch_norm_momentum: float = 0.99
) -> keras.Sequential:
    """An MLP followed by the logit unit."""
    mlp = MLP(hidden_units, dropout=dropout, use_batch_norm=use_batch_norm, batch_norm_momentum=batch_norm_momentum)
    return keras.Sequential([mlp, keras.layers.Dense(1)], name=name)
