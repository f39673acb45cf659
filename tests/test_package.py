"""The package sets up legacy Keras itself and imports in a fresh interpreter."""

import os
import subprocess
import sys
import textwrap


def run_without_keras_variable(code: str) -> str:
    """Runs `code` in a new interpreter whose environment lacks TF_USE_LEGACY_KERAS."""
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_import_selects_tf_keras_without_any_variable_set():
    output = run_without_keras_variable(
        """
        import featnet_tf
        import tensorflow as tf, tf_keras, tensorflow_recommenders as tfrs
        assert tf.keras.layers.Dense is tf_keras.layers.Dense, tf.keras
        assert issubclass(tfrs.layers.dcn.Cross, tf_keras.layers.Layer)
        print("ok")
        """
    )
    assert output == "ok"


def test_models_work_when_tensorflow_was_imported_first():
    output = run_without_keras_variable(
        """
        import tensorflow as tf  # Keras 3 behind tf.keras in this process
        import featnet_tf
        from featnet_tf.features import FeatureSpec, Field
        from featnet_tf.models import FeatNet
        spec = FeatureSpec((Field("a", "categorical", vocabulary_size=3), Field("b", "categorical", vocabulary_size=3)))
        model = FeatNet(spec, num_subsets=2, num_queries=2, tower_units=(4,))
        print(tuple(model({"a": tf.constant([2, 3]), "b": tf.constant([0, 4])}).shape))
        """
    )
    assert output == "(2, 1)"
