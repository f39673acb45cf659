"""What FeatNet learned, from the pruning tensors of its forward pass.

Pure NumPy over `FeatNetOutputs.subset_weights` (FSGN's ``p^s``, B×S×M) and
`interaction_scores` (SAPN's ``Score''``, B×S×E×M):

* features kept per subset (non-zero ``p^s``), per instance and on average
  (the paper's Fig. 3), and how often each field is kept;
* the order of each learned interaction, the number of non-zero entries of a
  row of ``Score''`` (Fig. 4), and its distribution;
* the coverage ratio ``S·E / 2^M`` of Eq. 10 and the number of distinct field
  combinations the rows actually use;
* given the values before the thresholds (``p`` of Eq. 3 and ``Score'`` of
  Eq. 11), per subset, the fraction of entries zeroed by the ReLU and the
  fraction pruned by the learned soft threshold ``sigmoid(τ)`` (Eq. 4, 12).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np


@dataclasses.dataclass
class PruningAccumulator:
    """Accumulates statistics over batches of pruning tensors."""

    field_names: Sequence[str]
    num_subsets: int
    num_queries: int
    instances: int = 0
    kept_per_subset_sum: np.ndarray | None = None  # (S,) Σ over instances of kept features
    kept_per_subset_squares: np.ndarray | None = None
    field_kept: np.ndarray | None = None  # (M,) Σ over instances and subsets of kept indicators
    order_counts: np.ndarray | None = None  # (M + 1,) histogram of interaction orders
    combinations: set = dataclasses.field(default_factory=set)
    # (S,) Σ over instances of the entries zeroed by the ReLU / pruned by the threshold.
    fsgn_relu_zeros: np.ndarray | None = None
    fsgn_threshold_pruned: np.ndarray | None = None
    sapn_relu_zeros: np.ndarray | None = None
    sapn_threshold_pruned: np.ndarray | None = None
    threshold_instances: int = 0

    def __post_init__(self) -> None:
        fields = len(self.field_names)
        self.kept_per_subset_sum = np.zeros(self.num_subsets)
        self.kept_per_subset_squares = np.zeros(self.num_subsets)
        self.field_kept = np.zeros(fields)
        self.order_counts = np.zeros(fields + 1, dtype=np.int64)
        self.fsgn_relu_zeros, self.fsgn_threshold_pruned = np.zeros(self.num_subsets), np.zeros(self.num_subsets)
        self.sapn_relu_zeros, self.sapn_threshold_pruned = np.zeros(self.num_subsets), np.zeros(self.num_subsets)

    def add(
        self,
        subset_weights: np.ndarray,
        interaction_scores: np.ndarray,
        subset_probabilities: np.ndarray | None = None,
        relu_scores: np.ndarray | None = None,
    ) -> None:
        """One batch: ``p^s`` (B×S×M) and ``Score''`` (B×S×E×M), and
        optionally ``p`` and ``Score'`` before the thresholds (same shapes)."""
        if subset_probabilities is not None and relu_scores is not None:
            fields, entries = subset_weights.shape[2], interaction_scores.shape[2] * interaction_scores.shape[3]
            self.threshold_instances += len(subset_weights)
            self.fsgn_relu_zeros += (subset_probabilities == 0).sum(axis=(0, 2)) / fields
            self.fsgn_threshold_pruned += ((subset_probabilities != 0) & (subset_weights == 0)).sum(
                axis=(0, 2)
            ) / fields
            self.sapn_relu_zeros += (relu_scores == 0).sum(axis=(0, 2, 3)) / entries
            self.sapn_threshold_pruned += ((relu_scores != 0) & (interaction_scores == 0)).sum(axis=(0, 2, 3)) / entries
        kept = subset_weights != 0  # B×S×M
        per_subset = kept.sum(axis=2)  # B×S
        self.instances += len(kept)
        self.kept_per_subset_sum += per_subset.sum(axis=0)
        self.kept_per_subset_squares += np.square(per_subset).sum(axis=0)
        self.field_kept += kept.sum(axis=(0, 1))
        active = interaction_scores != 0  # B×S×E×M
        orders = active.sum(axis=3).reshape(-1)
        self.order_counts += np.bincount(orders, minlength=len(self.order_counts))
        rows = active.reshape(-1, active.shape[-1])
        packed = np.packbits(rows[rows.any(axis=1)], axis=1)
        self.combinations.update(map(bytes, packed))

    def summary(self) -> dict[str, Any]:
        fields = len(self.field_names)
        n = max(self.instances, 1)
        mean = self.kept_per_subset_sum / n
        std = np.sqrt(np.maximum(self.kept_per_subset_squares / n - mean**2, 0.0))
        keep_rate = self.field_kept / (n * self.num_subsets)
        order = np.argsort(-keep_rate, kind="stable")
        total_rows = int(self.order_counts.sum())
        nonempty = total_rows - int(self.order_counts[0])
        orders = np.arange(len(self.order_counts))
        return {
            "instances": self.instances,
            "num_fields": fields,
            "num_subsets": self.num_subsets,
            "num_queries": self.num_queries,
            "features_kept_per_subset": {"mean": mean.tolist(), "std": std.tolist()},
            "field_keep_rate": {self.field_names[i]: float(keep_rate[i]) for i in range(fields)},
            "fields_kept_most": [self.field_names[i] for i in order[:5]],
            "fields_pruned_most": [self.field_names[i] for i in order[::-1][:5]],
            "interaction_order_histogram": {str(k): int(v) for k, v in enumerate(self.order_counts) if v},
            "interaction_order_mean": float((orders * self.order_counts).sum() / nonempty) if nonempty else 0.0,
            "empty_interactions_fraction": float(self.order_counts[0] / total_rows) if total_rows else 0.0,
            "coverage_ratio": coverage_ratio(self.num_subsets, self.num_queries, fields),
            "log2_coverage_ratio": float(np.log2(self.num_subsets * self.num_queries) - fields),
            "distinct_combinations_used": len(self.combinations),
            **self._pruning_summary(),
        }

    def _pruning_summary(self) -> dict[str, Any]:
        """Per subset, the fractions of FSGN's and SAPN's entries zeroed by the
        ReLU and pruned by the threshold (empty without the pre-threshold values)."""
        if not self.threshold_instances:
            return {}
        n = self.threshold_instances

        def stage(relu_zeros: np.ndarray, threshold_pruned: np.ndarray) -> dict[str, Any]:
            return {
                "relu_zero_fraction": (relu_zeros / n).tolist(),
                "threshold_pruned_fraction": (threshold_pruned / n).tolist(),
                "relu_zero_fraction_mean": float(relu_zeros.mean() / n),
                "threshold_pruned_fraction_mean": float(threshold_pruned.mean() / n),
            }

        return {
            "pruning_by_stage": {
                "fsgn": stage(self.fsgn_relu_zeros, self.fsgn_threshold_pruned),
                "sapn": stage(self.sapn_relu_zeros, self.sapn_threshold_pruned),
            }
        }


def coverage_ratio(num_subsets: int, num_queries: int, num_fields: int) -> float:
    """Eq. 10 for FeatNet: ``S·E / 2^M`` (0.0 once it underflows a float)."""
    return float(num_subsets * num_queries) / float(2.0**num_fields) if num_fields < 1024 else 0.0


def analyze_batches(
    batches: Iterable[tuple[np.ndarray, ...]], field_names: Sequence[str], num_subsets: int, num_queries: int
) -> dict[str, Any]:
    """`batches` of ``(p^s, Score'')``, or ``(p^s, Score'', p, Score')``."""
    accumulator = PruningAccumulator(field_names, num_subsets, num_queries)
    for arrays in batches:
        accumulator.add(*arrays)
    return accumulator.summary()
