"""serving under faults: a malformed request fails alone; a full queue, too many calls and callers that
left are answered at once, never computed; versions served as they are on disk; a client's one deadline."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time

import numpy as np
import pytest

from serving.batching import BatchScheduler, CallerGone, QueueFull
from tfbase.versions import list_versions


class RowServable:
    """Doubles every row; a row ``-1`` is malformed and fails the whole call it is in, as a bad Example does.
    Each call takes `seconds` (a busy model, so that requests sent together queue behind the first)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []
        self.lock = threading.Lock()
        self.seconds = seconds

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls.append(len(inputs["x"]))
            self.threads.append(threading.get_ident())
        time.sleep(self.seconds)
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


def test_a_lone_request_runs_at_once_in_its_callers_thread_without_a_batching_window():
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=500_000, num_batch_threads=1),
        RowServable(),
    )
    try:
        start = time.monotonic()
        assert int(scheduler.run(servable, "serving_default", {"x": np.array([5])}, 1)["y"][0]) == 10
        elapsed = time.monotonic() - start
    finally:
        scheduler.stop()
    assert elapsed < 0.25, f"the lone request waited {elapsed:.3f} s (the window is 0.5 s)"
    assert servable.threads == [threading.get_ident()], "the request was handed to another thread"


def test_requests_arriving_while_the_model_is_busy_are_merged_and_each_gets_its_own_rows():
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1),
        RowServable(seconds=0.2),
    )
    try:
        assert send_together(scheduler, servable, [1, 2, 3, 4]) == [2, 4, 6, 8]
    finally:
        scheduler.stop()
    assert max(servable.calls) > 1, f"no request was merged: {servable.calls}"


