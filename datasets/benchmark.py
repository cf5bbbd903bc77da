"""The Dassl datasets of the base-to-new benchmark, ImageNet's test-only variants and the
offline demo: each is its files description from `sar_prompt.data.layouts` on
`SplitDataset`, registered under the name the CoOp family uses."""
from sar_prompt.data import layouts

from .split_dataset import SplitDataset


class ImageNet(SplitDataset):
    files_class = layouts.ImageNetFiles


class Caltech101(SplitDataset):
    files_class = layouts.Caltech101Files


class OxfordPets(SplitDataset):
    files_class = layouts.OxfordPetsFiles


class StanfordCars(SplitDataset):
    files_class = layouts.StanfordCarsFiles


class OxfordFlowers(SplitDataset):
    files_class = layouts.OxfordFlowersFiles


class Food101(SplitDataset):
    files_class = layouts.Food101Files


class FGVCAircraft(SplitDataset):
    files_class = layouts.FGVCAircraftFiles


class SUN397(SplitDataset):
    files_class = layouts.SUN397Files


class DescribableTextures(SplitDataset):
    files_class = layouts.DescribableTexturesFiles


class EuroSAT(SplitDataset):
    files_class = layouts.EuroSATFiles


class UCF101(SplitDataset):
    files_class = layouts.UCF101Files


class ImageNetV2(SplitDataset):
    files_class = layouts.ImageNetV2Files


class ImageNetSketch(SplitDataset):
    files_class = layouts.ImageNetSketchFiles


class ImageNetA(SplitDataset):
    files_class = layouts.ImageNetAFiles


class ImageNetR(SplitDataset):
    files_class = layouts.ImageNetRFiles


class SARDemo(SplitDataset):
    files_class = layouts.SARDemoFiles


class SARWorld(SplitDataset):
    files_class = layouts.SARWorldFiles


# The base-to-new benchmark, then ImageNet's variants, in sar_prompt.catalog's order, then
# the offline demo and the synthetic world.
ALL = (ImageNet, Caltech101, OxfordPets, StanfordCars, OxfordFlowers, Food101, FGVCAircraft,
       SUN397, DescribableTextures, EuroSAT, UCF101,
       ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR, SARDemo, SARWorld)
