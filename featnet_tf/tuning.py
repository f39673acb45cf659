"""Searching a model's recipe on validation data, with Optuna, through the run lifecycle.

A study trains one `featnet_tf.lifecycle.Trainer` run per trial (no export),
with the named experiment's config and the trial's sampled settings on top:
every model's `COMMON_SPACE` (learning rate, D, embedding penalty, batch
size) and the model's own space, declared beside its registry entry
(`featnet_tf.models.RegisteredModel.search_space`). Each epoch's exact
validation AUC is reported to the pruner (median by default, or Hyperband),
which stops a trial that falls behind; the test split is never read. The
first trial is the experiment as it is (its own values of the searched keys,
where the space holds them), so the best recipe is never worse on validation
than the one the search started from. The study lives in an SQLite file
under the output directory, so a tuner that was killed and started again
goes on where it stopped (a trial killed half-way is marked failed and run
again). The best trial's whole recipe (its config but for the data
directory, the seed, the strategy and the export) is written as
``best.yaml``, ``{section: {key: value}}``, which `python -m
featnet_tf.train --config` and `python -m featnet_tf.benchmark --config`
take as they are.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from typing import Any, Mapping, Sequence

import optuna
import tf_keras as keras
import yaml

from featnet_tf import config as config_lib
from featnet_tf import experiments, lifecycle
from featnet_tf.files import write_atomically
from featnet_tf.models import registered

COMMON_SPACE: dict[str, tuple] = {
    "training.learning_rate": ("log", 1e-4, 1e-2),
    "model.embedding_dim": ("choice", (8, 10, 16, 32)),
    "model.embedding_l2": ("choice", (0.0, 1e-5, 1e-3, 0.025)),
    "data.batch_size": ("choice", (1024, 2048, 4096)),
}
PRUNERS = ("median", "hyperband", "none")
STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 1  # a running trial's heartbeat; one silent for twice as long was killed
BEST_FILE = "best.yaml"
NOT_A_RECIPE = ("data.data_dir", "training.seed", "training.strategy")  # nor the export section


def search_space(model: str) -> dict[str, tuple]:
    """Config key → distribution: every model's settings, then the model's own arguments."""
    own = {f"model.{name}": distribution for name, distribution in registered(model).search_space.items()}
    return {**COMMON_SPACE, **own}


def sample(trial: optuna.Trial, space: Mapping[str, tuple]) -> dict[str, Any]:
    """One value per key of `space`, drawn by `trial` (choices of lists are drawn by their index)."""
    values = {}
    for key, (kind, *bounds) in space.items():
        if kind == "log":
            values[key] = trial.suggest_float(key, *bounds, log=True)
        elif kind == "float":
            values[key] = trial.suggest_float(key, *bounds)
        elif kind == "int":
            values[key] = trial.suggest_int(key, *bounds)
        elif kind == "choice":
            choices = bounds[0]
            values[key] = choices[trial.suggest_categorical(key, list(range(len(choices))))]
        else:
            raise ValueError(f"Unknown distribution {kind!r} for {key}. Expected log, float, int or choice.")
    return values


class ReportEachEpoch(keras.callbacks.Callback):
    """Hands each epoch's exact validation AUC to the trial and stops a trial the pruner prunes."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.trial.report(logs["val_auc"], epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch + 1}: validation AUC {logs['val_auc']:.4f}")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"Unknown pruner {name!r}. Expected one of {PRUNERS}.")


