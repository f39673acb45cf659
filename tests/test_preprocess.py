"""pipelines.preprocess on Beam's DirectRunner: transforms, real samples, bad rows, determinism."""

from __future__ import annotations

import collections
import gzip
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from featnet_tf.data import make_dataset
from featnet_tf.features import FeatureSpec, Field, InputFormat
from featnet_tf.prepared_data import load_feature_spec
from pipelines import preprocess, transforms
from pipelines.batches import RowBatch
from pipelines.rows import Row, RowParser
from tests.conftest import sample_data_dir

SAMPLES = sample_data_dir()
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="../shared/data (or $FEATNET_SAMPLE_DATA) is absent")
SPECS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "specs")
DIRECT = ["--runner=DirectRunner"]


def read_split(output_dir: str, split: str) -> list[tf.train.Example]:
    files = sorted(tf.io.gfile.glob(os.path.join(output_dir, split, "*.tfrecord.gz")))
    return [
        tf.train.Example.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]


def read_dead_letters(output_dir: str) -> list[dict]:
    records = []
    for path in tf.io.gfile.glob(os.path.join(output_dir, "dead_letter", "*.jsonl")):
        with open(path, encoding="utf-8") as stream:
            records += [json.loads(line) for line in stream]
    return records


def feature_value(example: tf.train.Example, name: str):
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    return values


# === Transforms on TestPipeline ===


def test_vocabularies_come_from_train_rows_only():
    spec = FeatureSpec(
        (Field("city", "categorical", min_count=2), Field("price", "numeric", transform="log_normalize"))
    )
    rows = [
        Row("1", 1, {"city": "paris", "price": 1.0}, "train"),
        Row("2", 0, {"city": "paris", "price": None}, "train"),
        Row("3", 0, {"city": "lyon", "price": 2.0}, "train"),
        Row("4", 0, {"city": "rome", "price": 2.0}, "valid"),
        Row("5", 0, {"city": "rome", "price": 2.0}, "test"),
        Row("6", 0, {"city": "rome", "price": 2.0}, "test"),
    ]
    batches = [RowBatch.from_rows(spec, rows[:3], [1, 2, 3], "a"), RowBatch.from_rows(spec, rows[3:], [4, 5, 6], "a")]
    with TestPipeline(argv=DIRECT) as pipeline:
        token_counts = (
            pipeline
            | beam.Create(batches)
            | beam.ParDo(transforms.CountTokensFn(spec))
            | beam.CombinePerKey(transforms.SumTokenCounts())
        )
        vocabularies, day_counts, oov = token_counts | transforms.BuildVocabularies(spec)
        # lyon is below min_count; rome is only in valid/test, where it is out of the vocabulary.
        assert_that(vocabularies, equal_to([("city", ["paris"], 2)]), label="Vocabularies")
        assert_that(  # the whole day's counts, every split: what days are compared by
            day_counts | beam.MapTuple(lambda name, table: (name, sorted(zip(*table.to_pydict().values())))),
            equal_to([("city", [("lyon", 1), ("paris", 2), ("rome", 3)])]),
            label="DayTokenCounts",
        )
        assert_that(
            oov | beam.MapTuple(lambda split, counts: (split, counts[2 + 2 + 0], counts[2 + 2 * 2 + 0])),
            equal_to([("valid", 1, 1), ("test", 2, 2)]),
            label="OovAndTokenCounts",
        )


def test_read_rows_routes_bad_lines_to_the_dead_letter(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"label,city\n1,paris\n2,lyon\n0,rome,extra\n0,\xff\xfe\n")
    spec = FeatureSpec((Field("city", "categorical"),), input_format=InputFormat(label="label"))
    parser = RowParser(spec, "csv")
    with TestPipeline(argv=DIRECT) as pipeline:
        parsed = pipeline | transforms.ReadBatches([str(path)], parser)
        assert_that(
            parsed[transforms.ROWS]
            | beam.FlatMap(lambda batch: zip(batch.labels.tolist(), batch.values["city"].to_pylist())),
            equal_to([(1, "paris")]),
            label="Rows",
        )
        reasons = parsed[transforms.DEAD_LETTER] | beam.FlatMap(
            lambda records: [(record["line"], record["reason"].split(":")[0]) for record in records]
        )
        assert_that(
            reasons,
            equal_to([(3, "bad label '2'"), (4, "expected 2 columns, found 3"), (5, "undecodable bytes")]),
            label="DeadLetters",
        )


# === Real samples end to end ===


