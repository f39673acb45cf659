"""Raw cells to typed Arrow columns, a whole column at a time.

The column-wise twin of `FieldKind.parse_cell` (`featnet_tf.features`): for
each field kind, a function that takes the text cells of one column of a
batch and returns the parsed values as one Arrow array, with a mask of the
rows it could not vouch for. Those rows are left null, never guessed at:
their lines go to the per-row rules (`pipelines.batches` says when and how),
which accept them (a number Python reads and Arrow does not, such as ``" 1"``
or ``"1_0"``) or give the exact reason of the dead letter. A mask that flags
too much costs speed, never correctness; a value this module accepts must be
the value `parse_cell` returns, which the tests check cell by cell.

Arrow types of the parsed columns (`value_type`): categorical ``string``
("" when missing), numeric ``float32`` (null when missing), multi-hot
``list<string>`` (empty tokens dropped, [] when missing) and dense vector
``list<float32>`` (null when missing). `token_counts_by_split` counts the
vocabulary tokens of a parsed column (`FieldKind.tokens`, per value).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featnet_tf.features import LOG_SQUARE_THRESHOLD, Field, log_square_bucket

# A decimal number Arrow and Python both read, to the same double.
DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

VALUE_TYPES = {
    "categorical": pa.string(),
    "numeric": pa.float32(),
    "multi_hot": pa.list_(pa.string()),
    "dense_vector": pa.list_(pa.float32()),
}


def value_type(field: Field) -> pa.DataType:
    """The Arrow type of a parsed column of `field`."""
    return VALUE_TYPES[field.kind]


def to_numpy_bool(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def parse_doubles(cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Decimal cells (nulls pass through) → (float64 values, rows to re-parse):
    the cells Arrow cannot read, and those that are not finite (Python reads
    ``inf`` and ``nan``; whether that is an error is the per-row path's call).
    Flagged rows are null."""
    try:
        doubles = pc.cast(cells, pa.float64())
        flagged = np.zeros(len(cells), dtype=bool)
    except pa.ArrowInvalid:
        readable = pc.match_substring_regex(cells, DECIMAL)
        flagged = ~to_numpy_bool(readable) & to_numpy_bool(pc.is_valid(cells))
        doubles = pc.cast(pc.if_else(readable, cells, pa.scalar(None, pa.string())), pa.float64())
    flagged |= ~to_numpy_bool(pc.is_finite(doubles)) & to_numpy_bool(pc.is_valid(doubles))
    return _null_where(doubles, flagged), flagged


