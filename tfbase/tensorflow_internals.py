"""The private TensorFlow APIs the code uses, gathered here and nowhere else.

Each has no public equivalent in TensorFlow 2.21. `tests/test_framework_internals.py`
calls every one of them against the installed TensorFlow, so an upgrade that
removes or moves one fails a test that names it.

* `make_callable`: `Session::MakeCallable` from `CallableOptions` (the public
  `Session.make_callable` with feeds falls back on `Session.run`, which
  rebuilds its feed and fetch handlers in Python on every call);
* `deprecations_silenced`: the v1 SavedModel loader without its deprecation
  warning (it is TF Serving's own path, not a mistake);
* `is_registered_op`: whether stock TensorFlow registers an op (the
  servability check);
* `configure_coordination_service`, `wait_at_barrier`: TensorFlow's
  coordination service, as `MultiWorkerMirroredStrategy` itself uses it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2


def make_callable(session: tf.compat.v1.Session, options: config_pb2.CallableOptions) -> Callable:
    """A callable running `session` with `options`' feeds and fetches, positionally."""
    return session._make_callable_from_options(options)


@contextlib.contextmanager
def deprecations_silenced() -> Iterator[None]:
    from tensorflow.python.util import deprecation

    with deprecation.silence():
        yield


def is_registered_op(op: str) -> bool:
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op) is not None


def configure_coordination_service(
    cluster_spec: tf.train.ClusterSpec, jobs: list[str], heartbeat_timeout_ms: int, register_timeout_ms: int
) -> None:
    """Starts TensorFlow's coordination service for `jobs` of `cluster_spec`
    (a worker silent for `heartbeat_timeout_ms` is reported dead)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute.multi_worker_util import coordination_leader
    from tensorflow.python.eager import context

    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=coordination_leader(cluster_spec),
        heartbeat_timeout_in_ms=heartbeat_timeout_ms,
        cluster_register_timeout_in_ms=register_timeout_ms,
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job)) for job in jobs
        ],
    )


def wait_at_barrier(barrier: str, timeout_ms: int) -> None:
    """Blocks until every task of the coordination service reaches `barrier`."""
    from tensorflow.python.eager import context

    context.context().wait_at_barrier(barrier, timeout_ms)
