"""Refusals with their status code, and what the model said in the caller's terms.

`RequestError` is a request the server refuses, with the gRPC status code
both APIs answer it with (REST maps it to an HTTP status).

An error raised inside a SavedModel's graph reaches Python as
``Graph execution error:`` followed by node names, a stack placeholder and, on
one line, TensorFlow's own reason (``Name: <unknown>, Key: I1, Index: 0.  Data
types don't match. ...``). `explain_model_error` finds that line and says it
the way a client reads it: which row, which feature, what was wrong.
"""

from __future__ import annotations

import re
from typing import Mapping

import grpc
import numpy as np


class RequestError(Exception):
    """A request the server refuses, with its gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


_TYPE_NAMES = {"string": "strings (bytes_list)", "float": "floats (float_list)", "int64": "integers (int64_list)"}
_PATTERNS = (
    (
        re.compile(
            r"Key: (?P<key>[^,]+), Index: (?P<row>\d+)\.\s+Data types don't match\. "
            r"Data type: (?P<got>\w+) but expected type: (?P<want>\w+)"
        ),
        lambda m: (
            f"row {m['row']}: feature '{m['key']}' holds {_TYPE_NAMES.get(m['got'], m['got'])}, "
            f"the model expects {_TYPE_NAMES.get(m['want'], m['want'])}"
        ),
    ),
    (
        re.compile(
            r"Key: (?P<key>[^,]+), Index: (?P<row>\d+)\.\s+Number of (?P<type>\w+) values != expected\.\s+"
            r"Values size: (?P<size>\d+) but output shape: \[(?P<shape>[^\]]*)\]"
        ),
        lambda m: (
            f"row {m['row']}: feature '{m['key']}' holds {m['size']} values, the model expects "
            + (f"shape [{m['shape']}]" if m["shape"] else "exactly one")
        ),
    ),
    (
        re.compile(r"Feature: (?P<key>\S+) \(data type: (?P<want>\w+)\) is required but could not be found"),
        lambda m: f"feature '{m['key']}' ({m['want']}) is required and missing",
    ),
    (
        re.compile(r"Could not parse example input, value: '(?P<value>.*)'", re.DOTALL),
        None,  # needs the inputs: see `_unparseable`
    ),
)
_NOISE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\s*\[\[|\s*$)")


def _reason_line(message: str) -> str:
    """TensorFlow's own reason, without the graph's node names and traces."""
    for line in message.splitlines():
        if not _NOISE.match(line):
            return re.sub(r"\s*\[\[.*$|\s*\[Op:[^\]]*\]\s*$", "", line).strip()
    return message.strip().splitlines()[0] if message.strip() else "the model refused the request"


def _unparseable(inputs: Mapping[str, np.ndarray]) -> str:
    """Which row of which string input is not a serialized `tf.train.Example`."""
    from tensorflow.core.example import example_pb2

    for name, value in inputs.items():
        if value.dtype != object:
            continue
        for row, serialized in enumerate(value.reshape(-1)):
            try:
                example_pb2.Example.FromString(serialized)
            except Exception:  # the protobuf decoder's error says nothing more useful
                preview = repr(serialized[:40]) + ("…" if len(serialized) > 40 else "")
                return f"row {row} of input '{name}' is not a serialized tf.train.Example ({preview})"
    return "an input is not a serialized tf.train.Example"


def explain_model_error(message: str, inputs: Mapping[str, np.ndarray]) -> str:
    """The reason an in-graph error gives, naming the row and feature at fault."""
    reason = _reason_line(message)
    for pattern, explain in _PATTERNS:
        match = pattern.search(reason)
        if match:
            return _unparseable(inputs) if explain is None else explain(match)
    return reason
