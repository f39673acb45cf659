"""The one description of a model's inputs: `Field` and `FeatureSpec`.

A `FeatureSpec` is read by every stage of featnet_tf: the Beam pipeline parses
and indexes raw rows with it, `featnet_tf.data` builds the `tf.data` parsing
spec from it, `FieldEmbedding` sizes its tables from it and the exported
SavedModel derives its serving signature from it. Nothing re-describes the
columns by hand anywhere else.

This module stands on the ground floor of the package: it imports nothing of
featnet_tf and no TensorFlow, so that pipelines and tools can use it cheaply.

Id conventions shared by the pipeline, the embedding layer and the export:

* ``MISSING_ID = 0``: the value is absent (an empty column); also the padding
  id of multi-hot lists, which pooling masks out.
* ``OOV_ID = 1``: a value that is not in the train vocabulary.
* ``2 ..``: vocabulary entries in vocabulary-file order, or hash buckets.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from typing import Any, Iterable, Mapping, Sequence

MISSING_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2

NUMERIC_TRANSFORMS = ("log_square_bucket", "log_normalize", "identity")
POOLINGS = ("mean", "sum")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# Above it a numeric value's bucket is floor(ln(x)^2); at or below it, the value truncated toward zero.
LOG_SQUARE_THRESHOLD = 2.0


def log_square_bucket(value: float) -> int:
    """Criteo's numeric bucketization used by the BARS benchmark: the one definition.

    ``floor(ln(x)^2)`` for ``x > LOG_SQUARE_THRESHOLD`` (2), else ``int(x)``
    (so 0, 1, 2 and the negative values of Criteo's I2 keep buckets of their
    own). Its vectorised forms, where each is needed, are tested against it:
    `pipelines.columns.log_square_buckets` (NumPy, a column of a batch) and
    `featnet_tf.layers.feature_transform.bucket_tokens` (TensorFlow ops, in
    the model and its SavedModel).
    """
    if value > LOG_SQUARE_THRESHOLD:
        return int(math.floor(math.log(value) ** 2))
    return int(value)


def to_float32(value: float) -> float:
    """`value` rounded to float32, as a TFRecord `float_list` stores it, so that
    Python and TensorFlow bucketize the very same number."""
    return struct.unpack("f", struct.pack("f", value))[0]


def numeric_token(value: float) -> str:
    """The vocabulary token of a `log_square_bucket` numeric value.

    The exported model computes the same token with TensorFlow ops from the
    float32 value in the TFRecord or request; tests check that both agree.
    """
    return str(log_square_bucket(to_float32(value)))


def log_normalize(value: float) -> float:
    """Signed log scaling ``sign(x)·ln(1 + |x|)`` for value-scaled numerics."""
    return math.copysign(math.log1p(abs(value)), value)


def is_missing(value: Any) -> bool:
    """Whether a parsed raw value is absent: None (numbers), "" (a token) or [] (a list)."""
    return value is None or value == "" or value == []


class BadValueError(ValueError):
    """A raw cell that cannot be a value of its field; the message names the field."""


# === Field kinds ===


class FieldKind:
    """One kind of field, described once for every stage that handles it.

    A kind says what its raw values are (the dtype and shape of the raw
    tensor in TFRecords, `predict_raw` and `tf.io.parse_example`), how a raw
    text cell becomes one, how it is written into a `tf.train.Example`, which
    vocabulary tokens it has, and what `FeatureTransform` hands
    `FieldEmbedding` for it (`model_input`). The pipeline, the `tf.data`
    parsing spec, the export's signature, the schema and both layers read
    these attributes instead of switching on the kind's name, so a new kind is
    one more subclass here (and, for a new `model_input`, one more branch in
    the two layers).

    Attributes:
        name: the ``kind`` of a `Field`.
        raw_dtype: ``"string"`` (stored in a ``bytes_list``) or ``"float32"``
            (a ``float_list``).
        fixed_length: for a list kind, whether every row has `dimension`
            values (else the list is ragged).
        model_input: ``"scalar"`` (one id or value per row), ``"id_list"``
            (`max_length` padded ids, pooled per Eq. 1) or ``"vector"``
            (`dimension` floats, projected to D).
    """

    name: str
    raw_dtype: str
    model_input: str = "scalar"
    fixed_length: bool = False

    @property
    def multivalued(self) -> bool:
        """Whether a row holds a list of values."""
        return self.model_input != "scalar"

    @property
    def example_list(self) -> str:
        """The `tf.train.Feature` list that holds the values."""
        return "bytes_list" if self.raw_dtype == "string" else "float_list"

    def raw_shape(self, field: "Field") -> tuple[int | None, ...]:
        """The shape of one row's raw value: ``()``, ``(None,)`` (ragged) or ``(dimension,)``."""
        if not self.multivalued:
            return ()
        return (field.dimension,) if self.fixed_length else (None,)

    def missing_value(self, field: "Field") -> Any:
        """The raw value of a missing row when a fixed-shape tensor needs one."""
        raise NotImplementedError

    def validate(self, field: "Field") -> None:
        """Raises `ValueError` for options this kind does not take."""
        _require(
            field.transform is None,
            f"`transform` applies to numeric fields only; field `{field.name}` is {self.name}. "
            f"Received: transform={field.transform!r}",
        )

    def uses_tokens(self, field: "Field") -> bool:
        """Whether the values are tokens mapped to embedding ids."""
        return self.raw_dtype == "string"

    def parse_cell(self, field: "Field", cell: str) -> Any:
        """A raw text cell as the TFRecord holds it; `BadValueError` naming the field."""
        raise NotImplementedError

    def tokens(self, field: "Field", value: Any) -> list[str]:
        """The vocabulary tokens of one parsed value (empty when missing)."""
        if is_missing(value):
            return []
        return value if isinstance(value, list) else [value]


