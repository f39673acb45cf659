import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import featnet_tf  # noqa: E402,F401  (selects legacy Keras before TensorFlow loads)
import pytest  # noqa: E402


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
