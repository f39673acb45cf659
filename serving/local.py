"""Run `serving.server` in a subprocess, for the demo, benchmarks and tests."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalServer:
    """``with LocalServer(base_path, "featnet") as server: server.target``

    Starts `python -m serving.server` on a free loopback port, waits until a
    version is served, and stops it with SIGTERM (a graceful shutdown) on exit.
    `output` holds the server's log lines.
    """

    def __init__(
        self,
        base_path: str,
        model_name: str,
        *flags: str,
        startup_seconds: float = 120.0,
        source: str | None = None,
        rest_api: bool = True,
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "serving.server",
            "--model_name",
            model_name,
            "--model_base_path",
            base_path,
            "--port",
            "0",
            *(["--rest_api_port", str(free_port())] if rest_api else []),
            *flags,
        ]
        self.startup_seconds = startup_seconds
        self.source = source  # another checkout whose `serving` runs (a benchmark of old against new)
        self.output: list[str] = []
        self.target = ""
        self.rest_target = ""  # HOST:PORT of the REST API and metrics
        self.returncode: int | None = None

    def __enter__(self) -> "LocalServer":
        root = self.source or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root, env=environment
        )
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + self.startup_seconds
        while not self.target:
            if time.time() > deadline or self.process.poll() is not None:
                self.process.kill()
                raise RuntimeError("serving.server did not start:\n" + "".join(self.output[-40:]))
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if "[server] REST API on " in line:
                self.rest_target = line.split("REST API on ", 1)[1].split()[0]
            if "[server] serving model" in line:
                self.target = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
