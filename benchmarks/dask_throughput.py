"""Rows per second of `pipelines.preprocess` on the DirectRunner and on a local Dask cluster, same input, same run.

Starts `dask scheduler` and two `dask worker` processes (one thread each) on
127.0.0.1, as README's "Scaling out" does, and preprocesses the same files
on both runners. The input is a glob of several files (one worker reads one
file), e.g. a 1M-row file cut in four with `split -n l/4 -d`:

    python benchmarks/dask_throughput.py --input '/tmp/featnet_bench/split4/part_*.tsv' --rows 1000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

from pipelines import preprocess
from pipelines.dask_cluster import local_cluster


def timed_run(input_pattern: str, runner_args: list[str]) -> float:
    """Seconds of one preprocessing of the Criteo-format `input_pattern` on the runner `runner_args` name."""
    output = tempfile.mkdtemp()
    shutil.rmtree(output)
    start = time.perf_counter()
    preprocess.preprocess(preprocess.PreprocessOptions(output, "criteo", input=[input_pattern]), runner_args)
    seconds = time.perf_counter() - start
    shutil.rmtree(output)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="a glob of Criteo-format files")
    parser.add_argument("--rows", type=int, required=True, help="the rows in all of them")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    direct = timed_run(args.input, ["--runner", "DirectRunner"])
    print(f"DirectRunner: {direct:.1f} s = {args.rows / direct:,.0f} rows/s", flush=True)
    with local_cluster(workers=args.workers) as address:
        on_dask = timed_run(args.input, ["--runner", "DaskRunner", "--dask_client_address", address])
    print(
        f"DaskRunner, {args.workers} workers x 1 thread: {on_dask:.1f} s = {args.rows / on_dask:,.0f} rows/s "
        f"({direct / on_dask:.2f}x the DirectRunner)",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
