"""A prepared day checked against a baseline day: TFDV's drift comparators on our own statistics.

`pipelines.preprocess --baseline PREPARED_DIR` writes ``validation.json``
into the new day's directory: per field the comparator TFDV's drift
detection uses for its kind, the share of the day's tokens the baseline's
vocabulary does not know, the missing rates, the click rates, and the
schema changes; then every value over its threshold as an anomaly. TFDV
1.21 does not install beside TensorFlow 2.21 on Python 3.11, so its
definitions are computed here, on the statistics `pipelines.preprocess`
writes for every day:

* **categorical and multi-hot fields: the L-infinity distance**
  ``max_t |p(t) − q(t)|`` between the two days' token frequency
  distributions, over the union of their tokens (TFDV's
  ``drift_comparator.infinity_norm``; here over every token a day holds, its
  ``token_counts/<field>.parquet``, where TFDV stops at its top-k);
* **numeric fields: the Jensen-Shannon divergence**
  ``½ KL(p‖m) + ½ KL(q‖m)``, ``m = ½(p + q)``, in bits (so in [0, 1]),
  between the two days' value histograms (TFDV's
  ``drift_comparator.jensen_shannon_divergence``). Where TFDV rebuckets two
  equal-width histograms onto their union of boundaries, both days here
  share one fixed histogram (`numeric_histogram`: zero, and quarter-octave
  buckets of ``|x|`` from 2⁻³² to 2⁶⁴ on either sign), so no rebucketing
  and no assumption of values spread evenly inside a bucket;
* **out of vocabulary**: the share of the day's tokens (one per row with a
  value, each of a multi-hot list) that the baseline's vocabulary lacks,
  against the baseline's own held-out rate (its valid and test rows against
  its train vocabulary): tokens seen once never enter a vocabulary, so the
  baseline already has a rate of its own; the anomaly is the increase;
* **missing values**: the change of each field's missing rate;
* **the click rate**: its relative change;
* **schema**: a field added, gone, or of another kind: always an anomaly.

Thresholds: a field's own (`Field.max_drift`, `max_oov_increase`,
`max_missing_change` in the FeatureSpec), else the run's (`Thresholds`,
the ``--max_*`` flags). The defaults were set on clean synthetic days
(BENCHMARKS.md, "Day after day"): no clean day crosses them.

A hashed field keeps no token counts (it has no vocabulary): its
comparator is reported as not computed, never as zero.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from featnet_tf import prepared_data
from featnet_tf.features import FeatureSpec, Field

ANOMALIES_EXIT_CODE = 3  # `python -m pipelines.preprocess --baseline` on a day with anomalies

# === Statistics every day keeps ===

BUCKETS_PER_OCTAVE = 4
SMALLEST_EXPONENT, LARGEST_EXPONENT = -32, 64  # |x| from 2^-32 to 2^64; beyond, the end buckets
MAGNITUDE_BUCKETS = (LARGEST_EXPONENT - SMALLEST_EXPONENT) * BUCKETS_PER_OCTAVE
HISTOGRAM_SIZE = 2 * MAGNITUDE_BUCKETS + 1  # negative magnitudes, zero, positive magnitudes


def numeric_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of `values` (NaN-free) in the one fixed histogram every day
    shares: index ``MAGNITUDE_BUCKETS`` is zero; ``MAGNITUDE_BUCKETS ± (k+1)``
    holds ``±x`` with ``floor(4·log2|x|) − 4·SMALLEST_EXPONENT = k``."""
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.abs(values)
    nonzero = magnitude > 0
    level = np.zeros(values.shape, dtype=np.int64)
    level[nonzero] = np.clip(
        np.floor(BUCKETS_PER_OCTAVE * np.log2(magnitude[nonzero])).astype(np.int64)
        - BUCKETS_PER_OCTAVE * SMALLEST_EXPONENT,
        0,
        MAGNITUDE_BUCKETS - 1,
    )
    index = MAGNITUDE_BUCKETS + np.sign(values).astype(np.int64) * (level + 1)
    return np.bincount(index, minlength=HISTOGRAM_SIZE)


def histogram_to_json(counts: np.ndarray) -> dict[str, list[int]]:
    """The non-empty buckets of a `numeric_histogram`, as ``statistics.json`` keeps them."""
    buckets = np.flatnonzero(counts)
    return {"buckets": buckets.tolist(), "counts": counts[buckets].tolist()}


