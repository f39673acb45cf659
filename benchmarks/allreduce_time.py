"""What one training step's gradient exchange costs between worker processes.

Starts `--workers` processes on 127.0.0.1 (TF_CONFIG from
`featnet_tf.workers.loopback_tf_configs`), each with a
`MultiWorkerMirroredStrategy` configured as `featnet_tf.train` configures it,
and times, inside one `tf.function` as in a train step, what FeatNet's step
exchanges: the all-reduce (sum) of its dense gradients, and the all-gather of
the embedding rows the batch read (TensorFlow all-gathers `IndexedSlices`
values and indices rather than densifying the table). One line per payload;
the median of `--repeats` timed calls after two warm-up calls.

    python benchmarks/allreduce_time.py --dense_params 1083776 --rows 512 --fields 39 --embedding_dim 16

`--dense_params` and the rows are FeatNet's at the `featnet` experiment's
widths on 39 Criteo fields (1,083,776 non-embedding parameters) and a
per-worker batch of 512 (a global batch of 1024 on two workers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    from featnet_tf import workers

    workers.configure()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rows = args.rows * args.fields
    dense = tf.random.normal([args.dense_params])
    values = tf.random.normal([rows, args.embedding_dim])
    indices = tf.random.uniform([rows], maxval=2_000_000, dtype=tf.int64)

    def exchange(payload: str):
        def step():
            context = tf.distribute.get_replica_context()
            if payload in ("dense", "both"):
                context.all_reduce(tf.distribute.ReduceOp.SUM, dense)
            if payload in ("sparse", "both"):
                slices = tf.IndexedSlices(values, indices, tf.constant([2_000_000, args.embedding_dim], tf.int64))
                context.all_reduce(tf.distribute.ReduceOp.SUM, slices)
            return tf.constant(0)

        return tf.function(lambda: strategy.run(step))

    timings = {}
    for payload in ("dense", "sparse", "both"):
        call = exchange(payload)
        for _ in range(2):
            call()
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        timings[payload] = 1000 * statistics.median(seconds)
    workers.wait_for_all("allreduce_time.done", 600)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dense_params", type=int, default=1_083_776)
    parser.add_argument("--rows", type=int, default=512, help="rows of one worker's batch")
    parser.add_argument("--fields", type=int, default=39)
    parser.add_argument("--embedding_dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        print(json.dumps(worker(args)), flush=True)
        return

    from featnet_tf.workers import loopback_tf_configs

    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--_worker"] + [arg for arg in (argv or sys.argv[1:])],
            env=dict(os.environ, TF_CONFIG=tf_config),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tf_config in loopback_tf_configs(args.workers)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode:
            raise SystemExit(stderr[-3000:])
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    sizes = {
        "dense": f"all-reduce of {args.dense_params:,} float32 ({4 * args.dense_params / 2**20:.1f} MiB)",
        "sparse": f"all-gather of {args.rows * args.fields:,} rows x {args.embedding_dim} + indices "
        f"({args.rows * args.fields * (4 * args.embedding_dim + 8) / 2**20:.1f} MiB per worker)",
        "both": "both, one step's exchange",
    }
    for payload, label in sizes.items():
        chief = results[0][payload]
        print(f"{args.workers} workers on loopback, {label}: {chief:.1f} ms (median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
