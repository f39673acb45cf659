"""FuxiCTR itself beside our package, on the same split, with BARS' published Frappe_x1 recipes.

BARS (reczoo/BARS) publishes, per model and dataset, the FuxiCTR config that
gave its test AUC. This script runs FuxiCTR with BARS' Frappe_x1 configs for
DeepFM and DCNv2 (``DeepFM_frappe_x1_001_...``: D 10, DNN 400×3 with batch
norm, dropout 0.2; ``DCNv2_frappe_x1_007_c207b717``: parallel, 4 cross
layers, DNN 400×3, dropout 0.4, batch norm; both: embedding regularizer
0.05, batch 4096, Adam 1e-3, learning rate × 0.1 on a plateau of the
validation AUC, stop after 2) on **our** split of a prepared data directory,
and our package with the same recipe (the named experiment
``<model>_frappe_bars``) on the same rows, one cell per model and seed.

The same rows, exactly: the train, validation and test splits' ids (our
`FeatureTransform`'s output) are written once as CSV files, one column per
field, and FuxiCTR builds its own vocabulary of them from the train file, as
it would from raw values (its ``min_categr_count: 1``).

FuxiCTR is not a dependency of this project and nothing is installed into
its environment. It runs in a venv of its own, with the CPU build of torch
that pip finds on this machine, and needs BARS' model code from the public
reczoo/FuxiCTR repository (``model_zoo/``):

    python3.11 -m venv /tmp/fuxictr_venv
    /tmp/fuxictr_venv/bin/pip install torch==2.13.0 fuxictr==2.3.10 'polars<2'
    git clone https://github.com/reczoo/FuxiCTR /tmp/FuxiCTR   # for model_zoo/
    python benchmarks/fuxictr_side_by_side.py --data_dir /tmp/frappe_prep \\
        --fuxictr_python /tmp/fuxictr_venv/bin/python --model_zoo /tmp/FuxiCTR/model_zoo \\
        --seeds 3 --output_dir /tmp/side_by_side

One line per (library, model, seed); then ``side_by_side.md``: validation
and test AUC per library, mean ± std over seeds, and ours − FuxiCTR's.
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import yaml

from featnet_tf import benchmark, experiments, training

# BARS' Frappe_x1 configs (reczoo/BARS ranking/ctr/<model>/<model>_frappe_x1), as FuxiCTR 2.3 names them;
# the model's code is model_zoo/<directory>/src.
BARS_FRAPPE_CONFIGS = {
    "deepfm": (
        "DeepFM/DeepFM_torch",
        {
            "model": "DeepFM",
            "embedding_dim": 10,
            "hidden_units": [400, 400, 400],
            "hidden_activations": "relu",
            "batch_norm": True,
            "net_dropout": 0.2,
            "embedding_regularizer": 0.05,
            "net_regularizer": 0,
        },
    ),
    "dcnv2": (
        "DCNv2",
        {
            "model": "DCNv2",
            "embedding_dim": 10,
            "model_structure": "parallel",
            "use_low_rank_mixture": False,
            "low_rank": 32,
            "num_experts": 4,
            "num_cross_layers": 4,
            "parallel_dnn_hidden_units": [400, 400, 400],
            "stacked_dnn_hidden_units": [500, 500, 500],
            "dnn_activations": "relu",
            "batch_norm": True,
            "net_dropout": 0.4,
            "embedding_regularizer": 0.05,
            "net_regularizer": 0,
        },
    ),
}
BARS_TRAINING = {
    "loss": "binary_crossentropy",
    "metrics": ["AUC", "logloss"],
    "task": "binary_classification",
    "optimizer": "adam",
    "learning_rate": 1.0e-3,
    "batch_size": 4096,
    "epochs": 100,
    "shuffle": True,
    "monitor": "AUC",
    "monitor_mode": "max",
    "early_stop_patience": 2,
    "save_best_only": True,
    "eval_steps": None,
    "num_workers": 1,
    "verbose": 0,
    "debug_mode": False,
    "group_id": None,
    "use_features": None,
    "feature_specs": None,
    "feature_config": None,
    "pickle_feature_encoder": True,
}


# Runs in FuxiCTR's Python, in a copy of the model's model_zoo/ directory: the steps of its
# run_expid.py (the data loaders' call as both FuxiCTR 2.3 releases spell it), then one JSON line.
FUXICTR_DRIVER = """
import json, os, sys
from fuxictr.features import FeatureMap
from fuxictr.preprocess import FeatureProcessor, build_dataset
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import load_config, set_logger
import src

