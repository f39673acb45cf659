"""FeatNet ablation: each departure from the paper measured on its own.

Every variant is one `featnet_tf.benchmark.Benchmark` run (``--recipe fair``:
Adam 1e-3, learning rate × 0.3 on a validation plateau, early stopping on exact
validation AUC) of the model named in its row with the row's settings. The
default of `featnet` is chosen on the validation AUC column; the test AUC is
reported beside it, never used to choose. Prints one line per cell as it
finishes and writes ``ablation.md`` under ``--output_dir``.

    python benchmarks/featnet_ablation.py --data_dir /tmp/frappe_prep --dataset frappe \
        --output_dir /tmp/featnet_ablation --seeds 1
"""

from __future__ import annotations

import featnet_tf  # noqa: F401  (first: legacy Keras and a quiet TensorFlow start-up)

# isort: split

import argparse
import os
import sys

import numpy as np

from featnet_tf import benchmark

UNIFORM = "model.embedding_initializer={class_name: RandomUniform, config: {minval: -0.05, maxval: 0.05}}"
NORMAL = "model.embedding_initializer={class_name: RandomNormal, config: {mean: 0.0, stddev: 1.0}}"

NO_DNN = "model.dnn_units=[]"
# `featnet` with another `FeatNetDesign` (`featnet_tf.models.featnet_variants`): the same model
# as `featnet` where a row changes none of its switches.
VARIANT = "featnet_variant"
PLAIN_DNN = "model.dnn_batch_norm=false"

# (row label, model, settings). Rows 1-5 add one change at a time to the
# literal paper (`featnet_eq13`); rows 6-15 change one thing in the base,
# `featnet` without its DNN, which was the default until row 12 measured best;
# rows 16-20 change one thing in row 12, and row 19 (batch norm in the DNN)
# is today's default.
VARIANTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("paper, Eq. 13 readout (`featnet_eq13`)", "featnet_eq13", ()),
    ("paper + fields readout (§2.4)", "featnet_eq13", ("model.readout=fields",)),
    ("paper + DNN (400, 400) over the embeddings", "featnet_eq13", ("model.dnn_units=[400, 400]",)),
    ("paper + dropout 0.2", "featnet_eq13", ("model.dropout=0.2",)),
    (
        "paper + uniform(±0.05) embeddings, towers' inputs normalised",
        "featnet_eq13",
        (UNIFORM, "model.normalize_tower_inputs=true"),
    ),
    ("base: `featnet` without its DNN", "featnet", (NO_DNN,)),
    ("base − dropout", "featnet", (NO_DNN, "model.dropout=0.0")),
    ("base without normalised field vectors", VARIANT, (NO_DNN, "model.normalize_embeddings=false")),
    (
        "base with τ starting at −10",
        "featnet",
        (NO_DNN, "model.fsgn_initial_threshold=-10.0", "model.sapn_initial_threshold=-10.0"),
    ),
    ("base with N(0, 1) embeddings", "featnet", (NO_DNN, NORMAL)),
    ("base + fields readout", VARIANT, (NO_DNN, "model.readout=fields")),
    ("base + DNN (400, 400) (the default before row 19)", VARIANT, (PLAIN_DNN,)),
    ("base + linear term", VARIANT, (NO_DNN, "model.use_linear=true")),
    ("base + embedding L2 1e-5", "featnet", (NO_DNN, "model.embedding_l2=1e-5")),
    ("base with towers 3×64", "featnet", (NO_DNN, "model.tower_units=[64, 64, 64]")),
    ("row 12 + SENET field gating", VARIANT, (PLAIN_DNN, "model.field_gating=senet")),
    ("row 12 with a DNN (400, 400, 400)", VARIANT, (PLAIN_DNN, "model.dnn_units=[400, 400, 400]")),
    ("`featnet` (row 19) with dropout 0.3", "featnet", ("model.dropout=0.3",)),
    ("row 12 + batch norm in the DNN (as AFN's MLP) = `featnet` (default)", "featnet", ()),
    (
        "row 12 with the logarithmic readout (rows of Score'' as products)",
        VARIANT,
        (PLAIN_DNN, "model.readout=logarithmic"),
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--dataset", default="frappe", choices=benchmark.DATASETS)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--only", help="comma-separated row numbers (1-based) to run")
    parser.add_argument("--set", action="append", default=[], help="override for every row")
    args = parser.parse_args(argv)
    chosen = [int(i) for i in args.only.split(",")] if args.only else range(1, len(VARIANTS) + 1)
    table_path = os.path.join(args.output_dir, "ablation.md")
    lines = [
        "| # | variant | valid AUC | test AUC (mean ± std) | test LogLoss | best epochs | train ex/s | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for index in chosen:
        label, model, settings = VARIANTS[index - 1]
        output_dir = os.path.join(args.output_dir, f"variant{index:02d}")
        print(f"[ablation] {index}: {label}", flush=True)
        cells = benchmark.Benchmark(
            args.data_dir,
            output_dir,
            [model],
            dataset=args.dataset,
            seeds=args.seeds,
            overrides=(*args.set, *settings),
            title=label,
            recipe="fair",
        ).run()
        auc = np.array([cell["auc"] for cell in cells])
        lines.append(
            f"| {index} | {label} | {np.mean([c['val_auc'] for c in cells]):.4f} | {auc.mean():.4f} ± "
            f"{auc.std():.4f} "
            f"| {np.mean([c['logloss'] for c in cells]):.4f} | {'/'.join(str(c['best_epoch']) for c in cells)} "
            f"| {np.mean([c['train_examples_per_second'] for c in cells]):,.0f} | {len(cells)} |"
        )
        with open(table_path, "w") as stream:
            stream.write("\n".join(lines) + "\n")
        print(lines[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