def histogram_from_json(entry: dict[str, list[int]]) -> np.ndarray:
    counts = np.zeros(HISTOGRAM_SIZE, dtype=np.int64)
    counts[np.asarray(entry["buckets"], dtype=np.int64)] = entry["counts"]
    return counts


def write_token_counts(table: pa.Table, path: str) -> None:
    """A field's (token, count) table of the whole day, as Parquet."""
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    with FileSystems.create(path) as stream:
        stream.write(buffer.getvalue().to_pybytes())


def read_token_counts(path: str) -> pa.Table:
    with FileSystems.open(path) as stream:
        return pq.read_table(io.BytesIO(stream.read()))


# === The comparators (TFDV's definitions) ===


def l_infinity_distance(counts: pa.Table, baseline: pa.Table) -> float:
    """``max_t |p(t) − q(t)|`` of two (token, count) tables' normalized
    frequencies, over the union of their tokens (a token absent from one
    has frequency 0 there). 0 when both are empty; 1 when one is."""
    total, baseline_total = _total(counts), _total(baseline)
    if not total and not baseline_total:
        return 0.0
    if not total or not baseline_total:
        return 1.0
    joined = counts.join(baseline, "token", join_type="full outer", right_suffix="_baseline")
    p = joined["count"].fill_null(0).to_numpy() / total
    q = joined["count_baseline"].fill_null(0).to_numpy() / baseline_total
    return float(np.max(np.abs(p - q)))


def jensen_shannon_divergence(counts: np.ndarray, baseline: np.ndarray) -> float:
    """``½ KL(p‖m) + ½ KL(q‖m)`` in bits, ``m = ½(p + q)``, of two count
    vectors over the same buckets; in [0, 1]. 0 when both are empty; 1 when one is."""
    total, baseline_total = float(np.sum(counts)), float(np.sum(baseline))
    if not total and not baseline_total:
        return 0.0
    if not total or not baseline_total:
        return 1.0
    p, q = np.asarray(counts) / total, np.asarray(baseline) / baseline_total
    m = 0.5 * (p + q)
    return float(0.5 * _kl_bits(p, m) + 0.5 * _kl_bits(q, m))


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    support = p > 0
    return float(np.sum(p[support] * np.log2(p[support] / m[support])))


def out_of_vocabulary_share(counts: pa.Table, vocabulary: list[str]) -> float | None:
    """The share of the tokens counted in `counts` that `vocabulary` lacks (None when none were counted)."""
    total = _total(counts)
    if not total:
        return None
    unknown = pc.invert(pc.is_in(counts["token"], value_set=pa.array(vocabulary, pa.string())))
    return float((pc.sum(counts["count"].filter(unknown)).as_py() or 0) / total)


def _total(counts: pa.Table) -> int:
    return int(pc.sum(counts["count"]).as_py() or 0) if counts.num_rows else 0


# === Thresholds and the report ===


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """What a day may differ from its baseline before it is an anomaly (the
    ``--max_*`` flags of `pipelines.preprocess`); a field's own threshold in
    the FeatureSpec takes precedence.

    Attributes:
        l_infinity: categorical and multi-hot fields' L-infinity distance.
        js_divergence: numeric fields' Jensen-Shannon divergence (bits).
        oov_increase: the day's out-of-vocabulary share minus the baseline's
            own held-out rate.
        missing_change: the absolute change of a field's missing rate.
        click_rate_change: the relative change of the click rate.
    """

    l_infinity: float = 0.05
    js_divergence: float = 0.05
    oov_increase: float = 0.1
    missing_change: float = 0.05
    click_rate_change: float = 0.2

    def drift(self, field: Field) -> float:
        if field.max_drift is not None:
            return field.max_drift
        return self.js_divergence if field.kind == "numeric" else self.l_infinity

    def oov(self, field: Field) -> float:
        return self.oov_increase if field.max_oov_increase is None else field.max_oov_increase

    def missing(self, field: Field) -> float:
        return self.missing_change if field.max_missing_change is None else field.max_missing_change


