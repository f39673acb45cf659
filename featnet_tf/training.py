"""A run directory and its model: what every stage of `featnet_tf.lifecycle` and the commands share.

A run directory holds::

    config.yaml           the resolved ExperimentConfig
    backup/               BackupAndRestore's checkpoint (while training)
    checkpoints/best*     the weights with the best validation AUC
    checkpoints/best.json {"epoch", "val_auc"} of those weights
    logs/                 TensorBoard
    warm_start.json       what a warm-started run carried from the earlier run (`featnet_tf.warm_start`)
    history.json          per-epoch metrics; its presence means training finished
    metrics.json          test AUC, LogLoss, examples, config hash
    export.json           the version the run published ({"path"})
    export/<version>/     SavedModels (unless export.export_base is set; written by
                          `featnet_tf.lifecycle`, which this module does not import)

Every JSON and YAML file of a run is written atomically (`featnet_tf.files`,
local paths and URLs alike), so a kill or a full disk never leaves half a
file that blocks a resume.

Training feeds the ranking model with ids: the `FeatureTransform` runs in the
`tf.data` pipeline (parallel, prefetched, and XLA-compatible for the model);
the exported SavedModel runs the very same transform layer in front of the
same ranker, so training and serving share their preprocessing code.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from featnet_tf import config as config_lib
from featnet_tf import experiments, workers
from featnet_tf.data import make_dataset
from featnet_tf.features import FeatureSpec
from featnet_tf.files import read_json, write_json
from featnet_tf.layers.feature_transform import FeatureTransform
from featnet_tf.metrics import binary_auc, log_loss
from featnet_tf.models import RawFeatureModel, build_model
from featnet_tf.optimizers import build_optimizer
from featnet_tf.prepared_data import load_feature_spec, load_statistics

CONFIG_FILE = "config.yaml"
BEST_WEIGHTS = os.path.join("checkpoints", "best")
BEST_INFO = os.path.join("checkpoints", "best.json")
HISTORY_FILE = "history.json"  # written when `fit` has finished: training is done
METRICS_FILE = "metrics.json"  # written when the test split is evaluated
EXPORT_FILE = "export.json"  # written when the run's export is published
WARM_START_FILE = "warm_start.json"  # what a warm-started run carried (`featnet_tf.warm_start`)
BLESSING_FILE = "blessing.json"  # the publish check's decision and both models' metrics (`featnet_tf.blessing`)


@dataclasses.dataclass
class Run:
    run_dir: str
    config: config_lib.ExperimentConfig
    spec: FeatureSpec
    transform: FeatureTransform
    model: keras.Model  # the ranking model: ids in, logits out
    in_memory: dict[str, "InMemoryIds"] = dataclasses.field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    def serving_model(self) -> RawFeatureModel:
        """Raw values in, logits out: the run's `FeatureTransform` in front of
        its ranker, the one model `featnet_tf.saved_model` exports."""
        return RawFeatureModel(self.transform, self.model, name=f"{self.config.model.name}_raw")

    def dataset(self, split: str, batch_size: int, cache: bool = False, **kwargs: Any) -> tf.data.Dataset:
        """Batches of ``(ids for the ranker, label)``.

        With `cache`, the split's ids come from `InMemoryIds` (read, parsed
        and transformed once per run; each iteration is a fresh permutation
        when `shuffle`): what training does for the splits it reads every
        epoch (`should_cache`). Otherwise the TFRecords are streamed, parsed
        and transformed on every iteration."""
        if cache:
            if split not in self.in_memory:
                self.in_memory[split] = InMemoryIds.build(self, split)
            return self.in_memory[split].dataset(
                batch_size,
                shuffle=kwargs.get("shuffle", split == "train"),
                repeat=kwargs.get("repeat", False),
                seed=kwargs.get("seed", 0),
                drop_remainder=kwargs.get("drop_remainder", False),
            )
        return self.streamed(split, batch_size, **kwargs).prefetch(tf.data.AUTOTUNE)

    def streamed(self, split: str, batch_size: int, **kwargs: Any) -> tf.data.Dataset:
        """The split's TFRecords read, parsed and run through the transform."""
        transform = self.transform
        dataset = make_dataset(self.config.data.data_dir, split, batch_size, spec=self.spec, **kwargs)
        return dataset.map(lambda features, labels: (transform(features), labels), num_parallel_calls=tf.data.AUTOTUNE)


