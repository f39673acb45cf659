"""Microseconds per row of the ways to parse and encode a batch of raw Criteo rows.

On the same lines, in one process, one line each:

* parsing: `RowParser.parse` per line (the per-row path); tfx-bsl's CSV
  decoding (`csv_decoder.ParseCSVLine` per line, then
  `BatchedCSVRowsToRecordBatch`, its two DoFns called directly, string
  columns); Python's ``str.split`` per line then `pyarrow.array` per column;
  pyarrow's CSV reader inside `BatchParser` (what the pipelines use, checks
  and splits included);
* encoding: `ExampleEncoder` per row (protobuf in Python); tfx-bsl's C++
  `RecordBatchToExamplesEncoder` from Arrow list columns; `encode_batch`
  (what the pipelines use);
* framing and compression of the encoded batch (`frame_records`, zlib at
  levels 1 and 6: Beam's gzip writer uses 6).

    python benchmarks/batch_encoding.py --input /tmp/featnet_bench/criteo_1000000.tsv --rows 65536
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib

import numpy as np
import pyarrow as pa
from tfx_bsl.coders import csv_decoder, example_coder

from pipelines import columns, examples
from pipelines.batches import BatchParser
from pipelines.formats import criteo_spec
from pipelines.rows import RowParser
from pipelines.splits import HashSplit
from pipelines.tfrecords import frame_records


def timed(label: str, rows: int, function, repeats: int = 3):
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    print(f"{label}: {(time.perf_counter() - start) / repeats / rows * 1e6:.2f} us/row", flush=True)
    return result


def tfx_bsl_columns(spec, batch) -> pa.RecordBatch:
    """The batch as tfx-bsl's list columns (missing values as null lists)."""
    arrays = [pa.array(batch.labels.reshape(-1, 1).tolist(), pa.list_(pa.int64()))]
    for field in spec.fields:
        values = batch.values[field.name]
        missing = pa.array(columns.missing_rows(field, values))
        offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
        item = values.cast(pa.binary()) if field.kind == "categorical" else values
        arrays.append(pa.ListArray.from_arrays(offsets, item, mask=missing))
    return pa.RecordBatch.from_arrays(arrays, [spec.label, *spec.names])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="a Criteo-format file")
    parser.add_argument("--rows", type=int, default=65536)
    args = parser.parse_args(argv)
    with open(args.input, "rb") as stream:
        lines = [line for _, line in zip(range(args.rows), stream)]
    rows = len(lines)
    spec = criteo_spec()
    row_parser = RowParser(spec, "criteo", HashSplit())
    names = row_parser.columns(None)
    texts = [line.decode("utf-8").rstrip("\r\n") for line in lines]

    parsed = timed(
        "parse: RowParser.parse per line",
        rows,
        lambda: [row_parser.parse(text, names, "f", n, n) for n, text in enumerate(texts)],
        repeats=1,
    )
    parse_line = csv_decoder.ParseCSVLine("\t")
    parse_line.setup()
    to_record_batch = csv_decoder.BatchedCSVRowsToRecordBatch(skip_blank_lines=False)
    column_infos = [csv_decoder.ColumnInfo(name, csv_decoder.ColumnType.STRING) for name in names]
    timed(
        "parse: tfx-bsl csv_decoder (ParseCSVLine + BatchedCSVRowsToRecordBatch)",
        rows,
        lambda: list(to_record_batch.process([next(parse_line.process(text)) for text in texts], column_infos)),
        repeats=1,
    )
    timed(
        "parse: str.split per line + pyarrow.array per column",
        rows,
        lambda: [pa.array(column, pa.string()) for column in zip(*(text.split("\t") for text in texts))],
        repeats=1,
    )
    batch_parser = BatchParser(row_parser)
    batch, _ = timed(
        "parse: BatchParser (pyarrow CSV, checks, split)", rows, lambda: batch_parser.parse(lines, names, "f", 1, 0)
    )

    encoder = examples.ExampleEncoder(spec)
    timed(
        "encode: ExampleEncoder per row",
        rows,
        lambda: [encoder.encode(row.values, row.label).SerializeToString() for row in parsed],
        repeats=1,
    )
    record_batch = tfx_bsl_columns(spec, batch)
    tfx_encoder = example_coder.RecordBatchToExamplesEncoder()
    timed(
        "encode: tfx-bsl RecordBatchToExamplesEncoder (columns ready)", rows, lambda: tfx_encoder.encode(record_batch)
    )
    encoded = timed("encode: encode_batch", rows, lambda: examples.encode_batch(spec, batch.values, batch.labels))

    framed = bytes(timed("frame: frame_records", rows, lambda: frame_records(encoded)))
    for level in (1, 6):
        compressed = timed(f"gzip: zlib level {level}", rows, lambda: zlib.compress(framed, level), repeats=1)
        print(f"  level {level}: {len(compressed) / len(framed):.3f} of the framed bytes", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
