"""`make demo`: the main job end to end on data the project generates itself.

1. `pipelines.synthesize` writes Criteo-format rows whose click probability
   comes from planted interactions of orders 1-5 among noise fields;
2. `pipelines.preprocess` turns them into TFRecords, vocabularies, a schema
   and statistics (Beam, DirectRunner);
3. FeatNet (paper defaults) trains on the train split, on raw values through
   its in-model feature transform;
4. the test AUC and LogLoss are printed next to the Bayes-optimal ones of the
   same test rows.

    python -m featnet_tf.demo [--rows 200000] [--epochs 2] [--work_dir demo_output]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import featnet_tf  # noqa: F401  (selects legacy Keras)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf.data import load_feature_spec, make_dataset
from featnet_tf.metrics import binary_auc, log_loss
from featnet_tf.models import build_model
from pipelines import preprocess, synthesize


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--work_dir", default="demo_output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    raw = os.path.join(args.work_dir, "criteo_synthetic.tsv")
    data_dir = os.path.join(args.work_dir, "data")

    print("== 1/4 synthesize", flush=True)
    synthesize.main(["--rows", str(args.rows), "--output", raw, "--seed", str(args.seed)])
    print("== 2/4 preprocess", flush=True)
    preprocess.run(["--input", raw, "--format", "criteo", "--output_dir", data_dir, "--runner=DirectRunner"])

    print("== 3/4 train FeatNet", flush=True)
    keras.utils.set_random_seed(args.seed)
    spec = load_feature_spec(data_dir)
    model = build_model("featnet", spec, vocabulary_dir=data_dir)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
    )
    model.fit(
        make_dataset(data_dir, "train", args.batch_size, seed=args.seed),
        validation_data=make_dataset(data_dir, "valid", 4096),
        epochs=args.epochs,
        verbose=1,
    )

    print("== 4/4 evaluate on the test split", flush=True)
    labels, logits = [], []
    for features, batch_labels in make_dataset(data_dir, "test", 4096):
        logits.append(model(features, training=False).numpy()[:, 0])
        labels.append(batch_labels.numpy()[:, 0])
    labels, probabilities = np.concatenate(labels), tf.sigmoid(np.concatenate(logits)).numpy()
    true_labels, true_probabilities = synthesize.split_truth(raw, "test")
    results = {
        "test_auc": binary_auc(labels, probabilities),
        "test_logloss": log_loss(labels, probabilities),
        "bayes_auc": binary_auc(true_labels, true_probabilities),
        "bayes_logloss": log_loss(true_labels, true_probabilities),
    }
    print(
        f"FeatNet ({model.count_params():,} parameters) on {len(labels):,} test rows: AUC {results['test_auc']:.4f}, "
        f"LogLoss {results['test_logloss']:.4f} | Bayes-optimal AUC {results['bayes_auc']:.4f}, "
        f"LogLoss {results['bayes_logloss']:.4f}"
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
