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

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


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
    """A TF Serving PredictionService client with deadlines and retries.

    Args:
        target: ``host:port`` of the server.
        model_name: the served model's name.
        version: a model version, or None for the newest.
        timeout: deadline of each call, in seconds.
        retries: attempts after an UNAVAILABLE answer, with exponential backoff.
        max_message_bytes: largest message sent or received.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.target, self.model_name, self.version = target, model_name, version
        self.timeout, self.retries = timeout, retries
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

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or attempt == self.retries:
                    raise
                time.sleep(0.1 * 2**attempt)
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
            key: tf.make_ndarray(value) for key, value in response.outputs.items()
        }, response.model_spec.version.value

    def predict(self, rows: Iterable[Mapping[str, Any] | example_pb2.Example]) -> np.ndarray:
        """Click probabilities of raw rows (or `tf.train.Example`s), sent as
        serialized examples to the `serving_default` signature."""
        serialized = [
            row.SerializeToString() if isinstance(row, example_pb2.Example) else to_example(row).SerializeToString()
            for row in rows
        ]
        outputs, _ = self.predict_tensors({"examples": tf.make_tensor_proto(serialized, dtype=tf.string)})
        return outputs["probability"]

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="Send raw rows to a TF Serving model and print click probabilities.",
    )
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--version", type=int)
    parser.add_argument("--rows", required=True, help="JSON lines, one raw feature dict per line")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    rows = read_rows(args.rows)
    try:
        with PredictionClient(args.target, args.model_name, args.version, args.timeout) as client:
            probabilities = client.predict(rows)
    except grpc.RpcError as error:
        print(f"[client] error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    for row, probability in zip(rows, probabilities):
        print(json.dumps({"probability": round(float(probability), 6), "row": row}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
