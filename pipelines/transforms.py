"""The reusable Beam transforms of both pipelines (`preprocess`, `score`).

This module owns the steps, not the programs: reading raw files into
`RowBatch`es, dead-letter records and line counts (`ReadBatches`,
`ReadSources`, `split_outputs`), writing the dead letter
(`WriteDeadLetter`), counting (`counter` for progress, `CountRows` for the
accounting), token counts and vocabularies (`CountTokensFn`,
`SumTokenCounts`, `BuildVocabularies`), statistics (`BatchStatisticsFn`,
`summarize`) and writing splits as TFRecords (`WriteSplits`). Every step
runs on Beam's DirectRunner and DaskRunner alike (`tests/test_cluster_runner.py`).
Every step works on whole batches of rows with Arrow and NumPy; per-row
Python runs only for the lines the column-wise checks flag
(`pipelines.batches`). The CLIs `pipelines.preprocess` and `pipelines.score`
assemble them; the file names of what they write belong to
`featnet_tf.prepared_data`.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from featnet_tf import prepared_data
from featnet_tf.features import FeatureSpec
from featnet_tf.prepared_data import SPLITS
from pipelines import columns, examples, validation
from pipelines.batches import BatchParser, RowBatch
from pipelines.rows import RowParser
from pipelines.shards import WriteShards, make_directory
from pipelines.tfrecords import EMPTY_GZIP, frame_records, gzip_compress

# Counters of the rows read and parsed, whichever pipeline reads them.
COUNTER_NAMESPACE = "featnet_tf.rows"
ROWS = "rows"  # the tag of parsed rows (`RowBatch`es)
DEAD_LETTER = "dead_letter"  # the tag of dead-letter records, a list per batch of lines
LINES_READ = "lines_read"  # the tag of the (file, data lines) output, once per input file


def split_outputs(tagged, tags: Sequence[str]) -> dict[str, Any]:
    """``(tag, value)`` elements → one PCollection of values per tag.

    DoFns here emit ``(tag, value)`` pairs rather than Beam's tagged outputs:
    Beam 2.77's `DaskRunner` puts every output of a multi-output ParDo into
    one collection (its visitor keeps one Dask bag per transform), so a
    consumer of ``with_outputs(...)[tag]`` would see all of them there.
    """
    return {
        tag: tagged
        | f"Only{tag.title().replace('_', '')}"
        >> beam.FlatMap(lambda item, tag=tag: [item[1]] if item[0] == tag else [])
        for tag in tags
    }


def counter(name: str):
    return Metrics.counter(COUNTER_NAMESPACE, name)


# === Reading and parsing ===

UTF8_BOM = b"\xef\xbb\xbf"


class InputFileError(ValueError):
    """An input file that cannot be read to its end (a truncated or corrupt
    gzip stream): the whole run fails, naming the file, rather than
    going on with the rows before the damage."""


def runner_error_message(error: Exception) -> str:
    """An error's own message, without the step names a runner appends."""
    return re.sub(r" \[while running '[^']*'\]$", "", str(error).strip().splitlines()[0])


def check_max_bad_fraction(value: float) -> None:
    """`--max_bad_fraction`, shared by both pipelines, is a fraction."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`--max_bad_fraction` must be in [0, 1]. Received: {value}")


# Runners by the short name users type; Beam itself only knows its own.
RUNNER_NAMES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}


def pipeline_options(pipeline_args: Sequence[str]) -> PipelineOptions:
    """Beam's options from the flags a pipeline did not take; the DirectRunner
    unless ``--runner`` names another (which skips the Prism attempt), and
    ``DaskRunner`` by its short name."""
    options = PipelineOptions(list(pipeline_args))
    standard = options.view_as(StandardOptions)
    standard.runner = RUNNER_NAMES.get(standard.runner, standard.runner) or "DirectRunner"
    return options


def run_to_completion(pipeline: beam.Pipeline) -> None:
    """Runs `pipeline` and waits for it; then closes the runner's client
    where it holds one (Beam 2.77's `DaskRunnerResult` keeps its
    `distributed.Client` open, which goes on reconnecting to a scheduler
    that has since stopped)."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


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


ROWS_PER_BATCH = 32768  # lines parsed together: large enough that Arrow's per-call costs vanish


