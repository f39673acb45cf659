"""`python -m serving.server`: TensorFlow Serving's gRPC and REST APIs for local use, CI and tests.

Implements `tensorflow.serving.PredictionService` (Predict, Classify, Regress,
GetModelMetadata) and `ModelService.GetModelStatus` with the protos of
tensorflow-serving-api, so the clients, requests and SavedModels are the ones
used against the real `tensorflow_model_server` (see docker/); the same
APIs over REST (`serving.rest`, on aiohttp's HTTP server with the limits of
`serving.rest_server`) on `--rest_api_port`, with Prometheus metrics
(`serving.metrics`). A lone request runs at once; concurrent ones are
batched (`serving.batching`). It serves the
newest version under a model base path and picks up new versions without a
restart, batches concurrent requests, binds 127.0.0.1 by default, limits
message sizes, exposes the standard gRPC health service and stops gracefully
on SIGTERM.

Under faults: a malformed request fails alone (its batch is retried request by
request) with INVALID_ARGUMENT naming the row and feature; sizes are checked
from the tensor's full declared shape, against the values it carries, before
anything is decoded; a full batch queue answers
UNAVAILABLE and more than `--max_concurrent_rpcs` calls RESOURCE_EXHAUSTED;
work whose caller has gone is never computed.

    python -m serving.server --model_name featnet --model_base_path runs/featnet_criteo/export \
        --port 8500 --rest_api_port 8501
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
from typing import Sequence

import grpc
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import rest_server, tensors
from serving.batching import BatchScheduler, CallerGone, QueueFull
from serving.errors import RequestError, explain_model_error
from serving.metrics import PATH as METRICS_PATH
from serving.metrics import ServingMetrics, answered
from serving.rest import RestApi
from serving.servable import ModelManager, Servable
from tfbase.sessions import session_config

LOG = logging.getLogger("serving")
DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME
REGRESS_METHOD = tf.saved_model.REGRESS_METHOD_NAME
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` for 1; for a number no `DataType` has, says so (a request's enum may hold any int)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"{dtype} (no TensorFlow dtype)"


def check_input(name: str, tensor_proto, expected, max_rows: int) -> np.ndarray:
    """The request's tensor as an array, or INVALID_ARGUMENT naming the input.

    Type, declared shape and size are checked on the proto before any value is
    decoded: a request declaring millions of rows costs nothing to refuse."""
    if tensor_proto.dtype != expected.dtype:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{name}' has type {dtype_name(tensor_proto.dtype)}, the signature expects "
            f"{dtype_name(expected.dtype)}",
        )
    dims = [dim.size for dim in tensor_proto.tensor_shape.dim]
    if any(size < 0 for size in dims) or tensor_proto.tensor_shape.unknown_rank:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' has no definite shape: {dims}")
    if dims and dims[0] > max_rows:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{name}' holds a batch of {dims[0]} rows, more than the server's max_batch_size {max_rows}",
        )
    carried = tensors.values_carried(tensor_proto)
    if carried is not None and carried != math.prod(dims):
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{name}' holds {carried} {'strings' if tensor_proto.dtype == types_pb2.DT_STRING else 'values'}"
            f" but its declared shape {dims} needs {math.prod(dims)}: every value must be sent",
        )
    try:
        value = tensors.from_proto(tensor_proto)
    except Exception as error:  # a malformed TensorProto
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is not a valid tensor: {error}") from None
    if not expected.tensor_shape.unknown_rank:
        dims = [dim.size for dim in expected.tensor_shape.dim]
        if value.ndim != len(dims) or any(want not in (-1, got) for want, got in zip(dims, value.shape)):
            shape = "x".join("?" if dim < 0 else str(dim) for dim in dims) or "scalar"
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has shape {list(value.shape)}, the signature expects [{shape}]",
            )
    return value


def grpc_answer(metrics: ServingMetrics | None, served: str, api: str, request, context, call):
    """One gRPC call of either service: `call()` answered and recorded
    (`serving.metrics.answered`), a `RequestError` aborted with its code."""
    try:
        return answered(metrics, served, request.model_spec.name, api, "grpc", call)
    except RequestError as error:
        context.abort(error.code, str(error))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """The PredictionService RPCs. Each API is a method ``predict(request,
    alive)`` (and ``classify``, ``regress``, ``metadata``) that returns the
    response proto or raises `RequestError`; the gRPC methods and the REST
    API (`serving.rest`) both call them."""

    def __init__(self, manager: ModelManager, scheduler: BatchScheduler, metrics: ServingMetrics | None = None) -> None:
        self.manager = manager
        self.scheduler = scheduler
        self.metrics = metrics

    # === Resolution and validation ===

    def servable(self, model_spec) -> Servable:
        """The loaded version `model_spec` names (gRPC and REST resolve through this), or a `RequestError`."""
        if model_spec.name != self.manager.name:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: model '{model_spec.name}' is not served (serving "
                f"'{self.manager.name}')",
            )
        version = model_spec.version.value if model_spec.HasField("version") else None
        if model_spec.version_label:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "version labels are not supported by this server; use a version number",
            )
        servable = self.manager.servable(version)
        if servable is None and version is not None:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({model_spec.name}, {version})"
            )
        if servable is None:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, f"no version of '{model_spec.name}' is loaded yet")
        return servable

    @staticmethod
    def signature(servable: Servable, name: str, method: str | None = None):
        """``(name, SignatureDef)`` of `servable`'s signature `name` (default ``serving_default``) of `method`."""
        name = name or DEFAULT_SIGNATURE
        if name not in servable.signature_defs:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'Serving signature key "{name}" not found; available: {sorted(servable.signature_defs)}',
            )
        signature = servable.signature_defs[name]
        if method is not None and signature.method_name != method:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'signature "{name}" has method {signature.method_name}, expected {method}',
            )
        return name, signature

    def _run(
        self,
        servable: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        alive=lambda: True,
    ) -> dict[str, np.ndarray]:
        rows = {len(value) if value.ndim else 1 for value in inputs.values()}
        if len(rows) != 1:
            sizes = {name: (len(value) if value.ndim else 1) for name, value in inputs.items()}
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"inputs disagree on the batch size: {sizes}")
        (batch,) = rows
        if batch > self.scheduler.max_batch_size:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"batch of {batch} rows exceeds the server's max_batch_size {self.scheduler.max_batch_size}",
            )
        try:
            return self.scheduler.run(servable, signature_name, inputs, batch, alive)
        except QueueFull as error:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        except CallerGone as error:
            raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, str(error)) from None
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            if isinstance(error, UnicodeDecodeError):  # TensorFlow's message quoted bytes that are not UTF-8
                message = bytes(error.object).decode("utf-8", "replace")
            else:
                message = getattr(error, "message", None) or str(error)
            reason = explain_model_error(message, inputs)
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the model refused the request: {reason}") from None

    def _examples(self, request_input) -> np.ndarray:
        kind = request_input.WhichOneof("kind")
        if kind == "example_list":
            examples = request_input.example_list.examples
        elif kind == "example_list_with_context":
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, "example_list_with_context is not supported; send example_list"
            )
        else:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request's input holds no examples")
        if not examples:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request's input holds no examples")
        if len(examples) > self.scheduler.max_batch_size:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"batch of {len(examples)} examples exceeds the server's max_batch_size "
                f"{self.scheduler.max_batch_size}",
            )
        return np.array([example.SerializeToString() for example in examples], dtype=object)

    def _grpc(self, api: str, handler, request, context):
        alive = self._alive(context)
        return grpc_answer(self.metrics, self.manager.name, api, request, context, lambda: handler(request, alive))

    @staticmethod
    def _alive(context):
        """Whether the caller still waits: its call is active and its deadline not passed."""
        return lambda: context.is_active() and (context.time_remaining() is None or context.time_remaining() > 0)

    # === RPCs ===

    def Predict(self, request, context):
        return self._grpc("predict", self.predict, request, context)

    def Classify(self, request, context):
        return self._grpc("classify", self.classify, request, context)

    def Regress(self, request, context):
        return self._grpc("regress", self.regress, request, context)

    def GetModelMetadata(self, request, context):
        return self._grpc("metadata", self.metadata, request, context)

    # === The APIs ===

    def predict(self, request, alive=lambda: True) -> predict_pb2.PredictResponse:
        servable = self.servable(request.model_spec)
        name, signature = self.signature(servable, request.model_spec.signature_name)
        unknown = sorted(set(request.inputs) - set(signature.inputs))
        if unknown:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"inputs {unknown} are not in signature '{name}' (its inputs: {sorted(signature.inputs)})",
            )
        missing = sorted(set(signature.inputs) - set(request.inputs))
        if missing:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"missing inputs {missing} of signature '{name}'")
        max_rows = self.scheduler.max_batch_size
        inputs = {
            key: check_input(key, request.inputs[key], signature.inputs[key], max_rows) for key in signature.inputs
        }
        outputs = self._run(servable, name, inputs, alive)
        wanted = list(request.output_filter) or sorted(outputs)
        unknown_outputs = sorted(set(wanted) - set(outputs))
        if unknown_outputs:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown_outputs}"
            )
        response = predict_pb2.PredictResponse()
        self._answered_by(response.model_spec, servable, name)
        for key in wanted:
            response.outputs[key].CopyFrom(tensors.to_proto(outputs[key]))
        return response

    def _run_examples(self, request, method: str, alive) -> tuple[Servable, str, dict[str, np.ndarray]]:
        """Classify and Regress: the request's examples through the signature
        of the given method, whose one input takes serialized examples."""
        servable = self.servable(request.model_spec)
        name, signature = self.signature(servable, request.model_spec.signature_name, method)
        (input_key,) = signature.inputs
        inputs = {input_key: self._examples(request.input)}
        return servable, name, self._run(servable, name, inputs, alive)

    @staticmethod
    def _answered_by(model_spec, servable: Servable, signature_name: str) -> None:
        model_spec.name, model_spec.signature_name = servable.name, signature_name
        model_spec.version.value = servable.version

    def classify(self, request, alive=lambda: True) -> classification_pb2.ClassificationResponse:
        servable, name, outputs = self._run_examples(request, CLASSIFY_METHOD, alive)
        response = classification_pb2.ClassificationResponse()
        self._answered_by(response.model_spec, servable, name)
        classes, scores = outputs.get("classes"), outputs["scores"]
        for row in range(len(scores)):
            classification = response.result.classifications.add()
            for column in range(scores.shape[1]):
                label = classes[row][column].decode() if classes is not None else ""
                classification.classes.add(label=label, score=float(scores[row][column]))
        return response

    def regress(self, request, alive=lambda: True) -> regression_pb2.RegressionResponse:
        servable, name, outputs = self._run_examples(request, REGRESS_METHOD, alive)
        response = regression_pb2.RegressionResponse()
        self._answered_by(response.model_spec, servable, name)
        for value in outputs["outputs"].reshape(-1):
            response.result.regressions.add(value=float(value))
        return response

    def metadata(self, request, alive=None) -> get_model_metadata_pb2.GetModelMetadataResponse:
        servable = self.servable(request.model_spec)
        unsupported = [field for field in request.metadata_field if field != "signature_def"]
        if unsupported:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata fields {unsupported} are not supported; ask for signature_def",
            )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    STATES = {
        "LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
        "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        "END": get_model_status_pb2.ModelVersionStatus.END,
    }

    def __init__(self, manager: ModelManager, metrics: ServingMetrics | None = None) -> None:
        self.manager = manager
        self.metrics = metrics

    def GetModelStatus(self, request, context):
        return grpc_answer(self.metrics, self.manager.name, "status", request, context, lambda: self.status(request))

    def status(self, request, alive=None) -> get_model_status_pb2.GetModelStatusResponse:
        if request.model_spec.name != self.manager.name:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{request.model_spec.name}' is not served (serving '{self.manager.name}')",
            )
        versions = dict(self.manager.statuses)
        if request.model_spec.HasField("version"):
            wanted = request.model_spec.version.value
            if wanted not in versions:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"version {wanted} of '{self.manager.name}' is unknown")
            versions = {wanted: versions[wanted]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, status in sorted(versions.items()):
            entry = response.model_version_status.add(version=version, state=self.STATES[status.state])
            entry.status.SetInParent()  # OK, stated, as TF Serving states it
            if status.error:
                entry.status.error_code = 13  # INTERNAL, as TF Serving reports a failed load
                entry.status.error_message = status.error
        return response


def replay_warmup(servable: Servable) -> None:
    """Runs the SavedModel's TF Serving warm-up Predict requests, if any."""
    path = os.path.join(servable.path, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") == "predict_log":
            request = log.predict_log.request
            inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
            servable.run(request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_base_path", required=True, help="directory of integer version subdirectories")
    parser.add_argument(
        "--host",
        type=bare_host,
        default="127.0.0.1",
        help="address to bind (default loopback only); an IPv6 address with or without brackets",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port; 0 picks a free port (printed)")
    parser.add_argument(
        "--rest_api_port", type=int, default=8501, help="REST API and metrics port; 0 disables REST (as in TF Serving)"
    )
    parser.add_argument("--max_batch_size", type=int, default=256)
    parser.add_argument("--batch_timeout_micros", type=int, default=2000)
    parser.add_argument(
        "--num_batch_threads",
        type=int,
        default=2,
        help="model calls at once; a second call starts only with a full batch waiting (serving.batching)",
    )
    parser.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=0,
        help="TensorFlow's inter-op threads (0: its own choice, measured best here: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="TensorFlow's intra-op threads (0: its own choice)",
    )
    parser.add_argument("--max_message_bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument(
        "--file_system_poll_wait_seconds", type=float, default=1.0, help="how often new versions are looked for"
    )
    parser.add_argument("--grpc_threads", type=int, default=16)
    parser.add_argument(
        "--max_enqueued_batches",
        type=int,
        default=16,
        help="the batch queue holds this many full batches' rows; beyond, requests get UNAVAILABLE",
    )
    parser.add_argument(
        "--max_concurrent_rpcs", type=int, default=256, help="calls in progress at once; beyond, RESOURCE_EXHAUSTED"
    )
    parser.add_argument(
        "--version_wait_seconds",
        type=float,
        default=60.0,
        help="how long to wait at start for a first version to load before exiting (0: as long as it takes)",
    )
    rest_limits = parser.add_argument_group("REST server limits (serving.rest_server)")
    defaults = rest_server.HttpLimits()
    rest_limits.add_argument(
        "--rest_api_num_threads", type=int, default=defaults.num_threads, help="requests answered at once (4 per CPU)"
    )
    rest_limits.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=int(defaults.timeout_seconds * 1000),
        help="a request's body must arrive (else 408) and its answer be ready (else 504) within this",
    )
    rest_limits.add_argument(
        "--rest_api_max_body_bytes", type=int, default=defaults.max_body_bytes, help="larger bodies are refused (413)"
    )
    rest_limits.add_argument(
        "--rest_api_max_header_bytes",
        type=int,
        default=defaults.max_header_bytes,
        help="the longest request line (else 414) and header (else 431)",
    )
    rest_limits.add_argument(
        "--rest_api_idle_timeout_seconds",
        type=float,
        default=defaults.idle_timeout_seconds,
        help="a connection without a request in progress, or still sending its headers, is closed after this",
    )
    rest_limits.add_argument(
        "--rest_api_max_connections",
        type=int,
        default=defaults.max_connections,
        help="connections held at once; beyond, requests are answered 503 and the connection closed",
    )
    args = parser.parse_args(argv)
    for flag in (
        "rest_api_num_threads",
        "rest_api_timeout_in_ms",
        "rest_api_max_body_bytes",
        "rest_api_max_header_bytes",
        "rest_api_idle_timeout_seconds",
        "rest_api_max_connections",
    ):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be > 0. Received: {getattr(args, flag)}")
    if args.version_wait_seconds < 0:
        parser.error(f"--version_wait_seconds must be >= 0. Received: {args.version_wait_seconds}")
    return args


def configure_threads(inter_op: int, intra_op: int) -> None:
    """TensorFlow's thread pools, before anything initialises its runtime.
    Where it is already running in this process (`main` called from Python
    after other TensorFlow work), the settings cannot change: say so and go on."""
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    except RuntimeError as error:
        LOG.warning("TensorFlow's thread settings were not applied (%s)", error)


@dataclasses.dataclass
class ServerParts:
    """What `build_server` assembles; `main` starts and stops it."""

    grpc_server: grpc.Server
    port: int
    manager: ModelManager
    scheduler: BatchScheduler
    health: health.HealthServicer
    rest: RestApi


def build_server(args: argparse.Namespace) -> ServerParts:
    manager = ModelManager(
        args.model_name,
        args.model_base_path,
        args.file_system_poll_wait_seconds,
        warmup=replay_warmup,
        config=session_config(args.tensorflow_inter_op_parallelism, args.tensorflow_intra_op_parallelism),
    )
    metrics = ServingMetrics()
    scheduler = BatchScheduler(
        args.max_batch_size,
        args.batch_timeout_micros,
        args.num_batch_threads,
        args.max_enqueued_batches,
        on_call=metrics.model_call,
    )
    options = [
        ("grpc.max_receive_message_length", args.max_message_bytes),
        ("grpc.max_send_message_length", args.max_message_bytes),
    ]
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.grpc_threads),
        options=options,
        maximum_concurrent_rpcs=args.max_concurrent_rpcs,
    )
    predictions, models = PredictionServicer(manager, scheduler, metrics), ModelServicer(manager, metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictions, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(grpc_address(args.host, args.port))
    if port == 0:
        raise ValueError(f"could not bind {grpc_address(args.host, args.port)}")
    api = RestApi(predictions, models, metrics)
    return ServerParts(server, port, manager, scheduler, health_servicer, api)


def bare_host(host: str) -> str:
    """The address `--host` names: ``[::1]``, as a URL writes it, is ``::1``."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def grpc_address(host: str, port: int) -> str:
    """``host:port`` as gRPC reads it: an IPv6 address in brackets (``[::1]:8500``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_limits(args: argparse.Namespace) -> rest_server.HttpLimits:
    return rest_server.HttpLimits(
        max_body_bytes=args.rest_api_max_body_bytes,
        max_header_bytes=args.rest_api_max_header_bytes,
        idle_timeout_seconds=args.rest_api_idle_timeout_seconds,
        timeout_seconds=args.rest_api_timeout_in_ms / 1000,
        max_connections=args.rest_api_max_connections,
        num_threads=args.rest_api_num_threads,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[server] %(message)s")
    return serve(parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serves until SIGTERM or SIGINT, then stops gracefully; the exit code
    (2 when the model base path or a port cannot be used, or no version loads in time)."""
    if not os.path.isdir(args.model_base_path):
        print(f"[server] error: the model base path {args.model_base_path} is not a directory", file=sys.stderr)
        return 2
    configure_threads(args.tensorflow_inter_op_parallelism, args.tensorflow_intra_op_parallelism)
    parts = build_server(args)
    for service in ("", "tensorflow.serving.PredictionService"):
        parts.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    parts.grpc_server.start()
    parts.manager.start()
    try:
        servable = parts.manager.wait_until_available(args.version_wait_seconds or None)
    except RuntimeError as error:
        print(f"[server] error: {error}", file=sys.stderr)
        parts.grpc_server.stop(0)
        return 2
    http_server = None
    if args.rest_api_port:
        try:
            http_server, rest_port = rest_server.serve(parts.rest, args.host, args.rest_api_port, http_limits(args))
        except OSError as error:
            where = f"{args.host}:{args.rest_api_port}"
            print(f"[server] error: the REST API cannot bind {where}: {error}", file=sys.stderr)
            parts.grpc_server.stop(0)
            return 2
        print(f"[server] REST API on {args.host}:{rest_port} (metrics at {METRICS_PATH})", flush=True)
    for service in ("", "tensorflow.serving.PredictionService"):
        parts.health.set(service, health_pb2.HealthCheckResponse.SERVING)
    print(
        f"[server] serving model '{args.model_name}' version {servable.version} on {args.host}:{parts.port}",
        flush=True,
    )

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    print("[server] shutting down: finishing requests in flight", flush=True)
    parts.health.enter_graceful_shutdown()
    if http_server is not None:
        http_server.shutdown()
    parts.grpc_server.stop(grace=10).wait()
    parts.scheduler.stop()  # joins the batch threads: no model call outlives main()
    parts.manager.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