def parse_numbers(cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Decimal cells (nulls pass through) → (float32 values, rows to re-parse).

    The value goes through float64 and is rounded to float32, as `to_float32`
    does; a value that overflows float32 is flagged too.
    """
    doubles, flagged = parse_doubles(cells)
    floats = pc.cast(doubles, pa.float32(), safe=False)
    flagged |= ~to_numpy_bool(pc.is_finite(floats)) & to_numpy_bool(pc.is_valid(floats))
    return _null_where(floats, flagged), flagged


def _null_where(values: pa.Array, flagged: np.ndarray) -> pa.Array:
    if not flagged.any():
        return values
    return pc.if_else(pa.array(~flagged), values, pa.scalar(None, values.type))


def parse_numeric(field: Field, cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    present = pc.not_equal(cells, "")
    return parse_numbers(pc.if_else(present, cells, pa.scalar(None, pa.string())))


def parse_categorical(field: Field, cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    return cells, np.zeros(len(cells), dtype=bool)


def _list_array(offsets: np.ndarray, values: pa.Array, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, mask=mask)


def parse_multi_hot(field: Field, cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Tokens split on the separator, empty tokens dropped (``"a||b"`` → a, b)."""
    split = pc.split_pattern(cells, field.separator)
    tokens = pc.list_flatten(split)
    keep = to_numpy_bool(pc.not_equal(tokens, ""))
    parents = pc.list_parent_indices(split).to_numpy()
    counts = np.bincount(parents[keep], minlength=len(cells))
    offsets = np.zeros(len(cells) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return _list_array(offsets, tokens.filter(pa.array(keep))), np.zeros(len(cells), dtype=bool)


def parse_dense_vector(field: Field, cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """`dimension` numbers split on the separator; a row with another count, or
    a number Arrow cannot vouch for, is flagged."""
    present = to_numpy_bool(pc.not_equal(cells, ""))
    split = pc.split_pattern(cells, field.separator)
    lengths = to_numpy_bool(pc.equal(pc.list_value_length(split), field.dimension))
    flagged = present & ~lengths
    good = present & lengths
    parts = pc.list_flatten(split.filter(pa.array(good)))
    numbers, bad_parts = parse_numbers(parts)
    if bad_parts.any():
        rows = np.flatnonzero(good)
        flagged[rows[np.unique(np.flatnonzero(bad_parts) // field.dimension)]] = True
    # Rows that are good keep their `dimension` numbers; the others are null.
    offsets = np.zeros(len(cells) + 1, dtype=np.int64)
    np.cumsum(np.where(good, field.dimension, 0), out=offsets[1:])
    return _list_array(offsets, numbers, valid=good & ~flagged), flagged


COLUMN_PARSERS: dict[str, Callable[[Field, pa.Array], tuple[pa.Array, np.ndarray]]] = {
    "categorical": parse_categorical,
    "numeric": parse_numeric,
    "multi_hot": parse_multi_hot,
    "dense_vector": parse_dense_vector,
}


def parse_column(field: Field, cells: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """One column of text cells → (parsed values of `value_type(field)`, rows
    to re-parse one by one)."""
    return COLUMN_PARSERS[field.kind](field, cells)


def from_values(field: Field, values: list) -> pa.Array:
    """Parsed Python values (`parse_cell`'s) of one field as its Arrow column."""
    return pa.array(values, type=value_type(field))


# === Vocabulary tokens, a column at a time ===


def log_square_buckets(values: np.ndarray) -> np.ndarray:
    """`featnet_tf.features.log_square_bucket` of float32-rounded values, vectorised.

    NumPy's log may differ
    from the C library's by an ulp; where ``ln(x)^2`` lies within 1e-9 of an
    integer (where an ulp could change the floor), the value is recomputed
    with `math.log`, so the buckets are exactly the per-value function's.
    Values below -2^62, whose `int` does not fit in int64, take the
    per-value function (Python integers, an object array).
    """
    values = np.asarray(values, dtype=np.float64)
    if (values < -(2.0**62)).any():
        return np.array([log_square_bucket(value) for value in values.tolist()] + [None], dtype=object)[:-1]
    buckets = np.trunc(values).astype(np.int64)
    large = values > LOG_SQUARE_THRESHOLD
    squared = np.log(values[large]) ** 2
    large_buckets = np.floor(squared).astype(np.int64)
    close = np.abs(squared - np.round(squared)) < 1e-9 * np.maximum(1.0, squared)
    if close.any():
        exact = [log_square_bucket(value) for value in values[large][close]]
        large_buckets[close] = exact
    buckets[large] = large_buckets
    return buckets


def token_counts_by_split(field: Field, values: pa.Array, splits: np.ndarray, num_splits: int) -> list[pa.Table]:
    """For each split code, the (token, count) table of the vocabulary tokens
    of the parsed column's rows of that split (`FieldKind.tokens`, counted)."""
    kind = field.kind
    if kind == "numeric":
        present = to_numpy_bool(pc.is_valid(values))
        buckets = log_square_buckets(values.drop_null().to_numpy())
        distinct, inverse = np.unique(buckets, return_inverse=True)
        tokens = pa.array([str(bucket) for bucket in distinct.tolist()], pa.string())
        indices, token_splits = inverse.reshape(-1), splits[present]
    else:
        if kind == "multi_hot":
            flat = pc.list_flatten(values)
            token_splits = splits[pc.list_parent_indices(values).to_numpy()]
        elif kind == "categorical":
            present = to_numpy_bool(pc.not_equal(values, ""))
            flat, token_splits = values.filter(pa.array(present)), splits[present]
        else:
            raise ValueError(f"Field `{field.name}` of kind {kind} has no vocabulary tokens.")
        encoded = pc.dictionary_encode(flat)
        tokens, indices = encoded.dictionary, encoded.indices.to_numpy()
    counts = np.bincount(token_splits.astype(np.int64) * len(tokens) + indices, minlength=num_splits * len(tokens))
    tables = []
    for row in counts.reshape(num_splits, len(tokens)):
        seen = row > 0
        tables.append(pa.table({"token": tokens.filter(pa.array(seen)), "count": row[seen]}))
    return tables


def missing_rows(field: Field, values: pa.Array) -> np.ndarray:
    """Rows whose parsed value is missing (`featnet_tf.features.is_missing`)."""
    kind = field.kind
    if kind == "categorical":
        return to_numpy_bool(pc.equal(values, ""))
    if kind == "multi_hot":
        return to_numpy_bool(pc.equal(pc.list_value_length(values), 0))
    return ~to_numpy_bool(pc.is_valid(values))
