"""pipelines.score under faults: a bad-row budget, missing inputs, records that are not Examples."""

from __future__ import annotations

import glob
import json
import os

import pytest
import tensorflow as tf

from pipelines import score

GOOD = "1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t" + "\t".join(f"c{i}" for i in range(26))
BAD = "1\tnot-a-number" + "\t" * 38


def score_args(model: str, inputs: str, fmt: str, output: str, *extra: str) -> list[str]:
    return ["--model", model, "--input", inputs, "--format", fmt, "--output", output, "--runner=DirectRunner", *extra]


def test_more_bad_rows_than_allowed_fail_and_publish_only_the_dead_letter(tiny_export, tmp_path):
    rows = tmp_path / "day.tsv"
    rows.write_text("\n".join([GOOD] * 6 + [BAD] * 4) + "\n")
    output = str(tmp_path / "scores" / "part")
    with pytest.raises(RuntimeError, match=r"4 of 10 rows \(40.00%\) are malformed.*no predictions were written"):
        score.run(score_args(tiny_export, str(rows), "criteo", output, "--max_bad_fraction", "0.3"))
    assert sorted(os.listdir(tmp_path / "scores")) == ["part-dead_letter-00000-of-00001.jsonl"]
    result = score.run(score_args(tiny_export, str(rows), "criteo", output, "--max_bad_fraction", "0.5"))
    assert (result.rows_in, result.rows_scored, result.rows_dead_lettered) == (10, 6, 4)
    assert len(glob.glob(output + "-0*.csv")) == 1


def test_a_missing_input_is_an_error_not_an_empty_result(tiny_export, tmp_path):
    with pytest.raises(ValueError, match=r"--input '.*/logs/\*\.tsv' matches no file"):
        score.run(score_args(tiny_export, str(tmp_path / "logs" / "*.tsv"), "criteo", str(tmp_path / "out")))


def test_a_tfrecord_record_that_is_not_an_example_goes_to_the_dead_letter(tiny_export, criteo_data, tmp_path):
    files = sorted(glob.glob(os.path.join(criteo_data, "test", "*.tfrecord.gz")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(20)]
    mixed = tmp_path / "mixed.tfrecord"
    with tf.io.TFRecordWriter(str(mixed)) as writer:
        for record in records[:10] + [b"\x08\x96\x01 not an example"] + records[10:]:
            writer.write(record)
    output = str(tmp_path / "part")
    result = score.run(score_args(tiny_export, str(mixed), "tfrecord", output, "--max_bad_fraction", "0.1"))
    assert (result.rows_in, result.rows_scored, result.rows_dead_lettered) == (21, 20, 1)
    (dead_letter,) = glob.glob(output + "-dead_letter*.jsonl")
    with open(dead_letter) as stream:
        (record,) = [json.loads(line) for line in stream]
    assert record["file"] == str(mixed) and record["line"] == 11 and "is not a tf.train.Example" in record["reason"]
