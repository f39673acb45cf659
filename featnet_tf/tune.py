"""`python -m featnet_tf.tune`: search a model's recipe on validation data.

    python -m featnet_tf.tune --model deepfm --dataset frappe --data_dir /tmp/frappe_prep \
        --output_dir tune/deepfm --trials 20 [--set training.epochs=30] [--pruner median]

Argument parsing and one call to `featnet_tf.tuning.Tuner.run`: Optuna
trials, each a training run through the run lifecycle, pruned on each
epoch's exact validation AUC; the study is kept in ``<output_dir>/study.db``,
so the same command started again after a kill goes on; ``best.yaml`` is the
best recipe for ``train --config`` and ``benchmark --config``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import experiments, tuning


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a registered model: tunes its experiment on --dataset")
    parser.add_argument("--dataset", choices=("criteo", "avazu", "frappe"), default="criteo")
    parser.add_argument("--experiment", help=f"instead of --model: one of {sorted(experiments.EXPERIMENTS)}")
    parser.add_argument("--data_dir", required=True, help="a pipelines.preprocess output directory")
    parser.add_argument("--output_dir", required=True, help="study.db, trials/<n>/, best.yaml")
    parser.add_argument("--trials", type=int, default=20, help="finished trials (complete or pruned) to reach")
    parser.add_argument("--pruner", choices=tuning.PRUNERS, default="median")
    parser.add_argument("--config", help="YAML overrides under every trial")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="under every trial")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.trials <= 0 or bool(args.model) == bool(args.experiment):
        print(f"[tune] error: give --model or --experiment, and --trials > 0 (got {args.trials})", file=sys.stderr)
        return 2
    experiment = args.experiment or experiments.experiment_for(args.model, args.dataset)
    tuner = tuning.Tuner(experiment, args.data_dir, args.output_dir, args.set, args.config, args.pruner, args.seed)
    try:
        tuner.run(args.trials)
    except ValueError as error:
        print(f"[tune] error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
