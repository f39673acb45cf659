"""CTR models, registered by name so that `--model NAME` builds any of them.

The registry owns the model names, their variants (presets of a class) and
the arguments each takes with their defaults; `featnet_tf.experiments` reads
it to complete and validate a config's ``model`` section.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from featnet_tf.features import FeatureSpec
from featnet_tf.models.afn import AFN, AFN_PLUS
from featnet_tf.models.autoint import AUTOINT_PLUS, AutoInt
from featnet_tf.models.dcnv2 import DCNv2
from featnet_tf.models.deepfm import DeepFM
from featnet_tf.models.featnet import FeatNet, FeatNetDesign, FeatNetOutputs
from featnet_tf.models.featnet_variants import FEATNET_EQ13, FeatNetVariant, featnet_eq13
from featnet_tf.models.fibinet import FiBiNET
from featnet_tf.models.linear import FM, LogisticRegression
from featnet_tf.models.raw_features import RawFeatureModel
from featnet_tf.models.xdeepfm import XDeepFM

# the config's `model.embedding_*` options (`featnet_tf.config.ModelConfig`)
EMBEDDING_ARGUMENTS = ("embedding_dim", "embeddings_regularizer", "regularize_first_order", "embeddings_initializer")


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """A model of the registry: its class and the arguments that make it this
    variant (AutoInt+ is `AutoInt` with a DNN, the literal FeatNet is
    `FeatNet` with the paper's settings)."""

    model_class: type
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    forwards_to: type | None = None  # the class whose arguments `model_class`'s **kwargs take
    # What `featnet_tf.tune` searches of this model's own arguments, beside every model's
    # (`featnet_tf.tuning.COMMON_SPACE`): argument → ("log", low, high) | ("float", low, high)
    # | ("int", low, high) | ("choice", (values...)).
    search_space: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        """Every constructor argument but the spec and the embedding options,
        with this variant's defaults: what ``model.*`` in a config may set."""
        defaults: dict[str, Any] = {}
        for model_class in filter(None, (self.model_class, self.forwards_to)):
            parameters = inspect.signature(model_class.__init__).parameters.values()
            defaults.update(
                (parameter.name, parameter.default)
                for parameter in parameters
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
                and parameter.name not in ("self", "feature_spec", *EMBEDDING_ARGUMENTS)
            )
        return {**defaults, **self.presets}

    def build(self, feature_spec: FeatureSpec, **kwargs: Any):
        return self.model_class(feature_spec, **{**self.presets, **kwargs})


DNN_WIDTHS = ("choice", ((400, 400, 400), (400, 400), (256, 256, 256), (1024, 512, 256)))
FEATNET_SPACE = {
    "num_subsets": ("int", 2, 12),
    "num_queries": ("choice", (4, 8, 16, 32)),
    "expand_ratio": ("choice", (2, 4, 8)),
    "tower_units": ("choice", ((128, 128, 128), (64, 64, 64), (256, 256))),
    "fsgn_initial_threshold": ("float", -6.0, -1.0),
    "sapn_initial_threshold": ("float", -6.0, -1.0),
    "dropout": ("float", 0.0, 0.5),
}
MODELS: dict[str, RegisteredModel] = {
    "featnet": RegisteredModel(FeatNet, search_space=FEATNET_SPACE),
    "featnet_variant": RegisteredModel(FeatNetVariant, forwards_to=FeatNet, search_space=FEATNET_SPACE),
    "featnet_eq13": RegisteredModel(FeatNetVariant, FEATNET_EQ13, forwards_to=FeatNet, search_space=FEATNET_SPACE),
    "lr": RegisteredModel(LogisticRegression),
    "fm": RegisteredModel(FM),
    "deepfm": RegisteredModel(
        DeepFM,
        search_space={
            "hidden_units": DNN_WIDTHS,
            "dropout": ("float", 0.0, 0.5),
            "use_batch_norm": ("choice", (False, True)),
        },
    ),
    "xdeepfm": RegisteredModel(XDeepFM, search_space={"hidden_units": DNN_WIDTHS, "dropout": ("float", 0.0, 0.5)}),
    "autoint": RegisteredModel(AutoInt),
    "autoint_plus": RegisteredModel(
        AutoInt, AUTOINT_PLUS, search_space={"hidden_units": DNN_WIDTHS, "dropout": ("float", 0.0, 0.5)}
    ),
    "afn": RegisteredModel(AFN),
    "afn_plus": RegisteredModel(
        AFN, AFN_PLUS, search_space={"num_neurons": ("choice", (200, 400, 800)), "dropout": ("float", 0.0, 0.5)}
    ),
    "fibinet": RegisteredModel(FiBiNET, search_space={"hidden_units": DNN_WIDTHS, "dropout": ("float", 0.0, 0.5)}),
    "dcnv2": RegisteredModel(
        DCNv2,
        search_space={
            "num_cross_layers": ("int", 2, 5),
            "hidden_units": DNN_WIDTHS,
            "dropout": ("float", 0.0, 0.5),
            "use_batch_norm": ("choice", (False, True)),
        },
    ),
}


def registered(name: str) -> RegisteredModel:
    """The model registered as `name`, or a `ValueError` listing the registered names."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {sorted(MODELS)}")
    return MODELS[name]


def model_arguments(name: str) -> dict[str, Any]:
    """The arguments (with their defaults) that configure the model registered as `name`."""
    return registered(name).arguments()


def check_model_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raises `ValueError` naming the model and every argument it does not take."""
    accepted = set(model_arguments(name)) | set(EMBEDDING_ARGUMENTS)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        config_keys = ", ".join(f"model.{key}" for key in unknown)
        accepted_names = sorted(model_arguments(name))
        raise ValueError(f"Model {name!r} takes no argument {unknown} ({config_keys}). Its arguments: {accepted_names}")


def build_model(name: str, feature_spec: FeatureSpec, **kwargs: Any):
    """The ranker registered as `name` on `feature_spec`: indexed inputs (those
    of `FieldEmbedding`) → logits. For raw values in front of it (training's
    `tf.data` path and the export), wrap it as ``RawFeatureModel(FeatureTransform
    (spec, data_dir), ranker)``, which `featnet_tf.training.Run.serving_model`
    does for a run."""
    check_model_arguments(name, kwargs)
    return registered(name).build(feature_spec, **kwargs)


__all__ = [
    "AFN",
    "AutoInt",
    "DCNv2",
    "DeepFM",
    "FM",
    "FeatNet",
    "FeatNetDesign",
    "FeatNetOutputs",
    "FeatNetVariant",
    "FiBiNET",
    "LogisticRegression",
    "MODELS",
    "RawFeatureModel",
    "RegisteredModel",
    "XDeepFM",
    "build_model",
    "check_model_arguments",
    "featnet_eq13",
    "model_arguments",
    "registered",
]
