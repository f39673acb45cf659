"""Publish only a model that is no worse than the one serving: the candidate judged against the newest version.

Before a checked candidate becomes a version, `judge` scores it and the
newest version already under the export base on the same rows (the
candidate's validation split), each through its own SavedModel's raw-Example
signature (``serving_default``), so the baseline needs nothing of the run
that made it, and blesses the candidate only when

* its AUC is at least the baseline's minus ``export.auc_tolerance`` (0),
* its LogLoss is at most the baseline's plus ``export.logloss_tolerance`` (0.002),
* its calibration, mean predicted probability over observed click rate,
  is within ``export.max_calibration_error`` (0.1) of 1, or no further from
  1 than the baseline's (a candidate is not refused for a bias the version
  serving has too).

With no version yet (or none that loads), the candidate that passed its
servability check is blessed. A version that cannot be loaded (deleted while it was
being compared, or incomplete) is skipped with a message naming it, and the
next newest serves as the baseline: what TF Serving, which keeps serving the
newest version it could load, would be answering with. TFX calls the same
decision the Evaluator's "blessing".

The decision and both sets of metrics are `Blessing.to_dict()`, which
`featnet_tf.lifecycle` writes as ``blessing.json`` into the run directory
and, when published, into the version's directory.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from featnet_tf import config as config_lib
from featnet_tf import prepared_data, training
from featnet_tf.files import read_json
from featnet_tf.metrics import binary_auc, log_loss
from tfbase.versions import list_versions

REFUSED_EXIT_CODE = 5  # `python -m featnet_tf.train` / `featnet_tf.export` when the candidate is refused
SCORING_BATCH = 8192


class CandidateRefused(RuntimeError):
    """The candidate is worse than the version serving; nothing was published."""

    def __init__(self, blessing: "Blessing") -> None:
        self.blessing = blessing
        super().__init__(
            f"candidate refused: {'; '.join(blessing.reasons)}; nothing published under {blessing.export_base}"
        )


@dataclasses.dataclass(frozen=True)
class Blessing:
    """The publish check's decision, and the metrics it was made on."""

    blessed: bool
    reasons: tuple[str, ...]  # why not blessed (empty when blessed)
    export_base: str
    rows: int
    candidate: dict[str, float]
    baseline: dict[str, Any] | None  # None when no version was there to compare with
    bounds: dict[str, float]
    skipped_versions: tuple[str, ...] = ()  # versions that could not be loaded, and why

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, run_dir: str) -> "Blessing":
        """The decision a run's export wrote (``blessing.json`` in its run directory)."""
        decision = read_json(tf.io.gfile.join(run_dir, training.BLESSING_FILE))
        return cls(
            **{
                **decision,
                "reasons": tuple(decision["reasons"]),
                "skipped_versions": tuple(decision["skipped_versions"]),
            }
        )


def validation_rows(data_dir: str, label: str) -> tuple[list[bytes], np.ndarray]:
    """The validation split's serialized examples and their labels."""
    files = prepared_data.split_files(data_dir, "valid")
    examples, labels = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(SCORING_BATCH):
        parsed = tf.io.parse_example(batch, {label: tf.io.FixedLenFeature([], tf.int64)})
        examples.extend(batch.numpy().tolist())
        labels.append(parsed[label].numpy())
    return examples, np.concatenate(labels) if labels else np.zeros(0, np.int64)


def score(export_dir: str, examples: Sequence[bytes]) -> np.ndarray:
    """Probabilities of serialized examples through the SavedModel's ``serving_default`` signature."""
    signature = tf.saved_model.load(export_dir).signatures[tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
    parts = [
        signature(examples=tf.constant(list(examples[start : start + SCORING_BATCH])))["probability"].numpy()
        for start in range(0, len(examples), SCORING_BATCH)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """AUC, LogLoss and calibration (mean predicted over observed click rate)."""
    observed = float(np.mean(labels))
    return {
        "auc": binary_auc(labels, probabilities),
        "logloss": log_loss(labels, probabilities),
        "calibration": float(np.mean(probabilities)) / observed if observed else float("inf"),
    }


def judge(candidate_dir: str, export_base: str, data_dir: str, label: str, export: config_lib.ExportConfig) -> Blessing:
    """Scores the candidate SavedModel and the newest loadable version under
    `export_base` on `data_dir`'s validation rows and decides."""
    examples, labels = validation_rows(data_dir, label)
    candidate = metrics(labels, score(candidate_dir, examples))
    baseline, skipped = None, []
    for version in sorted(list_versions(export_base), reverse=True):
        path = tf.io.gfile.join(export_base, str(version))
        try:
            probabilities = score(path, examples)
        except (OSError, ValueError, tf.errors.OpError) as error:
            reason = str(error).strip().splitlines()[0][:200]
            skipped.append(f"version {version}: {reason}")
            print(
                f"[export] version {version} under {export_base} could not be loaded ({reason}); "
                "comparing with the next one"
            )
            continue
        baseline = {"version": version, **metrics(labels, probabilities)}
        break
    bounds = {
        "auc_tolerance": export.auc_tolerance,
        "logloss_tolerance": export.logloss_tolerance,
        "max_calibration_error": export.max_calibration_error,
    }
    reasons = []
    if baseline is not None:
        off, baseline_off = abs(candidate["calibration"] - 1.0), abs(baseline["calibration"] - 1.0)
        if off > export.max_calibration_error and off > baseline_off:
            reasons.append(
                f"calibration {candidate['calibration']:.3f} (mean predicted / observed click rate) is off 1 by "
                f"more than {export.max_calibration_error} and more than version {baseline['version']}'s "
                f"{baseline['calibration']:.3f}"
            )
        if candidate["auc"] < baseline["auc"] - export.auc_tolerance:
            reasons.append(
                f"AUC {candidate['auc']:.4f} < version {baseline['version']}'s {baseline['auc']:.4f} - "
                f"{export.auc_tolerance}"
            )
        if candidate["logloss"] > baseline["logloss"] + export.logloss_tolerance:
            reasons.append(
                f"LogLoss {candidate['logloss']:.4f} > version {baseline['version']}'s {baseline['logloss']:.4f} + "
                f"{export.logloss_tolerance}"
            )
    return Blessing(
        blessed=not reasons,
        reasons=tuple(reasons),
        export_base=export_base,
        rows=int(labels.size),
        candidate=candidate,
        baseline=baseline,
        bounds=bounds,
        skipped_versions=tuple(skipped),
    )


def summary(blessing: Blessing) -> str:
    candidate, baseline = blessing.candidate, blessing.baseline
    against = (
        f"version {baseline['version']} AUC {baseline['auc']:.4f} LogLoss {baseline['logloss']:.4f}"
        if baseline
        else "no version yet"
    )
    decision = "blessed" if blessing.blessed else "refused: " + "; ".join(blessing.reasons)
    return (
        f"candidate AUC {candidate['auc']:.4f} LogLoss {candidate['logloss']:.4f} calibration "
        f"{candidate['calibration']:.3f} vs {against}, on {blessing.rows:,} validation rows: {decision}"
    )
