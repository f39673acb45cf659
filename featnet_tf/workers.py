"""Training on several processes: TF_CONFIG, the chief, and the timeouts.

`python -m featnet_tf.train --strategy multi_worker` runs on every worker
with the same flags and a TF_CONFIG naming the cluster and its own task::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}'

Every worker trains (`MultiWorkerMirroredStrategy`: the global batch is
split across workers, gradients are all-reduced); only the chief (the
``chief`` task, else ``worker`` 0) writes the run directory, which all
workers must see (a shared filesystem): config, best checkpoint, history,
metrics and the export. Keras' own callbacks send the other workers' files to
``workertemp_<i>`` directories they delete. TensorFlow's coordination service
(run by the chief) gets stated timeouts, so a dead worker fails the run
instead of hanging it.
"""

from __future__ import annotations

import json
import os
import socket

import tensorflow as tf

from tfbase import tensorflow_internals

WORKER_TIMEOUT_SECONDS = 30  # a worker silent this long (killed, crashed, cut off) fails the run
CLUSTER_START_TIMEOUT_SECONDS = 600  # how long the workers wait for each other to start
FINISH_TIMEOUT_SECONDS = 3600  # how long the other workers wait for the chief's evaluation and export


def configure(worker_timeout: int = WORKER_TIMEOUT_SECONDS) -> None:
    """Checks TF_CONFIG and sets up TensorFlow's coordination service as
    `MultiWorkerMirroredStrategy` would, with stated timeouts: a worker that
    stops sending heartbeats for `worker_timeout` seconds fails every other
    worker's collectives (and so the run, with an error naming it), and
    workers that have not all started within `CLUSTER_START_TIMEOUT_SECONDS`
    fail instead of waiting forever. Must run before TensorFlow initialises."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "--strategy multi_worker needs TF_CONFIG naming the cluster and this task, e.g. "
            '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        tasks = cluster[task["type"]]
        if not 0 <= int(task["index"]) < len(tasks):
            raise IndexError(f"task index {task['index']} is not one of the {len(tasks)} {task['type']} tasks")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise ValueError(f"TF_CONFIG is not a valid cluster and task ({problem}): {raw}") from None
    cluster_spec = tf.train.ClusterSpec(cluster)
    jobs = [job for job in ("chief", "worker") if job in cluster_spec.jobs]
    tensorflow_internals.configure_coordination_service(
        cluster_spec, jobs, worker_timeout * 1000, CLUSTER_START_TIMEOUT_SECONDS * 1000
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run: always, except on the workers of
    a `MultiWorkerMirroredStrategy` other than the chief (the ``chief`` task of
    TF_CONFIG, or ``worker`` 0 when there is none). Keras' own callbacks
    (`BackupAndRestore`, `ModelCheckpoint`, `TensorBoard`) send the other
    workers' files to temporary ``workertemp_<i>`` directories they delete."""
    return strategy.extended.should_checkpoint


def worker_name(strategy: tf.distribute.Strategy) -> str:
    """``worker 1 of 2`` (``, chief`` added for the chief) under a multi-worker
    strategy; empty otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return ""
    workers = sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values())
    chief = ", chief" if is_chief(strategy) else ""
    return f"{resolver.task_type} {resolver.task_id} of {workers}{chief}"


def wait_for_all(barrier: str, timeout_seconds: int = FINISH_TIMEOUT_SECONDS) -> None:
    """Blocks until every task of the multi-worker cluster reaches `barrier`
    (TensorFlow's coordination service; `MultiWorkerMirroredStrategy` runs
    one). The workers wait there for the chief to evaluate and export: a
    worker that simply exited would be reported to the chief as crashed (it
    stops sending heartbeats). Raises `tf.errors.OpError` when a task fails
    or the timeout passes."""
    tensorflow_internals.wait_at_barrier(barrier, timeout_seconds * 1000)


def failure_summary(error: tf.errors.OpError) -> str:
    """What an aborted collective says went wrong, in one line that names the
    task at fault where the message does: the dead task (``... tasks are
    unhealthy (stopped sending heartbeats): /job:worker/replica:0/task:1``),
    the peer whose connection broke (``... from remote target
    /job:worker/replica:0/task:1 ...``), else the abort's reason."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "unhealthy" in line:
            return " ".join(lines[index : index + 2])
    for marker in ("from remote target", "Collective ops is aborted by"):
        for line in lines:
            if marker in line:
                return line
    return lines[0] if lines else type(error).__name__


def loopback_tf_configs(count: int) -> list[str]:
    """TF_CONFIG of each of `count` workers on free 127.0.0.1 ports: a
    multi-worker cluster on one machine, for tests and benchmarks."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]}
    for sock in sockets:
        sock.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(count)]