params = load_config(sys.argv[1], sys.argv[2])
params["gpu"] = -1
set_logger(params)
seed_everything(seed=params["seed"])
encoder = FeatureProcessor(**params)
params["train_data"], params["valid_data"], params["test_data"] = build_dataset(encoder, **params)
feature_map = FeatureMap(params["dataset_id"], os.path.join(params["data_root"], params["dataset_id"]))
feature_map.load(os.path.join(params["data_root"], params["dataset_id"], "feature_map.json"), params)
model = getattr(src, params["model"])(feature_map, **params)


def loaders(stage):
    made = RankDataLoader(feature_map, stage=stage, **params)
    return made.make_iterator() if hasattr(made, "make_iterator") else made


train, valid = loaders("train")
model.fit(train, validation_data=valid, **params)
result = {"val_auc": model.evaluate(valid)["AUC"], "auc": model.evaluate(loaders("test"))["AUC"]}
print(json.dumps({key: float(value) for key, value in result.items()}))
"""


def export_splits_as_csv(data_dir: str, directory: str) -> list[str]:
    """Writes ``train.csv``, ``valid.csv`` and ``test.csv`` (``label`` then one
    column per field: our ids of its values); returns the field names."""
    config = experiments.experiment("deepfm", **{"data.data_dir": data_dir})
    run = training.build_run(config, tempfile.mkdtemp())
    fields = [field.name for field in run.spec.fields]
    if any(field.field_kind.multivalued or not field.uses_tokens for field in run.spec.fields):
        raise SystemExit(f"the side-by-side run feeds single ids only; {data_dir} has other fields")
    os.makedirs(directory, exist_ok=True)
    for split in ("train", "valid", "test"):
        held = training.InMemoryIds.build(run, split)
        columns = [held.labels.numpy().reshape(-1).astype(np.int64)]
        columns += [held.ids[name].numpy().reshape(-1) for name in fields]
        with open(os.path.join(directory, f"{split}.csv"), "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["label", *fields])
            writer.writerows(np.stack(columns, axis=1).tolist())
    return fields


def fuxictr_cell(model: str, seed: int, args: argparse.Namespace, data: str, fields: list[str]) -> dict[str, float]:
    """One FuxiCTR run of BARS' config of `model` (its own ``run_expid.py``), its validation and test AUC."""
    directory, settings = BARS_FRAPPE_CONFIGS[model]
    workdir = os.path.join(args.output_dir, "fuxictr", model, f"seed{seed}")
    finished = os.path.join(workdir, "result.json")
    if os.path.exists(finished):  # a run finished earlier: an interrupted comparison resumes
        with open(finished) as stream:
            return json.load(stream)
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(
        os.path.join(args.model_zoo, directory), workdir, ignore=shutil.ignore_patterns("config", "run_expid.py")
    )
    config_dir = os.path.join(workdir, "bars_config")
    os.makedirs(config_dir)
    dataset = {
        "data_root": os.path.join(workdir, "data"),
        "data_format": "csv",
        "train_data": os.path.join(data, "train.csv"),
        "valid_data": os.path.join(data, "valid.csv"),
        "test_data": os.path.join(data, "test.csv"),
        "min_categr_count": 1,
        "feature_cols": [{"name": fields, "active": True, "dtype": "str", "type": "categorical"}],
        "label_col": {"name": "label", "dtype": "float"},
    }
    expid = f"{settings['model']}_side_by_side_seed{seed}"
    experiment = {
        **BARS_TRAINING,
        **settings,
        "dataset_id": "our_split",
        "seed": 2021 + seed,
        "model_root": os.path.join(workdir, "checkpoints"),
    }
    with open(os.path.join(config_dir, "dataset_config.yaml"), "w") as stream:
        yaml.safe_dump({"our_split": dataset}, stream)
    with open(os.path.join(config_dir, "model_config.yaml"), "w") as stream:
        yaml.safe_dump({expid: experiment}, stream)
    result = subprocess.run(
        [args.fuxictr_python, "-c", FUXICTR_DRIVER, config_dir, expid],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"FuxiCTR's {settings['model']} failed:\n{result.stderr[-3000:]}")
    with open(finished, "w") as stream:
        stream.write(result.stdout.strip().splitlines()[-1])
    with open(finished) as stream:
        return json.load(stream)


