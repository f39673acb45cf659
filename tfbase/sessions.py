"""A SavedModel loaded into a session and run by signature, as TensorFlow Serving does.

TF Serving's C++ server (`LoadSavedModel`) imports the MetaGraph tagged
``serve`` into a session of its own, restores the variables, initialises the
asset tables with the graph's own ops, and runs each signature by its tensor
names. Nothing Python of the export is rebuilt, so nothing but the graph can
make it work. `serving.servable` serves versions loaded this way, and the
servability check (`featnet_tf.servability`) proves an export against it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

from tfbase import tensorflow_internals


def session_config(inter_op_threads: int = 0, intra_op_threads: int = 0) -> config_pb2.ConfigProto:
    """A session's thread pools (TF Serving's ``--tensorflow_inter_op_parallelism`` /
    ``--tensorflow_intra_op_parallelism``; 0: TensorFlow's choice)."""
    return tf.compat.v1.ConfigProto(
        inter_op_parallelism_threads=inter_op_threads, intra_op_parallelism_threads=intra_op_threads
    )


@dataclasses.dataclass
class SignatureCallable:
    """One signature of a loaded session, called with its inputs by key."""

    input_keys: list[str]
    output_keys: list[str]
    call: Callable

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_keys, self.call(*(inputs[key] for key in self.input_keys))))


def signature_callable(
    session: tf.compat.v1.Session, signature_key: str, signature: meta_graph_pb2.SignatureDef
) -> SignatureCallable:
    """Runs one signature in `session` through `Session::MakeCallable`. A
    sparse or composite input or output (not a plain tensor name) raises a
    `ValueError` naming it: the Predict API carries dense tensors only."""
    for kind, infos in (("input", signature.inputs), ("output", signature.outputs)):
        for key, info in infos.items():
            if info.WhichOneof("encoding") != "name":
                raise ValueError(
                    f"signature '{signature_key}' {kind} '{key}' is a {info.WhichOneof('encoding')} tensor; "
                    "only dense tensors can be served"
                )
    input_keys, output_keys = sorted(signature.inputs), sorted(signature.outputs)
    options = config_pb2.CallableOptions(
        feed=[signature.inputs[key].name for key in input_keys],
        fetch=[signature.outputs[key].name for key in output_keys],
    )
    return SignatureCallable(input_keys, output_keys, tensorflow_internals.make_callable(session, options))


@dataclasses.dataclass
class LoadedSavedModel:
    """A session holding a SavedModel's ``serve`` graph (finalized: running it adds no ops), and a
    callable per signature (the internal ``__saved_model_init_op`` and the like excluded)."""

    session: tf.compat.v1.Session
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    signatures: dict[str, SignatureCallable]


def load_saved_model(export_dir: str, config: config_pb2.ConfigProto | None = None) -> LoadedSavedModel:
    """Loads `export_dir` as TF Serving does, into a session of its own with `config` (`session_config`)."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default(), tensorflow_internals.deprecations_silenced():
        meta_graph = tf.compat.v1.saved_model.load(session, [tf.saved_model.SERVING], export_dir)
    signature_defs = {key: value for key, value in meta_graph.signature_def.items() if not key.startswith("__")}
    signatures = {key: signature_callable(session, key, value) for key, value in signature_defs.items()}
    graph.finalize()
    return LoadedSavedModel(session, signature_defs, signatures)