@pytest.fixture(scope="module")
def criteo_output(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("criteo"))
    result = preprocess.run(
        ["--input", os.path.join(SAMPLES, "criteo_sample.tsv"), "--format", "criteo", "--output_dir", output] + DIRECT
    )
    return output, result


@needs_samples
def test_criteo_sample_rows_are_conserved_and_split_8_1_1(criteo_output):
    output, result = criteo_output
    rows = result.statistics["rows"]
    assert rows["rows_in"] == 10_000 == rows["rows_written"] + rows["rows_dead_lettered"]
    sizes = {split: len(read_split(output, split)) for split in ("train", "valid", "test")}
    assert sum(sizes.values()) == rows["rows_written"]
    for split, share in (("train", 0.8), ("valid", 0.1), ("test", 0.1)):
        assert abs(sizes[split] / 10_000 - share) < 0.01, sizes
        assert result.statistics["splits"][split]["rows"] == sizes[split]
    assert abs(result.statistics["splits"]["train"]["click_rate"] - 0.218) < 0.01


@needs_samples
def test_criteo_vocabularies_are_built_from_train_only(criteo_output):
    output, result = criteo_output
    train_counts = collections.Counter(
        feature_value(example, "C3")[0].decode()
        for example in read_split(output, "train")
        if feature_value(example, "C3")
    )
    with open(os.path.join(output, "vocabularies", "C3.txt"), encoding="utf-8") as stream:
        vocabulary = stream.read().splitlines()
    assert vocabulary == sorted((t for t, c in train_counts.items() if c >= 2), key=lambda t: (-train_counts[t], t))
    assert result.spec["C3"].vocabulary_size == len(vocabulary)
    valid_only = {
        feature_value(e, "C3")[0].decode() for e in read_split(output, "valid") if feature_value(e, "C3")
    } - set(train_counts)
    assert valid_only and not valid_only & set(vocabulary)
    assert result.statistics["fields"]["C3"]["valid_oov_rate"] > 0


@needs_samples
def test_criteo_schema_is_read_by_tfx_bsl(criteo_output):
    output, _ = criteo_output
    with open(os.path.join(output, "schema.pbtxt")) as stream:
        schema = text_format.Parse(stream.read(), schema_pb2.Schema())
    source = tfxio.TFExampleRecord(os.path.join(output, "test", "*.tfrecord.gz"), schema=schema)
    batches = list(source.RecordBatches(tfxio.RecordBatchesOptions(batch_size=256, shuffle=False, num_epochs=1)))
    assert sum(batch.num_rows for batch in batches) == len(read_split(output, "test"))
    assert set(batches[0].schema.names) == {"label"} | {f"I{i}" for i in range(1, 14)} | {f"C{i}" for i in range(1, 27)}


@needs_samples
def test_make_dataset_batches_raw_features_with_the_right_types(criteo_output):
    output, _ = criteo_output
    features, labels = next(iter(make_dataset(output, "valid", batch_size=32)))
    assert labels.shape == (32, 1) and labels.dtype == tf.float32
    assert features["I1"].dtype == tf.float32 and features["I1"].shape == (32,)
    assert features["C1"].dtype == tf.string and features["C1"].shape == (32,)
    assert len(features) == 39
    assert np.isnan(features["I12"].numpy()).any(), "missing numerics parse as NaN"


@needs_samples
def test_same_input_twice_gives_identical_outputs(criteo_output, tmp_path):
    first, _ = criteo_output
    second = str(tmp_path / "again")
    preprocess.run(
        ["--input", os.path.join(SAMPLES, "criteo_sample.tsv"), "--format", "criteo", "--output_dir", second] + DIRECT
    )
    for name in sorted(os.listdir(os.path.join(first, "vocabularies"))):
        with (
            open(os.path.join(first, "vocabularies", name), "rb") as a,
            open(os.path.join(second, "vocabularies", name), "rb") as b,
        ):
            assert a.read() == b.read(), name
    for split in ("train", "valid", "test"):
        assert sorted(e.SerializeToString(deterministic=True) for e in read_split(first, split)) == sorted(
            e.SerializeToString(deterministic=True) for e in read_split(second, split)
        )


