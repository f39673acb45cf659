"""Dropout whose masks come from TensorFlow's stateless random kernels."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="featnet_tf")
class StatelessDropout(keras.layers.Dropout):
    """`keras.layers.Dropout`, drawing each mask with a stateless random op.

    The same inverted dropout: in training each value is zeroed with
    probability `rate` and the others are scaled by ``1 / (1 − rate)``; at
    inference the layer is the identity. Only the source of the mask differs.
    tf_keras' `Dropout` draws it with the stateful `RandomUniform` kernel (or
    a `tf.random.Generator`'s `uniform`), which on a CPU fills a
    ``(10, 1024, 128)`` mask in about 6 ms; TensorFlow's stateless kernel
    fills it in under 1 ms (BENCHMARKS.md). Here a `tf.random.Generator`
    only draws a fresh seed per call, and `stateless_dropout` draws the mask
    from it, so every call still gets a new mask, a seeded model gets the
    same sequence of masks, and under a `tf.distribute` strategy each
    replica gets its own stream (the generator is created in the strategy's
    scope with the layer).

    Args: as `keras.layers.Dropout` (`rate`, `noise_shape`, `seed`).
    """

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs) -> None:
        kwargs.pop("rng_type", None)  # always a generator of seeds (get_config writes it)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, rng_type="stateful", **kwargs)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.rate == 0:
            return tf.identity(inputs)
        if training is None:
            training = keras.backend.learning_phase()

        def dropped() -> tf.Tensor:
            seed = self._random_generator.make_seed_for_stateless_op()
            return tf.nn.experimental.stateless_dropout(
                inputs, self.rate, seed=seed, noise_shape=self._get_noise_shape(inputs)
            )

        return tf.__internal__.smart_cond.smart_cond(training, dropped, lambda: tf.identity(inputs))
