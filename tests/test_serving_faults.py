"""serving under faults: a malformed request fails alone, a server with no version waits as told."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest

from serving.batching import BatchScheduler


class RowServable:
    """Doubles every row; a row ``-1`` is malformed and fails the whole call it is in, as a bad Example does."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls.append(len(inputs["x"]))
        if np.any(inputs["x"] == -1):
            raise ValueError("row -1 is not an example")
        return {"y": inputs["x"] * 2}


def send_together(scheduler: BatchScheduler, servable: RowServable, rows: list[int]) -> list:
    """Each value as a one-row request, all sent at once; each request's result or its error."""
    with concurrent.futures.ThreadPoolExecutor(len(rows)) as pool:
        futures = [
            pool.submit(scheduler.run, servable, "serving_default", {"x": np.array([value])}, 1) for value in rows
        ]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(int(future.result()["y"][0]))
            except ValueError as error:
                outcomes.append(str(error))
    return outcomes


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows():
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1),
        RowServable(),
    )
    try:
        assert send_together(scheduler, servable, [1, 2, 3, 4]) == [2, 4, 6, 8]
    finally:
        scheduler.stop()
    assert max(servable.calls) > 1, f"no request was merged: {servable.calls}"


def test_a_malformed_request_fails_alone_not_the_requests_merged_with_it():
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1),
        RowServable(),
    )
    try:
        outcomes = send_together(scheduler, servable, [1, -1, 3, 4])
    finally:
        scheduler.stop()
    assert outcomes == [2, "row -1 is not an example", 6, 8]
    assert max(servable.calls) > 1, f"the requests were never merged, so nothing was tested: {servable.calls}"


@pytest.mark.parametrize("rows", [[-1], [-1, -1]])
def test_requests_that_are_all_malformed_all_fail(rows):
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=100_000, num_batch_threads=1),
        RowServable(),
    )
    try:
        assert send_together(scheduler, servable, rows) == ["row -1 is not an example"] * len(rows)
    finally:
        scheduler.stop()


def test_a_server_with_no_version_on_disk_waits_as_long_as_its_flag_says(tmp_path, capsys):
    import time

    from serving import server

    start = time.monotonic()
    code = server.main(
        ["--model_name", "m", "--model_base_path", str(tmp_path), "--port", "0", "--version_wait_seconds", "1"]
    )
    waited = time.monotonic() - start
    assert code == 2 and 1.0 <= waited < 20, waited
    assert f"No version of m under {tmp_path} loaded within 1.0 s (--version_wait_seconds" in capsys.readouterr().err
