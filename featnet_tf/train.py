"""`python -m featnet_tf.train`: train, evaluate, export and check a CTR model.

    python -m featnet_tf.train --experiment featnet --data_dir /tmp/criteo_prep \
        --run_dir runs/featnet [--config overrides.yaml] [--set model.num_subsets=8]

Trains with `tf.distribute` (MirroredStrategy over all GPUs by default, the
CPU when there is none), a Keras progress bar, TensorBoard logs, validation
AUC/LogLoss each epoch, early stopping on validation AUC with the best weights
restored, and `BackupAndRestore`. Then it writes ``metrics.json`` for the
test split, stages the SavedModel, checks that TensorFlow Serving can serve
it and publishes it as the next version.

A run killed at any point and started again with the same command resumes
where it stopped: mid-training from its last backup, and after training at
the stage that was interrupted (evaluation, export) without training again;
a finished run is not redone. A loss that stops being finite ends the run
with exit code 3, before anything is evaluated or exported.

With ``--strategy multi_worker`` the same command runs on every worker, each
with its TF_CONFIG (`featnet_tf.workers`): all train, the chief alone writes
the run directory, evaluates and exports, and a worker that dies fails the
others within ``--worker_timeout`` seconds (exit code 4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import config as config_lib
from featnet_tf import experiments, export, training, workers
from featnet_tf.files import write_json
from featnet_tf.metrics import binary_auc, log_loss


class ResumeReport(keras.callbacks.Callback):
    """Says where training starts: step 0, or the step of a restored backup.
    Must run after `BackupAndRestore` in the callback list."""

    def on_train_begin(self, logs=None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step:
            print(f"[train] resuming from the backup at step {step}", flush=True)
        else:
            print("[train] starting at step 0", flush=True)


class ExactValidation(keras.callbacks.Callback):
    """Puts the exact AUC and LogLoss of the validation split into the epoch's
    logs as ``val_auc`` and ``val_logloss``, for every callback after it
    (best checkpoint, early stopping, the plateau schedule) and the history.

    Keras' `AUC` metric is a 200-bucket approximation: early in training a
    model's outputs can all fall into one bucket, and choosing the best epoch
    on it is choosing on noise. Must come first in the callback list.
    """

    def __init__(self, run: training.Run, dataset: tf.data.Dataset, steps: int | None) -> None:
        super().__init__()
        self.run, self.dataset = run, dataset.take(steps) if steps else dataset
        self.predict_step = tf.function(lambda ids: run.ranker(ids, training=False))
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None) -> None:
        start = time.perf_counter()
        labels, probabilities = training.predict(self.run, "valid", self.dataset, self.predict_step)
        logs["val_auc"] = binary_auc(labels, probabilities)
        logs["val_logloss"] = log_loss(labels, probabilities)
        self.seconds = time.perf_counter() - start
        print(
            f"[train] epoch {epoch + 1}: exact validation AUC {logs['val_auc']:.4f}, LogLoss {logs['val_logloss']:.4f}",
            flush=True,
        )


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """tf_keras' `BackupAndRestore`, right with `steps_per_execution` > 1.

    tf_keras records the step an execution *starts* at (in
    `on_train_batch_begin`) and its backup ignores the step it is handed, so
    a run resumed from a backup taken after an execution of N steps ran N − 1
    of them again (129 steps instead of 120 in the killed-run test at 10 per
    execution). Here the backup records the execution's last step, the one
    `on_train_batch_end` receives; with one step per execution the two are
    the same."""

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._training_state._ckpt_saved_batch.assign(batch)
        super().on_train_batch_end(batch, logs)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite and
    remembers it (Keras' `TerminateOnNaN` stops too, but an epoch's logged
    mean of an infinite loss is `inf`, not NaN, and slipped past the check)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_step: int | None = None
        self.bad_loss: float | None = None

    def on_train_batch_end(self, batch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.bad_step = int(self.model.optimizer.iterations.numpy())
            self.bad_loss = float(loss)
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, in all and without its validation pass."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.train_seconds: list[float] = []
        self.validation: ExactValidation | None = None

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.train_seconds.append(self.seconds[-1] - (self.validation.seconds if self.validation else 0.0))


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Saves the weights with the best validation AUC and records their epoch
    and AUC, so that a resumed run keeps comparing against the true best."""

    def __init__(self, run: training.Run) -> None:
        self.info_path = run.path(training.BEST_INFO)
        best = None
        if os.path.exists(self.info_path):
            with open(self.info_path) as stream:
                best = json.load(stream)["val_auc"]
        super().__init__(
            run.path(training.BEST_WEIGHTS),
            monitor="val_auc",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best,
        )

    def _save_model(self, epoch, batch, logs):
        before = self.best
        super()._save_model(epoch, batch, logs)
        if self.best != before and workers.is_chief(self.model.distribute_strategy):
            write_json(self.info_path, {"epoch": epoch + 1, "val_auc": float(self.best)})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="featnet", help=f"one of {sorted(experiments.EXPERIMENTS)}")
    parser.add_argument("--data_dir", help="a pipelines.preprocess output directory (sets data.data_dir)")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--config", help="YAML file of overrides ({section: {key: value}})")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one value")
    parser.add_argument("--strategy", choices=config_lib.STRATEGIES, help="sets training.strategy")
    parser.add_argument("--logical_cpus", type=int, default=0, help="split the CPU into N devices for MirroredStrategy")
    parser.add_argument(
        "--worker_timeout",
        type=int,
        default=workers.WORKER_TIMEOUT_SECONDS,
        help="multi_worker: seconds without a heartbeat after which a worker counts as dead and the run fails",
    )
    parser.add_argument("--jit", action="store_true", help="XLA-compile the train step (sets training.jit)")
    parser.add_argument("--mixed_precision", action="store_true", help="mixed_float16 (sets training.mixed_precision)")
    parser.add_argument("--no_export", action="store_true", help="stop after metrics.json")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> config_lib.ExperimentConfig:
    overrides = {}
    if args.data_dir:
        overrides["data.data_dir"] = args.data_dir
    if args.strategy:
        overrides["training.strategy"] = args.strategy
    if args.jit:
        overrides["training.jit"] = True
    if args.mixed_precision:
        overrides["training.mixed_precision"] = True
    return experiments.experiment(args.experiment, args.config, args.set, **overrides)


