"""Warm start: a run begins from the best weights of an earlier run of the same model.

A model trained yesterday knows most of today's ids. Every dense weight is
copied as it is; every id table (each `FieldEmbedding`: the field
embeddings, and the first-order weights of LR, FM, DeepFM, xDeepFM and
FiBiNET) is carried **by token** from the earlier run's vocabularies to this
run's:

* a token in both vocabularies keeps its row exactly;
* a token new today keeps the row the layer's own initializer gave it;
* a token gone today is dropped with its row;
* the reserved rows (missing, out-of-vocabulary) are copied, and so is every
  row of a hashed field (its ids do not depend on a vocabulary).

This is what `keras.utils.warmstart_embedding_matrix` does for one table of
one vocabulary; here every field of a shared table (one table, per-field
offsets) is mapped in one vectorized gather. A model, field or weight that
does not match (another architecture, a field gone or of another kind, a
hashed field with another bucket count, a dense weight of another shape)
is a `ValueError` naming it, raised before any step runs. The optimizer's
state starts fresh (its moments belong to yesterday's rows).

What was carried (rows kept / new / dropped per field) is written to the run's
``warm_start.json`` and, by `featnet_tf.training.evaluate_run`, into its
``metrics.json``; the run's ``config.yaml`` records ``training.warm_start``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from featnet_tf import experiments, training
from featnet_tf.features import NUM_RESERVED_IDS, FeatureSpec
from featnet_tf.files import write_json
from featnet_tf.layers.field_embedding import FieldEmbedding


@dataclasses.dataclass(frozen=True)
class FieldCarry:
    """One field's vocabulary rows: kept (copied by token), new (freshly
    initialised) and dropped (tokens gone today); a hashed field's rows are all kept."""

    kept: int
    new: int
    dropped: int


def warm_start(run: training.Run, source_dir: str) -> dict[str, Any]:
    """Copies the best weights of the run in `source_dir` into `run`'s model,
    id tables carried by token; returns what was carried (``{"from",
    "source_best_epoch", "fields": {name: {kept, new, dropped}}, "rows":
    totals}``). `ValueError` naming what does not match, with `run` untouched."""
    source = load_source(run, source_dir)
    check_fields(source.spec, run.spec, source_dir)
    source_tables, target_tables = _tables(source.model), _tables(run.model)
    if len(source_tables) != len(target_tables):
        raise ValueError(
            f"warm start from {source_dir}: its model has {len(source_tables)} id tables, this one "
            f"{len(target_tables)}: not the same architecture"
        )
    carried: dict[str, FieldCarry] = {}
    assignments = []
    for source_layer, target_layer in zip(source_tables, target_tables):
        table, fields = carry_table(source, source_layer, run, target_layer)
        assignments.append((target_layer.embeddings, table))
        carried = carried or fields  # every table of a model indexes the same fields the same way
    table_ids = {id(layer.embeddings) for layer in target_tables}
    dense_pairs = _dense_pairs(source.model, run.model, table_ids, {id(layer.embeddings) for layer in source_tables})
    for source_weight, target_weight in dense_pairs:
        if tuple(source_weight.shape) != tuple(target_weight.shape):
            raise ValueError(
                f"warm start from {source_dir}: weight {target_weight.name} has shape {tuple(target_weight.shape)} "
                f"here and {tuple(source_weight.shape)} there"
            )
    for target_weight, value in assignments:
        target_weight.assign(value)
    for source_weight, target_weight in dense_pairs:
        target_weight.assign(source_weight.numpy())
    best = training.best_info(source)
    totals = {key: sum(getattr(carry, key) for carry in carried.values()) for key in ("kept", "new", "dropped")}
    return {
        "from": source_dir,
        "source_best_epoch": best["epoch"] if best else None,
        "fields": {name: dataclasses.asdict(carry) for name, carry in carried.items()},
        "rows": totals,
        "dense_weights": len(dense_pairs),
    }


