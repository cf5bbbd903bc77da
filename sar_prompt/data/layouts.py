"""Where each dataset keeps its files, and how the few whose records do not come from one
split JSON are read (ImageNet's class folders and its test-only variants, FGVCAircraft's
variant lists): only what is special about each, on `DatasetFiles`."""
import os

from sar_prompt.errors import DataError
from sar_prompt.data.files import DatasetFiles
from sar_prompt.data.splits import SPLITS, Record, listdir_files
from sar_prompt.data.report import error, raise_errors


# -- the datasets whose records come from one split JSON (`split_zhou_<Name>.json`) ----------
class Caltech101Files(DatasetFiles):
    name = "Caltech101"
    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"


class OxfordPetsFiles(DatasetFiles):
    name = "OxfordPets"
    dataset_dir = "oxford_pets"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"


class StanfordCarsFiles(DatasetFiles):
    """Split paths are relative to the dataset folder (cars_train/..., cars_test/...)."""
    name = "StanfordCars"
    dataset_dir = "stanford_cars"
    image_dir = ""
    split_file = "split_zhou_StanfordCars.json"

    def layout(self):
        fix = "Stanford Cars has no public download any more; see docs/datasets.md."
        return [(self.dataset_path / d, "dir", fix) for d in ("cars_train", "cars_test")] \
            + super().layout()


class OxfordFlowersFiles(DatasetFiles):
    name = "OxfordFlowers"
    dataset_dir = "oxford_flowers"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"


class Food101Files(DatasetFiles):
    name = "Food101"
    dataset_dir = "food-101"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"


class SUN397Files(DatasetFiles):
    name = "SUN397"
    dataset_dir = "sun397"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"


class DescribableTexturesFiles(DatasetFiles):
    name = "DescribableTextures"
    dataset_dir = "dtd"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"


class EuroSATFiles(DatasetFiles):
    """The split file already carries the readable class names ("Annual Crop Land", ...)."""
    name = "EuroSAT"
    dataset_dir = "eurosat"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"


class UCF101Files(DatasetFiles):
    """Middle frames of the videos, one JPEG each, in folders named like Apply_Eye_Makeup."""
    name = "UCF101"
    dataset_dir = "ucf101"
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"


# -- ImageNet ----------------------------------------------------------------------------
WNIDS_HINT = ("ImageNet's validation archive is flat (50,000 JPEGs); sort them into one "
              "folder per class (n01440764/, ...) with the devkit's labels, e.g. the widely "
              "used valprep.sh, as for any ImageNet training.")


class ImageNetFiles(DatasetFiles):
    """No split file, but class folders under images/train and images/val (val is the test
    set, and the val set too) and classnames.txt mapping each folder (wnid) to CLIP's
    cleaned class name. Labels follow the sorted folder names; few-shot samples come from
    train only."""
    name = "ImageNet"
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


# -- ImageNet's test-only variants (domain generalisation) ----------------------------------
# As the CoOp family lays them out; each is evaluated with a model trained on ImageNet, and
# every split is its test set:
#
#     imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg   + classnames.txt
#     imagenet-sketch/images/<wnid>/*.JPEG                                 + classnames.txt
#     imagenet-adversarial/imagenet-a/<wnid>/*.jpg   (200 classes)         + classnames.txt
#     imagenet-rendition/imagenet-r/<wnid>/*.jpg     (200 classes)         + classnames.txt
#
# classnames.txt is ImageNet's (copy $DATA/imagenet/classnames.txt). Labels follow the sorted
# class folders, as for ImageNet, so ImageNet-A and ImageNet-R keep their 200-class subsets in
# ImageNet's label order (sar_prompt/classnames/imagenet_a.txt, imagenet_r.txt). ImageNetV2
# names its folders by ImageNet label: folder i is the i-th wnid in sorted order.
CLASSNAMES_FIX = ("Copy ImageNet's classnames.txt there (cp $DATA/imagenet/classnames.txt "
                  "{dataset}/), or get it with `sar-prompt data download {key}`.")


class ImageNetVariantFiles(DatasetFiles):
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


