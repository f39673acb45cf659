"""pipelines.score: every good row scored once, equal to the model's own answer, in three formats."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from featnet_tf import lifecycle
from pipelines import examples, preprocess, score
from pipelines.formats import avazu_spec, criteo_spec
from pipelines.rows import RowParser
from pipelines.splits import FixedSplit
from tests.conftest import sample_data_dir
from tests.helpers import tiny_trained_run

SAMPLES = sample_data_dir()
pytestmark = pytest.mark.skipif(SAMPLES is None, reason="../shared/data (or $FEATNET_SAMPLE_DATA) is absent")
BAD_CRITEO = "1\tnot-a-number" + "\t" * 38 + "\n" + "2\t1\t2\n"


def exported(root: str, fmt: str, sample: str) -> str:
    data_dir = os.path.join(root, "prep")
    preprocess.preprocess(preprocess.PreprocessOptions(data_dir, fmt, input=[os.path.join(SAMPLES, sample)]))
    run = tiny_trained_run(data_dir, os.path.join(root, "run"), steps=10)
    path = lifecycle.export_run(run, os.path.join(root, "export")).path
    return path


def model_answers(export_dir: str, spec, fmt: str, path: str, header: bool, key_of) -> dict[str, float]:
    """The SavedModel's own probabilities for every row of a raw file, by key."""
    parser = RowParser(spec, fmt, FixedSplit("test"))
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    columns = parser.header_columns(lines[0], path) if header else parser.columns(None)
    rows = [
        parser.parse(line, columns, path, number, number)
        for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1)
    ]
    encoder = examples.ExampleEncoder(spec)
    serialized = [encoder.encode(row.values, None).SerializeToString() for row in rows]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    probabilities = np.concatenate(
        [
            serve(examples=tf.constant(serialized[i : i + 2048]))["probability"].numpy()
            for i in range(0, len(serialized), 2048)
        ]
    )
    return {key_of(row): float(p) for row, p in zip(rows, probabilities)}


@pytest.fixture(scope="module")
def criteo_model(tiny_export):
    """The suite's tiny FeatNet (trained on generated Criteo-format rows): the real sample's tokens are scored too."""
    return tiny_export


def test_criteo_sample_every_good_row_once_and_equal_to_the_model(criteo_model, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text(BAD_CRITEO)
    sample = os.path.join(SAMPLES, "criteo_sample.tsv")
    output = str(tmp_path / "scores" / "part")
    result = score.run(
        [
            "--model",
            os.path.dirname(criteo_model),
            "--input",
            sample,
            "--input",
            str(bad),
            "--format",
            "criteo",
            "--output",
            output,
            "--output_format",
            "parquet",
            "--batch_size",
            "256",
            "--runner=DirectRunner",
        ]
    )
    assert (result.rows_in, result.rows_scored, result.rows_dead_lettered) == (10_002, 10_000, 2)
    dead = [json.loads(line) for path in glob.glob(output + "-dead_letter*.jsonl") for line in open(path)]
    assert sorted(record["reason"].split(":")[0] for record in dead) == ["expected 40 columns, found 3", "field I1"]
    table = pq.read_table(glob.glob(output + "*.parquet")).to_pandas()
    assert len(table) == 10_000 and table["key"].is_unique
    expected = model_answers(criteo_model, criteo_spec(), "criteo", sample, False, lambda row: row.key)
    np.testing.assert_allclose(table["probability"].to_numpy(), [expected[key] for key in table["key"]], atol=1e-6)


@pytest.mark.parametrize("output_format", ["csv", "tfrecord"])
def test_outputs_read_back_with_standard_tools(criteo_model, tmp_path, output_format):
    sample = os.path.join(SAMPLES, "criteo_sample.tsv")
    output = str(tmp_path / "part")
    score.run(
        [
            "--model",
            criteo_model,
            "--input",
            sample,
            "--format",
            "criteo",
            "--output",
            output,
            "--output_format",
            output_format,
            "--runner=DirectRunner",
        ]
    )
    if output_format == "csv":
        frame = pd.concat(pd.read_csv(path) for path in glob.glob(output + "*.csv"))
        keys, probabilities = frame["key"].tolist(), frame["probability"].to_numpy()
    else:
        spec = {"key": tf.io.FixedLenFeature([], tf.string), "probability": tf.io.FixedLenFeature([], tf.float32)}
        records = tf.data.TFRecordDataset(glob.glob(output + "*.tfrecord")).map(
            lambda r: tf.io.parse_single_example(r, spec)
        )
        parsed = list(records.as_numpy_iterator())
        keys, probabilities = [p["key"].decode() for p in parsed], np.array([p["probability"] for p in parsed])
    assert len(keys) == 10_000 == len(set(keys))
    expected = model_answers(criteo_model, criteo_spec(), "criteo", sample, False, lambda row: row.key)
    np.testing.assert_allclose(probabilities, [expected[key] for key in keys], atol=1e-6)


def test_avazu_sample_keyed_by_its_id(tmp_path):
    export_dir = exported(str(tmp_path), "avazu", "avazu_sample.csv")
    sample = os.path.join(SAMPLES, "avazu_sample.csv")
    output = str(tmp_path / "scores")
    result = score.run(
        ["--model", export_dir, "--input", sample, "--format", "avazu", "--output", output, "--runner=DirectRunner"]
    )
    assert (result.rows_in, result.rows_scored, result.rows_dead_lettered) == (9_999, 9_999, 0)
    frame = pd.concat(pd.read_csv(path, dtype={"key": str}) for path in glob.glob(output + "*.csv"))
    assert frame["key"].is_unique and int(frame["key"].map(int).max()) > 2**63, "64-bit ids kept exactly"
    expected = model_answers(export_dir, avazu_spec(), "avazu", sample, True, lambda row: row.key)
    np.testing.assert_allclose(frame["probability"].to_numpy(), [expected[key] for key in frame["key"]], atol=1e-6)


def test_preprocessed_tfrecords_are_scored_too(criteo_model, criteo_data, tmp_path):
    data_dir = criteo_data
    output = str(tmp_path / "part")
    result = score.run(
        [
            "--model",
            criteo_model,
            "--input",
            os.path.join(data_dir, "test", "*.tfrecord.gz"),
            "--format",
            "tfrecord",
            "--output",
            output,
            "--runner=DirectRunner",
        ]
    )
    frame = pd.concat(pd.read_csv(path) for path in glob.glob(output + "*.csv"))
    assert result.rows_in == result.rows_scored == len(frame) > 500
    records = [
        r.numpy()
        for r in tf.data.TFRecordDataset(
            sorted(glob.glob(os.path.join(data_dir, "test", "*.tfrecord.gz"))), compression_type="GZIP"
        )
    ]
    own = (
        tf.saved_model.load(criteo_model)
        .signatures["serving_default"](examples=tf.constant(records))["probability"]
        .numpy()
    )
    by_key = dict(zip(frame["key"], frame["probability"]))
    files = sorted(glob.glob(os.path.join(data_dir, "test", "*.tfrecord.gz")))
    assert len(files) == 1
    np.testing.assert_allclose([by_key[f"{files[0]}:{i + 1}"] for i in range(len(records))], own, atol=1e-6)


def test_a_missing_model_is_named(tmp_path):
    with pytest.raises(ValueError, match="holds neither saved_model.pb"):
        score.run(["--model", str(tmp_path), "--input", "x", "--format", "criteo", "--output", str(tmp_path / "o")])