def should_cache(run: Run, split: str) -> bool:
    """Whether training keeps `split`'s ids in memory (`data.cache`; `auto`:
    when they take at most `data.cache_max_megabytes`, estimated from the
    split's row count in ``statistics.json`` and the transform's output)."""
    data = run.config.data
    if data.cache != "auto":
        return data.cache == "memory"
    try:
        rows = load_statistics(data.data_dir)["splits"][split]["rows"]
    except (ValueError, KeyError):
        return False
    return rows * InMemoryIds.bytes_per_row(run) <= data.cache_max_megabytes * 2**20


class InMemoryIds:
    """A split's transformed ids and labels, kept in memory and served by index.

    Streaming re-reads the gzip TFRecords, re-parses every `tf.train.Example`
    and re-does every lookup, hash and bucketization each epoch; the ids do not
    change. Built once by running the run's own `FeatureTransform` over the
    split (the layer the SavedModel contains, so training and serving still
    share one preprocessing), they are held in non-trainable variables (no
    2 GB graph-constant limit) and each batch is one `tf.gather` of a slice of
    a permutation: no per-row work in `tf.data`.
    """

    def __init__(self, ids: dict[str, tf.Tensor], labels: tf.Tensor) -> None:
        with tf.device("/CPU:0"):  # where tf.data runs: a GPU variable could not be read by the input pipeline
            self.ids = {name: tf.Variable(value, trainable=False, name=f"ids_{name}") for name, value in ids.items()}
            self.labels = tf.Variable(labels, trainable=False, name="labels")
        self.rows = int(labels.shape[0])

    @classmethod
    def build(cls, run: Run, split: str, read_batch: int = 8192) -> "InMemoryIds":
        parts = list(run.streamed(split, read_batch, shuffle=False))
        if not parts:
            raise ValueError(f"The {split} split of {run.config.data.data_dir} holds no rows.")
        ids = {name: tf.concat([part[0][name] for part in parts], axis=0) for name in parts[0][0]}
        return cls(ids, tf.concat([part[1] for part in parts], axis=0))

    @staticmethod
    def bytes_per_row(run: Run) -> int:
        """The bytes of one row's ids and label (from the transform's output on one row)."""
        sample, _ = next(iter(make_dataset(run.config.data.data_dir, "valid", 1, spec=run.spec, shuffle=False)))
        return 4 + sum(
            int(value.dtype.size) * int(np.prod(value.shape[1:])) for value in run.transform(sample).values()
        )

    def dataset(
        self, batch_size: int, shuffle: bool, repeat: bool = False, seed: int | None = 0, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        indices = tf.data.Dataset.range(self.rows)
        if shuffle:
            indices = indices.shuffle(self.rows, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            indices = indices.repeat()
        ids, labels = self.ids, self.labels

        def gather(index):
            return {name: tf.gather(value, index) for name, value in ids.items()}, tf.gather(labels, index)

        batches = indices.batch(batch_size, drop_remainder=drop_remainder)
        return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_strategy(
    name: str, logical_cpus: int = 0, worker_timeout: int = workers.WORKER_TIMEOUT_SECONDS
) -> tf.distribute.Strategy:
    """`mirrored`: all GPUs (the CPU when there is none; `logical_cpus` > 1
    splits the CPU into that many devices and mirrors over them, to exercise
    the distributed path without GPUs); `one_device`; `multi_worker` from
    TF_CONFIG (`workers.configure`). `one_device` is TensorFlow's default
    (no) strategy."""
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
        except RuntimeError as error:
            raise ValueError(f"--logical_cpus must be set before TensorFlow initialises its devices: {error}") from None
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus if logical_cpus > 1 else cpus[:1])
    if name == "one_device":
        # TensorFlow's default strategy: one device (the first GPU, else the
        # CPU). `tf.distribute.OneDeviceStrategy` would do the same, but
        # Keras' BackupAndRestore refuses it.
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        workers.configure(worker_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}. Expected one of {config_lib.STRATEGIES}.")


def learning_rate(training: config_lib.TrainingConfig):
    """Adam's learning rate: a schedule, or a constant (which
    ``schedule: plateau`` lowers from a callback, see `featnet_tf.callbacks`)."""
    if training.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate, training.decay_steps, training.decay_rate
        )
    if training.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(training.learning_rate, training.decay_steps)
    return training.learning_rate


