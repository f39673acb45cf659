"""The batch path gives what the per-row path gave: same vocabularies, statistics, dead letter, examples.

`pipelines.preprocess` parses, counts and encodes whole batches with Arrow
and NumPy; `tests/per_row_reference.py` is the preprocessing as it was, one
row at a time in plain Python. Both run on the same inputs (the real samples,
and generated files full of the lines the column-wise checks must not get
wrong), and everything they write must be identical.
"""

from __future__ import annotations

import glob
import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from featnet_tf.features import FeatureSpec, Field, InputFormat
from featnet_tf.prepared_data import SPLITS, load_statistics
from pipelines import columns, examples, preprocess
from pipelines.batches import BatchParser
from pipelines.formats import spec_for_format
from pipelines.rows import RowParser
from pipelines.splits import ColumnSplit, HashSplit
from tests.conftest import sample_data_dir
from tests.per_row_reference import Reference, reference_preprocess

SAMPLES = sample_data_dir()
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="../shared/data (or $FEATNET_SAMPLE_DATA) is absent")
SPECS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "specs")
DIRECT = ["--runner=DirectRunner"]


def read_examples(output_dir: str, split: str) -> list[bytes]:
    files = sorted(glob.glob(os.path.join(output_dir, split, "*.tfrecord.gz")))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP") if files else []
    return sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True) for r in records)


def assert_same_as_reference(output_dir: str, reference: Reference) -> None:
    statistics = load_statistics(output_dir)
    statistics.pop("split_provenance")
    assert statistics == json.loads(json.dumps(reference.statistics))
    for name, tokens in reference.vocabularies.items():
        with open(os.path.join(output_dir, "vocabularies", f"{name}.txt"), encoding="utf-8") as stream:
            assert stream.read().splitlines() == tokens, name
    dead = [
        json.loads(line)
        for path in glob.glob(os.path.join(output_dir, "dead_letter", "*.jsonl"))
        for line in open(path, encoding="utf-8")
    ]
    order = lambda record: (record["file"], record["line"])  # noqa: E731
    assert sorted(dead, key=order) == sorted(reference.dead_letters, key=order)
    for split in SPLITS:
        assert read_examples(output_dir, split) == reference.examples[split], split


def run_both(tmp_path, argv: list[str], spec: FeatureSpec, sources) -> Reference:
    output = str(tmp_path / "out")
    preprocess.run(argv + ["--output_dir", output, "--max_bad_fraction", "1"] + DIRECT)
    reference = reference_preprocess(spec, sources)
    assert_same_as_reference(output, reference)
    return reference


# === Real samples ===


@needs_samples
@pytest.mark.parametrize(
    "sample, fmt, spec_file",
    [("criteo_sample.tsv", "criteo", None), ("avazu_sample.csv", "avazu", None), ("frappe.csv", "csv", "frappe.yaml")],
)
def test_real_samples_give_the_per_row_outputs(tmp_path, sample, fmt, spec_file):
    path = os.path.join(SAMPLES, sample)
    spec = spec_for_format(fmt, FeatureSpec.load(os.path.join(SPECS, spec_file)) if spec_file else None)
    argv = ["--input", path, "--format", fmt] + (["--spec", os.path.join(SPECS, spec_file)] if spec_file else [])
    reference = run_both(tmp_path, argv, spec, [([path], RowParser(spec, fmt))])
    assert reference.statistics["rows"]["rows_written"] > 8000


# === Generated lines the column-wise checks must not get wrong ===

CRITEO_GOOD = "1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t" + "\t".join(f"c{i % 5}" for i in range(26))


def criteo_line(**cells: str) -> bytes:
    parts = CRITEO_GOOD.split("\t")
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    for name, value in cells.items():
        parts[names.index(name)] = value
    return "\t".join(parts).encode("utf-8")


CRITEO_LINES = [
    criteo_line(),
    criteo_line(label="0", I1="", C1=""),
    b"1\t1\t2",  # too few columns
    criteo_line(I1="one"),  # not a number
    criteo_line(I1=" 1"),  # Python reads it, Arrow does not: a good row
    criteo_line(I2="1_000"),  # likewise
    criteo_line(I3="inf"),
    criteo_line(I3="nan"),
    criteo_line(I4="3.5e38"),  # beyond float32
    criteo_line(I5="1e400"),
    criteo_line(I6="-0.5"),
    criteo_line(I7="2.718281828459045"),  # on a bucket edge: ln(e)^2 = 1
    criteo_line(I8="7.389056098930650"),  # ln(x)^2 = 4, near the edge
    criteo_line(label="7"),
    criteo_line(label=" 1"),
    criteo_line(C5='"quoted"'),  # TSV cells keep their quotes
    criteo_line(C6="é日本"),
    criteo_line().replace(b"c4", b"\xff\xfe", 1),  # not UTF-8
    criteo_line() + b"\r",  # a CRLF line ending
    criteo_line(C7="a\rb"),  # a carriage return inside
    b"",  # an empty line
    criteo_line() + b"\textra",
    criteo_line(I9="00012", I10="+3", I11=".5", I12="5.", I13="1E2"),
]


