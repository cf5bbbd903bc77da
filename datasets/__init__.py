"""Dassl datasets in the CoOp family's on-disk layout, all built on `SplitDataset`; where
their files are and how they are read and checked lives in `sar_prompt.data` (no Dassl)."""
from dassl.data.datasets import DATASET_REGISTRY

from sar_prompt.dassl_glue.registry import register

from .split_dataset import SplitDataset
from .benchmark import (ALL, UCF101, Caltech101, DescribableTextures, EuroSAT, FGVCAircraft,
                        Food101, ImageNet, ImageNetA, ImageNetR, ImageNetSketch, ImageNetV2,
                        OxfordFlowers, OxfordPets, SARDemo, SARWorld, StanfordCars, SUN397)

for _dataset in ALL:
    register(DATASET_REGISTRY, _dataset)


def by_key(key):
    """Our dataset class for a catalog key (`dtd`) or registry name (`DescribableTextures`)."""
    from sar_prompt.data.layouts import files_for

    name = files_for(key).name
    return next(cls for cls in ALL if cls.__name__ == name)


__all__ = ["SplitDataset", "by_key", "ALL", "ImageNet", "Caltech101", "OxfordPets",
           "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft", "SUN397",
           "DescribableTextures", "EuroSAT", "UCF101", "ImageNetV2", "ImageNetSketch",
           "ImageNetA", "ImageNetR", "SARDemo", "SARWorld"]
