"""Both pipelines on a Dask cluster (a scheduler, two worker processes, 127.0.0.1) give the DirectRunner's outputs.

The DaskRunner collects no Beam metrics, drops what a DoFn emits from
``finish_bundle`` and computes only the graph of a pipeline's last transform
(Beam 2.77); the pipelines are written so that none of that matters (see
`pipelines.shards` and `pipelines.transforms.CountRows`), and this test holds
them to it: the same vocabularies, statistics (with the accounting), dead
letter and set of examples, and the same scores.
"""

from __future__ import annotations

import glob
import gzip
import json
import os

import pandas as pd
import pytest

from featnet_tf.prepared_data import SPLITS, load_statistics
from pipelines import preprocess, score
from pipelines.dask_cluster import local_cluster
from tests.test_batch_path import CRITEO_LINES, read_examples

DIRECT = ["--runner=DirectRunner"]


@pytest.fixture(scope="module")
def dask_cluster():
    """README's commands: `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    pytest.importorskip("dask.distributed")
    with local_cluster(workers=2) as address:
        yield ["--runner", "DaskRunner", "--dask_client_address", address]


@pytest.fixture(scope="module")
def raw_day(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("raw") / "day.tsv.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\n".join(CRITEO_LINES * 60) + b"\n")
    return str(path)


def dead_letters(pattern: str) -> list[dict]:
    records = [json.loads(line) for path in glob.glob(pattern) for line in open(path, encoding="utf-8")]
    return sorted(records, key=lambda record: record["line"])


def test_preprocess_on_dask_writes_what_the_direct_runner_writes(dask_cluster, raw_day, tmp_path):
    outputs = {}
    for name, runner in (("direct", DIRECT), ("dask", dask_cluster)):
        outputs[name] = str(tmp_path / name)
        args = ["--input", raw_day, "--format", "criteo", "--min_count", "1", "--max_bad_fraction", "1"]
        preprocess.run(args + ["--output_dir", outputs[name]] + runner)
    direct, dask = outputs["direct"], outputs["dask"]
    statistics = load_statistics(dask)
    assert statistics == load_statistics(direct)
    rows = statistics["rows"]
    assert rows["rows_in"] == len(CRITEO_LINES) * 60 == rows["rows_written"] + rows["rows_dead_lettered"]
    assert rows["rows_dead_lettered"] > 0
    for name in sorted(os.listdir(os.path.join(direct, "vocabularies"))):
        with open(os.path.join(direct, "vocabularies", name)) as a, open(os.path.join(dask, "vocabularies", name)) as b:
            assert a.read() == b.read(), name
    assert dead_letters(os.path.join(dask, "dead_letter", "*.jsonl")) == dead_letters(
        os.path.join(direct, "dead_letter", "*.jsonl")
    )
    for split in SPLITS:
        assert read_examples(dask, split) == read_examples(direct, split), split


def test_score_on_dask_gives_the_direct_runners_scores(dask_cluster, raw_day, tiny_export, criteo_data, tmp_path):
    cases = [
        ["--input", raw_day, "--format", "criteo", "--max_bad_fraction", "1"],
        ["--input", os.path.join(criteo_data, "test", "*.tfrecord.gz"), "--format", "tfrecord"],
    ]
    for index, case in enumerate(cases):
        scores, results = {}, {}
        for name, runner in (("direct", DIRECT), ("dask", dask_cluster)):
            output = str(tmp_path / f"{name}{index}" / "part")
            args = ["--model", os.path.dirname(tiny_export), "--output", output, "--batch_size", "500"]
            results[name] = score.run(case + args + runner)
            table = pd.concat([pd.read_csv(path) for path in glob.glob(output + "-*.csv")])
            scores[name] = table.set_index("key")["probability"].sort_index()
            scores[name + "_dead"] = dead_letters(output + "-dead_letter*.jsonl")
        assert results["dask"] == results["direct"]
        assert results["dask"].rows_in == results["dask"].rows_scored + results["dask"].rows_dead_lettered
        pd.testing.assert_series_equal(scores["dask"], scores["direct"], rtol=0, atol=1e-6)
        assert scores["dask_dead"] == scores["direct_dead"]
