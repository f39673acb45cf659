"""featnet_tf: FeatNet (WWW'22) and its CTR baselines in TensorFlow/Keras.

Importing the package selects legacy Keras (tf_keras) for TensorFlow before
TensorFlow is first imported, because tensorflow-recommenders and
MirroredStrategy over string inputs need it. featnet_tf's own code imports
`tf_keras` directly, so it works even when TensorFlow was imported first.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
