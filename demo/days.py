"""`python -m demo --days 3`: the daily loop, day after day, while a server answers.

For each day k of a synthetic stream (`pipelines.synthesize --days`: one
planted click model over a vocabulary that moves):

1. `pipelines.preprocess` prepares day k and validates it against day k−1
   (``validation.json``: drift, out-of-vocabulary share, missing values, click
   rate, schema);
2. `featnet_tf.lifecycle.Trainer` trains FeatNet on day k, warm-started from
   day k−1's run (every embedding row carried by token) from day 1 on;
3. the export step judges the candidate against the version serving, on day
   k's validation rows, and publishes it only if it is no worse
   (``blessing.json``);
4. `serving.server`, started once day 0 is published, picks up each new
   version; a client asks it after every day which version answers.

A line per day: the drift report, the warm-start carry, both AUCs, the
decision, the version answering. The commands a scheduler would run for day k
are in the README ("Day after day").
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Any

import tensorflow as tf

from featnet_tf import blessing, experiments, lifecycle, training
from featnet_tf.files import read_json
from featnet_tf.recipes import FAIR_RECIPE
from pipelines import preprocess, synthesize
from serving.client import PredictionClient
from serving.local import LocalServer

MODEL = "featnet"


@dataclasses.dataclass
class DayResult:
    """What one day of the loop did."""

    day: int
    anomalies: list[dict[str, Any]]
    warm_start: dict[str, Any] | None  # rows kept / new / dropped, None on day 0
    test_auc: float
    blessing: dict[str, Any]
    published: str | None  # the version directory, None when the candidate was refused
    answering_version: int | None = None


def train_day(data_dir: str, run_dir: str, export_base: str, recipe: tuple[str, ...], warm_from: str | None):
    """One day's run: trained (warm-started from `warm_from`), evaluated, judged and published if no worse."""
    assignments = recipe + (f"export.export_base={export_base}",)
    if warm_from:
        assignments += (f"training.warm_start={warm_from}",)
    config = experiments.experiment(MODEL, assignments=assignments, **{"data.data_dir": data_dir})
    trainer = lifecycle.Trainer(config, run_dir)
    try:
        result = trainer.run()
        published = result.export.path
        test_auc = result.metrics["auc"]
    except blessing.CandidateRefused:
        published = None
        test_auc = trainer.results().metrics["auc"]
    return test_auc, blessing.Blessing.read(run_dir).to_dict(), published


def answering_version(target: str, examples: list[bytes], wait_for: int | None, seconds: float = 30.0) -> int:
    """The version the server answers with, once it is `wait_for` (when given) or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    with PredictionClient(target, MODEL) as client:
        request = client.predict_request({"examples": tf.make_tensor_proto(examples[:4], dtype=tf.string)})
        while True:
            version = client.predictions.Predict(request, timeout=10.0).model_spec.version.value
            if wait_for is None or version == wait_for or time.monotonic() > deadline:
                return version
            time.sleep(0.5)


def run_days(
    work_dir: str,
    days: int = 3,
    rows: int = 30_000,
    epochs: int = 3,
    seed: int = 0,
    serve: bool = True,
    overrides: tuple[str, ...] = (),
) -> list[DayResult]:
    """The loop over `days` synthetic days under `work_dir` (replaced); a
    `DayResult` a day. `overrides` (``section.key=value``) go after the
    recipe (the suite trains a smaller FeatNet)."""
    shutil.rmtree(work_dir, ignore_errors=True)
    raw = synthesize.synthesize_days(os.path.join(work_dir, "raw"), rows, days, seed)
    export_base = os.path.join(work_dir, "export", MODEL)
    recipe = (
        FAIR_RECIPE
        + (
            f"training.epochs={epochs}",
            "training.early_stopping_patience=1",
            f"training.seed={seed}",
        )
        + tuple(overrides)
    )
    results: list[DayResult] = []
    server = None
    try:
        for day, path in enumerate(raw):
            data_dir = os.path.join(work_dir, f"day-{day:02d}")
            baseline = os.path.join(work_dir, f"day-{day - 1:02d}") if day else None
            prepared = preprocess.preprocess(
                preprocess.PreprocessOptions(data_dir, "criteo", input=[path], baseline=baseline)
            )
            anomalies = prepared.validation["anomalies"] if prepared.validation else []
            run_dir = os.path.join(work_dir, "runs", f"day-{day:02d}")
            warm_from = os.path.join(work_dir, "runs", f"day-{day - 1:02d}") if day else None
            test_auc, decision, published = train_day(data_dir, run_dir, export_base, recipe, warm_from)
            carried = training_warm_start(run_dir)
            result = DayResult(day, anomalies, carried, test_auc, decision, published)
            if serve and server is None and published:
                server = LocalServer(export_base, MODEL).__enter__()
            if server is not None:
                files = tf.io.gfile.glob(os.path.join(data_dir, "test", "*.tfrecord.gz"))
                examples = [record.numpy() for record in tf.data.TFRecordDataset(files, "GZIP").take(4)]
                wanted = int(os.path.basename(published)) if published else None
                result.answering_version = answering_version(server.target, examples, wanted)
            results.append(result)
            print(day_line(result, prepared.validation), flush=True)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return results


def training_warm_start(run_dir: str) -> dict[str, Any] | None:
    path = os.path.join(run_dir, training.WARM_START_FILE)
    if not os.path.exists(path):
        return None
    return read_json(path)["rows"]


def day_line(result: DayResult, report: dict[str, Any] | None) -> str:
    drift = "no baseline (day 0)"
    if report:
        worst = max(report["fields"].items(), key=lambda item: item[1]["drift"] or 0.0)
        drift = (
            f"drift: worst {worst[0]} {worst[1]['comparator']} {worst[1]['drift']:.4f}, "
            f"{len(result.anomalies)} anomalies"
        )
    carry = (
        f"warm start: {result.warm_start['kept']:,} rows kept, {result.warm_start['new']:,} new, "
        f"{result.warm_start['dropped']:,} dropped"
        if result.warm_start
        else "from scratch"
    )
    candidate, baseline = result.blessing["candidate"], result.blessing["baseline"]
    aucs = f"validation AUC {candidate['auc']:.4f}" + (
        f" vs version {baseline['version']}'s {baseline['auc']:.4f}" if baseline else " (no version yet)"
    )
    decision = (
        f"published {result.published}" if result.published else "refused: " + "; ".join(result.blessing["reasons"])
    )
    serving = f"; serving answers with version {result.answering_version}" if result.answering_version else ""
    return f"== day {result.day}: {drift} | {carry} | {aucs}, test AUC {result.test_auc:.4f} | {decision}{serving}"
