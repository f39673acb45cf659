"""The TensorFlow floor under both featnet_tf and serving.

`serving` never imports featnet_tf (it serves any SavedModel, as TensorFlow
Serving does), and the library never imports an application; what both need
of TensorFlow lives here, once, importing nothing of either:

* `tfbase.startup`: TensorFlow's start-up notices kept off a CPU machine's terminal;
* `tfbase.versions`: the integer versions of an export base (TF Serving's layout);
* `tfbase.sessions`: a SavedModel loaded into a session and run by signature,
  as TF Serving loads and runs it;
* `tfbase.tensorflow_internals`: every private TensorFlow API the code uses,
  each behind a function that a test calls by name.

Importing the package imports nothing (not even TensorFlow).
"""