@needs_samples
def test_avazu_sample(tmp_path):
    result = preprocess.run(
        ["--input", os.path.join(SAMPLES, "avazu_sample.csv"), "--format", "avazu", "--output_dir", str(tmp_path)]
        + DIRECT
    )
    rows = result.statistics["rows"]
    assert rows["rows_in"] == 9_999 == rows["rows_written"]
    for split, share in (("train", 0.8), ("valid", 0.1), ("test", 0.1)):
        assert abs(result.statistics["splits"][split]["rows"] / 9_999 - share) < 0.01
    example = read_split(str(tmp_path), "train")[0]
    assert "id" not in example.features.feature and feature_value(example, "hour")[0] == b"00"
    assert feature_value(example, "weekday")[0] == b"1"  # 2014-10-21, a Tuesday
    features, _ = next(iter(make_dataset(str(tmp_path), "train", batch_size=8)))
    assert len(features) == 24


@needs_samples
def test_frappe_through_the_csv_format(tmp_path):
    result = preprocess.run(
        [
            "--input",
            os.path.join(SAMPLES, "frappe.csv"),
            "--format",
            "csv",
            "--spec",
            os.path.join(SPECS, "frappe.yaml"),
            "--output_dir",
            str(tmp_path),
        ]
        + DIRECT
    )
    rows = result.statistics["rows"]
    assert rows["rows_in"] == 86_582 == rows["rows_written"]
    for split, share in (("train", 0.8), ("valid", 0.1), ("test", 0.1)):
        assert abs(result.statistics["splits"][split]["rows"] / 86_582 - share) < 0.01
    spec = load_feature_spec(str(tmp_path))
    assert spec.num_fields == 10 and all(field.vocabulary_size for field in spec.fields)
    assert abs(result.statistics["splits"]["train"]["click_rate"] - 0.33) < 0.01


# === Bad rows ===

GOOD = [
    "1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t" + "\t".join(f"c{i}" for i in range(26)),
    "0\t\t-1\t\t\t\t\t\t\t\t\t\t\t1000\t" + "\t".join([""] * 25 + ["z"]),
]
BAD = [
    (b"1\t1\t2", "expected 40 columns, found 3"),
    (GOOD[0].replace("1\t1\t2", "1\tone\t2", 1).encode(), "field I1: 'one' is not a number"),
    (GOOD[0].replace("1", "7", 1).encode(), "bad label '7'"),
    (GOOD[1].encode().replace(b"\tz", b"\t\xff\xfez"), "undecodable bytes"),
    (GOOD[0].replace("1\t1\t2", "1\t3.5e38\t2", 1).encode(), "field I1: '3.5e38' is outside float32's range"),
]


@pytest.fixture()
def bad_rows_file(tmp_path):
    path = tmp_path / "planted.tsv.gz"
    lines = [GOOD[0].encode(), BAD[0][0], BAD[1][0], GOOD[1].encode(), BAD[2][0], BAD[3][0], BAD[4][0]]
    with gzip.open(path, "wb") as stream:
        stream.write(b"\n".join(lines) + b"\n")
    return str(path)


def test_planted_bad_rows_land_in_the_dead_letter_with_their_reason(bad_rows_file, tmp_path):
    output = str(tmp_path / "out")
    result = preprocess.run(
        [
            "--input",
            bad_rows_file,
            "--format",
            "criteo",
            "--min_count",
            "1",
            "--output_dir",
            output,
            "--max_bad_fraction",
            "0.9",
        ]
        + DIRECT
    )
    dead = sorted(read_dead_letters(output), key=lambda record: record["line"])
    assert [record["line"] for record in dead] == [2, 3, 5, 6, 7]
    assert all(record["file"] == bad_rows_file for record in dead)
    for record, (_, reason) in zip(dead, BAD):
        assert record["reason"].startswith(reason), record
    assert result.statistics["rows"] == {
        "rows_in": 7,
        "rows_written": 2,
        "rows_dead_lettered": 5,
        "dead_letter_reasons": {
            "bad label '7'": 1,
            "expected 40 columns, found 3": 1,
            "field I1": 2,
            "undecodable bytes": 1,
        },
    }
    examples = [e for split in ("train", "valid", "test") for e in read_split(output, split)]
    by_label = {feature_value(e, "label")[0]: e for e in examples}
    assert feature_value(by_label[1], "I13") == [13.0] and feature_value(by_label[1], "C26") == [b"c25"]
    assert feature_value(by_label[0], "I1") == [] and feature_value(by_label[0], "I2") == [-1.0]
    assert feature_value(by_label[0], "I13") == [1000.0] and feature_value(by_label[0], "C1") == []
    assert feature_value(by_label[0], "C26") == [b"z"]


