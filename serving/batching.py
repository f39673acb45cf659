"""Server-side batching of concurrent requests, adaptive to the load.

The model runs at most `num_batch_threads` calls at once (its slots). A
request that finds the model idle and nothing queued runs at once, in the
caller's own thread: a lone request pays no batching window and no thread
hop. Under concurrency requests queue; a batch thread takes the queued
requests for the same servable and signature whose inputs have the same
keys, dtypes and per-row shapes and concatenates them along the batch axis
into one call of up to `max_batch_size` rows. It starts that call when the
model is idle, or, while another call runs, only with a full batch (so small
requests merge into few large calls and large ones use every slot); and
while another call runs it waits at most `batch_timeout_micros` for others
to join. Each request gets back its own rows of every output. When a
merged call fails, its requests are run again one by one, so that only a
malformed request fails and the well-formed ones merged with it are
answered.

Backpressure, as TF Serving's `max_enqueued_batches`: the queue holds at most
`max_enqueued_batches * max_batch_size` rows, and a request that would go past
that is refused at once with `QueueFull` (the server answers UNAVAILABLE, which
clients retry with backoff) instead of waiting behind an unbounded backlog. A
request whose caller has gone (deadline passed, call cancelled) is dropped when
it reaches the head of the queue, never computed.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

import numpy as np


class QueueFull(Exception):
    """The batch queue holds as many rows as it may; try again later."""


class CallerGone(Exception):
    """The request's caller stopped waiting (deadline passed or cancelled) before it was run."""


class _Answer:
    """One request's answer, handed from the batch thread that computed it to
    the request's own thread: a lock held until the answer is set (the
    cheapest wake-up CPython has; a `concurrent.futures.Future` takes a
    condition and its lock for each step)."""

    __slots__ = ("_ready", "_value", "_error")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._value = value
        self._ready.release()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._ready.release()

    def result(self) -> Any:
        """Waits for the answer (one waiter: the request's thread)."""
        self._ready.acquire()
        if self._error is not None:
            raise self._error
        return self._value


class _Task:
    __slots__ = ("servable", "signature", "inputs", "rows", "future", "key", "alive")

    def __init__(
        self, servable, signature: str, inputs: dict[str, np.ndarray], rows: int, alive: Callable[[], bool]
    ) -> None:
        self.servable = servable
        self.signature = signature
        self.inputs = inputs
        self.rows = rows
        self.alive = alive
        self.future = _Answer()
        shapes = tuple(sorted((name, value.dtype.str, value.shape[1:]) for name, value in inputs.items()))
        self.key = (id(servable), signature, shapes)


