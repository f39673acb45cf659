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
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = parser.parse_args(argv)
    chosen = [list(SETTINGS)[int(index) - 1] for index in args.settings.split(",")]
    for experiment, label in ((e, label) for e in args.experiments.split(",") for label in chosen):
        flags = SETTINGS[label]
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
            f"{experiment}, {label}: global batch {history['global_batch_size']}, {examples / seconds:,.0f} "
            f"examples/s ({1000 * seconds / args.steps:.0f} ms/step)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