class DataAnomalies(RuntimeError):
    """A day was written, and marked: its ``validation.json`` lists anomalies."""

    def __init__(self, output_dir: str, report: dict[str, Any]) -> None:
        self.output_dir, self.report = output_dir, report
        lines = [anomaly["message"] for anomaly in report["anomalies"]]
        super().__init__(
            f"{len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} against {report['baseline']} "
            f"({prepared_data.path(output_dir, prepared_data.VALIDATION_FILE)}):\n  " + "\n  ".join(lines)
        )


def validate(day_dir: str, baseline_dir: str, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """The report of `day_dir` against `baseline_dir` (both prepared
    directories, the day's possibly still staged): what ``validation.json`` holds."""
    day, baseline = _Day(day_dir), _Day(baseline_dir)
    anomalies: list[dict[str, Any]] = []

    def flag(field: str, check: str, value: Any, base: Any, threshold: Any, message: str) -> None:
        anomalies.append(
            {
                "field": field,
                "check": check,
                "value": value,
                "baseline": base,
                "threshold": threshold,
                "message": message,
            }
        )

    schema_changes = _schema_changes(day.spec, baseline.spec)
    for change in schema_changes:
        flag(change["field"], "schema", change["kind"], change["baseline_kind"], None, change["message"])

    rate, base_rate = day.click_rate, baseline.click_rate
    change = abs(rate / base_rate - 1.0) if base_rate else (0.0 if not rate else float("inf"))
    click = {"value": rate, "baseline": base_rate, "relative_change": change, "threshold": thresholds.click_rate_change}
    if change > thresholds.click_rate_change:
        flag(
            "(label)",
            "click_rate",
            rate,
            base_rate,
            thresholds.click_rate_change,
            f"click rate {rate:.4f} vs the baseline's {base_rate:.4f}: {change:.1%} relative change "
            f"> {thresholds.click_rate_change:.0%}",
        )

    fields: dict[str, Any] = {}
    for field in day.spec.fields:
        if field.name in baseline.spec.names and baseline.spec[field.name].kind == field.kind:
            fields[field.name], field_anomalies = _compare_field(field, day, baseline, thresholds)
            anomalies.extend(field_anomalies)
    return {
        "day": day_dir,
        "baseline": baseline_dir,
        "thresholds": dataclasses.asdict(thresholds),
        "click_rate": click,
        "schema_changes": schema_changes,
        "fields": fields,
        "anomalies": anomalies,
    }


def _compare_field(
    field: Field, day: "_Day", baseline: "_Day", thresholds: Thresholds
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One field's values in the report, and its anomalies."""
    name = field.name
    entry: dict[str, Any] = {"kind": field.kind}
    anomalies: list[dict[str, Any]] = []

    def flag(check: str, value: Any, base: Any, threshold: Any, message: str) -> None:
        anomalies.append(
            {
                "field": name,
                "check": check,
                "value": value,
                "baseline": base,
                "threshold": threshold,
                "message": message,
            }
        )

    if field.kind == "numeric":
        value = jensen_shannon_divergence(day.histogram(name), baseline.histogram(name))
        entry.update(comparator="jensen_shannon_divergence", drift=value)
    elif field.uses_vocabulary:
        value = l_infinity_distance(day.token_counts(name), baseline.token_counts(name))
        entry.update(comparator="l_infinity", drift=value)
    else:
        value = None
        entry.update(comparator=None, drift=None, note="hashed or untokenized: no token counts to compare")
    threshold = thresholds.drift(field)
    entry["drift_threshold"] = threshold
    if value is not None and value > threshold:
        flag(
            entry["comparator"], value, 0.0, threshold, f"field {name}: {entry['comparator']} {value:.4f} > {threshold}"
        )

    if field.uses_vocabulary:
        share = out_of_vocabulary_share(day.token_counts(name), baseline.vocabulary(name))
        base_share = baseline.held_out_oov_rate(name)
        entry.update(oov_rate=share, baseline_oov_rate=base_share, oov_threshold=thresholds.oov(field))
        if share is not None and share - (base_share or 0.0) > thresholds.oov(field):
            flag(
                "out_of_vocabulary",
                share,
                base_share,
                thresholds.oov(field),
                f"field {name}: {share:.1%} of the day's tokens are out of the baseline's vocabulary, vs "
                f"{base_share or 0.0:.1%} of its own held-out rows (increase > {thresholds.oov(field):.0%})",
            )

    missing, base_missing = day.missing_rate(name), baseline.missing_rate(name)
    entry.update(missing_rate=missing, baseline_missing_rate=base_missing, missing_threshold=thresholds.missing(field))
    if missing is not None and base_missing is not None and abs(missing - base_missing) > thresholds.missing(field):
        flag(
            "missing_rate",
            missing,
            base_missing,
            thresholds.missing(field),
            f"field {name}: missing in {missing:.1%} of rows vs the baseline's {base_missing:.1%} "
            f"(change > {thresholds.missing(field):.0%})",
        )
    return entry, anomalies


def _schema_changes(spec: FeatureSpec, baseline: FeatureSpec) -> list[dict[str, Any]]:
    changes = []
    for name in baseline.names:
        if name not in spec.names:
            changes.append(
                {"field": name, "kind": None, "baseline_kind": baseline[name].kind, "message": f"field {name} is gone"}
            )
    for field in spec.fields:
        if field.name not in baseline.names:
            changes.append(
                {
                    "field": field.name,
                    "kind": field.kind,
                    "baseline_kind": None,
                    "message": f"field {field.name} ({field.kind}) is new: the baseline has no such field",
                }
            )
        elif baseline[field.name].kind != field.kind:
            changes.append(
                {
                    "field": field.name,
                    "kind": field.kind,
                    "baseline_kind": baseline[field.name].kind,
                    "message": f"field {field.name} is {field.kind}; in the baseline it is {baseline[field.name].kind}",
                }
            )
    return changes


class _Day:
    """What `validate` reads of one prepared directory."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.spec = FeatureSpec.from_dict(self._json(prepared_data.FEATURE_SPEC_FILE))
        self.statistics = self._json(prepared_data.STATISTICS_FILE)
        splits = self.statistics["splits"].values()
        rows = sum(split["rows"] for split in splits)
        self.click_rate = sum(split["clicks"] for split in splits) / rows if rows else 0.0

    def _json(self, name: str) -> Any:
        path = prepared_data.path(self.output_dir, name)
        if not FileSystems.exists(path):
            raise ValueError(f"{self.output_dir} is not a preprocessing output directory: {path} does not exist")
        with FileSystems.open(path) as stream:
            return json.loads(stream.read().decode("utf-8"))

    def _field(self, name: str) -> dict[str, Any]:
        return self.statistics["fields"][name]

    def missing_rate(self, name: str) -> float | None:
        return self._field(name).get("missing_rate")

    def held_out_oov_rate(self, name: str) -> float | None:
        rates = [self._field(name).get(f"{split}_oov_rate") for split in ("valid", "test")]
        rates = [rate for rate in rates if rate is not None]
        return sum(rates) / len(rates) if rates else None

    def histogram(self, name: str) -> np.ndarray:
        entry = self._field(name).get("histogram")
        if entry is None:
            raise ValueError(
                f"{self.output_dir} keeps no histogram of field {name}: it was prepared before days were validated; "
                "preprocess it again to use it as a baseline"
            )
        return histogram_from_json(entry)

    def token_counts(self, name: str) -> pa.Table:
        path = prepared_data.path(self.output_dir, prepared_data.token_counts_file(name))
        if not FileSystems.exists(path):
            raise ValueError(
                f"{self.output_dir} keeps no token counts of field {name} ({path}): it was prepared before days were "
                "validated; preprocess it again to use it as a baseline"
            )
        return read_token_counts(path)

    def vocabulary(self, name: str) -> list[str]:
        path = prepared_data.path(self.output_dir, prepared_data.vocabulary_file(name))
        with FileSystems.open(path) as stream:
            return stream.read().decode("utf-8").splitlines()


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The drift report as the command prints it: a line for the day, one per field."""
    click = report["click_rate"]
    lines = [
        f"click rate {click['value']:.4f} (baseline {click['baseline']:.4f}); "
        f"{len(report['anomalies'])} anomal{'y' if len(report['anomalies']) == 1 else 'ies'}"
    ]
    for name, entry in report["fields"].items():
        drift = "not computed" if entry["drift"] is None else f"{entry['comparator']} {entry['drift']:.4f}"
        oov = f", OOV {entry['oov_rate']:.1%}" if entry.get("oov_rate") is not None else ""
        lines.append(f"  {name}: {drift}{oov}, missing {entry['missing_rate'] or 0:.1%}")
    return lines
