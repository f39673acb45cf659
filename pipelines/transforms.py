"""The reusable Beam transforms of both pipelines (`preprocess`, `score`).

This module owns the steps, not the programs: reading raw files into `Row`s
with a tagged dead-letter output (`ReadRows`, `ReadSources`), writing the dead
letter (`WriteDeadLetter`), counting (`counter`, `BundleCounter`, `counters`),
vocabularies (`BuildVocabularies`), statistics (`RowStatisticsFn`,
`summarize`) and writing splits as TFRecords (`WriteSplit`). The CLIs
`pipelines.preprocess` and `pipelines.score` assemble them; the file names of
what they write belong to `featnet_tf.prepared_data`.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from featnet_tf import prepared_data
from featnet_tf.features import FeatureSpec, Field, is_missing
from featnet_tf.prepared_data import SPLITS
from pipelines import examples
from pipelines.rows import BadRowError, Row, RowParser, field_tokens

# Counters of the rows read and parsed, whichever pipeline reads them.
COUNTER_NAMESPACE = "featnet_tf.rows"
DEAD_LETTER = "dead_letter"  # the tag of the dead-letter output


def counter(name: str):
    return Metrics.counter(COUNTER_NAMESPACE, name)


# === Reading and parsing ===

UTF8_BOM = b"\xef\xbb\xbf"


class InputFileError(ValueError):
    """An input file that cannot be read to its end (a truncated or corrupt
    gzip stream): the whole run fails, naming the file, rather than
    going on with the rows before the damage."""


def first_line(error: Exception) -> str:
    """An error's own message, without the step names a runner appends."""
    return re.sub(r" \[while running '[^']*'\]$", "", str(error).strip().splitlines()[0])


