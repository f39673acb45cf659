"""Set Attentive Pruning Network (SAPN), Eq. 6 and 11-13 of FeatNet (WWW'22)."""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh
from featnet_tf.layers.soft_threshold import SoftThreshold


@keras.utils.register_keras_serializable(package="featnet_tf")
class SetAttentivePruning(keras.layers.Layer):
    """Induced-query attention with pruned scores, for every subset at once.

    For subset ``i`` with features ``X_i ∈ R^{M×D}``:

    * Eq. 6: keys ``K = X_i · W_Kᵀ``, ``W_K ∈ R^{D×D}``;
    * Eq. 11: ``Score' = ReLU(I · Kᵀ) ∈ R^{E×M}`` with learnable induced
      queries ``I ∈ R^{E×D}`` (E = number of interaction combinations);
    * Eq. 12: ``Score'' = S_g(Score')``, the soft threshold of Eq. 4;
    * Eq. 13: ``X'_i = Score'' · X_i ∈ R^{E×D}``.

    Every subset has its own ``W_K``, ``I`` and thresholds; all subsets are
    computed together with `tf.einsum`. The thresholds are one τ per
    (subset, query), shared over the features, so the layer is a set function:
    permuting the M features of a subset leaves its output unchanged, and it
    accepts any M.

    Options the paper does not write, all off by default (the measurement is
    in BENCHMARKS.md): `scale_scores` divides ``I·Kᵀ`` by ``√D``;
    `use_value_projection` multiplies ``Score''`` with ``X_i · W_Vᵀ`` rather
    than ``X_i``; `use_layer_norm` normalises each output row over D.

    Args:
        num_queries: E, the number of induced queries. Default 16 (§3.1.4).
        initial_threshold: initial τ of the soft threshold.
        scale_scores: divide scores by ``√D`` before the ReLU.
        use_value_projection: project values with a learned ``W_V``.
        use_layer_norm: layer-normalise ``X'_i`` over D.
        kernel_initializer: initializer of ``W_K``, ``I`` (and ``W_V``).

    Input shape: ``(batch, S, M, D)`` with static S and D.
    Output: the tuple ``(X', Score'')`` of shapes ``(batch, S, E, D)`` and
    ``(batch, S, E, M)``.

    Example:
        >>> sapn = SetAttentivePruning(num_queries=4)
        >>> out, scores = sapn(tf.random.normal([2, 3, 5, 8]))
        >>> out.shape, scores.shape  # (2, 3, 4, 8), (2, 3, 4, 5)

    References:
        FeatNet, WWW 2022, §2.3.3; Lee et al., "Set Transformer", ICML 2019
        (induced points).
    """

    def __init__(
        self,
        num_queries: int = 16,
        initial_threshold: float = -10.0,
        scale_scores: bool = False,
        use_value_projection: bool = False,
        use_layer_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_queries <= 0:
            raise ValueError(f"`num_queries` must be positive. Received: num_queries={num_queries}")
        self.num_queries = int(num_queries)
        self.initial_threshold = float(initial_threshold)
        self.scale_scores = bool(scale_scores)
        self.use_value_projection = bool(use_value_projection)
        self.use_layer_norm = bool(use_layer_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        # One τ per (subset, query): shared over the feature axis 3.
        self.soft_threshold = SoftThreshold(initial_threshold, shared_axes=[3], name="soft_threshold")
        self.layer_norm = keras.layers.LayerNormalization(name="layer_norm") if use_layer_norm else None

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[1] is None or input_shape[3] is None:
            raise ValueError(
                "SetAttentivePruning expects inputs (batch, S, M, D) with static S and D. "
                f"Received: {input_shape}"
            )
        num_subsets, embedding_dim = input_shape[1], input_shape[3]
        self.key_kernel = self.add_weight(
            name="key_kernel",  # W_Kᵀ per subset, Eq. 6
            shape=(num_subsets, embedding_dim, embedding_dim),
            initializer=fresh(self.kernel_initializer),
        )
        self.queries = self.add_weight(
            name="queries",  # I per subset, Eq. 11
            shape=(num_subsets, self.num_queries, embedding_dim),
            initializer=fresh(self.kernel_initializer),
        )
        if self.use_value_projection:
            self.value_kernel = self.add_weight(
                name="value_kernel",
                shape=(num_subsets, embedding_dim, embedding_dim),
                initializer=fresh(self.kernel_initializer),
            )
        self.soft_threshold.build(tf.TensorShape([None, num_subsets, self.num_queries, None]))
        if self.layer_norm is not None:
            self.layer_norm.build(tf.TensorShape([None, num_subsets, self.num_queries, embedding_dim]))
        super().build(input_shape)

    def call(self, subsets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        keys = tf.einsum("bsmd,sde->bsme", subsets, self.key_kernel)  # Eq. 6
        logits = tf.einsum("sqe,bsme->bsqm", self.queries, keys)
        if self.scale_scores:
            logits = logits / math.sqrt(subsets.shape[-1])
        scores = self.soft_threshold(tf.nn.relu(logits))  # Eq. 11-12
        values = subsets
        if self.use_value_projection:
            values = tf.einsum("bsmd,sde->bsme", subsets, self.value_kernel)
        interactions = tf.einsum("bsqm,bsmd->bsqd", scores, values)  # Eq. 13
        if self.layer_norm is not None:
            interactions = self.layer_norm(interactions)
        return interactions, scores

    def compute_output_shape(self, input_shape):
        batch, num_subsets, num_fields, embedding_dim = tf.TensorShape(input_shape).as_list()
        return (
            tf.TensorShape([batch, num_subsets, self.num_queries, embedding_dim]),
            tf.TensorShape([batch, num_subsets, self.num_queries, num_fields]),
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_queries=self.num_queries,
            initial_threshold=self.initial_threshold,
            scale_scores=self.scale_scores,
            use_value_projection=self.use_value_projection,
            use_layer_norm=self.use_layer_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
