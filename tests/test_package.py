"""The package sets up legacy Keras itself and imports in a fresh interpreter."""

import os
import subprocess
import sys
import textwrap

UNSET_BY_THE_USER = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "FEATNET_TF_QUIET_STARTUP")


def run_without_keras_variable(code: str, quiet: bool = True) -> str:
    """Runs `code` in a new interpreter whose environment lacks TF_USE_LEGACY_KERAS
    (and any log level); with `quiet`, TensorFlow's start-up notices must stay off its stderr."""
    env = {key: value for key, value in os.environ.items() if key not in UNSET_BY_THE_USER}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if quiet:
        assert "cudart_stub" not in result.stderr and "cuInit" not in result.stderr, result.stderr[-3000:]
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
        """,
        quiet=False,  # TensorFlow came first: its notices are out before featnet_tf can act
    )
    assert output == "(2, 1)"


def test_the_code_passes_the_lint_with_its_120_character_lines():
    """`ruff check` (pycodestyle errors with E501 at 120, pyflakes, import order) and
    `ruff format --check`, as configured in pyproject.toml, over the whole repository."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for command in (["check", "--output-format", "concise"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, root], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def run_command(code: str, env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key, value in env_changes.items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


QUIET_STARTUP = """
    import {package}
    import tensorflow as tf
    print(len(tf.config.list_physical_devices("CPU")))
"""


def test_commands_keep_tensorflows_start_up_notices_off_the_terminal_unless_the_user_sets_a_level():
    user_unset = {"TF_CPP_MIN_LOG_LEVEL": None, "FEATNET_TF_QUIET_STARTUP": None}
    quiet = run_command(QUIET_STARTUP.format(package="serving"), user_unset)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "1", quiet.stderr[-2000:]
    assert "cudart_stub" not in quiet.stderr and "cuInit" not in quiet.stderr, quiet.stderr
    chosen = run_command(QUIET_STARTUP.format(package="featnet_tf"), {**user_unset, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert chosen.returncode == 0 and "cpu_feature_guard" in chosen.stderr  # the user's level is theirs
