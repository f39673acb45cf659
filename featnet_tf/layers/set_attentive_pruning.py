"""Set Attentive Pruning Network (SAPN), Eq. 6 and 11-13 of FeatNet (WWW'22)."""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import stacked
from featnet_tf.layers.soft_threshold import SoftThreshold, soft_threshold_of_relu

READOUTS = ("induced", "fields", "logarithmic")
# The logarithmic readout's floor on |x| (log|x| ≥ log 1e-4 ≈ −9.2) and bound
# on the exponent (e^±30 stays finite in float32 and in the towers' variance).
LOG_FLOOR = 1e-4
MAX_EXPONENT = 30.0


@keras.utils.register_keras_serializable(package="featnet_tf")
class SetAttentivePruning(keras.layers.Layer):
    """Induced-query attention with pruned scores, for every subset at once.

    For subset ``i`` with features ``X_i ∈ R^{M×D}``:

    * Eq. 6: keys ``K = X_i · W_Kᵀ``, ``W_K ∈ R^{D×D}``;
    * Eq. 11: ``Score' = ReLU(I · Kᵀ) ∈ R^{E×M}`` with learnable induced
      queries ``I ∈ R^{E×D}`` (E = number of interaction combinations);
    * Eq. 12: ``Score'' = S_g(Score')``, the soft threshold of Eq. 4;
    * Eq. 13: ``H_i = Score'' · X_i ∈ R^{E×D}``, E pruned summaries.

    The paper reads two ways after Eq. 13, and both are here, by `readout`:

    * ``"induced"``: Eq. 13 literally, ``X'_i = H_i ∈ R^{E×D}``. Each row is
      ``Σ_m c_e(x_m)·x_m``, a sum of per-field terms: no two fields meet
      inside SAPN (its second difference between two fields is zero).
    * ``"fields"``: §2.4's ``X'_i ∈ R^{M×D}``, the second stage of the
      induced attention block the paper cites ([21], ISAB): the fields query
      the E summaries, ``Q = X_i · W_Qᵀ`` (Eq. 7), ``K_H = H_i · W_Hᵀ``,
      ``A = S_g(ReLU(Q · K_Hᵀ)) ∈ R^{M×E}`` (Eq. 11-12 with the roles
      swapped) and ``X'_i = X_i + A · H_i``. Here each field is multiplied
      with summaries of the others: this is where fields interact.

    A third reading takes "each row of ``Score''`` is one interaction of the
    fields it keeps" multiplicatively, as AFN's logarithmic neurons (Cheng et
    al., AAAI 2020) do: ``"logarithmic"`` gives ``X'_i = exp(Score''·log|X_i|)
    ∈ R^{E×D}``, row e the product ``Π_m |x_m|^{Score''[e,m]}`` over the
    fields the thresholds kept (a pruned field contributes ``|x|⁰ = 1``), so
    the orders of the interactions are learned and pruned. ``|x|`` is floored
    at `LOG_FLOOR` and the exponent bounded by `MAX_EXPONENT`.

    Every subset has its own weights and thresholds; all subsets are computed
    together with `tf.einsum`. The thresholds are shared over the feature
    axis, so the layer is a set function: permuting the M features of a
    subset permutes the ``"fields"`` output the same way and leaves the
    ``"induced"`` output unchanged, and any M is accepted.

    Options the paper does not write, all off by default (the measurement is
    in BENCHMARKS.md): `scale_scores` divides ``I·Kᵀ`` by ``√D``;
    `use_value_projection` multiplies ``Score''`` with ``X_i · W_Vᵀ`` rather
    than ``X_i``; `use_layer_norm` normalises each output row over D.

    Args:
        num_queries: E, the number of induced queries. Default 16 (§3.1.4).
        initial_threshold: initial τ of the soft thresholds.
        readout: ``"induced"`` (Eq. 13, E×D per subset), ``"fields"``
            (§2.4 and ISAB, M×D per subset) or ``"logarithmic"`` (products,
            E×D per subset). Default ``"induced"``.
        scale_scores: divide scores by ``√D`` before the ReLU.
        use_value_projection: project values with a learned ``W_V``.
        use_layer_norm: layer-normalise ``X'_i`` over D.
        kernel_initializer: initializer of every ``(D, D)`` and ``(E, D)``
            matrix, subset by subset (see `stacked`).

    Input shape: ``(batch, S, M, D)`` with static S and D.
    Output: the tuple ``(X', Score'')`` of shapes ``(batch, S, E, D)`` (or
    ``(batch, S, M, D)`` with the ``"fields"`` readout) and
    ``(batch, S, E, M)``.

    Example:
        >>> sapn = SetAttentivePruning(num_queries=4)
        >>> out, scores = sapn(tf.random.normal([2, 3, 5, 8]))
        >>> out.shape, scores.shape  # (2, 3, 4, 8), (2, 3, 4, 5)
        >>> SetAttentivePruning(4, readout="fields")(tf.random.normal([2, 3, 5, 8]))[0].shape  # (2, 3, 5, 8)

    References:
        FeatNet, WWW 2022, §2.3.3 and §2.4; Lee et al., "Set Transformer",
        ICML 2019 (induced points, ISAB).
    """

    def __init__(
        self,
        num_queries: int = 16,
        initial_threshold: float = -10.0,
        readout: str = "induced",
        scale_scores: bool = False,
        use_value_projection: bool = False,
        use_layer_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_queries <= 0:
            raise ValueError(f"`num_queries` must be positive. Received: num_queries={num_queries}")
        if readout not in READOUTS:
            raise ValueError(f"`readout` must be one of {READOUTS}. Received: readout={readout!r}")
        self.num_queries = int(num_queries)
        self.initial_threshold = float(initial_threshold)
        self.readout = readout
        self.scale_scores = bool(scale_scores)
        self.use_value_projection = bool(use_value_projection)
        self.use_layer_norm = bool(use_layer_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        # One τ per (subset, query): shared over the feature axis 3.
        self.soft_threshold = SoftThreshold(initial_threshold, shared_axes=[3], name="soft_threshold")
        # One τ per (subset, summary) for the fields' readout: shared over the field axis 2.
        self.readout_threshold = (
            SoftThreshold(initial_threshold, shared_axes=[2], name="readout_threshold") if readout == "fields" else None
        )
        self.layer_norm = keras.layers.LayerNormalization(name="layer_norm") if use_layer_norm else None

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[1] is None or input_shape[3] is None:
            raise ValueError(
                f"SetAttentivePruning expects inputs (batch, S, M, D) with static S and D. Received: {input_shape}"
            )
        num_subsets, embedding_dim = input_shape[1], input_shape[3]
        self.key_kernel = self.add_weight(
            name="key_kernel",  # W_Kᵀ per subset, Eq. 6
            shape=(num_subsets, embedding_dim, embedding_dim),
            initializer=stacked(self.kernel_initializer),
        )
        self.queries = self.add_weight(
            name="queries",  # I per subset, Eq. 11
            shape=(num_subsets, self.num_queries, embedding_dim),
            initializer=stacked(self.kernel_initializer),
        )
        if self.use_value_projection:
            self.value_kernel = self.add_weight(
                name="value_kernel",
                shape=(num_subsets, embedding_dim, embedding_dim),
                initializer=stacked(self.kernel_initializer),
            )
        if self.readout == "fields":
            self.query_kernel = self.add_weight(
                name="query_kernel",  # W_Qᵀ per subset, Eq. 7
                shape=(num_subsets, embedding_dim, embedding_dim),
                initializer=stacked(self.kernel_initializer),
            )
            self.summary_key_kernel = self.add_weight(
                name="summary_key_kernel",  # W_Hᵀ per subset
                shape=(num_subsets, embedding_dim, embedding_dim),
                initializer=stacked(self.kernel_initializer),
            )
            self.readout_threshold.build(tf.TensorShape([None, num_subsets, None, self.num_queries]))
        self.soft_threshold.build(tf.TensorShape([None, num_subsets, self.num_queries, None]))
        if self.layer_norm is not None:
            self.layer_norm.build(tf.TensorShape([None, num_subsets, None, embedding_dim]))
        super().build(input_shape)

    def relu_scores(self, subsets: tf.Tensor) -> tf.Tensor:
        """``Score' = ReLU(I·Kᵀ)`` of Eq. 11 before the threshold, ``(batch, S,
        E, M)``: with `call`'s ``Score''`` it tells the entries the ReLU zeroes
        from those the threshold prunes (for analysis; `call` computes the
        same values subset-major)."""
        keys = tf.einsum("bsmd,sde->bsme", subsets, self.key_kernel)  # Eq. 6
        logits = tf.einsum("sqe,bsme->bsqm", self.queries, keys)
        if self.scale_scores:
            logits = logits / math.sqrt(subsets.shape[-1])
        return tf.nn.relu(logits)

    def call(self, subsets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # Computed subset-major, (S, batch, M, D), so that every product is one
        # batched matmul over the subsets; Eq. 6 and 11 are folded into one
        # product: I·Kᵀ = I·(X·W_Kᵀ)ᵀ = X·(W_Kᵀ·Iᵀ) with the (S, D, E) matrix
        # W_Kᵀ·Iᵀ formed once per step, not per example.
        num_subsets, num_fields, embedding_dim = subsets.shape[1], tf.shape(subsets)[2], subsets.shape[3]
        x = tf.transpose(subsets, [1, 0, 2, 3])  # (S, B, M, D)
        rows = tf.reshape(x, [num_subsets, -1, embedding_dim])  # (S, B·M, D)
        induced_keys = tf.matmul(self.key_kernel, self.queries, transpose_b=True)  # W_Kᵀ·Iᵀ, (S, D, E)
        logits = tf.matmul(rows, induced_keys)  # Eq. 6, 11 before the ReLU: (S, B·M, E)
        if self.scale_scores:
            logits = logits / math.sqrt(embedding_dim)
        logits = tf.reshape(logits, [num_subsets, -1, num_fields, self.num_queries])  # (S, B, M, E)
        tau = tf.reshape(self.soft_threshold.threshold, [num_subsets, 1, 1, self.num_queries])
        scores = soft_threshold_of_relu(logits, tau)  # Eq. 11-12
        values = x
        if self.use_value_projection:
            values = tf.reshape(tf.matmul(rows, self.value_kernel), tf.shape(x))
        if self.readout == "logarithmic":  # Π_m |x_m|^Score''[e, m]
            exponents = tf.matmul(scores, tf.math.log(tf.maximum(tf.abs(values), LOG_FLOOR)), transpose_a=True)
            summaries = tf.exp(tf.clip_by_value(exponents, -MAX_EXPONENT, MAX_EXPONENT))  # (S, B, E, D)
        else:
            summaries = tf.matmul(scores, values, transpose_a=True)  # Eq. 13: (S, B, E, D)
        interactions = summaries
        if self.readout == "fields":
            # Q·K_Hᵀ = (X·W_Qᵀ)·(H·W_Hᵀ)ᵀ = X·(W_Qᵀ·W_H)·Hᵀ
            field_queries = tf.matmul(
                rows, tf.matmul(self.query_kernel, self.summary_key_kernel, transpose_b=True)
            )  # Eq. 7
            field_queries = tf.reshape(field_queries, tf.shape(x))
            read_tau = tf.reshape(self.readout_threshold.threshold, [num_subsets, 1, 1, self.num_queries])
            reads = soft_threshold_of_relu(
                tf.matmul(field_queries, summaries, transpose_b=True), read_tau
            )  # (S, B, M, E)
            interactions = x + tf.matmul(reads, summaries)  # (S, B, M, D)
        interactions = tf.transpose(interactions, [1, 0, 2, 3])
        if self.layer_norm is not None:
            interactions = self.layer_norm(interactions)
        return interactions, tf.transpose(scores, [1, 0, 3, 2])  # Score'' as (B, S, E, M)

    def compute_output_shape(self, input_shape):
        batch, num_subsets, num_fields, embedding_dim = tf.TensorShape(input_shape).as_list()
        rows = num_fields if self.readout == "fields" else self.num_queries
        return (
            tf.TensorShape([batch, num_subsets, rows, embedding_dim]),
            tf.TensorShape([batch, num_subsets, self.num_queries, num_fields]),
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_queries=self.num_queries,
            initial_threshold=self.initial_threshold,
            readout=self.readout,
            scale_scores=self.scale_scores,
            use_value_projection=self.use_value_projection,
            use_layer_norm=self.use_layer_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
