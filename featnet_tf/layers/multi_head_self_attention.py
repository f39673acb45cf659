"""The interacting layer of AutoInt (Song et al., CIKM 2019)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf.layers._initializers import fresh, stacked


@keras.utils.register_keras_serializable(package="featnet_tf")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention over fields with a residual (AutoInt Eq. 5-8).

    Per head h: ``α_{m,k} = softmax_k(<W_Q e_m, W_K e_k>)``,
    ``ẽ_m^h = Σ_k α_{m,k} W_V e_k``; heads are concatenated and
    ``e_m^Res = ReLU(ẽ_m ⊕ W_Res e_m)``.

    Args:
        num_heads: attention heads. Default 2.
        head_dim: d′, the size of each head. Default 32 (outputs 64 wide).
        use_residual: add ``W_Res e_m`` before the ReLU. Default True.

    Input shape: ``(batch, M, D)``. Output: ``(batch, M, num_heads·head_dim)``.

    References:
        Song et al., "AutoInt: Automatic Feature Interaction Learning via
        Self-Attentive Neural Networks", CIKM 2019, §4.3.
    """

    def __init__(self, num_heads: int = 2, head_dim: int = 32, use_residual: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_heads <= 0 or head_dim <= 0:
            raise ValueError(
                f"`num_heads` and `head_dim` must be positive. Received: num_heads={num_heads}, head_dim={head_dim}"
            )
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.use_residual = bool(use_residual)

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = int(input_shape[2])
        shape = (self.num_heads, dim, self.head_dim)  # one (D, d') matrix per head, initialised alone
        self.query_kernel = self.add_weight(name="query_kernel", shape=shape, initializer=stacked("glorot_uniform"))
        self.key_kernel = self.add_weight(name="key_kernel", shape=shape, initializer=stacked("glorot_uniform"))
        self.value_kernel = self.add_weight(name="value_kernel", shape=shape, initializer=stacked("glorot_uniform"))
        if self.use_residual:
            self.residual_kernel = self.add_weight(
                name="residual_kernel", shape=(dim, self.num_heads * self.head_dim), initializer=fresh("glorot_uniform")
            )
        super().build(input_shape)

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        queries = tf.einsum("bmd,hdk->bhmk", embeddings, self.query_kernel)
        keys = tf.einsum("bmd,hdk->bhmk", embeddings, self.key_kernel)
        values = tf.einsum("bmd,hdk->bhmk", embeddings, self.value_kernel)
        attention = tf.nn.softmax(tf.einsum("bhmk,bhnk->bhmn", queries, keys), axis=-1)
        heads = tf.einsum("bhmn,bhnk->bmhk", attention, values)
        output = tf.reshape(heads, [-1, embeddings.shape[1], self.num_heads * self.head_dim])
        if self.use_residual:
            output = output + tf.einsum("bmd,do->bmo", embeddings, self.residual_kernel)
        return tf.nn.relu(output)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, use_residual=self.use_residual)
        return config
