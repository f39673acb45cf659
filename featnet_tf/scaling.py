"""How each model's cost grows with the number of fields M (paper §3.1.5).

`measure_cell` runs in a fresh process per (model, M): it builds the model on
M categorical fields, times compiled forward+backward+Adam steps on random
ids, and reports the process's peak resident memory above what it held before
the model was built. `run_scaling` drives the cells, fits the growth exponent
``k`` of ``time ∝ M^k`` per model by least squares in log-log space, and writes
``scaling.csv``, ``scaling.md`` and the log-log plot ``scaling.png``.

The baselines use narrower settings than their defaults here (DNNs of 128,
CIN 2×16 maps, 64 AFN neurons, FiBiNET `field_all`), the same at every M, so
that M = 400 fits this machine; FeatNet keeps the paper's settings. The
growth with M, not the absolute cost, is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Sequence

import numpy as np

SCALING_SETTINGS: dict[str, dict[str, Any]] = {
    "featnet": {},
    "featnet_eq13": {},
    "lr": {},
    "fm": {},
    "deepfm": {"hidden_units": (128,)},
    "xdeepfm": {"cin_layer_sizes": (16, 16), "hidden_units": (128,)},
    "autoint": {},
    "autoint_plus": {"hidden_units": (128,)},
    "afn": {"num_neurons": 64, "hidden_units": (128,)},
    "afn_plus": {"num_neurons": 64, "hidden_units": (128,), "ensemble_units": (128,)},
    "fibinet": {"bilinear_type": "field_all", "hidden_units": (128,)},
    "dcnv2": {"hidden_units": (128,), "projection_dim": 64},
}


def _rss_megabytes() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_cell(
    model_name: str, num_fields: int, batch_size: int, steps: int, ids_per_field: int = 1000
) -> dict[str, Any]:
    import tensorflow as tf
    import tf_keras as keras

    import featnet_tf  # noqa: F401
    from featnet_tf.features import categorical_spec
    from featnet_tf.models import build_model

    spec = categorical_spec(num_fields, ids_per_field)
    rng = np.random.default_rng(0)
    features = {f.name: tf.constant(rng.integers(0, f.num_ids, batch_size)) for f in spec.fields}
    labels = tf.constant(rng.integers(0, 2, (batch_size, 1)).astype(np.float32))
    before = _rss_megabytes()
    model = build_model(model_name, spec, **SCALING_SETTINGS[model_name])
    model.compile(keras.optimizers.Adam(1e-4), keras.losses.BinaryCrossentropy(from_logits=True))
    step = tf.function(lambda x, y: model.train_step((x, y)))
    for _ in range(2):
        step(features, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step(features, labels)["loss"])
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model_name,
        "num_fields": num_fields,
        "batch_size": batch_size,
        "ms_per_step": 1000 * float(np.median(times)),
        "peak_memory_mb": max(peak - before, 0.0),
        "parameters": model.count_params(),
    }


def growth_exponent(fields: Sequence[int], values: Sequence[float]) -> float:
    """k of ``value ∝ M^k``, least squares on log-log points."""
    slope, _ = np.polyfit(np.log(np.asarray(fields, float)), np.log(np.asarray(values, float)), 1)
    return float(slope)


def run_scaling(
    models: Sequence[str],
    fields: Sequence[int],
    output_dir: str,
    batch_size: int = 256,
    steps: int = 5,
    timeout: int = 600,
) -> list[dict]:
    os.makedirs(output_dir, exist_ok=True)
    cells = []
    for model in models:
        for num_fields in fields:
            command = [
                sys.executable,
                "-m",
                "featnet_tf.scaling",
                "--model",
                model,
                "--num_fields",
                str(num_fields),
                "--batch_size",
                str(batch_size),
                "--steps",
                str(steps),
            ]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"[scaling] {model} M={num_fields}: over {timeout} s, skipped", flush=True)
                continue
            if result.returncode != 0:
                reason = "killed (out of memory?)" if result.returncode < 0 else result.stderr.strip().splitlines()[-1]
                print(
                    f"[scaling] {model} M={num_fields}: failed with exit code {result.returncode}: {reason}", flush=True
                )
                continue
            cell = json.loads(result.stdout.strip().splitlines()[-1])
            cells.append(cell)
            print(
                f"[scaling] {model} M={num_fields}: {cell['ms_per_step']:.1f} ms/step (batch {batch_size}), "
                f"peak +{cell['peak_memory_mb']:.0f} MB, {cell['parameters']:,} params",
                flush=True,
            )
    write_scaling_outputs(cells, output_dir)
    return cells


def write_scaling_outputs(cells: list[dict], output_dir: str) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(output_dir, "scaling.csv"), "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(cells[0]))
        writer.writeheader()
        writer.writerows(cells)
    fields = sorted({cell["num_fields"] for cell in cells})
    lines = [
        "| model | "
        + " | ".join(f"M={m} ms/step" for m in fields)
        + " | time exponent k | peak MB at max M | memory exponent |",
        "|---" * (len(fields) + 4) + "|",
    ]
    figure, axis = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(cell["model"] for cell in cells):
        mine = sorted((cell for cell in cells if cell["model"] == model), key=lambda cell: cell["num_fields"])
        xs = [cell["num_fields"] for cell in mine]
        times = [cell["ms_per_step"] for cell in mine]
        memory = [max(cell["peak_memory_mb"], 1.0) for cell in mine]
        k = growth_exponent(xs, times) if len(xs) > 1 else float("nan")
        km = growth_exponent(xs, memory) if len(xs) > 1 else float("nan")
        by_m = {cell["num_fields"]: cell["ms_per_step"] for cell in mine}
        lines.append(
            f"| {model} | "
            + " | ".join(f"{by_m[m]:.1f}" if m in by_m else "—" for m in fields)
            + f" | {k:.2f} | {mine[-1]['peak_memory_mb']:.0f} | {km:.2f} |"
        )
        axis.loglog(xs, times, marker="o", label=f"{model} (k={k:.2f})")
    axis.set_xlabel("number of fields M")
    axis.set_ylabel("forward+backward ms per batch")
    axis.set_title("Cost versus number of fields")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "scaling.png"), dpi=120)
    plt.close(figure)
    with open(os.path.join(output_dir, "scaling.md"), "w") as stream:
        stream.write("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m featnet_tf.scaling", description="Measure one (model, M) scaling cell; prints JSON."
    )
    parser.add_argument("--model", required=True, choices=sorted(SCALING_SETTINGS))
    parser.add_argument("--num_fields", type=int, required=True)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure_cell(args.model, args.num_fields, args.batch_size, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
