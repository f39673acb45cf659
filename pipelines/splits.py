"""How rows are assigned to train/valid/test: pure functions and small
picklable splitters that `RowParser` calls per row, identically on any runner.

* `HashSplit`: a seeded hash of the row's bytes, 8:1:1 by default (the paper's);
* `ColumnSplit`: by a raw column's value (time-ordered logs);
* `FixedSplit`: every row of pre-split files goes to one named split;
* `IndexSplit`: row positions from a NumPy index file (published splits).

Each splitter is called per row (`__call__`, by `RowParser`) and per batch
(`codes`, by `pipelines.batches.BatchParser`); both give the same split.
`codes` returns the split codes of a batch and the rows it leaves to the
per-row call (whose error, if any, is the row's dead-letter reason).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Any, Sequence

import numpy as np

from featnet_tf.prepared_data import SPLITS
from pipelines.bad_rows import BadRowError
from pipelines.columns import parse_doubles

SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}


def split_thresholds(ratios: Sequence[float]) -> tuple[float, float]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"`split_ratios` must be three non-negative numbers. Received: {list(ratios)}")
    total = sum(ratios)
    return ratios[0] / total, (ratios[0] + ratios[1]) / total


def assign_split(content: bytes, seed: int, thresholds: tuple[float, float]) -> str:
    """train/valid/test from a seeded MD5 of the row's bytes: the same row gets
    the same split on every runner, machine and run."""
    digest = hashlib.md5(seed.to_bytes(8, "little", signed=True) + content).digest()
    position = int.from_bytes(digest[:8], "little") / 2.0**64
    if position < thresholds[0]:
        return "train"
    return "valid" if position < thresholds[1] else "test"


def hash_positions(texts: Sequence[bytes], seed: int) -> np.ndarray:
    """`assign_split`'s position in [0, 1) of each row, for a batch."""
    seed_bytes = seed.to_bytes(8, "little", signed=True)
    md5 = hashlib.md5
    digests = np.frombuffer(b"".join([md5(seed_bytes + text).digest() for text in texts]), dtype="<u8")
    return digests[::2].astype(np.float64) / 2.0**64  # the first 8 bytes of each 16-byte digest


