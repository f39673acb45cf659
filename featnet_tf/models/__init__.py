"""CTR models, registered by name so that `--model NAME` builds any of them."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Mapping

from featnet_tf.features import FeatureSpec
from featnet_tf.layers.feature_transform import FeatureTransform
from featnet_tf.models.afn import AFN, afn_plus
from featnet_tf.models.autoint import AutoInt, autoint_plus
from featnet_tf.models.dcnv2 import DCNv2
from featnet_tf.models.deepfm import DeepFM
from featnet_tf.models.featnet import FeatNet, FeatNetOutputs, featnet_eq13
from featnet_tf.models.fibinet import FiBiNET
from featnet_tf.models.linear import FM, LogisticRegression
from featnet_tf.models.raw_features import RawFeatureModel
from featnet_tf.models.xdeepfm import XDeepFM

MODELS: dict[str, Callable[..., Any]] = {
    "featnet": FeatNet,
    "featnet_eq13": featnet_eq13,
    "lr": LogisticRegression,
    "fm": FM,
    "deepfm": DeepFM,
    "xdeepfm": XDeepFM,
    "autoint": AutoInt,
    "autoint_plus": autoint_plus,
    "afn": AFN,
    "afn_plus": afn_plus,
    "fibinet": FiBiNET,
    "dcnv2": DCNv2,
}


def model_arguments(name: str) -> set[str]:
    """The keyword arguments the model registered as `name` takes: its
    builder's, and for a builder function that passes ``**kwargs`` on, those
    of the class it returns."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {sorted(MODELS)}")
    builder = MODELS[name]
    constructors = [builder.__init__ if inspect.isclass(builder) else builder]
    returned = None if inspect.isclass(builder) else typing.get_type_hints(builder).get("return")
    if returned is not None:
        constructors.append(returned.__init__)
    names: set[str] = set()
    for constructor in constructors:
        for parameter in inspect.signature(constructor).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                names.add(parameter.name)
    return names - {"self", "feature_spec"}


def check_model_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raises `ValueError` naming the model and every argument it does not take."""
    accepted = model_arguments(name)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        config_keys = ", ".join(f"model.{key}" for key in unknown)
        raise ValueError(f"Model {name!r} takes no argument {unknown} ({config_keys}). Its arguments: {sorted(accepted)}")


def build_model(name: str, feature_spec: FeatureSpec, vocabulary_dir: str | None = None, **kwargs: Any):
    """Builds the model registered as `name` on `feature_spec`.

    With `vocabulary_dir` (a preprocessing output directory) the model takes
    raw values: a `RawFeatureModel` of `FeatureTransform` and the ranker.
    Without, it takes the indexed inputs of `FieldEmbedding`.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {sorted(MODELS)}")
    ranker = MODELS[name](feature_spec, **kwargs)
    if vocabulary_dir is None:
        return ranker
    return RawFeatureModel(FeatureTransform(feature_spec, vocabulary_dir, name="transform"), ranker, name=f"{name}_raw")


__all__ = [
    "AFN",
    "AutoInt",
    "DCNv2",
    "DeepFM",
    "FM",
    "FeatNet",
    "FeatNetOutputs",
    "FiBiNET",
    "LogisticRegression",
    "MODELS",
    "RawFeatureModel",
    "XDeepFM",
    "build_model",
    "check_model_arguments",
    "featnet_eq13",
    "model_arguments",
]
