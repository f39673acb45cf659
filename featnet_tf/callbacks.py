"""The Keras callbacks of a training run, and the list `Trainer.fit` uses.

Order matters and `training_callbacks` owns it: `ExactValidation` first (it
puts the exact ``val_auc``/``val_logloss`` into the epoch's logs for every
callback after it), the backup before `ResumeReport` (which reads the step
the backup restored), the best checkpoint, early stopping and the plateau
schedule after the validation, `EpochTimer` last. Extra callbacks (a tuner's
pruner, a user's logger) come after the validation and before the timer, so
they see the exact validation AUC of each epoch.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf import _keras_internals, training, workers
from featnet_tf.config import TrainingConfig
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
        self.predict_step = tf.function(lambda ids: run.model(ids, training=False))
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
    a run resumed from a backup taken after an execution of N steps would run
    N − 1 of them again. Here the backup records the execution's last step,
    the one `on_train_batch_end` receives; with one step per execution the
    two are the same."""

    def on_train_batch_end(self, batch, logs=None) -> None:
        _keras_internals.record_backup_batch(self, batch)
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

    def __init__(self, validation: ExactValidation) -> None:
        super().__init__()
        self.validation = validation
        self.seconds: list[float] = []
        self.train_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.train_seconds.append(self.seconds[-1] - self.validation.seconds)


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Saves the weights with the best validation AUC and records their epoch
    and AUC, so that a resumed run keeps comparing against the true best."""

    def __init__(self, run: training.Run) -> None:
        self.info_path = run.path(training.BEST_INFO)
        best = training.best_info(run)
        super().__init__(
            run.path(training.BEST_WEIGHTS),
            monitor="val_auc",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best["val_auc"] if best else None,
        )

    def on_epoch_end(self, epoch, logs=None) -> None:
        before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != before and workers.is_chief(self.model.distribute_strategy):
            write_json(self.info_path, {"epoch": epoch + 1, "val_auc": float(self.best)})


def backup_frequency(training_config: TrainingConfig) -> int:
    """`BackupAndRestore`'s ``save_freq``: it counts batch-end calls, and with
    `steps_per_execution` there is one call per execution, not per step (the
    config guarantees a whole number of executions)."""
    return training_config.backup_every_steps // training_config.steps_per_execution


def training_callbacks(
    run: training.Run,
    validation: ExactValidation,
    finite: StopOnNonFiniteLoss,
    timer: EpochTimer,
    extra: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """The run's callbacks, in the order the module docstring gives."""
    config = run.config.training
    plateau = []
    if config.schedule == "plateau":
        plateau = [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_auc",
                mode="max",
                factor=config.decay_rate,
                patience=config.plateau_patience,
                min_delta=1e-5,
                min_lr=config.min_learning_rate,
                verbose=1,
            )
        ]
    return [
        validation,
        # the backup is deleted by `Trainer.fit` once history.json marks training done,
        # so that a kill in between still finds it
        BackupAndRestore(run.path("backup"), save_freq=backup_frequency(config), delete_checkpoint=False),
        ResumeReport(),
        finite,
        keras.callbacks.TensorBoard(run.path("logs")),
        BestCheckpoint(run),
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.early_stopping_patience, min_delta=1e-5
        ),
        *plateau,
        *extra,
        timer,
    ]