def _number(field: "Field", cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadValueError(f"field {field.name}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise BadValueError(f"field {field.name}: {cell!r} is not finite")
    try:
        rounded = to_float32(value)
    except OverflowError:  # some Pythons refuse to pack it at all
        rounded = math.inf
    if math.isinf(rounded):  # finite as a Python float, infinite as the TFRecord's float32
        raise BadValueError(f"field {field.name}: {cell!r} is outside float32's range (±3.4e38)")
    return rounded


class CategoricalKind(FieldKind):
    """One string token per row ("" when missing)."""

    name, raw_dtype = "categorical", "string"

    def missing_value(self, field: "Field") -> Any:
        return ""

    def parse_cell(self, field: "Field", cell: str) -> str:
        return cell


class NumericKind(FieldKind):
    """One float per row (absent when missing): bucketized into tokens
    (`log_square_bucket`) or a value-scaled field vector."""

    name, raw_dtype = "numeric", "float32"

    def missing_value(self, field: "Field") -> Any:
        return float("nan")

    def validate(self, field: "Field") -> None:
        transform = field.transform or "log_square_bucket"
        _require(
            transform in NUMERIC_TRANSFORMS,
            f"Unknown numeric transform for field `{field.name}`: "
            f"transform={field.transform!r}. Expected one of {NUMERIC_TRANSFORMS}.",
        )
        object.__setattr__(field, "transform", transform)

    def uses_tokens(self, field: "Field") -> bool:
        return field.transform == "log_square_bucket"

    def parse_cell(self, field: "Field", cell: str) -> float | None:
        return None if cell == "" else _number(field, cell)

    def tokens(self, field: "Field", value: Any) -> list[str]:
        # `parse_cell` already rounded the value to float32, as the TFRecord
        # holds it: `numeric_token` without its rounding step.
        if value is None or not self.uses_tokens(field):
            return []
        return [str(log_square_bucket(value))]


class MultiHotKind(FieldKind):
    """A list of string tokens per row, split on `separator` (empty when missing)."""

    name, raw_dtype, model_input = "multi_hot", "string", "id_list"

    def parse_cell(self, field: "Field", cell: str) -> list[str]:
        return [token for token in cell.split(field.separator) if token] if cell else []


class DenseVectorKind(FieldKind):
    """`dimension` floats per row, split on `separator` (absent when missing)."""

    name, raw_dtype, model_input, fixed_length = "dense_vector", "float32", "vector", True

    def missing_value(self, field: "Field") -> Any:
        return [field.default] * field.dimension

    def validate(self, field: "Field") -> None:
        super().validate(field)
        _require(
            field.dimension is not None and field.dimension > 0,
            f"Dense vector field `{field.name}` needs a positive `dimension`. Received: dimension={field.dimension}",
        )

    def parse_cell(self, field: "Field", cell: str) -> list[float] | None:
        if cell == "":
            return None
        parts = cell.split(field.separator)
        if len(parts) != field.dimension:
            raise BadValueError(f"field {field.name}: expected {field.dimension} values, found {len(parts)}")
        return [_number(field, part) for part in parts]


KINDS: dict[str, FieldKind] = {
    kind.name: kind for kind in (NumericKind(), CategoricalKind(), MultiHotKind(), DenseVectorKind())
}
FIELD_KINDS = tuple(KINDS)


@dataclasses.dataclass(frozen=True)
class Field:
    """One input field of a CTR model.

    Args:
        name: column name, unique in the spec; also the model's input name.
        kind: one of `numeric`, `categorical`, `multi_hot`, `dense_vector`.
        vocabulary_size: number of learned vocabulary entries (reserved ids
            excluded). Filled in by the preprocessing pipeline for fields
            without `hash_buckets`.
        vocabulary_file: path of the vocabulary, relative to the directory of
            the spec file, one token per line in id order (first line = id 2).
        hash_buckets: if set, categorical/multi-hot values are hashed into this
            many buckets instead of looked up in a vocabulary (for huge
            cardinalities); no vocabulary is built.
        min_count: tokens seen fewer times than this in the train split are
            left out of the vocabulary (they map to OOV).
        top_k: keep at most this many most frequent tokens.
        transform: for numerics. `log_square_bucket` (BARS Criteo: the value
            becomes a token ``floor(ln(x)^2)`` looked up in a vocabulary),
            `log_normalize` (value-scaled field vector with
            ``sign(x)·ln(1+|x|)``) or `identity` (value-scaled, raw value).
        default: value used for a missing numeric (value-scaled transforms) or
            dense vector element. Missing categoricals always map to
            `MISSING_ID`.
        separator: token separator of a multi-hot column.
        max_length: multi-hot lists are padded or truncated to this length.
        pooling: `mean` or `sum` pooling of a multi-hot field (Eq. 1).
        dimension: length of a dense vector field.
        max_drift: this field's threshold of day-to-day drift in
            `pipelines.validation` (L-infinity distance of a categorical or
            multi-hot field, Jensen-Shannon divergence of a numeric one);
            None: the run's ``--max_l_infinity`` / ``--max_js_divergence``.
        max_oov_increase: this field's threshold of the rise of its
            out-of-vocabulary share over the baseline day's (None: the run's).
        max_missing_change: this field's threshold of the change of its
            missing rate (None: the run's).
    """

    name: str
    kind: str
    vocabulary_size: int | None = None
    vocabulary_file: str | None = None
    hash_buckets: int | None = None
    min_count: int = 1
    top_k: int | None = None
    transform: str | None = None
    default: float = 0.0
    separator: str = "|"
    max_length: int = 8
    pooling: str = "mean"
    dimension: int | None = None
    max_drift: float | None = None
    max_oov_increase: float | None = None
    max_missing_change: float | None = None

    def __post_init__(self) -> None:
        _require(bool(self.name), f"A field needs a name. Received: name={self.name!r}")
        _require(
            self.kind in FIELD_KINDS,
            f"Unknown field kind for field `{self.name}`: kind={self.kind!r}. Expected one of {FIELD_KINDS}.",
        )
        self.field_kind.validate(self)
        _require(
            self.vocabulary_size is None or self.vocabulary_size >= 0,
            f"`vocabulary_size` of field `{self.name}` must be >= 0. Received: vocabulary_size={self.vocabulary_size}",
        )
        for name in ("hash_buckets", "top_k"):
            value = getattr(self, name)
            _require(
                value is None or value > 0,
                f"`{name}` of field `{self.name}` must be positive. Received: {name}={value}",
            )
        for name in ("max_drift", "max_oov_increase", "max_missing_change"):
            value = getattr(self, name)
            _require(
                value is None or value >= 0,
                f"`{name}` of field `{self.name}` must be >= 0. Received: {name}={value}",
            )
        _require(
            self.min_count >= 1,
            f"`min_count` of field `{self.name}` must be >= 1. Received: min_count={self.min_count}",
        )
        _require(
            self.max_length > 0,
            f"`max_length` of field `{self.name}` must be positive. Received: max_length={self.max_length}",
        )
        _require(
            self.pooling in POOLINGS,
            f"Unknown pooling for field `{self.name}`: pooling={self.pooling!r}. Expected one of {POOLINGS}.",
        )
        if self.hash_buckets is not None:
            _require(
                self.uses_tokens,
                f"`hash_buckets` applies to categorical and multi-hot fields; field `{self.name}` is {self.kind}.",
            )

    @property
    def field_kind(self) -> FieldKind:
        """What the field's kind is, for every stage (see `FieldKind`)."""
        return KINDS[self.kind]

    @property
    def uses_tokens(self) -> bool:
        """Whether the field's values are tokens mapped to embedding ids."""
        return self.field_kind.uses_tokens(self)

    @property
    def is_value_scaled(self) -> bool:
        """A scalar float embedded as ``value · e_field`` rather than looked up."""
        return self.field_kind.model_input == "scalar" and not self.uses_tokens

    @property
    def uses_vocabulary(self) -> bool:
        return self.uses_tokens and self.hash_buckets is None

    @property
    def num_ids(self) -> int:
        """Rows of this field's embedding table, reserved ids included."""
        if not self.uses_tokens:
            raise ValueError(f"Field `{self.name}` ({self.kind}) has no ids.")
        if self.hash_buckets is not None:
            return self.hash_buckets + NUM_RESERVED_IDS
        if self.vocabulary_size is None:
            raise ValueError(
                f"Field `{self.name}` has no vocabulary yet: run the preprocessing pipeline or set `vocabulary_size`."
            )
        return self.vocabulary_size + NUM_RESERVED_IDS

    def to_dict(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in dataclasses.fields(Field)}
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if key in ("name", "kind") or value != defaults[key]}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "Field":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        _require(
            not unknown,
            f"Unknown keys {unknown} in field {config.get('name')!r}. Known keys: {sorted(known)}",
        )
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class InputFormat:
    """How raw rows of a delimited text file map to fields.

    Args:
        delimiter: column separator.
        header: whether the first line of every file names the columns.
        columns: column names in file order when there is no header. When
            there is a header the file's own names are used and this may be
            left empty.
        label: name of the 0/1 label column.
        key: optional column used as the row key (else file:line).
    """

    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] = ()
    label: str = "label"
    key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        _require(len(self.delimiter) == 1, f"`delimiter` must be one character. Received: {self.delimiter!r}")
        _require(
            self.header or self.columns,
            "A headerless input format must name its `columns`.",
        )


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The fields of a dataset, in the order the model sees them (Eq. 1).

    Args:
        fields: the model's input fields, ``x = [x_1, ..., x_M]``.
        label: name of the label feature in TFRecords and raw inputs.
        input_format: optional description of raw delimited files.
    """

    fields: tuple[Field, ...]
    label: str = "label"
    input_format: InputFormat | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        _require(len(self.fields) > 0, "A FeatureSpec needs at least one field.")
        names = [field.name for field in self.fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        _require(not duplicates, f"Field names must be unique. Duplicated: {duplicates}")
        _require(
            self.label not in names,
            f"The label `{self.label}` cannot also be a field.",
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    @property
    def num_fields(self) -> int:
        """M, the number of fields (dense features) of Eq. 1."""
        return len(self.fields)

    def __getitem__(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"No field named {name!r}. Fields: {list(self.names)}")

    def replace_field(self, name: str, **changes: Any) -> "FeatureSpec":
        """A copy with one field's attributes changed."""
        self[name]  # raises a KeyError naming the field when it is unknown
        fields = tuple(dataclasses.replace(field, **changes) if field.name == name else field for field in self.fields)
        return dataclasses.replace(self, fields=fields)

    def vocabulary_path(self, field: Field, spec_dir: str) -> str:
        if field.vocabulary_file is None:
            raise ValueError(f"Field `{field.name}` has no vocabulary file.")
        return os.path.join(spec_dir, field.vocabulary_file)

    # === Serialization ===

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "label": self.label,
            "fields": [field.to_dict() for field in self.fields],
        }
        if self.input_format is not None:
            config["input_format"] = dataclasses.asdict(self.input_format)
            config["input_format"]["columns"] = list(self.input_format.columns)
        return config

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "FeatureSpec":
        unknown = sorted(set(config) - {"label", "fields", "input_format"})
        _require(not unknown, f"Unknown keys in a FeatureSpec: {unknown}")
        _require("fields" in config, "A FeatureSpec needs a `fields` list.")
        input_format = config.get("input_format")
        return cls(
            fields=tuple(Field.from_dict(field) for field in config["fields"]),
            label=config.get("label", "label"),
            input_format=InputFormat(**input_format) if input_format else None,
        )

    def save(self, path: str) -> None:
        """Writes the spec as JSON, or YAML when `path` ends in .yaml/.yml."""
        text = _dump(self.to_dict(), path)
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)

    @classmethod
    def load(cls, path: str) -> "FeatureSpec":
        """Reads a spec written by `save` (JSON or YAML by file extension)."""
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
        try:
            config = _parse(text, path)
        except Exception as error:  # the parsers' own exceptions vary
            raise ValueError(f"Cannot parse FeatureSpec file {path}: {error}") from error
        return cls.from_dict(config)


