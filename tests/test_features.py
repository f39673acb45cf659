"""FeatureSpec: validation, id sizes and JSON/YAML round trips."""

import math

import pytest

from featnet_tf.features import (
    FIELD_KINDS,
    KINDS,
    BadValueError,
    FeatureSpec,
    Field,
    InputFormat,
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
        input_format=InputFormat(
            delimiter="\t", header=False, columns=("clicked", "age", "count", "city", "tags", "image"), label="clicked"
        ),
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


def test_each_kind_describes_its_raw_values_once_for_every_stage():
    spec = mixed_spec()
    kinds = {field.name: field.field_kind for field in spec.fields}
    assert {name: (kind.raw_dtype, kind.raw_shape(spec[name]), kind.model_input) for name, kind in kinds.items()} == {
        "age": ("float32", (), "scalar"),
        "count": ("float32", (), "scalar"),
        "city": ("string", (), "scalar"),
        "tags": ("string", (None,), "id_list"),
        "image": ("float32", (12,), "vector"),
    }
    assert [kinds[name].example_list for name in ("count", "city", "tags", "image")] == [
        "float_list",
        "bytes_list",
        "bytes_list",
        "float_list",
    ]
    assert kinds["tags"].parse_cell(spec["tags"], "a;;b") == ["a", "b"] and kinds["tags"].tokens(
        spec["tags"], ["a"]
    ) == ["a"]
    assert kinds["count"].tokens(spec["count"], 1000.0) == ["47"] and kinds["age"].tokens(spec["age"], 3.0) == []
    assert kinds["image"].missing_value(spec["image"]) == [0.0] * 12 and math.isnan(
        kinds["age"].missing_value(spec["age"])
    )
    with pytest.raises(BadValueError, match="field image: expected 12 values, found 2"):
        kinds["image"].parse_cell(spec["image"], "1|2")
    with pytest.raises(BadValueError, match="field age: 'x' is not a number"):
        kinds["age"].parse_cell(spec["age"], "x")
    assert FIELD_KINDS == tuple(KINDS) == ("numeric", "categorical", "multi_hot", "dense_vector")