def test_generated_criteo_lines_with_every_kind_of_fault(tmp_path):
    path = tmp_path / "day.tsv.gz"
    lines = CRITEO_LINES * 40  # several of each, across batches and splits
    with gzip.open(path, "wb") as stream:
        stream.write(b"\n".join(lines) + b"\n")
    spec = spec_for_format("criteo", None, 1)
    argv = ["--input", str(path), "--format", "criteo", "--min_count", "1"]
    reference = run_both(tmp_path, argv, spec, [([str(path)], RowParser(spec, "criteo"))])
    reasons = reference.statistics["rows"]["dead_letter_reasons"]
    assert set(reasons) == {
        "expected 40 columns, found 3",
        "expected 40 columns, found 1",
        "expected 40 columns, found 41",
        "field I1",
        "field I3",
        "field I4",
        "field I5",
        "bad label '7'",
        "bad label ' 1'",
        "undecodable bytes",
    }


MIXED_SPEC = FeatureSpec(
    (
        Field("tags", "multi_hot", separator="|", max_length=3),
        Field("embedding", "dense_vector", dimension=3, separator=";"),
        Field("price", "numeric", transform="log_normalize"),
        Field("age", "numeric"),
        Field("city", "categorical", min_count=2, top_k=3),
    ),
    label="clicked",
    input_format=InputFormat(delimiter=",", header=True, label="clicked", key="id"),
)
MIXED_LINES = [
    b"\xef\xbb\xbfid,clicked,tags,embedding,price,age,city,day",
    b"a1,1,x|y,1;2;3,9.5,30,paris,1",
    b"a2,0,,,,,,2",
    b"a3,1,x||z|,0.5;0.25;1e3,1,45,lyon,3",
    b"a4,0,|,1;2,1,45,lyon,4",  # a dense vector with two numbers
    b"a5,0,y,1;two;3,1,45,rome,5",  # ... and one that is not a number
    b'a6,1,"x,y",1;2;3,2,50,"paris",6',  # quoted CSV cells
    b"a7,1,z,1;2;3,2,50,nice,x",  # the split column is not a number
    b"a8,0,z,1;2;3,2,50,nice,inf",  # Python reads inf: the test split
    b"a9,1,w,1;2;3,  7 ,50,caen,7\r",
    b"a10,1,w,1;2;3,7,50,caen",  # a missing column
]


def test_generated_csv_with_every_field_kind_and_a_column_split(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"\n".join(MIXED_LINES[:1] + MIXED_LINES[1:] * 30) + b"\n")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(MIXED_SPEC.to_dict()))
    argv = ["--input", str(path), "--format", "csv", "--spec", str(spec_file)]
    argv += ["--split_column", "day", "--split_boundaries", "3,5"]
    parser = RowParser(MIXED_SPEC, "csv", ColumnSplit("day", (3.0, 5.0)))
    reference = run_both(tmp_path, argv, MIXED_SPEC, [([str(path)], parser)])
    assert reference.statistics["rows"]["rows_dead_lettered"] == 4 * 30
    assert all(reference.examples[split] for split in SPLITS)


# === The pieces, against their per-value definitions ===


@pytest.mark.parametrize(
    "cell",
    ["1", "-1", "+1", ".5", "5.", "1e5", "1E+5", "1_0", "inf", "-Infinity", "nan", " 1", "1 ", "0x10", "1e400",
     "١", "00012", "-.5e-3", "1.5e", "e5", ".", "", "3.4028235e38", "3.5e38", "1e-50", "nan(1)", "in"],
)  # fmt: skip
def test_a_numeric_cell_is_parsed_as_parse_cell_does_or_flagged_and_left_to_it(cell):
    field = Field("x", "numeric", transform="identity")
    values, flagged = columns.parse_column(field, pa.array([cell]))
    if flagged[0]:
        assert values.to_pylist() == [None], "a flagged cell is left to parse_cell (its line re-parsed), never guessed"
        return
    expected = field.field_kind.parse_cell(field, cell)  # raises (fails the test) for a cell it rejects
    assert values.to_pylist() == [expected]


