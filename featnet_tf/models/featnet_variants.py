"""FeatNet's other readings of the paper, and the paper as written: what the ablation measures.

`FeatNet` keeps the paper's arguments and the defaults that measured best.
Every other choice of `FeatNetDesign` (SAPN's ``fields`` and ``logarithmic``
readouts, its unwritten options, no normalisation, a plain DNN, a linear
term, SENET field gating) is an argument of `FeatNetVariant`, registered as
``featnet_variant`` (``--experiment featnet_variant --set
model.readout=fields``), so that every row of BENCHMARKS.md's FeatNet
ablation reproduces (`benchmarks/featnet_ablation.py`). `featnet_eq13` is
the literal paper: Eq. 13's ``E×D`` readout, no normalisation, dropout, DNN
or linear term, τ starting at −10 and the N(0, 1) embeddings of the authors'
PyTorch code.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import tf_keras as keras

from featnet_tf.features import FeatureSpec
from featnet_tf.models.featnet import PAPER_EMBEDDINGS_INITIALIZER, FeatNet, FeatNetDesign


@keras.utils.register_keras_serializable(package="featnet_tf")
class FeatNetVariant(FeatNet):
    """`FeatNet` with any `FeatNetDesign`: its arguments, then every field of the design.

    Args:
        feature_spec: the inputs (a `FeatureSpec` or its dict).
        readout, scale_scores, use_value_projection, use_layer_norm,
        normalize_tower_inputs, normalize_embeddings, dnn_batch_norm,
        dnn_batch_norm_momentum, use_linear, field_gating: see
            `FeatNetDesign`; the defaults are
            `FeatNet`'s.
        **featnet_arguments: `FeatNet`'s arguments.

    Example:
        >>> FeatNetVariant(spec, readout="fields", dnn_units=())  # §2.4's readout, no DNN
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        readout: str = FeatNetDesign.readout,
        scale_scores: bool = FeatNetDesign.scale_scores,
        use_value_projection: bool = FeatNetDesign.use_value_projection,
        use_layer_norm: bool = FeatNetDesign.use_layer_norm,
        normalize_tower_inputs: bool = FeatNetDesign.normalize_tower_inputs,
        normalize_embeddings: bool = FeatNetDesign.normalize_embeddings,
        dnn_batch_norm: bool = FeatNetDesign.dnn_batch_norm,
        dnn_batch_norm_momentum: float = FeatNetDesign.dnn_batch_norm_momentum,
        use_linear: bool = FeatNetDesign.use_linear,
        field_gating: str | None = FeatNetDesign.field_gating,
        **featnet_arguments: Any,
    ) -> None:
        # A plain value, set before Keras' `Model.__init__`: `FeatNet.__init__` builds its layers from it.
        self.design = FeatNetDesign(
            readout=readout,
            scale_scores=bool(scale_scores),
            use_value_projection=bool(use_value_projection),
            use_layer_norm=bool(use_layer_norm),
            normalize_tower_inputs=bool(normalize_tower_inputs),
            normalize_embeddings=bool(normalize_embeddings),
            dnn_batch_norm=bool(dnn_batch_norm),
            dnn_batch_norm_momentum=float(dnn_batch_norm_momentum),
            use_linear=bool(use_linear),
            field_gating=field_gating,
        )
        super().__init__(feature_spec, **featnet_arguments)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), **dataclasses.asdict(self.design)}


# The paper as written (the registry's `featnet_eq13`): presets of `FeatNetVariant`.
FEATNET_EQ13 = {
    "readout": "induced",
    "fsgn_initial_threshold": -10.0,
    "sapn_initial_threshold": -10.0,
    "normalize_tower_inputs": False,
    "normalize_embeddings": False,
    "dropout": 0.0,
    "dnn_units": (),
    "dnn_batch_norm": False,
    "use_linear": False,
    "embeddings_initializer": PAPER_EMBEDDINGS_INITIALIZER,
}


def featnet_eq13(feature_spec: FeatureSpec | Mapping[str, Any], **kwargs: Any) -> FeatNetVariant:
    """The literal paper (`FEATNET_EQ13`); every argument of `FeatNetVariant` can still be overridden."""
    return FeatNetVariant(feature_spec, **{**FEATNET_EQ13, **kwargs})
