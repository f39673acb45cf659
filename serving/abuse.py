"""What a hostile or broken client sends, as named cases: for `serving.loadtest --abusive_clients`
and `tests/test_serving_abuse.py`.

Each case sends one kind of abuse to a running server (REST over a raw socket, so nothing is
corrected on the way; gRPC through a stub) and returns an `Outcome`: the status the server
answered (an HTTP status, a gRPC code name, or ``"closed"`` where the server is expected to
close the connection), the message, and the seconds it took. `CASES` holds them with the
outcome each must get; `check` compares. The numbers are those of issue 29's list.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import select
import socket
import time
from typing import Callable

import grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

STARTED_BODY_BYTES = 64 * 1024  # what a client claiming a huge body sends before the answer


@dataclasses.dataclass(frozen=True)
class Targets:
    grpc: str  # HOST:PORT
    rest: str  # HOST:PORT
    model_name: str


@dataclasses.dataclass
class Outcome:
    status: int | str  # an HTTP status, a gRPC code name, or "closed"
    message: str = ""
    seconds: float = 0.0
    headers: dict = dataclasses.field(default_factory=dict)


# === Raw HTTP, so the server sees exactly the bytes of the case ===


def connect(target: str, timeout: float) -> socket.socket:
    host, port = target.rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def read_answer(sock: socket.socket) -> Outcome:
    """One HTTP answer from `sock` (``closed`` if the server closed it without one)."""
    begin = time.perf_counter()
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        body = response.read()
    except (http.client.RemoteDisconnected, ConnectionError):
        return Outcome("closed", seconds=time.perf_counter() - begin)
    try:
        message = json.loads(body).get("error", "")
    except ValueError:
        message = body.decode("utf-8", "replace")
    return Outcome(response.status, message, time.perf_counter() - begin, dict(response.getheaders()))


def send_raw(targets: Targets, data: bytes, timeout: float = 30.0) -> Outcome:
    begin = time.perf_counter()
    with connect(targets.rest, timeout) as sock:
        sock.sendall(data)
        outcome = read_answer(sock)
    outcome.seconds = time.perf_counter() - begin
    return outcome


def post(targets: Targets, verb: str, body: bytes, extra_headers: str = "", path: str | None = None) -> bytes:
    path = path or f"/v1/models/{targets.model_name}:{verb}"
    length = (
        ""
        if "Content-Length" in extra_headers or "Transfer-Encoding" in extra_headers
        else f"Content-Length: {len(body)}\r\n"
    )
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{length}{extra_headers}\r\n".encode() + body


def with_content_length(value: str) -> Callable[[Targets], Outcome]:
    def case(targets: Targets) -> Outcome:
        return send_raw(targets, post(targets, "predict", b'{"instances": ["x"]}', f"Content-Length: {value}\r\n"))

    return case


def huge_declared_body(targets: Targets) -> Outcome:
    """Declares 500 MB and starts sending: refused before the body is read."""
    begin = time.perf_counter()
    with connect(targets.rest, 30.0) as sock:
        sock.sendall(post(targets, "predict", b"", "Content-Length: 500000000\r\n"))
        try:
            sock.sendall(b"[" + b" " * STARTED_BODY_BYTES)
        except ConnectionError:
            pass
        outcome = read_answer(sock)
    outcome.seconds = time.perf_counter() - begin
    return outcome


def chunked_body_beyond_the_limit(targets: Targets, megabytes: int = 64) -> Outcome:
    """A chunked body that never ends within the limit: refused once it passes it."""
    begin = time.perf_counter()
    chunk = b"[" + b"{}," * 21845  # 64 KiB
    with connect(targets.rest, 30.0) as sock:
        sock.sendall(post(targets, "predict", b"", "Transfer-Encoding: chunked\r\n"))
        try:
            for _ in range(megabytes * 16):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except ConnectionError:
            pass
        outcome = read_answer(sock)
    outcome.seconds = time.perf_counter() - begin
    return outcome


def many_empty_objects(targets: Targets) -> Outcome:
    """``[{},{},...]`` within the body limit: refused before it is parsed."""
    objects = b"{}," * 300_000
    return send_raw(targets, post(targets, "predict", b'{"instances": [' + objects + b"{}]}"))


def too_many_rows(targets: Targets) -> Outcome:
    return send_raw(targets, post(targets, "predict", json.dumps({"instances": ["x"] * 100_000}).encode()))


def deep_json(targets: Targets) -> Outcome:
    return send_raw(targets, post(targets, "predict", b"[" * 2000 + b"]" * 2000))


def smuggled_get(targets: Targets) -> Outcome:
    """A GET hidden in a chunked POST body is body, not a request: one answer (400, the body is
    not JSON) and no second."""
    hidden = f"GET /v1/models/{targets.model_name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    data = post(targets, "predict", b"", "Transfer-Encoding: chunked\r\n") + b"%x\r\n%s\r\n0\r\n\r\n" % (
        len(hidden),
        hidden,
    )
    begin = time.perf_counter()
    with connect(targets.rest, 5.0) as sock:
        sock.sendall(data)
        first = read_answer(sock)
        sock.settimeout(0.5)
        try:
            extra = sock.recv(1024)
        except TimeoutError:
            extra = b""
    if extra:
        return Outcome("a second answer", extra.decode("latin-1")[:80], time.perf_counter() - begin)
    first.seconds = time.perf_counter() - begin
    return first


def both_lengths(targets: Targets) -> Outcome:
    body = b'{"instances": ["x"]}'
    return send_raw(
        targets, post(targets, "predict", body, f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n")
    )


def slow_headers(targets: Targets, seconds: float = 120.0) -> Outcome:
    """Slowloris: headers a byte at a time; the server must close the connection in its idle time."""
    begin = time.perf_counter()
    with connect(targets.rest, 5.0) as sock:
        sock.sendall(f"POST /v1/models/{targets.model_name}:predict HTTP/1.1\r\nHost: x\r\n".encode())
        while time.perf_counter() - begin < seconds:
            try:
                sock.sendall(b"X")
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable and sock.recv(1024) == b"":
                    break
            except ConnectionError:
                break
        else:
            return Outcome("held", f"still open after {seconds} s", time.perf_counter() - begin)
    return Outcome("closed", seconds=time.perf_counter() - begin)


def idle_connection(targets: Targets, seconds: float = 120.0) -> Outcome:
    begin = time.perf_counter()
    with connect(targets.rest, seconds) as sock:
        try:
            closed = sock.recv(1) == b""
        except (TimeoutError, ConnectionError) as error:
            closed = isinstance(error, ConnectionError)
    return Outcome("closed" if closed else "held", seconds=time.perf_counter() - begin)


def slow_body(targets: Targets) -> Outcome:
    """Declares 100 bytes, sends 10: answered 408 at the request timeout."""
    begin = time.perf_counter()
    with connect(targets.rest, 120.0) as sock:
        sock.sendall(post(targets, "predict", b'{"instance', "Content-Length: 100\r\n"))
        outcome = read_answer(sock)
    outcome.seconds = time.perf_counter() - begin
    return outcome


def rest_json(verb: str, payload) -> Callable[[Targets], Outcome]:
    def case(targets: Targets) -> Outcome:
        return send_raw(targets, post(targets, verb, json.dumps(payload).encode()))

    return case


def float_input_given(literal: str) -> Callable[[Targets], Outcome]:
    """`predict_raw` with a JSON `literal` for its first float input."""

    def case(targets: Targets) -> Outcome:
        name = first_float_input(targets)
        body = b'{"signature_name": "predict_raw", "instances": [{"%s": %s}]}' % (name.encode(), literal.encode())
        return send_raw(targets, post(targets, "predict", body))

    return case


def first_float_input(targets: Targets) -> str:
    with connect(targets.rest, 30.0) as sock:
        sock.sendall(f"GET /v1/models/{targets.model_name}/metadata HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        signatures = json.loads(response.read())["metadata"]["signature_def"]["signature_def"]
    inputs = signatures["predict_raw"]["inputs"]
    return sorted(name for name, spec in inputs.items() if spec["dtype"] == "DT_FLOAT")[0]


def get(path: str) -> Callable[[Targets], Outcome]:
    """A GET of ``/v1/models/<model><path>``."""

    def case(targets: Targets) -> Outcome:
        return send_raw(targets, f"GET /v1/models/{targets.model_name}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    return case


def not_utf8(targets: Targets) -> Outcome:
    return send_raw(targets, post(targets, "predict", b'{"instances": ["caf\x96 au lait"]}'))


def not_an_example(targets: Targets) -> Outcome:
    encoded = base64.b64encode(b"\x96\x01not an example").decode()
    return send_raw(targets, post(targets, "predict", json.dumps({"instances": [{"b64": encoded}]}).encode()))


def long_url(targets: Targets) -> Outcome:
    return send_raw(targets, f"GET /v1/models/{'m' * 20000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def long_header(targets: Targets) -> Outcome:
    return send_raw(
        targets, f"GET /v1/models/{targets.model_name} HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 20000}\r\n\r\n".encode()
    )


def many_headers(targets: Targets) -> Outcome:
    headers = "".join(f"X-H{index}: v\r\n" for index in range(150))
    return send_raw(targets, f"GET /v1/models/{targets.model_name} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())


def unknown_path(targets: Targets) -> Outcome:
    return send_raw(targets, b"GET /v2/whatever HTTP/1.1\r\nHost: x\r\n\r\n")


def unknown_method(targets: Targets) -> Outcome:
    return send_raw(targets, f"PUT /v1/models/{targets.model_name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def not_http(targets: Targets) -> Outcome:
    return send_raw(targets, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello\r\n\r\n")


# === gRPC ===


def grpc_predict(targets: Targets, tensor: tensor_pb2.TensorProto) -> Outcome:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = targets.model_name
    request.inputs["examples"].CopyFrom(tensor)
    begin = time.perf_counter()
    with grpc.insecure_channel(targets.grpc) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        except grpc.RpcError as error:
            return Outcome(error.code().name, error.details() or "", time.perf_counter() - begin)
    return Outcome("OK", seconds=time.perf_counter() - begin)


def declared_shape_beyond_values(targets: Targets) -> Outcome:
    """43 bytes declaring 60 million strings (issue 29, case 1)."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in (1, 60_000_000)]
    )
    return grpc_predict(
        targets, tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=[b"x"])
    )


