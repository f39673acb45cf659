"""Seconds for the servability probe to load an export and call its four signatures, two ways.

`featnet_tf.servability` used to rebuild the export's Python objects
(`tf.saved_model.load`, TF2's object graph) and call its concrete functions;
it now loads the MetaGraph tagged ``serve`` into a session and runs each
signature by its tensor names, as TF Serving's C++ `SavedModelBundle` does.
Both in the same process, alternately, on the same export and rows; one line
per load, then the medians, their ratio and the largest difference between
the two ways' probabilities.

    python benchmarks/servability_probe.py --export demo_output/run/export/1 \
        --examples 'demo_output/data/test/*.tfrecord.gz' --repeats 5
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

from featnet_tf import servability


def object_graph_probabilities(export_dir: str, examples: list[bytes]) -> np.ndarray:
    """The probe before: TF2's object loading, each signature as a concrete function."""
    signatures = tf.saved_model.load(export_dir).signatures
    batch = tf.constant(examples)
    outputs = [
        signatures["serving_default"](examples=batch)["probability"].numpy(),
        signatures["classification"](inputs=batch)["scores"].numpy()[:, 1],
        signatures["regression"](inputs=batch)["outputs"].numpy(),
    ]
    return np.stack(outputs)


def session_probabilities(export_dir: str, examples: list[bytes]) -> np.ndarray:
    """The probe now: the MetaGraph in a session, signatures run by tensor name."""
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        signatures = tf.compat.v1.saved_model.loader.load(session, [tf.saved_model.SERVING], export_dir).signature_def

        def run(key: str, output: str, name: str) -> np.ndarray:
            return session.run(signatures[key].outputs[output].name, {signatures[key].inputs[name].name: examples})

        return np.stack(
            [
                run("serving_default", "probability", "examples"),
                run("classification", "scores", "inputs")[:, 1],
                run("regression", "outputs", "inputs"),
            ]
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True, help="one version directory")
    parser.add_argument("--examples", required=True, help="TFRecord glob of serialized raw-value examples")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    files = sorted(glob.glob(args.examples))
    examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(args.rows)]
    ways = {"object graph (before)": object_graph_probabilities, "session (the probe now)": session_probabilities}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    answers = {}
    for repeat in range(args.repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            answers[name] = way(args.export, examples)
            seconds[name].append(time.perf_counter() - start)
            print(f"load {repeat + 1}, {name}: {seconds[name][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"{name}: median {median:.2f} s")
    before, now = medians.values()
    difference = float(np.max(np.abs(np.subtract(*answers.values()))))
    print(f"the probe loads and calls {before / now:.2f}× faster; largest difference {difference:.2g}")
    print(f"(graph ops the probe checks: {len(servability.graph_ops(args.export)[0])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