class BatchScheduler:
    """Runs `servable.run(signature, inputs)` for merged batches of requests.

    Args:
        max_batch_size: most rows in one merged call.
        batch_timeout_micros: longest wait for a batch to fill, after its
            first request was taken, while another call is running.
        num_batch_threads: model calls that may run at once (requests run
            in their caller's thread and merged batches together).
        max_enqueued_batches: the queue holds at most this many full
            batches' worth of rows; more is refused with `QueueFull`.
        on_call: called with the servable and the rows of every model call
            (the server's batch-size metric).
    """

    def __init__(
        self,
        max_batch_size: int = 256,
        batch_timeout_micros: int = 2000,
        num_batch_threads: int = 2,
        max_enqueued_batches: int = 16,
        on_call: Callable[[Any, int], None] | None = None,
    ) -> None:
        if max_batch_size <= 0:
            raise ValueError(f"`max_batch_size` must be positive. Received: {max_batch_size}")
        if max_enqueued_batches <= 0:
            raise ValueError(f"`max_enqueued_batches` must be positive. Received: {max_enqueued_batches}")
        self.max_batch_size = max_batch_size
        self.max_queued_rows = max_enqueued_batches * max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.slots = num_batch_threads
        self.dropped = 0  # requests whose caller had gone before they were run
        self.on_call = on_call
        self._running = 0  # model calls in progress, at most `slots`
        self._queued_rows = 0
        self._queue: collections.deque[_Task] = collections.deque()
        self._condition = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True) for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(
        self,
        servable,
        signature: str,
        inputs: dict[str, np.ndarray],
        rows: int,
        alive: Callable[[], bool] = lambda: True,
    ) -> dict[str, np.ndarray]:
        """Blocks until the request's rows were computed, possibly with
        others. `alive` says whether the caller still waits for them; `QueueFull`
        when the queue is full, `CallerGone` when the caller left first."""
        task = _Task(servable, signature, inputs, rows, alive)
        with self._condition:
            run_now = not self._queue and self._running == 0
            if run_now:  # the fast path: the model is idle and nothing waits
                self._running += 1
            else:
                if self._queued_rows + rows > self.max_queued_rows:
                    raise QueueFull(
                        f"the batch queue is full ({self._queued_rows} rows waiting, at most {self.max_queued_rows}: "
                        "--max_enqueued_batches x --max_batch_size); retry later"
                    )
                self._queue.append(task)
                self._queued_rows += rows
                self._condition.notify()
        if run_now:
            try:
                return self._run([task])[0]
            finally:
                self._release_slot()
        return task.future.result()

    def _release_slot(self) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Runs what is queued, then ends the batch threads and waits for
        them, so that no TensorFlow call is still running when the process
        exits (a daemon thread inside one at interpreter exit aborts it)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _take_batch(self) -> list[_Task]:
        """The next merged batch, holding a model slot; [] once stopped and
        drained. Waits for company only while another call runs."""
        with self._condition:
            first = None
            while first is None:
                while not self._stopped and not (self._queue and self._may_start()):
                    self._condition.wait()
                if not self._queue:  # stopped, and nothing left to run
                    return []
                if not self._may_start():  # stopping: wait for a slot all the same
                    self._condition.wait()
                    continue
                first = self._pop_live()
            self._running += 1
            batch, rows = [first], first.rows
            deadline = time.monotonic() + self.timeout
            while rows < self.max_batch_size:
                match = next(
                    (task for task in self._queue if task.key == first.key and rows + task.rows <= self.max_batch_size),
                    None,
                )
                if match is not None:
                    self._queue.remove(match)
                    self._queued_rows -= match.rows
                    if not match.alive():
                        self._drop(match)
                        continue
                    batch.append(match)
                    rows += match.rows
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._running <= 1:  # no other call runs: nobody else is coming soon
                    break
                self._condition.wait(remaining)
            return batch

    def _may_start(self) -> bool:
        """Whether a batch thread may start a call now: when the model is
        idle, or when a full batch waits and a slot is free. Small requests
        under load therefore wait for the running call and merge into one
        larger call (fewer calls, each paying the per-call cost once), while
        large ones keep every slot busy. Holds the condition's lock."""
        if self._running == 0:
            return True
        return self._running < self.slots and self._queued_rows >= self.max_batch_size

    def _pop_live(self) -> _Task | None:
        """The first queued task whose caller still waits (the others are
        dropped); None when the queue held none. Holds the condition's lock."""
        while self._queue:
            task = self._queue.popleft()
            self._queued_rows -= task.rows
            if task.alive():
                return task
            self._drop(task)
        return None

    def _drop(self, task: _Task) -> None:
        self.dropped += 1
        task.future.set_exception(CallerGone("the caller stopped waiting before the request was run"))

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return
            try:
                outputs = self._run(batch)
            except Exception as error:
                if len(batch) == 1:
                    batch[0].future.set_exception(error)
                else:
                    self._run_one_by_one(batch)
            else:
                for task, result in zip(batch, outputs):
                    task.future.set_result(result)
            finally:
                self._release_slot()

    def _run_one_by_one(self, batch: list[_Task]) -> None:
        """A merged call failed: one malformed request must not fail the
        requests it was merged with, so each runs alone and only the one at
        fault gets its error."""
        for task in batch:
            try:
                task.future.set_result(self._run([task])[0])
            except Exception as error:
                task.future.set_exception(error)

    def _run(self, batch: list[_Task]) -> list[dict[str, Any]]:
        first = batch[0]
        if self.on_call is not None:
            self.on_call(first.servable, sum(task.rows for task in batch))
        if len(batch) == 1:
            return [first.servable.run(first.signature, first.inputs)]
        merged = {name: np.concatenate([task.inputs[name] for task in batch]) for name in first.inputs}
        outputs = first.servable.run(first.signature, merged)
        total = sum(task.rows for task in batch)
        results, start = [], 0
        for task in batch:
            end = start + task.rows
            results.append(
                {
                    name: value[start:end] if value.ndim and value.shape[0] == total else value
                    for name, value in outputs.items()
                }
            )
            start = end
        return results
