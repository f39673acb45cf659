"""Every private TensorFlow / tf_keras API the code uses still works, each named by its test.

The code reaches them only through `tfbase.tensorflow_internals` and
`featnet_tf._keras_internals`; a TensorFlow or tf_keras upgrade that removes
or moves one fails the test below that names it.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from featnet_tf import _keras_internals
from tfbase import tensorflow_internals

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUARANTINE = {"tfbase/tensorflow_internals.py", "featnet_tf/_keras_internals.py"}


def test_session_make_callable_from_options_runs_a_graph_by_tensor_names():
    from tensorflow.core.protobuf import config_pb2

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        tf.multiply(x, 2.0, name="y")
    with tf.compat.v1.Session(graph=graph) as session:
        call = tensorflow_internals.make_callable(session, config_pb2.CallableOptions(feed=["x:0"], fetch=["y:0"]))
        np.testing.assert_array_equal(call(np.array([1.0, 2.0], np.float32))[0], [2.0, 4.0])


def test_deprecation_silence_is_a_context_manager():
    with tensorflow_internals.deprecations_silenced():
        pass


def test_op_def_registry_knows_stock_ops_and_not_invented_ones():
    assert tensorflow_internals.is_registered_op("MatMul")
    assert not tensorflow_internals.is_registered_op("NoSuchOpAnywhere")


def test_coordination_service_modules_are_where_multi_worker_strategy_finds_them():
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # noqa: F401
    from tensorflow.python.distribute.multi_worker_util import coordination_leader
    from tensorflow.python.eager import context

    assert coordination_leader(tf.train.ClusterSpec({"worker": ["localhost:1", "localhost:2"]})).endswith("task:0")
    assert callable(context.context().configure_coordination_service) and callable(context.context().wait_at_barrier)


def test_adam_keeps_its_moments_where_adam_slots_reads_them():
    variable = tf.Variable([1.0, 2.0])
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.apply_gradients([(tf.constant([1.0, -1.0]), variable)])
    m, v = _keras_internals.adam_slots(optimizer, variable)
    np.testing.assert_allclose(m.numpy(), [0.1, -0.1], rtol=1e-6)  # (1 - β₁)·g
    np.testing.assert_allclose(v.numpy(), [0.001, 0.001], rtol=1e-5)  # (1 - β₂)·g²


def test_backup_and_restore_keeps_the_batch_it_records_in_its_training_state(tmp_path):
    callback = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=1)
    callback.set_model(keras.Sequential([keras.layers.Dense(1)]))
    callback.on_train_begin()
    _keras_internals.record_backup_batch(callback, 7)
    assert int(callback._training_state._ckpt_saved_batch.numpy()) == 7


def test_keras_option_scope_turns_off_keras_call_traces(tmp_path):
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    with _keras_internals.without_keras_traces():
        tf.saved_model.save(model, str(tmp_path / "plain"))
    assert (tmp_path / "plain" / "saved_model.pb").exists()


@pytest.mark.parametrize("package", ["tfbase", "featnet_tf", "pipelines", "serving", "demo", "benchmarks"])
def test_no_other_module_reaches_a_private_framework_api(package):
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if str(path.relative_to(ROOT)) in QUARANTINE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            private = [m for m in modules if m.startswith(("tensorflow.python", "tf_keras.src", "keras.src"))]
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {m}" for m in private]
            if isinstance(node, ast.Attribute) and node.attr in (
                "_make_callable_from_options",
                "_training_state",
                "_index_dict",
                "_momentums",
                "_velocities",
                "_maybe_build",
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert found == []
