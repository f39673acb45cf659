"""Apache Beam pipelines of featnet_tf: preprocessing and batch scoring."""
