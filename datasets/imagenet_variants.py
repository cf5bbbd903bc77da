"""ImageNet's test-only variants for domain generalisation, as the CoOp family lays them out:
each is evaluated with a model trained on ImageNet, and every split is its test set.

    imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg   + classnames.txt
    imagenet-sketch/images/<wnid>/*.JPEG                                 + classnames.txt
    imagenet-adversarial/imagenet-a/<wnid>/*.jpg   (200 classes)         + classnames.txt
    imagenet-rendition/imagenet-r/<wnid>/*.jpg     (200 classes)         + classnames.txt

classnames.txt is ImageNet's (copy $DATA/imagenet/classnames.txt). Labels follow the sorted
class folders, as for ImageNet, so ImageNet-A and ImageNet-R keep their 200-class subsets in
ImageNet's label order (sar_prompt/classnames/imagenet_a.txt, imagenet_r.txt). ImageNetV2
names its folders by ImageNet label: folder i is the i-th wnid in sorted order.
"""
import os

from .base import Record, SplitDataset, listdir_files
from .imagenet import class_folder_records, read_wnid_names
from ..data.report import error, raise_errors
from ..errors import DataError

CLASSNAMES_FIX = ("Copy ImageNet's classnames.txt there (cp $DATA/imagenet/classnames.txt "
                  "{dataset}/), or get it with `python -m sar_prompt.data download {key}`.")


class ImageNetVariant(SplitDataset):
    """A folder of class folders named by wnid, and ImageNet's classnames.txt."""

    split_file = "classnames.txt"
    split_source = "docs/datasets.md (classnames.txt is ImageNet's)"
    test_only = True
    val_is_test = True
    records_are_listed = True
    classlist = "imagenet"

    def layout(self):
        return [(self.image_path, "dir",
                 "Extract the dataset's archive there: " + self.how_to_get()),
                (self.split_path, "file", CLASSNAMES_FIX.format(dataset=self.dataset_path,
                                                                key=self.catalog_key))]

    def read_records(self):
        records = class_folder_records(self, self.image_path, read_wnid_names(self))
        return records, records, records


class ImageNetSketch(ImageNetVariant):
    dataset_dir = "imagenet-sketch"
    image_dir = "images"


class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
    classlist = "imagenet_a"


class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
    classlist = "imagenet_r"


class ImageNetV2(ImageNetVariant):
    dataset_dir = "imagenetv2"
    image_dir = "imagenetv2-matched-frequency-format-val"

    def read_records(self):
        names = read_wnid_names(self)
        wnids = sorted(names)  # ImageNet's label order (CoOp reads the file's order, the same
        # for the official classnames.txt, which is sorted)
        folders = sorted((e.name for e in os.scandir(self.image_path) if e.is_dir()),
                         key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
        odd = [f for f in folders if not f.isdigit() or int(f) >= len(wnids)]
        if odd:
            raise DataError(f"{self.image_path} has folder(s) {', '.join(odd[:3])} that are not "
                            f"ImageNet labels 0..{len(wnids) - 1}; it holds one folder per label.")
        records, listing = [], []
        for folder in folders:
            label = int(folder)
            files = listdir_files(self.image_path / folder)
            listing.append(f"{folder}:" + "/".join(files))
            records += [Record(f"{folder}/{f}", label, names[wnids[label]]) for f in files]
        self.fingerprint(self.image_dir, "\n".join(listing))
        if not records:
            raise_errors([error(f"{self.image_path} has no images. " + self.how_to_get())])
        return records, records, records
