"""`serving.client`: CTR predictions over TF Serving's gRPC API.

Works unchanged against the real `tensorflow_model_server` and against
`serving.server`. Rows are raw feature dicts, as the training data had them:
strings for categoricals, numbers for numerics, lists of strings for
multi-hot fields, lists of numbers for dense vectors; a missing or None value
is simply left out (the model applies its default).

    from serving.client import PredictionClient
    client = PredictionClient("localhost:8500", "featnet")
    client.predict([{"C1": "68fd1e64", "I1": 3.0}, {"C1": "05db9164"}])  # → array of probabilities

    python -m serving.client --target localhost:8500 --model_name featnet --rows rows.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any, Iterable, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import tensors

# A server that is starting, reloading or shedding load (full batch queue,
# too many calls at once) says so with these; the call is safe to repeat.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def to_example(row: Mapping[str, Any]) -> example_pb2.Example:
    """A `tf.train.Example` of one raw row (None and empty values left out)."""
    example = example_pb2.Example()
    for name, value in row.items():
        if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
            continue
        feature = example.features.feature[name]
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(values[0], str):
            feature.bytes_list.value.extend(v.encode("utf-8") for v in values)
        elif isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif isinstance(values[0], (int, float, np.integer, np.floating)) and not isinstance(values[0], bool):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            raise ValueError(f"feature '{name}': unsupported value {value!r} (use str, number, or a list of them)")
    return example


class PredictionClient:
    """A TF Serving PredictionService client with a deadline and retries.

    Args:
        target: ``host:port`` of the server.
        model_name: the served model's name.
        version: a model version, or None for the newest.
        timeout: the deadline of one method call (`predict`, `status`, ...) in
            seconds, all its attempts, backoffs and batches included; each
            attempt gets what is left of it.
        retries: attempts after an UNAVAILABLE or RESOURCE_EXHAUSTED answer,
            with exponential backoff and full jitter (a random wait up to
            0.1 s · 2^attempt), so clients turned away together do not return
            together.
        max_message_bytes: largest message sent or received.
        max_batch_size: most rows `predict` sends in one request (the server's
            ``--max_batch_size``); longer lists go in several requests.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        max_message_bytes: int = 16 * 1024 * 1024,
        max_batch_size: int = 256,
    ) -> None:
        if timeout <= 0 or retries < 0 or max_batch_size <= 0:
            raise ValueError(
                f"timeout and max_batch_size must be positive and retries >= 0. Received: timeout={timeout}, "
                f"retries={retries}, max_batch_size={max_batch_size}"
            )
        self.target, self.model_name, self.version = target, model_name, version
        self.timeout, self.retries, self.max_batch_size = timeout, retries, max_batch_size
        self._random = random.Random()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PredictionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def backoff_seconds(self, attempt: int) -> float:
        """The pause before retry `attempt` + 1: "full jitter", uniform in
        [0, 0.1 s · 2^attempt], so clients turned away together spread out."""
        return self._random.uniform(0.0, 0.1 * 2**attempt)

    def _call(self, method, request, deadline: float | None = None):
        """One RPC, retried on RETRYABLE answers while time is left before
        `deadline` (`time.monotonic()` seconds; default: `timeout` from now)."""
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        for attempt in range(self.retries + 1):
            remaining = deadline - time.monotonic()
            try:
                return method(request, timeout=max(remaining, 0.001))
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or attempt == self.retries:
                    raise
                pause = self.backoff_seconds(attempt)
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _model_spec(self, spec, signature_name: str = "") -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        if signature_name:
            spec.signature_name = signature_name

    def predict_request(
        self, inputs: Mapping[str, Any], signature_name: str = "serving_default"
    ) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(
                value if isinstance(value, type(request.inputs[name])) else tf.make_tensor_proto(value)
            )
        return request

    def predict_tensors(
        self, inputs: Mapping[str, Any], signature_name: str = "serving_default"
    ) -> tuple[dict[str, np.ndarray], int]:
        """One Predict call with named input tensors; returns the outputs and
        the version that answered."""
        response = self._call(self.predictions.Predict, self.predict_request(inputs, signature_name))
        return {
            key: tensors.from_proto(value) for key, value in response.outputs.items()
        }, response.model_spec.version.value

    def predict(self, rows: Iterable[Mapping[str, Any] | example_pb2.Example]) -> np.ndarray:
        """Click probabilities of raw rows (or `tf.train.Example`s), sent as
        serialized examples to the `serving_default` signature, at most
        `max_batch_size` rows per request, all within one `timeout`."""
        serialized = [
            row.SerializeToString() if isinstance(row, example_pb2.Example) else to_example(row).SerializeToString()
            for row in rows
        ]
        deadline = time.monotonic() + self.timeout
        probabilities = []
        for start in range(0, len(serialized), self.max_batch_size):
            chunk = serialized[start : start + self.max_batch_size]
            request = self.predict_request({"examples": tf.make_tensor_proto(chunk, dtype=tf.string)})
            response = self._call(self.predictions.Predict, request, deadline)
            probabilities.append(tensors.from_proto(response.outputs["probability"]))
        return np.concatenate(probabilities) if probabilities else np.zeros([0], np.float32)

    def signature_inputs(self, signature_name: str = "serving_default") -> dict[str, tuple[str, list[int]]]:
        """Input names → (dtype, shape) of a signature, from GetModelMetadata."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec)
        response = self._call(self.predictions.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def[signature_name]
        return {
            name: (tf.dtypes.as_dtype(info.dtype).name, [dim.size for dim in info.tensor_shape.dim])
            for name, info in signature.inputs.items()
        }

    def status(self) -> list[tuple[int, str, str]]:
        """(version, state, error message) of every version the server knows."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        response = self._call(self.models.GetModelStatus, request)
        return [
            (entry.version, get_model_status_pb2.ModelVersionStatus.State.Name(entry.state), entry.status.error_message)
            for entry in response.model_version_status
        ]


def read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="Send raw rows to a TF Serving model and print click probabilities.",
    )
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--version", type=int)
    parser.add_argument("--rows", required=True, help="JSON lines, one raw feature dict per line")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole call, retries included")
    parser.add_argument("--max_batch_size", type=int, default=256, help="rows per request (the server's limit)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = read_rows(args.rows)
    try:
        with PredictionClient(
            args.target, args.model_name, args.version, args.timeout, max_batch_size=args.max_batch_size
        ) as client:
            probabilities = client.predict(rows)
    except grpc.RpcError as error:
        print(f"[client] error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    for row, probability in zip(rows, probabilities):
        print(json.dumps({"probability": round(float(probability), 6), "row": row}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
