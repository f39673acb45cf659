"""Rows per second of `pipelines.score` on the DirectRunner, beside plain loops.

In the same run, on the same raw Criteo-format file and SavedModel, with the
same batch size: (1) the Beam pipeline (parse, encode, RunInference, write
CSV); (2) a plain in-process loop that parses the same lines, builds the same
`tf.train.Example`s and calls the SavedModel per batch; (3) the SavedModel
calls alone on pre-serialized batches (the model's own floor). One line each.

    python benchmarks/score_throughput.py --model demo_output/run/export \
        --input /tmp/featnet_bench/criteo_1000000.tsv --batch_size 1024
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import tensorflow as tf

from featnet_tf.saved_model import latest_version_dir
from pipelines import examples, score
from pipelines.formats import criteo_spec
from pipelines.rows import RowParser
from pipelines.splits import FixedSplit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--batch_size", type=int, default=1024)
    args = parser.parse_args(argv)
    export_dir = latest_version_dir(args.model)
    with open(args.input, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    rows = len(lines)

    output = tempfile.mkdtemp()
    start = time.perf_counter()
    score.run(
        [
            "--model",
            export_dir,
            "--input",
            args.input,
            "--format",
            "criteo",
            "--output",
            os.path.join(output, "part"),
            "--batch_size",
            str(args.batch_size),
            "--runner=DirectRunner",
        ]
    )
    seconds = time.perf_counter() - start
    shutil.rmtree(output)
    print(
        f"pipelines.score (DirectRunner): {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s", flush=True
    )

    spec = criteo_spec()
    row_parser = RowParser(spec, "criteo", FixedSplit("test"))
    columns = row_parser.columns(None)
    encoder = examples.ExampleEncoder(spec)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    start = time.perf_counter()
    serialized_batches = []
    for begin in range(0, rows, args.batch_size):
        batch = [
            encoder.encode(
                row_parser.parse(line, columns, args.input, begin + i + 1, begin + i).values, None
            ).SerializeToString()
            for i, line in enumerate(lines[begin : begin + args.batch_size])
        ]
        serialized_batches.append(batch)
        serve(examples=tf.constant(batch))["probability"].numpy()
    seconds = time.perf_counter() - start
    print(
        f"plain loop (parse + encode + SavedModel per batch of {args.batch_size}): {rows / seconds:,.0f} rows/s",
        flush=True,
    )

    start = time.perf_counter()
    for batch in serialized_batches:
        serve(examples=tf.constant(batch))["probability"].numpy()
    seconds = time.perf_counter() - start
    print(
        f"SavedModel calls alone on pre-serialized batches of {args.batch_size}: {rows / seconds:,.0f} rows/s",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
