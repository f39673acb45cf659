"""SavedModel export for TensorFlow Serving, and the servability check.

`export_saved_model` writes ``<export_base>/<version>/`` (TF Serving's layout,
versions increasing integers), first into a hidden temporary directory that is
renamed into place only when complete, so a server watching the base path
never sees half a model. Signatures:

* ``serving_default`` (Predict): ``examples``, a batch of serialized
  `tf.train.Example`s with raw values as the pipeline's input had them →
  ``probability``, ``logit``;
* ``classification`` (Classify, method ``tensorflow/serving/classify``):
  ``inputs`` examples → ``classes`` ("0", "1") and ``scores``;
* ``regression`` (Regress, method ``tensorflow/serving/regress``): ``inputs``
  examples → ``outputs`` (the probability);
* ``predict_raw`` (Predict): one tensor per raw field (strings for
  categoricals, float32 with NaN for missing numerics, ""-padded strings for
  multi-hot, floats for dense vectors) → ``probability``, ``logit``.

The model's `FeatureTransform` (vocabulary lookup, hashing, bucketization,
defaults) is inside the SavedModel, vocabularies as assets. Warm-up requests
go to ``assets.extra/tf_serving_warmup_requests``.

`check` loads an export in a fresh Python process that never imports
featnet_tf, verifies every op is a stock TensorFlow op, calls every signature
and compares with the trained model's predictions.

    python -m featnet_tf.export --run_dir runs/criteo [--export_base /models/featnet]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from featnet_tf.data import parsing_spec
from featnet_tf.features import FeatureSpec, Field

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_METHODS = {
    "serving_default": PREDICT_METHOD,
    "predict_raw": PREDICT_METHOD,
    "classification": CLASSIFY_METHOD,
    "regression": REGRESS_METHOD,
}
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def raw_input_spec(field: Field) -> tf.TensorSpec:
    """The `predict_raw` input of one field."""
    if field.kind == "categorical":
        return tf.TensorSpec([None], tf.string, name=field.name)
    if field.kind == "numeric":
        return tf.TensorSpec([None], tf.float32, name=field.name)
    if field.kind == "multi_hot":
        return tf.TensorSpec([None, None], tf.string, name=field.name)
    return tf.TensorSpec([None, field.dimension], tf.float32, name=field.name)


class ServingModule(tf.Module):
    """The exported object: the raw-input model and its four signatures."""

    def __init__(self, model: tf.keras.Model, spec: FeatureSpec) -> None:
        super().__init__(name="featnet_serving")
        self.model = model
        self._parse_spec = parsing_spec(spec, with_label=False)
        examples = tf.TensorSpec([None], tf.string, name="examples")
        inputs = tf.TensorSpec([None], tf.string, name="inputs")
        self.serve_examples = tf.function(self._serve_examples, input_signature=[examples])
        self.classify = tf.function(self._classify, input_signature=[inputs])
        self.regress = tf.function(self._regress, input_signature=[inputs])
        raw = {field.name: raw_input_spec(field) for field in spec.fields}
        self.predict_raw = tf.function(self._predict_raw, input_signature=[raw])

    def _outputs(self, features) -> dict[str, tf.Tensor]:
        logit = tf.reshape(tf.cast(self.model(features, training=False), tf.float32), [-1])
        return {"probability": tf.sigmoid(logit), "logit": logit}

    def _parse(self, serialized):
        return tf.io.parse_example(serialized, self._parse_spec)

    def _serve_examples(self, examples):
        return self._outputs(self._parse(examples))

    def _classify(self, inputs):
        probability = self._outputs(self._parse(inputs))["probability"]
        scores = tf.stack([1.0 - probability, probability], axis=1)
        classes = tf.broadcast_to(tf.constant([["0", "1"]]), tf.shape(scores))
        return {"classes": classes, "scores": scores}

    def _regress(self, inputs):
        return {"outputs": self._outputs(self._parse(inputs))["probability"]}

    def _predict_raw(self, features):
        return self._outputs(dict(features))

    def signatures(self) -> dict[str, Any]:
        return {
            "serving_default": self.serve_examples,
            "predict_raw": self.predict_raw,
            "classification": self.classify,
            "regression": self.regress,
        }


def next_version(export_base: str) -> int:
    """One more than the largest integer version under `export_base`."""
    if tf.io.gfile.exists(export_base) and not tf.io.gfile.isdir(export_base):
        raise ValueError(f"The export base {export_base} is a file, not a directory.")
    if not tf.io.gfile.exists(export_base):
        return 1
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_base) if name.rstrip("/").isdigit()]
    return max(versions, default=0) + 1


def set_signature_methods(export_dir: str) -> None:
    """`tf.saved_model.save` marks every signature as Predict; TF Serving's
    Classify and Regress APIs need their own method names."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as stream:
        saved_model.ParseFromString(stream.read())
    for meta_graph in saved_model.meta_graphs:
        for key, method in SIGNATURE_METHODS.items():
            meta_graph.signature_def[key].method_name = method
    with tf.io.gfile.GFile(path, "wb") as stream:
        stream.write(saved_model.SerializeToString())


