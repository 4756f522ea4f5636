"""The PathNet super-network: stacked module tensors, batched path forward and SGD."""

from pathnet_fer.pathnet.config import PathNetConfig
from pathnet_fer.pathnet.device import resolve_device
from pathnet_fer.pathnet.genotype import distinct_counts, mutate, random_genotypes, slot_weights
from pathnet_fer.pathnet.linear_path_model import PathModel
from pathnet_fer.pathnet.supernet import PathNet

__all__ = [
    "PathModel",
    "PathNet",
    "PathNetConfig",
    "distinct_counts",
    "mutate",
    "random_genotypes",
    "resolve_device",
    "slot_weights",
]