def test_log_square_buckets_match_the_per_value_function():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.integers(-3, 10**6, 20_000), rng.lognormal(3, 3, 20_000), np.exp(np.sqrt(np.arange(0, 400)))]
    ).astype(np.float32)
    expected = [log_square(value) for value in values.astype(np.float64)]
    assert columns.log_square_buckets(values).tolist() == expected
    beyond_int64 = np.array([-1e20, 5.0], dtype=np.float32).astype(np.float64)
    assert columns.log_square_buckets(beyond_int64).tolist() == [log_square(value) for value in beyond_int64]


def log_square(value: float) -> int:
    from featnet_tf.features import log_square_bucket

    return log_square_bucket(value)


def test_encode_batch_writes_the_examples_of_example_encoder_and_of_tfx_bsl():
    path_lines = [line + b"\n" for line in MIXED_LINES[1:]]
    parser = BatchParser(RowParser(MIXED_SPEC, "csv", HashSplit()))
    header = ("id", "clicked", "tags", "embedding", "price", "age", "city", "day")
    batch, _ = parser.parse(path_lines, header, "log.csv", 2, 0)
    encoded = examples.encode_batch(MIXED_SPEC, batch.values, batch.labels).to_pylist()
    encoder = examples.ExampleEncoder(MIXED_SPEC)
    values = {name: array.to_pylist() for name, array in batch.values.items()}
    for row, serialized in enumerate(encoded):
        expected = encoder.encode({name: values[name][row] for name in values}, int(batch.labels[row]))
        assert tf.train.Example.FromString(serialized) == expected
        assert len(serialized) == expected.ByteSize()
    # tfx-bsl's C++ encoder, from the same columns as Arrow lists, writes the same
    # values, but a missing one (a null list) as an empty `Feature` where the
    # per-row encoder leaves the feature out: equal once those are dropped.
    record_batch = pa.RecordBatch.from_arrays(
        [pa.array([[label] for label in batch.labels.tolist()], pa.list_(pa.int64()))]
        + [as_example_lists(field, batch.values[field.name]) for field in MIXED_SPEC.fields],
        ["clicked", *MIXED_SPEC.names],
    )
    from_tfx_bsl = [
        tf.train.Example.FromString(e) for e in example_coder.RecordBatchToExamplesEncoder().encode(record_batch)
    ]
    assert any(not feature.WhichOneof("kind") for e in from_tfx_bsl for feature in e.features.feature.values())
    for example in from_tfx_bsl:
        for name in [name for name, feature in example.features.feature.items() if not feature.WhichOneof("kind")]:
            del example.features.feature[name]
    assert from_tfx_bsl == [tf.train.Example.FromString(e) for e in encoded]


def as_example_lists(field: Field, values: pa.Array) -> pa.Array:
    """A parsed column as tfx-bsl's list columns (null: the feature is absent)."""
    missing = columns.missing_rows(field, values)
    items = values.to_pylist()
    if not field.field_kind.multivalued:
        items = [[item] for item in items]
    list_type = pa.list_(pa.binary() if field.field_kind.raw_dtype == "string" else pa.float32())
    encoded = [
        None if gone else [token.encode() if isinstance(token, str) else token for token in item]
        for item, gone in zip(items, missing)
    ]
    return pa.array(encoded, list_type)


def test_score_feeds_predict_raw_what_serving_default_parses_from_the_examples():
    from featnet_tf.saved_model import raw_inputs_from_examples
    from pipelines import score

    lines = [line + b"\n" for line in MIXED_LINES[1:]]
    parser = BatchParser(RowParser(MIXED_SPEC, "csv", HashSplit()))
    header = ("id", "clicked", "tags", "embedding", "price", "age", "city", "day")
    batch, _ = parser.parse(lines, header, "log.csv", 2, 0)
    from_columns = score.raw_inputs(MIXED_SPEC, batch)
    from_examples = raw_inputs_from_examples(
        MIXED_SPEC, examples.encode_batch(MIXED_SPEC, batch.values, None).to_pylist()
    )
    for name in MIXED_SPEC.names:
        expected = from_examples[name]
        if expected.dtype == object:  # TensorFlow's strings are bytes
            expected = np.vectorize(bytes.decode, otypes=[object])(expected)
        np.testing.assert_array_equal(from_columns[name], expected, err_msg=name)
