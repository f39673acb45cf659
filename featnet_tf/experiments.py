"""Named experiments, and configs resolved against the model registry.

This module joins `featnet_tf.config` (the schema, no model knowledge) and
`featnet_tf.models` (the registry): it owns the named experiments, the
paper's grid, and `resolve`, which applies overrides and then completes the
``model`` section with every argument of the chosen model and its default,
rejecting an argument the model does not take with an error that names both.

Experiments, for every registered model: ``<model>`` (the paper's §3.1.4
settings: D = 16, Adam 1e-4; each baseline with its own paper's defaults),
``<model>_frappe_bars`` (BARS' Frappe_x1 recipe, `featnet_tf.recipes`) and
``<model>_frappe`` (the package's best recipe on Frappe: BARS', the
tuner's or the fair one, whichever validated highest over 3 seeds). Criteo and Avazu need no experiment of
their own: the data directory says which dataset it is.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

from featnet_tf import config as config_lib
from featnet_tf import recipes
from featnet_tf.config import ExperimentConfig, ModelConfig
from featnet_tf.models import MODELS, FeatNet, FeatNetDesign, check_model_arguments, model_arguments

EXPERIMENTS: dict[str, ExperimentConfig] = {}
for _name in MODELS:
    EXPERIMENTS[_name] = ExperimentConfig(model=ModelConfig(name=_name))
    EXPERIMENTS[f"{_name}_frappe_bars"] = config_lib.apply_overrides(EXPERIMENTS[_name], recipes.bars_frappe(_name))
    EXPERIMENTS[f"{_name}_frappe"] = config_lib.apply_overrides(EXPERIMENTS[_name], recipes.best_frappe(_name))

# The paper's grid for every baseline (§3.1.4).
GRID = {"model.embedding_dim": (8, 16, 32), "training.learning_rate": (1e-1, 1e-2, 1e-3, 1e-4)}


def experiment_for(model: str, dataset: str, recipe: str = "best") -> str:
    """The named experiment of `model` on `dataset`: with recipe ``best``,
    ``<model>_<dataset>`` where the dataset has settings of its own (Frappe),
    else ``<model>``; with ``bars``, ``<model>_<dataset>_bars``."""
    if recipe == "bars":
        if f"{model}_{dataset}_bars" not in EXPERIMENTS:
            raise ValueError(f"BARS' recipe is known for Frappe only; there is no {model}_{dataset}_bars experiment")
        return f"{model}_{dataset}_bars"
    return f"{model}_{dataset}" if f"{model}_{dataset}" in EXPERIMENTS else model


def complete_model(model: ModelConfig) -> ModelConfig:
    """`model` with every argument of its registered model, the given ones
    over the registry's defaults, as YAML would write them (lists, not tuples)."""
    check_model_arguments(model.name, model.params)
    params = json.loads(json.dumps({**model_arguments(model.name), **model.params}))
    return dataclasses.replace(model, params=params)


def resolve(base: ExperimentConfig, overrides: Mapping[str, Any]) -> ExperimentConfig:
    """`base` with dotted `overrides` applied, validated, its model completed."""
    config = config_lib.apply_overrides(base, overrides)
    return dataclasses.replace(config, model=complete_model(config.model))


def experiment(
    name: str, yaml_path: str | None = None, assignments: Sequence[str] = (), **overrides: Any
) -> ExperimentConfig:
    """A named experiment with a YAML file's and flags' overrides applied (in
    that order; ``overrides`` last)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}. Known experiments: {sorted(EXPERIMENTS)}")
    flat: dict[str, Any] = {}
    if yaml_path:
        flat.update(config_lib.load_yaml(yaml_path))
    flat.update(config_lib.parse_set_flags(assignments))
    flat.update(overrides)
    return resolve(EXPERIMENTS[name], flat)


def load(path: str) -> ExperimentConfig:
    """A config saved by `featnet_tf.config.save`, resolved again."""
    return resolve(ExperimentConfig(), with_featnet_design_split(config_lib.load_yaml(path)))


def with_featnet_design_split(flat: dict[str, Any]) -> dict[str, Any]:
    """A run directory's config written when `featnet` still took `FeatNetDesign`'s switches as
    arguments, as it reads now: switches at `FeatNet`'s fixed design are dropped; a run that
    changed one is the `featnet_variant` it then was (the same model, the same weights)."""
    params = dict(flat.get("model.params") or {})
    switches = {field.name for field in dataclasses.fields(FeatNetDesign)} & set(params)
    if flat.get("model.name") != "featnet" or not switches:
        return flat
    if all(params[name] == getattr(FeatNet.design, name) for name in switches):
        return {**flat, "model.params": {key: value for key, value in params.items() if key not in switches}}
    return {**flat, "model.name": "featnet_variant"}
