"""A day validated against a baseline day: TFDV's comparators on hand-made counts, each anomaly, the marks."""

import json
import math
import os

import numpy as np
import pyarrow as pa
import pytest

from featnet_tf import prepared_data
from featnet_tf.features import FeatureSpec, Field
from pipelines import validation

# === The comparators, on hand-made counts ===


def counts(**tokens):
    return pa.table({"token": list(tokens), "count": pa.array(list(tokens.values()), pa.int64())})


def test_l_infinity_is_the_largest_frequency_difference_over_the_union_of_tokens():
    # p = {a: .5, b: .5}, q = {a: .25, c: .75}: |.5-.25|, |.5-0|, |0-.75| → 0.75
    assert validation.l_infinity_distance(counts(a=2, b=2), counts(a=1, c=3)) == pytest.approx(0.75)
    assert validation.l_infinity_distance(counts(a=5, b=5), counts(a=1, b=1)) == 0.0
    assert validation.l_infinity_distance(counts(a=1), validation.pa.table({"token": [], "count": []})) == 1.0


def test_jensen_shannon_divergence_in_bits_is_zero_for_equal_and_one_for_disjoint_distributions():
    assert validation.jensen_shannon_divergence(np.array([1, 3, 0]), np.array([2, 6, 0])) == 0.0
    assert validation.jensen_shannon_divergence(np.array([4, 0]), np.array([0, 4])) == pytest.approx(1.0)
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4); ½·KL(p‖m) + ½·KL(q‖m), by hand
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert validation.jensen_shannon_divergence(np.array([1, 1]), np.array([2, 0])) == pytest.approx(expected)


def test_out_of_vocabulary_share_counts_tokens_not_rows_of_the_vocabulary():
    assert validation.out_of_vocabulary_share(counts(a=6, b=3, z=1), ["a", "b"]) == pytest.approx(0.1)
    assert validation.out_of_vocabulary_share(counts(), ["a"]) is None


def test_numeric_histogram_has_fixed_buckets_for_zero_sign_and_quarter_octaves():
    histogram = validation.numeric_histogram(np.array([0.0, 1.0, 1.1, 1.2, -1.0, 2.0, 1e30]))
    zero = validation.MAGNITUDE_BUCKETS
    one = zero + 1 - 4 * validation.SMALLEST_EXPONENT  # floor(4·log2 1) = 0
    assert histogram[zero] == 1
    assert histogram[one] == 2  # 1.0 and 1.1 (4·log2 1.1 = 0.55); 1.2 is the next quarter octave
    assert histogram[one + 1] == 1
    assert histogram[2 * zero - one] == 1  # -1.0, mirrored
    assert histogram[one + 4] == 1  # 2.0: one octave up
    assert histogram[-1] == 1  # beyond 2^64: the last bucket
    assert histogram.sum() == 7
    entry = validation.histogram_to_json(histogram)
    assert np.array_equal(validation.histogram_from_json(json.loads(json.dumps(entry))), histogram)


# === Each anomaly, on hand-made prepared directories ===

SPEC = FeatureSpec(
    (Field("site", "categorical", vocabulary_size=2), Field("count", "numeric", transform="identity")), label="label"
)


def day_dir(root, name, *, site=None, vocabulary=("a", "b"), histogram=None, missing=0.0, clicks=25, spec=SPEC):
    """A prepared directory's statistics by hand: 100 rows, `clicks` clicks."""
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, prepared_data.TOKEN_COUNTS_DIR))
    os.makedirs(os.path.join(path, prepared_data.VOCABULARY_DIR))
    with open(os.path.join(path, prepared_data.FEATURE_SPEC_FILE), "w") as stream:
        json.dump(spec.to_dict(), stream)
    fields = {}
    for field in spec.fields:
        entry = {"kind": field.kind, "missing_rate": missing if field.name == "site" else 0.0}
        if field.kind == "numeric":
            entry["histogram"] = validation.histogram_to_json(
                histogram if histogram is not None else validation.numeric_histogram(np.arange(100.0))
            )
        else:
            entry.update(valid_oov_rate=0.02, test_oov_rate=0.04)
            validation.write_token_counts(
                site if site is not None else counts(a=50, b=50),
                os.path.join(path, prepared_data.token_counts_file(field.name)),
            )
            with open(os.path.join(path, prepared_data.vocabulary_file(field.name)), "w") as stream:
                stream.write("".join(f"{token}\n" for token in vocabulary))
        fields[field.name] = entry
    statistics = {
        "splits": {"train": {"rows": 100, "clicks": clicks}, "valid": {"rows": 0, "clicks": 0}},
        "fields": fields,
    }
    with open(os.path.join(path, prepared_data.STATISTICS_FILE), "w") as stream:
        json.dump(statistics, stream)
    return path


def anomalies(report):
    return sorted((anomaly["field"], anomaly["check"]) for anomaly in report["anomalies"])


def test_a_day_like_its_baseline_has_no_anomaly(tmp_path):
    report = validation.validate(day_dir(tmp_path, "day"), day_dir(tmp_path, "baseline"))
    assert report["anomalies"] == []
    assert report["fields"]["site"]["comparator"] == "l_infinity" and report["fields"]["site"]["drift"] == 0.0
    assert report["fields"]["count"]["comparator"] == "jensen_shannon_divergence"
    assert report["fields"]["site"]["oov_rate"] == 0.0
    assert report["fields"]["site"]["baseline_oov_rate"] == pytest.approx(0.03)  # its own held-out rows


