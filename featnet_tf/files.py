"""Reading and writing a run's files, whole or not at all, on any file system.

A file written in place is truncated first: a kill, or a full disk, in the
middle leaves half a JSON document that every later reader (a resumed run,
`evaluate`, `analyze`) then fails on. `write_atomically` writes a temporary
file beside the target and renames it over the target: readers see the old
file or the new one.

A local path is written with `os` (flushed to disk before the rename, which
POSIX makes atomic); a URL (``gs://``, ``ram://``, ``hdfs://``: anything with
a scheme) through `tf.io.gfile`, so that a run directory on a bucket works as
a local one does. TensorFlow is imported only for a URL: the config schema,
which writes through this module, stays free of it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any


def is_url(path: str) -> bool:
    """Whether `path` names a file system by its scheme (``gs://...``) rather than a local path."""
    return "://" in path


def write_atomically(path: str, text: str) -> None:
    """Replaces `path` with `text` in one rename."""
    if is_url(path):
        _write_atomically_with_gfile(path, text)
        return
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _write_atomically_with_gfile(path: str, text: str) -> None:
    import tensorflow as tf

    directory, name = path.rsplit("/", 1)
    temporary = f"{directory}/.{name}.{uuid.uuid4().hex}"
    try:
        with tf.io.gfile.GFile(temporary, "w") as stream:
            stream.write(text)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


def read_text(path: str) -> str:
    """The whole of a local file or a URL's, as UTF-8 text."""
    if not is_url(path):
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as stream:
        return stream.read()


def write_json(path: str, value: Any, **options: Any) -> None:
    """`value` as indented JSON, written atomically."""
    write_atomically(path, json.dumps(value, indent=2, **options) + "\n")


def read_json(path: str) -> Any:
    return json.loads(read_text(path))