def our_cell(model: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Our package's run of the same recipe (``<model>_frappe_bars``) on the prepared data."""
    runs = benchmark.Benchmark(
        data_dir=args.data_dir,
        output_dir=os.path.join(args.output_dir, "featnet_tf"),
        models=[model],
        dataset="frappe",
        recipe="bars",
    )
    cell = runs.run_cell(model, seed, {})
    return {"val_auc": cell["val_auc"], "auc": cell["auc"]}


def summary(cells: dict[tuple[str, str], list[dict[str, float]]], models: list[str]) -> str:
    def spread(values: list[float]) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values):.4f}"

    lines = [
        "| model | FuxiCTR valid AUC | featnet_tf valid AUC | FuxiCTR test AUC | featnet_tf test AUC | "
        "test: ours − FuxiCTR's |",
        "|---|---|---|---|---|---|",
    ]
    for model in models:
        theirs, ours = cells[("FuxiCTR", model)], cells[("featnet_tf", model)]
        gap = np.mean([cell["auc"] for cell in ours]) - np.mean([cell["auc"] for cell in theirs])
        lines.append(
            f"| {model} | {spread([c['val_auc'] for c in theirs])} | {spread([c['val_auc'] for c in ours])} | "
            f"{spread([c['auc'] for c in theirs])} | {spread([c['auc'] for c in ours])} | {gap:+.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="a pipelines.preprocess output of single-id fields (Frappe)")
    parser.add_argument(
        "--fuxictr_python", default=os.environ.get("FEATNET_FUXICTR_PYTHON"), help="a Python with fuxictr"
    )
    parser.add_argument("--model_zoo", default=os.environ.get("FEATNET_FUXICTR_MODEL_ZOO"), help="FuxiCTR's model_zoo/")
    parser.add_argument("--models", default="deepfm,dcnv2", help=f"of {sorted(BARS_FRAPPE_CONFIGS)}")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    if not args.fuxictr_python or not args.model_zoo:
        raise SystemExit("give --fuxictr_python (a Python with fuxictr) and --model_zoo (reczoo/FuxiCTR's model_zoo/)")
    models = args.models.split(",")
    data = os.path.join(args.output_dir, "split_as_csv")
    fields = export_splits_as_csv(args.data_dir, data)
    cells: dict[tuple[str, str], list[dict[str, float]]] = {}
    for model in models:
        for seed in range(args.seeds):
            for library in ("FuxiCTR", "featnet_tf"):
                cell = (
                    fuxictr_cell(model, seed, args, data, fields)
                    if library == "FuxiCTR"
                    else our_cell(model, seed, args)
                )
                cells.setdefault((library, model), []).append(cell)
                print(
                    f"[side by side] {library} {model} seed {seed}: valid AUC {cell['val_auc']:.4f}, "
                    f"test AUC {cell['auc']:.4f}",
                    flush=True,
                )
    table = summary(cells, models)
    with open(os.path.join(args.output_dir, "side_by_side.md"), "w") as stream:
        stream.write(table)
    print(table, end="")


if __name__ == "__main__":
    main(sys.argv[1:])
