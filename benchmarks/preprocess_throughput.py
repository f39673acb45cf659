"""Rows per second and peak memory of `pipelines.preprocess`, beside the floor.

For each row count, synthesizes that many Criteo-format rows (once; reused
when the file exists), then in the same run times (1) a plain single-process
Python pass that only reads the file and assigns every row its hash split
(the floor), and (2) `pipelines.preprocess` on the DirectRunner, once per
checkout given (``--variant LABEL@DIR``; the working tree by default), each in
a fresh process that reports the pipeline's wall time (imports excluded) and
its peak resident memory. One line per measurement, with the ratio to the
floor and to the first variant.

    python benchmarks/preprocess_throughput.py --rows 1000000,4000000 --work_dir /tmp/featnet_bench \\
        --variant before@/tmp/before --variant after@.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import time

from harness import parse_variant, run_timed_program  # benchmarks/, on the path of a script run from it

from pipelines import synthesize
from pipelines.splits import assign_split, split_thresholds


def plain_pass(path: str) -> collections.Counter:
    thresholds = split_thresholds([8, 1, 1])
    counts: collections.Counter = collections.Counter()
    with open(path, "rb") as stream:
        for line in stream:
            counts[assign_split(line.rstrip(b"\r\n"), 0, thresholds)] += 1
    return counts


def ensure_input(rows: int, work_dir: str) -> str:
    raw = os.path.join(work_dir, f"criteo_{rows}.tsv")
    if not os.path.exists(raw):
        start = time.perf_counter()
        synthesize.synthesize_file(raw, rows)
        print(f"synthesize {rows:,} rows: {time.perf_counter() - start:.1f} s", flush=True)
    return raw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000", help="comma-separated row counts")
    parser.add_argument("--work_dir", default="/tmp/featnet_bench")
    parser.add_argument("--variant", action="append", help="LABEL@DIR: a checkout to time (repeatable)")
    args, beam_args = parser.parse_known_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    variants = [parse_variant(text) for text in args.variant or ["current"]]
    for rows in (int(value) for value in args.rows.split(",")):
        raw = ensure_input(rows, args.work_dir)
        start = time.perf_counter()
        counts = plain_pass(raw)
        floor = sum(counts.values()) / (time.perf_counter() - start)
        print(f"[{rows:,} rows] plain Python read+split (the floor): {floor:,.0f} rows/s", flush=True)
        reference = None
        for label, checkout in variants:
            output = os.path.join(args.work_dir, f"prep_{label}")
            shutil.rmtree(output, ignore_errors=True)
            argv_child = ["--input", raw, "--format", "criteo", "--output_dir", output, "--runner=DirectRunner"]
            result = run_timed_program(checkout, "preprocess", argv_child + beam_args)
            shutil.rmtree(output, ignore_errors=True)
            rate = rows / result["seconds"]
            reference = reference or rate
            print(
                f"[{rows:,} rows] pipelines.preprocess {label} ({checkout or 'this checkout'}): "
                f"{result['seconds']:.1f} s = "
                f"{rate:,.0f} rows/s, {rate / floor:.1%} of the floor, {rate / reference:.2f}x the first; "
                f"peak RSS {result['peak_rss_mb']:,.0f} MB ({result['rss_after_imports_mb']:,.0f} MB after imports)",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