@dataclasses.dataclass
class Tuner:
    """A study of `experiment` on `data_dir`, kept under `output_dir`.

    Args:
        experiment: a named experiment (`featnet_tf.experiments`), e.g. ``deepfm_frappe``.
        data_dir: the prepared data.
        output_dir: ``study.db`` (the Optuna storage), ``trials/<n>/`` (each
            trial's run directory) and ``best.yaml``.
        overrides: ``SECTION.KEY=VALUE`` settings under every trial (a fixed
            epoch cap, say); the sampled settings win over them.
        config_file: a YAML file of overrides applied first.
        pruner: ``median`` (a trial below the median of the finished ones at
            the same epoch stops), ``hyperband`` or ``none``.
        seed: the sampler's seed.
        space: what to search (config key → distribution, as `search_space`
            returns); default the experiment's model's `search_space`.
    """

    experiment: str
    data_dir: str
    output_dir: str
    overrides: Sequence[str] = ()
    config_file: str | None = None
    pruner: str = "median"
    seed: int = 0
    space: Mapping[str, tuple] | None = None

    def study(self) -> optuna.Study:
        """The study, created or loaded from ``study.db``; trials a killed tuner left running are marked failed."""
        os.makedirs(self.output_dir, exist_ok=True)
        with warnings.catch_warnings():  # the heartbeat is Optuna's "experimental" way of finding killed trials
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                f"sqlite:///{os.path.abspath(os.path.join(self.output_dir, STUDY_FILE))}",
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=2 * HEARTBEAT_SECONDS,
            )
        study = optuna.create_study(
            study_name=self.experiment,
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            pruner=make_pruner(self.pruner),
        )
        if any(trial.state == optuna.trial.TrialState.RUNNING for trial in study.trials):
            time.sleep(3 * HEARTBEAT_SECONDS)  # a tuner killed just now: let its last heartbeat go stale
            optuna.storages.fail_stale_trials(study)
        return study

    def run(self, trials: int) -> optuna.Study:
        """Runs trials until the study holds `trials` finished ones (complete or pruned), one line each;
        writes ``best.yaml``; returns the study."""
        start = experiments.experiment(self.experiment, self.config_file, self.overrides)  # a bad name or flag: now
        study = self.study()
        space = self.space or search_space(experiments.EXPERIMENTS[self.experiment].model.name)
        if not study.trials:
            study.enqueue_trial(starting_point(start, space), skip_if_exists=True)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
        if remaining > 0:
            study.optimize(
                lambda trial: self.objective(trial, space),
                n_trials=remaining,
                callbacks=[self.report],
                catch=(),
            )
        self.write_best(study)
        return study

    def objective(self, trial: optuna.Trial, space: Mapping[str, tuple]) -> float:
        sampled = {key: _plain(value) for key, value in sample(trial, space).items()}
        trial.set_user_attr("settings", sampled)
        config = experiments.experiment(
            self.experiment, self.config_file, self.overrides, **{"data.data_dir": self.data_dir, **sampled}
        )
        keras.backend.clear_session()
        run_dir = os.path.join(self.output_dir, "trials", str(trial.number))
        trainer = lifecycle.Trainer(config, run_dir, callbacks=[ReportEachEpoch(trial)])
        return trainer.run(export=False).fit.best_val_auc

    @staticmethod
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = f"validation AUC {trial.value:.4f}" if trial.value is not None else ""
        if trial.state == optuna.trial.TrialState.PRUNED:
            value = f"pruned after epoch {max(trial.intermediate_values, default=-1) + 1}"
        best = f"; best so far {study.best_value:.4f} (trial {study.best_trial.number})" if _has_best(study) else ""
        print(f"[tune] trial {trial.number}: {value}{best} {trial.user_attrs.get('settings', {})}", flush=True)

    def write_best(self, study: optuna.Study) -> str | None:
        """``best.yaml``: the best trial's whole recipe, as `train --config` reads it."""
        if not _has_best(study):
            return None
        config = experiments.experiment(
            self.experiment, self.config_file, self.overrides, **study.best_trial.user_attrs["settings"]
        )
        nested: dict[str, dict[str, Any]] = {}
        for key, value in config_lib.flatten(config.to_dict()).items():
            section, _, name = key.partition(".")
            if key not in NOT_A_RECIPE and section != "export":
                nested.setdefault(section, {})[name] = value
        path = os.path.join(self.output_dir, BEST_FILE)
        header = f"# {self.experiment}: validation AUC {study.best_value:.6f} (trial {study.best_trial.number})\n"
        write_atomically(path, header + yaml.safe_dump(nested, sort_keys=True))
        print(f"[tune] best validation AUC {study.best_value:.4f} → {path}", flush=True)
        return path


def starting_point(config: config_lib.ExperimentConfig, space: Mapping[str, tuple]) -> dict[str, Any]:
    """`config`'s own values of the keys of `space` that the space can hold, as Optuna's parameters
    (a choice by its index); a key whose value lies outside the space is left to the sampler."""
    values = config_lib.flatten(config.to_dict())
    values.update({f"model.{name}": value for name, value in config.model.params.items()})
    params: dict[str, Any] = {}
    for key, (kind, *bounds) in space.items():
        value = _plain(values.get(key))
        if kind == "choice":
            choices = [_plain(choice) for choice in bounds[0]]
            if value in choices:
                params[key] = choices.index(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]:
            params[key] = value
    return params


def _plain(value: Any) -> Any:
    """YAML-friendly: tuples as lists."""
    return list(value) if isinstance(value, tuple) else value


def _has_best(study: optuna.Study) -> bool:
    return any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
