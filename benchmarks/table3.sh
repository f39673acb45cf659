#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's Table 3 runs (issue 5): every model, the same
# budget for all (Adam lr 1e-3, early stopping on validation AUC), on the
# Frappe and Criteo samples (3 seeds) and on 200k generated Criteo-shaped rows
# (1 seed). Usage: benchmarks/table3.sh [WORK_DIR]   (default /tmp/featnet_table3)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/featnet_table3}
SAMPLES=${FEATNET_SAMPLE_DATA:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$WORK"

[ -d "$WORK/frappe_prep" ] || $PY -m pipelines.preprocess --input "$SAMPLES/frappe.csv" --format csv \
    --spec pipelines/specs/frappe.yaml --output_dir "$WORK/frappe_prep"
[ -d "$WORK/criteo_prep" ] || $PY -m pipelines.preprocess --input "$SAMPLES/criteo_sample.tsv" --format criteo \
    --output_dir "$WORK/criteo_prep"
if [ ! -d "$WORK/generated_prep" ]; then
    $PY -m pipelines.synthesize --rows 200000 --output "$WORK/generated.tsv" --seed 1
    $PY -m pipelines.preprocess --input "$WORK/generated.tsv" --format criteo --output_dir "$WORK/generated_prep"
fi

SAME_BUDGET=(--set training.learning_rate=0.001 --set training.early_stopping_patience=2)
$PY -m featnet_tf.benchmark --data_dir "$WORK/criteo_prep" --dataset criteo --seeds 3 --output_dir "$WORK/criteo" \
    "${SAME_BUDGET[@]}" --set training.epochs=15 --set data.batch_size=512 --title "Criteo sample (10,000 rows)"
$PY -m featnet_tf.benchmark --data_dir "$WORK/frappe_prep" --dataset frappe --seeds 3 --output_dir "$WORK/frappe" \
    "${SAME_BUDGET[@]}" --set training.epochs=15 --set data.batch_size=1024 --title "Frappe (86,582 rows)"
$PY -m featnet_tf.benchmark --data_dir "$WORK/generated_prep" --dataset criteo --seeds 1 --output_dir "$WORK/generated" \
    "${SAME_BUDGET[@]}" --set training.epochs=2 --set data.batch_size=1024 --title "200k generated Criteo-shaped rows"
$PY - "$WORK/generated.tsv" <<'PY'
import sys
from featnet_tf.metrics import binary_auc, log_loss
from pipelines.synthesize import split_truth
labels, probabilities = split_truth(sys.argv[1], "test", seed=0)
print(f"[benchmark] generated test split: Bayes-optimal AUC {binary_auc(labels, probabilities):.4f}, LogLoss {log_loss(labels, probabilities):.4f}")
PY
