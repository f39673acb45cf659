"""A CTR model on raw feature values: `FeatureTransform` then a ranking model."""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers.feature_transform import FeatureTransform


@keras.utils.register_keras_serializable(package="featnet_tf")
class RawFeatureModel(keras.Model):
    """``ranker(transform(raw))``: what is trained on the pipeline's TFRecords
    and exported for serving, so both run the same preprocessing ops.

    Args:
        transform: the `FeatureTransform` (or its config).
        ranker: any registered ranking model on indexed inputs, returning
            logits (or its serialized config).
    """

    def __init__(
        self, transform: FeatureTransform | Mapping[str, Any], ranker: keras.Model | Mapping[str, Any], **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(transform, Mapping):
            transform = keras.layers.deserialize(dict(transform))
        if isinstance(ranker, Mapping):
            ranker = keras.utils.deserialize_keras_object(dict(ranker))
        self.transform = transform
        self.ranker = ranker

    @property
    def feature_spec(self):
        return self.transform.feature_spec

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.ranker(self.transform(inputs), training=training)

    def explain(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None):
        """The ranker's `explain` (FeatNet's pruning tensors) on raw inputs."""
        if not hasattr(self.ranker, "explain"):
            raise ValueError(f"{type(self.ranker).__name__} has no pruning tensors to explain.")
        return self.ranker.explain(self.transform(inputs), training=training)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "transform": keras.layers.serialize(self.transform),
            "ranker": keras.utils.serialize_keras_object(self.ranker),
        }

    @classmethod
    def from_config(cls, config: dict) -> "RawFeatureModel":
        return cls(**config)
