"""Parsing raw lines a batch at a time into columns, with the per-row rules.

`BatchParser` is the column-wise form of `pipelines.rows.RowParser`: it
takes a chunk of lines of one file and returns a `RowBatch` (one Arrow array
per field, labels, split codes, line numbers) and the dead-letter records of
the lines that could not be parsed. The common case runs in C++ and NumPy:
pyarrow's CSV reader splits the lines into cells, `pipelines.columns` parses
each column, the splitter assigns splits for the whole batch.

Exactness comes first. A line that any column-wise check cannot vouch for (a
wrong number of cells, bytes that are not UTF-8, a quote in a CSV line, a
carriage return inside it, a label other than 0/1, a cell Arrow cannot read
as Python would) is handed to `RowParser.parse`, the per-row path, which
either parses it after all or raises `BadRowError` with today's reason. So
the dead letter (line numbers, reasons, text) and the parsed values are
those of the per-row path by construction, and only the flagged lines pay
for Python.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from featnet_tf.features import FeatureSpec
from pipelines import columns as columns_lib
from pipelines.bad_rows import BadRowError
from pipelines.rows import Row, RowParser
from pipelines.splits import SPLIT_CODES


@dataclasses.dataclass
class RowBatch:
    """Parsed rows, column by column.

    Attributes:
        values: field name → parsed values (`pipelines.columns.value_type`).
        labels: int64, 0/1, or -1 for unlabeled rows.
        splits: int8 codes into `SPLITS`.
        line_numbers: int64, each row's line in `source`.
        source: the file the rows come from.
        keys: the key column's cells, or None for ``source:line``.
    """

    values: dict[str, pa.Array]
    labels: np.ndarray
    splits: np.ndarray
    line_numbers: np.ndarray
    source: str
    keys: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def row_keys(self) -> pa.Array:
        """Each row's key: the key column, or ``file:line``."""
        if self.keys is not None:
            return self.keys
        return pa.array([f"{self.source}:{number}" for number in self.line_numbers.tolist()], pa.string())

    def slice(self, start: int, stop: int) -> "RowBatch":
        """Rows `start` to `stop` (no copy)."""
        stop = min(stop, len(self))
        return RowBatch(
            {name: array.slice(start, stop - start) for name, array in self.values.items()},
            self.labels[start:stop],
            self.splits[start:stop],
            self.line_numbers[start:stop],
            self.source,
            None if self.keys is None else self.keys.slice(start, stop - start),
        )

    def take(self, indices: np.ndarray) -> "RowBatch":
        """The rows at `indices` (a boolean mask or positions)."""
        positions = np.flatnonzero(indices) if np.asarray(indices).dtype == bool else np.asarray(indices)
        index_array = pa.array(positions, pa.int64())
        return RowBatch(
            {name: array.take(index_array) for name, array in self.values.items()},
            self.labels[positions],
            self.splits[positions],
            self.line_numbers[positions],
            self.source,
            None if self.keys is None else self.keys.take(index_array),
        )

    @staticmethod
    def concat(batches: Sequence["RowBatch"]) -> "RowBatch":
        batches = [batch for batch in batches if len(batch)] or list(batches[:1])
        if len(batches) == 1:
            return batches[0]
        keys = None
        if any(batch.keys is not None for batch in batches):
            keys = pa.concat_arrays([batch.row_keys() for batch in batches])
        return RowBatch(
            {name: pa.concat_arrays([batch.values[name] for batch in batches]) for name in batches[0].values},
            np.concatenate([batch.labels for batch in batches]),
            np.concatenate([batch.splits for batch in batches]),
            np.concatenate([batch.line_numbers for batch in batches]),
            batches[0].source,
            keys,
        )

    @staticmethod
    def from_rows(spec: FeatureSpec, rows: Sequence[Row], line_numbers: Sequence[int], source: str) -> "RowBatch":
        """A batch of rows parsed one by one (`RowParser.parse`)."""
        return RowBatch(
            {
                field.name: columns_lib.from_values(field, [row.values[field.name] for row in rows])
                for field in spec.fields
            },
            np.array([row.label for row in rows], dtype=np.int64),
            np.array([SPLIT_CODES[row.split] for row in rows], dtype=np.int8),
            np.array(line_numbers, dtype=np.int64),
            source,
            pa.array([row.key for row in rows], pa.string()),
        )


def dead_letter(path: str, line_number: int, reason: str, text: str | None) -> dict[str, Any]:
    """One dead-letter record: ``{file, line, reason, text}``."""
    return {"file": path, "line": line_number, "reason": reason, "text": text}


def parse_line(parser: RowParser, raw: bytes, columns: tuple[str, ...], path: str, line_number: int, position: int):
    """The per-row path: one raw line → a `Row`, or its dead-letter record."""
    text = None
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
        return parser.parse(text, columns, path, line_number, position)
    except UnicodeDecodeError as error:
        reason = f"undecodable bytes: {error.reason} at byte {error.start}"
        return dead_letter(path, line_number, reason, raw.decode("utf-8", "replace"))
    except BadRowError as error:
        return dead_letter(path, line_number, str(error), text)


