"""`python -m featnet_tf.benchmark`: the paper's Table 3 on your own data.

Trains every (model, seed) cell with `featnet_tf.lifecycle.Trainer` and a
recipe (`featnet_tf.recipes`, ``--recipe``): by default each model's best
known recipe on the dataset (on Frappe ``<model>_frappe``: BARS' reference
recipe, the tuner's or the fair one, whichever validated highest over 3
seeds; elsewhere the fair recipe),
``fair`` (one recipe for all: the best epoch and early stopping chosen on the
exact validation AUC, a learning rate lowered on a validation plateau),
``bars`` (BARS' Frappe_x1 recipe) or ``tuned:DIR`` (each model's
``DIR/<model>/best.yaml``, what `featnet_tf.tune` writes). It evaluates each
cell on the test split and measures its speed, then writes under ``--output_dir``:

* ``table.md``: validation AUC, test AUC and LogLoss as mean ± std over
  seeds, best epochs (cells where the epoch cap ended training marked †),
  parameters, training examples/s and inference examples/s at batch 1 and
  1024;
* ``results.csv``: one row per cell;
* ``auc.png``: a bar chart of test AUC with ±std error bars;
* ``runs/<model>/seed<k>/``: each cell's run directory.

Finished cells (a ``cell.json`` beside a run made with the same config) are
not run again, so an interrupted benchmark resumes. One line per cell.

    python -m featnet_tf.benchmark --data_dir /tmp/frappe_prep --dataset frappe \
        --models featnet,dcnv2,deepfm --seeds 3 --output_dir benchmark_output/frappe
    # the fair recipe of Table 3 before issue 28:
    python -m featnet_tf.benchmark ... --recipe fair
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import config as config_lib
from featnet_tf import experiments, lifecycle, prepared_data, training
from featnet_tf.files import read_json, write_json
from featnet_tf.models import MODELS
from featnet_tf.recipes import FAIR_RECIPE

DATASETS = ("criteo", "avazu", "frappe")
RECIPES = ("best", "fair", "bars")  # and tuned:DIR


def inference_speed(run: training.Run, batch_size: int, calls: int) -> float:
    """Examples/s of the ranker (ids in, logits out) at `batch_size`."""
    ids, _ = next(iter(run.dataset("test", batch_size, shuffle=False, repeat=True)))
    predict = tf.function(lambda inputs: run.model(inputs, training=False))
    predict(ids)
    start = time.perf_counter()
    for _ in range(calls):
        predict(ids).numpy()
    return batch_size * calls / (time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Table 3 on one prepared dataset: every (model, grid point, seed) cell
    trained with `recipe` (``best``, ``fair`` or ``bars``; a YAML file's
    overrides over it), or the model's tuned recipe when `tuned_dir` is given
    (``<tuned_dir>/<model>/best.yaml``, what `python -m featnet_tf.tune
    --output_dir <tuned_dir>/<model>` writes), then `overrides`, and
    measured; `run` writes the outputs the module docstring lists and returns
    the cells. What `python -m featnet_tf.benchmark` and the ablation run."""

    data_dir: str
    output_dir: str
    models: Sequence[str]
    dataset: str = "criteo"
    seeds: int = 3
    overrides: Sequence[str] = ()  # SECTION.KEY=VALUE, applied to every cell after the recipe
    config_file: str | None = None
    grid: Sequence[dict[str, Any]] = ({},)  # settings per cell group, e.g. {"model.num_subsets": 5}
    title: str | None = None
    tuned_dir: str | None = None
    recipe: str = "best"

    def run(self, sweeps: dict[str, tuple] | None = None) -> list[dict[str, Any]]:
        """Every cell (finished ones read back), one line each; then
        ``table.md``, ``results.csv``, ``auc.png`` (and Fig. 5 for `sweeps`)."""
        os.makedirs(self.output_dir, exist_ok=True)
        cells = []
        for model, point, seed in itertools.product(self.models, self.grid, range(self.seeds)):
            cell = self.run_cell(model, seed, point)
            cells.append(cell)
            print(
                f"[benchmark] {cell['model']} seed {seed}: valid AUC {cell['val_auc']:.4f}, "
                f"test AUC {cell['auc']:.4f}, LogLoss {cell['logloss']:.4f}, best epoch "
                f"{cell['best_epoch']}/{cell['epochs']}{' (cap-bound)' if cell['cap_bound'] else ''}, "
                f"{cell['parameters']:,} params, {cell['train_examples_per_second']:,.0f} train ex/s"
                + (" (finished earlier)" if cell.get("resumed") else ""),
                flush=True,
            )
        title = self.title or f"{self.dataset}: {os.path.basename(os.path.normpath(self.data_dir))}"
        rows = write_outputs(self.output_dir, cells, title)
        if sweeps:
            plot_sweep(self.output_dir, cells, sweeps, self.models[0])
        print(f"[benchmark] {len(rows)} models → {os.path.join(self.output_dir, 'table.md')}, results.csv, auc.png")
        return cells

    def cell_config(self, model: str, seed: int, grid_point: dict[str, Any]) -> config_lib.ExperimentConfig:
        if self.recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {self.recipe!r}. Recipes: {RECIPES} or tuned:DIR")
        fixed = {"data.data_dir": self.data_dir, "training.strategy": "one_device"}
        experiment = experiments.experiment_for(model, self.dataset, self.recipe)
        if self.tuned_dir or self.recipe == "fair" or experiment == model:
            config = experiments.experiment(model, self.config_file, FAIR_RECIPE, **fixed)
        else:
            config = experiments.experiment(experiment, self.config_file, **fixed)
        if self.tuned_dir:  # over the fair recipe: a hand-written best.yaml may name only some keys
            config = experiments.resolve(config, config_lib.load_yaml(self.tuned_recipe(model)))
        flags = [*self.overrides, f"training.seed={seed}", *(f"{key}={value}" for key, value in grid_point.items())]
        return experiments.resolve(config, {**config_lib.parse_set_flags(flags), **fixed})

    def tuned_recipe(self, model: str) -> str:
        path = os.path.join(self.tuned_dir, model, "best.yaml")
        if not tf.io.gfile.exists(path):
            raise ValueError(f"--recipe tuned:{self.tuned_dir} has no recipe for {model}: {path} does not exist")
        return path

    def run_cell(self, model: str, seed: int, grid_point: dict[str, Any]) -> dict[str, Any]:
        """One cell: trained (or resumed) without export, then measured; ``cell.json`` beside its run."""
        label = "".join(f"_{key.split('.')[-1]}{value}" for key, value in grid_point.items())
        run_dir = os.path.join(self.output_dir, "runs", f"{model}{label}", f"seed{seed}")
        config = self.cell_config(model, seed, grid_point)
        cell_path = os.path.join(run_dir, "cell.json")
        if tf.io.gfile.exists(cell_path):
            cell = read_json(cell_path)
            if cell["config_hash"] == config.config_hash():
                return {**cell, "resumed": True}
        keras.backend.clear_session()
        trainer = lifecycle.Trainer(config, run_dir)
        result = trainer.run(export=False)
        trainer.restore_best()
        train_rows = prepared_data.load_statistics(self.data_dir)["splits"]["train"]["rows"]  # counted by the pipeline
        steps_per_epoch = config.training.steps_per_epoch
        examples_per_epoch = steps_per_epoch * config.data.batch_size if steps_per_epoch else train_rows
        epochs = len(result.fit.epoch_seconds)
        cell = {
            "model": model + label,
            "seed": seed,
            "auc": result.metrics["auc"],
            "logloss": result.metrics["logloss"],
            "parameters": trainer.run_state.model.count_params(),
            "epochs": epochs,
            "best_epoch": result.metrics.get("best_epoch"),
            "cap_bound": epochs >= config.training.epochs,
            "val_auc": result.fit.best_val_auc,
            "train_examples_per_second": examples_per_epoch * epochs / sum(result.fit.epoch_train_seconds),
            "inference_examples_per_second_batch_1": inference_speed(trainer.run_state, 1, 200),
            "inference_examples_per_second_batch_1024": inference_speed(trainer.run_state, 1024, 10),
            "config_hash": config.config_hash(),
        }
        write_json(cell_path, cell)
        return cell


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for model in dict.fromkeys(cell["model"] for cell in cells):
        mine = [cell for cell in cells if cell["model"] == model]
        auc = np.array([cell["auc"] for cell in mine])
        logloss = np.array([cell["logloss"] for cell in mine])
        rows.append(
            {
                "model": model,
                "seeds": len(mine),
                "val_auc_mean": np.mean([cell["val_auc"] for cell in mine]),
                "cap_bound": sum(bool(cell.get("cap_bound")) for cell in mine),
                "best_epochs": "/".join(str(cell.get("best_epoch")) for cell in mine),
                "auc_mean": auc.mean(),
                "auc_std": auc.std(),
                "logloss_mean": logloss.mean(),
                "logloss_std": logloss.std(),
                "parameters": mine[0]["parameters"],
                "train_examples_per_second": np.mean([c["train_examples_per_second"] for c in mine]),
                "inference_batch_1": np.mean([c["inference_examples_per_second_batch_1"] for c in mine]),
                "inference_batch_1024": np.mean([c["inference_examples_per_second_batch_1024"] for c in mine]),
            }
        )
    return rows


