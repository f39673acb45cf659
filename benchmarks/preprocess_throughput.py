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
import json
import os
import shutil
import subprocess
import sys
import time

from pipelines import synthesize
from pipelines.splits import assign_split, split_thresholds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_code(module: str) -> str:
    """Python that runs ``pipelines.<module>.run(argv)`` in a fresh interpreter
    (in the checkout under test: its pipelines, this venv) and prints its
    wall time, imports excluded, and its peak resident memory."""
    return f"""
import json, sys, time
from pipelines import {module}
def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would carry the parent's across exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
before = peak_mb()
start = time.perf_counter()
{module}.run(sys.argv[1:])
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({{"seconds": seconds, "rss_after_imports_mb": before, "peak_rss_mb": peak_mb()}}))
"""


def plain_pass(path: str) -> collections.Counter:
    thresholds = split_thresholds([8, 1, 1])
    counts: collections.Counter = collections.Counter()
    with open(path, "rb") as stream:
        for line in stream:
            counts[assign_split(line.rstrip(b"\r\n"), 0, thresholds)] += 1
    return counts


def run_child(checkout: str, code: str, argv: list[str]) -> dict:
    """Runs `code` with `argv` in a fresh interpreter whose imports resolve in `checkout`."""
    environment = dict(os.environ, PYTHONPATH=checkout)
    completed = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=checkout, env=environment, capture_output=True, text=True
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"the run in {checkout} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")


def parse_variants(values: list[str] | None) -> list[tuple[str, str]]:
    variants = []
    for value in values or ["current@."]:
        label, _, directory = value.partition("@")
        variants.append((label, os.path.abspath(directory or REPO)))
    return variants


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
    variants = parse_variants(args.variant)
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
            result = run_child(checkout, child_code("preprocess"), argv_child + beam_args)
            shutil.rmtree(output, ignore_errors=True)
            rate = rows / result["seconds"]
            reference = reference or rate
            print(
                f"[{rows:,} rows] pipelines.preprocess {label} ({checkout}): {result['seconds']:.1f} s = "
                f"{rate:,.0f} rows/s, {rate / floor:.1%} of the floor, {rate / reference:.2f}x the first; "
                f"peak RSS {result['peak_rss_mb']:,.0f} MB ({result['rss_after_imports_mb']:,.0f} MB after imports)",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
