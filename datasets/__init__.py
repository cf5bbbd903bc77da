"""Dassl datasets in the CoOp family's on-disk layout, all built on `SplitDataset`."""
from dassl.data.datasets import DATASET_REGISTRY

from ..registry import register
from .base import SplitDataset
from .caltech101 import Caltech101
from .demo import SARDemo

ALL = (Caltech101, SARDemo)

for _dataset in ALL:
    register(DATASET_REGISTRY, _dataset)