def write_outputs(output_dir: str, cells: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    rows = aggregate(cells)
    with open(os.path.join(output_dir, "results.csv"), "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[key for key in cells[0] if key != "resumed"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(cells)
    lines = [
        f"### {title}",
        "",
        "| model | valid AUC (mean) | test AUC (mean ± std) | test LogLoss (mean ± std) | best epochs | parameters | "
        "train ex/s "
        "| infer ex/s @1 | infer ex/s @1024 | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        capped = f" ({row['cap_bound']} cap-bound †)" if row["cap_bound"] else ""
        lines.append(
            f"| {row['model']} | {row['val_auc_mean']:.4f} | {row['auc_mean']:.4f} ± {row['auc_std']:.4f} "
            f"| {row['logloss_mean']:.4f} ± {row['logloss_std']:.4f} | {row['best_epochs']}{capped} "
            f"| {row['parameters']:,} | {row['train_examples_per_second']:,.0f} | {row['inference_batch_1']:,.0f} "
            f"| {row['inference_batch_1024']:,.0f} | {row['seeds']} |"
        )
    if any(row["cap_bound"] for row in rows):
        lines += ["", "† the epoch cap ended the run before early stopping did: raise `training.epochs`."]
    with open(os.path.join(output_dir, "table.md"), "w") as stream:
        stream.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 4))
    axis.bar(
        [row["model"] for row in rows],
        [row["auc_mean"] for row in rows],
        yerr=[row["auc_std"] for row in rows],
        capsize=4,
        color="#4c72b0",
    )
    low = min(row["auc_mean"] - row["auc_std"] for row in rows)
    high = max(row["auc_mean"] + row["auc_std"] for row in rows)
    axis.set_ylim(low - 0.2 * (high - low + 1e-3), high + 0.2 * (high - low + 1e-3))
    axis.set_ylabel("test AUC (mean ± std over seeds)")
    axis.set_title(title)
    axis.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "auc.png"), dpi=120)
    plt.close(figure)
    return rows


