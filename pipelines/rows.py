"""Parsing raw rows: pure functions, no Beam.

`RowParser` turns one line of a raw file of any `pipelines.formats` format
into a `Row` of field values, exactly as the TFRecords will hold them (raw
values; the model owns vocabulary lookup and bucketization), or raises
`BadRowError` with the reason; its splitter (`pipelines.splits`) gives the
row its split. How a cell of each field kind is parsed, and which vocabulary
tokens a value has, is the kind's own (`featnet_tf.features.FIELD_KINDS`).
These are the rules; the pipelines run them on a line only where the column
parser cannot vouch for it (`pipelines.batches` says when).
"""

from __future__ import annotations

import csv
from typing import Any, Callable, NamedTuple

from featnet_tf.features import BadValueError, FeatureSpec, Field
from pipelines.bad_rows import BadRowError
from pipelines.formats import Format, get_format
from pipelines.splits import HashSplit

__all__ = ["Row", "RowParser", "field_tokens"]


class Row(NamedTuple):
    """One parsed row.

    Attributes:
        key: the row key: the input format's key column, else ``file:line``.
        label: 0 or 1.
        values: field name → raw value: `str` for categoricals ("" missing),
            `float` or `None` for numerics, `list[str]` for multi-hot and
            `list[float]` (or `None`) for dense vectors.
        split: ``train``, ``valid`` or ``test``.
    """

    key: str
    label: int
    values: dict[str, Any]
    split: str


class RowParser:
    """Parses lines of one input format into `Row`s.

    Args:
        spec: the resolved FeatureSpec, with its `input_format`.
        input_format: a `pipelines.formats` name or `Format`.
        splitter: assigns each row its split (`pipelines.splits`); called
            with the line, its raw cells by column and its 0-based data-row
            position in its file. Default: the 8:1:1 hash split.
        labeled: whether rows carry the label column. Unlabeled rows (logs
            to score) have label -1; a headerless layout then has its
            columns without the label.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        input_format: str | Format,
        splitter: Callable[[str, dict[str, str], int], str] = HashSplit(),
        labeled: bool = True,
    ) -> None:
        self.spec = spec
        self.format = get_format(input_format)
        self.layout = spec.input_format
        self.splitter = splitter
        self.split_column: str | None = getattr(splitter, "column", None)
        self.labeled = labeled

    def header_columns(self, header_line: str, source: str) -> tuple[str, ...]:
        """Validates a file's header and returns its column names."""
        columns = tuple(next(csv.reader([header_line], delimiter=self.layout.delimiter)))
        needed = self.required_columns()
        missing = [name for name in needed if name not in columns]
        if missing:
            raise ValueError(f"{source}: the header lacks columns {missing}. Header: {list(columns)}")
        return columns

    def required_columns(self) -> list[str]:
        needed = [self.layout.label] if self.labeled else []
        needed += self.format.field_columns(self.spec)
        if self.split_column:
            needed.append(self.split_column)
        return needed

    def columns(self, header: tuple[str, ...] | None) -> tuple[str, ...]:
        if header is not None:
            return header
        if self.labeled:
            return self.layout.columns
        return tuple(column for column in self.layout.columns if column != self.layout.label)

    def parse(self, text: str, columns: tuple[str, ...], source: str, line_number: int, position: int) -> Row:
        """Parses one line (without its line ending) into a Row; `position`
        is its 0-based data-row index in the file (headers not counted)."""
        if self.layout.delimiter == "\t" or '"' not in text:
            cells = text.split(self.layout.delimiter)
        else:
            cells = next(csv.reader([text], delimiter=self.layout.delimiter))
        if len(cells) != len(columns):
            raise BadRowError(f"expected {len(columns)} columns, found {len(cells)}")
        raw = dict(zip(columns, cells))
        label = parse_label(raw[self.layout.label]) if self.labeled else -1
        if self.format.derive is not None:
            raw.update(self.format.derive(raw))
        values = {field.name: parse_value(field, raw[field.name]) for field in self.spec.fields}
        key = raw[self.layout.key] if self.layout.key else f"{source}:{line_number}"
        return Row(key, label, values, self.splitter(text, raw, position))


def parse_label(cell: str) -> int:
    if cell not in ("0", "1"):
        raise BadRowError(f"bad label {cell!r}: expected 0 or 1")
    return int(cell)


def parse_value(field: Field, cell: str) -> Any:
    """A raw cell as the TFRecord holds it (its kind's `parse_cell`), or `BadRowError` naming the field."""
    try:
        return field.field_kind.parse_cell(field, cell)
    except BadValueError as error:
        raise BadRowError(str(error)) from None


def field_tokens(field: Field, value: Any) -> list[str]:
    """The vocabulary tokens of one parsed value (empty when missing)."""
    return field.field_kind.tokens(field, value)
