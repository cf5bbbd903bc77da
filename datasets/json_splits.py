"""The datasets whose records come from one split JSON (`split_zhou_<Name>.json`) of the
CoOp family: each is only where its files are."""
from .base import SplitDataset


class Caltech101(SplitDataset):
    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"


class OxfordPets(SplitDataset):
    dataset_dir = "oxford_pets"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"


class StanfordCars(SplitDataset):
    """Split paths are relative to the dataset folder (cars_train/..., cars_test/...)."""
    dataset_dir = "stanford_cars"
    image_dir = ""
    split_file = "split_zhou_StanfordCars.json"

    def layout(self):
        fix = "Stanford Cars has no public download any more; see docs/datasets.md."
        return [(self.dataset_path / d, "dir", fix) for d in ("cars_train", "cars_test")] \
            + super().layout()


class OxfordFlowers(SplitDataset):
    dataset_dir = "oxford_flowers"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"


class Food101(SplitDataset):
    dataset_dir = "food-101"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"


class SUN397(SplitDataset):
    dataset_dir = "sun397"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"


class DescribableTextures(SplitDataset):
    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"


class EuroSAT(SplitDataset):
    """The split file already carries the readable class names ("Annual Crop Land", ...)."""
    dataset_dir = "eurosat"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"


class UCF101(SplitDataset):
    """Middle frames of the videos, one JPEG each, in folders named like Apply_Eye_Makeup."""
    dataset_dir = "ucf101"
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
