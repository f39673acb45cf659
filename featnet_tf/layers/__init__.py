"""featnet_tf's Keras layers, one public layer per module."""

from featnet_tf.layers.feature_subset_generation import FeatureSubsetGeneration
from featnet_tf.layers.feature_transform import FeatureTransform
from featnet_tf.layers.field_embedding import FieldEmbedding
from featnet_tf.layers.mlp import MLP
from featnet_tf.layers.set_attentive_pruning import SetAttentivePruning
from featnet_tf.layers.soft_threshold import SoftThreshold
from featnet_tf.layers.subset_towers import SubsetTowers

__all__ = [
    "FeatureSubsetGeneration",
    "FeatureTransform",
    "FieldEmbedding",
    "MLP",
    "SetAttentivePruning",
    "SoftThreshold",
    "SubsetTowers",
]
