"""NumPy arrays to and from `TensorProto`s, the cheap way the proto allows.

`tf.make_tensor_proto` and `tf.make_ndarray` are general (they accept any
Python value, check and convert it) and cost about a tenth of a millisecond a
tensor: a large share of a one-row request. A numeric array maps to
``tensor_content``, its raw little-endian bytes: one `tobytes` out, a
zero-copy `np.frombuffer` view in. Strings go to and from ``string_val``.
Anything else (the typed ``float_val``/``int64_val`` fields some clients
fill) falls back on TensorFlow's own conversion.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

NUMERIC = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
}
NUMPY_TYPE = {proto: dtype for dtype, proto in NUMERIC.items()}
LITTLE_ENDIAN = sys.byteorder == "little"


def shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape])


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """The array as a `TensorProto`: ``tensor_content`` for numbers,
    ``string_val`` for bytes."""
    if array.dtype in NUMERIC and LITTLE_ENDIAN:
        return tensor_pb2.TensorProto(
            dtype=NUMERIC[array.dtype],
            tensor_shape=shape_proto(array.shape),
            tensor_content=np.ascontiguousarray(array).tobytes(),
        )
    if array.dtype == object or array.dtype.kind == "S":
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, tensor_shape=shape_proto(array.shape), string_val=array.reshape(-1).tolist()
        )
    return tf.make_tensor_proto(array)


# The repeated field that carries a dtype's values when ``tensor_content`` is empty.
VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_STRING: "string_val",
}


def values_carried(proto: tensor_pb2.TensorProto) -> int | None:
    """How many values the proto holds, read off its fields without decoding
    any (None for a dtype it cannot say, or bytes that are no whole number of
    values). `tf.make_ndarray` repeats a lone value to fill the declared
    shape, so a 43-byte proto can declare 60 million strings: comparing this
    count with the shape first refuses it for free."""
    field = VALUE_FIELDS.get(proto.dtype)
    if field is None:
        return None
    if proto.tensor_content and proto.dtype != types_pb2.DT_STRING:
        size = tf.dtypes.as_dtype(proto.dtype).size
        return len(proto.tensor_content) // size if len(proto.tensor_content) % size == 0 else None
    return len(getattr(proto, field))


def from_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The `TensorProto` as an array (a read-only view of its bytes for a
    numeric ``tensor_content``)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if proto.dtype in NUMPY_TYPE and proto.tensor_content and LITTLE_ENDIAN:
        return np.frombuffer(proto.tensor_content, dtype=NUMPY_TYPE[proto.dtype]).reshape(shape)
    if proto.dtype == types_pb2.DT_STRING and shape and len(proto.string_val) == math.prod(shape):
        values = np.empty(len(proto.string_val), dtype=object)
        values[:] = list(proto.string_val)
        return values.reshape(shape)
    return tf.make_ndarray(proto)