def check_max_bad_fraction(value: float) -> None:
    """`--max_bad_fraction`, shared by both pipelines, is a fraction."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`--max_bad_fraction` must be in [0, 1]. Received: {value}")


def over_bad_row_budget(dead: int, rows_in: int, max_bad_fraction: float) -> str | None:
    """Why a run fails its bad-row budget, or None when it is within it."""
    if rows_in and dead / rows_in > max_bad_fraction:
        return (
            f"{dead} of {rows_in} rows ({dead / rows_in:.2%}) are malformed, more than --max_bad_fraction="
            f"{max_bad_fraction}"
        )
    return None


def check_inputs_exist(patterns: Sequence[str], flag: str) -> None:
    """A `ValueError` naming the first pattern that matches no file: a run
    over nothing is a mistake, not an empty dataset."""
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        if not result.metadata_list:
            raise ValueError(f"{flag} {pattern!r} matches no file")


def open_lines(path: str):
    """A binary stream of the file's lines; ``.gz`` through Python's `gzip`,
    which, unlike a plain decompressor, notices a stream cut short."""
    if CompressionTypes.detect_compression_type(path) == CompressionTypes.GZIP:
        return gzip.GzipFile(fileobj=FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED))
    return FileSystems.open(path, compression_type=CompressionTypes.AUTO)


def read_lines(stream, path: str) -> Iterable[tuple[int, bytes]]:
    """(line number, line) of every line; `InputFileError` naming the file and
    the last good line when the stream ends before its end-of-stream marker."""
    line_number = 0
    try:
        for line_number, raw in enumerate(iter(stream.readline, b""), start=1):
            yield line_number, raw
    except (EOFError, OSError, zlib.error) as error:
        raise InputFileError(
            f"{path} is truncated or corrupt after line {line_number} ({type(error).__name__}: {error})"
        ) from None


class ParseFileFn(beam.DoFn):
    """Reads one (possibly gzip) file line by line, with line numbers, and
    parses each line; unparseable lines go to the `dead_letter` output."""

    def __init__(self, parser: RowParser) -> None:
        self.parser = parser
        self.rows_in = counter("rows_in")
        self.rows_parsed = counter("rows_parsed")
        self.rows_dead = counter("rows_dead_lettered")

    def process(self, readable: fileio.ReadableFile) -> Iterable[Any]:
        path = readable.metadata.path
        header = self.parser.layout.header
        with open_lines(path) as stream:
            columns = None
            for line_number, raw in read_lines(stream, path):
                if line_number == 1:
                    raw = raw.removeprefix(UTF8_BOM)  # a byte-order mark is not part of the first value
                if line_number == 1 and header:
                    columns = self.parser.header_columns(raw.decode("utf-8").rstrip("\r\n"), path)
                    continue
                self.rows_in.inc()
                text = None
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                    position = line_number - 2 if header else line_number - 1
                    row = self.parser.parse(text, self.parser.columns(columns), path, line_number, position)
                except UnicodeDecodeError as error:
                    yield self._dead(
                        path,
                        line_number,
                        f"undecodable bytes: {error.reason} at byte {error.start}",
                        raw.decode("utf-8", "replace"),
                    )
                except BadRowError as error:
                    yield self._dead(path, line_number, str(error), text)
                else:
                    self.rows_parsed.inc()
                    yield row

    def _dead(self, path: str, line_number: int, reason: str, text: str | None):
        self.rows_dead.inc()
        counter(f"dead_letter: {reason.split(':')[0]}").inc()
        return beam.pvalue.TaggedOutput(
            DEAD_LETTER, {"file": path, "line": line_number, "reason": reason, "text": text}
        )


class ReadRows(beam.PTransform):
    """Matches the input glob(s) and parses every line into a `Row`, with a
    tagged `dead_letter` output of malformed lines."""

    def __init__(self, patterns: Sequence[str], parser: RowParser) -> None:
        super().__init__()
        self.patterns = list(patterns)
        self.parser = parser

    def expand(self, pipeline):
        return (
            pipeline
            | "Patterns" >> beam.Create(self.patterns)
            | "MatchFiles" >> fileio.MatchAll()
            | "ReadMatches" >> fileio.ReadMatches()
            | "ParseRows" >> beam.ParDo(ParseFileFn(self.parser)).with_outputs(DEAD_LETTER, main="rows")
        )


class ReadSources(beam.PTransform):
    """`ReadRows` for each (patterns, parser) source, flattened: one source
    for a single input, one per split for pre-split inputs."""

    def __init__(self, sources: Sequence[tuple[Sequence[str], RowParser]]) -> None:
        super().__init__()
        self.sources = list(sources)

    def expand(self, pipeline):
        parsed = [
            pipeline | f"ReadRows{index}" >> ReadRows(patterns, parser)
            for index, (patterns, parser) in enumerate(self.sources)
        ]
        rows = [result.rows for result in parsed] | "FlattenRows" >> beam.Flatten()
        dead = [result[DEAD_LETTER] for result in parsed] | "FlattenDeadLetters" >> beam.Flatten()
        return rows, dead


# === Vocabularies ===


def vocabulary_order(counts: Iterable[tuple[str, int]], min_count: int, top_k: int | None) -> list[str]:
    """Tokens with at least `min_count` occurrences, most frequent first, ties
    broken by the token itself, so that the order is deterministic."""
    kept = sorted(((token, count) for token, count in counts if count >= min_count), key=lambda tc: (-tc[1], tc[0]))
    if top_k is not None:
        kept = kept[:top_k]
    return [token for token, _ in kept]


class BundleCounter(beam.DoFn):
    """A DoFn that sums `(key, count)` pairs over a bundle and emits them at
    its end: far fewer elements for the combiner than one per occurrence."""

    def start_bundle(self) -> None:
        self.counts: dict[Any, Any] = {}

    def finish_bundle(self) -> Iterable[WindowedValue]:
        for key, count in self.counts.items():
            yield WindowedValue((key, count), MIN_TIMESTAMP, [GlobalWindow()])
        self.counts = {}


class CountTrainTokensFn(BundleCounter):
    """``((field, token), count)`` over the train rows of a bundle."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = list(fields)

    def process(self, row: Row) -> Iterable[Any]:
        if row.split != "train":
            return
        counts = self.counts
        for field in self.fields:
            for token in field_tokens(field, row.values[field.name]):
                key = (field.name, token)
                counts[key] = counts.get(key, 0) + 1
        return ()


