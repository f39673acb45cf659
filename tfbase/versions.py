"""The versions of an export base, as TensorFlow Serving lays them out.

A model base path holds one directory per version, named by a positive
integer (``<base>/1/``, ``<base>/2/``); anything else there (a hidden staging
directory of an export in progress, a ``.last_version`` record) is not a
version. Local paths and URLs (``gs://``) alike, through `tf.io.gfile`.
"""

from __future__ import annotations

import os

import tensorflow as tf


def list_versions(base_path: str) -> list[int]:
    """The integer version directories under `base_path`, ascending (none when it does not exist)."""
    if not tf.io.gfile.isdir(base_path):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(base_path) if name.rstrip("/").isdigit())


def latest_version_dir(model: str) -> str:
    """`model` itself when it holds a SavedModel, else its newest integer
    version that does: what a batch job or TF Serving's ``latest`` policy serves."""
    if tf.io.gfile.exists(os.path.join(model, "saved_model.pb")):
        return model
    found = [
        version
        for version in list_versions(model)
        if tf.io.gfile.exists(os.path.join(model, str(version), "saved_model.pb"))
    ]
    if not found:
        raise ValueError(f"{model} holds neither saved_model.pb nor integer version directories with one")
    return os.path.join(model, str(found[-1]))
