"""Raw input formats: Criteo, Avazu and described CSV/TSV, each in one place.

A `Format` owns what is particular to one kind of raw file: the FeatureSpec
its columns make (with its `InputFormat`: delimiter, header or column names,
label, key), and the columns it derives from raw ones (Avazu's ``hour`` →
hour of day, weekday, weekend). `pipelines.rows.RowParser` reads any format
through this interface and has no branch of its own per dataset; adding a
format is one entry in `FORMATS`.

Pure Python: no Beam, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Callable, Mapping

from featnet_tf.features import FeatureSpec, Field, InputFormat
from pipelines.bad_rows import BadRowError

# === Criteo ===

CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))


def criteo_spec(min_count: int = 2) -> FeatureSpec:
    """Criteo DAC: label, 13 integer and 26 categorical columns, tab-separated.

    Numerics use the BARS Criteo_x4 bucketization; every vocabulary keeps
    tokens seen at least `min_count` times in train (BARS x4 uses 2).
    """
    fields = [Field(name, "numeric", transform="log_square_bucket", min_count=min_count) for name in CRITEO_NUMERIC]
    fields += [Field(name, "categorical", min_count=min_count) for name in CRITEO_CATEGORICAL]
    return FeatureSpec(
        fields=tuple(fields),
        label="label",
        input_format=InputFormat(
            delimiter="\t",
            header=False,
            columns=("label",) + CRITEO_NUMERIC + CRITEO_CATEGORICAL,
            label="label",
        ),
    )


# === Avazu ===

AVAZU_RAW_CATEGORICAL = (
    "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
    "app_domain", "app_category", "device_id", "device_ip", "device_model",
    "device_type", "device_conn_type", "C14", "C15", "C16", "C17", "C18",
    "C19", "C20", "C21",
)  # fmt: skip
AVAZU_TIME_FIELDS = ("hour", "weekday", "weekend")


def avazu_spec(min_count: int = 2) -> FeatureSpec:
    """Avazu: the BARS Avazu_x4 fields. `id` is dropped; the raw `hour`
    (YYMMDDHH) becomes hour-of-day, weekday and is-weekend tokens."""
    names = AVAZU_RAW_CATEGORICAL + AVAZU_TIME_FIELDS
    return FeatureSpec(
        fields=tuple(Field(name, "categorical", min_count=min_count) for name in names),
        label="click",
        input_format=InputFormat(delimiter=",", header=True, label="click", key="id"),
    )


def expand_avazu_hour(cell: str) -> dict[str, str]:
    """Avazu's ``hour`` (YYMMDDHH) → hour-of-day, weekday (0 = Monday) and
    is-weekend tokens, as in the BARS Avazu_x4 preprocessing."""
    try:
        moment = datetime.datetime.strptime(cell, "%y%m%d%H")
    except ValueError:
        raise BadRowError(f"field hour: {cell!r} is not YYMMDDHH") from None
    weekday = moment.weekday()
    return {"hour": f"{moment.hour:02d}", "weekday": str(weekday), "weekend": "1" if weekday >= 5 else "0"}


def derive_avazu_time(raw: Mapping[str, str]) -> dict[str, str]:
    """The Avazu format's derived columns, from a row's raw cells."""
    return expand_avazu_hour(raw["hour"])


# === The registry ===


@dataclasses.dataclass(frozen=True)
class Format:
    """One raw input format.

    Attributes:
        name: the ``--format`` value.
        spec_builder: the format's own FeatureSpec (taking ``min_count``), or
            None when the user describes the columns (``--spec``).
        derived_fields: fields that are not raw columns but computed by
            `derive` from them (they need no column in the file).
        derive: raw cells by column → the derived (or rewritten) cells.
        derive_from: the one raw column `derive` reads, so that a batch of
            rows is derived once per distinct value of it.
    """

    name: str
    spec_builder: Callable[..., FeatureSpec] | None = None
    derived_fields: tuple[str, ...] = ()
    derive: Callable[[Mapping[str, str]], dict[str, str]] | None = None
    derive_from: tuple[str, ...] = ()

    def spec(self, spec: FeatureSpec | None = None, min_count: int | None = None) -> FeatureSpec:
        """The given spec (an override), or the format's own; it must describe its raw files."""
        if spec is None:
            if self.spec_builder is None:
                raise ValueError(f"The `{self.name}` format needs a FeatureSpec file (--spec) describing its columns.")
            spec = self.spec_builder() if min_count is None else self.spec_builder(min_count)
        if spec.input_format is None:
            raise ValueError("The FeatureSpec needs an `input_format` (delimiter, header/columns, label).")
        return spec

    def field_columns(self, spec: FeatureSpec) -> list[str]:
        """The raw columns the spec's fields are read from."""
        return [name for name in spec.names if name not in self.derived_fields]


FORMATS: dict[str, Format] = {
    "criteo": Format("criteo", criteo_spec),
    "avazu": Format(
        "avazu", avazu_spec, derived_fields=("weekday", "weekend"), derive=derive_avazu_time, derive_from=("hour",)
    ),
    "csv": Format("csv"),
}


def get_format(name: str | Format) -> Format:
    """The registered format `name` (a `Format` is returned as is)."""
    if isinstance(name, Format):
        return name
    if name not in FORMATS:
        raise ValueError(f"Unknown input format {name!r}. Expected one of {tuple(FORMATS)}.")
    return FORMATS[name]


def spec_for_format(name: str, spec: FeatureSpec | None = None, min_count: int | None = None) -> FeatureSpec:
    """The FeatureSpec of a built-in format, or the given one (required for `csv`)."""
    return get_format(name).spec(spec, min_count)