def write_warmup_requests(export_dir: str, examples: Sequence[bytes], model_name: str) -> None:
    """TF Serving replays these Predict requests when it loads the version."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(export_dir, WARMUP_FILE)) as writer:
        for size in sorted({1, len(examples)}):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(list(examples[:size]), dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def export_saved_model(model: tf.keras.Model, spec: FeatureSpec, export_base: str, warmup_examples: Sequence[bytes] = ()) -> str:
    """Writes `model` (raw inputs → logits) as the next version under
    `export_base` and returns its directory."""
    version = next_version(export_base)
    os.makedirs(export_base, exist_ok=True)
    final = os.path.join(export_base, str(version))
    staging = os.path.join(export_base, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        module = ServingModule(model, spec)
        tf.saved_model.save(module, staging, signatures=module.signatures())
        set_signature_methods(staging)
        if warmup_examples:
            write_warmup_requests(staging, warmup_examples, os.path.basename(os.path.normpath(export_base)))
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def raw_inputs_from_examples(spec: FeatureSpec, examples: Sequence[bytes]) -> dict[str, np.ndarray]:
    """The `predict_raw` inputs of the same rows as serialized `examples`."""
    parsed = tf.io.parse_example(tf.constant(list(examples)), parsing_spec(spec, with_label=False))
    inputs = {}
    for field in spec.fields:
        value = parsed[field.name]
        if isinstance(value, tf.RaggedTensor):
            value = value.to_tensor(default_value="")
        inputs[field.name] = value.numpy()
    return inputs


# === The servability check ===

_CHECK_PROGRAM = r'''
import json, os, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

export_dir, inputs_dir = sys.argv[1], sys.argv[2]
saved_model = saved_model_pb2.SavedModel()
with open(os.path.join(export_dir, "saved_model.pb"), "rb") as stream:
    saved_model.ParseFromString(stream.read())
ops, functions, methods = set(), set(), {}
for meta_graph in saved_model.meta_graphs:
    ops |= {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        functions.add(function.signature.name)
        ops |= {node.op for node in function.node_def}
    methods.update({key: sig.method_name for key, sig in meta_graph.signature_def.items()})
ops -= functions
unregistered = sorted(op for op in ops if op_def_registry.get(op) is None)
python_ops = sorted(op for op in ops if "PyFunc" in op)

loaded = tf.saved_model.load(export_dir)
examples = [record.numpy() for record in tf.data.TFRecordDataset(os.path.join(inputs_dir, "examples.tfrecord"))]
raw = dict(np.load(os.path.join(inputs_dir, "raw.npz"), allow_pickle=False))
signatures = loaded.signatures
outputs = {
    "serving_default": signatures["serving_default"](examples=tf.constant(examples))["probability"].numpy(),
    "predict_raw": signatures["predict_raw"](**{k: tf.constant(v) for k, v in raw.items()})["probability"].numpy(),
    "classification": signatures["classification"](inputs=tf.constant(examples))["scores"].numpy()[:, 1],
    "regression": signatures["regression"](inputs=tf.constant(examples))["outputs"].numpy(),
}
print(json.dumps({
    "ops": len(ops),
    "unregistered_ops": unregistered,
    "python_ops": python_ops,
    "methods": methods,
    "featnet_tf_imported": any(name.split(".")[0] == "featnet_tf" for name in sys.modules),
    "probabilities": {key: value.astype(float).tolist() for key, value in outputs.items()},
}))
'''


class ServabilityError(AssertionError):
    """The export is not servable by TensorFlow Serving as it stands."""


def check(export_dir: str, spec: FeatureSpec, examples: Sequence[bytes], expected: np.ndarray, atol: float = 1e-6) -> dict[str, Any]:
    """Checks in a fresh process (that never imports featnet_tf) that
    `export_dir` uses stock ops only, carries TF Serving's signature methods,
    and that every signature reproduces `expected` probabilities for
    `examples` within `atol`. Returns the report; raises `ServabilityError`."""
    export_dir = os.path.abspath(export_dir)
    with tempfile.TemporaryDirectory() as inputs_dir:
        with tf.io.TFRecordWriter(os.path.join(inputs_dir, "examples.tfrecord")) as writer:
            for example in examples:
                writer.write(example)
        raw = raw_inputs_from_examples(spec, examples)
        np.savez(os.path.join(inputs_dir, "raw.npz"), **{k: v.astype(str) if v.dtype == object else v for k, v in raw.items()})
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        result = subprocess.run(
            [sys.executable, "-c", _CHECK_PROGRAM, export_dir, inputs_dir],
            capture_output=True,
            text=True,
            env=env,
            cwd=inputs_dir,
        )
    if result.returncode != 0:
        raise ServabilityError(f"Loading {export_dir} in a plain TensorFlow process failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    problems = []
    if report["unregistered_ops"]:
        problems.append(f"ops that stock TensorFlow does not register: {report['unregistered_ops']}")
    if report["python_ops"]:
        problems.append(f"Python ops, which TF Serving cannot run: {report['python_ops']}")
    if report["featnet_tf_imported"]:
        problems.append("the check process imported featnet_tf")
    for key, method in SIGNATURE_METHODS.items():
        if report["methods"].get(key) != method:
            problems.append(f"signature {key} has method {report['methods'].get(key)!r}, expected {method!r}")
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    report["max_abs_difference"] = {}
    for key, values in report.pop("probabilities").items():
        difference = float(np.max(np.abs(np.asarray(values) - expected))) if len(expected) else 0.0
        report["max_abs_difference"][key] = difference
        if not difference <= atol:
            problems.append(f"signature {key} differs from the trained model by {difference:.3g} (> {atol})")
    if problems:
        raise ServabilityError(f"{export_dir} is not servable as is: " + "; ".join(problems))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.export", description="Export a trained run as the next SavedModel version and check it.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--export_base", help="TF Serving model base path (default: <run_dir>/export)")
    args = parser.parse_args(argv)
    from featnet_tf import training  # imports the models; kept out of `import featnet_tf.export`

    try:
        run = training.load_run(args.run_dir)
        path, report = training.export_run(run, args.export_base)
    except (ValueError, ServabilityError) as error:
        print(f"[export] error: {error}", file=sys.stderr)
        return 1
    print(f"[export] wrote {path}; servability check passed ({report['ops']} ops, max difference {max(report['max_abs_difference'].values()):.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
