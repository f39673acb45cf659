"""serving.tensors: the server's own TensorProto conversion is TensorFlow's, only cheaper."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving import tensors

ARRAYS = [
    np.array([0.25, -1.5, 3.0], np.float32),
    np.arange(6, dtype=np.float64).reshape(2, 3),
    np.array([[1], [-2]], np.int32),
    np.array([2**40, -7], np.int64),
    np.zeros((0, 4), np.float32),
    np.array([b"a", b"", b"\x00\xff"], dtype=object),
    np.array([[b"x", b"y"]], dtype=object),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda array: f"{array.dtype}{list(array.shape)}")
def test_arrays_round_trip_and_agree_with_tensorflows_conversion(array):
    proto = tensors.to_proto(array)
    for decoded in (tensors.from_proto(proto), tf.make_ndarray(proto)):
        assert decoded.shape == array.shape and decoded.dtype == array.dtype
        assert decoded.tolist() == array.tolist()
    from_tensorflow = tensors.from_proto(tf.make_tensor_proto(array))
    assert from_tensorflow.dtype == array.dtype and from_tensorflow.tolist() == array.tolist()


def test_numbers_travel_as_tensor_content_and_typed_fields_are_still_read():
    assert tensors.to_proto(np.ones(3, np.float32)).tensor_content == np.ones(3, np.float32).tobytes()
    typed = tf.make_tensor_proto([1.5, 2.5], dtype=tf.float32)
    typed.ClearField("tensor_content")
    typed.float_val.extend([1.5, 2.5])
    assert tensors.from_proto(typed).tolist() == [1.5, 2.5]


def test_content_that_does_not_fill_the_declared_shape_is_refused():
    proto = tensors.to_proto(np.ones(3, np.float32))
    proto.tensor_shape.dim[0].size = 4
    with pytest.raises(ValueError):
        tensors.from_proto(proto)
