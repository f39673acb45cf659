"""`python -m pipelines.preprocess`: raw click logs → TFRecords, vocabularies, schema, statistics.

Reads Criteo (TSV), Avazu (CSV) or any delimited file described by a
FeatureSpec, splits rows deterministically into train/valid/test, builds
vocabularies on the train split only and writes, under ``--output_dir``:

* ``train/``, ``valid/``, ``test/``: sharded gzip TFRecords of raw-value
  `tf.train.Example`s (see `pipelines.examples`);
* ``vocabularies/<field>.txt``: one token per line, most frequent first (ids
  2, 3, ...; 0 is missing, 1 out-of-vocabulary);
* ``feature_spec.json``: the resolved FeatureSpec (vocabulary sizes and files);
* ``schema.pbtxt``: the tensorflow-metadata Schema of the examples;
* ``statistics.json``: rows and click rate per split, per-field cardinality,
  missing rate and valid/test OOV rate, rows in / written / dead-lettered;
* ``dead_letter/``: JSON lines ``{file, line, reason, text}`` of the rows that
  could not be parsed.

Unknown flags go to Beam's PipelineOptions; the runner defaults to the
DirectRunner. Example:

    python -m pipelines.preprocess --input 'data/train*.txt.gz' --format criteo \
        --output_dir /tmp/criteo_prep
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from google.protobuf import text_format

from featnet_tf.features import FeatureSpec, Field, with_vocabulary_sizes
from pipelines import examples
from pipelines.rows import SPLITS, BadRowError, Row, RowParser, field_tokens, spec_for_format
from pipelines.splits import ColumnSplit, FixedSplit, HashSplit, IndexSplit, read_index_file

COUNTER_NAMESPACE = "featnet_tf.preprocess"
DEAD_LETTER = "dead_letter"
VOCABULARY_DIR = "vocabularies"


def counter(name: str):
    return Metrics.counter(COUNTER_NAMESPACE, name)


# === Reading and parsing ===


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
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
            columns = None
            for line_number, raw in enumerate(iter(stream.readline, b""), start=1):
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
                    yield self._dead(path, line_number, f"undecodable bytes: {error.reason} at byte {error.start}", raw.decode("utf-8", "replace"))
                except BadRowError as error:
                    yield self._dead(path, line_number, str(error), text)
                else:
                    self.rows_parsed.inc()
                    yield row

    def _dead(self, path: str, line_number: int, reason: str, text: str | None):
        self.rows_dead.inc()
        counter(f"dead_letter: {reason.split(':')[0]}").inc()
        return beam.pvalue.TaggedOutput(DEAD_LETTER, {"file": path, "line": line_number, "reason": reason, "text": text})


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
            pipeline | f"ReadRows{index}" >> ReadRows(patterns, parser) for index, (patterns, parser) in enumerate(self.sources)
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
            if value is None or value == "" or value == []:
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
        spec = self.spec
        written = counter(f"rows_written_{self.split}")

        def serialize(row: Row) -> bytes:
            written.inc()
            return examples.to_example(spec, row.values, row.label).SerializeToString()

        return (
            rows
            | "Serialize" >> beam.Map(serialize)
            | "Write"
            >> beam.io.WriteToTFRecord(
                FileSystems.join(self.output_dir, self.split, "part"),
                file_name_suffix=".tfrecord.gz",
                num_shards=self.num_shards,
                compression_type=CompressionTypes.GZIP,
            )
        )


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as stream:
        stream.write(text.encode("utf-8"))


# === The pipeline ===


@dataclasses.dataclass(frozen=True)
class PreprocessResult:
    output_dir: str
    spec: FeatureSpec
    statistics: dict[str, Any]


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.preprocess",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", action="append", help="file or glob; repeat for several; .gz read transparently")
    for split in SPLITS:
        parser.add_argument(f"--{split}", action="append", help=f"pre-split {split} input (file or glob), instead of --input")
    parser.add_argument("--split_indices", help="NumPy .npz with arrays train/valid/test of 0-based data-row positions into one --input file")
    parser.add_argument("--format", choices=("criteo", "avazu", "csv"), required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--spec", help="FeatureSpec JSON/YAML (required for csv; optional override otherwise)")
    parser.add_argument("--min_count", type=int, help="vocabulary minimum count for every field of a built-in format")
    parser.add_argument("--split_ratios", default="8,1,1", help="train,valid,test proportions of the hash split")
    parser.add_argument("--split_seed", type=int, default=0)
    parser.add_argument("--split_column", help="split by this raw column instead of by hash")
    parser.add_argument("--split_boundaries", default="", help="two values A,B: < A train, < B valid, else test")
    parser.add_argument("--max_bad_fraction", type=float, default=0.01, help="fail when more rows than this are malformed")
    parser.add_argument("--num_shards", type=int, default=0, help="TFRecord shards per split (0: the runner decides)")
    return parser.parse_known_args(argv)


def build_pipeline(
    pipeline: beam.Pipeline,
    spec: FeatureSpec,
    sources: Sequence[tuple[Sequence[str], RowParser]],
    split_provenance: dict[str, Any],
    output_dir: str,
    num_shards: int,
) -> None:
    """Adds every step of the preprocessing to `pipeline`."""
    vocabulary_dir = FileSystems.join(output_dir, VOCABULARY_DIR)
    rows, dead_letters = pipeline | "Read" >> ReadSources(sources)
    (
        dead_letters
        | "DeadLetterJson" >> beam.Map(lambda record: json.dumps(record, ensure_ascii=False))
        | "WriteDeadLetter" >> beam.io.WriteToText(FileSystems.join(output_dir, DEAD_LETTER, "part"), file_name_suffix=".jsonl")
    )
    vocabularies = rows | "BuildVocabularies" >> BuildVocabularies(spec)
    vocabulary_summary = (
        vocabularies
        | "WriteVocabularies" >> beam.Map(write_vocabulary, vocabulary_dir)
        | "AllVocabularies" >> beam.combiners.ToList()
    )
    vocabulary_sets = (
        vocabularies
        | "AsSets" >> beam.Map(lambda item: (item[0], frozenset(item[1])))
        | "VocabularyDict" >> beam.combiners.ToDict()
    )
    split_counts = (
        rows
        | "RowStatistics" >> beam.ParDo(RowStatisticsFn(spec), beam.pvalue.AsSingleton(vocabulary_sets))
        | "SumPerSplit" >> beam.CombinePerKey(lambda arrays: np.sum(list(arrays), axis=0))
        | "SplitCountsDict" >> beam.combiners.ToDict()
    )

    def write_metadata(split_counts, vocabulary_summary):
        sizes = {name: size for name, size, _ in vocabulary_summary}
        cardinalities = {name: cardinality for name, _, cardinality in vocabulary_summary}
        resolved = with_vocabulary_sizes(spec, sizes)
        for name in sizes:
            resolved = resolved.replace_field(name, vocabulary_file=f"{VOCABULARY_DIR}/{name}.txt")
        write_text(FileSystems.join(output_dir, "feature_spec.json"), json.dumps(resolved.to_dict(), indent=2) + "\n")
        statistics = summarize(resolved, split_counts, sizes, cardinalities)
        statistics["split_provenance"] = split_provenance
        write_text(FileSystems.join(output_dir, "statistics.partial.json"), json.dumps(statistics, indent=2) + "\n")

    _ = (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteMetadata"
        >> beam.Map(
            lambda _, counts, summary: write_metadata(counts, summary),
            beam.pvalue.AsSingleton(split_counts),
            beam.pvalue.AsSingleton(vocabulary_summary),
        )
    )
    by_split = rows | "PartitionBySplit" >> beam.Partition(lambda row, _: SPLITS.index(row.split), len(SPLITS))
    for split, split_rows in zip(SPLITS, by_split):
        _ = split_rows | f"Write{split.capitalize()}" >> WriteSplit(spec, split, output_dir, num_shards)


def count_data_rows(path: str, header: bool) -> int:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
        lines = sum(1 for _ in iter(stream.readline, b""))
    return lines - (1 if header and lines else 0)


def plan_sources(args: argparse.Namespace, spec: FeatureSpec) -> tuple[list[tuple[list[str], RowParser]], dict[str, Any]]:
    """The (patterns, parser) sources and the split provenance of the run;
    every check on the split flags happens here, before anything is written."""
    pre_split = {split: getattr(args, split) for split in SPLITS if getattr(args, split)}
    if bool(args.input) == bool(pre_split):
        raise ValueError("Give either --input, or pre-split --train/--valid/--test inputs (not both).")
    if pre_split:
        if args.split_indices or args.split_column:
            raise ValueError("Pre-split --train/--valid/--test inputs take no --split_indices or --split_column.")
        sources = [(patterns, RowParser(spec, args.format, FixedSplit(split, tuple(patterns)))) for split, patterns in pre_split.items()]
        return sources, {"method": "files", **{split: patterns for split, patterns in pre_split.items()}}
    if args.split_indices:
        matched = [metadata.path for result in FileSystems.match(args.input) for metadata in result.metadata_list]
        if len(matched) != 1:
            raise ValueError(f"--split_indices indexes a single input file; --input matched {len(matched)}: {matched[:5]}")
        num_rows = count_data_rows(matched[0], spec.input_format.header)
        with FileSystems.open(args.split_indices) as stream:
            codes = read_index_file(stream.read(), args.split_indices, num_rows)
        splitter: Any = IndexSplit(codes, args.split_indices)
    elif args.split_column:
        splitter = ColumnSplit(args.split_column, tuple(float(b) for b in args.split_boundaries.split(",") if b))
    else:
        splitter = HashSplit(tuple(float(r) for r in args.split_ratios.split(",")), args.split_seed)
    return [(args.input, RowParser(spec, args.format, splitter))], splitter.describe()


def run(argv: Sequence[str] | None = None) -> PreprocessResult:
    args, pipeline_args = parse_args(argv)
    spec = spec_for_format(args.format, FeatureSpec.load(args.spec) if args.spec else None, args.min_count)
    if not 0.0 <= args.max_bad_fraction <= 1.0:
        raise ValueError(f"`--max_bad_fraction` must be in [0, 1]. Received: {args.max_bad_fraction}")
    sources, provenance = plan_sources(args, spec)
    options = PipelineOptions(pipeline_args)
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "DirectRunner"  # skips the Prism attempt
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, spec, sources, provenance, args.output_dir, args.num_shards)
    result = pipeline.run()
    result.wait_until_finish()
    return finish(result, args.output_dir, args.max_bad_fraction)


def counters(result) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    totals: dict[str, int] = {}
    for entry in query["counters"]:
        totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + entry.committed
    return totals


def finish(result, output_dir: str, max_bad_fraction: float) -> PreprocessResult:
    """Checks row conservation and the bad-row budget, writes the final
    statistics and schema, and prints the summary."""
    totals = counters(result)
    rows_in = totals.get("rows_in", 0)
    written = {split: totals.get(f"rows_written_{split}", 0) for split in SPLITS}
    dead = totals.get("rows_dead_lettered", 0)
    rows_written = sum(written.values())
    statistics_path = FileSystems.join(output_dir, "statistics.partial.json")
    with FileSystems.open(statistics_path) as stream:
        statistics = json.loads(stream.read().decode("utf-8"))
    FileSystems.delete([statistics_path])
    statistics["rows"] = {
        "rows_in": rows_in,
        "rows_written": rows_written,
        "rows_dead_lettered": dead,
        "dead_letter_reasons": {
            name.split(": ", 1)[1]: value for name, value in sorted(totals.items()) if name.startswith("dead_letter: ")
        },
    }
    with FileSystems.open(FileSystems.join(output_dir, "feature_spec.json")) as stream:
        spec = FeatureSpec.from_dict(json.loads(stream.read().decode("utf-8")))
    write_text(FileSystems.join(output_dir, "statistics.json"), json.dumps(statistics, indent=2) + "\n")
    write_text(FileSystems.join(output_dir, "schema.pbtxt"), text_format.MessageToString(examples.to_schema(spec)))

    print(f"[preprocess] rows_in={rows_in} = rows_written={rows_written} + rows_dead_lettered={dead}")
    for split in SPLITS:
        entry = statistics["splits"][split]
        rate = entry["click_rate"]
        print(f"[preprocess] {split}: {entry['rows']} rows, click rate {rate:.4f}" if rate is not None else f"[preprocess] {split}: 0 rows")
    vocabulary_fields = [name for name, entry in statistics["fields"].items() if "vocabulary_size" in entry]
    print(f"[preprocess] vocabularies: {len(vocabulary_fields)} fields, {sum(statistics['fields'][n]['vocabulary_size'] for n in vocabulary_fields)} tokens in all")
    print(f"[preprocess] wrote {output_dir}")
    if rows_in != rows_written + dead:
        raise RuntimeError(f"Row conservation failed: rows_in={rows_in} != rows_written={rows_written} + rows_dead_lettered={dead}")
    if rows_in and dead / rows_in > max_bad_fraction:
        raise RuntimeError(
            f"{dead} of {rows_in} rows ({dead / rows_in:.2%}) are malformed, more than --max_bad_fraction="
            f"{max_bad_fraction}. See {FileSystems.join(output_dir, DEAD_LETTER)} for each row and its reason."
        )
    return PreprocessResult(output_dir, spec, statistics)


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    try:
        run(argv)
    except (ValueError, RuntimeError) as error:
        print(f"[preprocess] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
