"""`python -m pipelines.score`: batch CTR predictions through Apache Beam.

Reads raw rows in the formats of `pipelines.preprocess` (or its TFRecords),
32,768 rows at a time, and scores each batch, ``--batch_size`` rows per model call, with Beam's
`RunInference` (the model is loaded once per worker): raw rows are parsed
into columns (`pipelines.batches`) and fed straight to the SavedModel's
`predict_raw` signature, TFRecords go to `serving_default`. It writes one
prediction per input row with its row key: the format's id
column (Avazu's ``id``, ``--key_column``) or ``file:line`` (``file:record``
for TFRecords). The SavedModel is the one TF Serving answers online with, on
the same raw values, so batch and online predictions agree.

    python -m pipelines.score --model runs/featnet_criteo/export --input 'logs/day_*.tsv.gz' \
        --format criteo --output /tmp/scores/part --output_format parquet

Malformed rows (and TFRecord records that are not `tf.train.Example`s) go to
``<output>-dead_letter*.jsonl`` with their reason; ``rows_in = rows_scored +
rows_dead_lettered`` is printed and checked, counted from the pipeline's own
outputs (`transforms.CountRows`), so that it holds on every runner. More malformed rows than
``--max_bad_fraction``, an input pattern that matches no file, or a truncated
input file fail the run, and a failed run publishes no predictions: they are
written under a staging prefix and renamed into place only on success (the
dead letter of a run over its bad-row budget is kept). Unknown flags go to Beam's PipelineOptions
(DirectRunner by default; ``--runner DaskRunner --dask_client_address HOST:PORT`` for a Dask cluster).
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
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from featnet_tf.features import FeatureSpec
from pipelines import staging, transforms
from pipelines.batches import RowBatch
from pipelines.formats import FORMATS, spec_for_format
from pipelines.rows import RowParser
from pipelines.shards import WriteShards
from pipelines.splits import FixedSplit
from pipelines.tfrecords import frame_records
from tfbase.versions import latest_version_dir

COUNTER_NAMESPACE = "featnet_tf.score"
OUTPUT_FORMATS = ("csv", "tfrecord", "parquet")
DEAD_LETTER_SUFFIX = "-dead_letter"


@dataclasses.dataclass
class ExamplesBatch:
    """Serialized `tf.train.Example`s of one TFRecord file, with their keys."""

    keys: list[str]
    examples: list[bytes]

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, start: int, stop: int) -> "ExamplesBatch":
        return ExamplesBatch(self.keys[start:stop], self.examples[start:stop])


def raw_inputs(spec: FeatureSpec, batch: RowBatch) -> dict[str, np.ndarray]:
    """A batch's parsed columns as the SavedModel's `predict_raw` inputs:
    strings for categoricals, float32 with NaN for missing numerics,
    ""-padded (rows, longest) strings for multi-hot, (rows, dimension)
    floats with the field's default for missing dense vectors."""
    inputs = {}
    for field in spec.fields:
        values = batch.values[field.name]
        kind = field.field_kind
        if kind.raw_dtype == "string" and not kind.multivalued:
            inputs[field.name] = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        elif kind.raw_dtype == "string":
            lengths = pc.list_value_length(values).to_numpy()
            padded = np.full((len(values), max(int(lengths.max(initial=0)), 1)), "", dtype=object)
            rows = np.repeat(np.arange(len(values)), lengths)
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            padded[rows, np.arange(lengths.sum()) - starts] = pc.list_flatten(values).to_numpy(zero_copy_only=False)
            inputs[field.name] = padded
        elif kind.multivalued:
            filled = values.fill_null(pa.scalar([field.default] * field.dimension, values.type))
            inputs[field.name] = pc.list_flatten(filled).to_numpy().astype(np.float32).reshape(-1, field.dimension)
        else:
            inputs[field.name] = values.fill_null(np.nan).to_numpy().astype(np.float32)
    return inputs


def as_elements(batch: Any) -> Sequence[Any]:
    """RunInference hands a handler that skips batching one element, not a list."""
    return [batch] if isinstance(batch, (RowBatch, ExamplesBatch)) else batch