def prepare_run_dir(run_dir: str, config: config_lib.ExperimentConfig, chief: bool = True) -> None:
    """Creates the run directory with its config, or checks that an existing
    one (a run being resumed) was made with the same config. Only the chief
    writes; the other workers of a multi-worker run only check."""
    path = os.path.join(run_dir, training.CONFIG_FILE)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"The run directory {run_dir} is a file.")
    if os.path.exists(path):
        existing = experiments.load(path)
        if existing != config:
            raise ValueError(
                f"{run_dir} holds a run with another config (hash {existing.config_hash()} vs {config.config_hash()}); "
                "use a new --run_dir, or the same flags to resume it."
            )
        return
    if chief:
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        config_lib.save(config, path)


def fit(
    run: training.Run, strategy: tf.distribute.Strategy, timer: EpochTimer, finite: StopOnNonFiniteLoss
) -> keras.callbacks.History:
    config = run.config
    global_batch = config.data.batch_size * strategy.num_replicas_in_sync
    repeat = config.training.steps_per_epoch is not None
    cache = {split: training.should_cache(run, split) for split in ("train", "valid")}
    train = run.dataset(
        "train",
        global_batch,
        cache=cache["train"],
        repeat=repeat,
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
    timer.validation = ExactValidation(run, valid, config.training.validation_steps)
    plateau = []
    if config.training.schedule == "plateau":
        plateau = [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_auc",
                mode="max",
                factor=config.training.decay_rate,
                patience=config.training.plateau_patience,
                min_delta=1e-5,
                min_lr=config.training.min_learning_rate,
                verbose=1,
            )
        ]
    callbacks = [
        timer.validation,
        # the backup is deleted by `train_stage` once history.json marks training done,
        # so that a kill in between still finds it
        BackupAndRestore(run.path("backup"), save_freq=backup_frequency(config.training), delete_checkpoint=False),
        ResumeReport(),
        finite,
        keras.callbacks.TensorBoard(run.path("logs")),
        BestCheckpoint(run),
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.training.early_stopping_patience, min_delta=1e-5
        ),
        *plateau,
        timer,
    ]
    print(
        f"[train] {config.model.name}: {run.ranker.count_params():,} parameters, {strategy.num_replicas_in_sync} "
        "replica(s) "
        f"({type(strategy).__name__}), global batch {global_batch}",
        flush=True,
    )
    return run.ranker.fit(
        train,
        epochs=config.training.epochs,
        steps_per_epoch=config.training.steps_per_epoch,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )


def backup_frequency(training_config: config_lib.TrainingConfig) -> int:
    """`BackupAndRestore`'s ``save_freq``: it counts batch-end calls, and with
    `steps_per_execution` there is one call per execution, not per step (the
    config guarantees a whole number of executions)."""
    return training_config.backup_every_steps // training_config.steps_per_execution


class NonFiniteLoss(RuntimeError):
    """Training diverged; nothing is evaluated or exported."""


