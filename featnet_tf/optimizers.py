"""Optimizers for models whose parameters are mostly embedding rows.

A batch of 1024 Criteo rows reads 1024 × 39 rows of a table of ~1M rows, and
the gradient of the table reaches the optimizer as an `tf.IndexedSlices` of
those rows alone. Adam, as written, still changes every row of the table each
step: both moments of every row decay, and every row moves by its decayed
first moment. tf_keras' `Adam` does that with about ten whole-table
operations, each allocating a temporary the size of the table (BENCHMARKS.md,
"Where a step goes"). Two answers:

* `FusedAdam`: the same update, exactly, in one pass of TensorFlow's fused,
  in-place `ApplyAdam` kernel (what TF1's `AdamOptimizer` ran);
* `LazyAdam`: Adam on the rows the batch read only, as TensorFlow Addons'
  `LazyAdam` and TF1's `LazyAdamOptimizer` did; its cost does not grow with
  the table, but it is another optimizer (BENCHMARKS.md has what it does to
  AUC).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from featnet_tf._keras_internals import adam_slots
from featnet_tf.config import OPTIMIZERS


@keras.utils.register_keras_serializable(package="featnet_tf")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`'s update computed by the fused `ApplyAdam` kernel.

    For every variable, dense or embedding table alike::

        m ← m + (1 − β₁)·(g − m)
        v ← v + (1 − β₂)·(g² − v)
        θ ← θ − lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)

    which is Keras' Adam (without `amsgrad` and `adaptive_epsilon`), in one
    multi-threaded, in-place pass over ``θ, m, v`` instead of a chain of
    whole-table operations with a temporary each. An embedding's sparse
    gradient is first scattered into a dense one (zero for the rows the batch
    did not read), so every row's moments decay as Adam's do.
    """

    def __init__(self, *args, **kwargs) -> None:
        for option in ("amsgrad", "adaptive_epsilon"):
            if kwargs.get(option):
                raise ValueError(f"FusedAdam does not support `{option}=True`; use keras.optimizers.Adam.")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.math.unsorted_segment_sum(gradient.values, gradient.indices, tf.shape(variable)[0])
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        m, v = adam_slots(self, variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
        )


@keras.utils.register_keras_serializable(package="featnet_tf")
class LazyAdam(FusedAdam):
    """Adam whose sparse (embedding) updates touch only the rows of the batch.

    Dense gradients get `FusedAdam`'s update (Keras' Adam). For a
    sparse gradient ``g`` of rows ``R`` (duplicates already summed by the
    base optimizer), only those rows change::

        m[R] ← β₁·m[R] + (1 − β₁)·g
        v[R] ← β₂·v[R] + (1 − β₂)·g²
        θ[R] ← θ[R] − α_t · m[R] / (√v[R] + ε)

    with Adam's bias-corrected step ``α_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)`` of the
    global step ``t``. Rows a batch did not read keep their moments and their
    values, where Adam would decay the moments and keep moving the row by its
    stale first moment: the two differ by design (BENCHMARKS.md has what it
    does to AUC). The cost of a step no longer grows with the table.

    `amsgrad` and `adaptive_epsilon` are not supported, as in `FusedAdam`.
    """

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        m, v = adam_slots(self, variable)
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def build_optimizer(name: str, learning_rate, global_clipnorm: float | None = None) -> keras.optimizers.Optimizer:
    """``adam`` (`FusedAdam`: Adam, exactly) or ``lazy_adam`` (`LazyAdam`), at
    `learning_rate` (a float or a schedule), the gradients clipped to
    `global_clipnorm` (Keras' own clipping, before the update) when given."""
    if name == "adam":
        return FusedAdam(learning_rate, global_clipnorm=global_clipnorm)
    if name == "lazy_adam":
        return LazyAdam(learning_rate, global_clipnorm=global_clipnorm)
    raise ValueError(f"Unknown optimizer {name!r}. Expected one of {OPTIMIZERS}.")
