"""Which SAPN options (not in the paper) should be on by default?

Trains the literal paper's FeatNet (`featnet_eq13`) on planted third-order
interaction data for each variant and
prints validation AUC and LogLoss next to the Bayes-optimal AUC of the same
rows. One line per variant as it finishes.

    python benchmarks/sapn_options.py --rows 60000 --epochs 2
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf.metrics import binary_auc, log_loss
from featnet_tf.models import featnet_eq13
from featnet_tf.synthetic import planted_interaction_data

VARIANTS = {
    "FeatNet defaults (paper's SAPN, N(0,1) embeddings)": {},
    "+ scale scores by 1/sqrt(D)": {"scale_scores": True},
    "+ value projection W_V": {"use_value_projection": True},
    "+ layer norm": {"use_layer_norm": True},
    "Keras uniform(±0.05) embeddings": {"embeddings_initializer": "uniform"},
    "Keras uniform(±0.05) embeddings + layer norm": {"embeddings_initializer": "uniform", "use_layer_norm": True},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)

    data = planted_interaction_data(args.rows, seed=0)
    split = int(0.8 * args.rows)
    train = {name: values[:split] for name, values in data.features.items()}
    valid = {name: values[split:] for name, values in data.features.items()}
    bayes = binary_auc(data.labels[split:], data.probabilities[split:])
    print(f"rows={args.rows} epochs={args.epochs} lr={args.learning_rate} Bayes-optimal AUC={bayes:.4f}")
    print("| variant | valid AUC (mean ± std) | valid LogLoss | s/run |")
    print("|---|---|---|---|")
    for label, options in VARIANTS.items():
        aucs, losses, start = [], [], time.perf_counter()
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            model = featnet_eq13(data.feature_spec, **options)
            model.compile(keras.optimizers.Adam(args.learning_rate), keras.losses.BinaryCrossentropy(from_logits=True))
            model.fit(train, data.labels[:split], batch_size=args.batch_size, epochs=args.epochs, verbose=0)
            probabilities = tf.sigmoid(model.predict(valid, batch_size=4096, verbose=0)).numpy()[:, 0]
            aucs.append(binary_auc(data.labels[split:], probabilities))
            losses.append(log_loss(data.labels[split:], probabilities))
        seconds = (time.perf_counter() - start) / args.seeds
        print(
            f"| {label} | {np.mean(aucs):.4f} ± {np.std(aucs):.4f} | {np.mean(losses):.4f} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