def _is_yaml(path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def _dump(config: dict[str, Any], path: str) -> str:
    if _is_yaml(path):
        import yaml

        return yaml.safe_dump(config, sort_keys=False)
    return json.dumps(config, indent=2) + "\n"


def _parse(text: str, path: str) -> Any:
    if _is_yaml(path):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


# === Helpers ===


def categorical_spec(
    fields: int | Iterable[str],
    vocabulary_size: int | None = None,
    label: str = "label",
    min_count: int = 1,
    input_format: InputFormat | None = None,
) -> FeatureSpec:
    """A spec of M categorical fields: the given names, or ``f0 .. f{M-1}``
    for a count; with `vocabulary_size` each field has that many ids (as
    synthetic data, tests and benchmarks want), else the pipeline fills it
    in (e.g. Frappe's ten fields)."""
    names = [f"f{index}" for index in range(fields)] if isinstance(fields, int) else list(fields)
    return FeatureSpec(
        fields=tuple(
            Field(name, "categorical", vocabulary_size=vocabulary_size, min_count=min_count) for name in names
        ),
        label=label,
        input_format=input_format,
    )


def with_vocabulary_sizes(spec: FeatureSpec, sizes: Mapping[str, int]) -> FeatureSpec:
    """A copy of `spec` with `vocabulary_size` set for the named fields."""
    fields: Sequence[Field] = tuple(
        dataclasses.replace(field, vocabulary_size=sizes[field.name]) if field.name in sizes else field
        for field in spec.fields
    )
    return dataclasses.replace(spec, fields=tuple(fields))
