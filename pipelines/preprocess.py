"""`python -m pipelines.preprocess`: raw click logs → TFRecords, vocabularies, schema, statistics.

Reads Criteo (TSV), Avazu (CSV) or any delimited file described by a
FeatureSpec, splits rows deterministically into train/valid/test, builds
vocabularies on the train split only and writes, under ``--output_dir``:

* ``train/``, ``valid/``, ``test/``: gzip TFRecords of raw-value
  `tf.train.Example`s (see `pipelines.examples`), one shard per split of
  each batch of 32,768 lines (`pipelines.shards`);
* ``vocabularies/<field>.txt``: one token per line, most frequent first (ids
  2, 3, ...; 0 is missing, 1 out-of-vocabulary);
* ``feature_spec.json``: the resolved FeatureSpec (vocabulary sizes and files);
* ``schema.pbtxt``: the tensorflow-metadata Schema of the examples;
* ``statistics.json``: rows and click rate per split, per-field cardinality,
  missing rate and valid/test OOV rate, rows in / written / dead-lettered;
* ``token_counts/<field>.parquet``: (token, count) of every vocabulary field
  over the whole day;
* ``dead_letter/``: JSON lines ``{file, line, reason, text}`` of the rows that
  could not be parsed;
* ``validation.json``, with ``--baseline PREPARED_DIR``: the day against the
  baseline day (`pipelines.validation`: L-infinity distance of categorical
  fields, Jensen-Shannon divergence of numeric ones, out-of-vocabulary share,
  missing rates, click rate, schema changes) and its anomalies. A day with
  anomalies is written but marked: the command names every anomalous field
  with both values and exits with code 3; ``featnet_tf.train`` refuses the
  directory unless ``--accept_anomalies`` is given.

The output appears whole or not at all: everything is written into a staging
directory beside it and moved into place only when the run has passed its
checks (`pipelines.staging`). An input pattern that matches no file, or a
truncated gzip file, fails the run before anything is published; a run with
more malformed rows than ``--max_bad_fraction`` publishes only its dead letter,
as ``<output_dir>.dead_letter/``. A non-empty ``--output_dir`` is refused
unless ``--overwrite`` is given (and is replaced only on success).

Rows travel in batches (`pipelines.batches.RowBatch`, 32,768 lines of a
file each): parsed into Arrow columns, counted, summarized and serialized a
column at a time (`pipelines.transforms`); only lines the column-wise checks
flag are parsed one by one, by the same rules (`pipelines.rows`).

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
from typing import Any, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.protobuf import text_format

from featnet_tf import prepared_data
from featnet_tf.features import FeatureSpec, with_vocabulary_sizes
from featnet_tf.prepared_data import SPLITS
from pipelines import examples, staging, transforms, validation
from pipelines.formats import FORMATS, spec_for_format
from pipelines.rows import RowParser
from pipelines.splits import ColumnSplit, FixedSplit, HashSplit, IndexSplit, read_index_file
from pipelines.transforms import (
    BatchStatisticsFn,
    BuildVocabularies,
    CountRows,
    CountTokensFn,
    InputFileError,
    NumericHistogramsFn,
    ReadSources,
    SumTokenCounts,
    WriteDeadLetter,
    WriteSplits,
    check_inputs_exist,
    summarize,
    write_text,
    write_token_counts,
    write_vocabulary,
)

# === The pipeline ===


@dataclasses.dataclass(frozen=True)
class PreprocessResult:
    output_dir: str
    spec: FeatureSpec
    statistics: dict[str, Any]
    validation: dict[str, Any] | None = None  # what validation.json holds, when a baseline was given


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """What one preprocessing run does: the command's flags, by the same names
    and defaults (``python -m pipelines.preprocess --help`` says what each is)."""

    output_dir: str
    format: str
    input: Sequence[str] | None = None
    train: Sequence[str] | None = None
    valid: Sequence[str] | None = None
    test: Sequence[str] | None = None
    split_indices: str | None = None
    spec: str | None = None
    min_count: int | None = None
    split_ratios: str = "8,1,1"
    split_seed: int = 0
    split_column: str | None = None
    split_boundaries: str = ""
    max_bad_fraction: float = 0.01
    overwrite: bool = False
    baseline: str | None = None
    max_l_infinity: float = validation.Thresholds.l_infinity
    max_js_divergence: float = validation.Thresholds.js_divergence
    max_oov_increase: float = validation.Thresholds.oov_increase
    max_missing_change: float = validation.Thresholds.missing_change
    max_click_rate_change: float = validation.Thresholds.click_rate_change

    def thresholds(self) -> validation.Thresholds:
        return validation.Thresholds(
            self.max_l_infinity,
            self.max_js_divergence,
            self.max_oov_increase,
            self.max_missing_change,
            self.max_click_rate_change,
        )


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.preprocess",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", action="append", help="file or glob; repeat for several; .gz read transparently")
    for split in SPLITS:
        parser.add_argument(
            f"--{split}", action="append", help=f"pre-split {split} input (file or glob), instead of --input"
        )
    parser.add_argument(
        "--split_indices",
        help="NumPy .npz with arrays train/valid/test of 0-based data-row positions into one --input file",
    )
    parser.add_argument("--format", choices=tuple(FORMATS), required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--spec", help="FeatureSpec JSON/YAML (required for csv; optional override otherwise)")
    parser.add_argument("--min_count", type=int, help="vocabulary minimum count for every field of a built-in format")
    parser.add_argument("--split_ratios", default="8,1,1", help="train,valid,test proportions of the hash split")
    parser.add_argument("--split_seed", type=int, default=0)
    parser.add_argument("--split_column", help="split by this raw column instead of by hash")
    parser.add_argument("--split_boundaries", default="", help="two values A,B: < A train, < B valid, else test")
    parser.add_argument(
        "--max_bad_fraction", type=float, default=0.01, help="fail when more rows than this are malformed"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --output_dir (once the new run has succeeded)"
    )
    parser.add_argument(
        "--baseline",
        help="a prepared directory (yesterday's) to validate this day against: writes validation.json; "
        "exit code 3 when it finds anomalies",
    )
    defaults = validation.Thresholds()
    for flag, default, what in (
        ("max_l_infinity", defaults.l_infinity, "L-infinity distance of a categorical or multi-hot field"),
        ("max_js_divergence", defaults.js_divergence, "Jensen-Shannon divergence (bits) of a numeric field"),
        ("max_oov_increase", defaults.oov_increase, "rise of a field's out-of-vocabulary share over the baseline's"),
        ("max_missing_change", defaults.missing_change, "change of a field's missing rate"),
        ("max_click_rate_change", defaults.click_rate_change, "relative change of the click rate"),
    ):
        parser.add_argument(
            f"--{flag}", type=float, default=default, help=f"anomaly above this {what} (a field's own in the spec wins)"
        )
    return parser.parse_known_args(argv)


def build_pipeline(
    pipeline: beam.Pipeline,
    spec: FeatureSpec,
    sources: Sequence[tuple[Sequence[str], RowParser]],
    split_provenance: dict[str, Any],
    output_dir: str,
) -> None:
    """Adds every step of the preprocessing to `pipeline`.

    One pass over the rows, in `RowBatch`es: token counts (per split and
    field), row statistics and the split's examples are all computed from the
    same batches as they stream past; the vocabularies and the OOV rates then
    come from the token counts alone, so nothing waits on the rows.
    """
    vocabulary_dir = prepared_data.path(output_dir, prepared_data.VOCABULARY_DIR)
    batches, dead_letters, lines_read = pipeline | "Read" >> ReadSources(sources)
    dead_letter_files = dead_letters | "DeadLetter" >> WriteDeadLetter(
        prepared_data.path(output_dir, prepared_data.DEAD_LETTER_DIR, "part")
    )
    token_counts = (
        batches
        | "CountTokens" >> beam.ParDo(CountTokensFn(spec))
        | "SumTokenCounts" >> beam.CombinePerKey(SumTokenCounts())
    )
    vocabularies, day_token_counts, oov_counts = token_counts | "BuildVocabularies" >> BuildVocabularies(spec)
    token_count_files = (
        day_token_counts
        | "WriteTokenCounts"
        >> beam.Map(write_token_counts, prepared_data.path(output_dir, prepared_data.TOKEN_COUNTS_DIR))
        | "AllTokenCounts" >> beam.combiners.ToList()
    )
    histograms = (
        batches
        | "NumericHistograms" >> beam.ParDo(NumericHistogramsFn(spec))
        | "SumHistograms" >> beam.CombinePerKey(lambda arrays: np.sum(list(arrays), axis=0))
        | "HistogramsDict" >> beam.combiners.ToDict()
    )
    vocabulary_summary = (
        vocabularies
        | "WriteVocabularies" >> beam.Map(write_vocabulary, vocabulary_dir)
        | "AllVocabularies" >> beam.combiners.ToList()
    )
    row_counts = batches | "RowStatistics" >> beam.ParDo(BatchStatisticsFn(spec))
    split_counts = (
        (row_counts, oov_counts)
        | "AllCounts" >> beam.Flatten()
        | "SumPerSplit" >> beam.CombinePerKey(lambda arrays: np.sum(list(arrays), axis=0))
        | "SplitCountsDict" >> beam.combiners.ToDict()
    )

    def write_metadata(split_counts, vocabulary_summary, accounting, histograms):
        sizes = {name: size for name, size, _ in vocabulary_summary}
        cardinalities = {name: cardinality for name, _, cardinality in vocabulary_summary}
        resolved = with_vocabulary_sizes(spec, sizes)
        for name in sizes:
            resolved = resolved.replace_field(name, vocabulary_file=prepared_data.vocabulary_file(name))
        write_text(
            prepared_data.path(output_dir, prepared_data.FEATURE_SPEC_FILE),
            json.dumps(resolved.to_dict(), indent=2) + "\n",
        )
        statistics = summarize(resolved, split_counts, sizes, cardinalities, histograms)
        statistics["split_provenance"] = split_provenance
        statistics["rows"] = {
            "rows_in": accounting["rows_in"],
            "rows_written": sum(accounting["rows_out"].values()),
            "rows_dead_lettered": accounting["rows_dead_lettered"],
            "dead_letter_reasons": accounting["dead_letter_reasons"],
        }
        write_text(
            prepared_data.path(output_dir, prepared_data.PARTIAL_STATISTICS_FILE),
            json.dumps(statistics, indent=2) + "\n",
        )

    rows_written, split_files = batches | "WriteSplits" >> WriteSplits(spec, output_dir)
    accounting = (lines_read, rows_written, dead_letters) | "CountRows" >> CountRows()
    _ = (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteMetadata"
        >> beam.Map(
            lambda _, counts, summary, accounting, histograms, *files_written: write_metadata(
                counts, summary, accounting, histograms
            ),
            beam.pvalue.AsSingleton(split_counts),
            beam.pvalue.AsSingleton(vocabulary_summary),
            beam.pvalue.AsSingleton(accounting),
            beam.pvalue.AsSingleton(histograms),
            # The data files are final before the metadata is written; and every
            # output feeds this last step, since the DaskRunner computes only the
            # graph of a pipeline's last transform (Beam 2.77's run_pipeline).
            beam.pvalue.AsSingleton(split_files),
            beam.pvalue.AsSingleton(dead_letter_files),
            beam.pvalue.AsSingleton(token_count_files),
        )
    )


def count_data_rows(path: str, header: bool) -> int:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
        lines = sum(1 for _ in iter(stream.readline, b""))
    return lines - (1 if header and lines else 0)


def plan_sources(
    args: PreprocessOptions, spec: FeatureSpec
) -> tuple[list[tuple[list[str], RowParser]], dict[str, Any]]:
    """The (patterns, parser) sources and the split provenance of the run;
    every check on the split flags happens here, before anything is written."""
    pre_split = {split: getattr(args, split) for split in SPLITS if getattr(args, split)}
    if bool(args.input) == bool(pre_split):
        raise ValueError("Give either --input, or pre-split --train/--valid/--test inputs (not both).")
    for split, patterns in pre_split.items():
        check_inputs_exist(patterns, f"--{split}")
    if args.input:
        check_inputs_exist(args.input, "--input")
    if pre_split:
        if args.split_indices or args.split_column:
            raise ValueError("Pre-split --train/--valid/--test inputs take no --split_indices or --split_column.")
        sources = [
            (patterns, RowParser(spec, args.format, FixedSplit(split, tuple(patterns))))
            for split, patterns in pre_split.items()
        ]
        return sources, {"method": "files", **{split: patterns for split, patterns in pre_split.items()}}
    if args.split_indices:
        matched = [metadata.path for result in FileSystems.match(args.input) for metadata in result.metadata_list]
        if len(matched) != 1:
            raise ValueError(
                f"--split_indices indexes a single input file; --input matched {len(matched)}: {matched[:5]}"
            )
        num_rows = count_data_rows(matched[0], spec.input_format.header)
        with FileSystems.open(args.split_indices) as stream:
            codes = read_index_file(stream.read(), args.split_indices, num_rows)
        splitter: Any = IndexSplit(codes, args.split_indices)
    elif args.split_column:
        splitter = ColumnSplit(args.split_column, tuple(float(b) for b in args.split_boundaries.split(",") if b))
    else:
        splitter = HashSplit(tuple(float(r) for r in args.split_ratios.split(",")), args.split_seed)
    return [(args.input, RowParser(spec, args.format, splitter))], splitter.describe()


class TooManyBadRows(RuntimeError):
    """More rows than `--max_bad_fraction` were malformed."""


def run(argv: Sequence[str] | None = None) -> PreprocessResult:
    """The command line's run: its flags, the rest Beam's `PipelineOptions`;
    `validation.DataAnomalies` once a day with anomalies is written."""
    args, pipeline_args = parse_args(argv)
    result = preprocess(PreprocessOptions(**vars(args)), pipeline_args)
    if result.validation and result.validation["anomalies"]:
        raise validation.DataAnomalies(result.output_dir, result.validation)
    return result


def preprocess(args: PreprocessOptions, pipeline_args: Sequence[str] = ()) -> PreprocessResult:
    """Runs the pipeline (Beam's DirectRunner unless `pipeline_args` name
    another) and publishes `args.output_dir` whole, or raises with nothing
    published: `ValueError` for options that cannot work, `RuntimeError` for
    an input that fails or more malformed rows than `args.max_bad_fraction`.
    A day validated against `args.baseline` is published whatever its
    anomalies (the result's `validation` lists them, and ``validation.json``
    marks the directory, which training then refuses)."""
    spec = spec_for_format(args.format, FeatureSpec.load(args.spec) if args.spec else None, args.min_count)
    transforms.check_max_bad_fraction(args.max_bad_fraction)
    if args.baseline and not FileSystems.exists(prepared_data.path(args.baseline, prepared_data.STATISTICS_FILE)):
        raise ValueError(f"--baseline {args.baseline} is not a preprocessing output directory (no statistics.json)")
    staging.check_output_dir(args.output_dir, args.overwrite)
    sources, provenance = plan_sources(args, spec)
    options = transforms.pipeline_options(pipeline_args)
    staged = staging.staging_dir(args.output_dir)
    dead_letter_kept = args.output_dir.rstrip("/") + ".dead_letter"
    try:
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, spec, sources, provenance, staged)
        try:
            transforms.run_to_completion(pipeline)
        except InputFileError as error:
            raise RuntimeError(
                f"{transforms.runner_error_message(error)}; nothing was written to {args.output_dir}"
            ) from None
        outcome = finish(staged, args.max_bad_fraction)
        if args.baseline:
            report = validation.validate(staged, args.baseline, args.thresholds())
            report["day"] = args.output_dir
            write_text(prepared_data.path(staged, prepared_data.VALIDATION_FILE), json.dumps(report, indent=2) + "\n")
            for line in validation.summary_lines(report):
                print(f"[preprocess] {line}")
            outcome = dataclasses.replace(outcome, validation=report)
    except TooManyBadRows as error:
        staging.move_dead_letter(staged, dead_letter_kept)
        staging.discard(staged)
        raise RuntimeError(
            f"{error}; nothing was written to {args.output_dir}. Each malformed row and its reason: {dead_letter_kept}"
        ) from None
    except BaseException:
        staging.discard(staged)
        raise
    staging.publish(staged, args.output_dir)
    print(f"[preprocess] wrote {args.output_dir}")
    return dataclasses.replace(outcome, output_dir=args.output_dir)


def finish(output_dir: str, max_bad_fraction: float) -> PreprocessResult:
    """Checks row conservation and the bad-row budget, from the accounting the
    pipeline wrote (`transforms.CountRows`, the same on every runner), writes
    the final statistics and schema, and prints the summary."""
    statistics_path = prepared_data.path(output_dir, prepared_data.PARTIAL_STATISTICS_FILE)
    with FileSystems.open(statistics_path) as stream:
        statistics = json.loads(stream.read().decode("utf-8"))
    FileSystems.delete([statistics_path])
    rows_in = statistics["rows"]["rows_in"]
    rows_written = statistics["rows"]["rows_written"]
    dead = statistics["rows"]["rows_dead_lettered"]
    with FileSystems.open(prepared_data.path(output_dir, prepared_data.FEATURE_SPEC_FILE)) as stream:
        spec = FeatureSpec.from_dict(json.loads(stream.read().decode("utf-8")))
    write_text(prepared_data.path(output_dir, prepared_data.STATISTICS_FILE), json.dumps(statistics, indent=2) + "\n")
    write_text(
        prepared_data.path(output_dir, prepared_data.SCHEMA_FILE), text_format.MessageToString(examples.to_schema(spec))
    )

    print(f"[preprocess] rows_in={rows_in} = rows_written={rows_written} + rows_dead_lettered={dead}")
    for split in SPLITS:
        entry = statistics["splits"][split]
        rate = entry["click_rate"]
        print(
            f"[preprocess] {split}: {entry['rows']} rows, click rate {rate:.4f}"
            if rate is not None
            else f"[preprocess] {split}: 0 rows"
        )
    vocabulary_fields = [name for name, entry in statistics["fields"].items() if "vocabulary_size" in entry]
    print(
        f"[preprocess] vocabularies: {len(vocabulary_fields)} fields, "
        f"{sum(statistics['fields'][n]['vocabulary_size'] for n in vocabulary_fields)} tokens in all"
    )
    if rows_in != rows_written + dead:
        raise RuntimeError(
            f"Row conservation failed: rows_in={rows_in} != rows_written={rows_written} + rows_dead_lettered={dead}"
        )
    over_budget = transforms.over_bad_row_budget(dead, rows_in, max_bad_fraction)
    if over_budget:
        raise TooManyBadRows(over_budget)
    return PreprocessResult(output_dir, spec, statistics)


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    try:
        run(argv)
    except validation.DataAnomalies as error:
        print(f"[preprocess] {error}", file=sys.stderr)
        print(
            f"[preprocess] {error.output_dir} is written and marked: train on it only with --accept_anomalies",
            file=sys.stderr,
        )
        return validation.ANOMALIES_EXIT_CODE
    except (ValueError, RuntimeError) as error:
        print(f"[preprocess] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
