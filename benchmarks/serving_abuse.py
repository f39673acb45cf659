"""Good clients beside abusive ones: what abuse costs the good requests and the server's memory.

Serves a copy of an export base with `serving.server`, then runs `serving.loadtest` three times on it,
one after the other: a clean run (N good gRPC clients at batch 1 and a new version every S
seconds), the same with A abusive clients sending every case of `serving.abuse` in rotation,
and the clean run again.
The server's RSS is sampled every 20 ms through both. One line per run.

    python benchmarks/serving_abuse.py --export_base demo_output/run/export \
        --examples 'demo_output/data/test/*.tfrecord.gz' --seconds 60 --clients 8 --abusive_clients 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

from serving.loadtest import read_examples, run_load
from serving.local import LocalServer
from tfbase.versions import list_versions


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


class PeakMemory:
    """The highest RSS of process `pid` while in the `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def __enter__(self) -> "PeakMemory":
        self.start = rss_mb(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_base", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--abusive_clients", type=int, default=4)
    parser.add_argument("--new_version_every", type=float, default=10.0)
    parser.add_argument(
        "--server_flags",
        default="--rest_api_idle_timeout_seconds 5 --rest_api_timeout_in_ms 5000",
        help="more flags for the server (the default shortens the timeouts the slow cases wait out)",
    )
    args = parser.parse_args(argv)
    examples = read_examples(args.examples, limit=20_000)
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        base = os.path.join(scratch, "featnet")
        newest = list_versions(args.export_base)[-1]
        shutil.copytree(os.path.join(args.export_base, str(newest)), os.path.join(base, str(newest)))
        with LocalServer(base, "featnet", *args.server_flags.split()) as server:
            # clean again at the end: what serving new versions alone does to RSS over the runs
            for label, abusive in (("clean", 0), ("abused", args.abusive_clients), ("clean again", 0)):
                with PeakMemory(server.process.pid) as memory:
                    result = run_load(
                        server.target,
                        "featnet",
                        examples,
                        args.clients,
                        args.seconds,
                        batch_size=1,
                        new_version_every=args.new_version_every,
                        model_base_path=base,
                        metrics_target=server.rest_target,
                        abusive_clients=abusive,
                        rest_target=server.rest_target,
                    )
                report = result.get("abusive", {})
                print(
                    f"{label}: {args.clients} good clients + {abusive} abusive, a new version every "
                    f"{args.new_version_every:g} s, {result['seconds']:.0f} s: {result['failed_good_requests']} of "
                    f"{result['requests'] + result['failed_good_requests']} good requests failed, "
                    f"{result['qps']:,.0f} QPS, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms; "
                    f"server RSS {memory.start:.0f} MB at the start, peak {memory.peak:.0f} MB; versions answered "
                    f"{result['versions_answered']}; metrics match {result['server_metrics']['match']}"
                    + (
                        f"; abusive requests {report['requests']}, answered as they must be {report['as_expected']}"
                        if abusive
                        else ""
                    ),
                    flush=True,
                )
                for problem in report.get("unexpected", []):
                    print(f"  unexpected: {problem}", flush=True)
                failed |= bool(result["failed_good_requests"] or report.get("unexpected"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
