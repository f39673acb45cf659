"""Field embeddings of every input kind, Eq. 1 of FeatNet (WWW'22)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import MISSING_ID, FeatureSpec
from featnet_tf.layers._initializers import fresh


@keras.utils.register_keras_serializable(package="featnet_tf")
class FieldEmbedding(keras.layers.Layer):
    """Maps indexed inputs to one D-dimensional vector per field (Eq. 1).

    ``x = [x_1, ..., x_M] ∈ R^{B×M×D}``, in the order of the spec's fields:

    * categorical and bucketized numeric fields: an id lookup (``0`` missing,
      ``1`` out-of-vocabulary, ``2..`` vocabulary or hash buckets). All such
      fields share one table with per-field offsets, so the lookup is a single
      gather.
    * multi-hot fields: a lookup of a padded ``(B, L)`` (or ragged) id list,
      masked mean or sum pooling; the padding/missing id ``0`` is masked out.
    * value-scaled numeric fields: ``x_i = v_i · e_i`` with a learned field
      vector ``e_i``.
    * dense vector fields: a linear projection ``x_i = W_i v_i + b_i`` to D.

    Args:
        feature_spec: the `FeatureSpec` (or its dict) describing the fields;
            vocabulary sizes or hash buckets must be known.
        embedding_dim: D, the size of every field vector. Default 16 (§3.1.4).
        embeddings_initializer: initializer of the tables and field vectors.
        embeddings_regularizer: optional regularizer of the id tables.

    Input: a dict from field name to tensor (ids as integers, values as floats).
    Output shape: ``(batch, M, D)``.

    Example:
        >>> spec = FeatureSpec((Field("user", "categorical", vocabulary_size=10),))
        >>> FieldEmbedding(spec, embedding_dim=4)({"user": tf.constant([2, 0])}).shape
        TensorShape([2, 1, 4])
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: int = 16,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(feature_spec, Mapping):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        if embedding_dim <= 0:
            raise ValueError(f"`embedding_dim` must be positive. Received: embedding_dim={embedding_dim}")
        self.feature_spec = feature_spec
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

        fields = feature_spec.fields
        inputs = {f.name: f.field_kind.model_input for f in fields}
        self._single_id_fields = [f for f in fields if f.uses_tokens and inputs[f.name] == "scalar"]
        self._multi_hot_fields = [f for f in fields if inputs[f.name] == "id_list"]
        self._value_fields = [f for f in fields if f.is_value_scaled]
        self._dense_fields = [f for f in fields if inputs[f.name] == "vector"]
        token_fields = self._single_id_fields + self._multi_hot_fields
        sizes = [f.num_ids for f in token_fields]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else []
        self._offsets = {f.name: int(start) for f, start in zip(token_fields, starts)}
        self._table_size = int(sum(sizes))
        # Groups are embedded in the order single ids, multi-hot, values,
        # dense; this permutation puts the fields back in spec order.
        group_order = [f.name for f in token_fields + self._value_fields + self._dense_fields]
        self._spec_order = [group_order.index(name) for name in feature_spec.names]

    def row_ranges(self) -> dict[str, tuple[int, int]]:
        """Each id field's rows of the shared table: ``{name: (first row, rows)}``
        (row ``first + id`` embeds the field's id; `featnet_tf.warm_start` maps them by token)."""
        fields = self._single_id_fields + self._multi_hot_fields
        return {field.name: (self._offsets[field.name], field.num_ids) for field in fields}

    def build(self, input_shape: Any) -> None:
        if self._table_size:
            self.embeddings = self.add_weight(
                name="embeddings",
                shape=(self._table_size, self.embedding_dim),
                initializer=fresh(self.embeddings_initializer),
                regularizer=self.embeddings_regularizer,
            )
        if self._value_fields:
            self.numeric_embeddings = self.add_weight(
                name="numeric_embeddings",
                shape=(len(self._value_fields), self.embedding_dim),
                initializer=fresh(self.embeddings_initializer),
            )
        self.dense_kernels = [
            self.add_weight(
                name=f"{field.name}_kernel",
                shape=(field.dimension, self.embedding_dim),
                initializer=fresh("glorot_uniform"),
            )
            for field in self._dense_fields
        ]
        self.dense_biases = [
            self.add_weight(name=f"{field.name}_bias", shape=(self.embedding_dim,), initializer="zeros")
            for field in self._dense_fields
        ]
        super().build(input_shape)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        missing = [name for name in self.feature_spec.names if name not in inputs]
        if missing:
            raise ValueError(f"FieldEmbedding is missing inputs for fields {missing}")
        groups = []
        if self._single_id_fields:
            ids = tf.stack(
                [self._flat(inputs[f.name], tf.int64) + self._offsets[f.name] for f in self._single_id_fields],
                axis=1,
            )
            groups.append(tf.gather(self.embeddings, ids))
        if self._multi_hot_fields:
            groups.append(tf.stack([self._pool(f, inputs[f.name]) for f in self._multi_hot_fields], axis=1))
        if self._value_fields:
            values = tf.stack([self._flat(inputs[f.name], self.compute_dtype) for f in self._value_fields], axis=1)
            groups.append(values[:, :, None] * tf.cast(self.numeric_embeddings, self.compute_dtype)[None])
        if self._dense_fields:
            projected = [
                tf.matmul(tf.cast(inputs[f.name], self.compute_dtype), kernel) + bias
                for f, kernel, bias in zip(self._dense_fields, self.dense_kernels, self.dense_biases)
            ]
            groups.append(tf.stack(projected, axis=1))
        x = tf.concat([tf.cast(group, self.compute_dtype) for group in groups], axis=1)
        if self._spec_order != list(range(len(self._spec_order))):
            x = tf.gather(x, self._spec_order, axis=1)
        return x

    @staticmethod
    def _flat(tensor: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
        return tf.reshape(tf.cast(tensor, dtype), [-1])

    def _pool(self, field, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """Masked mean or sum of a multi-hot field's embeddings, ``(B, D)``."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=MISSING_ID)
        ids = tf.cast(ids, tf.int64)
        mask = tf.cast(tf.not_equal(ids, MISSING_ID), self.compute_dtype)
        vectors = tf.gather(self.embeddings, ids + self._offsets[field.name])
        summed = tf.einsum("bl,bld->bd", mask, tf.cast(vectors, self.compute_dtype))
        if field.pooling == "sum":
            return summed
        count = tf.reduce_sum(mask, axis=1, keepdims=True)
        return summed / tf.maximum(count, 1.0)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        batch = next(iter(input_shape.values()))[0] if isinstance(input_shape, Mapping) else None
        return tf.TensorShape([batch, self.feature_spec.num_fields, self.embedding_dim])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            feature_spec=self.feature_spec.to_dict(),
            embedding_dim=self.embedding_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=keras.regularizers.serialize(self.embeddings_regularizer)
            if self.embeddings_regularizer
            else None,
        )
        return config
