"""gRPC serving latency and QPS, next to the in-process SavedModel call.

Starts `serving.server` on an export base, then for batch sizes 1 and 256
and 1 and 8 concurrent clients runs `serving.loadtest` for a few seconds,
and times the same SavedModel's `serving_default` called in this process on
the same batches (the floor the server adds to). One line per cell.

    python benchmarks/serving_latency.py --export_base demo_output/run/export \
        --examples 'demo_output/data/test/*.tfrecord.gz' --seconds 10

``--variant LABEL@DIR`` (repeatable) runs the server of another checkout
of this repository (e.g. ``git archive <commit> | tar x -C /tmp/before``)
beside this one's (``--variant after``), one after the other in the same
run, on the same in-process floor. ``--rest`` measures each cell over REST
too (``:predict`` with base64 Examples, one kept-alive connection a client;
every variant must have the REST API).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import tensorflow as tf
from harness import parse_variant  # benchmarks/, on the path of a script run from it

from serving.loadtest import read_examples, run_load, run_rest_load
from serving.local import LocalServer
from tfbase.versions import list_versions


def in_process(export_dir: str, examples: list[bytes], batch_size: int, seconds: float) -> dict:
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    batches = [tf.constant(examples[i : i + batch_size]) for i in range(0, len(examples) - batch_size + 1, batch_size)][
        :64
    ]
    serve(examples=batches[0])
    latencies, deadline, index = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        begin = time.perf_counter()
        serve(examples=batches[index % len(batches)])["probability"].numpy()
        latencies.append(1000 * (time.perf_counter() - begin))
        index += 1
    elapsed = sum(latencies) / 1000
    return {
        "p50_ms": np.percentile(latencies, 50),
        "p99_ms": np.percentile(latencies, 99),
        "qps": len(latencies) / elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_base", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL[@DIR]")
    parser.add_argument("--server_flags", default="", help="more flags for every server, e.g. '--num_batch_threads 1'")
    parser.add_argument("--cells", default="1x1,1x8,256x1,256x8", help="BATCHxCLIENTS cells to measure")
    parser.add_argument("--rest", action="store_true", help="measure every cell over REST as well as gRPC")
    args = parser.parse_args(argv)
    variants = [parse_variant(text) for text in args.variant or ["server"]]
    examples = read_examples(args.examples, limit=20_000)
    export_dir = os.path.join(args.export_base, str(list_versions(args.export_base)[-1]))
    floors = {}
    for batch_size in sorted({int(cell.split("x")[0]) for cell in args.cells.split(",")}):
        floor = floors[batch_size] = in_process(export_dir, examples, batch_size, args.seconds)
        print(
            f"batch {batch_size:>3}, in-process SavedModel: p50 {floor['p50_ms']:.2f} ms, p99 "
            f"{floor['p99_ms']:.2f} ms, "
            f"{floor['qps']:,.0f} calls/s = {floor['qps'] * batch_size:,.0f} predictions/s",
            flush=True,
        )
    for label, source in variants:
        base = os.path.abspath(args.export_base)  # the server of another checkout runs from there
        flags = ["--max_batch_size", "1024", *args.server_flags.split()]
        with LocalServer(base, "featnet", *flags, source=source, rest_api=source is None or args.rest) as server:
            for cell, api in itertools.product(args.cells.split(","), ["gRPC", "REST"] if args.rest else ["gRPC"]):
                batch_size, clients = (int(part) for part in cell.split("x"))
                if api == "REST":
                    result = run_rest_load(server.rest_target, "featnet", examples, clients, args.seconds, batch_size)
                else:
                    result = run_load(server.target, "featnet", examples, clients, args.seconds, batch_size)
                print(
                    f"{label}: batch {batch_size:>3}, {clients} client(s) over {api}: p50 {result['p50_ms']:.2f} "
                    f"ms, p95 {result['p95_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms (in-process p99 + "
                    f"{result['p99_ms'] - floors[batch_size]['p99_ms']:.2f} ms), {result['qps']:,.0f} QPS = "
                    f"{result['predictions_per_second']:,.0f} predictions/s, errors {result['errors'] or 0}",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
