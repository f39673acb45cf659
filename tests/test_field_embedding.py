"""FieldEmbedding implements Eq. 1 for every field kind."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.features import FeatureSpec, Field
from featnet_tf.layers import FieldEmbedding
from tests.helpers import run_serialization_test

SPEC = FeatureSpec(
    fields=(
        Field("price", "numeric", transform="log_normalize"),
        Field("city", "categorical", vocabulary_size=3),
        Field("tags", "multi_hot", vocabulary_size=4, pooling="mean", max_length=3),
        Field("hour", "numeric", vocabulary_size=5),
        Field("image", "dense_vector", dimension=2),
        Field("words", "multi_hot", hash_buckets=6, pooling="sum", max_length=2),
    )
)

INPUTS = {
    "price": tf.constant([[0.5], [2.0]]),
    "city": tf.constant([[2], [0]], tf.int64),
    "tags": tf.constant([[2, 3, 0], [0, 0, 0]], tf.int64),
    "hour": tf.constant([1, 6], tf.int64),
    "image": tf.constant([[1.0, -1.0], [0.0, 2.0]]),
    "words": tf.ragged.constant([[2], [3, 7]], dtype=tf.int64),
}


def numpy_embedding(layer, inputs):
    table = layer.embeddings.numpy()
    values = layer.numeric_embeddings.numpy()
    kernel, bias = layer.dense_kernels[0].numpy(), layer.dense_biases[0].numpy()
    offsets = {"city": 0, "hour": 5, "tags": 12, "words": 18}  # single ids first, then multi-hot
    rows = []
    for b in range(2):
        tags = [i for i in inputs["tags"].numpy()[b] if i != 0]
        words = [i for i in inputs["words"].to_list()[b] if i != 0]
        rows.append(
            [
                inputs["price"].numpy()[b, 0] * values[0],
                table[offsets["city"] + inputs["city"].numpy()[b, 0]],
                np.mean([table[offsets["tags"] + i] for i in tags], axis=0) if tags else np.zeros(4),
                table[offsets["hour"] + inputs["hour"].numpy()[b]],
                inputs["image"].numpy()[b] @ kernel + bias,
                np.sum([table[offsets["words"] + i] for i in words], axis=0),
            ]
        )
    return np.array(rows)


def test_every_kind_matches_numpy_in_spec_order():
    layer = FieldEmbedding(SPEC, embedding_dim=4)
    out = layer(INPUTS)
    assert out.shape == (2, 6, 4)
    assert layer.embeddings.shape == (3 + 2 + 5 + 2 + 4 + 2 + 6 + 2, 4)
    np.testing.assert_allclose(out.numpy(), numpy_embedding(layer, INPUTS), atol=1e-6)


def test_all_missing_multi_hot_pools_to_zero():
    out = FieldEmbedding(SPEC, embedding_dim=4)(INPUTS)
    np.testing.assert_array_equal(out.numpy()[1, 2], np.zeros(4))


def test_missing_input_is_named():
    inputs = dict(INPUTS)
    del inputs["city"]
    with pytest.raises(ValueError, match="\\['city'\\]"):
        FieldEmbedding(SPEC, embedding_dim=4)(inputs)


def test_bad_embedding_dim():
    with pytest.raises(ValueError, match="embedding_dim=0"):
        FieldEmbedding(SPEC, embedding_dim=0)


def test_serialization_round_trip():
    run_serialization_test(FieldEmbedding(SPEC, embedding_dim=4), INPUTS)