class BatchParser:
    """Parses chunks of lines of one input format into `RowBatch`es.

    Args:
        parser: the per-row parser whose rules (and splitter) the batches
            follow; it parses the lines the column-wise checks flag.
    """

    def __init__(self, parser: RowParser) -> None:
        self.parser = parser
        self.spec = parser.spec
        layout = parser.layout
        self.delimiter = layout.delimiter.encode("utf-8")
        self.quoting = layout.delimiter != "\t"  # TSV cells are split as they are, quotes included
        self.derive_from = tuple(parser.format.derive_from)

    def needed_columns(self) -> list[str]:
        needed = self.parser.required_columns() + list(self.derive_from)
        if self.parser.layout.key:
            needed.append(self.parser.layout.key)
        return list(dict.fromkeys(needed))

    def parse(
        self,
        lines: Sequence[bytes],
        columns: tuple[str, ...],
        path: str,
        first_line_number: int,
        first_position: int,
    ) -> tuple[RowBatch, list[dict[str, Any]]]:
        """Raw lines (with their line endings) → (the parsed rows, dead-letter
        records of the others). `first_line_number` is the first line's
        number in `path`, `first_position` its 0-based data-row position."""
        count = len(lines)
        line_numbers = np.arange(first_line_number, first_line_number + count, dtype=np.int64)
        positions = np.arange(first_position, first_position + count, dtype=np.int64)
        texts = [line.rstrip(b"\r\n") for line in lines]
        flagged, joined = self._flag_lines(texts, len(columns))
        fast = np.flatnonzero(~flagged)
        batch = None
        if fast.size:
            if fast.size < count:
                texts = [texts[i] for i in fast]
                joined = b"\n".join(texts)
            batch, bad = self._parse_columns(texts, joined, columns, path, line_numbers[fast], positions[fast])
            if bad.any():
                flagged[fast[bad]] = True
                batch = batch.take(~bad)
        rows, row_lines, dead = [], [], []
        for index in np.flatnonzero(flagged).tolist():
            number = int(line_numbers[index])
            parsed = parse_line(self.parser, lines[index], columns, path, number, int(positions[index]))
            if isinstance(parsed, Row):
                rows.append(parsed)
                row_lines.append(number)
            else:
                dead.append(parsed)
        parts = [batch] if batch is not None else []
        if rows or not parts:
            parts.append(RowBatch.from_rows(self.spec, rows, row_lines, path))
        return RowBatch.concat(parts), dead

    def _flag_lines(self, texts: list[bytes], num_columns: int) -> tuple[np.ndarray, bytes]:
        """Lines the CSV reader cannot be trusted with (a wrong cell count,
        bytes that are not UTF-8, a carriage return inside, a quote in CSV),
        and the lines joined by newlines."""
        flagged = np.fromiter(map(bytes.count, texts, itertools.repeat(self.delimiter)), np.int64, len(texts))
        flagged = flagged != num_columns - 1
        joined = b"\n".join(texts)
        suspicious = []
        try:
            joined.decode("utf-8")
        except UnicodeDecodeError:
            suspicious.append(lambda text: not _is_utf8(text))
        if b"\r" in joined:
            suspicious.append(lambda text: b"\r" in text)
        if self.quoting and b'"' in joined:
            suspicious.append(lambda text: b'"' in text)
        for check in suspicious:
            flagged |= np.fromiter(map(check, texts), bool, len(texts))
        return flagged, joined

    def _parse_columns(
        self,
        texts: list[bytes],
        joined: bytes,
        columns: tuple[str, ...],
        path: str,
        line_numbers: np.ndarray,
        positions: np.ndarray,
    ) -> tuple[RowBatch, np.ndarray]:
        """Lines of the right shape → (a batch of all of them, rows to re-parse)."""
        parser = self.parser
        layout = parser.layout
        # The last column of a name wins, as in the per-row path's dict(zip(...)).
        index_of = {name: index for index, name in enumerate(columns)}
        wanted = {name: f"c{index_of[name]}" for name in self.needed_columns()}
        table = pa_csv.read_csv(
            pa.py_buffer(joined + b"\n"),
            read_options=pa_csv.ReadOptions(column_names=[f"c{i}" for i in range(len(columns))], block_size=1 << 20),
            parse_options=pa_csv.ParseOptions(
                delimiter=layout.delimiter, quote_char=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={column: pa.string() for column in wanted.values()},
                include_columns=sorted(set(wanted.values())),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if table.num_rows != len(texts):
            raise AssertionError(f"{path}: the CSV reader read {table.num_rows} rows of {len(texts)} lines")
        cells = {name: table.column(column).combine_chunks() for name, column in wanted.items()}
        bad = np.zeros(len(texts), dtype=bool)
        if parser.labeled:
            label_cells = cells[layout.label]
            bad |= ~columns_lib.to_numpy_bool(pc.is_in(label_cells, pa.array(["0", "1"])))
            labels = columns_lib.to_numpy_bool(pc.equal(label_cells, "1")).astype(np.int64)
        else:
            labels = np.full(len(texts), -1, dtype=np.int64)
        if self.derive_from:
            derived, underivable = self._derive(cells)
            cells.update(derived)
            bad |= underivable
        values = {}
        for field in self.spec.fields:
            values[field.name], flagged = columns_lib.parse_column(field, cells[field.name])
            bad |= flagged
        splits, unsplittable = parser.splitter.codes(texts, cells, positions)
        bad |= unsplittable
        keys = cells[layout.key] if layout.key else None
        return RowBatch(values, labels, splits, line_numbers, path, keys), bad

    def _derive(self, cells: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], np.ndarray]:
        """The format's derived columns, computed once per distinct value of
        the one column they come from; rows it rejects are flagged."""
        (source,) = self.derive_from
        column = cells[source]
        distinct = pc.unique(column)
        derived: list[dict[str, str] | None] = []
        for value in distinct.to_pylist():
            try:
                derived.append(self.parser.format.derive({source: value}))
            except BadRowError:
                derived.append(None)
        names = next((list(entry) for entry in derived if entry is not None), [])
        positions = pc.index_in(column, distinct)
        columns = {
            name: pa.array([entry[name] if entry else None for entry in derived], pa.string()).take(positions)
            for name in names
        }
        rejected = np.array([entry is None for entry in derived], dtype=bool)
        return columns, rejected[positions.to_numpy()]


def _is_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
