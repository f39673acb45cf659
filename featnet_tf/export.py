"""`python -m featnet_tf.export`: a trained run as the next SavedModel version, checked.

    python -m featnet_tf.export --run_dir runs/featnet --export_base /models/featnet

Loads the run's best weights, writes ``<export_base>/<version>/`` with
`featnet_tf.saved_model` (default base: ``<run_dir>/export``) and runs the
servability check against the training path's predictions for a few test
rows. `train` calls `export_run` at the end of a run; this module owns that
step, `featnet_tf.training` knows nothing of exports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import tensorflow as tf

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import prepared_data, saved_model, training


def export_run(run: training.Run, export_base: str | None = None) -> tuple[str, dict[str, Any]]:
    """Exports the run's serving model as the next version and checks its
    servability against the training path's predictions for a few test rows."""
    case = write_export(run, export_base)
    return case.export_dir, saved_model.check_all([case])[0]


def write_export(run: training.Run, export_base: str | None = None) -> saved_model.ServabilityCase:
    """Writes the run's serving model as the next version; returns it with a
    few test rows and the training path's probabilities for them, to check."""
    base = export_base or run.config.export.export_base or run.path("export")
    rows = max(run.config.export.warmup_examples, 16)
    files = prepared_data.split_files(run.config.data.data_dir, "test")
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(rows)]
    model = run.serving_model()
    expected = tf.sigmoid(tf.reshape(model(saved_model.parse_examples(run.spec, examples)), [-1])).numpy()
    path = saved_model.export_saved_model(model, run.spec, base, examples[: run.config.export.warmup_examples])
    return saved_model.ServabilityCase(path, run.spec, examples, expected)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--export_base", help="TF Serving model base path (default: <run_dir>/export)")
    args = parser.parse_args(argv)
    try:
        path, report = export_run(training.load_run(args.run_dir), args.export_base)
    except (ValueError, saved_model.ServabilityError) as error:
        print(f"[export] error: {error}", file=sys.stderr)
        return 1
    difference = max(report["max_abs_difference"].values())
    print(f"[export] wrote {path}; servability check passed ({report['ops']} ops, max difference {difference:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
