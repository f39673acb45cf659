"""A pipeline's output directory appears whole, or not at all.

`pipelines.preprocess` writes into a staging directory beside the output
(``<output_dir>.staging-<id>``) and `publish` moves it into place only after
the run has passed every check. A run that fails, is killed, or exceeds its
bad-row budget leaves no ``feature_spec.json``, shards or vocabularies where
consumers look; a rerun never mixes its shards with an earlier run's.

On a local disk the move is one `os.rename`. On other file systems (``gs://``)
files are renamed one by one and ``feature_spec.json``, the file every reader
opens first (`featnet_tf.prepared_data`), is moved last: until it is there,
the directory is not a prepared dataset.
"""

from __future__ import annotations

import os
import shutil
import uuid

from apache_beam.io.filesystems import FileSystems

from featnet_tf import prepared_data


def is_local(path: str) -> bool:
    return "://" not in path


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """A `ValueError` when `output_dir` holds anything and `overwrite` is off."""
    pattern = output_dir.rstrip("/") + "/**"
    if is_local(output_dir):
        if os.path.isfile(output_dir):
            raise ValueError(f"--output_dir {output_dir} is a file, not a directory")
        taken = os.path.isdir(output_dir) and bool(os.listdir(output_dir))
    else:
        taken = any(result.metadata_list for result in FileSystems.match([pattern], limits=[1]))
    if taken and not overwrite:
        raise ValueError(
            f"--output_dir {output_dir} is not empty; pass --overwrite to replace it "
            "(its files are replaced only once the new run has succeeded)"
        )


def staging_dir(output_dir: str) -> str:
    """A fresh staging directory beside `output_dir` (same file system, so the final move is a rename)."""
    return f"{output_dir.rstrip('/')}.staging-{uuid.uuid4().hex[:12]}"


def discard(staging: str) -> None:
    if is_local(staging):
        shutil.rmtree(staging, ignore_errors=True)
    else:
        _delete_tree(staging)


def publish(staging: str, output_dir: str) -> None:
    """Moves a successful run's staging directory to `output_dir`, replacing what was there."""
    output_dir = output_dir.rstrip("/")
    if is_local(output_dir):
        previous = None
        if os.path.exists(output_dir):
            previous = f"{output_dir}.replaced-{uuid.uuid4().hex[:12]}"
            os.rename(output_dir, previous)
        os.rename(staging, output_dir)
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
        return
    _delete_tree(output_dir)
    sources = sorted(_files(staging), key=lambda path: path.endswith(prepared_data.FEATURE_SPEC_FILE))
    FileSystems.rename(sources, [output_dir + path[len(staging) :] for path in sources])


def move_dead_letter(staging: str, destination: str) -> None:
    """Keeps a failed run's dead letter at `destination` (replacing an older
    one) before its staging directory is discarded: the rows and reasons the
    user needs to fix the input."""
    source = prepared_data.path(staging, prepared_data.DEAD_LETTER_DIR)
    if is_local(staging):
        shutil.rmtree(destination, ignore_errors=True)
        if os.path.isdir(source):
            os.rename(source, destination)
        return
    _delete_tree(destination)
    files = _files(source)
    FileSystems.rename(files, [destination + path[len(source) :] for path in files])


def staging_prefix(output: str) -> str:
    """Where a scoring run writes its shards until it succeeds: a hidden
    directory beside the output prefix, holding the prefix's base name."""
    head, base = output.rstrip("/").rsplit("/", 1) if "/" in output else (".", output)
    return f"{head}/.staging-{uuid.uuid4().hex[:12]}/{base}"


def publish_prefix(staged: str, output: str, only: str | None = None) -> None:
    """Renames the files of a staged prefix (those starting with `only`, when
    given) to the same names under `output`, and removes the staging directory."""
    directory = staged.rsplit("/", 1)[0]
    files = [path for path in _files(directory) if path.startswith(only or staged)]
    if files:
        FileSystems.rename(files, [output + path[len(staged) :] for path in files])
    discard(directory)


def discard_prefix(staged: str) -> None:
    discard(staged.rsplit("/", 1)[0])


def _files(directory: str) -> list[str]:
    return [
        metadata.path
        for result in FileSystems.match([directory.rstrip("/") + "/**"])
        for metadata in result.metadata_list
    ]


def _delete_tree(directory: str) -> None:
    files = _files(directory)
    if files:
        FileSystems.delete(files)
