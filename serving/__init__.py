"""Online serving: a TF-Serving-compatible gRPC server, its client and a load test.

Depends on TensorFlow and tensorflow-serving-api only, never on featnet_tf:
it serves any SavedModel, as TensorFlow Serving does. Importing it keeps
TensorFlow's start-up notices off the terminal (`serving._tensorflow_startup`).
"""

from serving import _tensorflow_startup

_tensorflow_startup.install()
