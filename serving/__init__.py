"""Online serving: a TF-Serving-compatible gRPC server, its client and a load test.

Depends on TensorFlow, tensorflow-serving-api and `tfbase` (the TensorFlow
floor it shares with featnet_tf) only, never on featnet_tf: it serves any
SavedModel, as TensorFlow Serving does. Importing it keeps TensorFlow's
start-up notices off the terminal (`tfbase.startup`).
"""

from tfbase import startup

startup.install()
