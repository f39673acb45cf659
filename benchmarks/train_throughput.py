"""Training throughput of `featnet_tf.train`: settings, variants and versions side by side.

Runs the real training command in a subprocess per cell on a preprocessed
dataset (e.g. the demo's) and reads throughput from the second epoch (the
first includes tracing), validation excluded (`history.json`'s
``epoch_train_seconds``). One line per cell; every cell of a run is measured
one after the other on the same machine, so their ratios hold where absolute
speeds vary from day to day.

    python benchmarks/train_throughput.py --data_dir demo_output/data --steps 60
    python benchmarks/train_throughput.py --data_dir /tmp/frappe_prep --steps 200 --settings 1 \\
        --experiments featnet_frappe,dcnv2_frappe,deepfm_frappe --caches none,memory,none,memory

Settings: 1 replica (`--strategy one_device`, batch 1024), 2 replicas
(`--strategy mirrored --logical_cpus 2`, batch 512 per replica) and 2
worker processes (`--strategy multi_worker`, TF_CONFIG naming two workers on
127.0.0.1, batch 512 each: gradients all-reduced over gRPC; on one machine
they share its cores), the same global batch. ``--caches none,memory`` measures each cell with the TFRecords
streamed every epoch and with the ids held in memory (`data.cache`), and
prints the medians' ratio (``none,memory,none,memory`` alternates twice).

``--variant LABEL:KEY=VALUE,...`` (repeatable) measures each cell under
several sets of overrides instead, and ``--variant LABEL@DIR:...`` runs that
variant's command from another checkout of this repository (e.g. a `git
worktree` of the commit before a change), so the old and the new code are
measured in one run; ``--rounds N`` alternates the variants N times:

    git worktree add /tmp/before <commit>
    python benchmarks/train_throughput.py --data_dir demo_output/data --steps 78 --settings 1 \\
        --experiments featnet --rounds 2 --variant before@/tmp/before: --variant after:
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from harness import checkout_environment, parse_variant  # benchmarks/, on the path of a script run from it

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
    "2 workers (multi_worker, loopback)": ["--strategy", "multi_worker", "--set", "data.batch_size=512"],
}
WORKERS = {"2 workers (multi_worker, loopback)": 2}  # settings run as that many processes


def parse_variant_overrides(text: str) -> tuple[str, str | None, list[str]]:
    """``LABEL[@DIR]:KEY=VALUE,...`` → (label, source directory or None, overrides)."""
    head, _, overrides = text.partition(":")
    return *parse_variant(head), [item for item in overrides.split(",") if item]


def loopback_tf_configs(count: int) -> list[str]:
    """`featnet_tf.workers.loopback_tf_configs`, imported only when a setting
    needs workers (it imports TensorFlow)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from featnet_tf.workers import loopback_tf_configs as configs

    return configs(count)


def train_history(
    data_dir: str,
    experiment: str,
    flags: list[str],
    steps_per_epoch: int | None = None,
    source: str | None = None,
    workers: int = 1,
) -> dict:
    """``history.json`` of a two-epoch `featnet_tf.train` run in a subprocess
    (one validation batch, no early stop, no export), from this checkout or
    the one at `source`; `flags` are more command-line arguments. With
    `workers` > 1, that many processes on 127.0.0.1, each with its TF_CONFIG
    (the chief writes the history)."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-m", "featnet_tf.train", "--experiment", experiment]
        command += ["--data_dir", os.path.abspath(data_dir), "--run_dir", os.path.join(run_dir, "run")]
        command += ["--no_export"]
        assignments = ["training.epochs=2", "training.validation_steps=1", "training.early_stopping_patience=5"]
        if steps_per_epoch:
            assignments.append(f"training.steps_per_epoch={steps_per_epoch}")
        for assignment in assignments:
            command += ["--set", assignment]
        environment = checkout_environment(source)  # the other checkout's package first on the path
        processes = []
        for tf_config in loopback_tf_configs(workers) if workers > 1 else [None]:
            if tf_config:
                environment = dict(environment, TF_CONFIG=tf_config)
            processes.append(
                subprocess.Popen(
                    command + flags,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=source,
                    env=environment,
                )
            )
        for process in processes:
            _, stderr = process.communicate()
            if process.returncode:
                raise SystemExit(stderr[-3000:])
        with open(os.path.join(run_dir, "run", "history.json")) as stream:
            return json.load(stream)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--experiments", default="featnet", help="comma-separated named experiments")
    parser.add_argument(
        "--settings", default="1,2", help="which settings: 1 (one replica), 2 (two), 3 (two worker processes)"
    )
    parser.add_argument("--caches", default="auto", help="data.cache values to measure, e.g. none,memory")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL[@DIR]:KEY=VALUE,...")
    parser.add_argument("--rounds", type=int, default=1, help="how many times the variants alternate")
    args = parser.parse_args(argv)
    chosen = [list(SETTINGS)[int(index) - 1] for index in args.settings.split(",")]
    if args.variant:
        variants = [parse_variant_overrides(text) for text in args.variant] * args.rounds
    else:
        variants = [(f"data.cache={cache}", None, [f"data.cache={cache}"]) for cache in args.caches.split(",")]
    labels = list(dict.fromkeys(label for label, _, _ in variants))
    for experiment in args.experiments.split(","):
        for setting in chosen:
            measured: list[tuple[str, float]] = []
            for label, source, overrides in variants:
                flags = SETTINGS[setting] + [item for override in overrides for item in ("--set", override)]
                history = train_history(
                    args.data_dir, experiment, flags, args.steps, source, workers=WORKERS.get(setting, 1)
                )
                seconds = history["epoch_train_seconds"][1]
                rate = args.steps * history["global_batch_size"] / seconds
                measured.append((label, rate))
                print(
                    f"{experiment}, {setting}, {label}: global batch {history['global_batch_size']}, "
                    f"{rate:,.0f} examples/s ({1000 * seconds / args.steps:.0f} ms/step)",
                    flush=True,
                )
            if len(labels) > 1:
                medians = {name: statistics.median(rate for got, rate in measured if got == name) for name in labels}
                first = medians[labels[0]]
                ratios = ", ".join(f"{name} {rate:,.0f} ex/s ({rate / first:.2f}×)" for name, rate in medians.items())
                print(f"{experiment}, {setting}, medians: {ratios}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
