"""The SavedModel library: what TensorFlow Serving loads, written and checked.

This module owns the exported object (`ServingModule`, its four signatures),
the next version of an export base (`next_version`; `tfbase.versions` lists them), the
atomic write of a version (`export_saved_model`) and the servability check
(`check_all`, which runs `featnet_tf.servability` in a fresh process). It knows
nothing of runs, configs or training: `featnet_tf.lifecycle` hands it a model.

An export is written in two steps: `stage_saved_model` writes the complete
SavedModel into a hidden directory of the export base, which servers and batch
jobs ignore, so that it can be checked there; `publish` renames it into place
as ``<export_base>/<version>/`` (TF Serving's layout). A server watching the
base path never sees half a model, nor one that failed its check. Versions
increase and are never reused: the last one published is recorded in
``<export_base>/.last_version``, so deleting a version and exporting again
gives a new number, never the deleted one's (which a server may still hold).
`export_saved_model` does both steps without a check. Signatures:

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

`check_all` loads exports in a fresh Python process that never imports
featnet_tf's models or layers (``python -m featnet_tf.servability``), verifies
every op is a stock TensorFlow op, calls every signature and compares with the
trained model's predictions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import uuid
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from featnet_tf._keras_internals import without_keras_traces
from featnet_tf.data import parsing_spec
from featnet_tf.features import FeatureSpec, Field
from featnet_tf.files import is_url, write_atomically
from tfbase.versions import list_versions

SIGNATURE_METHODS = {
    tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: tf.saved_model.PREDICT_METHOD_NAME,
    "predict_raw": tf.saved_model.PREDICT_METHOD_NAME,
    "classification": tf.saved_model.CLASSIFY_METHOD_NAME,
    "regression": tf.saved_model.REGRESS_METHOD_NAME,
}
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
LAST_VERSION_FILE = ".last_version"  # hidden: not a version to TF Serving


def raw_input_spec(field: Field) -> tf.TensorSpec:
    """The `predict_raw` input of one field: a batch of its kind's raw values
    (strings for categoricals, float32 with NaN for missing numerics,
    ""-padded strings for multi-hot, floats for dense vectors)."""
    kind = field.field_kind
    return tf.TensorSpec([None, *kind.raw_shape(field)], kind.raw_dtype, name=field.name)


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
        # The examples' raw values as `predict_raw` takes them (multi-hot lists
        # ""-padded), through `predict_raw` itself: the model is traced once
        # for the four signatures, which halves the time an export takes.
        features = {
            name: value.to_tensor(default_value="") if isinstance(value, tf.RaggedTensor) else value
            for name, value in self._parse(examples).items()
        }
        return self.predict_raw(features)

    def _classify(self, inputs):
        probability = self.serve_examples(inputs)["probability"]
        scores = tf.stack([1.0 - probability, probability], axis=1)
        classes = tf.broadcast_to(tf.constant([["0", "1"]]), tf.shape(scores))
        return {"classes": classes, "scores": scores}

    def _regress(self, inputs):
        return {"outputs": self.serve_examples(inputs)["probability"]}

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
    """One more than the largest version ever published under `export_base`
    (on disk, or recorded there when it was published and since deleted)."""
    if tf.io.gfile.exists(export_base) and not tf.io.gfile.isdir(export_base):
        raise ValueError(f"The export base {export_base} is a file, not a directory.")
    return max([*list_versions(export_base), last_published_version(export_base)]) + 1


def last_published_version(export_base: str) -> int:
    """The version `publish` last recorded under `export_base` (0 if none)."""
    path = os.path.join(export_base, LAST_VERSION_FILE)
    if not tf.io.gfile.exists(path):
        return 0
    with tf.io.gfile.GFile(path) as stream:
        text = stream.read().strip()
    return int(text) if text.isdigit() else 0


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

    tf.io.gfile.makedirs(os.path.join(export_dir, "assets.extra"))
    with tf.io.TFRecordWriter(os.path.join(export_dir, WARMUP_FILE)) as writer:
        for size in sorted({1, len(examples)}):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(list(examples[:size]), dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


@dataclasses.dataclass(frozen=True)
class StagedExport:
    """A complete SavedModel in a hidden directory of its export base, not yet a version."""

    export_base: str
    path: str


def stage_saved_model(
    model: tf.keras.Model, spec: FeatureSpec, export_base: str, warmup_examples: Sequence[bytes] = ()
) -> StagedExport:
    """Writes `model` (raw inputs → logits) with its signatures and warm-up
    requests into a hidden directory of `export_base`, to check before `publish`."""
    if tf.io.gfile.exists(export_base) and not tf.io.gfile.isdir(export_base):
        raise ValueError(f"The export base {export_base} is a file, not a directory.")
    tf.io.gfile.makedirs(export_base)
    staging = os.path.join(export_base, f".tmp-{uuid.uuid4().hex[:12]}")
    try:
        module = ServingModule(model, spec)
        # TF Serving calls the four signatures only; without Keras' own traces
        # of every layer's `call` (which only Keras' loader reads) the export
        # takes half the time and loads without custom-gradient warnings.
        with without_keras_traces():
            tf.saved_model.save(module, staging, signatures=module.signatures())
        set_signature_methods(staging)
        if warmup_examples:
            write_warmup_requests(staging, warmup_examples, os.path.basename(os.path.normpath(export_base)))
    except BaseException:
        _remove_tree(staging)
        raise
    return StagedExport(export_base, staging)


def publish(staged: StagedExport) -> str:
    """Renames a staged export into place as the next version (one atomic
    rename, a number never used before under its base) and returns its directory."""
    while True:
        version = next_version(staged.export_base)
        final = os.path.join(staged.export_base, str(version))
        try:
            # fails if another exporter took this number meanwhile
            tf.io.gfile.rename(staged.path, final, overwrite=False)
        except (OSError, tf.errors.OpError):
            if tf.io.gfile.exists(final) and tf.io.gfile.exists(staged.path):
                continue
            raise
        break
    write_atomically(os.path.join(staged.export_base, LAST_VERSION_FILE), f"{version}\n")
    return final


def discard(staged: StagedExport) -> None:
    """Removes a staged export that will not be published."""
    _remove_tree(staged.path)


def _remove_tree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def export_saved_model(
    model: tf.keras.Model, spec: FeatureSpec, export_base: str, warmup_examples: Sequence[bytes] = ()
) -> str:
    """Stages and publishes `model` as the next version, unchecked; returns its directory."""
    return publish(stage_saved_model(model, spec, export_base, warmup_examples))


def parse_examples(spec: FeatureSpec, examples: Sequence[bytes]) -> dict[str, Any]:
    """Serialized raw-value examples as the model's raw input tensors."""
    return tf.io.parse_example(tf.constant(list(examples)), parsing_spec(spec, with_label=False))


