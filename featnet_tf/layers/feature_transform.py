"""Raw feature values → the indexed inputs of `FieldEmbedding`, in TensorFlow ops."""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import LOG_SQUARE_THRESHOLD, MISSING_ID, NUM_RESERVED_IDS, FeatureSpec, Field


@keras.utils.register_keras_serializable(package="featnet_tf")
class FeatureTransform(keras.layers.Layer):
    """Maps raw values to ids and scaled values, inside the model.

    The same layer runs in training (on TFRecords of raw values) and in the
    exported SavedModel (on raw values from clients), so vocabulary lookup,
    hashing, bucketization and missing-value defaults cannot drift apart
    between training and serving. Only stock TensorFlow ops are used; the
    vocabulary files become SavedModel assets.

    Per field kind (ids: 0 missing, 1 out-of-vocabulary, 2.. vocabulary):

    * categorical: string → id by vocabulary (``""`` = missing) or
      ``2 + hash % hash_buckets``;
    * numeric `log_square_bucket`: float (NaN = missing) → token
      ``floor(ln(x)^2)`` for x > 2 else ``trunc(x)`` → id by vocabulary;
    * numeric `log_normalize` / `identity`: float → ``sign(x)·ln(1+|x|)`` or
      x, NaN → the field's default;
    * multi-hot: ragged or padded strings → ``(batch, max_length)`` ids,
      padded with 0, truncated to `max_length`;
    * dense vector: float ``(batch, dimension)``, NaN → the field's default.

    Args:
        feature_spec: the resolved FeatureSpec (vocabulary sizes known).
        vocabulary_dir: the directory the spec's `vocabulary_file` paths are
            relative to (the preprocessing output directory).

    Input: a dict of raw tensors, shape ``(batch,)`` or ``(batch, 1)`` for
    scalars. Output: a dict of the same keys for `FieldEmbedding`.
    """

    def __init__(self, feature_spec: FeatureSpec | Mapping[str, Any], vocabulary_dir: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(feature_spec, Mapping):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        self.feature_spec = feature_spec
        self.vocabulary_dir = vocabulary_dir
        self.lookups = {}
        for field in feature_spec.fields:
            if field.uses_vocabulary:
                path = feature_spec.vocabulary_path(field, vocabulary_dir)
                if not tf.io.gfile.exists(path):
                    raise ValueError(f"Vocabulary file of field `{field.name}` not found: {path}")
                self.lookups[field.name] = keras.layers.StringLookup(
                    vocabulary=path, mask_token="", num_oov_indices=1, name=f"{field.name}_lookup"
                )

    def call(self, inputs: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        missing = [name for name in self.feature_spec.names if name not in inputs]
        if missing:
            raise ValueError(f"FeatureTransform is missing raw inputs for fields {missing}")
        return {field.name: self._transform(field, inputs[field.name]) for field in self.feature_spec.fields}

    def _transform(self, field: Field, value: Any) -> tf.Tensor:
        """One field's raw values → what `FieldEmbedding` takes for its kind's `model_input`."""
        model_input = field.field_kind.model_input
        if model_input == "id_list":
            if not isinstance(value, tf.RaggedTensor):
                value = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(value), padding="")
            ids = tf.ragged.map_flat_values(self._token_ids, field, value)
            return ids.to_tensor(default_value=MISSING_ID, shape=[None, field.max_length])
        if model_input == "vector":
            value = tf.cast(value, tf.float32)
            return tf.where(tf.math.is_nan(value), tf.constant(field.default, tf.float32), value)
        value = tf.reshape(value, [-1])
        if field.field_kind.raw_dtype == "string":
            return self._token_ids(field, value)
        value = tf.cast(value, tf.float32)
        if field.transform == "log_square_bucket":
            return tf.where(
                tf.math.is_nan(value), tf.constant(MISSING_ID, tf.int64), self._token_ids(field, bucket_tokens(value))
            )
        value = tf.where(tf.math.is_nan(value), tf.constant(field.default, tf.float32), value)
        if field.transform == "log_normalize":
            return tf.sign(value) * tf.math.log1p(tf.abs(value))
        return value

    def _token_ids(self, field: Field, tokens: tf.Tensor) -> tf.Tensor:
        tokens = tf.convert_to_tensor(tokens, tf.string)
        if field.hash_buckets is not None:
            hashed = tf.strings.to_hash_bucket_fast(tokens, field.hash_buckets) + NUM_RESERVED_IDS
            return tf.where(tf.equal(tokens, ""), tf.constant(MISSING_ID, tf.int64), hashed)
        return tf.cast(self.lookups[field.name](tokens), tf.int64)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(feature_spec=self.feature_spec.to_dict(), vocabulary_dir=self.vocabulary_dir)
        return config


def bucket_tokens(values: tf.Tensor) -> tf.Tensor:
    """`featnet_tf.features.log_square_bucket` in TF ops, as tokens: token for
    token equal to `featnet_tf.features.numeric_token` on the same float32 values."""
    x = tf.cast(values, tf.float64)
    large = x > LOG_SQUARE_THRESHOLD
    safe = tf.where(large, x, tf.ones_like(x))
    bucket = tf.where(large, tf.floor(tf.square(tf.math.log(safe))), tf.sign(x) * tf.floor(tf.abs(x)))
    return tf.strings.as_string(tf.cast(bucket, tf.int64))
