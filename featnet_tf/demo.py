"""`make demo`: FeatNet learns a planted interaction from generated data.

Generates rows whose click probability depends only on a third-order
interaction of three fields (a parity, invisible to lower orders) among noise
fields, trains FeatNet with the paper's defaults, and prints the loss and the
validation AUC next to the Bayes-optimal AUC of the same rows.

    python -m featnet_tf.demo [--rows 100000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys

import featnet_tf  # noqa: F401  (selects legacy Keras)
import tensorflow as tf
import tf_keras as keras

from featnet_tf.metrics import binary_auc, log_loss
from featnet_tf.models import FeatNet
from featnet_tf.synthetic import planted_interaction_data


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="generated rows (80%% train, 20%% validation)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    data = planted_interaction_data(args.rows, seed=args.seed)
    split = int(0.8 * args.rows)
    train = {name: values[:split] for name, values in data.features.items()}
    valid = {name: values[split:] for name, values in data.features.items()}
    print(
        f"Generated {args.rows} rows, {data.feature_spec.num_fields} fields; the label depends only on "
        f"the interaction of {', '.join(data.interacting_fields)}."
    )

    model = FeatNet(data.feature_spec)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
    )
    model.fit(train, data.labels[:split], batch_size=args.batch_size, epochs=args.epochs, verbose=1)
    probabilities = tf.sigmoid(model.predict(valid, batch_size=4096, verbose=0)).numpy()[:, 0]
    labels = data.labels[split:]
    results = {
        "valid_auc": binary_auc(labels, probabilities),
        "valid_logloss": log_loss(labels, probabilities),
        "bayes_auc": binary_auc(labels, data.probabilities[split:]),
        "bayes_logloss": log_loss(labels, data.probabilities[split:]),
    }
    print(
        f"FeatNet ({model.count_params():,} parameters): validation AUC {results['valid_auc']:.4f}, "
        f"LogLoss {results['valid_logloss']:.4f} | Bayes-optimal AUC {results['bayes_auc']:.4f}, "
        f"LogLoss {results['bayes_logloss']:.4f}"
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
