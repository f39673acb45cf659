"""The preprocessing as it was written before the batch path, one row at a time.

A small, plain-Python reference for `tests/test_batch_path.py`: every line
parsed by `RowParser` (what `ParseFileFn` did), vocabulary tokens counted and
ordered in Python, the statistics vector of the old `RowStatisticsFn`, and
each example built by `ExampleEncoder`. The Beam pipeline must reproduce its
vocabularies, statistics, dead letter and examples exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
from typing import Any, Sequence

import numpy as np

from featnet_tf.features import FeatureSpec, is_missing
from featnet_tf.prepared_data import SPLITS
from pipelines import examples, transforms, validation
from pipelines.bad_rows import BadRowError
from pipelines.rows import Row, RowParser, field_tokens

UTF8_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass
class Reference:
    vocabularies: dict[str, list[str]]
    statistics: dict[str, Any]
    dead_letters: list[dict[str, Any]]
    examples: dict[str, list[bytes]]  # per split, sorted deterministic serializations


def read_lines(path: str) -> list[bytes]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        return stream.readlines()  # on "\n" only, as the pipelines read


def parse_file(parser: RowParser, path: str) -> tuple[list[Row], list[dict[str, Any]]]:
    rows, dead = [], []
    columns = None
    for line_number, raw in enumerate(read_lines(path), start=1):
        if line_number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if line_number == 1 and parser.layout.header:
            columns = parser.header_columns(raw.decode("utf-8").rstrip("\r\n"), path)
            continue
        text = None
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
            position = line_number - 2 if parser.layout.header else line_number - 1
            rows.append(parser.parse(text, parser.columns(columns), path, line_number, position))
        except UnicodeDecodeError as error:
            reason = f"undecodable bytes: {error.reason} at byte {error.start}"
            dead.append({"file": path, "line": line_number, "reason": reason, "text": raw.decode("utf-8", "replace")})
        except BadRowError as error:
            dead.append({"file": path, "line": line_number, "reason": str(error), "text": text})
    return rows, dead


def vocabulary_order(counts: dict[str, int], min_count: int, top_k: int | None) -> list[str]:
    kept = sorted(((t, c) for t, c in counts.items() if c >= min_count), key=lambda tc: (-tc[1], tc[0]))
    if top_k is not None:
        kept = kept[:top_k]
    return [token for token, _ in kept]


def reference_preprocess(spec: FeatureSpec, sources: Sequence[tuple[Sequence[str], RowParser]]) -> Reference:
    rows, dead = [], []
    for patterns, parser in sources:
        for pattern in patterns:
            for path in sorted(glob.glob(pattern)):
                parsed, bad = parse_file(parser, path)
                rows += parsed
                dead += bad
    vocabulary_fields = [field for field in spec.fields if field.uses_vocabulary]
    counts = {field.name: collections.Counter() for field in vocabulary_fields}
    for row in rows:
        if row.split == "train":
            for field in vocabulary_fields:
                counts[field.name].update(field_tokens(field, row.values[field.name]))
    vocabularies = {
        field.name: vocabulary_order(counts[field.name], field.min_count, field.top_k) for field in vocabulary_fields
    }
    vocabulary_sets = {name: set(tokens) for name, tokens in vocabularies.items()}
    width = spec.num_fields
    split_counts = {}
    for row in rows:  # the old RowStatisticsFn
        vector = split_counts.setdefault(row.split, np.zeros(2 + 3 * width, dtype=np.int64))
        vector[0] += 1
        vector[1] += row.label
        for index, field in enumerate(spec.fields):
            value = row.values[field.name]
            if is_missing(value):
                vector[2 + index] += 1
            elif row.split != "train" and field.name in vocabulary_sets:
                tokens = field_tokens(field, value)
                vector[2 + 2 * width + index] += len(tokens)
                vector[2 + width + index] += sum(token not in vocabulary_sets[field.name] for token in tokens)
    sizes = {name: len(tokens) for name, tokens in vocabularies.items()}
    cardinalities = {name: len(counter) for name, counter in counts.items()}
    numeric = [field.name for field in spec.fields if field.kind == "numeric"]
    histograms = {  # every split's present values, one row at a time
        name: sum(
            (
                validation.numeric_histogram(np.array([row.values[name]]))
                for row in rows
                if not is_missing(row.values[name])
            ),
            np.zeros(validation.HISTOGRAM_SIZE, np.int64),
        )
        for name in numeric
    }
    statistics = transforms.summarize(spec, split_counts, sizes, cardinalities, histograms)
    reasons = collections.Counter(record["reason"].split(":")[0] for record in dead)
    statistics["rows"] = {
        "rows_in": len(rows) + len(dead),
        "rows_written": len(rows),
        "rows_dead_lettered": len(dead),
        "dead_letter_reasons": dict(sorted(reasons.items())),
    }
    encoder = examples.ExampleEncoder(spec)
    by_split = {split: [] for split in SPLITS}
    for row in rows:
        by_split[row.split].append(encoder.encode(row.values, row.label).SerializeToString(deterministic=True))
    return Reference(vocabularies, statistics, dead, {split: sorted(items) for split, items in by_split.items()})
