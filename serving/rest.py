"""TensorFlow Serving's REST API, on `--rest_api_port`.

The same requests, JSON conventions and error bodies as
``tensorflow_model_server``, so one ``curl`` works against this server and
the Docker image:

* ``POST /v1/models/<name>[/versions/<v>]:predict`` with ``{"instances":
  [...]}`` (row format: each instance one input's value, or an object of
  named inputs) or ``{"inputs": ...}`` (columnar), and an optional
  ``"signature_name"``; answers ``{"predictions": [...]}`` or ``{"outputs":
  ...}``. Binary strings travel as ``{"b64": "..."}``.
* ``POST /v1/models/<name>[/versions/<v>]:classify`` and ``:regress`` with
  ``{"examples": [{feature: value or list}, ...]}`` (strings become
  ``bytes_list``, integers ``int64_list``, other numbers ``float_list``, as TF
  Serving reads them) and an optional ``"context"`` merged into each.
* ``GET /v1/models/<name>[/versions/<v>]`` (status) and ``.../metadata``.
* ``GET /monitoring/prometheus/metrics`` (`serving.metrics`).

Errors answer ``{"error": "<message>"}`` with the HTTP status of the gRPC code.
Every request is answered by the same `PredictionServicer` methods as gRPC.
`serving.rest_server` carries the requests over HTTP, with its limits.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import metrics as metrics_lib
from serving import tensors
from serving.errors import RequestError
from serving.metrics import answered

LOG = logging.getLogger("serving.rest")

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
CODE_OF_STATUS = {  # the metrics' code of an answer refused before any API ran
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    414: "RESOURCE_EXHAUSTED",
    431: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
WANTED_METHOD = {"status": "GET", "metadata": "GET", "predict": "POST", "classify": "POST", "regress": "POST"}
ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?::(?P<verb>\w+)|/(?P<meta>metadata))?$"
)
NUMPY_TYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_BOOL: np.bool_,
}


CONTAINERS_PER_ROW = 64
FLOAT32_MAX = float(np.finfo(np.float32).max)


def bad_request(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def route(path: str) -> tuple[re.Match | None, str | None]:
    """The path's match of `ROUTE` and its API (``predict``, ``status``, ...; None for none of ours)."""
    match = ROUTE.match(path)
    verb = match and (match["verb"] or match["meta"] or "status")
    return match, (verb if verb in WANTED_METHOD else None)


def error_body(message: str) -> bytes:
    """TF Serving's error answer."""
    return json.dumps({"error": message}).encode("utf-8")


# === JSON values to and from arrays and Examples ===


def decode_string(value: Any, where: str) -> bytes:
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError):
            raise bad_request(f"{where}: 'b64' holds invalid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise bad_request(f'{where}: expected a string or {{"b64": ...}}, got {json.dumps(value)[:80]}')


def to_array(values: Any, dtype: int, name: str) -> np.ndarray:
    """One input's JSON values (one per row) as an array of the signature's type."""
    if dtype == types_pb2.DT_STRING:

        def strings(value, where):
            if isinstance(value, list):
                return [strings(item, f"{where}[{index}]") for index, item in enumerate(value)]
            return decode_string(value, where)

        return np.array(strings(values, f"input '{name}'"), dtype=object)
    if dtype not in NUMPY_TYPES:
        raise bad_request(f"input '{name}' has type {types_pb2.DataType.Name(dtype)}, which JSON cannot carry here")
    numpy_type = np.dtype(NUMPY_TYPES[dtype])
    check_numbers(values, numpy_type, name, types_pb2.DataType.Name(dtype))
    try:
        with np.errstate(over="ignore"):
            array = np.array(values, dtype=numpy_type)
    except OverflowError:
        raise bad_request(f"input '{name}' holds an integer out of the range of {numpy_type}") from None
    except (TypeError, ValueError):  # ragged rows
        raise bad_request(f"input '{name}' is not a rectangular array of numbers") from None
    if numpy_type.kind == "f" and np.any(np.isinf(array)):
        where = ", ".join(map(str, np.argwhere(np.isinf(array))[0]))
        raise bad_request(f"input '{name}' at [{where}]: the value is out of the range of {numpy_type}")
    return array


def refuse_constant(name: str) -> float:
    """What `json.loads` does with NaN and ±Infinity, which JSON does not have: NaN is read, as TF
    Serving's REST API reads it (the raw signature's missing number); ±Infinity is refused."""
    if name == "NaN":
        return math.nan
    raise ValueError(f"{name} is not a JSON number")


def check_numbers(values: Any, numpy_type: np.dtype, name: str, type_name: str) -> None:
    """Every leaf of input `name`'s `values` (one per row) a JSON number the type takes, as TF
    Serving's REST API reads them: no string, bool or null for a number, no fraction for an integer;
    and (our choice: a CTR model's input is never one) no infinity; NaN is a missing number. Raises
    INVALID_ARGUMENT naming the row and the input."""
    if not isinstance(values, list):
        check_leaves(values, numpy_type, f"input '{name}'", type_name)
        return
    for row, value in enumerate(values):
        check_leaves(value, numpy_type, f"row {row} of input '{name}'", type_name)


def check_leaves(value: Any, numpy_type: np.dtype, where: str, type_name: str) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_leaves(item, numpy_type, f"{where}[{index}]", type_name)
        return
    integral = numpy_type.kind in "iu"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and isinstance(value, float)):
        kind = "an integer" if integral else "a number"
        raise bad_request(f"{where}: {type_name} takes {kind}, got {json.dumps(value)[:40]}")
    if isinstance(value, float) and math.isinf(value):
        raise bad_request(f"{where}: {type_name} takes a finite number (or NaN), got {value}")


