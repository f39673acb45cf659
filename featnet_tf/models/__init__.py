"""CTR models, registered by name so that `--model NAME` builds any of them."""

from __future__ import annotations

from typing import Any, Callable

from featnet_tf.features import FeatureSpec
from featnet_tf.models.featnet import FeatNet, FeatNetOutputs

MODELS: dict[str, Callable[..., Any]] = {"featnet": FeatNet}


def build_model(name: str, feature_spec: FeatureSpec, **kwargs: Any):
    """Builds the model registered as `name` on `feature_spec`."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {sorted(MODELS)}")
    return MODELS[name](feature_spec, **kwargs)


__all__ = ["FeatNet", "FeatNetOutputs", "MODELS", "build_model"]
