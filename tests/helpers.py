"""Shared test helpers: serialization and SavedModel round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
import tf_keras as keras

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_serialization_test(layer: keras.layers.Layer, inputs, atol: float = 1e-6):
    """The layer rebuilt from its config (and given its weights) computes the
    same outputs, and its config survives a second round trip unchanged."""
    expected = layer(inputs)
    config = keras.layers.serialize(layer)
    rebuilt = keras.layers.deserialize(json.loads(json.dumps(config)))
    rebuilt(inputs)
    rebuilt.set_weights(layer.get_weights())
    assert type(rebuilt) is type(layer)
    assert rebuilt.get_config() == layer.get_config()
    for want, got in zip(tf.nest.flatten(expected), tf.nest.flatten(rebuilt(inputs))):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=atol)
    return rebuilt


def run_in_fresh_python(code: str, env: dict | None = None, timeout: int = 300) -> str:
    """Runs `code` in a new interpreter and returns its stdout; fails the test
    with stderr when the process fails."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stderr[-4000:]}"
    return result.stdout


def tiny_trained_run(data_dir: str, run_dir: str, steps: int = 30):
    """A small FeatNet trained for a few steps on a preprocessed directory."""
    from featnet_tf import config as config_lib
    from featnet_tf import experiments, training

    config = experiments.resolve(
        config_lib.ExperimentConfig(),
        {
            "model.embedding_dim": 4,
            "model.num_subsets": 2,
            "model.num_queries": 3,
            "model.tower_units": [8],
            "model.dnn_units": [8],
            "data.data_dir": data_dir,
            "data.batch_size": 64,
            "data.eval_batch_size": 512,
            "training.learning_rate": 0.01,
        },
    )
    run = training.build_run(config, run_dir)
    run.model.fit(run.dataset("train", 64, repeat=True), steps_per_epoch=steps, epochs=1, verbose=0)
    return run


def prepared_criteo(root: str, rows: int = 3000, seed: int = 5, min_count: int = 1) -> tuple[str, str]:
    """Synthesizes `rows` Criteo-format rows and preprocesses them; returns
    (raw file, output directory)."""
    from pipelines import preprocess, synthesize

    raw = os.path.join(root, "criteo.tsv")
    synthesize.synthesize_file(raw, rows, "criteo", seed)
    output = os.path.join(root, "prep")
    preprocess.preprocess(preprocess.PreprocessOptions(output, "criteo", input=[raw], min_count=min_count))
    return raw, output


def train_a_few_steps(model: keras.Model, features, labels, steps: int = 2, learning_rate: float = 1e-3) -> list[float]:
    """Eager Adam steps on binary cross-entropy from logits; the losses.

    Eager, not `fit`: tracing Keras' train step over hundreds of inputs costs
    seconds that prove nothing more than a step does, and the gradient step is
    the same (every trainable weight updated, training=True in the layers)."""
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    labels = tf.reshape(tf.convert_to_tensor(labels, tf.float32), [-1, 1])
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True)) + sum(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        losses.append(float(loss))
    return losses
