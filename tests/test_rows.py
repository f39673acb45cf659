"""Parsing, bucketization tokens and split assignment, without Beam."""

import collections

import pytest

from pipelines.bad_rows import BadRowError
from pipelines.formats import AVAZU_RAW_CATEGORICAL, avazu_spec, criteo_spec, expand_avazu_hour, spec_for_format
from pipelines.rows import RowParser, field_tokens
from pipelines.splits import assign_split, split_by_value, split_thresholds

CRITEO = RowParser(criteo_spec(), "criteo")
COLUMNS = CRITEO.columns(None)


def criteo_line(label="1", numeric=None, categorical=None):
    numeric = numeric if numeric is not None else ["5", "", "-1"] + ["0"] * 10
    categorical = categorical if categorical is not None else ["68fd1e64", ""] + ["a"] * 24
    return "\t".join([label] + numeric + categorical)


def test_criteo_row_keeps_raw_values_and_missing():
    row = CRITEO.parse(criteo_line(), COLUMNS, "f.tsv", 7, 6)
    assert row.label == 1 and row.key == "f.tsv:7"
    assert row.values["I1"] == 5.0 and row.values["I2"] is None and row.values["I3"] == -1.0
    assert row.values["C1"] == "68fd1e64" and row.values["C2"] == ""
    assert row.split in ("train", "valid", "test")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("\t".join(criteo_line().split("\t")[:39]), "expected 40 columns, found 39"),
        (criteo_line(numeric=["x5"] + ["0"] * 12), "field I1: 'x5' is not a number"),
        (criteo_line(numeric=["0"] * 12 + ["inf"]), "field I13: 'inf' is not finite"),
        (criteo_line(label="2"), "bad label '2'"),
        (criteo_line(label=""), "bad label ''"),
    ],
)
def test_malformed_criteo_rows_name_their_fault(line, reason):
    with pytest.raises(BadRowError, match=reason.replace("(", "\\(")):
        CRITEO.parse(line, COLUMNS, "f.tsv", 1, 0)


def test_numeric_tokens_follow_bars_buckets():
    field = criteo_spec()["I5"]
    assert field_tokens(field, 1000.0) == ["47"]
    assert field_tokens(field, -2.0) == ["-2"]
    assert field_tokens(field, None) == []


def test_avazu_hour_expands_like_bars_x4():
    assert expand_avazu_hour("14102100") == {"hour": "00", "weekday": "1", "weekend": "0"}  # a Tuesday
    assert expand_avazu_hour("14102523") == {"hour": "23", "weekday": "5", "weekend": "1"}  # a Saturday
    with pytest.raises(BadRowError, match="'14133300' is not YYMMDDHH"):
        expand_avazu_hour("14133300")


def test_avazu_parser_keeps_the_64_bit_id_as_key():
    spec = avazu_spec()
    parser = RowParser(spec, "avazu")
    header = ",".join(("id", "click", "hour") + AVAZU_RAW_CATEGORICAL)
    columns = parser.header_columns(header, "a.csv")
    line = (
        "10000174058809263569,0,14102100,1005,0,235ba823,f6ebf28e,f028772b,ecad2386,7801e8d9,07d7df22,a99f214a,"
        "69f45779,0eb711ec,1,0,8330,320,50,761,3,175,100075,23"
    )
    row = parser.parse(line, columns, "a.csv", 2, 0)
    assert row.key == "10000174058809263569" and row.label == 0
    assert (row.values["hour"], row.values["weekday"], row.values["weekend"]) == ("00", "1", "0")
    assert "id" not in row.values and len(row.values) == 24
    with pytest.raises(ValueError, match="lacks columns \\['hour'\\]"):
        parser.header_columns(header.replace(",hour,", ",hours,"), "a.csv")


def test_hash_split_is_deterministic_and_proportional():
    thresholds = split_thresholds([8, 1, 1])
    lines = [f"row {i}".encode() for i in range(20000)]
    first = [assign_split(line, 0, thresholds) for line in lines]
    assert first == [assign_split(line, 0, thresholds) for line in lines]
    counts = collections.Counter(first)
    assert abs(counts["train"] / 20000 - 0.8) < 0.01 and abs(counts["test"] / 20000 - 0.1) < 0.01
    assert first != [assign_split(line, 1, thresholds) for line in lines], "the seed changes the split"


def test_split_by_column():
    assert [split_by_value(v, "hour", (10.0, 20.0)) for v in ("5", "10", "25")] == ["train", "valid", "test"]
    with pytest.raises(BadRowError, match="split column hour: 'x'"):
        split_by_value("x", "hour", (10.0, 20.0))
    with pytest.raises(ValueError, match="split_ratios"):
        split_thresholds([1, 1])


def test_built_in_formats_describe_their_columns():
    criteo = criteo_spec()
    assert criteo.num_fields == 39 and criteo.input_format.columns[0] == "label"
    assert all(field.min_count == 2 for field in criteo.fields)
    avazu = avazu_spec()
    assert avazu.num_fields == 24 and "id" not in avazu.names and "weekday" in avazu.names


def test_csv_format_needs_a_described_spec_and_an_unknown_format_is_named():
    with pytest.raises(ValueError, match="`csv` format needs a FeatureSpec"):
        spec_for_format("csv")
    with pytest.raises(ValueError, match="Unknown input format 'parquet'"):
        spec_for_format("parquet")
