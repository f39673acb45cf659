"""Training throughput of `featnet_tf.train` with 1 and 2 replicas on this CPU.

Runs the real training command in a subprocess per setting on a
preprocessed dataset (e.g. the demo's), with the same global batch: 1 replica
(`--strategy one_device`, batch 1024) and 2 replicas (`--strategy mirrored
--logical_cpus 2`, batch 512 per replica). Throughput is read from the second
epoch (the first includes tracing), validation excluded by `validation_steps=1`.
One line per setting.

    python benchmarks/train_throughput.py --data_dir demo_output/data --steps 60
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
    "2 replicas (mirrored, 2 logical CPUs)": ["--strategy", "mirrored", "--logical_cpus", "2", "--set", "data.batch_size=512"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    for label, flags in SETTINGS.items():
        with tempfile.TemporaryDirectory() as run_dir:
            command = [sys.executable, "-m", "featnet_tf.train", "--data_dir", args.data_dir, "--run_dir", os.path.join(run_dir, "run"), "--no_export"]
            command += ["--set", "training.epochs=2", "--set", f"training.steps_per_epoch={args.steps}", "--set", "training.validation_steps=1"]
            command += ["--set", "training.early_stopping_patience=5"] + flags
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            with open(os.path.join(run_dir, "run", "history.json")) as stream:
                history = json.load(stream)
        seconds = history["epoch_seconds"][1]
        examples = args.steps * history["global_batch_size"]
        print(f"{label}: global batch {history['global_batch_size']}, {examples / seconds:,.0f} examples/s ({1000 * seconds / args.steps:.0f} ms/step)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
