"""What the novel-class step needs to know about a dataset: its Dassl name, hand-crafted
template, domain (in words, for the prompt) and bundled base/new class split.

The class lists come from `sar_prompt.classnames` (bundled, so nothing here needs a dataset
on disk). Everything goes through `dataset_facts` and `all_keys`, which tests replace.
"""
from dataclasses import dataclass

from sar_prompt import classnames
from sar_prompt.catalog import BENCHMARK, DEMO, WORLD, by_key
from sar_prompt.errors import NovelClassesError

# The domain of each dataset, as the prompt says it: "an image classification dataset of ...".
DOMAINS = {
    "imagenet": "everyday objects, animals, plants, foods, vehicles, tools and scenes "
                "(ImageNet-1k object categories)",
    "caltech101": "everyday objects, animals, vehicles, musical instruments and landmarks "
                  "(Caltech-101 object categories)",
    "oxford_pets": "cat and dog breeds",
    "stanford_cars": "car models, named by make, model, body style and year",
    "oxford_flowers": "flower species and garden flowers",
    "food101": "dishes and foods",
    "fgvc_aircraft": "aircraft models and variants (airliners, business jets, military and "
                     "light aircraft)",
    "sun397": "scene categories (indoor rooms, buildings, urban places and natural landscapes)",
    "dtd": "describable textures (adjectives that describe a surface pattern)",
    "eurosat": "land use and land cover types seen in satellite images",
    "ucf101": "human actions in videos (sports, playing instruments, body motion, "
              "interacting with objects and people)",
    DEMO.key: "simple coloured geometric shapes",
    WORLD.key: "coloured geometric shapes (a synthetic world of 10 colours and 10 shapes)",
}


@dataclass(frozen=True)
class DatasetFacts:
    key: str
    name: str  # Dassl registry name, recorded as the file's "dataset"
    template: str
    domain: str
    base: tuple
    new: tuple


def all_keys():
    """The benchmark's 11 dataset keys, in the catalog's order (what `--all` means)."""
    return [d.key for d in BENCHMARK]


def known_keys():
    return [d.key for d in BENCHMARK] + [DEMO.key, WORLD.key]


def dataset_facts(key):
    info = by_key(key)
    if info is None:
        raise NovelClassesError(f"unknown dataset key {key!r}; use one of: "
                                f"{', '.join(known_keys())}.")
    if key not in classnames.available():
        raise NovelClassesError(
            f"{key}: no bundled class list (sar_prompt/classnames/{key}.txt), so its base and "
            f"new classes are unknown and the list cannot be checked against them. Bundled: "
            f"{', '.join(classnames.available())}.")
    base, new = classnames.base_and_new(key)
    return DatasetFacts(key, info.name, info.template, DOMAINS[key], tuple(base), tuple(new))