def raw_inputs_from_examples(spec: FeatureSpec, examples: Sequence[bytes]) -> dict[str, np.ndarray]:
    """The `predict_raw` inputs of the same rows as serialized `examples`."""
    parsed = parse_examples(spec, examples)
    inputs = {}
    for field in spec.fields:
        value = parsed[field.name]
        if isinstance(value, tf.RaggedTensor):
            value = value.to_tensor(default_value="")
        inputs[field.name] = value.numpy()
    return inputs


# === The servability check ===


class ServabilityError(AssertionError):
    """The export is not servable by TensorFlow Serving as it stands."""


@dataclasses.dataclass(frozen=True)
class ServabilityCase:
    """One export to check: its directory, its spec, a few serialized raw
    rows and the trained model's probabilities for them."""

    export_dir: str
    spec: FeatureSpec
    examples: Sequence[bytes]
    expected: np.ndarray


def check_all(cases: Sequence[ServabilityCase], atol: float = 1e-6) -> list[dict[str, Any]]:
    """Checks each export in one fresh process (``python -m featnet_tf.servability``,
    which loads none of featnet_tf's layers or models; one TensorFlow start-up
    for all): stock ops only, TF Serving's signature methods, and every
    signature reproducing the case's `expected` probabilities for its
    `examples` within `atol`. Returns the reports; raises `ServabilityError`."""
    diverged = [case.export_dir for case in cases if not np.all(np.isfinite(np.asarray(case.expected)))]
    if diverged:  # no need to start a process to know
        raise ServabilityError(
            f"{diverged} are not servable as they are: the trained model's own probabilities are not finite "
            "(the model diverged)"
        )
    with tempfile.TemporaryDirectory() as workspace:
        arguments = []
        for index, case in enumerate(cases):
            inputs_dir = os.path.join(workspace, str(index))
            os.makedirs(inputs_dir)
            write_probe_inputs(inputs_dir, case.spec, case.examples)
            arguments += [case.export_dir if is_url(case.export_dir) else os.path.abspath(case.export_dir), inputs_dir]
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = package_root  # finds `featnet_tf.servability` and nothing else of a caller's path
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        result = subprocess.run(
            [sys.executable, "-m", "featnet_tf.servability", *arguments],
            capture_output=True,
            text=True,
            env=env,
            cwd=workspace,
        )
    if result.returncode != 0:
        exports = [case.export_dir for case in cases]
        raise ServabilityError(f"Loading {exports} in a plain TensorFlow process failed:\n{result.stderr[-3000:]}")
    reports = [json.loads(line) for line in result.stdout.strip().splitlines()[-len(cases) :]]
    return [judge(case, report, atol) for case, report in zip(cases, reports)]


