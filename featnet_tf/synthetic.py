"""In-memory data with planted interactions, for tests, the demo and benchmarks.

The click probability of every row is known, so the Bayes-optimal AUC of any
sample is known too, and a model's AUC can be read against it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from featnet_tf.features import NUM_RESERVED_IDS, FeatureSpec, categorical_spec


@dataclasses.dataclass(frozen=True)
class PlantedData:
    """Indexed features, labels and true click probabilities."""

    feature_spec: FeatureSpec
    features: dict[str, np.ndarray]
    labels: np.ndarray
    probabilities: np.ndarray
    interacting_fields: tuple[str, ...]


def planted_interaction_data(
    num_rows: int,
    num_fields: int = 8,
    vocabulary_size: int = 10,
    interaction_order: int = 3,
    strength: float = 3.0,
    seed: int = 0,
) -> PlantedData:
    """Rows of categorical ids whose label depends on a k-field interaction.

    Each field's vocabulary is split at random into two halves marked ±1; the
    logit is ``strength · Π s_f(x_f)`` over the first `interaction_order`
    fields, a parity that has no lower-order signal at all. The remaining
    fields are pure noise.
    """
    if num_fields < interaction_order:
        raise ValueError(
            f"`num_fields` must be >= `interaction_order`. Received: num_fields={num_fields}, "
            f"interaction_order={interaction_order}"
        )
    rng = np.random.default_rng(seed)
    spec = categorical_spec(num_fields, vocabulary_size)
    names = spec.names
    ids = rng.integers(NUM_RESERVED_IDS, vocabulary_size + NUM_RESERVED_IDS, size=(num_rows, num_fields))
    signs = rng.permutation(np.resize([-1.0, 1.0], (num_fields, vocabulary_size + NUM_RESERVED_IDS)), axis=1)
    product = np.prod(signs[np.arange(interaction_order), ids[:, :interaction_order]], axis=1)
    probabilities = 1.0 / (1.0 + np.exp(-strength * product))
    labels = (rng.random(num_rows) < probabilities).astype(np.float32)
    features = {name: ids[:, index].astype(np.int64) for index, name in enumerate(names)}
    return PlantedData(spec, features, labels, probabilities.astype(np.float32), names[:interaction_order])
