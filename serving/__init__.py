"""Online serving: a TF-Serving-compatible gRPC server, its client and a load test.

Depends on TensorFlow and tensorflow-serving-api only, never on featnet_tf:
it serves any SavedModel, as TensorFlow Serving does.
"""
