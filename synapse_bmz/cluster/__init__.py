"""Synapse clustering (SynapseClusterEM): features of synapse crops, embeddings, KMeans, report.

`run_cluster` is the API; `cli.add_parser` / `cli.cluster_command` the ``synapse-bmz cluster`` command.
"""

from .pipeline import ClusterConfig, ClusterRun, VolumeSpec, load_cluster_config, run_cluster

__all__ = ["ClusterConfig", "ClusterRun", "VolumeSpec", "load_cluster_config", "run_cluster"]
