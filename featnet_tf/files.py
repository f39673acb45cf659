"""Writing a run's files whole or not at all.

A file written in place is truncated first: a kill, or a full disk, in the
middle leaves half a JSON document that every later reader (a resumed run,
`evaluate`, `analyze`) then fails on. `write_atomically` writes a temporary
file beside the target, flushes it to disk and renames it over the target,
which POSIX makes atomic: readers see the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_atomically(path: str, text: str) -> None:
    """Replaces `path` with `text` in one rename (a local path)."""
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


def write_json(path: str, value: Any, **options: Any) -> None:
    """`value` as indented JSON, written atomically."""
    write_atomically(path, json.dumps(value, indent=2, **options) + "\n")
