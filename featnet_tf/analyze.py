"""`python -m featnet_tf.analyze`: what a trained FeatNet learned, as JSON, plots and an HTML report.

    python -m featnet_tf.analyze --run_dir runs/featnet --split test [--max_rows 50000]

Runs the model over a split once (`FeatNet.explain`: logits and both pruning
tensors from the same forward pass) and writes under ``<run_dir>/analysis/``:

* ``analysis.json``: features kept and pruned per subset, per-field keep rate
  (fields pruned most and least), the distribution of interaction orders,
  the coverage ratio ``S·E/2^M`` (Eq. 10) and the distinct field combinations
  the interactions actually use;
* ``fig3_features_per_subset.png``, ``fig4_interaction_orders.png``,
  ``field_keep_rates.png``: plots in the style of the paper's Fig. 3 and 4;
* ``report.html``: the plots and tables beside the run's metrics, one file.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

import featnet_tf  # noqa: F401  (selects legacy Keras)
from featnet_tf import training
from featnet_tf.analysis import PruningAccumulator
from featnet_tf.files import read_json
from featnet_tf.prepared_data import SPLITS


def analyze_run(
    run: training.Run, split: str = "test", max_rows: int | None = None, batch_size: int = 2048
) -> dict[str, Any]:
    if not hasattr(run.model, "explain"):
        raise ValueError(
            f"The run's model `{run.config.model.name}` has no pruning tensors; analyze works on FeatNet runs."
        )
    explain = tf.function(lambda ids: run.model.explain(ids, training=False))
    accumulator = PruningAccumulator(run.spec.names, run.model.num_subsets, run.model.num_queries)
    seen = 0
    for ids, _ in run.dataset(split, batch_size, shuffle=False):
        outputs = explain(ids)
        arrays = [
            tensor.numpy()[: None if max_rows is None else max_rows - seen]
            for tensor in (
                outputs.subset_weights,
                outputs.interaction_scores,
                outputs.subset_probabilities,
                outputs.relu_scores,
            )
        ]
        accumulator.add(*arrays)
        seen += len(arrays[0])
        if max_rows is not None and seen >= max_rows:
            break
    summary = accumulator.summary()
    summary["split"] = split
    return summary


def bar_chart(
    path: str,
    positions: Sequence[float],
    heights: Sequence[float],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    color: str,
    yerr: Sequence[float] | None = None,
    tick_labels: Sequence[str] | None = None,
    reference: tuple[float, str] | None = None,
) -> str:
    """One bar chart written to `path` (PNG, 110 dpi); the report's three
    plots are all drawn by it. `reference` is a dashed line ``(y, label)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(7, 0.25 * len(positions)) if tick_labels is not None else 7
    figure, axis = plt.subplots(figsize=(width, 3.5))
    axis.bar(positions, heights, yerr=yerr, capsize=3 if yerr is not None else 0, color=color)
    if reference is not None:
        axis.axhline(reference[0], color="grey", linestyle="--", linewidth=1, label=reference[1])
        axis.legend()
    axis.set_xticks(positions)
    if tick_labels is not None:
        axis.set_xticklabels(tick_labels, rotation=90, fontsize=7)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_figures(summary: dict[str, Any], output_dir: str) -> dict[str, str]:
    """Fig. 3 (features kept per subset), Fig. 4 (interaction orders) and the
    per-field keep rates, as PNGs under `output_dir`."""
    kept = summary["features_kept_per_subset"]
    histogram = {int(k): v for k, v in summary["interaction_order_histogram"].items()}
    orders = np.arange(0, summary["num_fields"] + 1)
    counts = np.array([histogram.get(order, 0) for order in orders], dtype=float)
    rates = summary["field_keep_rate"]
    names = sorted(rates, key=rates.get, reverse=True)
    return {
        "fig3": bar_chart(
            os.path.join(output_dir, "fig3_features_per_subset.png"),
            np.arange(1, summary["num_subsets"] + 1),
            kept["mean"],
            yerr=kept["std"],
            title="Features kept per subset after FSGN pruning (cf. Fig. 3)",
            xlabel="subset",
            ylabel="features kept (mean ± std)",
            color="#4c72b0",
            reference=(summary["num_fields"], f"all {summary['num_fields']} fields"),
        ),
        "fig4": bar_chart(
            os.path.join(output_dir, "fig4_interaction_orders.png"),
            orders,
            counts / max(counts.sum(), 1),
            title="Orders of the learned interactions (cf. Fig. 4)",
            xlabel="interaction order (non-zero fields in a row of Score'')",
            ylabel="share of interactions",
            color="#dd8452",
        ),
        "fields": bar_chart(
            os.path.join(output_dir, "field_keep_rates.png"),
            np.arange(len(names)),
            [rates[name] for name in names],
            tick_labels=names,
            title="How often FSGN keeps each field",
            xlabel="field",
            ylabel="kept in share of (row, subset)",
            color="#55a868",
        ),
    }