def test_a_malformed_request_fails_alone_not_the_requests_merged_with_it():
    scheduler, servable = (
        BatchScheduler(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1),
        RowServable(seconds=0.2),
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            busy = pool.submit(scheduler.run, servable, "serving_default", {"x": np.array([0])}, 1)
            deadline = time.monotonic() + 10
            while not servable.calls and time.monotonic() < deadline:  # the model is busy: the next four queue
                time.sleep(0.005)
            outcomes = send_together(scheduler, servable, [1, -1, 3, 4])
            busy.result()
    finally:
        scheduler.stop()
    assert outcomes == [2, "row -1 is not an example", 6, 8]
    assert 4 in servable.calls, f"the four requests were never merged, so nothing was tested: {servable.calls}"


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

    import tensorflow as tf

    from serving import server

    tf.constant(0)  # TensorFlow already runs in this process, as when main() is called from Python
    start = time.monotonic()
    code = server.main(
        ["--model_name", "m", "--model_base_path", str(tmp_path), "--port", "0", "--version_wait_seconds", "1"]
    )
    waited = time.monotonic() - start
    assert code == 2 and 1.0 <= waited < 20, waited
    assert f"No version of m under {tmp_path} loaded within 1.0 s (--version_wait_seconds" in capsys.readouterr().err


# === Backpressure: a bounded queue, work whose caller left is never computed ===


class BlockingServable(RowServable):
    """Like RowServable, but each call waits until `release` is set: a model busy with one batch."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        self.release.wait(30)
        return super().run(signature, inputs)


def test_a_full_queue_refuses_at_once_and_callers_that_left_are_never_computed():
    scheduler = BatchScheduler(max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=2)
    servable = BlockingServable()
    gone = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        busy = pool.submit(scheduler.run, servable, "s", {"x": np.array([1])}, 1)
        deadline = time.monotonic() + 10
        while scheduler._queued_rows and time.monotonic() < deadline:  # the batch thread took it and blocks
            time.sleep(0.01)
        abandoned = pool.submit(scheduler.run, servable, "s", {"x": np.array([2, 2])}, 2, lambda: not gone.is_set())
        waiting = pool.submit(scheduler.run, servable, "s", {"x": np.array([3, 3])}, 2)
        while scheduler._queued_rows < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(QueueFull, match="the batch queue is full"):
            scheduler.run(servable, "s", {"x": np.array([4])}, 1)  # 4 rows queued of at most 2 x 2
        gone.set()  # the caller of [2, 2] gives up (its deadline passes)
        servable.release.set()
        assert int(busy.result(10)["y"][0]) == 2 and list(waiting.result(10)["y"]) == [6, 6]
        with pytest.raises(CallerGone):
            abandoned.result(10)
    scheduler.stop()
    assert servable.calls == [1, 2] and scheduler.dropped == 1, servable.calls


def batch_of(dtype):
    """The `TensorInfo` of a signature input: a batch of scalars of `dtype`."""
    from tensorflow.core.framework import tensor_shape_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1)])
    return meta_graph_pb2.TensorInfo(dtype=dtype, tensor_shape=shape)


def test_sizes_are_checked_on_the_proto_before_anything_is_decoded():
    """A 13.5 MB request of 4.5M strings used to be decoded (+300 MB) before its batch size was refused."""
    import tracemalloc

    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from serving.server import RequestError, check_input

    huge = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    huge.tensor_shape.dim.add(size=4_500_000)
    huge.string_val.extend([b"abc"] * 4_500_000)
    lying = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto())
    lying.tensor_shape.dim.add(size=1)
    lying.string_val.extend([b"abc"] * 4_500_000)
    # 43 bytes that tf.make_ndarray would expand into 60 million strings (+0.9 GB; issue 29, case 1)
    widened = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"x"])
    widened.tensor_shape.dim.add(size=1)
    widened.tensor_shape.dim.add(size=60_000_000)
    with pytest.raises(RequestError, match="has type 9999 \\(no TensorFlow dtype\\), the signature expects DT_STRING"):
        check_input("examples", tensor_pb2.TensorProto(dtype=9999), batch_of(types_pb2.DT_STRING), max_rows=256)
    floats = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    floats.tensor_shape.dim.add(size=1)
    floats.tensor_shape.dim.add(size=60_000_000)
    tracemalloc.start()
    for proto, message in (  # each against a signature input of its own dtype
        (huge, "holds a batch of 4500000 rows"),
        (lying, "holds 4500000 strings but its declared shape \\[1\\] needs 1"),
        (widened, "holds 1 strings but its declared shape \\[1, 60000000\\] needs 60000000"),
        (floats, "holds 1 values but its declared shape \\[1, 60000000\\] needs 60000000"),
    ):
        with pytest.raises(RequestError, match=message) as error:
            check_input("examples", proto, batch_of(proto.dtype), max_rows=256)
        assert error.value.code.name == "INVALID_ARGUMENT"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000, f"refusing the requests took {peak / 1e6:.0f} MB"


class BusyServer:
    """A real gRPC PredictionService (`serving.server`'s servicer and scheduler) in front of a
    `BlockingServable`: the model is busy until the test releases it."""

    def __init__(self, max_concurrent_rpcs: int, max_enqueued_batches: int) -> None:
        import grpc
        from tensorflow.core.framework import types_pb2
        from tensorflow.core.protobuf import meta_graph_pb2
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        from serving.server import PredictionServicer

        self.model = BlockingServable()
        self.model.name, self.model.version = "m", 1
        signature = meta_graph_pb2.SignatureDef(
            inputs={"x": batch_of(types_pb2.DT_INT64)}, method_name="tensorflow/serving/predict"
        )
        self.model.signature_defs = {"serving_default": signature}
        self.scheduler = BatchScheduler(
            max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=max_enqueued_batches
        )
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(8), maximum_concurrent_rpcs=max_concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self, self.scheduler), self.server
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

    name = "m"  # what the servicer asks of a ModelManager: the name and the servable

    def servable(self, version=None):
        return self.model

    def send(self, value: int, timeout: float = 20.0):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([value], np.int64)))
        return self.stub.Predict.future(request, timeout=timeout)

    def wait_until(self, condition) -> None:
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert condition()

    def close(self) -> None:
        self.model.release.set()
        self.server.stop(0).wait()
        self.scheduler.stop()


def status(call) -> str:
    import grpc

    try:
        call.result()
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def test_grpc_answers_a_full_queue_unavailable_and_never_computes_an_expired_request():
    server = BusyServer(max_concurrent_rpcs=16, max_enqueued_batches=1)
    try:
        running = server.send(1)
        server.wait_until(server.model.entered.is_set)  # the model is busy with it
        expiring = server.send(5, timeout=0.5)  # queued; its deadline passes while it waits
        server.wait_until(lambda: server.scheduler._queued_rows == 1)
        assert status(server.send(3)) == "UNAVAILABLE", "the queue (1 row) is full"
        assert status(expiring) == "DEADLINE_EXCEEDED"
        server.model.release.set()
        assert status(running) == "OK"
        server.wait_until(lambda: server.scheduler._queued_rows == 0)
    finally:
        server.close()
    assert server.model.calls == [1] and server.scheduler.dropped == 1, "the expired request was computed"


def test_grpc_answers_calls_past_max_concurrent_rpcs_resource_exhausted():
    server = BusyServer(max_concurrent_rpcs=2, max_enqueued_batches=8)
    try:
        running = server.send(1)
        server.wait_until(server.model.entered.is_set)
        waiting = server.send(2)
        server.wait_until(lambda: server.scheduler._queued_rows == 1)  # two calls in progress
        assert status(server.send(3)) == "RESOURCE_EXHAUSTED"
        server.model.release.set()
        assert status(running) == status(waiting) == "OK"
    finally:
        server.close()


# === Versions: serve what is on disk, retry what changed, never reuse a number ===


def save_constant_model(path: str, value: float) -> None:
    """A one-signature SavedModel answering `value` for every row."""
    import tensorflow as tf

    module = tf.Module()
    module.value = tf.Variable(value)
    module.serve = tf.function(
        lambda x: {"y": tf.fill(tf.shape(x), module.value)}, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def constant_models(tmp_path_factory):
    """Two SavedModels answering 1.0 and 2.0, to copy into base paths."""
    root = tmp_path_factory.mktemp("constant_models")
    for value in (1, 2):
        save_constant_model(str(root / str(value)), float(value))
    return root


def answer(manager) -> tuple[int, float]:
    servable = manager.servable()
    return servable.version, float(servable.run("serving_default", {"x": np.zeros([1], np.float32)})["y"][0])


def test_a_version_copied_non_atomically_is_retried_once_complete(constant_models, tmp_path):
    import shutil

    from serving.servable import ModelManager

    base = tmp_path / "m"
    shutil.copytree(constant_models / "1", base / "1")
    manager = ModelManager("m", str(base))
    manager.poll()
    (base / "2").mkdir()  # `cp -r` caught half way: the graph is there, the variables are not yet
    shutil.copy(constant_models / "2" / "saved_model.pb", base / "2")
    manager.poll()
    assert manager.statuses[2].state == "END" and manager.statuses[2].error
    assert answer(manager) == (1, 1.0)
    manager.poll()  # unchanged files: not tried again
    assert manager.statuses[2].state == "END"
    shutil.copytree(constant_models / "2" / "variables", base / "2" / "variables")  # the copy completes
    manager.poll()
    assert answer(manager) == (2, 2.0) and manager.statuses[2].state == "AVAILABLE"


def test_deleting_the_served_version_falls_back_and_a_replaced_one_is_reloaded(constant_models, tmp_path):
    import shutil

    from serving.servable import ModelManager

    base = tmp_path / "m"
    shutil.copytree(constant_models / "1", base / "1")
    shutil.copytree(constant_models / "2", base / "2")
    manager = ModelManager("m", str(base))
    manager.poll()
    assert answer(manager) == (2, 2.0)
    shutil.rmtree(base / "2")  # the newest version is deleted: serve the next one on disk
    manager.poll()
    assert answer(manager) == (1, 1.0) and manager.statuses[2].state == "END"
    shutil.copytree(constant_models / "2", base / "3")
    manager.poll()
    assert answer(manager) == (3, 2.0)
    shutil.rmtree(base / "3")  # deleted and exported again under the same number, other weights
    time.sleep(0.01)  # a different mtime even on coarse clocks
    shutil.copytree(constant_models / "1", base / "3")
    manager.poll()
    assert answer(manager) == (3, 1.0), "the server kept serving the deleted model"
    shutil.rmtree(base / "1")
    shutil.rmtree(base / "3")
    manager.poll()
    assert manager.servable() is None, "nothing on disk, nothing served"


def test_an_export_never_reuses_the_number_of_a_deleted_version(constant_models, tmp_path):
    import shutil

    from featnet_tf import saved_model

    base = tmp_path / "export"

    def export() -> str:
        staged = base / f".tmp-{len(list(base.iterdir())) if base.exists() else 0}"
        shutil.copytree(constant_models / "1", staged)
        return saved_model.publish(saved_model.StagedExport(str(base), str(staged)))

    assert export().endswith("/1") and export().endswith("/2")
    shutil.rmtree(base / "2")
    assert export().endswith("/3"), "version 2 was deleted; a server may still hold it"
    assert list_versions(str(base)) == [1, 3]


# === The client: one deadline, jittered retries, long lists in chunks ===


def test_the_client_keeps_to_one_deadline_over_all_its_retries():
    import socket

    import grpc
    import tensorflow as tf

    from serving.client import PredictionClient

    with socket.socket() as probe:  # a port nothing listens on: every attempt is UNAVAILABLE
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PredictionClient(f"127.0.0.1:{port}", "m", timeout=1.5, retries=1000) as client:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            client.predict([tf.train.Example()])
        elapsed = time.monotonic() - start
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert elapsed < 3.0, f"1000 retries must still end at the 1.5 s deadline, took {elapsed:.1f} s"


def test_clients_turned_away_together_do_not_come_back_together():
    from serving.client import PredictionClient

    clients = [PredictionClient("127.0.0.1:1", "m") for _ in range(8)]
    for attempt in range(4):
        pauses = [client.backoff_seconds(attempt) for client in clients]
        assert all(0.0 <= pause <= 0.1 * 2**attempt for pause in pauses)
        assert max(pauses) - min(pauses) > 0.01 * 2**attempt, f"attempt {attempt}: {pauses}"
    for client in clients:
        client.close()


# === A version loads as TF Serving loads it: a session of its own ===


def save_vocabulary_model(path: str) -> None:
    """Two signatures over a vocabulary asset and a variable: `serving_default`
    maps tokens to their index times `scale`, `count` counts a row's tokens."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    vocabulary = os.path.join(os.path.dirname(path), "tokens.txt")
    with open(vocabulary, "w") as stream:
        stream.write("apple\nbanana\ncherry\n")
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocabulary, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ),
        default_value=-1,
    )
    module.scale = tf.Variable(10.0)
    module.serve = tf.function(
        lambda tokens: {"scaled": tf.cast(module.table.lookup(tokens), tf.float32) * module.scale},
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    module.count = tf.function(
        lambda tokens: {"n": tf.reduce_sum(tf.ones_like(tokens, tf.int32), axis=1)},
        input_signature=[tf.TensorSpec([None, None], tf.string)],
    )
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve, "count": module.count})
    os.remove(vocabulary)  # the SavedModel's own copy under assets/ must be the one read


