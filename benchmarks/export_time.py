"""Seconds to write a run's SavedModel, with and without Keras' layer traces.

`featnet_tf.saved_model.export_saved_model` writes the four serving
signatures only; Keras would also trace every layer's `call` for its own
loader, which TF Serving never reads. In the same process, on the same run's
serving model, alternately: (1) `tf.saved_model.save` as Keras leaves it,
(2) as the export does it. One line per write, then the median ratio, the
size of each export, and whether both load in a plain TensorFlow process
with the same probabilities (the servability check).

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


def directory_megabytes(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 1e6


def write(model, spec, path: str, keras_traces: bool) -> float:
    start = time.perf_counter()
    module = saved_model.ServingModule(model, spec)
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
    seconds: dict[bool, list[float]] = {True: [], False: []}
    paths = {}
    with tempfile.TemporaryDirectory() as root:
        _, case = export.write_export(run, os.path.join(root, "reference"))  # rows, training-path probabilities
        for repeat in range(args.repeats):
            for keras_traces in (True, False):
                path = os.path.join(root, f"{'keras' if keras_traces else 'serving'}_{repeat}")
                seconds[keras_traces].append(write(model, run.spec, path, keras_traces))
                paths[keras_traces] = path
                label = "with Keras' layer traces" if keras_traces else "signatures only (the export)"
                print(f"write {repeat + 1}, {label}: {seconds[keras_traces][-1]:.1f} s", flush=True)
        cases = [saved_model.ServabilityCase(paths[k], run.spec, case.examples, case.expected) for k in (True, False)]
        reports = saved_model.check_all(cases)
        for keras_traces, report in zip((True, False), reports):
            label = "with Keras' layer traces" if keras_traces else "signatures only (the export)"
            print(
                f"{label}: median {statistics.median(seconds[keras_traces]):.1f} s, "
                f"{directory_megabytes(paths[keras_traces]):.1f} MB, {report['ops']} ops, servable, "
                f"max difference {max(report['max_abs_difference'].values()):.2g}"
            )
    ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
    print(f"the export writes {ratio:.2f}× faster than with Keras' layer traces")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
