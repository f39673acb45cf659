"""Raw rows as `tf.train.Example`s, and the tensorflow-metadata schema of them.

TFRecords hold raw values, not ids: categoricals as bytes, numerics as
float32 (absent when missing), multi-hot tokens as a bytes list, dense vectors
as a float list. Vocabulary lookup, hashing and bucketization happen inside
the model, so training and serving run the very same TensorFlow code on the
very same raw values and cannot drift apart (no training/serving skew).
"""

from __future__ import annotations

from typing import Any

from tensorflow.core.example import example_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from featnet_tf.features import FeatureSpec, Field


def to_example(spec: FeatureSpec, values: dict[str, Any], label: int | None) -> example_pb2.Example:
    """A `tf.train.Example` of one row's raw values (missing values omitted)."""
    example = example_pb2.Example()
    features = example.features.feature
    if label is not None:
        features[spec.label].int64_list.value.append(int(label))
    for field in spec.fields:
        value = values.get(field.name)
        if value is None or value == "" or value == []:
            continue
        if field.kind == "categorical":
            features[field.name].bytes_list.value.append(value.encode("utf-8"))
        elif field.kind == "multi_hot":
            features[field.name].bytes_list.value.extend(token.encode("utf-8") for token in value)
        elif field.kind == "numeric":
            features[field.name].float_list.value.append(value)
        else:
            features[field.name].float_list.value.extend(value)
    return example


def _feature_type(field: Field) -> int:
    if field.kind in ("categorical", "multi_hot"):
        return schema_pb2.BYTES
    return schema_pb2.FLOAT


def to_schema(spec: FeatureSpec) -> schema_pb2.Schema:
    """The TFMD `Schema` of the examples `to_example` writes, for tfx-bsl's
    `TFExampleRecord` and other TFX tools."""
    schema = schema_pb2.Schema()
    label = schema.feature.add(name=spec.label, type=schema_pb2.INT)
    label.presence.min_fraction = 1.0
    label.presence.min_count = 1
    label.value_count.min = label.value_count.max = 1
    label.int_domain.min, label.int_domain.max = 0, 1
    label.int_domain.is_categorical = True
    for field in spec.fields:
        feature = schema.feature.add(name=field.name, type=_feature_type(field))
        feature.presence.min_count = 0
        if field.kind == "multi_hot":
            feature.value_count.min = 1
        elif field.kind == "dense_vector":
            feature.value_count.min = feature.value_count.max = field.dimension
        else:
            feature.value_count.min = feature.value_count.max = 1
    return schema
