"""featnet_tf.tune: trials through the run lifecycle, pruned on exact validation AUC, resumable, a best.yaml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from featnet_tf import experiments, tuning
from tests.helpers import REPO_ROOT
from tests.test_train import TINY_OVERRIDES

# test_train's tiny FeatNet, two epochs of 60 steps a trial (the sampled learning rate wins over its own)
TINY = (
    *(f"{key}={value}" for key, value in TINY_OVERRIDES.items()),
    "training.epochs=2",
    "training.steps_per_epoch=60",
)


def test_a_trial_that_falls_behind_is_pruned_and_the_best_recipe_trains_as_it_is(criteo_data, tmp_path):
    tuner = tuning.Tuner(
        "featnet",
        criteo_data,
        str(tmp_path),
        overrides=TINY,
        space={"training.learning_rate": ("choice", (1e-2, 1e-6))},
    )
    study = tuner.study()
    study.enqueue_trial({"training.learning_rate": 0})  # learns
    study.enqueue_trial({"training.learning_rate": 1})  # barely moves from its start: below the first at epoch 1
    tuner.run(trials=2)
    states = [trial.state for trial in tuner.study().trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert len(tuner.study().trials[1].intermediate_values) == 1, "pruned after its first epoch"
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["training"]["learning_rate"] == 1e-2 and best["model"]["params"]["num_subsets"] == 2
    assert "data_dir" not in best["data"] and "seed" not in best["training"], "a recipe, not a run"
    config = experiments.experiment("featnet", str(tmp_path / "best.yaml"))  # as `train --config` reads it
    assert config.training.learning_rate == 1e-2 and config.data.batch_size == 128
    tuner.run(trials=2)
    assert len(tuner.study().trials) == 2, "a finished study runs nothing more"


def test_a_study_starts_from_the_experiment_as_it_is():
    space = tuning.search_space("deepfm")
    start = tuning.starting_point(experiments.experiment("deepfm_frappe_bars"), space)
    assert start["model.embedding_dim"] == space["model.embedding_dim"][1].index(10)
    assert start["model.hidden_units"] == space["model.hidden_units"][1].index((400, 400, 400))
    assert start["model.dropout"] == 0.2 and start["training.learning_rate"] == 1e-3
    off_the_space = experiments.experiment("deepfm_frappe_bars", assignments=["training.learning_rate=0.5"])
    assert "training.learning_rate" not in tuning.starting_point(off_the_space, space), "left to the sampler"


def test_every_registered_models_space_samples_values_its_config_takes():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for name in experiments.MODELS:
        trial = study.ask()
        values = tuning.sample(trial, tuning.search_space(name))
        experiments.experiment(name, **{key: tuning._plain(value) for key, value in values.items()})
    with pytest.raises(ValueError, match="Unknown pruner 'asha'"):
        tuning.make_pruner("asha")


@pytest.mark.large
def test_a_killed_tuner_goes_on_from_its_study(criteo_data, tmp_path):
    command = [sys.executable, "-m", "featnet_tf.tune", "--model", "lr", "--data_dir", criteo_data]
    command += ["--output_dir", str(tmp_path), "--trials", "3", "--set", "training.epochs=2"]
    first = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (tmp_path / "trials" / "1").exists() and time.time() < deadline:
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(study_name="lr", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1, "the trial the kill interrupted"
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sum(state in finished for state in states) == 3
    assert os.path.exists(tmp_path / "best.yaml") and "[tune] trial" in second.stdout
