"""Seconds to write a run's SavedModel: the export, and the two ways it was written before.

In the same process, on the same run's serving model, alternately:

1. ``keras traces``: `tf.saved_model.save` as Keras leaves it, tracing every
   layer's `call` for Keras' own loader (which TF Serving never reads), each
   signature tracing the model anew (the export before issue 13);
2. ``per-signature traces``: without Keras' layer traces, each of the four
   signatures still tracing the model (the export of issue 13);
3. ``one trace (the export)``: `featnet_tf.saved_model.ServingModule` as it
   is: ``serving_default`` parses and calls ``predict_raw``, Classify and
   Regress call ``serving_default``, so the model is traced once.

One line per write, then each variant's median, size and servability (all
three checked in one plain TensorFlow process against the training path's
probabilities), and the ratios.

    python benchmarks/export_time.py --run_dir demo_output/run --repeats 3
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import os
import statistics
import sys
import tempfile
import time

import tensorflow as tf
from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils

from featnet_tf import export, saved_model, training


class PerSignatureTraces(saved_model.ServingModule):
    """The serving module before this change: every signature traces the model itself."""

    def _serve_examples(self, examples):
        return self._outputs(self._parse(examples))

    def _classify(self, inputs):
        probability = self._outputs(self._parse(inputs))["probability"]
        scores = tf.stack([1.0 - probability, probability], axis=1)
        return {"classes": tf.broadcast_to(tf.constant([["0", "1"]]), tf.shape(scores)), "scores": scores}

    def _regress(self, inputs):
        return {"outputs": self._outputs(self._parse(inputs))["probability"]}


VARIANTS = {  # label: (module class, Keras' layer traces)
    "keras traces": (PerSignatureTraces, True),
    "per-signature traces": (PerSignatureTraces, False),
    "one trace (the export)": (saved_model.ServingModule, False),
}


def directory_megabytes(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 1e6


def write(model, spec, path: str, module_class, keras_traces: bool) -> float:
    start = time.perf_counter()
    module = module_class(model, spec)
    with keras_saved_model_utils.keras_option_scope(save_traces=keras_traces):
        tf.saved_model.save(module, path, signatures=module.signatures())
    saved_model.set_signature_methods(path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a trained run (e.g. the demo's demo_output/run)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    run = training.load_run(args.run_dir)
    model = run.serving_model()
    seconds: dict[str, list[float]] = {label: [] for label in VARIANTS}
    paths: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as root:
        _, case = export.write_export(run, os.path.join(root, "reference"))  # rows, training-path probabilities
        for repeat in range(args.repeats):
            for index, (label, (module_class, keras_traces)) in enumerate(VARIANTS.items()):
                path = os.path.join(root, f"variant{index}_{repeat}")
                seconds[label].append(write(model, run.spec, path, module_class, keras_traces))
                paths[label] = path
                print(f"write {repeat + 1}, {label}: {seconds[label][-1]:.1f} s", flush=True)
        cases = [
            saved_model.ServabilityCase(paths[label], run.spec, case.examples, case.expected) for label in VARIANTS
        ]
        reports = saved_model.check_all(cases)
        for label, report in zip(VARIANTS, reports):
            print(
                f"{label}: median {statistics.median(seconds[label]):.1f} s, "
                f"{directory_megabytes(paths[label]):.1f} MB, "
                f"{report['ops']} ops, servable, max difference {max(report['max_abs_difference'].values()):.2g}"
            )
    export_median = statistics.median(seconds["one trace (the export)"])
    for label in list(VARIANTS)[:-1]:
        print(f"the export writes {statistics.median(seconds[label]) / export_median:.2f}× faster than with {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
