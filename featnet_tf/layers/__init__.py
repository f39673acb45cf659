"""featnet_tf's Keras layers, one public layer per module."""

from featnet_tf.layers.bilinear_interaction import BilinearInteraction
from featnet_tf.layers.compressed_interaction import CompressedInteraction
from featnet_tf.layers.factorization_machine import FactorizationMachine
from featnet_tf.layers.feature_subset_generation import FeatureSubsetGeneration
from featnet_tf.layers.feature_transform import FeatureTransform
from featnet_tf.layers.field_embedding import FieldEmbedding
from featnet_tf.layers.logarithmic_transformation import LogarithmicTransformation
from featnet_tf.layers.mlp import MLP
from featnet_tf.layers.multi_head_self_attention import MultiHeadSelfAttention
from featnet_tf.layers.set_attentive_pruning import SetAttentivePruning
from featnet_tf.layers.soft_threshold import SoftThreshold
from featnet_tf.layers.squeeze_excitation import SqueezeExcitation
from featnet_tf.layers.subset_towers import SubsetTowers

__all__ = [
    "BilinearInteraction",
    "CompressedInteraction",
    "FactorizationMachine",
    "LogarithmicTransformation",
    "MultiHeadSelfAttention",
    "SqueezeExcitation",
    "FeatureSubsetGeneration",
    "FeatureTransform",
    "FieldEmbedding",
    "MLP",
    "SetAttentivePruning",
    "SoftThreshold",
    "SubsetTowers",
]
