"""The second-order term of a factorization machine (Rendle, ICDM 2010)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="featnet_tf")
class FactorizationMachine(keras.layers.Layer):
    """``Σ_{i<j} <v_i, v_j> = ½ Σ_d [(Σ_i v_id)² − Σ_i v_id²]`` in O(M·D).

    Input shape: ``(batch, M, D)`` field embeddings. Output: ``(batch, 1)``.

    Example:
        >>> FactorizationMachine()(tf.ones([2, 3, 4]))  # 3 pairs × 4 = 12 each

    References:
        Rendle, "Factorization Machines", ICDM 2010, Eq. 1 and Lemma 3.1;
        Guo et al., "DeepFM", IJCAI 2017, Eq. 2.
    """

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        square_of_sum = tf.square(tf.reduce_sum(embeddings, axis=1))
        sum_of_squares = tf.reduce_sum(tf.square(embeddings), axis=1)
        return 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 1])