def pruning_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Report rows: the share of each stage's entries zeroed by the ReLU and
    pruned by the learned threshold, on average over subsets."""
    stages = summary.get("pruning_by_stage", {})
    return [
        (
            f"{name.upper()}: zeroed by the ReLU / pruned by sigmoid(τ)",
            f"{stage['relu_zero_fraction_mean']:.1%} / {stage['threshold_pruned_fraction_mean']:.1%}",
        )
        for name, stage in stages.items()
    ]


def write_report(summary: dict[str, Any], metrics: dict[str, Any] | None, figures: dict[str, str], path: str) -> None:
    def image(key: str) -> str:
        with open(figures[key], "rb") as stream:
            data = base64.b64encode(stream.read()).decode()
        return f'<img alt="{key}" src="data:image/png;base64,{data}">'

    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
        for label, value in [
            ("rows analysed", summary["instances"]),
            (
                "fields M / subsets S / queries E",
                f"{summary['num_fields']} / {summary['num_subsets']} / {summary['num_queries']}",
            ),
            ("mean interaction order", f"{summary['interaction_order_mean']:.2f}"),
            ("empty interactions", f"{summary['empty_interactions_fraction']:.1%}"),
            (
                "coverage ratio S·E/2^M (Eq. 10)",
                f"{summary['coverage_ratio']:.3g} (log2 {summary['log2_coverage_ratio']:.1f})",
            ),
            ("distinct field combinations used", summary["distinct_combinations_used"]),
            ("fields kept most", ", ".join(summary["fields_kept_most"])),
            ("fields pruned most", ", ".join(summary["fields_pruned_most"])),
            *pruning_rows(summary),
        ]
    )
    metric_rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(f'{value:.4f}' if isinstance(value, float) else str(value))}"
        "</td></tr>"
        for key, value in (metrics or {}).items()
    )
    document = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>FeatNet analysis</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>What FeatNet learned ({html.escape(summary["split"])} split)</h1>
<h2>Run metrics</h2><table>{metric_rows or "<tr><td>no metrics.json</td></tr>"}</table>
<h2>Pruning and interactions</h2><table>{rows}</table>
<h2>Features kept per subset</h2>{image("fig3")}
<h2>Interaction orders</h2>{image("fig4")}
<h2>Field keep rates</h2>{image("fields")}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(document)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featnet_tf.analyze", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--max_rows", type=int, help="analyse at most this many rows")
    parser.add_argument("--output_dir", help="default: <run_dir>/analysis")
    args = parser.parse_args(argv)
    try:
        write_analysis(training.load_run(args.run_dir), args.split, args.max_rows, args.output_dir)
    except ValueError as error:
        print(f"[analyze] error: {error}", file=sys.stderr)
        return 2
    return 0


def write_analysis(
    run: training.Run, split: str = "test", max_rows: int | None = None, output_dir: str | None = None
) -> dict[str, Any]:
    """Analyses `run` on `split` and writes ``analysis.json``, the figures and
    ``report.html`` under `output_dir` (default ``<run_dir>/analysis``);
    returns the summary."""
    summary = analyze_run(run, split, max_rows)
    output_dir = output_dir or run.path("analysis")
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "analysis.json"), "w") as stream:
        json.dump(summary, stream, indent=2)
    figures = plot_figures(summary, output_dir)
    metrics_path = run.path(training.METRICS_FILE)
    metrics = read_json(metrics_path) if tf.io.gfile.exists(metrics_path) else None
    report = os.path.join(output_dir, "report.html")
    write_report(summary, metrics, figures, report)
    print(
        f"[analyze] {summary['instances']} rows: {np.mean(summary['features_kept_per_subset']['mean']):.1f} of "
        f"{summary['num_fields']} "
        f"fields kept per subset on average, mean interaction order {summary['interaction_order_mean']:.2f}, "
        f"{summary['distinct_combinations_used']} distinct combinations; "
        + "; ".join(f"{label} {value}" for label, value in pruning_rows(summary))
        + f" → {report}"
    )
    return summary


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