def read_chunks(stream, path: str, size: int) -> Iterable[tuple[int, list[bytes]]]:
    """(first line number, lines) of consecutive chunks of `size` lines;
    `InputFileError` naming the file and the last line of the last whole chunk
    when the stream ends before its end-of-stream marker."""
    first = 1
    try:
        while True:
            lines = list(itertools.islice(stream, size))
            if not lines:
                return
            yield first, lines
            first += len(lines)
    except (EOFError, OSError, zlib.error) as error:
        raise InputFileError(
            f"{path} is truncated or corrupt after line {first - 1} ({type(error).__name__}: {error})"
        ) from None


class ReadBatchesFn(beam.DoFn):
    """Reads one (possibly gzip) file a chunk of lines at a time and parses
    each chunk into a `RowBatch` (`pipelines.batches.BatchParser`). Emits
    ``(tag, value)``: ``("rows", batch)``, ``("dead_letter", records)`` (the
    lines of a chunk that could not be parsed, one record each) and, once per
    file, ``("lines_read", (file, data lines))``."""

    def __init__(self, parser: RowParser, rows_per_batch: int = ROWS_PER_BATCH) -> None:
        self.parser = parser
        self.rows_per_batch = rows_per_batch
        self.rows_in = counter("rows_in")
        self.rows_parsed = counter("rows_parsed")
        self.rows_dead = counter("rows_dead_lettered")

    def setup(self) -> None:
        self.batch_parser = BatchParser(self.parser)

    def process(self, readable: fileio.ReadableFile) -> Iterable[Any]:
        path = readable.metadata.path
        header = self.parser.layout.header
        lines_read = 0
        with open_lines(path) as stream:
            columns = self.parser.columns(None)
            for first, lines in read_chunks(stream, path, self.rows_per_batch):
                if first == 1:
                    lines[0] = lines[0].removeprefix(UTF8_BOM)  # a byte-order mark is not part of the first value
                    if header:
                        columns = self.parser.header_columns(lines[0].decode("utf-8").rstrip("\r\n"), path)
                        lines, first = lines[1:], 2
                        if not lines:
                            continue
                position = first - 2 if header else first - 1
                batch, dead = self.batch_parser.parse(lines, columns, path, first, position)
                lines_read += len(lines)
                self.rows_in.inc(len(lines))
                self.rows_parsed.inc(len(batch))
                if len(batch):
                    yield ROWS, batch
                if dead:
                    self.rows_dead.inc(len(dead))
                    yield DEAD_LETTER, dead
        yield LINES_READ, (path, lines_read)


class ReadBatches(beam.PTransform):
    """Matches the input glob(s) and parses every line; returns a dict of
    PCollections: ``rows`` (`RowBatch`es), ``dead_letter`` (lists of
    records) and ``lines_read``."""

    def __init__(self, patterns: Sequence[str], parser: RowParser, rows_per_batch: int = ROWS_PER_BATCH) -> None:
        super().__init__()
        self.patterns = list(patterns)
        self.parser = parser
        self.rows_per_batch = rows_per_batch

    def expand(self, pipeline):
        tagged = (
            pipeline
            | "Patterns" >> beam.Create(self.patterns)
            | "MatchFiles" >> fileio.MatchAll()
            | "ReadMatches" >> fileio.ReadMatches()
            | "ParseBatches" >> beam.ParDo(ReadBatchesFn(self.parser, self.rows_per_batch))
        )
        return split_outputs(tagged, (ROWS, DEAD_LETTER, LINES_READ))


class ReadSources(beam.PTransform):
    """`ReadBatches` for each (patterns, parser) source, flattened: one source
    for a single input, one per split for pre-split inputs. Returns the
    batches, the dead-letter records and the (file, lines) read."""

    def __init__(self, sources: Sequence[tuple[Sequence[str], RowParser]]) -> None:
        super().__init__()
        self.sources = list(sources)

    def expand(self, pipeline):
        parsed = [
            pipeline | f"ReadRows{index}" >> ReadBatches(patterns, parser)
            for index, (patterns, parser) in enumerate(self.sources)
        ]
        rows = [result[ROWS] for result in parsed] | "FlattenRows" >> beam.Flatten()
        dead = [result[DEAD_LETTER] for result in parsed] | "FlattenDeadLetters" >> beam.Flatten()
        lines_read = [result[LINES_READ] for result in parsed] | "FlattenLinesRead" >> beam.Flatten()
        return rows, dead, lines_read


# === Token counts and vocabularies ===

TOKEN_COUNTS_SCHEMA = pa.schema([("token", pa.string()), ("count", pa.int64())])
COMPACT_AT_ROWS = 1 << 18  # token-count rows of one key held before they are summed by token


