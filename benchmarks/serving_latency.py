"""gRPC serving latency and QPS, next to the in-process SavedModel call.

Starts `serving.server` on an export base, then for batch sizes 1 and 256
and 1 and 8 concurrent clients runs `serving.loadtest` for a few seconds,
and times the same SavedModel's `serving_default` called in this process on
the same batches (the floor the server adds to). One line per cell.

    python benchmarks/serving_latency.py --export_base demo_output/run/export \
        --examples 'demo_output/data/test/*.tfrecord.gz' --seconds 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

from serving.loadtest import read_examples, run_load
from serving.local import LocalServer
from serving.servable import list_versions


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
    args = parser.parse_args(argv)
    examples = read_examples(args.examples, limit=20_000)
    export_dir = os.path.join(args.export_base, str(list_versions(args.export_base)[-1]))
    with LocalServer(args.export_base, "featnet", "--max_batch_size", "1024") as server:
        for batch_size in (1, 256):
            floor = in_process(export_dir, examples, batch_size, args.seconds)
            print(
                f"batch {batch_size:>3}, in-process SavedModel: p50 {floor['p50_ms']:.2f} ms, p99 "
                f"{floor['p99_ms']:.2f} ms, "
                f"{floor['qps']:,.0f} calls/s = {floor['qps'] * batch_size:,.0f} predictions/s",
                flush=True,
            )
            for clients in (1, 8):
                result = run_load(server.target, "featnet", examples, clients, args.seconds, batch_size)
                print(
                    f"batch {batch_size:>3}, {clients} client(s) over gRPC: p50 {result['p50_ms']:.2f} ms, p95 "
                    f"{result['p95_ms']:.2f} ms, "
                    f"p99 {result['p99_ms']:.2f} ms, {result['qps']:,.0f} QPS = "
                    f"{result['predictions_per_second']:,.0f} predictions/s, "
                    f"errors {result['errors'] or 0}",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
