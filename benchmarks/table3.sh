#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's Table 3 runs: every model tuned on Frappe
# (issue 28: `featnet_tf.tune`, 4 trials each from its Frappe recipe) and trained
# with its tuned recipe (3 seeds); every model with the fair recipe (issue 12)
# on Frappe (3 seeds), the Criteo sample (3 seeds) and 200k generated
# Criteo-shaped rows (1 seed); then the FeatNet ablation on Frappe. Usage:
#   benchmarks/table3.sh [WORK_DIR]   (default /tmp/featnet_table3)
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    sed -n '2,7s/^# \{0,1\}//p' "$0"
    exit 0
fi
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/featnet_table3}
SAMPLES=${FEATNET_SAMPLE_DATA:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
MODELS=featnet,featnet_eq13,lr,fm,deepfm,xdeepfm,autoint_plus,afn_plus,fibinet,dcnv2
mkdir -p "$WORK"

[ -d "$WORK/frappe_prep" ] || $PY -m pipelines.preprocess --input "$SAMPLES/frappe.csv" --format csv \
    --spec pipelines/specs/frappe.yaml --output_dir "$WORK/frappe_prep" --runner DirectRunner
[ -d "$WORK/criteo_prep" ] || $PY -m pipelines.preprocess --input "$SAMPLES/criteo_sample.tsv" --format criteo \
    --output_dir "$WORK/criteo_prep" --runner DirectRunner
if [ ! -d "$WORK/generated_prep" ]; then
    $PY -m pipelines.synthesize --rows 200000 --output "$WORK/generated.tsv" --seed 1
    $PY -m pipelines.preprocess --input "$WORK/generated.tsv" --format criteo --output_dir "$WORK/generated_prep" --runner DirectRunner
fi

TUNED=featnet,featnet_eq13,deepfm,dcnv2,afn_plus,autoint_plus,fibinet
for model in ${TUNED//,/ }; do
    $PY -m featnet_tf.tune --model "$model" --dataset frappe --data_dir "$WORK/frappe_prep" \
        --output_dir "$WORK/tune/$model" --trials 4
done
$PY -m featnet_tf.benchmark --data_dir "$WORK/frappe_prep" --dataset frappe --seeds 3 --output_dir "$WORK/frappe_tuned" \
    --models "$TUNED" --recipe "tuned:$WORK/tune" --title "Frappe, each model tuned"
$PY -m featnet_tf.benchmark --data_dir "$WORK/frappe_prep" --dataset frappe --seeds 3 --output_dir "$WORK/frappe" \
    --models "$MODELS" --recipe fair --set data.batch_size=1024 --title "Frappe (86,582 rows)"
$PY -m featnet_tf.benchmark --data_dir "$WORK/generated_prep" --dataset criteo --seeds 1 --output_dir "$WORK/generated" \
    --models "$MODELS" --recipe fair --set data.batch_size=1024 --title "200k generated Criteo-shaped rows"
$PY -m featnet_tf.benchmark --data_dir "$WORK/criteo_prep" --dataset criteo --seeds 3 --output_dir "$WORK/criteo" \
    --models "$MODELS" --recipe fair --set data.batch_size=512 --title "Criteo sample (10,000 rows)"
$PY - "$WORK/generated.tsv" <<'PY'
import sys
from featnet_tf.metrics import binary_auc, log_loss
from pipelines.synthesize import split_truth
labels, probabilities = split_truth(sys.argv[1], "test", seed=0)
print(f"[benchmark] generated test split: Bayes-optimal AUC {binary_auc(labels, probabilities):.4f}, LogLoss {log_loss(labels, probabilities):.4f}")
PY
$PY benchmarks/featnet_ablation.py --data_dir "$WORK/frappe_prep" --dataset frappe --output_dir "$WORK/ablation_frappe" --seeds 1