def build_run(config: config_lib.ExperimentConfig, run_dir: str, strategy: tf.distribute.Strategy | None = None) -> Run:
    """The transform and the compiled ranker of `config`, built under `strategy`."""
    if not config.data.data_dir:
        raise ValueError("`data.data_dir` is not set: pass --data_dir or --set data.data_dir=...")
    spec = load_feature_spec(config.data.data_dir)
    transform = FeatureTransform(spec, config.data.data_dir, name="transform")
    strategy = strategy or tf.distribute.get_strategy()
    if config.training.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    with strategy.scope():
        ranker = build_model(config.model.name, spec, **config.model.model_kwargs())
        sample, _ = next(iter(make_dataset(config.data.data_dir, "valid", 2, spec=spec, shuffle=False)))
        ranker(transform(sample))  # creates the variables under the strategy
        ranker.compile(
            optimizer=build_optimizer(
                config.training.optimizer, learning_rate(config.training), config.training.global_clipnorm
            ),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[
                keras.metrics.AUC(from_logits=True, name="auc"),
                keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
            ],
            jit_compile=config.training.jit,
            steps_per_execution=config.training.steps_per_execution,
        )
    return Run(run_dir, config, spec, transform, ranker)


def unreplicated(run: Run) -> Run:
    """`run` rebuilt outside its strategy with its best weights, read from
    ``checkpoints/best``: what the chief of a multi-worker run evaluates and
    exports alone. Reading the variables of a `MultiWorkerMirroredStrategy`
    may start collectives, which the other workers, done and gone, would
    never join (TensorFlow aborts them as unhealthy peers)."""
    if not tf.io.gfile.glob(run.path(BEST_WEIGHTS) + ".index"):
        raise ValueError(
            f"{run.run_dir} has no best weights ({run.path(BEST_WEIGHTS)}): no epoch had a finite validation AUC, "
            "so the chief of this multi-worker run has nothing to evaluate or export."
        )
    single = build_run(run.config, run.run_dir)
    single.model.load_weights(run.path(BEST_WEIGHTS)).expect_partial()
    return single


def load_run(run_dir: str) -> Run:
    """A trained run: its config and its best weights."""
    if not tf.io.gfile.isdir(run_dir):
        raise ValueError(f"The run directory {run_dir} does not exist.")
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise ValueError(f"{run_dir} is not a run directory: {config_path} does not exist.")
    run = build_run(experiments.load(config_path), run_dir)
    if not tf.io.gfile.glob(run.path(BEST_WEIGHTS) + ".index"):
        raise ValueError(f"{run_dir} has no trained weights ({run.path(BEST_WEIGHTS)}); train it first.")
    run.model.load_weights(run.path(BEST_WEIGHTS)).expect_partial()
    return run


def predict(
    run: Run, split: str, dataset: tf.data.Dataset | None = None, predict_step=None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities of every row of a split (or of the
    given batches of ``(ids, labels)``)."""
    labels, logits = [], []
    predict_step = predict_step or tf.function(lambda ids: run.model(ids, training=False))
    for ids, batch_labels in dataset or run.dataset(split, run.config.data.eval_batch_size, shuffle=False):
        logits.append(predict_step(ids).numpy().reshape(-1))
        labels.append(batch_labels.numpy().reshape(-1))
    logits_array = np.concatenate(logits).astype(np.float64)
    return np.concatenate(labels), 1.0 / (1.0 + np.exp(-logits_array))


def best_info(run: Run) -> dict[str, Any] | None:
    """``{"epoch", "val_auc"}`` of the best weights so far (``checkpoints/best.json``), None before any."""
    path = run.path(BEST_INFO)
    return read_json(path) if tf.io.gfile.exists(path) else None


def evaluate_run(run: Run, split: str = "test") -> dict[str, Any]:
    """Exact AUC and LogLoss of a split; written to ``metrics.json``."""
    labels, probabilities = predict(run, split)
    metrics = {
        "split": split,
        "auc": binary_auc(labels, probabilities),
        "logloss": log_loss(labels, probabilities),
        "examples": int(labels.size),
        "model": run.config.model.name,
        "config_hash": run.config.config_hash(),
    }
    best = best_info(run)
    if best:
        metrics["best_epoch"] = best["epoch"]
    if tf.io.gfile.exists(run.path(WARM_START_FILE)):
        carried = read_json(run.path(WARM_START_FILE))
        metrics["warm_start"] = {"from": carried["from"], "rows": carried["rows"], "fields": carried["fields"]}
    write_json(run.path(METRICS_FILE), metrics)
    return metrics