def parse_sweeps(assignments: Sequence[str]) -> dict[str, tuple]:
    """``["num_subsets=2,5,10"]`` → ``{"model.num_subsets": (2, 5, 10)}``."""
    sweeps = {}
    for assignment in assignments:
        key, _, values = assignment.partition("=")
        key = key if "." in key else f"model.{key}"
        parsed = tuple(config_lib.parse_yaml(value) for value in values.split(",") if value.strip())
        if not parsed:
            raise ValueError(f"--sweep takes KEY=V1,V2,... Received: {assignment!r}")
        sweeps[key] = parsed
    return sweeps


def plot_sweep(output_dir: str, cells: list[dict[str, Any]], sweeps: dict[str, tuple], model: str) -> None:
    """Fig. 5: test AUC against the first swept setting, one line per value
    of the second (if any)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(sweeps)
    first, second = keys[0], keys[1] if len(keys) > 1 else None
    figure, axis = plt.subplots(figsize=(6, 4))
    for other in sweeps[second] if second else [None]:
        xs, means, stds = [], [], []
        for value in sweeps[first]:
            point = {first: value, **({second: other} if second else {})}
            label = "".join(f"_{key.split('.')[-1]}{v}" for key, v in point.items())
            aucs = [cell["auc"] for cell in cells if cell["model"] == f"{model}{label}"]
            if aucs:
                xs.append(value)
                means.append(np.mean(aucs))
                stds.append(np.std(aucs))
        axis.errorbar(
            xs, means, yerr=stds, marker="o", capsize=3, label=f"{second.split('.')[-1]}={other}" if second else None
        )
    axis.set_xlabel(first.split(".")[-1])
    axis.set_ylabel("test AUC")
    axis.set_title(f"{model}: effect of {' and '.join(k.split('.')[-1] for k in keys)} (cf. Fig. 5)")
    if second:
        axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "fig5_sweep.png"), dpi=120)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", help="a pipelines.preprocess output directory (not needed with --scaling)")
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="criteo",
        help="the dataset: on `frappe` the default recipe is each model's <model>_frappe experiment",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a model setting, e.g. num_subsets=2,5,10 (Fig. 5)",
    )
    parser.add_argument(
        "--scaling", action="store_true", help="time and memory versus the number of fields instead of accuracy"
    )
    parser.add_argument("--fields", default="39,100,200,400", help="numbers of fields M for --scaling")
    parser.add_argument("--batch_size", type=int, default=256, help="batch of the --scaling steps")
    parser.add_argument("--config", help="YAML overrides applied to every cell")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override for every cell"
    )
    parser.add_argument(
        "--grid", action="store_true", help="every model over the paper's grid: D ∈ {8,16,32} × lr ∈ {1e-1..1e-4}"
    )
    parser.add_argument("--title", help="title of the table and chart")
    parser.add_argument(
        "--recipe",
        default="best",
        metavar="best|fair|bars|tuned:DIR",
        help="best: each model's best known recipe on the dataset (Frappe: <model>_frappe; else fair); fair: one "
        "recipe for all (FAIR_RECIPE); bars: BARS' Frappe_x1 recipe; tuned:DIR: each model's DIR/<model>/best.yaml",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in MODELS]
    if unknown or args.seeds <= 0:
        print(f"[benchmark] error: unknown models {unknown} or --seeds {args.seeds} <= 0", file=sys.stderr)
        return 2
    os.makedirs(args.output_dir, exist_ok=True)
    if args.scaling:
        from featnet_tf.scaling import run_scaling

        run_scaling(models, [int(m) for m in args.fields.split(",")], args.output_dir, args.batch_size)
        print(f"[benchmark] scaling → {os.path.join(args.output_dir, 'scaling.md')}, scaling.csv, scaling.png")
        return 0
    if not args.data_dir:
        print("[benchmark] error: --data_dir is required (except with --scaling)", file=sys.stderr)
        return 2
    sweeps = parse_sweeps(args.sweep)
    grid = [{}]
    if args.grid:
        grid = [dict(zip(experiments.GRID, values)) for values in itertools.product(*experiments.GRID.values())]
    if sweeps:
        grid = [dict(zip(sweeps, values)) for values in itertools.product(*sweeps.values())]
    recipe, _, tuned_dir = args.recipe.partition(":")
    if recipe not in (*RECIPES, "tuned") or (recipe == "tuned") != bool(tuned_dir):
        print(
            f"[benchmark] error: --recipe takes {', '.join(RECIPES)} or tuned:DIR. Received: {args.recipe!r}",
            file=sys.stderr,
        )
        return 2
    try:
        Benchmark(
            args.data_dir,
            args.output_dir,
            models,
            args.dataset,
            args.seeds,
            args.set,
            args.config,
            grid,
            args.title,
            tuned_dir or None,
            recipe if recipe != "tuned" else "best",
        ).run(sweeps)
    except ValueError as error:
        print(f"[benchmark] error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
