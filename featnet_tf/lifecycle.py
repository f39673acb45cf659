"""A run's lifecycle as a library: fit, evaluate, export and publish, resumed by stage.

    trainer = Trainer(config, "runs/featnet")        # checks the config, prepares the run directory
    result = trainer.run()                           # every stage not done yet; a `RunResult`
    # or stage by stage:
    fit = trainer.fit()                              # a `FitResult`; writes history.json
    metrics = trainer.evaluate("test")               # a dict; writes metrics.json
    published = trainer.export()                     # an `ExportResult`; the next checked version

`python -m featnet_tf.train` is argument parsing and `Trainer.run`; the
benchmark, the demo, a tuner or a daily job call the same methods and get
Python objects back. Every stage writes the files it wrote as a command
(``featnet_tf.training`` lists them), and reads and writes the run directory
through `tf.io.gfile`, so a run directory on ``gs://`` (or ``ram://``) works
as a local one does.

Stages are marked by their files: ``history.json`` (training done),
``metrics.json`` (evaluated), ``export.json`` (published). `run` skips the
stages a killed run finished before: mid-training it resumes from the last
backup, after training at evaluation or export without training again, and a
finished run is not redone (its results are read back). A loss that stops
being finite raises `NonFiniteLoss` before anything is evaluated or
exported.

With a multi-worker strategy every worker builds a `Trainer` and calls
`run`: all train, the chief alone writes the run directory, evaluates and
exports, and a worker that dies fails the others (`WorkerFailure`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf import blessing, experiments, prepared_data, saved_model, training, warm_start, workers
from featnet_tf import callbacks as callbacks_lib
from featnet_tf import config as config_lib
from featnet_tf.files import read_json, write_json


class NonFiniteLoss(RuntimeError):
    """Training diverged; nothing is evaluated or exported."""


class WorkerFailure(RuntimeError):
    """A worker of a multi-worker run failed or vanished; the run can be started again to resume."""


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What ``history.json`` holds: the per-epoch logs and how the fit went."""

    history: dict[str, list[float]]
    steps: int
    seconds: float
    epoch_seconds: list[float]
    epoch_train_seconds: list[float]
    global_batch_size: int
    replicas: int

    @property
    def best_val_auc(self) -> float:
        return max(self.history["val_auc"])

    @classmethod
    def read(cls, path: str) -> "FitResult":
        return cls(**read_json(path))


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """A published version: its directory, the servability check's report and the publish check's decision."""

    path: str
    report: dict[str, Any] | None = None  # None when read back from export.json
    blessing: dict[str, Any] | None = None  # None when read back, or when export.require_no_worse is off


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `Trainer.run` did (`stages_run`) and what the run holds now."""

    run_dir: str
    stages_run: tuple[str, ...]  # of "fit", "evaluate", "export", in order
    fit: FitResult | None  # None on a worker that is not the chief
    metrics: dict[str, Any] | None
    export: ExportResult | None


def export_run(run: training.Run, export_base: str | None = None) -> ExportResult:
    """Stages the run's serving model, checks its servability against the
    training path's predictions for a few test rows, then (with
    ``export.require_no_worse``) judges it against the newest published
    version (`featnet_tf.blessing`), and publishes it as the next version.
    Nothing is published when a check fails: `saved_model.ServabilityError`,
    or `blessing.CandidateRefused` (``blessing.json`` in the run directory
    says why)."""
    staged, case = stage_export(run, export_base)
    try:
        report = saved_model.check_all([case])[0]
        decision = None
        if run.config.export.require_no_worse:
            judged = blessing.judge(
                staged.path, staged.export_base, run.config.data.data_dir, run.spec.label, run.config.export
            )
            decision = judged.to_dict()
            print(f"[export] {blessing.summary(judged)}", flush=True)
            tf.io.gfile.makedirs(run.run_dir)
            write_json(run.path(training.BLESSING_FILE), decision)
            if not judged.blessed:
                raise blessing.CandidateRefused(judged)
            write_json(tf.io.gfile.join(staged.path, training.BLESSING_FILE), decision)
    except BaseException:
        saved_model.discard(staged)
        raise
    return ExportResult(saved_model.publish(staged), report, decision)


def stage_export(
    run: training.Run, export_base: str | None = None
) -> tuple[saved_model.StagedExport, saved_model.ServabilityCase]:
    """Stages the run's serving model (not yet a version) under `export_base`
    (default: ``export.export_base``, else ``<run_dir>/export``); returns it
    and the case to check it with: a few test rows and the training path's
    probabilities for them."""
    base = export_base or run.config.export.export_base or run.path("export")
    rows = max(run.config.export.warmup_examples, 16)
    files = prepared_data.split_files(run.config.data.data_dir, "test")
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(rows)]
    model = run.serving_model()
    expected = tf.sigmoid(tf.reshape(model(saved_model.parse_examples(run.spec, examples)), [-1])).numpy()
    staged = saved_model.stage_saved_model(model, run.spec, base, examples[: run.config.export.warmup_examples])
    return staged, saved_model.ServabilityCase(staged.path, run.spec, examples, expected)


class Trainer:
    """One run directory and its model, trained, evaluated and published by stage.

    Args:
        config: the resolved experiment (`featnet_tf.experiments.experiment`).
        run_dir: the run directory, local or a URL; created with its
            ``config.yaml``, or, when it exists, checked to hold a run of the
            same config (which this trainer then resumes).
        strategy: the `tf.distribute` strategy to build and train under
            (default: TensorFlow's default strategy, one device).
        callbacks: extra Keras callbacks for `fit`; they run after the exact
            validation, so ``logs["val_auc"]`` is the epoch's exact AUC.

    Seeds Python, NumPy and TensorFlow with ``training.seed`` before it
    builds the model. Raises `ValueError` (nothing written) for a config or
    run directory that cannot be used.
    """

    def __init__(
        self,
        config: config_lib.ExperimentConfig,
        run_dir: str,
        strategy: tf.distribute.Strategy | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
    ) -> None:
        if tf.io.gfile.exists(run_dir) and not tf.io.gfile.isdir(run_dir):
            raise ValueError(f"The run directory {run_dir} is a file.")
        check_data_validation(config)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.extra_callbacks = list(callbacks)
        keras.utils.set_random_seed(config.training.seed)
        self.run_state = training.build_run(config, run_dir, self.strategy)
        self.chief = workers.is_chief(self.strategy)
        self.worker = workers.worker_name(self.strategy)
        carried = None
        if config.training.warm_start and not tf.io.gfile.exists(tf.io.gfile.join(run_dir, training.HISTORY_FILE)):
            carried = warm_start.warm_start(self.run_state, config.training.warm_start)
        prepare_run_dir(run_dir, config, self.chief)  # only once everything above is valid
        if carried and self.chief:
            warm_start.write(self.run_state, carried)
            print(f"[train] {warm_start.summary(carried)}", flush=True)

    @property
    def run_dir(self) -> str:
        return self.run_state.run_dir

    @property
    def config(self) -> config_lib.ExperimentConfig:
        return self.run_state.config

    def path(self, *parts: str) -> str:
        return self.run_state.path(*parts)

    def done(self, stage_file: str) -> bool:
        return tf.io.gfile.exists(self.path(stage_file))

    # === Stages ===

    def fit(self) -> FitResult:
        """Trains (from the backup when there is one) and, on the chief,
        writes ``history.json``, the mark that training is done; then drops
        the backup. `NonFiniteLoss` when the loss stops being finite."""
        run, config = self.run_state, self.config
        global_batch = config.data.batch_size * self.strategy.num_replicas_in_sync
        start = time.perf_counter()
        train, valid = self._datasets(global_batch)
        validation = callbacks_lib.ExactValidation(run, valid, config.training.validation_steps)
        finite, timer = callbacks_lib.StopOnNonFiniteLoss(), callbacks_lib.EpochTimer(validation)
        print(
            f"[train] {config.model.name}: {run.model.count_params():,} parameters, "
            f"{self.strategy.num_replicas_in_sync} replica(s) ({type(self.strategy).__name__}), "
            f"global batch {global_batch}",
            flush=True,
        )
        history = run.model.fit(
            train,
            epochs=config.training.epochs,
            steps_per_epoch=config.training.steps_per_epoch,
            callbacks=callbacks_lib.training_callbacks(run, validation, finite, timer, self.extra_callbacks),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        if finite.bad_step is not None:
            raise NonFiniteLoss(
                f"the loss became {finite.bad_loss} at step {finite.bad_step}; training stopped and nothing was "
                "evaluated or exported (lower training.learning_rate, or check the data)"
            )
        result = FitResult(
            history={key: [float(value) for value in values] for key, values in history.history.items()},
            steps=int(run.model.optimizer.iterations.numpy()),
            seconds=time.perf_counter() - start,
            epoch_seconds=timer.seconds,
            epoch_train_seconds=timer.train_seconds,
            global_batch_size=global_batch,
            replicas=self.strategy.num_replicas_in_sync,
        )
        if self.chief:
            write_json(self.path(training.HISTORY_FILE), dataclasses.asdict(result))
            if tf.io.gfile.exists(self.path("backup")):
                tf.io.gfile.rmtree(self.path("backup"))
        return result

    def _datasets(self, global_batch: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        run, config = self.run_state, self.config
        cache = {split: training.should_cache(run, split) for split in ("train", "valid")}
        train = run.dataset(
            "train",
            global_batch,
            cache=cache["train"],
            repeat=config.training.steps_per_epoch is not None,
            shuffle_buffer=config.data.shuffle_buffer,
            seed=config.training.seed,
        )
        valid = run.dataset("valid", config.data.eval_batch_size, cache=cache["valid"], shuffle=False)
        held = [split for split, cached in cache.items() if cached]
        print(
            f"[train] ids of {' and '.join(held)} held in memory (data.cache={config.data.cache})"
            if held
            else f"[train] streaming TFRecords every epoch (data.cache={config.data.cache})",
            flush=True,
        )
        return train, valid

    def restore_best(self) -> None:
        """Loads the best validation epoch's weights (what evaluation and export use)."""
        if tf.io.gfile.glob(self.path(training.BEST_WEIGHTS) + ".index"):
            self.run_state.model.load_weights(self.path(training.BEST_WEIGHTS)).expect_partial()

    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """Exact AUC and LogLoss of every row of `split`, with the weights the
        model holds (`run` restores the best first); writes ``metrics.json``."""
        metrics = training.evaluate_run(self.run_state, split)
        print(
            f"[train] best epoch {metrics.get('best_epoch')}; {split} AUC {metrics['auc']:.4f}, "
            f"LogLoss {metrics['logloss']:.4f} on {metrics['examples']} rows → {self.path(training.METRICS_FILE)}",
            flush=True,
        )
        return metrics

    def export(self, export_base: str | None = None) -> ExportResult:
        """Stages, checks and publishes the model as the next version and
        records it in ``export.json``; `saved_model.ServabilityError` (nothing
        published) when the check fails."""
        result = export_run(self.run_state, export_base)
        write_json(self.path(training.EXPORT_FILE), {"path": result.path})
        print(
            f"[train] exported {result.path}; servability check passed: {result.report['ops']} stock ops, "
            f"signatures {sorted(k for k in result.report['methods'] if not k.startswith('__'))}, max difference "
            f"{max(result.report['max_abs_difference'].values()):.2g}",
            flush=True,
        )
        return result

    # === The whole run, resumed by stage ===

    def run(self, export: bool = True) -> RunResult:
        """Every stage not done yet: fit, then (the chief alone) evaluate on
        the test split with the best weights, then export unless `export` is
        false. A multi-worker run then waits for every worker to finish."""
        result = self._run_stages(export)
        if self.worker:
            try:
                workers.wait_for_all("featnet_tf.train.done")
            except tf.errors.OpError as error:
                raise WorkerFailure(
                    f"{self.worker}: the other workers did not finish: {workers.failure_summary(error)}"
                ) from None
        return result

    def _run_stages(self, export: bool) -> RunResult:
        if self.worker:
            print(f"[train] {self.worker} ({type(self.strategy).__name__})", flush=True)
        stages: list[str] = []
        complete = self.done(training.EXPORT_FILE) or (self.done(training.METRICS_FILE) and not export)
        if complete:
            print(f"[train] {self.run_dir} is complete; nothing to do (use a new run directory to train again)")
        elif self.done(training.HISTORY_FILE):
            stage = "export" if self.done(training.METRICS_FILE) else "evaluation"
            print(f"[train] training finished earlier ({training.HISTORY_FILE}); resuming at {stage}", flush=True)
        else:
            self._fit_as_worker()
            stages.append("fit")
        if not self.chief:
            print("[train] training done; the chief evaluates and exports", flush=True)
            return RunResult(self.run_dir, tuple(stages), None, None, None)
        if not complete:
            self._unreplicate_and_restore_best()
            if not self.done(training.METRICS_FILE):
                self.evaluate("test")
                stages.append("evaluate")
            if export:
                self.export()
                stages.append("export")
        return self.results(stages)

    def _fit_as_worker(self) -> None:
        try:
            self.fit()
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError) as error:
            if not self.worker:
                raise
            raise WorkerFailure(
                f"{self.worker}: a worker failed during training ({type(error).__name__}: "
                f"{workers.failure_summary(error)}); start the same command on every worker again to resume from the "
                f"last backup in {self.path('backup')}"
            ) from None

    def _unreplicate_and_restore_best(self) -> None:
        """The chief of a multi-worker run evaluates and exports a copy built
        outside the strategy (`training.unreplicated`); one device restores
        the best weights in place."""
        if self.worker:
            self.run_state = training.unreplicated(self.run_state)
        else:
            self.restore_best()

    def results(self, stages_run: Sequence[str] = ()) -> RunResult:
        """What the run directory holds now, read back from its files."""
        fit = FitResult.read(self.path(training.HISTORY_FILE)) if self.done(training.HISTORY_FILE) else None
        metrics = read_json(self.path(training.METRICS_FILE)) if self.done(training.METRICS_FILE) else None
        export = None
        if self.done(training.EXPORT_FILE):
            export = ExportResult(read_json(self.path(training.EXPORT_FILE))["path"])
        return RunResult(self.run_dir, tuple(stages_run), fit, metrics, export)