class ImageNetSketchFiles(ImageNetVariantFiles):
    name = "ImageNetSketch"
    dataset_dir = "imagenet-sketch"
    image_dir = "images"


class ImageNetAFiles(ImageNetVariantFiles):
    name = "ImageNetA"
    dataset_dir = "imagenet-adversarial"
    image_dir = "imagenet-a"
    classlist = "imagenet_a"


class ImageNetRFiles(ImageNetVariantFiles):
    name = "ImageNetR"
    dataset_dir = "imagenet-rendition"
    image_dir = "imagenet-r"
    classlist = "imagenet_r"


class ImageNetV2Files(ImageNetVariantFiles):
    name = "ImageNetV2"
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


# -- FGVCAircraft ------------------------------------------------------------------------
class FGVCAircraftFiles(DatasetFiles):
    """The dataset's own files, not a split JSON: variants.txt lists the 100 variants (label
    order); images_variant_{train,val,test}.txt hold '<image id> <variant>' lines for
    images/<image id>.jpg."""
    name = "FGVCAircraft"
    dataset_dir = "fgvc_aircraft"
    image_dir = "images"
    split_file = "variants.txt"
    split_source = "docs/datasets.md (the official archive's data/ folder)"

    def split_lists(self):
        return [self.dataset_path / f"images_variant_{s}.txt" for s in SPLITS]

    def layout(self):
        fix = ("It comes with the official archive (fgvc-aircraft-2013b/data/): "
               + self.how_to_get())
        return [(self.image_path, "dir", fix), (self.split_path, "file", fix)] + \
            [(p, "file", fix) for p in self.split_lists()]

    def read_records(self):
        classnames = [c.strip() for c in self.read_source(self.split_path).splitlines()
                      if c.strip()]
        label_of = {c: i for i, c in enumerate(classnames)}
        out = []
        for path in self.split_lists():
            records = []
            for n, line in enumerate(self.read_source(path).splitlines(), 1):
                image_id, _, variant = line.strip().partition(" ")
                if not image_id:
                    continue
                if variant not in label_of:
                    raise DataError(f"{path}, line {n}: variant {variant!r} is not in "
                                    f"{self.split_path}. Re-extract both from the official "
                                    "archive.")
                records.append(Record(f"{image_id}.jpg", label_of[variant], variant))
            out.append(records)
        return out


# -- the offline demo -------------------------------------------------------------------
class SARDemoFiles(DatasetFiles):
    name = "SARDemo"
    dataset_dir = "sar_demo"
    image_dir = "images"
    split_file = "split_zhou_SARDemo.json"
    split_source = ("`sar-prompt demo --data DATA`, which generates it")


class SARWorldFiles(DatasetFiles):
    name = "SARWorld"
    dataset_dir = "sar_world"
    image_dir = "images"
    split_file = "split_zhou_SARWorld.json"
    split_source = ("`sar-prompt world prepare --data DATA`, which renders it (docs/world.md)")


# The base-to-new benchmark, then ImageNet's variants, in sar_prompt.catalog's order, then
# the offline demo and the synthetic world.
ALL = (ImageNetFiles, Caltech101Files, OxfordPetsFiles, StanfordCarsFiles, OxfordFlowersFiles,
       Food101Files, FGVCAircraftFiles, SUN397Files, DescribableTexturesFiles, EuroSATFiles,
       UCF101Files, ImageNetV2Files, ImageNetSketchFiles, ImageNetAFiles, ImageNetRFiles,
       SARDemoFiles, SARWorldFiles)


def files_for(key):
    """The DatasetFiles class of a catalog key (`dtd`) or registry name
    (`DescribableTextures`); an unknown one raises a ConfigError (a KeyError) listing the
    valid keys."""
    from sar_prompt.catalog import BENCHMARK, DOMAIN_SHIFT, by_key
    from sar_prompt.errors import ConfigError

    info = by_key(key)
    name = info.name if info else key
    for cls in ALL:
        if cls.name == name:
            return cls
    keys = ", ".join(d.key for d in BENCHMARK + DOMAIN_SHIFT)
    raise ConfigError(f"unknown dataset {key!r}; use one of: {keys}")
