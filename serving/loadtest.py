"""`python -m serving.loadtest`: N concurrent clients for T seconds at batch size b.

Sends Predict requests of `b` serialized examples (read from TFRecord files)
to a TF Serving (or `serving.server`) target from N threads, each with its own
channel, and reports QPS, predictions/s, p50/p95/p99 latency and errors.
Bounded in time (`--seconds`) and count (`--max_requests` per client).

    python -m serving.loadtest --target localhost:8500 --model_name featnet \
        --examples 'data/test/*.tfrecord.gz' --clients 8 --seconds 10 --batch_size 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from typing import Any, Sequence

import grpc
import numpy as np
import tensorflow as tf

from serving.client import PredictionClient


def read_examples(pattern: str, limit: int = 100_000) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no TFRecord files match {pattern}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type=compression).take(limit)]


def run_load(
    target: str,
    model_name: str,
    examples: Sequence[bytes],
    clients: int,
    seconds: float,
    batch_size: int,
    max_requests: int = 1_000_000,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Runs the load and returns its summary (latencies in milliseconds)."""
    batches = [list(examples[i : i + batch_size]) for i in range(0, len(examples) - batch_size + 1, batch_size)] or [
        list(examples[:batch_size])
    ]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        with PredictionClient(target, model_name, timeout=timeout, retries=0) as client:
            requests = [
                client.predict_request({"examples": tf.make_tensor_proto(batch, dtype=tf.string)})
                for batch in batches[:64]
            ]
            start_barrier.wait()
            deadline = time.perf_counter() + seconds
            for count, request in zip(range(max_requests), itertools.cycle(requests)):
                if time.perf_counter() >= deadline:
                    break
                begin = time.perf_counter()
                try:
                    client.predictions.Predict(request, timeout=timeout)
                except grpc.RpcError as error:
                    errors[index][error.code().name] = errors[index].get(error.code().name, 0) + 1
                    continue
                latencies[index].append(1000.0 * (time.perf_counter() - begin))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    all_latencies = np.array([value for per_client in latencies for value in per_client])
    error_counts: dict[str, int] = {}
    for per_client in errors:
        for code, count in per_client.items():
            error_counts[code] = error_counts.get(code, 0) + count
    ok = len(all_latencies)
    return {
        "clients": clients,
        "batch_size": batch_size,
        "seconds": elapsed,
        "requests": ok,
        "errors": error_counts,
        "qps": ok / elapsed,
        "predictions_per_second": ok * batch_size / elapsed,
        "p50_ms": float(np.percentile(all_latencies, 50)) if ok else None,
        "p95_ms": float(np.percentile(all_latencies, 95)) if ok else None,
        "p99_ms": float(np.percentile(all_latencies, 99)) if ok else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--examples", required=True, help="TFRecord file(s) of serialized tf.train.Examples (glob)")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--max_requests", type=int, default=1_000_000, help="per client")
    args = parser.parse_args(argv)
    summary = run_load(
        args.target,
        args.model_name,
        read_examples(args.examples),
        args.clients,
        args.seconds,
        args.batch_size,
        args.max_requests,
    )
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