class SavedModelBatchHandler(ModelHandler):
    """RunInference handler for whole batches, `rows_per_call` rows per model
    call: a `RowBatch` of parsed raw rows goes to the SavedModel's
    `predict_raw` signature (no `tf.train.Example` in between), an
    `ExamplesBatch` to `serving_default`. The inference of an element is its
    probabilities."""

    def __init__(self, export_dir: str, spec: FeatureSpec | None = None, rows_per_call: int = 1024) -> None:
        self.export_dir = export_dir
        self.spec = spec
        self.rows_per_call = rows_per_call

    def load_model(self):
        import tensorflow as tf

        return tf.saved_model.load(self.export_dir)

    def run_inference(self, batch: Any, model, inference_args=None) -> Iterable[PredictionResult]:
        import tensorflow as tf

        results = []
        for element in as_elements(batch):
            probabilities = []
            for start in range(0, len(element), self.rows_per_call):
                part = element.slice(start, start + self.rows_per_call)
                if isinstance(part, ExamplesBatch):
                    outputs = model.signatures["serving_default"](examples=tf.constant(part.examples, dtype=tf.string))
                else:
                    inputs = raw_inputs(self.spec, part)
                    outputs = model.signatures["predict_raw"](
                        **{name: tf.constant(value) for name, value in inputs.items()}
                    )
                probabilities.append(outputs["probability"].numpy())
            results.append(PredictionResult(element, np.concatenate(probabilities)))
        return results

    def get_num_bytes(self, batch: Any) -> int:
        return sum(
            sum(len(example) for example in element.examples)
            if isinstance(element, ExamplesBatch)
            else sum(array.nbytes for array in element.values.values())
            for element in as_elements(batch)
        )

    def should_skip_batching(self) -> bool:
        # Each element is a batch already, and Beam's `BatchElements` flushes its
        # last batch from `finish_bundle`, whose outputs the DaskRunner drops.
        return True

    def get_metrics_namespace(self) -> str:
        return COUNTER_NAMESPACE


