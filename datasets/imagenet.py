"""ImageNet as the CoOp family reads it: no split file, but class folders under
images/train and images/val (val is the test set, and the val set too) and classnames.txt
mapping each folder (wnid) to CLIP's cleaned class name. Labels follow the sorted folder
names; few-shot samples come from train only."""
import os

from .base import Record, SplitDataset, listdir_files
from ..data.report import error, raise_errors
from ..errors import DataError

WNIDS_HINT = ("ImageNet's validation archive is flat (50,000 JPEGs); sort them into one "
              "folder per class (n01440764/, ...) with the devkit's labels, e.g. the widely "
              "used valprep.sh, as for any ImageNet training.")


class ImageNet(SplitDataset):
    dataset_dir = "imagenet"
    image_dir = "images"
    split_file = "classnames.txt"
    split_source = "docs/datasets.md (classnames.txt is linked in CoOp's DATASETS.md)"
    val_is_test = True
    records_are_listed = True

    def layout(self):
        fix = ("Extract ImageNet's train and val sets there (one folder per class); "
               "ImageNet has no public link: see docs/datasets.md.")
        return [(self.image_path / "train", "dir", fix), (self.image_path / "val", "dir", fix),
                (self.split_path, "file", "Download classnames.txt: " + self.how_to_get())]

    def layout_problems(self):
        problems = super().layout_problems()
        for part in ("train", "val"):
            folder = self.image_path / part
            if not folder.is_dir():
                continue
            entries = list(os.scandir(folder))
            n_files = sum(e.is_file() for e in entries)
            n_dirs = sum(e.is_dir() for e in entries)
            if n_files and not n_dirs:
                problems.append(error(f"{folder} is flat: {n_files} image(s) and no class "
                                      f"folders. {WNIDS_HINT}"))
            elif n_files:
                problems.append(error(f"{folder} has {n_files} loose file(s) beside its "
                                      f"{n_dirs} class folders; move them into their class "
                                      "folder or away."))
        return problems

    def read_records(self):
        names = read_wnid_names(self)
        train = self.read_folder("train", names)
        test = self.read_folder("val", names)
        return train, test, test

    def read_folder(self, part, names):
        top = self.image_path / part
        if part == "val":
            folders = sorted(e.name for e in os.scandir(top) if e.is_dir())
            train = sorted(e.name for e in os.scandir(self.image_path / "train") if e.is_dir())
            if folders != train:
                odd = sorted(set(folders) ^ set(train))
                raise DataError(f"{top} and {self.image_path / 'train'} have different class "
                                f"folders ({', '.join(odd[:3])} ...), so their labels would "
                                "disagree. Both need the same 1,000 folders.")
        return class_folder_records(self, top, names, prefix=f"{part}/")


def read_wnid_names(ds):
    """{wnid: class name} from the dataset's classnames.txt ('<wnid> <class name>' lines)."""
    text = ds.read_source(ds.split_path)
    names = {}
    for n, line in enumerate(text.splitlines(), 1):
        folder, _, classname = line.strip().partition(" ")
        if folder:
            if not classname:
                raise DataError(f"{ds.split_path}, line {n}: {line!r} has no class name; "
                                "each line is '<wnid> <class name>'. Download it again: "
                                + ds.how_to_get())
            names[folder] = classname
    return names


def class_folder_records(ds, top, names, prefix=""):
    """Records of `top`/<wnid>/<image>, labelled by the sorted folder names (loose files such
    as README.txt are not classes); relpaths are `prefix`<wnid>/<image>."""
    folders = sorted(e.name for e in os.scandir(top) if e.is_dir())
    unknown = [f for f in folders if f not in names]
    if unknown:
        raise DataError(f"{top} has class folder(s) that {ds.split_path} does not name "
                        f"({', '.join(unknown[:3])}); it needs one line per folder. Use "
                        "the classnames.txt of docs/datasets.md.")
    records, listing = [], []
    for label, folder in enumerate(folders):
        files = listdir_files(top / folder)
        listing.append(f"{folder}:" + "/".join(files))
        records += [Record(f"{prefix}{folder}/{f}", label, names[folder]) for f in files]
    ds.fingerprint(str(top.relative_to(ds.dataset_path)), "\n".join(listing))
    if not records:
        raise_errors([error(f"{top} has no images. " + ds.how_to_get())])
    return records