def load_source(run: training.Run, source_dir: str) -> training.Run:
    """The earlier run, with its best weights; `ValueError` when it is not a
    finished run of the same model (its name and every model argument)."""
    config_path = os.path.join(source_dir, training.CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise ValueError(f"warm start from {source_dir}: not a run directory ({config_path} does not exist)")
    source_model = experiments.load(config_path).model
    target_model = run.config.model
    if source_model != target_model:
        source_flat, target_flat = _flat_model(source_model), _flat_model(target_model)
        differing = sorted(
            key for key in source_flat.keys() | target_flat.keys() if source_flat.get(key) != target_flat.get(key)
        )
        raise ValueError(
            f"warm start from {source_dir}: another model: "
            + "; ".join(
                f"model.{key} is {target_flat.get(key)!r} here, {source_flat.get(key)!r} there" for key in differing
            )
        )
    try:
        return training.load_run(source_dir)
    except ValueError as error:
        raise ValueError(f"warm start from {source_dir}: {error}") from None


def _flat_model(model) -> dict[str, Any]:
    flat = {key: value for key, value in dataclasses.asdict(model).items() if key != "params"}
    flat.update({f"params.{key}": value for key, value in dict(model.params).items()})
    return flat


def check_fields(source: FeatureSpec, target: FeatureSpec, source_dir: str) -> None:
    """The same fields, in the same order, of the same kinds and id layouts."""
    if source.names != target.names:
        gone = [name for name in source.names if name not in target.names]
        new = [name for name in target.names if name not in source.names]
        raise ValueError(
            f"warm start from {source_dir}: the fields differ (gone: {gone or 'none'}; new: {new or 'none'}"
            + ("; same fields in another order" if not gone and not new else "")
            + ")"
        )
    for old, new in zip(source.fields, target.fields):
        if (old.kind, old.transform, old.uses_tokens) != (new.kind, new.transform, new.uses_tokens):
            raise ValueError(
                f"warm start from {source_dir}: field {new.name} is {new.kind} ({new.transform}) here and "
                f"{old.kind} ({old.transform}) there"
            )
        if old.hash_buckets != new.hash_buckets:
            raise ValueError(
                f"warm start from {source_dir}: field {new.name} hashes into {new.hash_buckets} buckets here and "
                f"{old.hash_buckets} there"
            )
        if old.kind == "dense_vector" and old.dimension != new.dimension:
            raise ValueError(
                f"warm start from {source_dir}: field {new.name} has dimension {new.dimension} here and "
                f"{old.dimension} there"
            )


def carry_table(
    source: training.Run, source_layer: FieldEmbedding, target: training.Run, target_layer: FieldEmbedding
) -> tuple[np.ndarray, dict[str, FieldCarry]]:
    """`target_layer`'s table with every row the source knows copied from
    `source_layer`'s, by token; and what each field carried."""
    old_table = source_layer.embeddings.numpy()
    table = target_layer.embeddings.numpy().copy()
    old_ranges, new_ranges = source_layer.row_ranges(), target_layer.row_ranges()
    target_rows, source_rows = [], []
    carried = {}
    for name, (new_start, new_rows) in new_ranges.items():
        old_start, old_rows = old_ranges[name]
        field = target.spec[name]
        if not field.uses_vocabulary:  # hashed: the same buckets (checked), every row copied
            target_rows.append(new_start + np.arange(new_rows))
            source_rows.append(old_start + np.arange(old_rows))
            carried[name] = FieldCarry(kept=new_rows, new=0, dropped=0)
            continue
        old_tokens = vocabulary(source, name)
        new_tokens = vocabulary(target, name)
        positions = pc.index_in(pa.array(new_tokens, pa.string()), value_set=pa.array(old_tokens, pa.string()))
        known = positions.is_valid().to_numpy(zero_copy_only=False)
        old_ids = positions.drop_null().to_numpy().astype(np.int64) + NUM_RESERVED_IDS
        new_ids = np.flatnonzero(known) + NUM_RESERVED_IDS
        reserved = np.arange(NUM_RESERVED_IDS)
        target_rows.append(new_start + np.concatenate([reserved, new_ids]))
        source_rows.append(old_start + np.concatenate([reserved, old_ids]))
        kept = int(known.sum())
        carried[name] = FieldCarry(kept=kept, new=len(new_tokens) - kept, dropped=len(old_tokens) - kept)
    if target_rows:
        table[np.concatenate(target_rows)] = old_table[np.concatenate(source_rows)]
    return table, carried


def vocabulary(run: training.Run, name: str) -> list[str]:
    """The tokens of a field's ids ``NUM_RESERVED_IDS, ...``, as the run's own transform looks them up."""
    return run.transform.lookups[name].get_vocabulary()[NUM_RESERVED_IDS:]


def _tables(model: tf.keras.Model) -> list[FieldEmbedding]:
    return [
        layer
        for layer in model.submodules
        if isinstance(layer, FieldEmbedding) and getattr(layer, "embeddings", None) is not None
    ]


def _dense_pairs(source_model, target_model, target_tables: set[int], source_tables: set[int]) -> list[tuple[Any, Any]]:
    source_weights = [weight for weight in source_model.weights if id(weight) not in source_tables]
    target_weights = [weight for weight in target_model.weights if id(weight) not in target_tables]
    if len(source_weights) != len(target_weights):
        raise ValueError(
            f"warm start: the earlier model has {len(source_weights)} other weights, this one {len(target_weights)}"
        )
    return list(zip(source_weights, target_weights))


def write(run: training.Run, carried: dict[str, Any]) -> None:
    write_json(run.path(training.WARM_START_FILE), carried)


def summary(carried: dict[str, Any]) -> str:
    rows = carried["rows"]
    return (
        f"warm start from {carried['from']} (its best epoch {carried['source_best_epoch']}): "
        f"{carried['dense_weights']} dense weights copied; vocabulary rows {rows['kept']:,} kept, {rows['new']:,} new, "
        f"{rows['dropped']:,} dropped"
    )
