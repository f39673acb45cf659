"""`python -m featnet_tf.train`: train, evaluate, export and check a CTR model.

    python -m featnet_tf.train --experiment featnet --data_dir /tmp/criteo_prep \
        --run_dir runs/featnet [--config overrides.yaml] [--set model.num_subsets=8]

Argument parsing and one call to `featnet_tf.lifecycle.Trainer.run`, which
trains under `tf.distribute` (MirroredStrategy over all GPUs by default, the
CPU when there is none) with validation AUC/LogLoss each epoch, early
stopping and the best weights, evaluates the test split, and publishes a
checked SavedModel; a killed run started again with the same command resumes
where it stopped. Exit codes: 2 for a bad flag, config or run directory
(nothing written), 3 when the loss stopped being finite (nothing evaluated or
exported), 4 when a worker of a multi-worker run failed, 5 when the publish
check refused the candidate (worse than the version serving: nothing
published; ``blessing.json`` in the run directory says why).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import blessing, experiments, lifecycle, training, workers
from featnet_tf import config as config_lib


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="featnet", help=f"one of {sorted(experiments.EXPERIMENTS)}")
    parser.add_argument("--data_dir", help="a pipelines.preprocess output directory (sets data.data_dir)")
    parser.add_argument("--run_dir", required=True, help="a local directory or a URL (gs://...)")
    parser.add_argument("--config", help="YAML file of overrides ({section: {key: value}})")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one value")
    parser.add_argument("--strategy", choices=config_lib.STRATEGIES, help="sets training.strategy")
    parser.add_argument("--logical_cpus", type=int, default=0, help="split the CPU into N devices for MirroredStrategy")
    parser.add_argument(
        "--worker_timeout",
        type=int,
        default=workers.WORKER_TIMEOUT_SECONDS,
        help="multi_worker: seconds without a heartbeat after which a worker counts as dead and the run fails",
    )
    parser.add_argument("--jit", action="store_true", help="XLA-compile the train step (sets training.jit)")
    parser.add_argument("--mixed_precision", action="store_true", help="mixed_float16 (sets training.mixed_precision)")
    parser.add_argument("--no_export", action="store_true", help="stop after metrics.json")
    parser.add_argument(
        "--warm_start", metavar="RUN_DIR", help="start from this earlier run's best weights (sets training.warm_start)"
    )
    parser.add_argument(
        "--accept_anomalies",
        action="store_true",
        help="train on a data directory marked by its validation.json (sets data.accept_anomalies)",
    )
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> config_lib.ExperimentConfig:
    overrides = {
        key: value
        for key, value in {
            "data.data_dir": args.data_dir,
            "training.strategy": args.strategy,
            "training.jit": args.jit or None,
            "training.mixed_precision": args.mixed_precision or None,
            "training.warm_start": args.warm_start,
            "data.accept_anomalies": args.accept_anomalies or None,
        }.items()
        if value
    }
    return experiments.experiment(args.experiment, args.config, args.set, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = resolve_config(args)
        strategy = training.make_strategy(config.training.strategy, args.logical_cpus, args.worker_timeout)
        trainer = lifecycle.Trainer(config, args.run_dir, strategy)
        trainer.run(export=not args.no_export)
    except ValueError as error:
        return fail(error, 2)
    except lifecycle.NonFiniteLoss as error:
        return fail(error, 3)
    except lifecycle.WorkerFailure as error:
        return fail(error, 4)
    except blessing.CandidateRefused as error:
        return fail(error, blessing.REFUSED_EXIT_CODE)
    return 0


def fail(error: Exception, code: int) -> int:
    print(f"[train] error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
