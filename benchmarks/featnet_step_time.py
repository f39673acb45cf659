"""FeatNet forward+backward time per batch on this machine.

Criteo-shaped inputs: M = 39 categorical fields (the 13 bucketized numerics
of Criteo are id lookups too), each model with its defaults (FeatNet's are
the paper's D=16, S=10, r=4, E=16, towers 3×128). Times a compiled
`train_step` (forward, backward and Adam update) after warm-up; prints one
line per model and batch size, so FeatNet is read against DCNv2 measured in
the same run.

    python benchmarks/featnet_step_time.py --batch_sizes 1024 --steps 50
    python benchmarks/featnet_step_time.py --models dcnv2,featnet --num_fields 10 --ids_per_field 500 \
        --variant "featnet {tower_units: [64, 64]}" --variant "featnet {num_queries: 8}"

A `--variant` is a registered model and a YAML mapping of its arguments,
timed after `--models` in the same process. `--optimizers
keras_adam,fused_adam,lazy_adam,sgd,none` times each model's step with
tf_keras' `Adam`, with `FusedAdam` (the same update in one fused kernel,
training's `adam`), with `LazyAdam` (Adam on the rows a batch read), with
plain SGD, and without any update (forward and backward only): where a step
goes. `--components` also times the
forward and backward pass of each of FeatNet's default stages alone (FSGN,
SAPN, the towers with and without their normalisation and dropout, the DNN)
on inputs of the shapes they see in the model.
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import json
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras
import yaml

from featnet_tf.features import categorical_spec
from featnet_tf.models import build_model
from featnet_tf.optimizers import FusedAdam, LazyAdam


def time_components(batch_size: int, num_fields: int, steps: int, warmup: int) -> None:
    """Forward + backward of each FeatNet stage alone, at FeatNet's defaults."""
    from featnet_tf.layers import FeatureSubsetGeneration, SetAttentivePruning, SubsetTowers
    from featnet_tf.models.base import deep_tower

    dim, subsets, queries = 16, 10, 16
    stages = [
        ("FSGN (Eq. 2-5)", FeatureSubsetGeneration(subsets, 4, initial_threshold=-3.0), [batch_size, num_fields, dim]),
        (
            "SAPN (Eq. 6, 11-13)",
            SetAttentivePruning(queries, initial_threshold=-3.0),
            [batch_size, subsets, num_fields, dim],
        ),
        (
            "towers 3×128, inputs normalised, dropout 0.2",
            SubsetTowers((128,) * 3, dropout=0.2, normalize_inputs=True),
            [batch_size, subsets, queries * dim],
        ),
        ("towers 3×128, plain", SubsetTowers((128,) * 3), [batch_size, subsets, queries * dim]),
        (
            "DNN (400, 400), batch norm, dropout 0.2",
            deep_tower((400, 400), 0.2, True, name="dnn"),
            [batch_size, num_fields * dim],
        ),
    ]
    for label, layer, shape in stages:
        x = tf.random.normal(shape)

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                y = y[0] if isinstance(y, (tuple, list)) else y
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, layer.trainable_variables + [x])

        for _ in range(warmup):
            step(x)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            [gradient.numpy() for gradient in step(x) if gradient is not None]
            times.append(time.perf_counter() - start)
        print(
            f"component {label} M={num_fields} batch={batch_size}: {1000 * np.median(times):.1f} ms forward+backward "
            "median",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="featnet,featnet_eq13,dcnv2", help="registered models, timed in this order")
    parser.add_argument("--num_fields", type=int, default=39)
    parser.add_argument("--ids_per_field", type=int, default=23_000, help="≈0.9M ids in all, like BARS Criteo_x4")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--variant", action="append", default=[], metavar="'MODEL {KEY: VALUE}'", help="a model with arguments"
    )
    parser.add_argument("--components", action="store_true", help="also time each FeatNet stage alone")
    parser.add_argument(
        "--optimizers",
        default="fused_adam",
        help="keras_adam, fused_adam, lazy_adam, sgd and/or none (forward+backward only)",
    )
    args = parser.parse_args(argv)
    runs = [(name, {}) for name in args.models.split(",") if name]
    for variant in args.variant:
        name, _, arguments = variant.strip().partition(" ")
        runs.append((name, yaml.safe_load(arguments) or {}))

    spec = categorical_spec(args.num_fields, args.ids_per_field)
    rng = np.random.default_rng(0)
    optimizers = {
        "keras_adam": lambda: keras.optimizers.Adam(1e-4),
        "fused_adam": lambda: FusedAdam(1e-4),
        "lazy_adam": lambda: LazyAdam(1e-4),
        "sgd": lambda: keras.optimizers.SGD(1e-2),
        "none": None,
    }
    for name, arguments in runs:
        for optimizer in args.optimizers.split(","):
            model = build_model(name, spec, **arguments)
            loss = keras.losses.BinaryCrossentropy(from_logits=True)
            if optimizers[optimizer] is None:
                model.compile(keras.optimizers.Adam(1e-4), loss)

                def gradients_only(x, y, model=model):
                    with tf.GradientTape() as tape:
                        value = model.compiled_loss(y, model(x, training=True))
                    gradients = tape.gradient(value, model.trainable_variables)
                    return {
                        "loss": value
                        + 0.0 * sum(tf.reduce_sum(g.values if hasattr(g, "values") else g) for g in gradients)
                    }

                step = tf.function(gradients_only)
            else:
                model.compile(optimizers[optimizer](), loss)
                step = tf.function(lambda x, y, model=model: model.train_step((x, y)))
            for batch_size in args.batch_sizes:
                features = {f.name: tf.constant(rng.integers(0, f.num_ids, batch_size)) for f in spec.fields}
                labels = tf.constant(rng.integers(0, 2, (batch_size, 1)).astype(np.float32))
                for _ in range(args.warmup):
                    step(features, labels)
                times = []
                for _ in range(args.steps):
                    start = time.perf_counter()
                    float(step(features, labels)["loss"])
                    times.append(time.perf_counter() - start)
                embedding = model.field_embedding.count_params()
                print(
                    f"{name}{' ' + json.dumps(arguments) if arguments else ''} M={args.num_fields} batch={batch_size} "
                    f"update={optimizer}: {1000 * np.median(times):.1f} ms/step median "
                    f"(p10 {1000 * np.percentile(times, 10):.1f}, p90 {1000 * np.percentile(times, 90):.1f}), "
                    f"{batch_size / np.median(times):,.0f} examples/s; parameters {model.count_params():,} "
                    f"({embedding:,} embedding, {model.count_params() - embedding:,} other); "
                    f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} intra-op threads",
                    flush=True,
                )
    if args.components:
        for batch_size in args.batch_sizes:
            time_components(batch_size, args.num_fields, args.steps, args.warmup)


if __name__ == "__main__":
    main(sys.argv[1:])
