"""FeatureSpec: validation, id sizes and JSON/YAML round trips."""

import math

import pytest

from featnet_tf.features import (
    Field,
    FeatureSpec,
    InputFormat,
    avazu_spec,
    criteo_spec,
    log_normalize,
    log_square_bucket,
)


def mixed_spec() -> FeatureSpec:
    return FeatureSpec(
        fields=(
            Field("age", "numeric", transform="log_normalize", default=-1.0),
            Field("count", "numeric", vocabulary_size=40, vocabulary_file="vocab/count.txt"),
            Field("city", "categorical", vocabulary_size=7, min_count=3, top_k=100),
            Field("tags", "multi_hot", hash_buckets=50, separator=";", max_length=5, pooling="sum"),
            Field("image", "dense_vector", dimension=12),
        ),
        label="clicked",
        input_format=InputFormat(delimiter="\t", header=False, columns=("clicked", "age", "count", "city", "tags", "image"), label="clicked"),
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_spec_round_trips_through_files(tmp_path, suffix):
    spec = mixed_spec()
    path = str(tmp_path / f"spec{suffix}")
    spec.save(path)
    assert FeatureSpec.load(path) == spec


def test_num_ids_reserve_missing_and_oov():
    spec = mixed_spec()
    assert spec["city"].num_ids == 7 + 2
    assert spec["tags"].num_ids == 50 + 2
    assert spec["count"].uses_tokens and not spec["age"].uses_tokens
    with pytest.raises(ValueError, match="no vocabulary yet"):
        Field("c", "categorical").num_ids


def test_unknown_kind_names_the_value():
    with pytest.raises(ValueError, match="kind='sparse'"):
        Field("c", "sparse")


def test_bad_values_name_themselves():
    with pytest.raises(ValueError, match="hash_buckets=0"):
        Field("c", "categorical", hash_buckets=0)
    with pytest.raises(ValueError, match="dimension=None"):
        Field("v", "dense_vector")
    with pytest.raises(ValueError, match="transform='cube'"):
        Field("n", "numeric", transform="cube")
    with pytest.raises(ValueError, match="Duplicated: \\['a'\\]"):
        FeatureSpec((Field("a", "categorical"), Field("a", "categorical")))
    with pytest.raises(ValueError, match="Unknown keys \\['colour'\\]"):
        FeatureSpec.from_dict({"fields": [{"name": "a", "kind": "categorical", "colour": 1}]})


def test_log_square_bucket_matches_bars_criteo():
    assert [log_square_bucket(v) for v in (-2, -1, 0, 1, 2)] == [-2, -1, 0, 1, 2]
    assert log_square_bucket(3) == math.floor(math.log(3) ** 2) == 1
    assert log_square_bucket(1000) == 47
    assert log_normalize(-math.e + 1) == pytest.approx(-1.0)


def test_known_datasets():
    criteo = criteo_spec()
    assert criteo.num_fields == 39 and criteo.input_format.columns[0] == "label"
    assert all(field.min_count == 2 for field in criteo.fields)
    avazu = avazu_spec()
    assert avazu.num_fields == 24 and "id" not in avazu.names and "weekday" in avazu.names