def check_data_validation(config: config_lib.ExperimentConfig) -> None:
    """`ValueError` naming every anomaly when the data directory's
    ``validation.json`` marks it (`pipelines.validation`) and
    ``data.accept_anomalies`` is not set."""
    if not config.data.data_dir:
        return
    anomalies = prepared_data.anomalies(config.data.data_dir)
    if anomalies and not config.data.accept_anomalies:
        raise ValueError(
            f"{config.data.data_dir} is marked with {len(anomalies)} data anomal"
            f"{'y' if len(anomalies) == 1 else 'ies'} (its {prepared_data.VALIDATION_FILE}): "
            + "; ".join(anomaly["message"] for anomaly in anomalies)
            + ". Train on it anyway with --accept_anomalies (data.accept_anomalies=true)."
        )
    if anomalies:
        print(f"[train] training on {config.data.data_dir} despite {len(anomalies)} anomalies (accepted)", flush=True)


def prepare_run_dir(run_dir: str, config: config_lib.ExperimentConfig, chief: bool = True) -> None:
    """Creates the run directory with its config, or checks that an existing
    one (a run being resumed) was made with the same config. Only the chief
    writes; the other workers of a multi-worker run only check."""
    path = tf.io.gfile.join(run_dir, training.CONFIG_FILE)
    if tf.io.gfile.exists(path):
        existing = experiments.load(path)
        if existing != config:
            raise ValueError(
                f"{run_dir} holds a run with another config (hash {existing.config_hash()} vs {config.config_hash()}); "
                "use a new --run_dir, or the same flags to resume it."
            )
        return
    if chief:
        tf.io.gfile.makedirs(tf.io.gfile.join(run_dir, "checkpoints"))
        config_lib.save(config, path)