def test_a_field_whose_tokens_are_replaced_is_flagged_for_drift_and_out_of_vocabulary(tmp_path):
    day = day_dir(tmp_path, "day", site=counts(x=50, y=50))
    report = validation.validate(day, day_dir(tmp_path, "baseline"))
    assert anomalies(report) == [("site", "l_infinity"), ("site", "out_of_vocabulary")]
    message = " ".join(anomaly["message"] for anomaly in report["anomalies"])
    assert "100.0% of the day's tokens are out of the baseline's vocabulary" in message and "3.0%" in message


def test_a_numeric_field_that_shifts_is_flagged_by_its_jensen_shannon_divergence(tmp_path):
    shifted = validation.numeric_histogram(np.arange(100.0) * 1000)
    report = validation.validate(day_dir(tmp_path, "day", histogram=shifted), day_dir(tmp_path, "baseline"))
    assert anomalies(report) == [("count", "jensen_shannon_divergence")]


def test_the_click_rate_halved_is_flagged_with_both_rates(tmp_path):
    report = validation.validate(day_dir(tmp_path, "day", clicks=12), day_dir(tmp_path, "baseline"))
    assert anomalies(report) == [("(label)", "click_rate")]
    assert "click rate 0.1200 vs the baseline's 0.2500" in report["anomalies"][0]["message"]


def test_a_field_missing_in_half_the_rows_is_flagged(tmp_path):
    report = validation.validate(day_dir(tmp_path, "day", missing=0.5), day_dir(tmp_path, "baseline"))
    assert anomalies(report) == [("site", "missing_rate")]


def test_a_field_gone_added_or_of_another_kind_is_always_an_anomaly(tmp_path):
    other = FeatureSpec(
        (Field("site", "multi_hot", vocabulary_size=2), Field("hour", "categorical", vocabulary_size=2)),
        label="label",
    )
    report = validation.validate(day_dir(tmp_path, "day", spec=other), day_dir(tmp_path, "baseline"))
    assert anomalies(report) == [("count", "schema"), ("hour", "schema"), ("site", "schema")]


def test_a_fields_own_threshold_in_the_spec_wins_over_the_runs(tmp_path):
    tolerant = FeatureSpec(
        (
            Field("site", "categorical", vocabulary_size=2, max_drift=1.0, max_oov_increase=1.0),
            Field("count", "numeric", transform="identity"),
        ),
        label="label",
    )
    day = day_dir(tmp_path, "day", site=counts(x=50, y=50), spec=tolerant)
    assert validation.validate(day, day_dir(tmp_path, "baseline"))["anomalies"] == []
    strict = validation.Thresholds(oov_increase=1.0, l_infinity=1.0)
    assert validation.validate(day_dir(tmp_path, "day2", site=counts(x=50, y=50)), day, strict)["anomalies"] == []


def test_a_baseline_prepared_before_validation_existed_is_refused_by_name(tmp_path):
    baseline = day_dir(tmp_path, "baseline")
    os.remove(os.path.join(baseline, prepared_data.token_counts_file("site")))
    with pytest.raises(ValueError, match="keeps no token counts of field site.*preprocess it again"):
        validation.validate(day_dir(tmp_path, "day"), baseline)


# === The marks: the command's exit code, training's refusal ===


def test_a_day_with_anomalies_is_written_marked_exit_code_3_and_train_refuses_it(tmp_path, capsys):
    from featnet_tf import experiments, lifecycle
    from featnet_tf import train as train_command
    from pipelines import preprocess, synthesize

    raw = synthesize.synthesize_days(str(tmp_path / "raw"), 3000, 2, seed=1)
    baseline = str(tmp_path / "day0")
    assert preprocess.main(["--input", raw[0], "--format", "criteo", "--output_dir", baseline]) == 0
    with open(raw[1]) as stream:  # day 1 with its click rate halved
        lines = stream.read().splitlines()
    halved = [("0" + line[1:]) if line.startswith("1") and index % 2 else line for index, line in enumerate(lines)]
    corrupted = tmp_path / "day1.tsv"
    corrupted.write_text("\n".join(halved) + "\n")
    day = str(tmp_path / "day1")
    argv = ["--input", str(corrupted), "--format", "criteo", "--output_dir", day, "--baseline", baseline]
    assert preprocess.main(argv) == validation.ANOMALIES_EXIT_CODE
    error = capsys.readouterr().err
    assert "click rate" in error and "train on it only with --accept_anomalies" in error
    marked = prepared_data.anomalies(day)
    assert [anomaly["check"] for anomaly in marked] == ["click_rate"]
    assert os.path.exists(os.path.join(day, "train"))  # written, but marked

    config = experiments.experiment("lr", **{"data.data_dir": day})
    with pytest.raises(ValueError, match="marked with 1 data anomaly.*click rate.*--accept_anomalies"):
        lifecycle.Trainer(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")  # nothing written
    assert train_command.main(["--experiment", "lr", "--data_dir", day, "--run_dir", str(tmp_path / "run")]) == 2
    accepted = experiments.experiment("lr", **{"data.data_dir": day, "data.accept_anomalies": True})
    lifecycle.Trainer(accepted, str(tmp_path / "accepted"))  # builds: the anomaly is accepted
    assert "despite 1 anomalies (accepted)" in capsys.readouterr().out