def sum_token_counts(tables: Sequence[pa.Table]) -> pa.Table:
    """(token, count) tables summed by token into one."""
    tables = [table for table in tables if table.num_rows]
    if not tables:
        return TOKEN_COUNTS_SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    summed = pa.concat_tables(tables).group_by("token").aggregate([("count", "sum")])
    return pa.table({"token": summed["token"], "count": summed["count_sum"]}, schema=TOKEN_COUNTS_SCHEMA)


class TokenCounts:
    """(token, count) tables under keys. A key's tables are summed by token
    once they hold twice the rows of its last sum (and at least
    `COMPACT_AT_ROWS`): memory follows the distinct tokens, not the rows,
    and each row is re-summed a bounded number of times."""

    def __init__(self) -> None:
        self.tables: dict[Any, list[pa.Table]] = {}
        self.rows: dict[Any, int] = {}
        self.compacted: dict[Any, int] = {}

    def add(self, key: Any, table: pa.Table) -> None:
        self.tables.setdefault(key, []).append(table)
        rows = self.rows[key] = self.rows.get(key, 0) + table.num_rows
        if rows > max(COMPACT_AT_ROWS, 2 * self.compacted.get(key, 0)):
            summed = sum_token_counts(self.tables[key])
            self.tables[key] = [summed]
            self.rows[key] = self.compacted[key] = summed.num_rows

    def items(self) -> Iterable[tuple[Any, pa.Table]]:
        for key, tables in self.tables.items():
            yield key, sum_token_counts(tables)


class CountTokensFn(beam.DoFn):
    """``((split, field), (token, count) table)`` of every vocabulary field
    for each batch (summed by `SumTokenCounts`): train counts make the
    vocabularies, valid/test counts their OOV rates."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.fields = [field for field in spec.fields if field.uses_vocabulary]

    def process(self, batch: RowBatch) -> Iterable[Any]:
        for field in self.fields:
            tables = columns.token_counts_by_split(field, batch.values[field.name], batch.splits, len(SPLITS))
            for split, table in zip(SPLITS, tables):
                if table.num_rows:
                    yield (split, field.name), table.cast(TOKEN_COUNTS_SCHEMA)


class SumTokenCounts(beam.CombineFn):
    """Sums (token, count) tables by token."""

    def create_accumulator(self) -> TokenCounts:
        return TokenCounts()

    def add_input(self, accumulator: TokenCounts, table: pa.Table) -> TokenCounts:
        accumulator.add(None, table)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[TokenCounts]) -> TokenCounts:
        merged = TokenCounts()
        for accumulator in accumulators:
            for _, table in accumulator.items():
                merged.add(None, table)
        return merged

    def extract_output(self, accumulator: TokenCounts) -> pa.Table:
        return next(iter(dict(accumulator.items()).values()), TOKEN_COUNTS_SCHEMA.empty_table())


def vocabulary_order(counts: pa.Table, min_count: int, top_k: int | None) -> list[str]:
    """Tokens with at least `min_count` occurrences, most frequent first, ties
    broken by the token itself (Arrow orders strings by their UTF-8 bytes,
    which is Python's order of code points), so that the order is
    deterministic."""
    kept = counts.filter(pc.greater_equal(counts["count"], min_count))
    kept = kept.sort_by([("count", "descending"), ("token", "ascending")])
    if top_k is not None:
        kept = kept.slice(0, top_k)
    return kept["token"].to_pylist()


def vocabulary_and_oov(
    item: tuple[str, Iterable[tuple[str, pa.Table]]], spec: FeatureSpec
) -> Iterable[tuple[str, Any]]:
    """One field's token counts by split → ``("vocabularies", (field, tokens,
    cardinality))``, the tokens in id order, ``("token_counts", (field,
    counts))`` of the whole day (what `pipelines.validation` compares days
    by), and ``("statistics", (split, counts))`` of the valid/test OOV and
    token counts against the vocabulary."""
    name, by_split = item
    counts = dict(by_split)
    yield "token_counts", (name, sum_token_counts(list(counts.values())))
    field = spec[name]
    train = counts.get("train", TOKEN_COUNTS_SCHEMA.empty_table())
    tokens = vocabulary_order(train, field.min_count, field.top_k)
    yield "vocabularies", (name, tokens, train.num_rows)
    vocabulary = pa.array(tokens, pa.string())
    width, index = spec.num_fields, spec.names.index(name)
    for split in ("valid", "test"):
        if split in counts:
            held_out = counts[split]
            vector = statistics_vector(width)
            vector[2 + 2 * width + index] = pc.sum(held_out["count"]).as_py() or 0
            unknown = pc.invert(pc.is_in(held_out["token"], value_set=vocabulary))
            vector[2 + width + index] = pc.sum(held_out["count"].filter(unknown)).as_py() or 0
            yield "statistics", (split, vector)


class BuildVocabularies(beam.PTransform):
    """``((split, field), counts)`` → the vocabularies, ``(field, tokens,
    cardinality)`` with the tokens in id order, built from the train counts,
    the ``(field, counts)`` of the whole day, and ``(split, counts)`` vectors
    of valid/test OOV and token counts. One group per field: no side input,
    nothing but token counts in memory."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec

    def expand(self, token_counts):
        spec = self.spec
        # Fields with no token in any split still get an (empty) vocabulary.
        every_field = token_counts.pipeline | "AllFields" >> beam.Create(
            [
                (field.name, ("train", TOKEN_COUNTS_SCHEMA.empty_table()))
                for field in spec.fields
                if field.uses_vocabulary
            ]
        )
        outputs = (
            (token_counts | "ByField" >> beam.Map(lambda item: (item[0][1], (item[0][0], item[1]))), every_field)
            | "FlattenFields" >> beam.Flatten()
            | "GroupByField" >> beam.GroupByKey()
            | "SumBySplit" >> beam.MapTuple(lambda name, items: (name, _sum_by_split(items)))
            | "Vocabularies" >> beam.FlatMap(vocabulary_and_oov, spec)
        )
        split = split_outputs(outputs, ("vocabularies", "token_counts", "statistics"))
        return split["vocabularies"], split["token_counts"], split["statistics"]


