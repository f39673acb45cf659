"""FeatNet: Feature Interaction Pruning Networks for CTR prediction (WWW'22)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Sequence

import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import FeatureSpec
from featnet_tf.layers import (
    FeatureSubsetGeneration,
    SetAttentivePruning,
    SqueezeExcitation,
    SubsetTowers,
)
from featnet_tf.layers._normalization import standardize
from featnet_tf.models.base import EmbeddingModel, deep_tower

# N(0, 1), the default of PyTorch's nn.Embedding that the paper's implementation
# used. The literal model's interactions are cubic in the embedding scale
# (p^s · Score'' · X, with both p^s and Score'' computed from X), so Keras'
# uniform(±0.05) leaves them too small to learn from unless the towers' inputs
# are normalised; BENCHMARKS.md has the measurement.
PAPER_EMBEDDINGS_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 1.0}}
# Keras' default for embeddings: small vectors generalise better once the
# towers normalise their inputs (BENCHMARKS.md, FeatNet ablation).
EMBEDDINGS_INITIALIZER = {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}}
FIELD_GATINGS = (None, "senet")


class FeatNetOutputs(NamedTuple):
    """Everything one forward pass of FeatNet computes that analysis needs.

    Attributes:
        logits: ``(batch, 1)``, the pre-sigmoid output of Eq. 15.
        subset_weights: ``p^s``, ``(batch, S, M)``: FSGN's pruned weight of
            each field in each subset (Eq. 4); zero = pruned.
        interaction_scores: ``Score''``, ``(batch, S, E, M)``: SAPN's pruned
            attention of each induced query over the fields (Eq. 12); the
            non-zero entries of a row are one learned interaction.
        subset_probabilities: ``p``, ``(batch, S, M)``: FSGN's weights before
            the threshold (Eq. 3). Where ``p > 0`` but ``p^s = 0`` the
            threshold pruned; where ``p = 0`` the ReLU did.
        relu_scores: ``Score'``, ``(batch, S, E, M)``: SAPN's scores before
            the threshold (Eq. 11), likewise.
    """

    logits: tf.Tensor
    subset_weights: tf.Tensor
    interaction_scores: tf.Tensor
    subset_probabilities: tf.Tensor
    relu_scores: tf.Tensor


@dataclasses.dataclass(frozen=True)
class FeatNetDesign:
    """How FeatNet reads the paper where it is ambiguous or measured worse as written.

    `FeatNet` always builds these defaults, the readings that measured best on
    validation data (BENCHMARKS.md, FeatNet ablation);
    `featnet_tf.models.featnet_variants` builds FeatNet with any other choice,
    and the literal paper.

    Attributes:
        readout: SAPN's output, ``"induced"`` (Eq. 13), ``"fields"`` (§2.4,
            M fields that have read the pruned interactions) or
            ``"logarithmic"`` (each row of Score'' a product of the fields it
            keeps); see `SetAttentivePruning`.
        scale_scores, use_value_projection, use_layer_norm: SAPN options the
            paper does not write (see `SetAttentivePruning`).
        normalize_tower_inputs: each tower layer-normalises its input (ε =
            1e-6), which makes Keras' small uniform embeddings learnable.
        normalize_embeddings: each field vector normalised to mean 0 and
            variance 1 over D before FSGN. FSGN's weights and SAPN's scores
            scale with the embeddings (quadratically for SAPN), so with small
            embeddings every field of a subset gets the same weight and every
            score falls under the threshold, which then prunes whole subsets
            or everything; normalised, the thresholds act on fields and scores
            at any scale.
        dnn_batch_norm: batch-normalise the hidden layers of the DNN beside
            the towers (as AFN's MLP).
        dnn_batch_norm_momentum: that batch normalisation's momentum (see `MLP`).
        use_linear: a first-order term ``w_0 + Σ w(x_i)`` added to the logit.
        field_gating: ``None``, or ``"senet"``: every field vector re-weighted,
            per row, by a SENET gate on the raw embeddings (`SqueezeExcitation`
            with a centred sigmoid, so it starts as the identity) before FSGN
            and the DNN read them.
    """

    readout: str = "induced"
    scale_scores: bool = False
    use_value_projection: bool = False
    use_layer_norm: bool = False
    normalize_tower_inputs: bool = True
    normalize_embeddings: bool = True
    dnn_batch_norm: bool = True
    dnn_batch_norm_momentum: float = 0.99
    use_linear: bool = False
    field_gating: str | None = None

    def __post_init__(self) -> None:
        if self.field_gating not in FIELD_GATINGS:
            raise ValueError(
                f"`field_gating` must be one of {FIELD_GATINGS}. Received: field_gating={self.field_gating!r}"
            )


@keras.utils.register_keras_serializable(package="featnet_tf")
class FeatNet(EmbeddingModel):
    """FeatNet: embeddings → FSGN → SAPN → per-subset towers → logit.

    * Eq. 1: `FieldEmbedding` gives ``x ∈ R^{B×M×D}``;
    * Eq. 2-5: `FeatureSubsetGeneration` gives S pruned, re-weighted subsets;
    * Eq. 6, 11-13: `SetAttentivePruning` gives per subset E pruned
      interactions (Eq. 13);
    * Eq. 14: one MLP tower per subset on its squeezed ``E·D`` interactions;
    * Eq. 15: the towers' outputs are concatenated into ``h`` and
      ``logit = W_oᵀ h + b``; ``p̂ = σ(logit)``.

    Beside the paper's arguments, FeatNet takes the readings that measured best
    on validation data (BENCHMARKS.md, FeatNet ablation): `FeatNetDesign`'s
    defaults (field vectors and tower inputs normalised, the DNN's hidden
    layers batch-normalised), dropout 0.2 in the towers and the DNN, a DNN
    (400, 400) over the field vectors (as FSGN reads them) beside the towers,
    its logit added to Eq. 15's (as DeepFM, xDeepFM and AutoInt+ have), and
    thresholds that start where they prune (τ = −3, ``sigmoid(τ) ≈ 0.047``;
    from −10 Adam does not move τ far enough in a run to prune anything).
    `featnet_tf.models.featnet_variants` builds every other reading and the
    literal paper (`featnet_eq13`).

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
        fsgn_initial_threshold: initial τ of FSGN's soft threshold. Default −3.
        sapn_initial_threshold: initial τ of SAPN's soft threshold(s). Default −3.
        dropout: dropout rate in the towers and the DNN. Default 0.2.
        dnn_units: widths of the DNN whose logit is added; empty for none.
            Default (400, 400).
        embeddings_initializer: initializer of the field embeddings.
            Default uniform(±0.05) (`EMBEDDINGS_INITIALIZER`); the paper's
            implementation used N(0, 1) (`PAPER_EMBEDDINGS_INITIALIZER`).
        embeddings_regularizer: optional regularizer of the id tables.

    Input: a dict from field name to indexed input (see `FieldEmbedding`).
    Output: logits of shape ``(batch, 1)``.

    Example:
        >>> model = FeatNet(spec)  # D=16, S=10, r=4, E=16, towers 3×128 (§3.1.4)
        >>> model.explain(batch).subset_weights  # FSGN's p^s, (batch, S, M)

    References:
        Yin et al., "FeatNet: Feature Interaction Pruning Networks for CTR
        Prediction", WWW 2022.
    """

    design = FeatNetDesign()  # `featnet_variants.FeatNetVariant` sets its own, per instance

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: int = 16,
        num_subsets: int = 10,
        expand_ratio: int = 4,
        num_queries: int = 16,
        tower_units: Sequence[int] = (128, 128, 128),
        fsgn_initial_threshold: float = -3.0,
        sapn_initial_threshold: float = -3.0,
        dropout: float = 0.2,
        dnn_units: Sequence[int] = (400, 400),
        embeddings_initializer: Any = EMBEDDINGS_INITIALIZER,
        embeddings_regularizer: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(feature_spec, embedding_dim, embeddings_regularizer, embeddings_initializer, **kwargs)
        design = self.design
        self.num_subsets = int(num_subsets)
        self.expand_ratio = int(expand_ratio)
        self.num_queries = int(num_queries)
        self.tower_units = tuple(int(units) for units in tower_units)
        self.fsgn_initial_threshold = float(fsgn_initial_threshold)
        self.sapn_initial_threshold = float(sapn_initial_threshold)
        self.dropout = float(dropout)
        self.dnn_units = tuple(int(units) for units in dnn_units)

        # === Layers === (`field_embedding`, Eq. 1, is `EmbeddingModel`'s)
        self.subset_generation = FeatureSubsetGeneration(
            num_subsets,
            expand_ratio,
            initial_threshold=fsgn_initial_threshold,
            name="subset_generation",
        )
        self.attentive_pruning = SetAttentivePruning(
            num_queries,
            initial_threshold=sapn_initial_threshold,
            readout=design.readout,
            scale_scores=design.scale_scores,
            use_value_projection=design.use_value_projection,
            use_layer_norm=design.use_layer_norm,
            name="attentive_pruning",
        )
        self.towers = SubsetTowers(
            self.tower_units, dropout=dropout, normalize_inputs=design.normalize_tower_inputs, name="towers"
        )
        self.output_layer = keras.layers.Dense(1, name="logit")
        self.dnn = None
        if dnn_units:
            self.dnn = deep_tower(
                self.dnn_units,
                self.dropout,
                design.dnn_batch_norm,
                name="dnn",
                batch_norm_momentum=design.dnn_batch_norm_momentum,
            )
        self.linear = self.linear_term() if design.use_linear else None
        self.field_gate = (
            SqueezeExcitation(excitation="sigmoid", name="field_gate") if design.field_gating == "senet" else None
        )

    # === Forward ===

    def _forward(self, inputs: Mapping[str, tf.Tensor], training: bool | None) -> tuple[tf.Tensor, ...]:
        """Eq. 1-15: the logits, and what `explain` reads beside them (FSGN's
        input, the subsets, ``p^s`` and ``Score''``)."""
        embeddings = self.field_embedding(inputs)  # Eq. 1
        x = standardize(embeddings) if self.design.normalize_embeddings else embeddings
        if self.field_gate is not None:
            x = x * self.field_gate.field_weights(embeddings)[:, :, None]
        subsets, subset_weights = self.subset_generation(x)  # Eq. 2-5
        interactions, scores = self.attentive_pruning(subsets)  # Eq. 6, 11-13
        rows = interactions.shape[2]  # E (Eq. 13) or M (§2.4)
        squeezed = tf.reshape(interactions, [-1, self.num_subsets, rows * self.embedding_dim])
        towers = self.towers(squeezed, training=training)  # Eq. 14
        h = tf.reshape(towers, [-1, self.num_subsets * self.tower_units[-1]])
        logits = self.output_layer(h)  # Eq. 15, before the sigmoid
        if self.dnn is not None:
            num_fields = self.feature_spec.num_fields
            logits += self.dnn(tf.reshape(x, [-1, num_fields * self.embedding_dim]), training=training)
        if self.linear is not None:
            logits += self.linear(inputs)
        return logits, x, subsets, subset_weights, scores

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self._forward(inputs, training)[0]

    def explain(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> FeatNetOutputs:
        """One forward pass returning the logits, both pruning tensors, and
        both before their thresholds (computed here only, not in `call`)."""
        logits, x, subsets, subset_weights, scores = self._forward(inputs, training)
        probabilities = self.subset_generation.probabilities(x)
        relu_scores = self.attentive_pruning.relu_scores(subsets)
        return FeatNetOutputs(logits, subset_weights, scores, probabilities, relu_scores)

    # === Config ===

    def _config(self) -> dict[str, Any]:
        return {
            "num_subsets": self.num_subsets,
            "expand_ratio": self.expand_ratio,
            "num_queries": self.num_queries,
            "tower_units": list(self.tower_units),
            "fsgn_initial_threshold": self.fsgn_initial_threshold,
            "sapn_initial_threshold": self.sapn_initial_threshold,
            "dropout": self.dropout,
            "dnn_units": list(self.dnn_units),
        }
