"""Initializer helpers shared by the layers."""

from __future__ import annotations

from typing import Any

import tf_keras as keras


def fresh(initializer: Any) -> keras.initializers.Initializer:
    """A new instance of `initializer`. Keras returns identical values when one
    unseeded instance initialises two weights, so each weight gets its own."""
    return keras.initializers.deserialize(keras.initializers.serialize(keras.initializers.get(initializer)))