def _sum_by_split(items: Iterable[tuple[str, pa.Table]]) -> list[tuple[str, pa.Table]]:
    tables: dict[str, list[pa.Table]] = {}
    for split, table in items:
        tables.setdefault(split, []).append(table)
    return [(split, sum_token_counts(parts)) for split, parts in tables.items()]


def write_token_counts(item: tuple[str, pa.Table], token_counts_dir: str) -> str:
    name, table = item
    make_directory(token_counts_dir)
    validation.write_token_counts(table, FileSystems.join(token_counts_dir, f"{name}.parquet"))
    return name


def write_vocabulary(item: tuple[str, list[str], int], vocabulary_dir: str) -> tuple[str, int, int]:
    name, tokens, cardinality = item
    make_directory(vocabulary_dir)
    with FileSystems.create(FileSystems.join(vocabulary_dir, f"{name}.txt")) as stream:
        stream.write("".join(f"{token}\n" for token in tokens).encode("utf-8"))
    return name, len(tokens), cardinality


# === Statistics ===
#
# Per split, one count vector ``[rows, clicks, missing × M, oov × M, tokens × M]``:
# rows, clicks and missing values from the batches (`BatchStatisticsFn`), OOV
# and token counts of valid and test from their token counts against the
# train vocabularies (`vocabulary_and_oov`), so no pass over the rows waits
# for the vocabularies and nothing holds the rows in memory.


def statistics_vector(width: int) -> np.ndarray:
    return np.zeros(2 + 3 * width, dtype=np.int64)


class BatchStatisticsFn(beam.DoFn):
    """``(split, counts)`` of rows, clicks and missing values per field, for
    each split of each batch."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    def process(self, batch: RowBatch) -> Iterable[Any]:
        splits = batch.splits.astype(np.int64)
        counts = np.zeros((len(SPLITS), 2 + 3 * self.spec.num_fields), dtype=np.int64)
        counts[:, 0] = np.bincount(splits, minlength=len(SPLITS))
        counts[:, 1] = np.bincount(splits, weights=batch.labels, minlength=len(SPLITS)).astype(np.int64)
        for index, field in enumerate(self.spec.fields):
            missing = columns.missing_rows(field, batch.values[field.name])
            counts[:, 2 + index] = np.bincount(splits[missing], minlength=len(SPLITS))
        for code, split in enumerate(SPLITS):
            if counts[code, 0]:
                yield split, counts[code]


class NumericHistogramsFn(beam.DoFn):
    """``(field, counts)`` of each numeric field's values in a batch (every
    split), in `pipelines.validation.numeric_histogram`'s fixed buckets."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.fields = [field.name for field in spec.fields if field.kind == "numeric"]

    def process(self, batch: RowBatch) -> Iterable[Any]:
        for name in self.fields:
            values = batch.values[name].drop_null().to_numpy(zero_copy_only=False)
            yield name, validation.numeric_histogram(values)


