"""The training recipes the package names: `fair`, BARS' reference (`bars`) and the tuned ones.

A recipe is a set of ``SECTION.KEY`` settings over a model's experiment; the
benchmark picks one with ``--recipe`` and `featnet_tf.experiments` builds its
named experiments from them.

* ``fair``: one recipe for every model, chosen on validation data only
  (Table 3's since issue 5): Adam from 1e-3, the learning rate × 0.3 whenever
  the exact validation AUC has not improved for an epoch, early stopping after
  3 such epochs with the best epoch's weights restored, an epoch cap meant not
  to bind; each model's own D, batch 1024, no penalty.
* ``bars``: BARS' published Frappe_x1 recipe (reczoo/BARS, run with FuxiCTR)
  in our settings, with FuxiCTR's training semantics, measured side by side
  with FuxiCTR itself (`benchmarks/fuxictr_side_by_side.py`): batch 4096,
  Adam 1e-3 with gradients clipped to a global norm of 10, the learning
  rate × 0.1 after each epoch without a better validation AUC, stopping after
  2 such epochs, the best epoch's weights restored once at the end; the
  embedding penalty ``embedding_l2 = 0.025`` (FuxiCTR's
  ``embedding_regularizer: 0.05``: ``(λ/2)·‖W‖²`` over every row of every id
  table, every step, the first-order weights included); batch norm at
  PyTorch's momentum (Keras' 0.9). DeepFM, DCNv2 and AFN+ take BARS' published
  model settings (D 10 among them); every other model BARS' training recipe
  with its own settings (FeatNet's D 16: at BARS' D 10 it validated 0.0018
  lower, BENCHMARKS.md).
* ``<model>_frappe``, each model's best on Frappe (`FRAPPE_BEST`): of
  ``bars``, what `python -m featnet_tf.tune` found starting from it (its
  first trial) and ``fair``, the one with the highest mean validation AUC
  over 3 seeds.
"""

from __future__ import annotations

from typing import Any

from featnet_tf.config import parse_set_flags

FAIR_RECIPE = (
    "training.learning_rate=0.001",
    "training.schedule=plateau",
    "training.decay_rate=0.3",
    "training.plateau_patience=1",
    "training.early_stopping_patience=3",
    "training.epochs=100",
)

BARS_TRAINING: dict[str, Any] = {
    "data.batch_size": 4096,
    "model.embedding_l2": 0.025,
    "model.embedding_l2_first_order": True,
    "training.learning_rate": 1e-3,
    "training.global_clipnorm": 10.0,
    "training.schedule": "plateau",
    "training.decay_rate": 0.1,
    "training.plateau_patience": 1,
    "training.early_stopping_patience": 2,
    "training.epochs": 100,
}

# BARS' best published Frappe_x1 configs, model by model, in our arguments.
BARS_FRAPPE_MODELS: dict[str, dict[str, Any]] = {
    # DeepFM_frappe_x1: embedding_dim 10, hidden_units [400, 400, 400], batch_norm, net_dropout 0.2
    "deepfm": {
        "model.embedding_dim": 10,
        "model.hidden_units": [400, 400, 400],
        "model.use_batch_norm": True,
        "model.dropout": 0.2,
    },
    # DCNv2_frappe_x1_007_c207b717: embedding_dim 10, parallel, 4 cross layers, DNN [400, 400, 400],
    # net_dropout 0.4, batch_norm
    "dcnv2": {
        "model.embedding_dim": 10,
        "model.structure": "parallel",
        "model.num_cross_layers": 4,
        "model.hidden_units": [400, 400, 400],
        "model.dropout": 0.4,
        "model.use_batch_norm": True,
    },
    # AFN+_frappe_x1 (AFN_frappe_x1_004_d2ea60c3): embedding_dim 10, 1000 logarithmic neurons, AFN DNN
    # [400] (dropout 0.4), ensemble DNN [400, 400, 400] (dropout 0.2; ours has one dropout: 0.2), no batch
    # norm, embedding_regularizer 0.001
    "afn_plus": {
        "model.embedding_dim": 10,
        "model.num_neurons": 1000,
        "model.hidden_units": [400],
        "model.ensemble_units": [400, 400, 400],
        "model.dropout": 0.2,
        "model.embedding_l2": 0.0005,
    },
}


def bars_frappe(model: str) -> dict[str, Any]:
    """BARS' Frappe_x1 recipe for `model`: the training recipe, then BARS' model settings where it published them."""
    return {**BARS_TRAINING, **BARS_FRAPPE_MODELS.get(model, {})}


# Each model's recipe on Frappe: of BARS' (`bars`), the tuner's best and the fair recipe, the one with the
# highest mean validation AUC over 3 seeds (BENCHMARKS.md, "Table 3 at each model's best"); a tuned
# recipe is its settings over BARS'. A model not listed takes BARS' recipe, the reference.
FRAPPE_BEST: dict[str, str | dict[str, Any]] = {
    "deepfm": "bars",  # 0.9616; the tuned one 0.9612, fair 0.9550
    "dcnv2": "bars",  # 0.9629, the tuner's best was BARS' own; fair 0.9505
    "featnet": "fair",  # 0.9582; tuned 0.9568 (0.9580, 0.9568, 0.9555), BARS' 0.9572 (1 seed)
    "featnet_eq13": "fair",  # 0.9404; its study's winner was the fair start (3 of 4 draws pruned), BARS' not run
    "afn_plus": "fair",  # 0.9586; its study's winner was the fair start (3 of 4 pruned); BARS' 0.942 at epoch 14
    "autoint_plus": "fair",  # 0.9515; tuned 0.9461 (0.9526, 0.9523, 0.9333), BARS' 0.9341 (1 seed)
    # 0.9569 (0.9576, 0.9560, 0.9572): the tuner's trial 2 of 4; fair 0.9534, BARS' 0.8051 (1 seed)
    "fibinet": {
        "model.embedding_l2": 1e-5,
        "data.batch_size": 2048,
        "training.learning_rate": 0.0046263628414755864,
        "model.hidden_units": [256, 256, 256],
        "model.dropout": 0.28421697443432425,
    },
}


def best_frappe(model: str) -> dict[str, Any]:
    """The package's recipe for `model` on Frappe (`FRAPPE_BEST`), as settings over the model's own experiment."""
    choice = FRAPPE_BEST.get(model, "bars")
    if choice == "fair":
        return parse_set_flags(FAIR_RECIPE)
    if choice == "bars":
        return bars_frappe(model)
    return {**bars_frappe(model), **choice}