def write_probe_inputs(inputs_dir: str, spec: FeatureSpec, examples: Sequence[bytes]) -> None:
    """The rows as `featnet_tf.servability` reads them: serialized examples and the same rows as raw tensors."""
    with tf.io.TFRecordWriter(os.path.join(inputs_dir, "examples.tfrecord")) as writer:
        for example in examples:
            writer.write(example)
    raw = raw_inputs_from_examples(spec, examples)
    arrays = {key: value.astype(str) if value.dtype == object else value for key, value in raw.items()}
    np.savez(os.path.join(inputs_dir, "raw.npz"), **arrays)


def judge(case: ServabilityCase, report: dict[str, Any], atol: float) -> dict[str, Any]:
    """The probe's report with each signature's largest difference from the
    trained model; `ServabilityError` naming every problem."""
    problems = []
    if report["unregistered_ops"]:
        problems.append(f"ops that stock TensorFlow does not register: {report['unregistered_ops']}")
    if report["python_ops"]:
        problems.append(f"Python ops, which TF Serving cannot run: {report['python_ops']}")
    if report["featnet_tf_modules"]:
        problems.append(f"the check process imported featnet_tf's code: {report['featnet_tf_modules']}")
    for key, method in SIGNATURE_METHODS.items():
        if report["methods"].get(key) != method:
            problems.append(f"signature {key} has method {report['methods'].get(key)!r}, expected {method!r}")
    expected = np.asarray(case.expected, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(expected)):
        problems.append(
            f"the trained model's own probabilities are not finite for {int(np.sum(~np.isfinite(expected)))} of "
            f"{expected.size} rows (the model diverged)"
        )
    report["max_abs_difference"] = {}
    for key, values in report.pop("probabilities").items():
        difference = float(np.max(np.abs(np.asarray(values) - expected))) if len(expected) else 0.0
        report["max_abs_difference"][key] = difference
        if not difference <= atol:
            problems.append(f"signature {key} differs from the trained model by {difference:.3g} (> {atol})")
    if problems:
        raise ServabilityError(f"{case.export_dir} is not servable as is: " + "; ".join(problems))
    return report
