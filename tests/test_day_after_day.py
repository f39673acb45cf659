"""Three small days through the daily loop, end to end, while a server answers (`python -m demo --days`)."""

import json
import os

import pytest

from featnet_tf import prepared_data, training

SMALL_FEATNET = (
    "model.embedding_dim=4",
    "model.num_subsets=2",
    "model.num_queries=3",
    "model.tower_units=[8]",
    "model.dnn_units=[8]",
    "data.batch_size=128",
    "training.learning_rate=0.01",
)


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    from demo import days

    work_dir = str(tmp_path_factory.mktemp("days") / "loop")
    return work_dir, days.run_days(work_dir, days=3, rows=3000, epochs=1, overrides=SMALL_FEATNET)


def test_each_day_is_validated_against_the_day_before(three_days):
    work_dir, results = three_days
    assert not os.path.exists(os.path.join(work_dir, "day-00", prepared_data.VALIDATION_FILE))
    for day in (1, 2):
        with open(os.path.join(work_dir, f"day-{day:02d}", prepared_data.VALIDATION_FILE)) as stream:
            report = json.load(stream)
        assert report["baseline"] == os.path.join(work_dir, f"day-{day - 1:02d}")
        assert report["anomalies"] == results[day].anomalies == []  # clean days, default thresholds
        assert report["fields"]["C10"]["oov_rate"] > 0  # the vocabulary moved


def test_each_day_after_the_first_starts_from_the_day_before(three_days):
    work_dir, results = three_days
    assert results[0].warm_start is None
    for day in (1, 2):
        carried = results[day].warm_start
        assert carried["kept"] > 0 and carried["new"] > 0 and carried["dropped"] > 0
        config = os.path.join(work_dir, "runs", f"day-{day:02d}", training.CONFIG_FILE)
        with open(config) as stream:
            assert f"runs/day-{day - 1:02d}" in stream.read()


def test_serving_answers_with_the_newest_blessed_version_and_nothing_refused_reaches_it(three_days):
    work_dir, results = three_days
    base = os.path.join(work_dir, "export", "featnet")
    assert results[0].published == os.path.join(base, "1") and results[0].blessing["baseline"] is None
    newest = 1
    for result in results[1:]:
        assert result.blessing["baseline"]["version"] == newest
        if result.published:
            assert result.blessing["blessed"]
            newest = int(os.path.basename(result.published))
        else:
            assert not result.blessing["blessed"] and result.blessing["reasons"]
        assert result.answering_version == newest
    assert sorted(int(name) for name in os.listdir(base) if name.isdigit()) == list(range(1, newest + 1))
