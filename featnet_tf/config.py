"""Experiment configuration: the schema, its YAML and its overrides.

An experiment is four frozen dataclasses (model, data, training, export) with
defaults from the paper (§3.1.4). This module owns their fields, reading YAML
and ``--set section.key=value`` flags, and `apply_overrides`, which validates
every section but the model's own arguments, raising `ValueError` that names
the offending value. It knows no model: `featnet_tf.experiments` (the named
experiments) completes and checks the model section against the registry of
`featnet_tf.models`. The resolved config is written to the run directory and
its hash goes into ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from typing import Any, Mapping, Sequence

import yaml

from featnet_tf.files import read_text, write_atomically

SCHEDULES = ("constant", "exponential", "cosine", "plateau")
STRATEGIES = ("mirrored", "one_device", "multi_worker")
CACHES = ("auto", "memory", "none")
OPTIMIZERS = ("adam", "lazy_adam")  # built by `featnet_tf.optimizers.build_optimizer`


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model: its name, the embedding options every model shares, and its
    own constructor's arguments.

    Any ``model.KEY`` that is not one of the fields below is an argument of
    the chosen model's constructor and goes into `params`
    (``--set model.num_subsets=8``, ``--set model.dropout=0.1``). Resolved
    by `featnet_tf.experiments`, `params` holds every argument of the model
    with its default taken from the registry (the constructor's, or the
    variant's), so the saved config says everything the model was built
    with; an argument the model does not take is an error naming the model
    and the argument.

    Attributes:
        name: a registered model name (`featnet_tf.models.MODELS`).
        embedding_dim: D.
        embedding_l2: the penalty ``embedding_l2 · ‖W‖²`` over every row of
            every embedding table, added to the batch-mean loss at every step
            (0 for none); every model takes it. FuxiCTR's
            `embedding_regularizer` λ adds ``(λ/2)·‖W‖²`` the same way: its
            0.05 (BARS' Frappe configs) is our 0.025.
        embedding_l2_first_order: the penalty covers the first-order weights
            per id of LR, FM, DeepFM, xDeepFM and FiBiNET too, as FuxiCTR's
            does (they are one more id table there).
        embedding_initializer: the id tables' initializer, a Keras
            initializer's name or config (``{class_name: RandomNormal,
            config: {stddev: 1.0e-4}}`` is FuxiCTR's); None: the model's own
            (Keras' uniform ±0.05 for the baselines).
        params: the keyword arguments of the model's constructor.
    """

    name: str = "featnet"
    embedding_dim: int = 16
    embedding_l2: float = 0.0
    embedding_l2_first_order: bool = False
    embedding_initializer: Any = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `featnet_tf.models.build_model`."""
        kwargs: dict[str, Any] = {"embedding_dim": self.embedding_dim, **self.params}
        if self.embedding_l2:
            kwargs["embeddings_regularizer"] = {"class_name": "L2", "config": {"l2": self.embedding_l2}}
        if self.embedding_l2_first_order:
            kwargs["regularize_first_order"] = True
        if self.embedding_initializer is not None:
            kwargs["embeddings_initializer"] = self.embedding_initializer
        return kwargs


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is batched.

    Attributes:
        data_dir: a `pipelines.preprocess` output directory.
        batch_size: rows per replica per step; the global batch is
            ``batch_size × replicas``.
        eval_batch_size: rows per evaluation batch.
        shuffle_buffer: rows in the training shuffle buffer (of the streamed
            path; the in-memory path shuffles the whole split every epoch).
        cache: `auto`, `memory` or `none`. With `memory` the train and valid
            splits are read, parsed and transformed to ids once, kept in memory
            and served by index each epoch (a fresh permutation of all rows for
            training); `auto` does so when the ids of a split take at most
            `cache_max_megabytes`; `none` streams the TFRecords every epoch.
        cache_max_megabytes: the largest split `auto` keeps in memory.
        accept_anomalies: train on a directory whose ``validation.json``
            lists anomalies (`pipelines.validation`); refused otherwise.
    """

    data_dir: str = ""
    batch_size: int = 1024
    eval_batch_size: int = 8192
    shuffle_buffer: int = 100_000
    cache: str = "auto"
    cache_max_megabytes: int = 2048
    accept_anomalies: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The optimisation.

    Attributes:
        epochs: maximum number of epochs.
        optimizer: `adam` (the paper's; `featnet_tf.optimizers.FusedAdam`,
            Keras' Adam in one fused pass) or `lazy_adam` (Adam on only the
            embedding rows a batch reads, `featnet_tf.optimizers.LazyAdam`).
        learning_rate: Adam's (initial) learning rate; the paper's 1e-4.
        schedule: `constant`, `exponential` (× decay_rate every decay_steps),
            `cosine` (to 0 over decay_steps) or `plateau` (× decay_rate
            whenever the exact validation AUC has not improved for
            plateau_patience epochs, down to min_learning_rate).
        decay_steps: steps of the decay schedule.
        decay_rate: factor of the exponential and plateau schedules.
        plateau_patience: epochs without a better validation AUC before the
            plateau schedule lowers the learning rate.
        min_learning_rate: the plateau schedule's floor.
        early_stopping_patience: epochs without a better (exact) validation
            AUC before stopping; the best weights are restored.
        global_clipnorm: clip the gradients to this global norm before each
            update (None: no clipping). FuxiCTR's `max_gradient_norm`, 10 in
            BARS' configs.
        steps_per_epoch: steps per epoch (None: one pass over train).
        validation_steps: validation batches per epoch (None: all).
        backup_every_steps: steps between `BackupAndRestore` backups; a
            multiple of `steps_per_execution` (a backup is taken between calls).
        steps_per_execution: train steps run by one call into the compiled
            graph (Keras' `steps_per_execution`): fewer returns to Python,
            progress-bar updates and batch callbacks per step (what it is
            worth: BENCHMARKS.md, "steps_per_execution").
        seed: seed of weights, shuffling and dropout.
        strategy: `mirrored` (all GPUs, else CPU), `one_device` or
            `multi_worker` (from TF_CONFIG).
        mixed_precision: train in mixed_float16 (GPUs).
        jit: compile the train step with XLA.
        warm_start: a run directory of the same model to start from
            (`featnet_tf.warm_start`): its best weights, every embedding row
            carried by token into this run's vocabularies; "" to start from
            scratch. The optimizer's state starts fresh.
    """

    epochs: int = 10
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    schedule: str = "constant"
    decay_steps: int = 10_000
    decay_rate: float = 0.9
    plateau_patience: int = 1
    min_learning_rate: float = 1e-6
    early_stopping_patience: int = 2
    global_clipnorm: float | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    backup_every_steps: int = 200
    steps_per_execution: int = 10
    seed: int = 0
    strategy: str = "mirrored"
    mixed_precision: bool = False
    jit: bool = False
    warm_start: str = ""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """The SavedModel export.

    Attributes:
        export_base: TF Serving's model base path; versions go to
            ``<export_base>/<version>/``. Empty: ``<run_dir>/export``.
        warmup_examples: rows written as TF Serving warm-up requests.
        require_no_worse: publish only a candidate no worse than the newest
            version already under the export base, both scored on the
            candidate's validation rows (`featnet_tf.blessing`).
        auc_tolerance: the candidate's AUC may be this much below the
            baseline's.
        logloss_tolerance: the candidate's LogLoss may be this much above
            the baseline's.
        max_calibration_error: the candidate's mean predicted probability
            over the observed click rate may differ from 1 by this much.
    """

    export_base: str = ""
    warmup_examples: int = 8
    require_no_worse: bool = True
    auc_tolerance: float = 0.0
    logloss_tolerance: float = 0.002
    max_calibration_error: float = 0.1


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    export: ExportConfig = ExportConfig()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def config_hash(self) -> str:
        """12 hex digits identifying this resolved configuration."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"num_subsets": 8}}`` → ``{"model.num_subsets": 8}``; the
    model's constructor arguments (``model.params`` and any other
    ``model.KEY``, e.g. an initializer's config) stay whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and prefix != "model.":
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), reading ``1e-4`` as the float YAML 1.2
    makes it: YAML 1.1 wants a dot in the mantissa and would give a string."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: Any) -> Any:
    """A YAML value or document (a string or a stream) as every config path reads it."""
    return yaml.load(text, Loader=_YamlLoader)


