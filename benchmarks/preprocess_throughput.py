"""Rows per second of `pipelines.preprocess` on the DirectRunner, beside the floor.

Synthesizes N Criteo-format rows (once; reused when the file exists), then in
the same run times (1) a plain single-process Python pass that only reads the
file and assigns every row its split, and (2) the full preprocessing
pipeline on the DirectRunner. One line per measurement.

    python benchmarks/preprocess_throughput.py --rows 1000000 --work_dir /tmp/featnet_bench
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import time

from pipelines import preprocess, synthesize
from pipelines.splits import assign_split, split_thresholds


def plain_pass(path: str) -> collections.Counter:
    thresholds = split_thresholds([8, 1, 1])
    counts: collections.Counter = collections.Counter()
    with open(path, "rb") as stream:
        for line in stream:
            counts[assign_split(line.rstrip(b"\r\n"), 0, thresholds)] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work_dir", default="/tmp/featnet_bench")
    args, beam_args = parser.parse_known_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    raw = os.path.join(args.work_dir, f"criteo_{args.rows}.tsv")
    if not os.path.exists(raw):
        start = time.perf_counter()
        synthesize.main(["--rows", str(args.rows), "--output", raw])
        print(f"synthesize: {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    counts = plain_pass(raw)
    seconds = time.perf_counter() - start
    print(
        f"plain Python read+split: {sum(counts.values())} rows in {seconds:.1f} s = "
        f"{sum(counts.values()) / seconds:,.0f} rows/s",
        flush=True,
    )

    output = os.path.join(args.work_dir, "prep")
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    preprocess.run(["--input", raw, "--format", "criteo", "--output_dir", output, "--runner=DirectRunner"] + beam_args)
    seconds = time.perf_counter() - start
    print(
        f"pipelines.preprocess (DirectRunner {' '.join(beam_args)}): {args.rows} rows in {seconds:.1f} s = "
        f"{args.rows / seconds:,.0f} rows/s",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
