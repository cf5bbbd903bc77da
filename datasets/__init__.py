"""Dassl datasets in the CoOp family's on-disk layout, all built on `SplitDataset`."""
from dassl.data.datasets import DATASET_REGISTRY

from ..registry import register
from .base import SplitDataset
from .demo import SARDemo
from .fgvc_aircraft import FGVCAircraft
from .imagenet import ImageNet
from .imagenet_variants import ImageNetA, ImageNetR, ImageNetSketch, ImageNetV2
from .json_splits import (UCF101, Caltech101, DescribableTextures, EuroSAT, Food101,
                          OxfordFlowers, OxfordPets, StanfordCars, SUN397)

# The base-to-new benchmark, then ImageNet's variants, in sar_prompt.catalog's order, then
# the offline demo.
ALL = (ImageNet, Caltech101, OxfordPets, StanfordCars, OxfordFlowers, Food101, FGVCAircraft,
       SUN397, DescribableTextures, EuroSAT, UCF101,
       ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR, SARDemo)

for _dataset in ALL:
    register(DATASET_REGISTRY, _dataset)


def by_key(key):
    """Our dataset class for a catalog key (`dtd`) or registry name (`DescribableTextures`)."""
    from ..catalog import by_key as info_by_key

    info = info_by_key(key)
    name = info.name if info else key
    for cls in ALL:
        if cls.__name__ == name:
            return cls
    raise KeyError(key)