def test_a_version_runs_in_a_session_of_its_own_and_answers_as_the_saved_model_does(tmp_path):
    import tensorflow as tf

    from serving.servable import load_servable

    path = str(tmp_path / "model" / "1")
    save_vocabulary_model(path)
    servable = load_servable("m", 1, path)
    tokens = np.array([b"cherry", b"plum", b"apple"], dtype=object)
    answer = servable.run("serving_default", {"tokens": tokens})
    expected = tf.saved_model.load(path).signatures["serving_default"](tokens=tf.constant(tokens))
    np.testing.assert_array_equal(answer["scaled"], expected["scaled"].numpy())
    np.testing.assert_array_equal(answer["scaled"], [20.0, -10.0, 0.0])
    counts = servable.run("count", {"tokens": np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object)})
    np.testing.assert_array_equal(counts["n"], [2, 2])
    assert sorted(servable.signature_defs) == ["count", "serving_default"]
    assert servable.loaded.session.graph.finalized  # serving adds no ops to the graph


def test_a_signature_with_a_sparse_input_is_refused_naming_it():
    """A TF1 signature may declare a `coo_sparse` input; Predict carries dense
    tensors only (TF2 exports split a sparse input into dense ones)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    from tfbase.sessions import signature_callable

    signature = meta_graph_pb2.SignatureDef()
    signature.inputs["ids"].coo_sparse.values_tensor_name = "ids/values:0"
    signature.outputs["total"].name = "total:0"
    with pytest.raises(ValueError, match="signature 'serving_default' input 'ids' is a coo_sparse tensor; only dense"):
        signature_callable(None, "serving_default", signature)


def test_both_apis_bind_the_ipv6_loopback_written_either_way():
    """``--host ::1`` failed in gRPC and ``--host [::1]`` in REST (issue 29, case 8)."""
    import urllib.request
    from concurrent import futures

    import grpc

    from serving import rest_server
    from serving.server import bare_host, grpc_address, parse_args

    assert parse_args(["--model_name", "m", "--model_base_path", "b", "--host", "[::1]"]).host == "::1"
    assert bare_host("::1") == bare_host("[::1]") == "::1"
    assert grpc_address("::1", 8500) == "[::1]:8500"
    assert grpc_address("127.0.0.1", 8500) == "127.0.0.1:8500"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    assert server.add_insecure_port(grpc_address("::1", 0)) > 0
    server.stop(None)

    class Hello:
        def handle(self, method, path, body):
            return 200, "text/plain", f"{method} {path}".encode()

    for host in ("::1", "[::1]"):
        http_server, port = rest_server.serve(Hello(), bare_host(host), 0)
        try:
            with urllib.request.urlopen(f"http://[::1]:{port}/v1/models/m", timeout=10) as response:
                assert response.read() == b"GET /v1/models/m"
        finally:
            http_server.shutdown()
