"""Every script in benchmarks/ is code too: it answers --help, in a fresh process, with its usage."""

from __future__ import annotations

import concurrent.futures
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.sh"))


def help_of(script: pathlib.Path) -> subprocess.CompletedProcess:
    command = ["bash", str(script)] if script.suffix == ".sh" else [sys.executable, str(script)]
    return subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=180, cwd=ROOT)


def test_every_benchmark_script_answers_help():
    assert len(SCRIPTS) >= 10
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = dict(zip(SCRIPTS, pool.map(help_of, SCRIPTS)))
    failed = {
        script.name: (answer.returncode, answer.stderr[-500:])
        for script, answer in answers.items()
        if answer.returncode != 0 or "usage" not in answer.stdout.lower()
    }
    assert failed == {}