def to_json_value(array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":

        def convert(value):
            if isinstance(value, np.ndarray):
                return [convert(item) for item in value]
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(value).decode("ascii")}

        return convert(array) if array.ndim else convert(array.reshape(1))[0]
    return array.tolist()


def to_feature(value: Any, where: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    if not values:
        return feature_pb2.Feature()
    if all(isinstance(item, (str, dict)) for item in values):
        return feature_pb2.Feature(
            bytes_list=feature_pb2.BytesList(value=[decode_string(item, where) for item in values])
        )
    if all(isinstance(item, int) and not isinstance(item, bool) for item in values):
        if not all(-(2**63) <= item < 2**63 for item in values):
            raise bad_request(f"{where}: an integer out of the range of int64 in {json.dumps(value)[:80]}")
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    if all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in values):
        if any(abs(item) > FLOAT32_MAX for item in values):  # infinity included; NaN is a missing number
            raise bad_request(f"{where}: a number out of the range of float32 in {json.dumps(value)[:80]}")
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    raise bad_request(f"{where}: values must be all strings or all numbers, got {json.dumps(value)[:80]}")


def to_examples(body: dict) -> list[example_pb2.Example]:
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise bad_request("the request body needs a non-empty 'examples' list")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise bad_request("'context' must be an object of features")
    parsed = []
    for row, features in enumerate(examples):
        if not isinstance(features, dict):
            raise bad_request(f"examples[{row}] must be an object of features")
        example = example_pb2.Example()
        for name, value in {**context, **features}.items():
            example.features.feature[name].CopyFrom(to_feature(value, f"examples[{row}].{name}"))
        parsed.append(example)
    return parsed


# === The API ===


