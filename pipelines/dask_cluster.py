"""A Dask cluster on this machine, started as README's "Scaling out" starts one.

`local_cluster` runs ``dask scheduler`` and `workers` ``dask worker``
processes (one thread each) on 127.0.0.1, waits until every worker has
joined, yields the scheduler's address for ``--dask_client_address``, and
stops them all. The cluster test and `benchmarks/dask_throughput.py` use it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from typing import Iterator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_cluster(workers: int = 2, timeout: float = 120) -> Iterator[str]:
    """``dask scheduler`` and `workers` ``dask worker`` processes on
    127.0.0.1; yields the scheduler's ``HOST:PORT``."""
    from dask.distributed import Client

    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    port = free_port()
    address = f"127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet)
    ]
    processes += [
        subprocess.Popen([dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"], **quiet)
        for _ in range(workers)
    ]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=timeout)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
