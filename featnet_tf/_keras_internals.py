"""The private tf_keras APIs featnet_tf relies on, gathered here and nowhere else.

Each has no public equivalent in tf_keras 2.21. `tests/test_framework_internals.py`
calls every one of them against the installed tf_keras, so an upgrade that
removes or renames one fails a test that names it, not a training run.

* `adam_slots`: an Adam optimizer's first and second moment of one variable
  (`featnet_tf.optimizers` updates them in place with fused or row-wise ops);
* `record_backup_batch`: the step `BackupAndRestore` writes into its backup
  (`featnet_tf.callbacks.BackupAndRestore`, right with several steps per
  execution);
* `without_keras_traces`: `tf.saved_model.save` without Keras' traces of every
  layer's `call`, which only Keras' own loader reads (`featnet_tf.saved_model`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf
import tf_keras as keras


def adam_slots(optimizer: keras.optimizers.Adam, variable: tf.Variable) -> tuple[tf.Variable, tf.Variable]:
    """``(m, v)``: the moments `optimizer` keeps for `variable`."""
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return optimizer._momentums[index], optimizer._velocities[index]


def record_backup_batch(callback: keras.callbacks.BackupAndRestore, batch: int) -> None:
    """Makes `callback`'s next backup record `batch` as the last finished batch of the epoch."""
    callback._training_state._ckpt_saved_batch.assign(batch)


@contextlib.contextmanager
def without_keras_traces() -> Iterator[None]:
    """Inside the block, `tf.saved_model.save` of Keras objects skips Keras' own call traces."""
    from tf_keras.src.saving.legacy.saved_model import utils

    with utils.keras_option_scope(save_traces=False):
        yield