class KeyedTFRecordsFn(beam.DoFn):
    """``("rows", batch)`` of `ExamplesBatch`es of up to `batch_size` records
    of a TFRecord file, keyed ``file:record``; a record that is not a
    `tf.train.Example` goes to ``("dead_letter", [record])``, the file's count
    of records to ``("lines_read", (file, records))``; a file that cannot be
    read to its end fails the run, naming it."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.rows_in = transforms.counter("rows_in")
        self.rows_dead = transforms.counter("rows_dead_lettered")

    def process(self, readable: fileio.ReadableFile) -> Iterable[Any]:
        import tensorflow as tf
        from tensorflow.core.example import example_pb2

        path = readable.metadata.path
        compression = "GZIP" if path.endswith(".gz") else ""
        index = 0
        batch = ExamplesBatch([], [])
        try:
            for index, record in enumerate(
                tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator(), start=1
            ):
                self.rows_in.inc()
                try:
                    example_pb2.Example.FromString(record)
                except Exception as error:  # protobuf's DecodeError, whatever its module
                    self.rows_dead.inc()
                    reason = f"record {index} is not a tf.train.Example: {error}"
                    text = record[:200].decode("utf-8", "replace")
                    yield transforms.DEAD_LETTER, [{"file": path, "line": index, "reason": reason, "text": text}]
                    continue
                batch.keys.append(f"{path}:{index}")
                batch.examples.append(record)
                if len(batch) == self.batch_size:
                    yield transforms.ROWS, batch
                    batch = ExamplesBatch([], [])
        except tf.errors.OpError as error:
            raise transforms.InputFileError(
                f"{path} cannot be read after record {index}: {error.message.strip().splitlines()[-1]}"
            ) from None
        if len(batch):
            yield transforms.ROWS, batch
        yield transforms.LINES_READ, (path, index)


def batch_keys(element: Any) -> list[str]:
    if isinstance(element, ExamplesBatch):
        return element.keys
    return element.row_keys().to_pylist()


def csv_shard(item: tuple[list[str], np.ndarray]) -> bytes:
    keys, probabilities = item
    lines = "".join(f"{json.dumps(key)},{probability!r}\n" for key, probability in zip(keys, probabilities.tolist()))
    return ("key,probability\n" + lines).encode("utf-8")


def tfrecord_shard(item: tuple[list[str], np.ndarray]) -> bytes:
    from tensorflow.core.example import example_pb2

    records = []
    for key, probability in zip(item[0], item[1].tolist()):
        example = example_pb2.Example()
        example.features.feature["key"].bytes_list.value.append(key.encode("utf-8"))
        example.features.feature["probability"].float_list.value.append(probability)
        records.append(example.SerializeToString())
    return bytes(frame_records(pa.array(records, pa.binary())))


PREDICTIONS_SCHEMA = pa.schema([("key", pa.string()), ("probability", pa.float64())])


def parquet_shard(item: tuple[list[str], np.ndarray]) -> bytes:
    import pyarrow.parquet as pq

    table = pa.table({"key": item[0], "probability": item[1].astype(np.float64)}, schema=PREDICTIONS_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


SHARD_WRITERS = {"csv": csv_shard, "tfrecord": tfrecord_shard, "parquet": parquet_shard}


def write_predictions(predictions, output: str, output_format: str):
    """Writes ``(keys, probabilities)`` batches as CSV (with a header),
    TFRecord or Parquet files, one per batch (`pipelines.shards`)."""
    return (
        predictions
        | "Keyed" >> beam.Map(lambda item: (output_format, item))
        | "Write"
        >> WriteShards(
            {output_format: output}, f".{output_format}", output.rsplit("/", 1)[0], SHARD_WRITERS[output_format]
        )
    )


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    rows_in: int
    rows_scored: int
    rows_dead_lettered: int


@dataclasses.dataclass(frozen=True)
class ScoreOptions:
    """What one scoring run does: the command's flags, by the same names and
    defaults (``python -m pipelines.score --help`` says what each is)."""

    model: str
    input: Sequence[str]
    format: str
    output: str
    spec: str | None = None
    unlabeled: bool = False
    key_column: str | None = None
    output_format: str = "csv"
    batch_size: int = 1024
    max_bad_fraction: float = 0.01


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m pipelines.score", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="an export directory, or a base path of versions (the newest is used)"
    )
    parser.add_argument("--input", action="append", required=True, help="file or glob; repeat for several")
    parser.add_argument("--format", choices=(*FORMATS, "tfrecord"), required=True)
    parser.add_argument(
        "--spec", help="FeatureSpec of the csv format (or the feature_spec.json of a preprocessing run)"
    )
    parser.add_argument("--unlabeled", action="store_true", help="rows have no label column")
    parser.add_argument("--key_column", help="row key column (default: the format's id column, else file:line)")
    parser.add_argument("--output", required=True, help="output prefix, e.g. /tmp/scores/part")
    parser.add_argument("--output_format", choices=OUTPUT_FORMATS, default="csv")
    parser.add_argument("--batch_size", type=int, default=1024, help="rows per model call")
    parser.add_argument(
        "--max_bad_fraction", type=float, default=0.01, help="fail when more rows than this are malformed"
    )
    return parser.parse_known_args(argv)


def run(argv: Sequence[str] | None = None) -> ScoreResult:
    """The command line's run: its flags, the rest Beam's `PipelineOptions`."""
    args, pipeline_args = parse_args(argv)
    return score(ScoreOptions(**vars(args)), pipeline_args)


def score(args: ScoreOptions, pipeline_args: Sequence[str] = ()) -> ScoreResult:
    """Scores every row (Beam's DirectRunner unless `pipeline_args` name
    another) and publishes the predictions, or raises with none published:
    `ValueError` for options that cannot work, `RuntimeError` for an input
    that fails or more malformed rows than `args.max_bad_fraction`."""
    if args.batch_size <= 0:
        raise ValueError(f"--batch_size must be positive. Received: {args.batch_size}")
    transforms.check_max_bad_fraction(args.max_bad_fraction)
    export_dir = latest_version_dir(args.model)
    transforms.check_inputs_exist(args.input, "--input")
    options = transforms.pipeline_options(pipeline_args)
    staged = staging.staging_prefix(args.output)
    accounting_path = staged.rsplit("/", 1)[0] + "/accounting.json"  # beside the shards, never published
    pipeline = beam.Pipeline(options=options)
    if args.format == "tfrecord":
        spec = None
        read = (
            pipeline
            | "Patterns" >> beam.Create(args.input)
            | "MatchFiles" >> fileio.MatchAll()
            | "ReadMatches" >> fileio.ReadMatches(compression=CompressionTypes.UNCOMPRESSED)
            | "ReadRecords" >> beam.ParDo(KeyedTFRecordsFn(transforms.ROWS_PER_BATCH))
        )
        read = transforms.split_outputs(read, (transforms.ROWS, transforms.DEAD_LETTER, transforms.LINES_READ))
    else:
        spec = spec_for_format(args.format, FeatureSpec.load(args.spec) if args.spec else None)
        if args.key_column:
            spec = dataclasses.replace(spec, input_format=dataclasses.replace(spec.input_format, key=args.key_column))
        parser = RowParser(spec, args.format, FixedSplit("test"), labeled=not args.unlabeled)
        read = pipeline | "ReadRows" >> transforms.ReadBatches(args.input, parser)
    dead_letter_files = read[transforms.DEAD_LETTER] | "DeadLetter" >> transforms.WriteDeadLetter(
        f"{staged}{DEAD_LETTER_SUFFIX}"
    )

    scored = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "rows_scored")

    def unwrap(result: PredictionResult):
        scored.inc(len(result.inference))
        return batch_keys(result.example), result.inference

    predictions = (
        read[transforms.ROWS]
        | "RunInference" >> RunInference(SavedModelBatchHandler(export_dir, spec, args.batch_size))
        | "Unwrap" >> beam.Map(unwrap)
    )
    prediction_files = write_predictions(predictions, staged, args.output_format)
    _ = (
        (
            read[transforms.LINES_READ],
            predictions | "RowsScored" >> beam.Map(lambda item: ("scored", len(item[1]))),
            read[transforms.DEAD_LETTER],
        )
        | "CountRows" >> transforms.CountRows()
        # Written once the files are final; and every output feeds this last
        # step, since the DaskRunner computes only the graph of a pipeline's
        # last transform (Beam 2.77's run_pipeline).
        | "WriteAccounting"
        >> beam.Map(
            lambda counts, *files: transforms.write_text(accounting_path, json.dumps(counts)),
            beam.pvalue.AsSingleton(prediction_files),
            beam.pvalue.AsSingleton(dead_letter_files),
        )
    )
    try:
        transforms.run_to_completion(pipeline)
    except transforms.InputFileError as error:
        staging.discard_prefix(staged)
        raise RuntimeError(f"{transforms.runner_error_message(error)}; no predictions were written") from None
    except BaseException:
        staging.discard_prefix(staged)
        raise

    with FileSystems.open(accounting_path) as stream:  # from the outputs, the same on every runner
        accounting = json.loads(stream.read().decode("utf-8"))
    rows_in, dead = accounting["rows_in"], accounting["rows_dead_lettered"]
    outcome = ScoreResult(rows_in, accounting["rows_out"].get("scored", 0), dead)
    print(
        f"[score] model {export_dir}: rows_in={outcome.rows_in} = rows_scored={outcome.rows_scored} + "
        f"rows_dead_lettered={outcome.rows_dead_lettered}"
    )
    problem = None
    over_budget = transforms.over_bad_row_budget(dead, rows_in, args.max_bad_fraction)
    if outcome.rows_in != outcome.rows_scored + outcome.rows_dead_lettered:
        problem = f"Row conservation failed: {outcome}"
    elif over_budget:
        problem = (
            f"{over_budget}; no predictions were written. Each malformed row and its reason: "
            f"{args.output}{DEAD_LETTER_SUFFIX}*.jsonl"
        )
    if problem:
        staging.publish_prefix(staged, args.output, only=f"{staged}{DEAD_LETTER_SUFFIX}")
        raise RuntimeError(problem)
    staging.publish_prefix(staged, args.output)
    print(f"[score] wrote {args.output}*.{args.output_format}")
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    try:
        run(argv)
    except (ValueError, RuntimeError) as error:
        print(f"[score] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
