"""Parsing raw rows and assigning splits: pure functions, no Beam.

`RowParser` turns one line of a raw file into a `Row` of field values, exactly
as the TFRecords will hold them (raw values; the model owns vocabulary lookup
and bucketization), or raises `BadRowError` with the reason. `assign_split`
maps a row to train/valid/test with a seeded hash, identically on any runner.
"""

from __future__ import annotations

import csv
import datetime
import math
from typing import Any, Callable, NamedTuple

from featnet_tf.features import FeatureSpec, Field, avazu_spec, criteo_spec, log_square_bucket, to_float32
from pipelines.splits import SPLITS, BadRowError, HashSplit

FORMATS = ("criteo", "avazu", "csv")
__all__ = ["FORMATS", "SPLITS", "BadRowError", "Row", "RowParser", "field_tokens", "spec_for_format"]


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


def spec_for_format(input_format: str, spec: FeatureSpec | None = None, min_count: int | None = None) -> FeatureSpec:
    """The FeatureSpec of a built-in format, or the given one for `csv`."""
    if input_format not in FORMATS:
        raise ValueError(f"Unknown input format {input_format!r}. Expected one of {FORMATS}.")
    if spec is None:
        if input_format == "csv":
            raise ValueError("The `csv` format needs a FeatureSpec file (--spec) describing its columns.")
        builder = criteo_spec if input_format == "criteo" else avazu_spec
        spec = builder() if min_count is None else builder(min_count)
    if spec.input_format is None:
        raise ValueError("The FeatureSpec needs an `input_format` (delimiter, header/columns, label).")
    return spec


class RowParser:
    """Parses lines of one input format into `Row`s.

    Args:
        spec: the resolved FeatureSpec, with its `input_format`.
        input_format: `criteo`, `avazu` or `csv`.
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
        input_format: str,
        splitter: Callable[[str, dict[str, str], int], str] = HashSplit(),
        labeled: bool = True,
    ) -> None:
        self.spec = spec
        self.input_format = input_format
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
        if self.input_format == "avazu":
            needed += [f.name for f in self.spec.fields if f.name not in ("weekday", "weekend")]
        else:
            needed += list(self.spec.names)
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
        if self.input_format == "avazu":
            raw.update(expand_avazu_hour(raw["hour"]))
        values = {field.name: parse_value(field, raw[field.name]) for field in self.spec.fields}
        key = raw[self.layout.key] if self.layout.key else f"{source}:{line_number}"
        return Row(key, label, values, self.splitter(text, raw, position))


def parse_label(cell: str) -> int:
    if cell not in ("0", "1"):
        raise BadRowError(f"bad label {cell!r}: expected 0 or 1")
    return int(cell)


def parse_value(field: Field, cell: str) -> Any:
    """A raw cell as the TFRecord holds it, or `BadRowError` naming the field."""
    if field.kind == "categorical":
        return cell
    if field.kind == "multi_hot":
        return [token for token in cell.split(field.separator) if token] if cell else []
    if field.kind == "numeric":
        if cell == "":
            return None
        return _number(field, cell)
    # dense_vector
    if cell == "":
        return None
    parts = cell.split(field.separator)
    if len(parts) != field.dimension:
        raise BadRowError(f"field {field.name}: expected {field.dimension} values, found {len(parts)}")
    return [_number(field, part) for part in parts]


def _number(field: Field, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadRowError(f"field {field.name}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRowError(f"field {field.name}: {cell!r} is not finite")
    return to_float32(value)


def expand_avazu_hour(cell: str) -> dict[str, str]:
    """Avazu's ``hour`` (YYMMDDHH) → hour-of-day, weekday (0 = Monday) and
    is-weekend tokens, as in the BARS Avazu_x4 preprocessing."""
    try:
        moment = datetime.datetime.strptime(cell, "%y%m%d%H")
    except ValueError:
        raise BadRowError(f"field hour: {cell!r} is not YYMMDDHH") from None
    weekday = moment.weekday()
    return {"hour": f"{moment.hour:02d}", "weekday": str(weekday), "weekend": "1" if weekday >= 5 else "0"}


def field_tokens(field: Field, value: Any) -> list[str]:
    """The vocabulary tokens of one raw value (empty when missing)."""
    if field.kind == "categorical":
        return [value] if value else []
    if field.kind == "multi_hot":
        return list(value)
    if field.kind == "numeric" and field.transform == "log_square_bucket":
        # `parse_value` already rounded the value to float32, as the TFRecord
        # holds it: `numeric_token` without its rounding step.
        return [] if value is None else [str(log_square_bucket(value))]
    return []
