"""`python benchmarks/day_after_day.py`: a stream of days through the daily loop, measured (issue 30).

    python benchmarks/day_after_day.py --days 5 --rows 200000 --work_dir /tmp/days
    python benchmarks/day_after_day.py --frappe ../shared/data/frappe.csv --days 3 --work_dir /tmp/frappe_days

Each day is split 80/10/10 by a fixed permutation of its rows and prepared
with ``--train/--valid/--test`` (so a corruption can reach the training rows
alone, as a broken join upstream would), validated against the day before.
Then, in one run, with the same seed for every variant:

1. **Warm start pays**: day k trained from scratch (the demo's recipe: Adam
   1e-3 lowered on a validation plateau, early stopping with patience 1,
   at most 12 epochs) against day k warm-started from day k−1's warm run
   (one epoch): test AUC, steps and wall time of each.
2. **Freshness pays**: the day k−1 model on day k's test rows against the
   warm-started day k model.
3. **Validation**: on every day k ≥ 1 (synthetic stream), the clean day and
   three corruptions of its training rows (one field's tokens replaced by a
   new set, the click rate halved, one field missing in half the rows), and
   a fourth, one field shuffled across rows (same marginals), each checked
   against day k−1: the fields flagged.
4. **Nothing worse reaches serving**: the warm runs publish day after day
   while `serving.server` answers `serving.loadtest` clients; then three
   candidates of the last day are judged: trained (``--accept_anomalies``)
   on the click-halved and the replaced-field training rows, and on the
   shuffled-field rows. The decisions, the failed requests and the versions
   that answered.

A line per stage; the whole report as JSON (``--output``).
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras)

# isort: split

import argparse
import json
import os
import shutil
import sys
import threading
import time
from typing import Any

import numpy as np

from featnet_tf import blessing, experiments, lifecycle, training
from featnet_tf.data import make_dataset
from featnet_tf.metrics import binary_auc
from featnet_tf.recipes import FAIR_RECIPE
from pipelines import preprocess, synthesize
from serving import loadtest
from serving.local import LocalServer

SPLIT_SHARES = (0.8, 0.1, 0.1)
SCRATCH = FAIR_RECIPE + ("training.early_stopping_patience=1", "training.epochs=12")
WARM = FAIR_RECIPE + ("training.epochs=1",)
REPLACED_FIELD, MISSING_FIELD, SHUFFLED_FIELD = "C5", "C14", "C5"  # C5 and C14 carry a planted interaction


def log(message: str) -> None:
    print(f"[day_after_day] {message}", flush=True)


# === Days on disk ===


def read_lines(path: str, header: bool) -> tuple[str | None, list[str]]:
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    return (lines[0], lines[1:]) if header else (None, lines)


def write_lines(path: str, header: str | None, lines: list[str]) -> str:
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("".join(f"{line}\n" for line in ([header] if header else []) + lines))
    return path


def split_day(lines: list[str], day: int, seed: int) -> dict[str, np.ndarray]:
    """Row positions of each split: a fixed permutation of the day, cut 80/10/10."""
    order = np.random.default_rng([seed, day, 7]).permutation(len(lines))
    cuts = np.cumsum([int(share * len(lines)) for share in SPLIT_SHARES[:-1]])
    return dict(zip(("train", "valid", "test"), np.split(order, cuts)))


def write_splits(directory: str, header: str | None, lines: list[str], positions: dict[str, np.ndarray]) -> dict:
    os.makedirs(directory, exist_ok=True)
    return {
        split: write_lines(os.path.join(directory, f"{split}.txt"), header, [lines[i] for i in rows])
        for split, rows in positions.items()
    }


def corrupt(lines: list[str], how: str, columns: list[str], seed: int) -> list[str]:
    """Training rows corrupted: `replaced` (a field's tokens renamed 1:1 to a
    new set), `click_halved` (half the clicks become non-clicks), `missing_half`
    (a field blanked in half the rows) or `shuffled` (a field permuted across rows)."""
    rng = np.random.default_rng([seed, 11])
    cells = [line.split("\t") for line in lines]
    if how == "replaced":
        index = columns.index(REPLACED_FIELD)
        for row in cells:
            row[index] = f"new{row[index]}" if row[index] else ""
    elif how == "click_halved":
        for row in cells:
            if row[0] == "1" and rng.random() < 0.5:
                row[0] = "0"
    elif how == "missing_half":
        index = columns.index(MISSING_FIELD)
        for row, blank in zip(cells, rng.random(len(cells)) < 0.5):
            if blank:
                row[index] = ""
    elif how == "shuffled":
        index = columns.index(SHUFFLED_FIELD)
        values = [row[index] for row in cells]
        for row, position in zip(cells, rng.permutation(len(values))):
            row[index] = values[position]
    else:
        raise ValueError(how)
    return ["\t".join(row) for row in cells]


def prepare(files: dict[str, str], output_dir: str, input_format: str, spec: str | None, baseline: str | None):
    options = preprocess.PreprocessOptions(
        output_dir,
        input_format,
        train=[files["train"]],
        valid=[files["valid"]],
        test=[files["test"]],
        spec=spec,
        baseline=baseline,
        overwrite=True,
    )
    return preprocess.preprocess(options, ["--runner=DirectRunner"])


def flagged(result) -> dict[str, list[str]]:
    """The anomalous fields of a validated day, with the checks that flagged them."""
    fields: dict[str, list[str]] = {}
    for anomaly in (result.validation or {}).get("anomalies", []):
        fields.setdefault(anomaly["field"], []).append(anomaly["check"])
    return fields


# === Training ===


def trainer(model: str, data_dir: str, run_dir: str, recipe: tuple, export_base: str, seed: int, **extra):
    assignments = recipe + (f"training.seed={seed}", f"export.export_base={export_base}")
    assignments += tuple(f"{key}={value}" for key, value in extra.items())
    config = experiments.experiment(model, assignments=assignments, **{"data.data_dir": data_dir})
    return lifecycle.Trainer(config, run_dir)


def fit_and_evaluate(model, data_dir, run_dir, recipe, export_base, seed, **extra) -> dict[str, Any]:
    result = trainer(model, data_dir, run_dir, recipe, export_base, seed, **extra).run(export=False)
    return {
        "test_auc": result.metrics["auc"],
        "test_logloss": result.metrics["logloss"],
        "steps": result.fit.steps,
        "seconds": result.fit.seconds,
        "epochs": len(result.fit.history["val_auc"]),
        "warm_start": result.metrics.get("warm_start", {}).get("rows"),
    }


def auc_on(run_dir: str, data_dir: str) -> float:
    """A trained run's test AUC on another prepared day (through its own transform and vocabularies)."""
    run = training.load_run(run_dir)
    spec, transform = run.spec, run.transform
    dataset = make_dataset(data_dir, "test", 8192, spec=spec, shuffle=False)
    dataset = dataset.map(lambda features, labels: (transform(features), labels))
    labels, probabilities = training.predict(run, "test", dataset)
    return binary_auc(labels, probabilities)