class RestApi:
    """Answers REST requests with the gRPC servicers' methods."""

    def __init__(self, predictions, models, metrics: metrics_lib.ServingMetrics | None) -> None:
        self.predictions, self.models, self.metrics = predictions, models, metrics
        self.max_json_containers = CONTAINERS_PER_ROW * predictions.scheduler.max_batch_size

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) of one request; every answer counted in the metrics."""
        if method == "GET" and path == metrics_lib.PATH and self.metrics is not None:
            return 200, metrics_lib.CONTENT_TYPE, self.metrics.exposition()
        match, verb = route(path)
        if verb is None or WANTED_METHOD[verb] != method:
            return 404, "application/json", self.refused(path, 404, f"Malformed request: {method} {path[:200]}")
        name, version = match["name"], match["version"]
        build, handler, answer = self._api(verb)
        answer_body: list[bytes] = []

        def call():
            try:
                payload = self._parse(body) if method == "POST" else {}
                response = handler(build(payload, name, version))
                answer_body.append(json.dumps(answer(response, payload)).encode("utf-8"))
            except RecursionError:  # in the parser, or reading a deep value the parser took
                raise bad_request("the request body nests JSON deeper than the server parses") from None
            return response

        try:
            answered(self.metrics, self.predictions.manager.name, name, verb, "rest", call)
        except RequestError as error:
            return HTTP_STATUS.get(error.code, 500), "application/json", error_body(str(error))
        except Exception as error:  # counted INTERNAL by `answered`; answered all the same
            LOG.exception("error answering %s %s", method, path)
            return 500, "application/json", error_body(f"internal error: {type(error).__name__}: {error}")
        return 200, "application/json", answer_body[0]

    def refused(self, path: str, status: int, message: str) -> bytes:
        """The body of an answer given before any API ran (an unknown path, a request over a
        limit, malformed HTTP), counted in the metrics under the code of `status`."""
        if self.metrics is not None:
            match, verb = route(path)
            served = self.predictions.manager.name
            model = served if match and match["name"] == served else "(unknown)"
            self.metrics.request(model, None, verb or "(none)", "rest", CODE_OF_STATUS.get(status, "UNKNOWN"), 0.0)
        return error_body(message)

    def _api(self, verb: str):
        return {
            "predict": (self._predict_request, self.predictions.predict, self._predict_answer),
            "classify": (self._classify_request, self.predictions.classify, self._classify_answer),
            "regress": (self._regress_request, self.predictions.regress, self._regress_answer),
            "metadata": (self._metadata_request, self.predictions.metadata, self._proto_answer),
            "status": (self._status_request, self.models.status, self._proto_answer),
        }[verb]

    def _parse(self, body: bytes) -> dict:
        """The request's JSON object. Python's objects cost tens of bytes a value, so before
        parsing, the objects and arrays a body opens are bounded by the rows a request may carry
        (a conservative count: a '{' or '[' inside a string counts too); the nesting depth is
        bounded by the interpreter's recursion limit (`handle` answers a RecursionError)."""
        containers = body.count(b"{") + body.count(b"[")
        if containers > self.max_json_containers:
            raise bad_request(
                f"the request body opens {containers} JSON objects or arrays ('{{' or '['), more than the"
                f" {self.max_json_containers} this server reads ({CONTAINERS_PER_ROW} a row of its"
                f" max_batch_size {self.max_json_containers // CONTAINERS_PER_ROW})"
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise bad_request(
                f"the request body is not UTF-8: byte 0x{body[error.start]:02x} at offset {error.start}"
                f" (after {body[max(0, error.start - 30) : error.start]!r})"
            ) from None
        try:
            payload = json.loads(text or "null", parse_constant=refuse_constant)
        except ValueError as error:
            raise bad_request(f"the request body is not JSON: {error}") from None
        if not isinstance(payload, dict):
            raise bad_request("the request body must be a JSON object")
        return payload

    @staticmethod
    def _spec(model_spec, name: str, version: str | None, signature_name: Any = "") -> None:
        model_spec.name = name
        if version is not None:
            if int(version) >= 2**63:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"model '{name}' has no version {version}")
            model_spec.version.value = int(version)
        if not isinstance(signature_name, str):
            raise bad_request(f"'signature_name' must be a string, got {json.dumps(signature_name)[:40]}")
        if signature_name:
            model_spec.signature_name = signature_name

    def _predict_request(self, payload: dict, name: str, version: str | None) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, name, version, payload.get("signature_name", ""))
        has_instances, has_inputs = "instances" in payload, "inputs" in payload
        if has_instances == has_inputs:
            raise bad_request("the request body needs exactly one of 'instances' (row format) or 'inputs' (columnar)")
        # the signature's inputs and types, to read the JSON values as
        servable = self.predictions.servable(request.model_spec)
        _, signature = self.predictions.signature(servable, request.model_spec.signature_name)
        names = sorted(signature.inputs)
        columns = self._columns(payload, names)
        for input_name, values in columns.items():
            if input_name in signature.inputs:
                array = to_array(values, signature.inputs[input_name].dtype, input_name)
                request.inputs[input_name].CopyFrom(tensors.to_proto(array))
            else:
                request.inputs[input_name].dtype = types_pb2.DT_STRING  # refused by name in `predict`
        return request

    @staticmethod
    def _columns(payload: dict, names: list[str]) -> dict[str, Any]:
        if "inputs" in payload:
            inputs = payload["inputs"]
            if isinstance(inputs, dict) and not (len(names) == 1 and set(inputs) == {"b64"}):
                return inputs
            if len(names) != 1:
                raise bad_request(f"'inputs' must be an object naming the signature's inputs {names}")
            return {names[0]: inputs}
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise bad_request("'instances' must be a non-empty list")
        named = [isinstance(row, dict) and not set(row) == {"b64"} for row in instances]
        if any(named) and not all(named):
            raise bad_request("'instances' mixes objects of named inputs with bare values")
        if not all(named):
            if len(names) != 1:
                raise bad_request(f"each instance must be an object naming the signature's inputs {names}")
            return {names[0]: instances}
        keys = set(instances[0])
        for row, instance in enumerate(instances):
            if set(instance) != keys:
                raise bad_request(f"instances[{row}] names inputs {sorted(instance)}, instances[0] {sorted(keys)}")
        return {key: [instance[key] for instance in instances] for key in keys}

    @staticmethod
    def _predict_answer(response: predict_pb2.PredictResponse, payload: dict) -> dict:
        outputs = {key: tensors.from_proto(value) for key, value in response.outputs.items()}
        if "inputs" in payload:
            if len(outputs) == 1:
                return {"outputs": to_json_value(next(iter(outputs.values())))}
            return {"outputs": {key: to_json_value(value) for key, value in outputs.items()}}
        columns = {key: to_json_value(value) for key, value in outputs.items()}
        rows = len(next(iter(columns.values())))
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        return {"predictions": [{key: column[row] for key, column in columns.items()} for row in range(rows)]}

    def _examples_request(self, message, payload: dict, name: str, version: str | None):
        request = message()
        self._spec(request.model_spec, name, version, payload.get("signature_name", ""))
        request.input.example_list.examples.extend(to_examples(payload))
        return request

    def _classify_request(self, payload, name, version):
        return self._examples_request(classification_pb2.ClassificationRequest, payload, name, version)

    def _regress_request(self, payload, name, version):
        return self._examples_request(regression_pb2.RegressionRequest, payload, name, version)

    @staticmethod
    def _classify_answer(response, payload) -> dict:
        return {
            "result": [
                [[item.label, item.score] for item in classification.classes]
                for classification in response.result.classifications
            ]
        }

    @staticmethod
    def _regress_answer(response, payload) -> dict:
        return {"result": [item.value for item in response.result.regressions]}

    def _metadata_request(self, payload, name, version):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, name, version)
        return request

    def _status_request(self, payload, name, version):
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, name, version)
        return request

    @staticmethod
    def _proto_answer(response, payload) -> dict:
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
