"""What FeatNet learned, from the pruning tensors of its forward pass.

Pure NumPy over `FeatNetOutputs.subset_weights` (FSGN's ``p^s``, B×S×M) and
`interaction_scores` (SAPN's ``Score''``, B×S×E×M):

* features kept per subset (non-zero ``p^s``), per instance and on average
  (the paper's Fig. 3), and how often each field is kept;
* the order of each learned interaction, the number of non-zero entries of a
  row of ``Score''`` (Fig. 4), and its distribution;
* the coverage ratio ``S·E / 2^M`` of Eq. 10 and the number of distinct field
  combinations the rows actually use.
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

    def __post_init__(self) -> None:
        fields = len(self.field_names)
        self.kept_per_subset_sum = np.zeros(self.num_subsets)
        self.kept_per_subset_squares = np.zeros(self.num_subsets)
        self.field_kept = np.zeros(fields)
        self.order_counts = np.zeros(fields + 1, dtype=np.int64)

    def add(self, subset_weights: np.ndarray, interaction_scores: np.ndarray) -> None:
        """One batch: ``p^s`` (B×S×M) and ``Score''`` (B×S×E×M)."""
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
        }


def coverage_ratio(num_subsets: int, num_queries: int, num_fields: int) -> float:
    """Eq. 10 for FeatNet: ``S·E / 2^M`` (0.0 once it underflows a float)."""
    return float(num_subsets * num_queries) / float(2.0**num_fields) if num_fields < 1024 else 0.0


def analyze_batches(batches: Iterable[tuple[np.ndarray, np.ndarray]], field_names: Sequence[str], num_subsets: int, num_queries: int) -> dict[str, Any]:
    accumulator = PruningAccumulator(field_names, num_subsets, num_queries)
    for subset_weights, interaction_scores in batches:
        accumulator.add(subset_weights, interaction_scores)
    return accumulator.summary()
