"""`python -m featnet_tf.export`: a trained run as the next SavedModel version, checked.

    python -m featnet_tf.export --run_dir runs/featnet --export_base /models/featnet

Loads the run's best weights, stages the SavedModel in a hidden directory of
the export base (default ``<run_dir>/export``), runs the servability check
there against the training path's predictions for a few test rows, and only
then, unless ``export.require_no_worse`` is off, scores it and the newest
version already published on the run's validation rows
(`featnet_tf.blessing`); only then publishes it as
``<export_base>/<version>/``: a version that fails its check (a diverged
model, an op TF Serving lacks, worse than the version serving) is never seen
by a server. Exit codes: 1 for a run or export that cannot be used, 5 when
the candidate is refused (``blessing.json`` in the run directory says why).
The step itself is `featnet_tf.lifecycle.export_run`, which `Trainer.export`
calls at the end of a run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import blessing, lifecycle, saved_model, training


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--export_base", help="TF Serving model base path (default: <run_dir>/export)")
    args = parser.parse_args(argv)
    try:
        published = lifecycle.export_run(training.load_run(args.run_dir), args.export_base)
    except (ValueError, saved_model.ServabilityError) as error:
        print(f"[export] error: {error}", file=sys.stderr)
        return 1
    except blessing.CandidateRefused as error:
        print(f"[export] {error}", file=sys.stderr)
        return blessing.REFUSED_EXIT_CODE
    ops, difference = published.report["ops"], max(published.report["max_abs_difference"].values())
    print(f"[export] wrote {published.path}; servability check passed ({ops} ops, max difference {difference:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
