"""`python -m featnet_tf.servability EXPORT_DIR INPUTS_DIR [...]`: load exports as TF Serving would.

The probe that `featnet_tf.saved_model.check_all` runs in a fresh process. It owns
one question: can a process that has none of featnet_tf's layers, models or
Keras classes registered load and call this SavedModel? So it imports only
TensorFlow, NumPy and the standard library (running it with ``-m`` executes
the package's ``__init__``, which sets environment variables and imports only
`tfbase.startup`), loads the export with `tfbase.sessions` as TF Serving's C++
server would,, and it reports any other featnet_tf module
that found its way into the process.

For each pair it reads ``INPUTS_DIR/examples.tfrecord`` (serialized
`tf.train.Example`s) and ``INPUTS_DIR/raw.npz`` (the same rows as
`predict_raw` inputs), and prints one JSON line: the number of distinct ops, those stock TensorFlow does not
register, Python ops, each signature's method name, the featnet_tf modules
imported, and each signature's probabilities for the rows.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfbase import sessions, tensorflow_internals

# What `python -m featnet_tf.servability` imports of featnet_tf: the package's
# __init__ (legacy Keras, quiet TensorFlow start-up) and this module; no layer or model.
OWN_MODULES = ("featnet_tf", "featnet_tf.servability", __name__)


def graph_ops(export_dir: str) -> tuple[set[str], dict[str, str]]:
    """The ops of every graph and function of the SavedModel (function calls
    excluded), and each signature's method name."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as stream:
        saved_model.ParseFromString(stream.read())
    ops: set[str] = set()
    functions: set[str] = set()
    methods: dict[str, str] = {}
    for meta_graph in saved_model.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops |= {node.op for node in function.node_def}
        methods.update({key: signature.method_name for key, signature in meta_graph.signature_def.items()})
    return ops - functions, methods


def signature_probabilities(export_dir: str, inputs_dir: str) -> dict[str, np.ndarray]:
    """Each of the four signatures' probability of the positive class for the
    rows of `inputs_dir`, loaded and run as TF Serving's C++ server does
    (`tfbase.sessions`): no Python object of the export is rebuilt, so nothing
    but the graph can make it work."""
    records = tf.data.TFRecordDataset(os.path.join(inputs_dir, "examples.tfrecord"))
    examples = np.array([record.numpy() for record in records], dtype=object)
    raw = dict(np.load(os.path.join(inputs_dir, "raw.npz"), allow_pickle=False).items())
    loaded = sessions.load_saved_model(export_dir)
    signatures = loaded.signatures
    try:
        return {
            "serving_default": signatures["serving_default"]({"examples": examples})["probability"],
            "predict_raw": signatures["predict_raw"](raw)["probability"],
            "classification": signatures["classification"]({"inputs": examples})["scores"][:, 1],
            "regression": signatures["regression"]({"inputs": examples})["outputs"],
        }
    finally:
        loaded.session.close()


def probe(export_dir: str, inputs_dir: str) -> dict[str, Any]:
    """The report `featnet_tf.saved_model.check_all` judges."""
    ops, methods = graph_ops(export_dir)
    probabilities = signature_probabilities(export_dir, inputs_dir)
    return {
        "ops": len(ops),
        "unregistered_ops": sorted(op for op in ops if not tensorflow_internals.is_registered_op(op)),
        "python_ops": sorted(op for op in ops if "PyFunc" in op),
        "methods": methods,
        "featnet_tf_modules": sorted(
            name for name in sys.modules if name.split(".")[0] == "featnet_tf" and name not in OWN_MODULES
        ),
        "probabilities": {key: value.astype(float).tolist() for key, value in probabilities.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or len(arguments) % 2:
        print(
            "usage: python -m featnet_tf.servability EXPORT_DIR INPUTS_DIR [EXPORT_DIR INPUTS_DIR ...]", file=sys.stderr
        )
        return 2
    for export_dir, inputs_dir in zip(arguments[::2], arguments[1::2]):
        print(json.dumps(probe(export_dir, inputs_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
