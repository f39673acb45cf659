"""Rows per second and peak memory of `pipelines.score`, beside the model's own rate.

In the same run, on the same raw Criteo-format file and SavedModel, with the
same batch size: (1) the SavedModel's `serving_default` calls alone on
pre-serialized batches of the first ``--floor_rows`` rows (the model's own
rate, the reference), and its `predict_raw` calls alone on the same rows
pre-parsed; (2) `pipelines.score` on the DirectRunner (read, parse,
RunInference, write CSV) for each checkout given (``--variant LABEL@DIR``;
the working tree by default), each in a fresh process that reports the
pipeline's wall time (imports excluded) and its peak resident memory. One
line per measurement, with the ratio to the model's own rate.

    python benchmarks/score_throughput.py --model demo_output/run/export \\
        --input /tmp/featnet_bench/criteo_1000000.tsv --batch_size 1024 --variant before@/tmp/before --variant after@.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import tensorflow as tf
from harness import parse_variant, run_timed_program  # benchmarks/, on the path of a script run from it

from pipelines import examples, score
from pipelines.batches import BatchParser
from pipelines.formats import criteo_spec
from pipelines.rows import RowParser
from pipelines.splits import FixedSplit
from tfbase.versions import latest_version_dir


def model_rates(export_dir: str, path: str, rows: int, batch_size: int) -> tuple[float, float]:
    """Rows/s of `serving_default` on pre-serialized batches and of
    `predict_raw` on pre-parsed ones, over the file's first `rows` rows."""
    spec = criteo_spec()
    parser = RowParser(spec, "criteo", FixedSplit("test"))
    with open(path, "rb") as stream:
        lines = [line for _, line in zip(range(rows), stream)]
    batch_parser = BatchParser(parser)
    batches = [
        batch_parser.parse(lines[begin : begin + batch_size], parser.columns(None), path, begin + 1, begin)[0]
        for begin in range(0, len(lines), batch_size)
    ]
    serialized = [examples.encode_batch(spec, batch.values, None).to_pylist() for batch in batches]
    raw = [score.raw_inputs(spec, batch) for batch in batches]
    model = tf.saved_model.load(export_dir)
    serve, predict_raw = model.signatures["serving_default"], model.signatures["predict_raw"]
    serve(examples=tf.constant(serialized[0]))  # warm-up
    start = time.perf_counter()
    for batch in serialized:
        serve(examples=tf.constant(batch))["probability"].numpy()
    serving_rate = len(lines) / (time.perf_counter() - start)
    start = time.perf_counter()
    for inputs in raw:
        predict_raw(**{name: tf.constant(value) for name, value in inputs.items()})["probability"].numpy()
    raw_rate = len(lines) / (time.perf_counter() - start)
    return serving_rate, raw_rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--input", required=True, help="a Criteo-format file (benchmarks/preprocess_throughput.py makes one)"
    )
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--floor_rows", type=int, default=200_000, help="rows for the model-alone rates")
    parser.add_argument("--variant", action="append", help="LABEL@DIR: a checkout to time (repeatable)")
    args = parser.parse_args(argv)
    export_dir = latest_version_dir(args.model)
    with open(args.input, "rb") as stream:
        rows = sum(1 for _ in stream)

    serving_rate, raw_rate = model_rates(export_dir, args.input, args.floor_rows, args.batch_size)
    print(
        f"SavedModel serving_default alone on pre-serialized batches of {args.batch_size}: {serving_rate:,.0f} rows/s "
        f"(the reference); predict_raw alone on pre-parsed batches: {raw_rate:,.0f} rows/s",
        flush=True,
    )
    for label, checkout in [parse_variant(text) for text in args.variant or ["current"]]:
        output = tempfile.mkdtemp()
        argv_child = [
            "--model",
            os.path.abspath(export_dir),
            "--input",
            os.path.abspath(args.input),
            "--format",
            "criteo",
            "--output",
            os.path.join(output, "part"),
            "--batch_size",
            str(args.batch_size),
            "--runner=DirectRunner",
        ]
        result = run_timed_program(checkout, "score", argv_child)
        shutil.rmtree(output)
        rate = rows / result["seconds"]
        print(
            f"pipelines.score {label} ({checkout or 'this checkout'}): "
            f"{rows:,} rows in {result['seconds']:.1f} s = {rate:,.0f} rows/s, "
            f"{rate / serving_rate:.0%} of serving_default alone; peak RSS {result['peak_rss_mb']:,.0f} MB "
            f"({result['rss_after_imports_mb']:,.0f} MB after imports)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
