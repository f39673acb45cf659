"""`make_dataset`: batches of the preprocessing pipeline's TFRecords for training.

The TFRecords hold raw values (see `pipelines.examples`); batches come out as
``(features, label)`` with one raw tensor per field, exactly what the exported
model's `predict_raw` signature takes, and the model's `FeatureTransform`
maps them to ids (`featnet_tf.training.Run.dataset` runs it in the
pipeline; the exported model carries the same layer). The prepared
directory's layout is `featnet_tf.prepared_data`'s.
"""

from __future__ import annotations

import tensorflow as tf

from featnet_tf.features import FeatureSpec
from featnet_tf.prepared_data import load_feature_spec, split_files


def parsing_spec(spec: FeatureSpec, with_label: bool = True) -> dict:
    """`tf.io.parse_example` features of the raw examples; missing numerics
    parse as NaN and missing categoricals as "" (both map to missing ids)."""
    features = {}
    for field in spec.fields:
        kind = field.field_kind
        if kind.multivalued and not kind.fixed_length:
            features[field.name] = tf.io.RaggedFeature(kind.raw_dtype, row_splits_dtype=tf.int64)
        else:
            shape = list(kind.raw_shape(field))
            features[field.name] = tf.io.FixedLenFeature(shape, kind.raw_dtype, default_value=kind.missing_value(field))
    if with_label:
        features[spec.label] = tf.io.FixedLenFeature([], tf.int64)
    return features


def make_dataset(
    output_dir: str,
    split: str,
    batch_size: int,
    shuffle: bool | None = None,
    shuffle_buffer: int = 100_000,
    repeat: bool = False,
    drop_remainder: bool = False,
    seed: int | None = 0,
    spec: FeatureSpec | None = None,
) -> tf.data.Dataset:
    """Batches ``(features, label)`` of one split.

    Args:
        output_dir: a `pipelines.preprocess` output directory.
        split: ``train``, ``valid`` or ``test``.
        batch_size: rows per batch.
        shuffle: shuffle files and rows (default: only for train).
        shuffle_buffer: rows in the shuffle buffer.
        repeat: repeat forever (for step-based training).
        drop_remainder: drop the last partial batch.
        seed: shuffle seed (None: different every run).
        spec: the FeatureSpec (read from `output_dir` when None).

    Returns:
        A dataset of ``(dict of raw tensors, float32 label of shape (batch, 1))``,
        read with parallel interleave, parsed in parallel per batch and
        prefetched.
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be positive. Received: batch_size={batch_size}")
    spec = spec or load_feature_spec(output_dir)
    shuffle = split == "train" if shuffle is None else shuffle
    files = split_files(output_dir, split)
    features = parsing_spec(spec)
    label = spec.label

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, features)
        labels = tf.cast(tf.reshape(parsed.pop(label), [-1, 1]), tf.float32)
        return parsed, labels

    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