def codes_by_thresholds(positions: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Split codes of values below threshold 0 (train), 1 (valid), else test."""
    return np.where(positions < thresholds[0], 0, np.where(positions < thresholds[1], 1, 2)).astype(np.int8)


def no_flags(count: int) -> np.ndarray:
    return np.zeros(count, dtype=bool)


def split_by_value(cell: str, column: str, boundaries: tuple[float, ...]) -> str:
    """Time-ordered split: below boundary 0 → train, below 1 → valid, else test."""
    try:
        value = float(cell)
    except ValueError:
        raise BadRowError(f"split column {column}: {cell!r} is not a number") from None
    if value < boundaries[0]:
        return "train"
    return "valid" if value < boundaries[1] else "test"


@dataclasses.dataclass(frozen=True)
class HashSplit:
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", split_thresholds(self.ratios))

    def __call__(self, text: str, raw: dict[str, str], position: int) -> str:
        return assign_split(text.encode("utf-8"), self.seed, self.thresholds)

    def codes(self, texts: Sequence[bytes], cells: Any, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return codes_by_thresholds(hash_positions(texts, self.seed), self.thresholds), no_flags(len(texts))

    def describe(self) -> dict[str, Any]:
        return {"method": "hash", "ratios": list(self.ratios), "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class ColumnSplit:
    column: str
    boundaries: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.boundaries) != 2:
            raise ValueError(
                f"`split_boundaries` needs two values with `split_column`. Received: {list(self.boundaries)}"
            )

    def __call__(self, text: str, raw: dict[str, str], position: int) -> str:
        return split_by_value(raw[self.column], self.column, self.boundaries)

    def codes(self, texts: Sequence[bytes], cells: Any, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, flagged = parse_doubles(cells[self.column])
        numbers = values.fill_null(0.0).to_numpy()
        return codes_by_thresholds(numbers, self.boundaries), flagged

    def describe(self) -> dict[str, Any]:
        return {"method": "column", "column": self.column, "boundaries": list(self.boundaries)}


@dataclasses.dataclass(frozen=True)
class FixedSplit:
    split: str
    files: tuple[str, ...] = ()

    def __call__(self, text: str, raw: dict[str, str], position: int) -> str:
        return self.split

    def codes(self, texts: Sequence[bytes], cells: Any, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(texts), SPLIT_CODES[self.split], dtype=np.int8), no_flags(len(texts))

    def describe(self) -> dict[str, Any]:
        return {"method": "files", "files": list(self.files)}


class IndexSplit:
    """Splits by 0-based data-row position, from `read_index_file`'s codes.

    The code array travels with the DoFn; 1 byte per row (45 MB for all of
    Criteo's train.txt).
    """

    def __init__(self, codes: np.ndarray, path: str) -> None:
        self.split_codes = codes
        self.path = path

    def __call__(self, text: str, raw: dict[str, str], position: int) -> str:
        if position >= len(self.split_codes):
            raise ValueError(
                f"data row {position} is beyond the {len(self.split_codes)} rows of the index file {self.path}"
            )
        return SPLITS[self.split_codes[position]]

    def codes(self, texts: Sequence[bytes], cells: Any, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        beyond = positions[positions >= len(self.split_codes)]
        if beyond.size:
            self(b"", {}, int(beyond[0]))  # the per-row error, naming the row
        return self.split_codes[positions].astype(np.int8), no_flags(len(texts))

    def describe(self) -> dict[str, Any]:
        return {"method": "index_file", "index_file": self.path}


def read_index_file(content: bytes, path: str, num_rows: int) -> np.ndarray:
    """Validates a split index file and returns one split code per data row.

    The file is a NumPy ``.npz`` archive with integer arrays ``train``,
    ``valid`` and ``test`` of 0-based data-row positions (header lines not
    counted). Every one of the `num_rows` rows must be in exactly one split;
    anything else is a `ValueError` naming the rows at fault.
    """
    try:
        archive = np.load(io.BytesIO(content), allow_pickle=False)
    except Exception as error:  # NumPy raises several types for a bad archive
        raise ValueError(f"{path} is not a NumPy .npz archive: {error}") from error
    missing = [name for name in SPLITS if name not in archive.files]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing}; it has {archive.files}")
    codes = np.full(num_rows, -1, dtype=np.int8)
    for code, name in enumerate(SPLITS):
        positions = np.asarray(archive[name])
        if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer):
            raise ValueError(
                f"{path}: `{name}` must be a 1-D integer array. Received dtype {positions.dtype}, shape "
                f"{positions.shape}"
            )
        outside = positions[(positions < 0) | (positions >= num_rows)]
        if outside.size:
            raise ValueError(
                f"{path}: `{name}` has positions outside the input's {num_rows} data rows, e.g. {outside[:5].tolist()}"
            )
        unique, counts = np.unique(positions, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{path}: rows {unique[counts > 1][:5].tolist()} appear more than once in `{name}`")
        taken = codes[positions] >= 0
        if taken.any():
            row = int(positions[taken][0])
            raise ValueError(f"{path}: row {row} is in both `{SPLITS[codes[row]]}` and `{name}`")
        codes[positions] = code
    unassigned = np.flatnonzero(codes < 0)
    if unassigned.size:
        raise ValueError(f"{path}: {unassigned.size} rows are in no split, e.g. rows {unassigned[:5].tolist()}")
    return codes


def file_splits(path: str, header: bool, seed: int = 0, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> list[str]:
    """The hash split of every data line of a local, uncompressed file, in
    line order: what `HashSplit` assigns, for joining per-line side data
    (such as synthetic true probabilities) with a split."""
    splitter = HashSplit(tuple(ratios), seed)
    with open(path, "rb") as stream:
        lines = stream.read().splitlines()
    return [splitter(line.decode("utf-8").rstrip("\r"), {}, 0) for line in lines[1 if header else 0 :]]
