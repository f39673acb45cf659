"""The prepared-data directory: the one owner of its layout.

`pipelines.preprocess` writes it; training, evaluation, export, analysis and
benchmarks read it. Every file name, the split names and the shard pattern
are defined here and nowhere else::

    <output_dir>/
        train/ valid/ test/      part-*.tfrecord.gz, raw-value tf.train.Examples
        vocabularies/<field>.txt one token per line, id order (first line = id 2)
        feature_spec.json        the resolved FeatureSpec
        statistics.json          rows, click rates, per-field statistics (numeric histograms too)
        token_counts/<field>.parquet  (token, count) of the whole day, every vocabulary field
        validation.json          the day against a baseline day (`pipelines.validation`), when one was given
        schema.pbtxt             the tensorflow-metadata Schema of the examples
        dead_letter/part-*.jsonl the rows that could not be parsed

Like `features`, this module imports nothing of featnet_tf above the ground
floor and no TensorFlow at import time; its readers use `tf.io.gfile` (local
and ``gs://`` paths alike), the pipelines write with Beam's `FileSystems`
through the same names.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from featnet_tf.features import FeatureSpec

SPLITS = ("train", "valid", "test")
FEATURE_SPEC_FILE = "feature_spec.json"
STATISTICS_FILE = "statistics.json"
PARTIAL_STATISTICS_FILE = "statistics.partial.json"
SCHEMA_FILE = "schema.pbtxt"
VOCABULARY_DIR = "vocabularies"
TOKEN_COUNTS_DIR = "token_counts"
VALIDATION_FILE = "validation.json"
DEAD_LETTER_DIR = "dead_letter"
SHARD_PREFIX = "part"
TFRECORD_SUFFIX = ".tfrecord.gz"


def check_split(split: str) -> str:
    """`split` itself, or a `ValueError` naming the known splits."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Expected one of {SPLITS}.")
    return split


def path(output_dir: str, *parts: str) -> str:
    """A path inside the directory (``/``-joined, as Beam and gfile take it)."""
    return posixpath.join(output_dir, *parts)


def split_prefix(output_dir: str, split: str) -> str:
    """The shard prefix a writer of `split` appends ``-NNNNN-of-NNNNN`` and
    `TFRECORD_SUFFIX` to."""
    return path(output_dir, check_split(split), SHARD_PREFIX)


def vocabulary_file(field_name: str) -> str:
    """A field's vocabulary file, relative to the directory (as the spec records it)."""
    return posixpath.join(VOCABULARY_DIR, f"{field_name}.txt")


def token_counts_file(field_name: str) -> str:
    """A field's whole-day token counts, relative to the directory."""
    return posixpath.join(TOKEN_COUNTS_DIR, f"{field_name}.parquet")


def split_files(output_dir: str, split: str) -> list[str]:
    """The sorted TFRecord shards of one split; a `ValueError` when there are none."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(split_prefix(output_dir, split) + "-*" + TFRECORD_SUFFIX))
    if not files:
        raise ValueError(f"No TFRecords for split {split!r} under {output_dir}")
    return files


def _read_json(output_dir: str, name: str) -> Any:
    import tensorflow as tf

    file_path = path(output_dir, name)
    if not tf.io.gfile.exists(file_path):
        raise ValueError(f"{output_dir} is not a preprocessing output directory: {file_path} does not exist")
    with tf.io.gfile.GFile(file_path) as stream:
        return json.load(stream)


def load_feature_spec(output_dir: str) -> FeatureSpec:
    """The resolved FeatureSpec written by `pipelines.preprocess`."""
    return FeatureSpec.from_dict(_read_json(output_dir, FEATURE_SPEC_FILE))


def load_statistics(output_dir: str) -> dict[str, Any]:
    """The statistics written by `pipelines.preprocess`."""
    return _read_json(output_dir, STATISTICS_FILE)


def anomalies(output_dir: str) -> list[dict[str, Any]]:
    """The anomalies ``validation.json`` marks the directory with (none
    when it was not validated against a baseline)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path(output_dir, VALIDATION_FILE)):
        return []
    return _read_json(output_dir, VALIDATION_FILE)["anomalies"]
