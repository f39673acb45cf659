"""Training examples/s of our DCNv2 and DeepFM against DeepCTR's, in one run.

Ours: the real command (`python -m featnet_tf.train`, the whole path from the
prepared TFRecords) for two epochs, timed on the second epoch without its
validation pass. DeepCTR's: `DCN` (``cross_parameterization="matrix"``, i.e.
DCN-M/DCNv2) and `DeepFM` built with the same widths as ours (3 cross layers,
DNN 400×3, DeepFM's dropout 0.5, D = 16, no L2 terms, as ours), fed the very
ids our `FeatureTransform` produced for the train split (exported once to an
``.npz``), `model.fit` with the same batch, Adam and learning rate, also
timed on its second epoch: the way DeepCTR is used and measured.
``--dnn_units 256,128 --deepfm_dropout 0`` builds both sides with DeepCTR's
default DNN instead.

DeepCTR is not a dependency of this project and nothing is installed into
its environment: give a Python that has it as `--peer_python`, or set
``FEATNET_PEER_PYTHON``. DeepCTR 0.9.4 imports TensorFlow's removed
``tensorflow.python.keras``, so it needs an older TensorFlow in a venv of
its own. Without one, only our side is measured and the line says so.

    python3.11 -m venv /tmp/deepctr_venv
    /tmp/deepctr_venv/bin/pip install deepctr==0.9.4 tensorflow==2.12.1
    python benchmarks/peer_throughput.py --data_dir /tmp/frappe_prep \
        --peer_python /tmp/deepctr_venv/bin/python

One line per model and library, then the ratio ours / DeepCTR's.
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from train_throughput import train_history  # benchmarks/, on the path of a script run from it

from featnet_tf import experiments, training

# DeepCTR's class and arguments for each of our models; {dnn} and {dropout}
# are the DNN widths and dropout both sides are built with.
PEER_MODELS = {
    "dcnv2": (
        "DCN",
        "dict(cross_num=3, cross_parameterization='matrix', dnn_hidden_units={dnn}, dnn_dropout=0.0, "
        "l2_reg_linear=0, l2_reg_embedding=0, l2_reg_cross=0, task='binary')",
    ),
    "deepfm": (
        "DeepFM",
        "dict(dnn_hidden_units={dnn}, dnn_dropout={dropout}, l2_reg_linear=0, l2_reg_embedding=0, task='binary')",
    ),
}

# Runs in the peer's Python: only NumPy, TensorFlow and DeepCTR there.
PEER_SCRIPT = """
import json, sys, time
import numpy as np
import tensorflow as tf
from deepctr.feature_column import SparseFeat
from deepctr.models import {model_class}

ids = np.load(sys.argv[1])
sizes = json.loads(sys.argv[2])
columns = [SparseFeat(name, vocabulary_size=size, embedding_dim={embedding_dim}) for name, size in sizes.items()]
model = {model_class}(columns, columns, **{arguments})
model.compile(tf.keras.optimizers.Adam({learning_rate}), "binary_crossentropy")


class EpochTimer(tf.keras.callbacks.Callback):
    seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


labels = ids["__label__"]
model.fit({{name: ids[name] for name in sizes}}, labels, batch_size={batch_size}, epochs=2, verbose=0,
          shuffle=True, callbacks=[EpochTimer()])
print(json.dumps({{"examples_per_second": len(labels) / EpochTimer.seconds[1], "rows": len(labels)}}))
"""


def export_train_ids(data_dir: str, path: str) -> dict[str, int]:
    """Writes the train split's ids (our `FeatureTransform`'s output) and
    labels to `path`; returns each field's number of ids."""
    config = experiments.experiment("dcnv2", **{"data.data_dir": data_dir})
    run = training.build_run(config, tempfile.mkdtemp())
    scalar_ids = [field for field in run.spec.fields if field.uses_tokens and not field.field_kind.multivalued]
    if len(scalar_ids) != len(run.spec.fields):
        others = [field.name for field in run.spec.fields if field not in scalar_ids]
        raise SystemExit(f"the peer benchmark feeds single ids only; {data_dir} also has {others}")
    held = training.InMemoryIds.build(run, "train")
    arrays = {name: value.numpy().reshape(-1) for name, value in held.ids.items()}
    np.savez(path, __label__=held.labels.numpy().reshape(-1), **arrays)
    return {field.name: field.num_ids for field in scalar_ids}


def ours(model: str, args: argparse.Namespace) -> float:
    flags = ["--strategy", "one_device"]
    for assignment in (
        f"training.learning_rate={args.learning_rate}",
        f"data.batch_size={args.batch_size}",
        f"model.hidden_units=[{args.dnn_units}]",
        *([f"model.dropout={args.deepfm_dropout}"] if model == "deepfm" else []),
        *args.set,
    ):
        flags += ["--set", assignment]
    history = train_history(args.data_dir, model, flags)  # whole epochs
    with open(os.path.join(args.data_dir, "statistics.json")) as stream:
        rows = json.load(stream)["splits"]["train"]["rows"]
    return rows / history["epoch_train_seconds"][1]


def peer(model: str, args: argparse.Namespace, ids_path: str, sizes: dict[str, int]) -> float:
    model_class, arguments = PEER_MODELS[model]
    script = PEER_SCRIPT.format(
        model_class=model_class,
        arguments=arguments.format(dnn=f"({args.dnn_units},)", dropout=args.deepfm_dropout),
        embedding_dim=16,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
    )
    result = subprocess.run(
        [args.peer_python, "-c", script, ids_path, json.dumps(sizes)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if result.returncode:
        raise SystemExit(f"DeepCTR's {model_class} failed in {args.peer_python}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["examples_per_second"]


def check_peer_python(python: str) -> str | None:
    """None when `python` can import DeepCTR, else why not."""
    try:
        result = subprocess.run(
            [python, "-c", "import deepctr; print(deepctr.__version__)"], capture_output=True, text=True
        )
    except OSError as error:
        return f"{python} cannot be run ({error})"
    if result.returncode:
        return f"{python} has no DeepCTR ({result.stderr.strip().splitlines()[-1]})"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="a pipelines.preprocess output of single-id fields (Frappe)")
    parser.add_argument("--peer_python", default=os.environ.get("FEATNET_PEER_PYTHON"), help="a Python with DeepCTR")
    parser.add_argument("--models", default="dcnv2,deepfm", help=f"of {sorted(PEER_MODELS)}")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--dnn_units", default="400,400,400", help="the DNN widths of both sides (ours: the paper's)")
    parser.add_argument("--deepfm_dropout", type=float, default=0.5, help="DeepFM's DNN dropout on both sides")
    parser.add_argument("--set", action="append", default=[], help="an override of our runs, e.g. data.cache=none")
    args = parser.parse_args(argv)
    why_not = check_peer_python(args.peer_python) if args.peer_python else "no --peer_python given"
    if why_not:
        print(f"DeepCTR not measured: {why_not}; measuring ours only", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        ids_path = os.path.join(scratch, "train_ids.npz")
        sizes = export_train_ids(args.data_dir, ids_path) if not why_not else {}
        for model in args.models.split(","):
            our_rate = ours(model, args)
            print(f"{model} featnet_tf: {our_rate:,.0f} training examples/s (epoch 2)", flush=True)
            if why_not:
                continue
            peer_rate = peer(model, args, ids_path, sizes)
            print(
                f"{model} DeepCTR {PEER_MODELS[model][0]}: {peer_rate:,.0f} training examples/s (epoch 2); "
                f"featnet_tf / DeepCTR = {our_rate / peer_rate:.2f}×",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
