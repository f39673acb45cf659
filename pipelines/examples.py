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

from featnet_tf.features import FeatureSpec, is_missing


class ExampleEncoder:
    """Writes rows of one spec as `tf.train.Example`s; each field's list
    (``bytes_list``/``float_list``) and encoding come from its kind
    (`featnet_tf.features.FieldKind`), looked up once, not per row."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.label = spec.label
        self.plan = [
            (
                field.name,
                field.field_kind.example_list,
                field.field_kind.raw_dtype == "string",
                field.field_kind.multivalued,
            )
            for field in spec.fields
        ]

    def encode(self, values: dict[str, Any], label: int | None) -> example_pb2.Example:
        """A `tf.train.Example` of one row's raw values (missing values omitted)."""
        example = example_pb2.Example()
        features = example.features.feature
        if label is not None:
            features[self.label].int64_list.value.append(int(label))
        for name, list_name, is_string, multivalued in self.plan:
            value = values.get(name)
            if is_missing(value):
                continue
            items = getattr(features[name], list_name).value
            if multivalued:
                items.extend([token.encode("utf-8") for token in value] if is_string else value)
            else:
                items.append(value.encode("utf-8") if is_string else value)
        return example


def to_schema(spec: FeatureSpec) -> schema_pb2.Schema:
    """The TFMD `Schema` of the examples `ExampleEncoder` writes, for tfx-bsl's
    `TFExampleRecord` and other TFX tools."""
    schema = schema_pb2.Schema()
    label = schema.feature.add(name=spec.label, type=schema_pb2.INT)
    label.presence.min_fraction = 1.0
    label.presence.min_count = 1
    label.value_count.min = label.value_count.max = 1
    label.int_domain.min, label.int_domain.max = 0, 1
    label.int_domain.is_categorical = True
    for field in spec.fields:
        kind = field.field_kind
        feature_type = schema_pb2.BYTES if kind.raw_dtype == "string" else schema_pb2.FLOAT
        feature = schema.feature.add(name=field.name, type=feature_type)
        feature.presence.min_count = 0
        shape = kind.raw_shape(field)
        if shape == (None,):  # a ragged list: at least one value when present
            feature.value_count.min = 1
        else:
            feature.value_count.min = feature.value_count.max = shape[0] if shape else 1
    return schema
