"""`make demo`: the main job end to end on data the project generates itself.

1. `pipelines.synthesize` writes Criteo-format rows whose click probability
   comes from planted interactions of orders 1-5 among noise fields;
2. `pipelines.preprocess` turns them into TFRecords, vocabularies, a schema
   and statistics (Beam, DirectRunner);
3. `featnet_tf.train` trains FeatNet (paper defaults but a learning rate of
   1e-3 for a short CPU run), evaluates it on the test split, exports a
   versioned SavedModel and checks that TF Serving can serve it;
4. the test AUC and LogLoss are printed next to the Bayes-optimal ones of the
   same test rows.

    python -m featnet_tf.demo [--rows 200000] [--epochs 2] [--work_dir demo_output]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import train
from featnet_tf.metrics import binary_auc, log_loss
from pipelines import preprocess, synthesize


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--work_dir", default="demo_output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    raw = os.path.join(args.work_dir, "criteo_synthetic.tsv")
    data_dir = os.path.join(args.work_dir, "data")
    run_dir = os.path.join(args.work_dir, "run")

    print("== 1/3 synthesize", flush=True)
    synthesize.main(["--rows", str(args.rows), "--output", raw, "--seed", str(args.seed)])
    print("== 2/3 preprocess", flush=True)
    preprocess.run(["--input", raw, "--format", "criteo", "--output_dir", data_dir, "--runner=DirectRunner"])
    print("== 3/3 train → evaluate → export → check", flush=True)
    code = train.main(
        ["--experiment", "featnet_criteo", "--data_dir", data_dir, "--run_dir", run_dir]
        + ["--set", f"training.epochs={args.epochs}", "--set", f"training.learning_rate={args.learning_rate}"]
        + ["--set", f"training.seed={args.seed}"]
    )
    if code:
        raise SystemExit(code)

    with open(os.path.join(run_dir, "metrics.json")) as stream:
        metrics = json.load(stream)
    true_labels, true_probabilities = synthesize.split_truth(raw, "test")
    results = {
        "test_auc": metrics["auc"],
        "test_logloss": metrics["logloss"],
        "bayes_auc": binary_auc(true_labels, true_probabilities),
        "bayes_logloss": log_loss(true_labels, true_probabilities),
    }
    print(
        f"\nFeatNet on {metrics['examples']:,} test rows: AUC {results['test_auc']:.4f}, LogLoss {results['test_logloss']:.4f} | "
        f"Bayes-optimal AUC {results['bayes_auc']:.4f}, LogLoss {results['bayes_logloss']:.4f}"
    )
    print(f"Demo finished in {time.perf_counter() - start:.0f} s; outputs under {args.work_dir}/ (data/, run/, run/export/1/)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
