"""Training throughput of `featnet_tf.train` with 1 and 2 replicas on this CPU.

Runs the real training command in a subprocess per setting on a
preprocessed dataset (e.g. the demo's), with the same global batch: 1 replica
(`--strategy one_device`, batch 1024) and 2 replicas (`--strategy mirrored
--logical_cpus 2`, batch 512 per replica). Throughput is read from the second
epoch (the first includes tracing), validation excluded by `validation_steps=1`.
One line per experiment and setting; several experiments are measured one
after the other in the same run, so their ratio holds on a machine whose
speed varies from day to day.

    python benchmarks/train_throughput.py --data_dir demo_output/data --steps 60
    python benchmarks/train_throughput.py --data_dir /tmp/frappe_prep --steps 60 \
        --experiments featnet_frappe,featnet_eq13_frappe,dcnv2_frappe,deepfm_frappe --settings 1

``--caches none,memory`` measures each cell with the TFRecords streamed every
epoch and with the ids held in memory (`data.cache`), one after the other, and
prints the medians' ratio (``none,memory,none,memory`` alternates twice).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SETTINGS = {
    "1 replica (one_device)": ["--strategy", "one_device", "--set", "data.batch_size=1024"],
    "2 replicas (mirrored, 2 logical CPUs)": [
        "--strategy",
        "mirrored",
        "--logical_cpus",
        "2",
        "--set",
        "data.batch_size=512",
    ],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--experiments", default="featnet", help="comma-separated named experiments")
    parser.add_argument("--settings", default="1,2", help="which settings: 1 (one replica), 2 (two), or both")
    parser.add_argument("--caches", default="auto", help="data.cache values to measure, e.g. none,memory")
    args = parser.parse_args(argv)
    chosen = [list(SETTINGS)[int(index) - 1] for index in args.settings.split(",")]
    caches = args.caches.split(",")
    cells = [(e, label, cache) for e in args.experiments.split(",") for label in chosen for cache in caches]
    rates: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for experiment, label, cache in cells:
        flags = SETTINGS[label] + ["--set", f"data.cache={cache}"]
        with tempfile.TemporaryDirectory() as run_dir:
            command = [
                sys.executable,
                "-m",
                "featnet_tf.train",
                "--experiment",
                experiment,
                "--data_dir",
                args.data_dir,
            ]
            command += ["--run_dir", os.path.join(run_dir, "run"), "--no_export"]
            command += [
                "--set",
                "training.epochs=2",
                "--set",
                f"training.steps_per_epoch={args.steps}",
                "--set",
                "training.validation_steps=1",
            ]
            command += ["--set", "training.early_stopping_patience=5"] + flags
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            with open(os.path.join(run_dir, "run", "history.json")) as stream:
                history = json.load(stream)
        seconds = history["epoch_seconds"][1]
        examples = args.steps * history["global_batch_size"]
        print(
            f"{experiment}, {label}, data.cache={cache}: global batch {history['global_batch_size']}, "
            f"{examples / seconds:,.0f} examples/s ({1000 * seconds / args.steps:.0f} ms/step)",
            flush=True,
        )
        measured = rates.setdefault((experiment, label), [])
        measured.append((cache, examples / seconds))
        if len(set(caches)) > 1 and len(measured) == len(caches):  # a cache listed twice is measured twice
            medians = {
                c: statistics.median(rate for name, rate in measured if name == c) for c in dict.fromkeys(caches)
            }
            first = medians[caches[0]]
            ratios = ", ".join(f"{c} {rate:,.0f} ex/s ({rate / first:.2f}×)" for c, rate in medians.items())
            print(f"{experiment}, {label}, medians: {ratios}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