class BuildVocabularies(beam.PTransform):
    """Per vocabulary field, counts tokens of the train rows only and returns
    ``(field, tokens, cardinality)`` with the tokens in id order."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec

    def expand(self, rows):
        fields = [field for field in self.spec.fields if field.uses_vocabulary]
        spec = self.spec

        def order(item):
            name, counts = item
            counts = list(counts)
            field = spec[name]
            return name, vocabulary_order(counts, field.min_count, field.top_k), len(counts)

        counted = (
            rows
            | "CountTrainTokens" >> beam.ParDo(CountTrainTokensFn(fields))
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "ByField" >> beam.Map(lambda item: (item[0][0], (item[0][1], item[1])))
            | "GroupByField" >> beam.GroupByKey()
            | "Order" >> beam.Map(order)
        )
        # Fields whose train split is empty still get an (empty) vocabulary.
        empty = rows.pipeline | "AllFields" >> beam.Create([(field.name, [], 0) for field in fields])
        return (
            (counted, empty)
            | "Flatten" >> beam.Flatten()
            | "KeyByField" >> beam.Map(lambda item: (item[0], item))
            | "OnePerField" >> beam.CombinePerKey(lambda items: max(items, key=lambda item: item[2]))
            | "Values" >> beam.Values()
        )


def write_vocabulary(item: tuple[str, list[str], int], vocabulary_dir: str) -> tuple[str, int, int]:
    name, tokens, cardinality = item
    if not FileSystems.exists(vocabulary_dir):
        FileSystems.mkdirs(vocabulary_dir)
    with FileSystems.create(FileSystems.join(vocabulary_dir, f"{name}.txt")) as stream:
        stream.write("".join(f"{token}\n" for token in tokens).encode("utf-8"))
    return name, len(tokens), cardinality


# === Statistics ===


class RowStatisticsFn(BundleCounter):
    """``(split, counts)`` summed over a bundle, where counts is the vector
    ``[rows, clicks, missing × M, oov × M, tokens × M]``; OOV and token counts
    are taken for valid and test rows only, against the train vocabularies."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    def process(self, row: Row, vocabularies: dict[str, frozenset]) -> Iterable[Any]:
        fields = self.spec.fields
        width = len(fields)
        counts = self.counts.get(row.split)
        if counts is None:
            counts = self.counts[row.split] = np.zeros(2 + 3 * width, dtype=np.int64)
        counts[0] += 1
        counts[1] += row.label
        values = row.values
        for index, field in enumerate(fields):
            value = values[field.name]
            if is_missing(value):
                counts[2 + index] += 1
            elif row.split != "train" and field.name in vocabularies:
                vocabulary = vocabularies[field.name]
                tokens = field_tokens(field, value)
                counts[2 + 2 * width + index] += len(tokens)
                counts[2 + width + index] += sum(token not in vocabulary for token in tokens)
        return ()


def summarize(
    spec: FeatureSpec,
    split_counts: dict[str, np.ndarray],
    vocabulary_sizes: dict[str, int],
    cardinalities: dict[str, int],
) -> dict[str, Any]:
    """The statistics JSON from the per-split count vectors."""
    width = spec.num_fields
    empty = np.zeros(2 + 3 * width, dtype=np.int64)
    total = sum((split_counts.get(split, empty) for split in SPLITS), empty)
    splits = {}
    for split in SPLITS:
        counts = split_counts.get(split, empty)
        rows = int(counts[0])
        splits[split] = {"rows": rows, "clicks": int(counts[1]), "click_rate": counts[1] / rows if rows else None}
    fields = {}
    for index, field in enumerate(spec.fields):
        entry: dict[str, Any] = {
            "kind": field.kind,
            "missing_rate": float(total[2 + index] / total[0]) if total[0] else None,
        }
        if field.name in vocabulary_sizes:
            entry["train_cardinality"] = cardinalities[field.name]
            entry["vocabulary_size"] = vocabulary_sizes[field.name]
            for split in ("valid", "test"):
                counts = split_counts.get(split, empty)
                tokens = counts[2 + 2 * width + index]
                entry[f"{split}_oov_rate"] = float(counts[2 + width + index] / tokens) if tokens else None
        elif field.hash_buckets is not None:
            entry["hash_buckets"] = field.hash_buckets
        fields[field.name] = entry
    return {"splits": splits, "fields": fields}


# === Writing ===


class WriteSplit(beam.PTransform):
    """Writes the rows of one split as sharded gzip TFRecords."""

    def __init__(self, spec: FeatureSpec, split: str, output_dir: str, num_shards: int) -> None:
        super().__init__()
        self.spec, self.split, self.output_dir, self.num_shards = spec, split, output_dir, num_shards

    def expand(self, rows):
        encoder = examples.ExampleEncoder(self.spec)
        written = counter(f"rows_written_{self.split}")

        def serialize(row: Row) -> bytes:
            written.inc()
            return encoder.encode(row.values, row.label).SerializeToString()

        return (
            rows
            | "Serialize" >> beam.Map(serialize)
            | "Write"
            >> beam.io.WriteToTFRecord(
                prepared_data.split_prefix(self.output_dir, self.split),
                file_name_suffix=prepared_data.TFRECORD_SUFFIX,
                num_shards=self.num_shards,
                compression_type=CompressionTypes.GZIP,
            )
        )


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as stream:
        stream.write(text.encode("utf-8"))


class WriteDeadLetter(beam.PTransform):
    """Writes dead-letter records as JSON lines ``{file, line, reason, text}``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def expand(self, records):
        return (
            records
            | "DeadLetterJson" >> beam.Map(lambda record: json.dumps(record, ensure_ascii=False))
            | "WriteDeadLetter" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl")
        )


def counters(result, namespaces: Sequence[str] = (COUNTER_NAMESPACE,)) -> dict[str, int]:
    """The committed counters of a finished pipeline, summed by name over `namespaces`."""
    totals: dict[str, int] = {}
    for namespace in namespaces:
        for entry in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
            totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + entry.committed
    return totals
