"""Raw rows as `tf.train.Example`s, and the tensorflow-metadata schema of them.

TFRecords hold raw values, not ids: categoricals as bytes, numerics as
float32 (absent when missing), multi-hot tokens as a bytes list, dense vectors
as a float list. Vocabulary lookup, hashing and bucketization happen inside
the model, so training and serving run the very same TensorFlow code on the
very same raw values and cannot drift apart (no training/serving skew).

`ExampleEncoder` writes one row's example (the definition); `encode_batch`
writes a whole batch of parsed columns at once, the same bytes' messages,
with Arrow and NumPy (what the pipelines use).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow.core.example import example_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from featnet_tf.features import FeatureSpec, is_missing
from pipelines.columns import missing_rows


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


# === A batch of rows at a time ===
#
# The wire format of a `tf.train.Example` is simple enough to write a whole
# column at a time: every feature is one map entry ``key → Feature`` whose
# bytes are a prefix that depends only on the value's length, then the value.
# `encode_batch` builds each field's entries with Arrow's element-wise
# concatenation (the prefixes from a table indexed by length) and joins them
# per row: no Python per row, and the same messages as `ExampleEncoder`
# (tested field by field against it and against tfx-bsl's
# `RecordBatchToExamplesEncoder`).


def varint(value: int) -> bytes:
    """Protocol buffers' base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(field_number: int, length: int) -> bytes:
    """The tag and length of a length-delimited field of `length` bytes."""
    return bytes([field_number << 3 | 2]) + varint(length)


# Field numbers of feature.proto: Example.features = 1, Features.feature = 1
# (map entries: key = 1, value = 2), Feature.bytes_list = 1, float_list = 2,
# int64_list = 3, and each list's packed or repeated `value` = 1.
LIST_FIELD_NUMBERS = {"bytes_list": 1, "float_list": 2, "int64_list": 3}


def entry_prefix(key: str, list_name: str, list_length: int) -> bytes:
    """The bytes of a feature map entry before its list's body of `list_length` bytes."""
    name = key.encode("utf-8")
    key_part = length_delimited(1, len(name)) + name
    feature_length = len(length_delimited(LIST_FIELD_NUMBERS[list_name], list_length)) + list_length
    value_part = length_delimited(2, feature_length) + length_delimited(LIST_FIELD_NUMBERS[list_name], list_length)
    return length_delimited(1, len(key_part) + len(value_part) + list_length) + key_part + value_part


def _with_prefixes(values: pa.Array, lengths: np.ndarray, prefix_of) -> pa.Array:
    """Each value preceded by `prefix_of(its length)`, computed once per distinct length."""
    distinct, inverse = np.unique(lengths, return_inverse=True)
    table = pa.array([prefix_of(int(length)) for length in distinct], pa.binary())
    return pc.binary_join_element_wise(table.take(pa.array(inverse.reshape(-1))), values, b"")


def binary_offsets(values: pa.Array) -> np.ndarray:
    """The value offsets of a binary or string array (int32, `len(values) + 1` of them)."""
    return np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset : values.offset + len(values) + 1]


def binary_lengths(values: pa.Array) -> np.ndarray:
    """The byte length of each value of a binary or string array (int64)."""
    return np.diff(binary_offsets(values)).astype(np.int64)


def fixed_width_binary(prefix: bytes, payload: np.ndarray, present: np.ndarray, packed: bool = False) -> pa.Array:
    """Binary values ``prefix + payload row`` for the present rows, empty for
    the others: fixed-width values built in NumPy, with no per-row work.
    `payload` (uint8) has a row per row, or, when `packed`, a row per present row."""
    rows = payload if packed else payload[present]
    width = len(prefix) + payload.shape[1]
    data = np.empty((len(rows), width), dtype=np.uint8)
    data[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    data[:, len(prefix) :] = rows
    offsets = np.zeros(len(present) + 1, dtype=np.int32)
    np.cumsum(present * width, out=offsets[1:])
    return pa.BinaryArray.from_buffers(pa.binary(), len(present), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _float_rows(values: pa.Array, width: int) -> np.ndarray:
    """Each row's `width` float32s as little-endian bytes, shape (rows, 4 * width)."""
    if width == 1:
        floats = values.fill_null(0.0).to_numpy()
    else:
        floats = pc.list_flatten(values.fill_null(pa.scalar([0.0] * width, values.type))).to_numpy()
    return np.ascontiguousarray(floats, dtype="<f4").view(np.uint8).reshape(len(values), 4 * width)


def field_entries(field, values: pa.Array) -> pa.Array:
    """The serialized map entry of `field` for each row (empty when missing)."""
    kind = field.field_kind
    list_name = kind.example_list
    if kind.raw_dtype == "string" and not kind.multivalued:
        # One `bytes_list` value; "" (missing) gets no prefix and stays empty.
        def prefix_of(length: int) -> bytes:
            if length == 0:
                return b""
            value_tag = length_delimited(1, length)
            return entry_prefix(field.name, list_name, len(value_tag) + length) + value_tag

        strings = values.cast(pa.binary())
        lengths = binary_lengths(strings)
        present = lengths > 0
        widths = lengths[present]
        if widths.size and (widths == widths[0]).all():  # one length (hashed ids): NumPy, no join
            start = binary_offsets(strings)[0]
            data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[start : start + widths.sum()]
            return fixed_width_binary(prefix_of(int(widths[0])), data.reshape(-1, widths[0]), present, packed=True)
        return _with_prefixes(strings, lengths, prefix_of)
    missing = missing_rows(field, values)
    if kind.raw_dtype == "string":  # multi-hot: each token a `value`, joined per row
        tokens = pc.list_flatten(values).cast(pa.binary())
        encoded = _with_prefixes(tokens, binary_lengths(tokens), lambda n: length_delimited(1, n))
        offsets = values.offsets.to_numpy()
        body = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets - offsets[0]), encoded), b"").fill_null(b"")
        entries = _with_prefixes(body, binary_lengths(body), lambda n: entry_prefix(field.name, list_name, n))
        return pc.if_else(pa.array(missing), b"", entries) if missing.any() else entries
    width = field.dimension if kind.multivalued else 1
    packed = length_delimited(1, 4 * width)
    prefix = entry_prefix(field.name, list_name, len(packed) + 4 * width) + packed
    return fixed_width_binary(prefix, _float_rows(values, width), ~missing)


def label_entries(name: str, labels: np.ndarray) -> pa.Array:
    """The serialized map entry of the 0/1 label (an `int64_list`) for each row."""
    prefix = entry_prefix(name, "int64_list", 3) + length_delimited(1, 1)
    payload = labels.astype(np.uint8).reshape(-1, 1)
    return fixed_width_binary(prefix, payload, np.ones(len(labels), dtype=bool))


def encode_batch(spec: FeatureSpec, values: dict[str, pa.Array], labels: np.ndarray | None) -> pa.Array:
    """Serialized `tf.train.Example`s of a batch of parsed columns
    (`pipelines.batches.RowBatch.values`), with the label unless `labels` is
    None: what `ExampleEncoder.encode(...).SerializeToString()` gives per row."""
    entries = [label_entries(spec.label, labels)] if labels is not None else []
    entries += [field_entries(field, values[field.name]) for field in spec.fields]
    lengths = np.sum([binary_lengths(entry) for entry in entries], axis=0)
    distinct, inverse = np.unique(lengths, return_inverse=True)
    table = pa.array([length_delimited(1, int(n)) if n else b"" for n in distinct], pa.binary())
    return pc.binary_join_element_wise(table.take(pa.array(inverse.reshape(-1))), *entries, b"")