# === The stream ===


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000, help="rows a synthetic day")
    parser.add_argument("--frappe", help="cut this Frappe CSV into --days days by row order instead")
    parser.add_argument("--model", default="featnet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=2, help="loadtest clients while the days publish")
    parser.add_argument("--work_dir", default="/tmp/day_after_day")
    parser.add_argument("--output", help="the report as JSON (default: <work_dir>/report.json)")
    args = parser.parse_args(argv)
    synthetic = not args.frappe
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    input_format = "criteo" if synthetic else "csv"
    spec = None if synthetic else os.path.join(os.path.dirname(__file__), "..", "pipelines", "specs", "frappe.yaml")
    columns = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    export_base = os.path.join(args.work_dir, "export", args.model)
    report: dict[str, Any] = {"days": [], "corruptions": [], "candidates": []}

    if synthetic:
        raw_days = synthesize.synthesize_days(os.path.join(args.work_dir, "raw"), args.rows, args.days, args.seed)
        header = None
    else:
        header, lines = read_lines(args.frappe, header=True)
        raw_days = []
        for day, chunk in enumerate(np.array_split(np.arange(len(lines)), args.days)):
            raw_days.append(
                write_lines(os.path.join(args.work_dir, f"frappe-day-{day}.csv"), header, [lines[i] for i in chunk])
            )

    day_files, prepared, positions = [], [], []
    for day, path in enumerate(raw_days):
        _, lines = read_lines(path, header=not synthetic)
        positions.append(split_day(lines, day, args.seed))
        day_files.append(write_splits(os.path.join(args.work_dir, f"splits-{day}"), header, lines, positions[-1]))
        output = os.path.join(args.work_dir, f"prepared-{day}")
        result = prepare(day_files[-1], output, input_format, spec, prepared[-1] if prepared else None)
        prepared.append(output)
        entry: dict[str, Any] = {"day": day, "anomalies": flagged(result)}
        if synthetic:
            truth = np.load(synthesize.probabilities_path(path))[positions[-1]["test"]]
            test_labels = np.array([int(lines[i].split("\t", 1)[0]) for i in positions[-1]["test"]])
            entry["bayes_test_auc"] = binary_auc(test_labels, truth)
        report["days"].append(entry)
        log(f"day {day}: prepared; anomalies against day {day - 1}: {entry['anomalies'] or 'none'}")

    for day in range(args.days):
        entry = report["days"][day]
        scratch_dir = os.path.join(args.work_dir, "runs", f"scratch-{day}")
        warm_dir = os.path.join(args.work_dir, "runs", f"warm-{day}")
        entry["scratch"] = fit_and_evaluate(args.model, prepared[day], scratch_dir, SCRATCH, export_base, args.seed)
        if day == 0:
            shutil.copytree(scratch_dir, warm_dir)  # the stream's first model: day 0 from scratch
            entry["warm"] = None
        else:
            previous = os.path.join(args.work_dir, "runs", f"warm-{day - 1}")
            entry["warm"] = fit_and_evaluate(
                args.model, prepared[day], warm_dir, WARM, export_base, args.seed, **{"training.warm_start": previous}
            )
            entry["stale_test_auc"] = auc_on(previous, prepared[day])
        log(f"day {day}: {json.dumps({key: entry.get(key) for key in ('scratch', 'warm', 'stale_test_auc')})}")

    if synthetic:
        for day in range(1, args.days):
            _, lines = read_lines(raw_days[day], header=False)
            train_lines = [lines[i] for i in positions[day]["train"]]
            for how in ("replaced", "click_halved", "missing_half", "shuffled"):
                directory = os.path.join(args.work_dir, f"corrupt-{how}-{day}")
                files = dict(day_files[day])
                os.makedirs(directory, exist_ok=True)
                files["train"] = write_lines(
                    os.path.join(directory, "train.txt"), None, corrupt(train_lines, how, columns, args.seed)
                )
                result = prepare(files, os.path.join(directory, "prepared"), input_format, spec, prepared[day - 1])
                report["corruptions"].append({"day": day, "corruption": how, "anomalies": flagged(result)})
                log(f"day {day}, {how}: flagged {flagged(result) or 'nothing'}")
        publish_under_load(args, prepared, report, export_base)

    output = args.output or os.path.join(args.work_dir, "report.json")
    with open(output, "w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2)
    log(f"report → {output}")
    return report


def publish_under_load(args, prepared: list[str], report: dict[str, Any], export_base: str) -> None:
    """The warm runs publish day after day while clients load the server; then the last day's corrupted candidates."""
    runs = os.path.join(args.work_dir, "runs")
    first = trainer(args.model, prepared[0], os.path.join(runs, "warm-0"), SCRATCH, export_base, args.seed).run()
    log(f"day 0 published as {first.export.path}")
    examples = loadtest.read_examples(os.path.join(prepared[0], "test", "*.tfrecord.gz"), limit=2000)
    stop = threading.Event()
    with LocalServer(export_base, args.model) as server:
        outcome: dict[str, Any] = {}
        load = threading.Thread(
            target=lambda: outcome.update(
                loadtest.run_load(server.target, args.model, examples, args.clients, 3600.0, 1, stop=stop)
            )
        )
        load.start()
        try:
            for day in range(1, args.days):
                warm_start = {"training.warm_start": os.path.join(runs, f"warm-{day - 1}")}
                run_dir = os.path.join(runs, f"warm-{day}")
                decision = judge(
                    trainer(args.model, prepared[day], run_dir, WARM, export_base, args.seed, **warm_start)
                )
                report["days"][day]["publish"] = decision
                log(f"day {day}: {decision['summary']}")
            last = args.days - 1
            previous = os.path.join(runs, f"warm-{last - 1}")
            for how in ("click_halved", "replaced", "shuffled"):
                data_dir = os.path.join(args.work_dir, f"corrupt-{how}-{last}", "prepared")
                extra = {"training.warm_start": previous, "data.accept_anomalies": "true"}
                candidate = trainer(
                    args.model, data_dir, os.path.join(runs, f"candidate-{how}"), WARM, export_base, args.seed, **extra
                )
                decision = judge(candidate)
                report["candidates"].append({"corruption": how, **decision})
                log(f"candidate trained on day {last} {how}: {decision['summary']}")
            time.sleep(2.0)  # the server picks up the last version
        finally:
            stop.set()
            load.join()
    report["load"] = {
        key: outcome.get(key)
        for key in ("requests", "failed_good_requests", "errors", "versions_answered", "qps", "p99_ms")
    }
    log(f"load while publishing: {json.dumps(report['load'])}")


def judge(run_trainer: lifecycle.Trainer) -> dict[str, Any]:
    """Runs the trainer to its export; the publish check's decision."""
    try:
        result = run_trainer.run()
        published = result.export.path
    except blessing.CandidateRefused:
        published = None
    decision = blessing.Blessing.read(run_trainer.run_dir)
    return {
        "published": published,
        "blessed": decision.blessed,
        "candidate": decision.candidate,
        "baseline": decision.baseline,
        "reasons": list(decision.reasons),
        "summary": blessing.summary(decision),
    }


if __name__ == "__main__":
    main(sys.argv[1:])
