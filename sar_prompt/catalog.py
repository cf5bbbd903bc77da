"""Facts about the datasets of the base-to-new benchmark, in one table.

`key` is the short name used for config files, novel-class files and run folders
(`configs/datasets/<key>.yaml`, `novel_classes/<key>.json`); `name` is the Dassl
registry name; `template` is the hand-crafted prompt the CoOp family's zero-shot CLIP uses
for the dataset (methods whose references differ: `sar_prompt.templates`); `title` is how
result tables name it; `variant_of` is the dataset whose classes a test-only variant shares
(ImageNet's, for the domain-generalisation sets), whose novel-class list SAR then reads.
"""
from dataclasses import dataclass

DEFAULT_TEMPLATE = "a photo of a {}."


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    name: str
    template: str
    title: str = ""
    variant_of: str = ""

    @property
    def label(self):
        return self.title or self.name


BENCHMARK = (
    DatasetInfo("imagenet", "ImageNet", "a photo of a {}."),
    DatasetInfo("caltech101", "Caltech101", "a photo of a {}."),
    DatasetInfo("oxford_pets", "OxfordPets", "a photo of a {}, a type of pet."),
    DatasetInfo("stanford_cars", "StanfordCars", "a photo of a {}."),
    DatasetInfo("oxford_flowers", "OxfordFlowers", "a photo of a {}, a type of flower.",
                "Flowers102"),
    DatasetInfo("food101", "Food101", "a photo of {}, a type of food."),
    DatasetInfo("fgvc_aircraft", "FGVCAircraft", "a photo of a {}, a type of aircraft."),
    DatasetInfo("sun397", "SUN397", "a photo of a {}."),
    # (KgCoOp's release uses "a photo of a {}, a type of texture.": sar_prompt.templates)
    DatasetInfo("dtd", "DescribableTextures", "{} texture.", "DTD"),
    DatasetInfo("eurosat", "EuroSAT", "a centered satellite photo of {}."),
    DatasetInfo("ucf101", "UCF101", "a photo of a person doing {}."),
)

# Domain generalisation: test-only variants of ImageNet (the CoOp family's layout), on which
# a model trained on ImageNet is evaluated.
DOMAIN_SHIFT = (
    DatasetInfo("imagenetv2", "ImageNetV2", "a photo of a {}.", "ImageNetV2", "imagenet"),
    DatasetInfo("imagenet_sketch", "ImageNetSketch", "a photo of a {}.", "ImageNet-Sketch",
                "imagenet"),
    DatasetInfo("imagenet_a", "ImageNetA", "a photo of a {}.", "ImageNet-A", "imagenet"),
    DatasetInfo("imagenet_r", "ImageNetR", "a photo of a {}.", "ImageNet-R", "imagenet"),
)

# Offline demo dataset (sar_prompt.orchestration.demo generates it); not part of the benchmark.
DEMO = DatasetInfo("demo", "SARDemo", "a photo of a {}.")
# The synthetic world (sar_prompt.world renders it; its CLIP is pretrained on it).
WORLD = DatasetInfo("world", "SARWorld", "a photo of a {}.", "World")

ALL = BENCHMARK + DOMAIN_SHIFT + (DEMO, WORLD)
_BY_NAME = {d.name: d for d in ALL}
_BY_KEY = {d.key: d for d in ALL}


def by_name(name: str):
    """DatasetInfo for a Dassl dataset name, or None for a dataset we have no facts about."""
    return _BY_NAME.get(name)


def by_key(key: str):
    return _BY_KEY.get(key)


def template_for(dataset_name: str) -> str:
    info = by_name(dataset_name)
    return info.template if info else DEFAULT_TEMPLATE


def key_for(dataset_name: str) -> str:
    """Short key of a dataset; unknown (host) datasets use their lower-cased registry name."""
    info = by_name(dataset_name)
    return info.key if info else dataset_name.lower()


def novel_key_for(dataset_name: str) -> str:
    """Key of the dataset whose novel-class list applies: ImageNet's for its variants."""
    info = by_name(dataset_name)
    return (info.variant_of or info.key) if info else dataset_name.lower()
