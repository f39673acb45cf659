"""Publishing only a model that is no worse than the version serving."""

import json
import os
import shutil

import pytest

from featnet_tf import blessing, lifecycle, training
from featnet_tf import config as config_lib


def listing(base):
    return sorted(os.listdir(base))


@pytest.fixture
def base_with_version_1(tiny_export, tmp_path):
    """A copy of the tiny run's export base: version 1 published."""
    base = str(tmp_path / "featnet")
    shutil.copytree(os.path.dirname(tiny_export), base)
    return base


def test_the_first_model_is_published_with_its_decision_beside_it(tiny_export):
    with open(os.path.join(tiny_export, training.BLESSING_FILE)) as stream:
        decision = json.load(stream)
    assert decision["blessed"] and decision["baseline"] is None and decision["reasons"] == []
    assert decision["rows"] > 0 and 0.0 < decision["candidate"]["auc"] < 1.0


def test_a_worse_candidate_is_refused_and_the_export_base_left_untouched(tiny_run, base_with_version_1, tmp_path):
    untrained = training.build_run(tiny_run.config, str(tmp_path / "untrained"))
    before = listing(base_with_version_1)
    with pytest.raises(blessing.CandidateRefused, match="candidate refused: .*nothing published") as refused:
        lifecycle.export_run(untrained, base_with_version_1)
    assert listing(base_with_version_1) == before  # no new version, no staging directory left
    decision = refused.value.blessing
    assert not decision.blessed and decision.baseline["version"] == 1
    with open(untrained.path(training.BLESSING_FILE)) as stream:
        assert json.load(stream)["blessed"] is False  # the run directory says why


def test_a_candidate_no_worse_is_published_as_the_next_version(tiny_run, base_with_version_1, tmp_path):
    # The same weights as version 1: equal AUC, LogLoss and calibration, the
    # boundary of "no worse" under the default bounds. (Better candidates,
    # published day after day: BENCHMARKS.md, "Day after day".)
    same = training.build_run(tiny_run.config, str(tmp_path / "same"))
    same.model.set_weights(tiny_run.model.get_weights())
    published = lifecycle.export_run(same, base_with_version_1)
    assert published.path == os.path.join(base_with_version_1, "2")
    assert published.blessing["blessed"] and published.blessing["baseline"]["version"] == 1
    assert published.blessing["candidate"]["auc"] == pytest.approx(published.blessing["baseline"]["auc"])
    with open(os.path.join(published.path, training.BLESSING_FILE)) as stream:
        assert json.load(stream)["blessed"]


def test_a_baseline_version_that_cannot_be_loaded_is_skipped_by_name(
    tiny_run, tiny_export, base_with_version_1, capsys
):
    broken = os.path.join(base_with_version_1, "9")  # deleted mid-run: its files half gone
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as stream:
        stream.write(b"not a SavedModel")
    decision = blessing.judge(
        tiny_export, base_with_version_1, tiny_run.config.data.data_dir, tiny_run.spec.label, config_lib.ExportConfig()
    )
    assert decision.baseline["version"] == 1  # what TF Serving would still be serving
    assert len(decision.skipped_versions) == 1 and decision.skipped_versions[0].startswith("version 9: ")
    assert "version 9 under" in capsys.readouterr().out
    assert decision.blessed  # the same model as version 1: no worse
