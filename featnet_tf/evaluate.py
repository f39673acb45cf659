"""`python -m featnet_tf.evaluate --run_dir ...`: exact test metrics of a trained run.

Rebuilds the run's model from its ``config.yaml`` and best weights, predicts
every row of the split and writes ``metrics.json`` (AUC, LogLoss, example
count, config hash), the same file the end of training writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import training
from featnet_tf.prepared_data import SPLITS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--split", default="test", choices=SPLITS)
    args = parser.parse_args(argv)
    try:
        run = training.load_run(args.run_dir)
    except ValueError as error:
        print(f"[evaluate] error: {error}", file=sys.stderr)
        return 2
    metrics = training.evaluate_run(run, args.split)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
