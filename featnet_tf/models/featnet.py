"""FeatNet: Feature Interaction Pruning Networks for CTR prediction (WWW'22)."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import FeatureSpec
from featnet_tf.layers import FeatureSubsetGeneration, FieldEmbedding, SetAttentivePruning, SubsetTowers


# N(0, 1), the default of PyTorch's nn.Embedding that the paper's implementation
# used. FeatNet's interactions are cubic in the embedding scale (p^s · Score'' ·
# X, with both p^s and Score'' computed from X), so Keras' uniform(±0.05)
# leaves them too small to learn from; BENCHMARKS.md has the measurement.
EMBEDDINGS_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 1.0}}


class FeatNetOutputs(NamedTuple):
    """Everything one forward pass of FeatNet computes that analysis needs.

    Attributes:
        logits: ``(batch, 1)``, the pre-sigmoid output of Eq. 15.
        subset_weights: ``p^s``, ``(batch, S, M)``: FSGN's pruned weight of
            each field in each subset (Eq. 4); zero = pruned.
        interaction_scores: ``Score''``, ``(batch, S, E, M)``: SAPN's pruned
            attention of each induced query over the fields (Eq. 12); the
            non-zero entries of a row are one learned interaction.
    """

    logits: tf.Tensor
    subset_weights: tf.Tensor
    interaction_scores: tf.Tensor


@keras.utils.register_keras_serializable(package="featnet_tf")
class FeatNet(keras.Model):
    """FeatNet: embeddings → FSGN → SAPN → per-subset towers → logit.

    * Eq. 1: `FieldEmbedding` gives ``x ∈ R^{B×M×D}``;
    * Eq. 2-5: `FeatureSubsetGeneration` gives S pruned, re-weighted subsets;
    * Eq. 6, 11-13: `SetAttentivePruning` gives E interactions per subset;
    * Eq. 14: one MLP tower per subset on the squeezed ``E·D`` interactions;
    * Eq. 15: the towers' outputs are concatenated into ``h`` and
      ``logit = W_oᵀ h + b``; ``p̂ = σ(logit)``.

    The model returns logits; train it with binary cross-entropy on logits
    (Eq. 16) and Adam. `explain` returns the pruning tensors of the same
    forward pass.

    Args:
        feature_spec: the inputs (a `FeatureSpec` or its dict).
        embedding_dim: D. Default 16.
        num_subsets: S. Default 10.
        expand_ratio: r. Default 4.
        num_queries: E. Default 16.
        tower_units: hidden widths of each subset's tower. Default 3×128.
        fsgn_initial_threshold: initial τ of FSGN's soft threshold.
        sapn_initial_threshold: initial τ of SAPN's soft threshold.
        scale_scores, use_value_projection, use_layer_norm: SAPN options the
            paper does not write (see `SetAttentivePruning`); off by default.
        dropout: dropout rate in the towers.
        embeddings_initializer: initializer of the field embeddings.
            Default N(0, 1), as PyTorch's `nn.Embedding` (see
            `EMBEDDINGS_INITIALIZER`).
        embeddings_regularizer: optional regularizer of the id tables.

    Input: a dict from field name to indexed input (see `FieldEmbedding`).
    Output: logits of shape ``(batch, 1)``.

    References:
        Yin et al., "FeatNet: Feature Interaction Pruning Networks for CTR
        Prediction", WWW 2022.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: int = 16,
        num_subsets: int = 10,
        expand_ratio: int = 4,
        num_queries: int = 16,
        tower_units: Sequence[int] = (128, 128, 128),
        fsgn_initial_threshold: float = -10.0,
        sapn_initial_threshold: float = -10.0,
        scale_scores: bool = False,
        use_value_projection: bool = False,
        use_layer_norm: bool = False,
        dropout: float = 0.0,
        embeddings_initializer: Any = EMBEDDINGS_INITIALIZER,
        embeddings_regularizer: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(feature_spec, Mapping):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        self.feature_spec = feature_spec
        self.embedding_dim = int(embedding_dim)
        self.num_subsets = int(num_subsets)
        self.expand_ratio = int(expand_ratio)
        self.num_queries = int(num_queries)
        self.tower_units = tuple(int(units) for units in tower_units)
        self.fsgn_initial_threshold = float(fsgn_initial_threshold)
        self.sapn_initial_threshold = float(sapn_initial_threshold)
        self.scale_scores = bool(scale_scores)
        self.use_value_projection = bool(use_value_projection)
        self.use_layer_norm = bool(use_layer_norm)
        self.dropout = float(dropout)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = embeddings_regularizer

        # === Layers ===
        self.field_embedding = FieldEmbedding(
            feature_spec,
            embedding_dim,
            embeddings_initializer=self.embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            name="field_embedding",
        )
        self.subset_generation = FeatureSubsetGeneration(
            num_subsets, expand_ratio, initial_threshold=fsgn_initial_threshold, name="subset_generation"
        )
        self.attentive_pruning = SetAttentivePruning(
            num_queries,
            initial_threshold=sapn_initial_threshold,
            scale_scores=scale_scores,
            use_value_projection=use_value_projection,
            use_layer_norm=use_layer_norm,
            name="attentive_pruning",
        )
        self.towers = SubsetTowers(self.tower_units, dropout=dropout, name="towers")
        self.output_layer = keras.layers.Dense(1, name="logit")

    # === Forward ===

    def explain(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> FeatNetOutputs:
        """One forward pass returning the logits and both pruning tensors."""
        x = self.field_embedding(inputs)  # Eq. 1
        subsets, subset_weights = self.subset_generation(x)  # Eq. 2-5
        interactions, scores = self.attentive_pruning(subsets)  # Eq. 6, 11-13
        squeezed = tf.reshape(interactions, [-1, self.num_subsets, self.num_queries * self.embedding_dim])
        towers = self.towers(squeezed, training=training)  # Eq. 14
        h = tf.reshape(towers, [-1, self.num_subsets * self.tower_units[-1]])
        logits = self.output_layer(h)  # Eq. 15, before the sigmoid
        return FeatNetOutputs(logits, subset_weights, scores)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.explain(inputs, training=training).logits

    # === Config ===

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "feature_spec": self.feature_spec.to_dict(),
            "embedding_dim": self.embedding_dim,
            "num_subsets": self.num_subsets,
            "expand_ratio": self.expand_ratio,
            "num_queries": self.num_queries,
            "tower_units": list(self.tower_units),
            "fsgn_initial_threshold": self.fsgn_initial_threshold,
            "sapn_initial_threshold": self.sapn_initial_threshold,
            "scale_scores": self.scale_scores,
            "use_value_projection": self.use_value_projection,
            "use_layer_norm": self.use_layer_norm,
            "dropout": self.dropout,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(keras.regularizers.get(self.embeddings_regularizer))
            if self.embeddings_regularizer
            else None,
        }

    @classmethod
    def from_config(cls, config: dict) -> "FeatNet":
        return cls(**config)