def parse_set_flags(assignments: Sequence[str]) -> dict[str, Any]:
    """``["model.num_subsets=8"]`` → ``{"model.num_subsets": 8}`` (values as YAML)."""
    overrides = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key:
            raise ValueError(f"--set takes section.key=value. Received: {assignment!r}")
        overrides[key.strip()] = parse_yaml(text) if text.strip() else ""
    return overrides


def load_yaml(path: str) -> dict[str, Any]:
    config = parse_yaml(read_text(path)) or {}
    if not isinstance(config, Mapping):
        raise ValueError(f"{path} must hold a mapping of sections. Received: {type(config).__name__}")
    return flatten(config)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    if annotation is Any:  # e.g. an initializer: a name or a Keras config, checked when the model is built
        return dict(value) if isinstance(value, Mapping) else value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"`{key}` must be a list. Received: {value!r}")
        return tuple(_coerce(key, item, args[0]) for item in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"`{key}` must be true or false. Received: {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"`{key}` must be an integer. Received: {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"`{key}` must be a number. Received: {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"`{key}` must be a string. Received: {value!r}")
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError(f"`{key}` must be a mapping. Received: {value!r}")


def apply_overrides(base: ExperimentConfig, overrides: Mapping[str, Any]) -> ExperimentConfig:
    """`base` with dotted `overrides` applied, validated but for the model's
    own arguments (see `featnet_tf.experiments.resolve`)."""
    sections = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    changes: dict[str, dict[str, Any]] = {name: {} for name in sections}
    model_params = dict(base.model.params)
    if "model.params" in overrides:
        model_params = dict(_coerce("model.params", overrides["model.params"], Mapping[str, Any]))
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections or not name:
            raise ValueError(f"Unknown config key `{key}`. Sections: {sorted(sections)}")
        hints = typing.get_type_hints(type(sections[section]))
        if section == "model" and name not in hints:  # a constructor argument, checked by the model registry
            model_params[name] = list(value) if isinstance(value, tuple) else value
            continue
        if name not in hints:
            raise ValueError(f"Unknown config key `{key}`. Keys of `{section}`: {sorted(hints)}")
        if key != "model.params":
            changes[section][name] = _coerce(key, value, hints[name])
    changes["model"]["params"] = model_params
    config = ExperimentConfig(**{name: dataclasses.replace(value, **changes[name]) for name, value in sections.items()})
    validate(config)
    return config


def validate(config: ExperimentConfig) -> None:
    """Raises `ValueError` naming the first invalid value of every section
    but the model's own arguments, which the model registry checks."""
    positive = {
        "model.embedding_dim": config.model.embedding_dim,
        "data.batch_size": config.data.batch_size,
        "data.eval_batch_size": config.data.eval_batch_size,
        "data.shuffle_buffer": config.data.shuffle_buffer,
        "data.cache_max_megabytes": config.data.cache_max_megabytes,
        "training.epochs": config.training.epochs,
        "training.learning_rate": config.training.learning_rate,
        "training.decay_steps": config.training.decay_steps,
        "training.backup_every_steps": config.training.backup_every_steps,
        "training.steps_per_execution": config.training.steps_per_execution,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ValueError(f"`{key}` must be positive. Received: {key}={value}")
    if config.training.backup_every_steps % config.training.steps_per_execution:
        raise ValueError(
            f"`training.backup_every_steps` ({config.training.backup_every_steps}) must be a multiple of "
            f"`training.steps_per_execution` ({config.training.steps_per_execution}): backups are taken between calls"
        )
    for key in ("steps_per_epoch", "validation_steps", "global_clipnorm"):
        value = getattr(config.training, key)
        if value is not None and value <= 0:
            raise ValueError(f"`training.{key}` must be positive or null. Received: training.{key}={value}")
    non_negative = {
        "model.embedding_l2": config.model.embedding_l2,
        "export.auc_tolerance": config.export.auc_tolerance,
        "export.logloss_tolerance": config.export.logloss_tolerance,
        "export.max_calibration_error": config.export.max_calibration_error,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ValueError(f"`{key}` must be >= 0. Received: {key}={value}")
    if not 0.0 < config.training.decay_rate <= 1.0:
        raise ValueError(
            f"`training.decay_rate` must be in (0, 1]. Received: training.decay_rate={config.training.decay_rate}"
        )
    if config.training.plateau_patience < 0 or config.training.min_learning_rate < 0:
        raise ValueError(
            "`training.plateau_patience` and `training.min_learning_rate` must be >= 0. Received: "
            f"{config.training.plateau_patience}, {config.training.min_learning_rate}"
        )
    if config.training.early_stopping_patience < 0:
        raise ValueError(
            f"`training.early_stopping_patience` must be >= 0. Received: {config.training.early_stopping_patience}"
        )
    if config.training.schedule not in SCHEDULES:
        raise ValueError(
            f"`training.schedule` must be one of {SCHEDULES}. Received: training.schedule={config.training.schedule!r}"
        )
    if config.training.optimizer not in OPTIMIZERS:
        received = config.training.optimizer
        raise ValueError(f"`training.optimizer` must be one of {OPTIMIZERS}. Received: training.optimizer={received!r}")
    if config.data.cache not in CACHES:
        raise ValueError(f"`data.cache` must be one of {CACHES}. Received: data.cache={config.data.cache!r}")
    if config.training.strategy not in STRATEGIES:
        raise ValueError(
            f"`training.strategy` must be one of {STRATEGIES}. Received: training.strategy={config.training.strategy!r}"
        )
    if config.export.warmup_examples < 0:
        raise ValueError(f"`export.warmup_examples` must be >= 0. Received: {config.export.warmup_examples}")


def save(config: ExperimentConfig, path: str) -> None:
    """Writes the config as YAML, atomically (a resumed run compares against it)."""
    write_atomically(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