def train_stage(run: training.Run, strategy: tf.distribute.Strategy) -> None:
    """Fits (from the backup when there is one) and, on the chief, writes
    ``history.json``, the mark that training is done; then drops the backup."""
    start = time.perf_counter()
    timer, finite = EpochTimer(), StopOnNonFiniteLoss()
    history = fit(run, strategy, timer, finite)
    seconds = time.perf_counter() - start
    if finite.bad_step is not None:
        raise NonFiniteLoss(
            f"the loss became {finite.bad_loss} at step {finite.bad_step}; training stopped and nothing was "
            "evaluated or exported (lower training.learning_rate, or check the data)"
        )
    if not workers.is_chief(strategy):
        return
    write_json(
        run.path(training.HISTORY_FILE),
        {
            "history": history.history,
            "steps": int(run.ranker.optimizer.iterations.numpy()),
            "seconds": seconds,
            "epoch_seconds": timer.seconds,
            "epoch_train_seconds": timer.train_seconds,
            "global_batch_size": run.config.data.batch_size * strategy.num_replicas_in_sync,
            "replicas": strategy.num_replicas_in_sync,
        },
        default=float,  # NumPy scalars, e.g. the learning rate ReduceLROnPlateau logs
    )
    shutil.rmtree(run.path("backup"), ignore_errors=True)


def evaluate_stage(run: training.Run) -> dict:
    with open(run.path(training.HISTORY_FILE)) as stream:
        history = json.load(stream)
    metrics = training.evaluate_run(run, "test")
    print(
        f"[train] {history['steps']} steps in {history['seconds']:.0f} s; best epoch {metrics.get('best_epoch')}; "
        f"test AUC {metrics['auc']:.4f}, LogLoss {metrics['logloss']:.4f} on {metrics['examples']} rows → "
        f"{run.path(training.METRICS_FILE)}",
        flush=True,
    )
    return metrics


def export_stage(run: training.Run) -> None:
    path, report = export.export_run(run)
    write_json(run.path(training.EXPORT_FILE), {"path": path})
    print(
        f"[train] exported {path}; servability check passed: {report['ops']} stock ops, signatures "
        f"{sorted(k for k in report['methods'] if not k.startswith('__'))}, max difference "
        f"{max(report['max_abs_difference'].values()):.2g}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = resolve_config(args)
        if os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
            raise ValueError(f"The run directory {args.run_dir} is a file.")
        strategy = training.make_strategy(config.training.strategy, args.logical_cpus, args.worker_timeout)
        keras.utils.set_random_seed(config.training.seed)
        run = training.build_run(config, args.run_dir, strategy)
        chief = workers.is_chief(strategy)
        prepare_run_dir(args.run_dir, config, chief)  # only once everything above is valid
    except ValueError as error:
        print(f"[train] error: {error}", file=sys.stderr)
        return 2
    worker = workers.worker_name(strategy)
    if not worker:
        return run_stages(run, strategy, args, worker)
    print(f"[train] {worker} ({type(strategy).__name__})", flush=True)
    code = run_stages(run, strategy, args, worker)
    if code:
        return code  # the cluster is broken (or this worker failed): the others fail on their own
    try:
        workers.wait_for_all("featnet_tf.train.done")
    except tf.errors.OpError as error:
        reason = workers.first_line(error)
        print(f"[train] error: {worker}: the other workers did not finish: {reason}", file=sys.stderr)
        return 4
    return 0


def run_stages(run: training.Run, strategy: tf.distribute.Strategy, args: argparse.Namespace, worker: str) -> int:
    """Trains, evaluates and exports, skipping the stages a killed run
    finished before; in a multi-worker run (`worker` names this one), the
    chief alone evaluates and exports (the other workers only train)."""
    done = {name: os.path.exists(run.path(name)) for name in (training.HISTORY_FILE, training.METRICS_FILE)}
    if os.path.exists(run.path(training.EXPORT_FILE)) or (done[training.METRICS_FILE] and args.no_export):
        print(f"[train] {args.run_dir} is complete; nothing to do (use a new --run_dir to train again)", flush=True)
        return 0
    if done[training.HISTORY_FILE]:
        stage = "export" if done[training.METRICS_FILE] else "evaluation"
        print(f"[train] training finished earlier ({training.HISTORY_FILE}); resuming at {stage}", flush=True)
    else:
        try:
            train_stage(run, strategy)
        except NonFiniteLoss as error:
            print(f"[train] error: {error}", file=sys.stderr)
            return 3
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError) as error:
            if not worker:
                raise
            print(
                f"[train] error: {worker}: a worker failed during training "
                f"({type(error).__name__}: {workers.first_line(error)}); start the same command on every worker "
                f"again to resume from the last backup in {run.path('backup')}",
                file=sys.stderr,
            )
            return 4
    if worker and not workers.is_chief(strategy):
        print("[train] training done; the chief evaluates and exports", flush=True)
        return 0
    if worker:
        try:
            run = training.unreplicated(run)
        except ValueError as error:
            print(f"[train] error: {error}", file=sys.stderr)
            return 2
    elif tf.io.gfile.glob(run.path(training.BEST_WEIGHTS) + ".index"):
        run.ranker.load_weights(run.path(training.BEST_WEIGHTS)).expect_partial()
    if not done[training.METRICS_FILE]:
        evaluate_stage(run)
    if not args.no_export:
        export_stage(run)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
