"""What the benchmark scripts share: checkouts side by side, and a program timed in a fresh process.

A claim is a ratio against a reference measured in the same run, so most
scripts take ``--variant LABEL@DIR``: the same measurement on another checkout
of this repository (``git archive <commit> | tar -x -C /tmp/before``), one
after the other. `checkout_environment` puts that checkout's packages first on
the path of a child process; `run_timed_program` runs a pipeline program there
and reads back its wall time (imports excluded) and peak memory.

Not a benchmark itself: ``python benchmarks/harness.py --help`` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_variant(text: str) -> tuple[str, str | None]:
    """``LABEL[@DIR]`` → (label, the checkout's absolute directory, or None for this one)."""
    label, _, directory = text.partition("@")
    return label, os.path.abspath(directory) if directory else None


def checkout_environment(checkout: str | None, **variables: str) -> dict[str, str]:
    """This process's environment with `checkout`'s packages first on PYTHONPATH (when given) and `variables`."""
    environment = dict(os.environ, **variables)
    if checkout:
        environment["PYTHONPATH"] = os.pathsep.join([checkout, environment.get("PYTHONPATH", "")])
    return environment


_TIMED_PROGRAM = """
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


def run_timed_program(checkout: str | None, module: str, argv: list[str]) -> dict[str, float]:
    """Runs ``pipelines.<module>`` with `argv` in a fresh interpreter whose imports resolve in
    `checkout` (this one when None); its ``seconds`` (imports excluded), ``rss_after_imports_mb``
    and ``peak_rss_mb``. The program is measured in its own process, as a user runs it."""
    directory = checkout or REPO
    completed = subprocess.run(
        [sys.executable, "-c", _TIMED_PROGRAM.format(module=module), *argv],
        cwd=directory,
        env=checkout_environment(directory),
        capture_output=True,
        text=True,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"the run in {directory} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit("benchmarks/harness.py is the scripts' shared helper, not a benchmark")
