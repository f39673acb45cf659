"""A stream of synthetic days (issue 30, item 1): one planted click model, a vocabulary that moves."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import synthesize
from pipelines.formats import CRITEO_CATEGORICAL, CRITEO_NUMERIC

ROWS = 20_000
C3 = CRITEO_CATEGORICAL.index("C3")  # 20,000 ids: long-tailed
C6 = CRITEO_CATEGORICAL.index("C6")  # 20 ids: stable


def field_tokens(data: synthesize.Synthetic, index: int) -> set[str]:
    return set(data.columns[1 + len(CRITEO_NUMERIC) + index].tolist()) - {""}


@pytest.fixture(scope="module")
def days():
    return [synthesize.synthesize_criteo_day(ROWS, day, seed=4) for day in range(3)]


def test_each_day_replaces_a_share_of_a_long_tailed_fields_ids_and_none_of_a_small_ones():
    generations = [synthesize.token_generations(20_000, day, 4, C3, 0.15) for day in range(3)]
    assert not generations[0].any(), "day 0 is the first vocabulary"
    assert (generations[1] > 0).mean() == pytest.approx(0.15, abs=0.001)
    assert np.all(generations[2] >= generations[1]) and (generations[2] > generations[1]).mean() == pytest.approx(0.15)
    popular, rare = (generations[2][:2000] > 0).mean(), (generations[2][-2000:] > 0).mean()
    assert rare > 5 * popular, "the long tail turns over, the head mostly stays"
    assert not synthesize.token_generations(20, 2, 4, C6, 0.15).any()


def test_new_tokens_appear_and_vanished_ones_stop_while_a_small_fields_vocabulary_stays(days):
    before, after = field_tokens(days[0], C3), field_tokens(days[1], C3)
    new, gone = after - before, before - after
    assert 0.05 < len(new) / len(after) < 0.5 and gone, (len(new), len(gone), len(after))
    assert field_tokens(days[1], C6) == field_tokens(days[0], C6)


def test_a_token_keeps_its_planted_effect_every_day():
    tokens = np.arange(0, 60_000, 7)
    code_0, weight_0 = synthesize.token_effects(tokens, seed=4, field_index=C3)
    code_again, weight_again = synthesize.token_effects(tokens[::-1], seed=4, field_index=C3)
    np.testing.assert_array_equal(code_0, code_again[::-1])
    np.testing.assert_array_equal(weight_0, weight_again[::-1])
    assert set(np.unique(code_0)) == {-1.0, 1.0} and abs(code_0.mean()) < 0.05
    assert weight_0.std() == pytest.approx(0.7, rel=0.05)
    assert not np.array_equal(code_0, synthesize.token_effects(tokens, seed=5, field_index=C3)[0])


def test_a_day_made_alone_equals_the_same_day_of_the_stream(days, tmp_path):
    paths = synthesize.synthesize_days(str(tmp_path), ROWS, 3, seed=4)
    alone = synthesize.synthesize_criteo_day(ROWS, 2, seed=4)
    for left, right in zip(alone.columns, days[2].columns):
        np.testing.assert_array_equal(left, right)
    np.testing.assert_array_equal(np.load(synthesize.probabilities_path(paths[2])), days[2].probabilities)
    with open(paths[2]) as stream:
        first = stream.readline().rstrip("\n").split("\t")
    assert first == [column[0] for column in days[2].columns] and len(first) == 1 + 13 + 26


def test_every_day_has_the_stated_click_rate_and_labels_drawn_from_the_written_probabilities(days):
    for data in days:
        assert data.probabilities.mean() == pytest.approx(0.25, abs=0.002)
        assert data.labels.mean() == pytest.approx(data.probabilities.mean(), abs=0.02)
        assert np.corrcoef(data.labels, data.probabilities)[0, 1] > 0.3


def test_the_command_writes_the_days_and_refuses_what_it_cannot_make(tmp_path, capsys):
    assert synthesize.main(["--rows", "500", "--days", "2", "--output", str(tmp_path / "days")]) == 0
    assert sorted(path.name for path in (tmp_path / "days").iterdir()) == [
        "day-00.tsv",
        "day-00.tsv.probabilities.npy",
        "day-01.tsv",
        "day-01.tsv.probabilities.npy",
    ]
    assert "of its tokens new" in capsys.readouterr().out
    for flags in (["--format", "avazu", "--days", "2"], ["--days", "0"], ["--day", "1", "--new_token_rate", "1.5"]):
        with pytest.raises(SystemExit):
            synthesize.main(["--rows", "10", "--output", str(tmp_path / "x"), *flags])
