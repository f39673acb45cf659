"""featnet_tf.benchmark: Table 3 outputs, resumability, the S/E sweep and the scaling run."""

from __future__ import annotations

import csv
import os

import pytest
from PIL import Image

from featnet_tf import benchmark
from featnet_tf.scaling import growth_exponent, run_scaling

TINY_OVERRIDES = ("training.epochs=1", "training.steps_per_epoch=3", "data.batch_size=64", "model.embedding_dim=4")
TINY = [item for override in TINY_OVERRIDES for item in ("--set", override)]  # as the command line takes them


@pytest.fixture(scope="module")
def data_dir(criteo_data):
    return criteo_data


def test_table_csv_and_chart_with_one_row_per_model(data_dir, tmp_path, capsys):
    table3 = benchmark.Benchmark(data_dir, str(tmp_path), ["featnet", "lr"], seeds=2, overrides=TINY_OVERRIDES)
    cells = table3.run()
    assert [(cell["model"], cell["seed"]) for cell in cells] == [("featnet", 0), ("featnet", 1), ("lr", 0), ("lr", 1)]
    table = (tmp_path / "table.md").read_text().splitlines()
    rows = table[4:6]
    assert [line.split("|")[1].strip() for line in rows] == ["featnet", "lr"]
    assert all(line.rstrip().endswith("| 2 |") for line in rows), "two seeds per model"
    assert all("(2 cap-bound †)" in line for line in rows) and "the epoch cap ended the run" in table[-1], (
        "a 1-epoch cap binds"
    )
    with open(tmp_path / "results.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 4
    with Image.open(tmp_path / "auc.png") as image:
        assert image.format == "PNG"
    assert capsys.readouterr().out.count("[benchmark] ") >= 4
    again = table3.run()
    assert capsys.readouterr().out.count("(finished earlier)") == 4, "a second run resumes"
    assert [cell["auc"] for cell in again] == [cell["auc"] for cell in cells]


def test_the_sweep_flag_writes_the_fig5_plot(data_dir, tmp_path):
    args = ["--data_dir", data_dir, "--models", "featnet", "--seeds", "1", "--output_dir", str(tmp_path)] + TINY
    args += ["--set", "model.tower_units=[8]", "--sweep", "num_subsets=1,2", "--sweep", "num_queries=2"]
    assert benchmark.main(args) == 0
    assert sum(line.startswith("| featnet_") for line in (tmp_path / "table.md").read_text().splitlines()) == 2
    with Image.open(tmp_path / "fig5_sweep.png") as image:
        assert image.format == "PNG"


def test_scaling_measures_each_model_and_fits_an_exponent(tmp_path):
    run_scaling(["lr", "featnet"], [4, 8], str(tmp_path), batch_size=16)
    with open(tmp_path / "scaling.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["model"], row["num_fields"]) for row in rows] == [
        ("lr", "4"),
        ("lr", "8"),
        ("featnet", "4"),
        ("featnet", "8"),
    ]
    assert all(float(row["ms_per_step"]) > 0 for row in rows)
    assert "time exponent" in (tmp_path / "scaling.md").read_text()
    assert os.path.exists(tmp_path / "scaling.png")


def test_every_cell_gets_the_fair_recipe_and_the_set_flags_win(data_dir, tmp_path):
    overrides = (*TINY_OVERRIDES, "training.early_stopping_patience=5")
    benchmark.Benchmark(data_dir, str(tmp_path), ["lr"], seeds=1, overrides=overrides).run()
    from featnet_tf import experiments

    config = experiments.load(str(tmp_path / "runs" / "lr" / "seed0" / "config.yaml"))
    assert (config.training.schedule, config.training.learning_rate, config.training.decay_rate) == (
        "plateau",
        1e-3,
        0.3,
    )
    assert config.training.early_stopping_patience == 5 and config.training.epochs == 1


def test_on_frappe_each_model_takes_its_best_recipe_and_the_others_stay_reachable_by_name(data_dir, tmp_path):
    from featnet_tf import experiments, recipes

    def cell(model, dataset, recipe):
        return benchmark.Benchmark(data_dir, str(tmp_path), [model], dataset, recipe=recipe).cell_config(model, 0, {})

    best = cell("deepfm", "frappe", "best")
    assert best == experiments.experiment(
        "deepfm_frappe", **{"data.data_dir": data_dir, "training.strategy": "one_device", "training.seed": 0}
    )
    bars = cell("dcnv2", "frappe", "bars")
    assert (bars.data.batch_size, bars.model.embedding_dim, bars.model.embedding_l2) == (4096, 10, 0.025)
    assert (bars.training.decay_rate, bars.training.early_stopping_patience, bars.training.global_clipnorm) == (
        0.1,
        2,
        10.0,
    )
    settings = {f"model.{key}": value for key, value in bars.model.params.items()} | {"model.embedding_dim": 10}
    assert all(settings[key] == value for key, value in recipes.BARS_FRAPPE_MODELS["dcnv2"].items())
    for fair in (cell("deepfm", "frappe", "fair"), cell("deepfm", "criteo", "best")):
        assert (fair.training.decay_rate, fair.model.embedding_dim, fair.model.embedding_l2) == (0.3, 16, 0.0)
    with pytest.raises(ValueError, match="known for Frappe only"):
        cell("deepfm", "criteo", "bars")


def test_growth_exponent_recovers_a_power_law():
    assert growth_exponent([10, 20, 40, 80], [3 * m**2 for m in (10, 20, 40, 80)]) == pytest.approx(2.0)


def test_a_tuned_recipe_sits_between_the_fair_recipe_and_the_set_flags(data_dir, tmp_path):
    (tmp_path / "tuned" / "deepfm").mkdir(parents=True)
    (tmp_path / "tuned" / "deepfm" / "best.yaml").write_text(
        "training: {learning_rate: 0.02}\nmodel: {use_batch_norm: true, dropout: 0.1}\ndata: {batch_size: 2048}\n"
    )
    table3 = benchmark.Benchmark(
        data_dir, str(tmp_path / "out"), ["deepfm"], overrides=("model.dropout=0.3",), tuned_dir=str(tmp_path / "tuned")
    )
    config = table3.cell_config("deepfm", 1, {})
    assert (config.training.learning_rate, config.data.batch_size, config.model.params["use_batch_norm"]) == (
        0.02,
        2048,
        True,
    ), "the tuned recipe replaces the fair one"
    assert config.model.params["dropout"] == 0.3 and config.training.seed == 1, "--set flags win"
    assert config.training.schedule == "plateau", "what the tuned recipe leaves is the fair recipe's"
    with pytest.raises(ValueError, match="has no recipe for lr"):
        benchmark.Benchmark(data_dir, str(tmp_path / "out"), ["lr"], tuned_dir=str(tmp_path / "tuned")).cell_config(
            "lr", 0, {}
        )