def summarize(
    spec: FeatureSpec,
    split_counts: dict[str, np.ndarray],
    vocabulary_sizes: dict[str, int],
    cardinalities: dict[str, int],
    histograms: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The statistics JSON from the per-split count vectors (and the numeric fields' histograms)."""
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
        if histograms and field.name in histograms:
            entry["histogram"] = validation.histogram_to_json(histograms[field.name])
        fields[field.name] = entry
    return {"splits": splits, "fields": fields}


# === Writing ===


class EncodeSplitsFn(beam.DoFn):
    """A `RowBatch` → ``(split, framed records)`` for each split present: its
    serialized examples (`examples.encode_batch`) framed as TFRecords."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.written = {split: counter(f"rows_written_{split}") for split in SPLITS}

    def process(self, batch: RowBatch) -> Iterable[Any]:
        encoded = examples.encode_batch(self.spec, batch.values, batch.labels)
        for code, split in enumerate(SPLITS):
            mask = batch.splits == code
            count = int(mask.sum())
            if count:
                self.written[split].inc(count)
                records = encoded if count == len(batch) else encoded.filter(pa.array(mask))
                yield split, (count, frame_records(records))


class WriteSplits(beam.PTransform):
    """Writes `RowBatch`es as gzip TFRecords, one directory per split and one
    shard per split of each batch (`pipelines.shards`); a split with no rows
    gets one empty shard. Returns the ``(split, rows)`` written and the list
    of files (one element, once they are final)."""

    def __init__(self, spec: FeatureSpec, output_dir: str) -> None:
        super().__init__()
        self.spec, self.output_dir = spec, output_dir

    def expand(self, batches):
        framed = batches | "Encode" >> beam.ParDo(EncodeSplitsFn(self.spec))
        files = (
            framed
            | "Records" >> beam.MapTuple(lambda split, counted: (split, counted[1]))
            | "Write"
            >> WriteShards(
                {split: prepared_data.split_prefix(self.output_dir, split) for split in SPLITS},
                prepared_data.TFRECORD_SUFFIX,
                self.output_dir,
                prepare=gzip_compress,
                empty=EMPTY_GZIP,
            )
        )
        return framed | "RowsWritten" >> beam.MapTuple(lambda split, counted: (split, counted[0])), files


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as stream:
        stream.write(text.encode("utf-8"))


def dead_letter_lines(records: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")


class WriteDeadLetter(beam.PTransform):
    """Writes lists of dead-letter records as JSON lines ``{file, line,
    reason, text}``, ``<prefix>-SSSSS-of-NNNNN.jsonl``, one file per list
    (one empty file when there is none)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def expand(self, record_lists):
        return (
            record_lists
            | "Keyed" >> beam.Map(lambda records: (DEAD_LETTER, records))
            | "Write"
            >> WriteShards(
                {DEAD_LETTER: self.prefix}, ".jsonl", self.prefix.rsplit("/", 1)[0], dead_letter_lines, empty=b""
            )
        )


class CountRows(beam.PTransform):
    """The accounting of a run from its own outputs, not from Beam's counters
    (which not every runner collects: Beam 2.77's `DaskRunner` collects
    none): a one-element PCollection of ``{"rows_in", "rows_out": {key:
    count}, "rows_dead_lettered", "dead_letter_reasons": {reason: count}}``,
    from the `lines_read`, the ``(key, count)`` of rows written under each
    key, and the lists of dead-letter records."""

    def expand(self, inputs):
        lines_read, rows_out, dead_letters = inputs
        rows_in = lines_read | "LinesIn" >> beam.Values() | "SumIn" >> beam.CombineGlobally(sum)
        out = rows_out | "SumOut" >> beam.CombinePerKey(sum) | "OutDict" >> beam.combiners.ToDict()
        reasons = (
            dead_letters
            | "Reason" >> beam.FlatMap(lambda records: [record["reason"].split(":")[0] for record in records])
            | "PerReason" >> beam.combiners.Count.PerElement()
            | "ReasonDict" >> beam.combiners.ToDict()
        )
        return (
            rows_in.pipeline
            | "Once" >> beam.Create([None])
            | "Accounting"
            >> beam.Map(
                lambda _, rows_in, out, reasons: {
                    "rows_in": rows_in,
                    "rows_out": dict(sorted(out.items())),
                    "rows_dead_lettered": sum(reasons.values()),
                    "dead_letter_reasons": dict(sorted(reasons.items())),
                },
                beam.pvalue.AsSingleton(rows_in),
                beam.pvalue.AsSingleton(out),
                beam.pvalue.AsSingleton(reasons),
            )
        )
