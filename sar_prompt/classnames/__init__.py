"""The full, ordered class list of each dataset (label order of the CoOp family's loaders),
bundled as facts so the novel-class step and the overlap audit work without data on disk.

Files: `<dataset key>.txt`, one class name per line, exactly as the split files spell them.
`imagenet_a.txt` and `imagenet_r.txt` are the 200-class subsets of ImageNet-A and ImageNet-R
(ImageNet's names, in ImageNet's label order); ImageNetV2 and ImageNet-Sketch use ImageNet's.
"""
import math
from importlib import resources

from sar_prompt.catalog import by_key


def available():
    """Dataset keys with a bundled class list."""
    folder = resources.files(__name__)
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def class_names(dataset_key):
    """All class names of a dataset, in label order."""
    try:
        text = resources.files(__name__).joinpath(f"{dataset_key}.txt").read_text("utf-8")
    except FileNotFoundError:
        raise KeyError(f"no bundled class list for {dataset_key!r}; available: "
                       f"{', '.join(available())}") from None
    return [line for line in text.splitlines() if line]


def base_and_new(dataset_key):
    """(base, new): the first ceil(n/2) classes and the rest, as the CoOp family splits them."""
    names = class_names(dataset_key)
    m = math.ceil(len(names) / 2)
    return names[:m], names[m:]


def dataset_name(dataset_key):
    info = by_key(dataset_key)
    return info.name if info else dataset_key