def unknown_dtype(targets: Targets) -> Outcome:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])
    return grpc_predict(targets, tensor_pb2.TensorProto(dtype=9999, tensor_shape=shape, string_val=[b"x"]))


@dataclasses.dataclass(frozen=True)
class Case:
    number: int  # in issue 29's list
    send: Callable[[Targets], Outcome]
    status: int | str
    message: str = ""  # a part of the message the answer must hold
    memory: bool = False  # a case that once cost the server memory far beyond its size
    slow: bool = False  # takes the server's idle or request timeout to answer

    @property
    def grpc_predict(self) -> bool:
        """A gRPC Predict call (counted by the server's metrics as one)."""
        return isinstance(self.status, str) and self.status.isupper() and self.status != "OK"


CASES: dict[str, Case] = {
    "grpc_declared_shape_beyond_values": Case(
        1, declared_shape_beyond_values, "INVALID_ARGUMENT", "every value must be sent", memory=True
    ),
    "huge_declared_body": Case(2, huge_declared_body, 413, "beyond the limit of", memory=True),
    "chunked_body_beyond_the_limit": Case(2, chunked_body_beyond_the_limit, 413, "beyond the limit of", memory=True),
    "many_empty_objects": Case(2, many_empty_objects, 400, "JSON objects or arrays", memory=True),
    "too_many_rows": Case(2, too_many_rows, 400, "more than the server's max_batch_size", memory=True),
    "deep_json": Case(3, deep_json, 400, "nests JSON deeper"),
    "signature_name_not_a_string": Case(
        3, rest_json("predict", {"instances": ["x"], "signature_name": 7}), 400, "'signature_name' must be a string"
    ),
    "classify_integer_beyond_int64": Case(
        3, rest_json("classify", {"examples": [{"I1": 2**70}]}), 400, "out of the range of int64"
    ),
    "version_beyond_int64": Case(3, get("/versions/99999999999999999999"), 404, "has no version"),
    "content_length_abc": Case(3, with_content_length("abc"), 400, "malformed HTTP request"),
    "content_length_1e3": Case(3, with_content_length("1e3"), 400, "malformed HTTP request"),
    "content_length_negative": Case(3, with_content_length("-5"), 400, "malformed HTTP request"),
    "content_length_minus_one": Case(3, with_content_length("-1"), 400, "malformed HTTP request"),
    "content_length_huge": Case(3, with_content_length("100000000000"), 413, "beyond the limit of"),
    "smuggled_get_in_a_chunked_body": Case(4, smuggled_get, 400, "the request body is not JSON"),
    "content_length_and_chunked": Case(4, both_lengths, 400, "malformed HTTP request"),
    "slow_headers": Case(5, slow_headers, "closed", slow=True),
    "idle_connection": Case(5, idle_connection, "closed", slow=True),
    "slow_body": Case(5, slow_body, 408, "did not arrive within", slow=True),
    "string_for_a_float": Case(6, float_input_given('"3.5"'), 400, 'takes a number, got "3.5"'),
    "bool_for_a_float": Case(6, float_input_given("true"), 400, "takes a number, got true"),
    "null_for_a_float": Case(6, float_input_given("null"), 400, "takes a number, got null"),
    "infinity_for_a_float": Case(6, float_input_given("1e400"), 400, "takes a finite number"),
    "beyond_float32": Case(6, float_input_given("1e39"), 400, "out of the range of float32"),
    "not_utf8": Case(7, not_utf8, 400, "not UTF-8: byte 0x96 at offset"),
    "not_an_example": Case(7, not_an_example, 400, "row 0 of input 'examples' is not a serialized tf.train.Example"),
    "grpc_unknown_dtype": Case(7, unknown_dtype, "INVALID_ARGUMENT", "9999 (no TensorFlow dtype)"),
    "long_url": Case(7, long_url, 414, "URL is longer than"),
    "long_header": Case(7, long_header, 431, "header of the request is longer than"),
    "many_headers": Case(7, many_headers, 431, "more than 100 headers"),
    "unknown_path": Case(7, unknown_path, 404, "Malformed request"),
    "unknown_method": Case(7, unknown_method, 404, "Malformed request: PUT"),
    "not_http": Case(7, not_http, 400, "malformed HTTP request"),
}


def check(name: str, outcome: Outcome) -> str | None:
    """What is wrong with `outcome` for case `name`, or None."""
    case = CASES[name]
    if outcome.status != case.status or case.message not in outcome.message:
        return f"{name}: expected {case.status} with {case.message!r}, got {outcome.status} {outcome.message[:200]!r}"
    server = outcome.headers.get("Server", "")
    if "Python" in server or "BaseHTTP" in server or "aiohttp" in server:
        return f"{name}: the Server header names the software: {server!r}"
    return None