def test_too_many_bad_rows_fail_loudly_and_publish_only_the_dead_letter(bad_rows_file, tmp_path):
    output = tmp_path / "out"
    args = ["--input", bad_rows_file, "--format", "criteo", "--output_dir", str(output), "--max_bad_fraction", "0.5"]
    with pytest.raises(RuntimeError, match="5 of 7 rows .* more than --max_bad_fraction=0.5; nothing was written"):
        preprocess.run(args + DIRECT)
    assert not output.exists(), "a failed run left a dataset where training looks"
    assert [name for name in os.listdir(tmp_path) if name != "planted.tsv.gz"] == ["out.dead_letter"]
    assert len(read_dead_letters_in(tmp_path / "out.dead_letter")) == 5


def read_dead_letters_in(directory) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]


def criteo_lines(count: int) -> bytes:
    return ("\n".join(GOOD[index % 2] for index in range(count)) + "\n").encode()


def test_a_missing_input_or_a_truncated_gzip_fails_naming_the_file_and_writes_nothing(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match=r"--input '.*no_such_day_\*\.tsv' matches no file"):
        preprocess.run(
            ["--input", str(tmp_path / "no_such_day_*.tsv"), "--format", "criteo", "--output_dir", str(output)]
        )
    compressed = gzip.compress(criteo_lines(4000))
    truncated = tmp_path / "day.tsv.gz"
    truncated.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(
        RuntimeError, match=rf"{truncated} is truncated or corrupt after line \d+ .*nothing was written"
    ):
        preprocess.run(["--input", str(truncated), "--format", "criteo", "--output_dir", str(output)] + DIRECT)
    assert sorted(os.listdir(tmp_path)) == ["day.tsv.gz"], "a failed run left files behind"


def test_a_non_empty_output_is_refused_and_overwrite_replaces_it_whole(tmp_path):
    output, day1, day2 = tmp_path / "out", tmp_path / "day1.tsv", tmp_path / "day2.tsv"
    day1.write_bytes(criteo_lines(300))
    day2.write_bytes(criteo_lines(100))
    base = ["--format", "criteo", "--min_count", "1", "--output_dir", str(output)] + DIRECT
    preprocess.run(["--input", str(day1), *base])
    with pytest.raises(ValueError, match="is not empty; pass --overwrite"):
        preprocess.run(["--input", str(day2), *base])
    result = preprocess.run(["--input", str(day2), *base, "--overwrite"])
    rows = sum(len(read_split(str(output), split)) for split in ("train", "valid", "test"))
    assert rows == result.statistics["rows"]["rows_written"] == 100, "shards of the replaced run were kept"
    assert sorted(os.listdir(tmp_path)) == ["day1.tsv", "day2.tsv", "out"]


def test_a_killed_run_leaves_nothing_where_consumers_look(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import REPO_ROOT

    day = tmp_path / "day.tsv"
    day.write_bytes(criteo_lines(200_000))
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.preprocess", "--input", str(day), "--format", "criteo"]
        + ["--output_dir", str(output)]
        + DIRECT,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob("out.staging-*/**/*")) and time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not output.exists(), "a killed run left a directory that looks like a dataset"


def test_an_avazu_header_with_a_byte_order_mark_is_a_valid_file(tmp_path):
    from pipelines import synthesize

    plain = tmp_path / "plain.csv"
    synthesize.write(synthesize.synthesize_avazu(200, seed=1), str(plain), ",")
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())  # as spreadsheet tools save "UTF-8 CSV"
    result = preprocess.run(
        ["--input", str(path), "--format", "avazu", "--output_dir", str(tmp_path / "out"), "--min_count", "1"] + DIRECT
    )
    assert result.statistics["rows"]["rows_written"] == 200 and result.statistics["rows"]["rows_dead_lettered"] == 0


def test_csv_without_a_spec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a FeatureSpec"):
        preprocess.run(["--input", "x.csv", "--format", "csv", "--output_dir", str(tmp_path)] + DIRECT)


def test_workers_creating_the_same_directory_at_once_all_succeed(tmp_path):
    """On a cluster runner several workers write vocabularies (or finalize
    shards) into one new directory at the same moment."""
    import threading

    from pipelines.shards import make_directory

    for attempt in range(20):
        target = str(tmp_path / f"attempt{attempt}" / "vocabularies")
        start, errors = threading.Barrier(8), []

        def create() -> None:
            start.wait()
            try:
                make_directory(target)
            except OSError as error:
                errors.append(error)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors and os.path.isdir(target)
