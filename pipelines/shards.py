"""Writing files from a Beam pipeline, one shard per element, on any runner.

Beam's file sinks (`WriteToText`, `WriteToTFRecord`, `WriteToParquet`, any
`FileBasedSink`) hand each bundle's file to the finalizing step from the
writer's ``finish_bundle``. Beam 2.77's `DaskRunner` drops every output a DoFn
emits from ``finish_bundle`` (its `apply_dofn_to_bundle` collects a bundle's
outputs before calling it), so on Dask those sinks find "no shards to
finalize". `WriteShards` needs no bundle-level output: each element is one
shard's content, written under a temporary name in `process`, which also
emits that name; one finalizing step renames the shards whose names reached
it to ``<prefix>-SSSSS-of-NNNNN<suffix>`` and deletes the temporary
directory (so the shard of a failed, retried bundle is never published).

Shards are written by `WRITER_THREADS` background threads, at most two
shards per thread waiting, so that the next element is prepared (parsed,
framed) while earlier ones are compressed and written; ``finish_bundle``
waits for them, so a bundle ends with its files whole.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

SHARD_TEMPLATE = "-{index:05d}-of-{count:05d}"
WRITER_THREADS = 2  # shards compressed and written at once, per DoFn instance


class WriteShardsFn(beam.DoFn):
    """``(key, content)`` → writes `prepare(content)` (on a background
    thread) to a new temporary file and emits ``(key, temporary path)``."""

    def __init__(self, temp_dir: str, suffix: str, prepare: Callable[[Any], Any]) -> None:
        self.temp_dir, self.suffix, self.prepare = temp_dir, suffix, prepare

    def setup(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=WRITER_THREADS)

    def start_bundle(self) -> None:
        self.pending: list[concurrent.futures.Future] = []

    def process(self, item: tuple[Any, Any]) -> Iterable[tuple[Any, str]]:
        key, content = item
        path = FileSystems.join(self.temp_dir, f"{uuid.uuid4().hex}{self.suffix}")
        while len(self.pending) >= 2 * WRITER_THREADS:
            self.pending.pop(0).result()
        self.pending.append(self.executor.submit(self._write, path, content))
        yield key, path

    def _write(self, path: str, content: Any) -> None:
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            stream.write(self.prepare(content))  # `prepare` compresses, if anything does

    def finish_bundle(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def teardown(self) -> None:
        self.executor.shutdown(wait=True)


def finalize_shards(
    written: Sequence[tuple[Any, str]], prefixes: dict[Any, str], suffix: str, temp_dir: str, empty: bytes | None
) -> list[str]:
    """Renames each key's temporary files to ``<prefix>-SSSSS-of-NNNNN<suffix>``
    (a key with none gets one file of `empty`, unless `empty` is None) and
    removes the temporary directory. Returns the final paths."""
    by_key: dict[Any, list[str]] = {key: [] for key in prefixes}
    for key, path in written:
        by_key[key].append(path)
    finals = []
    for key, paths in by_key.items():
        if not paths and empty is None:
            continue
        if not paths:
            path = FileSystems.join(temp_dir, f"{uuid.uuid4().hex}{suffix}")
            with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
                stream.write(empty)
            paths = [path]
        names = [prefixes[key] + SHARD_TEMPLATE.format(index=i, count=len(paths)) + suffix for i in range(len(paths))]
        make_directory(prefixes[key].rsplit("/", 1)[0])
        FileSystems.rename(sorted(paths), names)
        finals += names
    if FileSystems.exists(temp_dir):
        FileSystems.delete([temp_dir])
    return finals


def make_directory(path: str) -> None:
    """Creates `path` (and its parents) unless it exists, also when another
    worker creates it at the same moment: `FileSystems.mkdirs` raises when the
    directory exists, and two workers of a cluster runner may both have seen
    it missing."""
    try:
        FileSystems.mkdirs(path)
    except OSError:
        if not FileSystems.exists(path):
            raise


class WriteShards(beam.PTransform):
    """Writes ``(key, content)`` elements as files, one per element, named
    ``prefixes[key]-SSSSS-of-NNNNN<suffix>``; returns the final paths.

    Args:
        prefixes: key → output prefix (a directory and a base name).
        suffix: the files' suffix (``.tfrecord.gz``, ``.jsonl``, ...).
        temp_root: where the temporary directory goes (on the same file
            system as the outputs, so that finalizing is a rename).
        prepare: content → the bytes to write, run on the writing thread
            (compression, say).
        empty: the content of the single file a key with no element gets;
            None writes nothing for it.
    """

    def __init__(
        self,
        prefixes: dict[Any, str],
        suffix: str,
        temp_root: str,
        prepare: Callable[[Any], Any] = bytes,
        empty: bytes | None = None,
    ) -> None:
        super().__init__()
        self.prefixes, self.suffix, self.prepare, self.empty = prefixes, suffix, prepare, empty
        self.temp_dir = FileSystems.join(temp_root, f".tmp-shards-{uuid.uuid4().hex[:12]}")

    def expand(self, items):
        prefixes, suffix, temp_dir, empty = self.prefixes, self.suffix, self.temp_dir, self.empty
        return (
            items
            | "WriteShards" >> beam.ParDo(WriteShardsFn(temp_dir, suffix, self.prepare))
            | "AllShards" >> beam.combiners.ToList()
            | "Finalize" >> beam.Map(finalize_shards, prefixes, suffix, temp_dir, empty)
        )
