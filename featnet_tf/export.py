"""`python -m featnet_tf.export`: a trained run as the next SavedModel version, checked.

    python -m featnet_tf.export --run_dir runs/featnet --export_base /models/featnet

Loads the run's best weights, stages the SavedModel in a hidden directory of
the export base (default ``<run_dir>/export``), runs the servability check
there against the training path's predictions for a few test rows, and only
then publishes it as ``<export_base>/<version>/``: a version that fails its
check (a diverged model, an op TF Serving lacks) is never seen by a server.
`train` calls `export_run` at the end of a run; this module owns that step,
`featnet_tf.training` knows nothing of exports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import tensorflow as tf

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import prepared_data, saved_model, training


def export_run(run: training.Run, export_base: str | None = None) -> tuple[str, dict[str, Any]]:
    """Stages the run's serving model, checks its servability against the
    training path's predictions for a few test rows, then publishes it as the
    next version. `ServabilityError` (and nothing published) when the check fails."""
    staged, case = write_export(run, export_base)
    try:
        report = saved_model.check_all([case])[0]
    except BaseException:
        saved_model.discard(staged)
        raise
    return saved_model.publish(staged), report


def write_export(
    run: training.Run, export_base: str | None = None
) -> tuple[saved_model.StagedExport, saved_model.ServabilityCase]:
    """Stages the run's serving model (not yet a version); returns it and the
    case to check it with: a few test rows and the training path's
    probabilities for them."""
    base = export_base or run.config.export.export_base or run.path("export")
    rows = max(run.config.export.warmup_examples, 16)
    files = prepared_data.split_files(run.config.data.data_dir, "test")
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(rows)]
    model = run.serving_model()
    expected = tf.sigmoid(tf.reshape(model(saved_model.parse_examples(run.spec, examples)), [-1])).numpy()
    staged = saved_model.stage_saved_model(model, run.spec, base, examples[: run.config.export.warmup_examples])
    return staged, saved_model.ServabilityCase(staged.path, run.spec, examples, expected)


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
