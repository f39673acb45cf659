"""Fixtures shared by the whole suite.

Training and preprocessing dominate the suite's time on 2 cores, so the
modules that need prepared data, a trained run or an export share one of each
(session-scoped): 20,000 generated Criteo-format rows, a tiny FeatNet trained
on them for 30 steps, and its servability-checked export. A test that changes
what it is given works on its own copy.
"""

import os

import pytest

import featnet_tf  # noqa: F401  (selects legacy Keras before TensorFlow loads)


@pytest.fixture(autouse=True)
def _seeded():
    import tf_keras as keras

    keras.utils.set_random_seed(1234)
    yield


def sample_data_dir() -> str | None:
    """The shared real CTR samples, or None where they are absent."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("FEATNET_SAMPLE_DATA", os.path.join(here, "..", "..", "shared", "data"))
    return path if os.path.isdir(path) else None


@pytest.fixture(scope="session")
def criteo_data(tmp_path_factory) -> str:
    """A `pipelines.preprocess` output of 20,000 generated Criteo-format rows (vocabulary min count 2)."""
    from tests.helpers import prepared_criteo

    return prepared_criteo(str(tmp_path_factory.mktemp("criteo")), rows=20_000, seed=3, min_count=2)[1]


@pytest.fixture(scope="session")
def tiny_run(criteo_data, tmp_path_factory):
    """A tiny FeatNet trained 30 steps on `criteo_data`, saved as a run
    directory (``config.yaml``, ``checkpoints/best``) that the commands load."""
    from featnet_tf import config as config_lib
    from featnet_tf import training
    from tests.helpers import tiny_trained_run

    run = tiny_trained_run(criteo_data, str(tmp_path_factory.mktemp("tiny_run")))
    run.model.save_weights(run.path(training.BEST_WEIGHTS))
    config_lib.save(run.config, run.path(training.CONFIG_FILE))
    return run


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> str:
    """`tiny_run` exported as version 1 and checked servable; copy it before changing its base."""
    from featnet_tf import lifecycle

    path = lifecycle.export_run(tiny_run, str(tmp_path_factory.mktemp("tiny_export") / "featnet")).path
    return path
