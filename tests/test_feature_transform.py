"""FeatureTransform: raw values → ids, identical to the pipeline's tokens."""

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf.features import FeatureSpec, Field, numeric_token
from featnet_tf.layers import FeatureTransform
from featnet_tf.layers.feature_transform import bucket_tokens


def test_tensorflow_buckets_equal_the_pipelines_tokens():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.arange(-5, 300_000), rng.lognormal(3, 4, 100_000), rng.uniform(-3, 3, 10_000)])
    values = values.astype(np.float32)
    tokens = [token.decode() for token in bucket_tokens(tf.constant(values)).numpy()]
    assert tokens == [numeric_token(float(v)) for v in values]


@pytest.fixture()
def spec_and_dir(tmp_path):
    (tmp_path / "vocabularies").mkdir()
    (tmp_path / "vocabularies" / "city.txt").write_text("paris\nlyon\n")
    (tmp_path / "vocabularies" / "count.txt").write_text("47\n0\n")
    (tmp_path / "vocabularies" / "tags.txt").write_text("a\nb\nc\n")
    spec = FeatureSpec(
        (
            Field("city", "categorical", vocabulary_size=2, vocabulary_file="vocabularies/city.txt"),
            Field("count", "numeric", vocabulary_size=2, vocabulary_file="vocabularies/count.txt"),
            Field("price", "numeric", transform="log_normalize", default=7.0),
            Field("tags", "multi_hot", vocabulary_size=3, vocabulary_file="vocabularies/tags.txt", max_length=2),
            Field("site", "categorical", hash_buckets=10),
            Field("image", "dense_vector", dimension=2, default=0.5),
        )
    )
    return spec, str(tmp_path)


RAW = {
    "city": tf.constant(["lyon", "", "rome"]),
    "count": tf.constant([1000.0, float("nan"), 0.0]),
    "price": tf.constant([np.e - 1, float("nan"), 0.0], tf.float32),
    "tags": tf.ragged.constant([["c", "z", "a"], [], ["b"]]),
    "site": tf.constant(["x", "", "y"]),
    "image": tf.constant([[1.0, float("nan")], [0.0, 0.0], [2.0, 3.0]]),
}


def test_every_kind_maps_raw_values_to_ids(spec_and_dir):
    out = FeatureTransform(*spec_and_dir)(RAW)
    np.testing.assert_array_equal(out["city"], [3, 0, 1])  # lyon is id 3, missing 0, unknown 1
    np.testing.assert_array_equal(out["count"], [2, 0, 3])  # token "47" → 2, NaN → missing, "0" → 3
    np.testing.assert_allclose(out["price"], [1.0, np.log1p(7.0), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out["tags"], [[4, 1], [0, 0], [3, 0]])  # truncated to max_length 2
    site = out["site"].numpy()
    assert site[1] == 0 and 2 <= site[0] < 12 and 2 <= site[2] < 12
    np.testing.assert_allclose(out["image"], [[1.0, 0.5], [0.0, 0.0], [2.0, 3.0]])


def test_missing_vocabulary_file_is_named(spec_and_dir):
    spec, directory = spec_and_dir
    with pytest.raises(ValueError, match="city.*not found"):
        FeatureTransform(spec, directory + "/elsewhere")


def test_serialization_round_trip(spec_and_dir):
    layer = FeatureTransform(*spec_and_dir)
    expected = layer(RAW)
    rebuilt = FeatureTransform.from_config(layer.get_config())
    for name, value in rebuilt(RAW).items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy())
