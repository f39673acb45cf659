"""DCN-V2 (Wang et al., WWW 2021) on tensorflow-recommenders' cross layer."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from featnet_tf.layers import MLP
from featnet_tf.models.base import EmbeddingModel

STRUCTURES = ("stacked", "parallel")


@keras.utils.register_keras_serializable(package="featnet_tf")
class DCNv2(EmbeddingModel):
    """Cross network ``x_{l+1} = x_0 ∘ (W_l x_l + b_l) + x_l`` (DCN-V2 Eq. 1)
    with `tfrs.layers.dcn.Cross`, combined with a DNN either `stacked` (cross
    then DNN) or `parallel` (both on x_0, concatenated), then a logit.

    Args:
        num_cross_layers: cross layers. Default 3.
        projection_dim: low-rank size of each W_l (None: full rank).
        structure: `stacked` or `parallel`. Default `parallel`.
        hidden_units: the DNN. Default ``(400, 400, 400)``.
        dropout: DNN dropout.
        use_batch_norm: batch normalisation in the DNN (BARS' DCNv2 configs use it).
        batch_norm_momentum: its moving statistics' momentum (see `MLP`).
            Default 0.9 (PyTorch's, as BARS runs DCNv2): with Keras' 0.99 the
            batch-normalised DNN collapses under BARS' recipe (BENCHMARKS.md).

    References:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
        Lessons for Web-scale Learning to Rank Systems", WWW 2021.
    """

    def __init__(
        self,
        feature_spec,
        embedding_dim: int = 16,
        embeddings_regularizer=None,
        num_cross_layers: int = 3,
        projection_dim: int | None = None,
        structure: str = "parallel",
        hidden_units: Sequence[int] = (400, 400, 400),
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        batch_norm_momentum: float = 0.9,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, **kwargs)
        if structure not in STRUCTURES:
            raise ValueError(f"`structure` must be one of {STRUCTURES}. Received: structure={structure!r}")
        if num_cross_layers <= 0:
            raise ValueError(f"`num_cross_layers` must be positive. Received: num_cross_layers={num_cross_layers}")
        self.num_cross_layers, self.projection_dim, self.structure = int(num_cross_layers), projection_dim, structure
        self.hidden_units, self.dropout = tuple(hidden_units), float(dropout)
        self.cross_layers = [
            tfrs.layers.dcn.Cross(projection_dim=projection_dim, kernel_initializer="glorot_uniform", name=f"cross_{i}")
            for i in range(self.num_cross_layers)
        ]
        self.use_batch_norm, self.batch_norm_momentum = bool(use_batch_norm), float(batch_norm_momentum)
        self.dnn = MLP(
            self.hidden_units,
            dropout=self.dropout,
            use_batch_norm=self.use_batch_norm,
            batch_norm_momentum=self.batch_norm_momentum,
            name="dnn",
        )
        self.logit = keras.layers.Dense(1, name="logit")

    def call(self, inputs, training=None) -> tf.Tensor:
        x0 = tf.reshape(self.field_embedding(inputs), [-1, self.feature_spec.num_fields * self.embedding_dim])
        crossed = x0
        for layer in self.cross_layers:
            crossed = layer(x0, crossed)
        if self.structure == "stacked":
            return self.logit(self.dnn(crossed, training=training))
        return self.logit(tf.concat([crossed, self.dnn(x0, training=training)], axis=1))

    def _config(self):
        return {
            "num_cross_layers": self.num_cross_layers,
            "projection_dim": self.projection_dim,
            "structure": self.structure,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "use_batch_norm": self.use_batch_norm,
            "batch_norm_momentum": self.batch_norm_momentum,
        }
