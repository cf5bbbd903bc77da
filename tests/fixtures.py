"""Tiny datasets written in the exact on-disk layout of the CoOp family's loaders."""
import io
import json
import random
import re
from pathlib import Path

# Caltech101's folders (101_ObjectCategories), sorted as `ls` sorts them; the CoOp family
# ignores two and renames four, and labels classes in this order.
CALTECH101_FOLDERS = [
    "BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes",
    "anchor", "ant", "barrel", "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus",
    "buddha", "butterfly", "camera", "cannon", "car_side", "ceiling_fan", "cellphone", "chair",
    "chandelier", "cougar_body", "cougar_face", "crab", "crayfish", "crocodile", "crocodile_head",
    "cup", "dalmatian", "dollar_bill", "dolphin", "dragonfly", "electric_guitar", "elephant", "emu",
    "euphonium", "ewer", "ferry", "flamingo", "flamingo_head", "garfield", "gerenuk", "gramophone",
    "grand_piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis", "inline_skate",
    "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster", "lotus", "mandolin",
    "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus", "okapi", "pagoda", "panda",
    "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster", "saxophone",
    "schooner", "scissors", "scorpion", "sea_horse", "snoopy", "soccer_ball", "stapler",
    "starfish", "stegosaurus", "stop_sign", "strawberry", "sunflower", "tick", "trilobite",
    "umbrella", "watch", "water_lilly", "wheelchair", "wild_cat", "windsor_chair", "wrench",
    "yin_yang",
]
CALTECH101_IGNORED = {"BACKGROUND_Google", "Faces_easy"}
CALTECH101_RENAMED = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard",
                      "Motorbikes": "motorbike"}


def caltech101_classes():
    """[(folder, classname)] in label order."""
    return [(f, CALTECH101_RENAMED.get(f, f)) for f in CALTECH101_FOLDERS
            if f not in CALTECH101_IGNORED]


def tiny_jpeg(seed, size=16):
    from PIL import Image

    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def write_caltech101(root, per_split=(3, 1, 1)):
    """root/caltech-101/{101_ObjectCategories/<folder>/image_NNNN.jpg, split_zhou_Caltech101.json}."""
    base = Path(root) / "caltech-101"
    images = base / "101_ObjectCategories"
    split = {"train": [], "val": [], "test": []}
    seed = 0
    for folder in CALTECH101_IGNORED:
        (images / folder).mkdir(parents=True, exist_ok=True)
        (images / folder / "image_0001.jpg").write_bytes(tiny_jpeg(seed))
        seed += 1
    for label, (folder, classname) in enumerate(caltech101_classes()):
        (images / folder).mkdir(parents=True, exist_ok=True)
        n = 0
        for part, count in zip(("train", "val", "test"), per_split):
            for _ in range(count):
                n += 1
                rel = f"{folder}/image_{n:04d}.jpg"
                (images / rel).write_bytes(tiny_jpeg(seed))
                seed += 1
                split[part].append([rel, label, classname])
    (base / "split_zhou_Caltech101.json").write_text(json.dumps(split, indent=4))
    return Path(root)


# -- every dataset of the base-to-new benchmark ----------------------------------------
# Each writer lays out one dataset exactly as its loader expects it, with all of its
# classes (real names) and `per_split` tiny images per class, and derives the label order
# the way the CoOp family's loaders do (sorted folders, classInd.txt order, ...) rather
# than reading it from sar_prompt/classnames, so comparing the two is a real check.
EUROSAT_FOLDERS = {
    "AnnualCrop": "Annual Crop Land", "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land", "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings",
    "River": "River", "SeaLake": "Sea or Lake",
}
PARTS = ("train", "val", "test")
_JPEG = {}


def tiny_image_bytes():
    """One 8x8 JPEG, shared by every fixture image (their content never matters)."""
    if "jpeg" not in _JPEG:
        _JPEG["jpeg"] = tiny_jpeg(0, size=8)
    return _JPEG["jpeg"]


def _bundled(key):
    from sar_prompt.classnames import class_names

    return class_names(key)


def _put(path, data=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_image_bytes() if data is None else data)


def _json_split(base, image_dir, split_file, classes, relpath, per_split):
    """classes: [(label, classname, key)] → images at relpath(key, part, i) and the split."""
    split = {p: [] for p in PARTS}
    for label, classname, key in classes:
        for part, count in zip(PARTS, per_split):
            for i in range(count):
                rel = relpath(key, part, i)
                _put(base / image_dir / rel)
                split[part].append([rel, label, classname])
    (base / split_file).write_text(json.dumps(split))
    return [c for _, c, _ in sorted(classes)]


def _sorted_folders(names):
    """CoOp's read_and_split_data: labels follow the sorted folder names."""
    return [(label, name, name) for label, name in enumerate(sorted(names))]


def _write_oxford_pets(root, per_split):
    # annotations/list.txt numbers breeds alphabetically, ignoring case
    classes = [(i, b, b) for i, b in enumerate(sorted(_bundled("oxford_pets"), key=str.lower))]
    return _json_split(Path(root) / "oxford_pets", "images", "split_zhou_OxfordPets.json",
                       classes, lambda b, p, i: f"{b}_{PARTS.index(p)}{i}.jpg", per_split)


def _write_stanford_cars(root, per_split):
    classes = [(i, c, i) for i, c in enumerate(_bundled("stanford_cars"))]  # cars_meta order
    name = lambda k, p, i: (f"cars_test/{k:03d}{i:02d}.jpg" if p == "test"  # noqa: E731
                            else f"cars_train/{k:03d}{PARTS.index(p)}{i}.jpg")
    return _json_split(Path(root) / "stanford_cars", "", "split_zhou_StanfordCars.json",
                       classes, name, per_split)


def _write_oxford_flowers(root, per_split):
    classes = [(i, c, i) for i, c in enumerate(_bundled("oxford_flowers"))]  # cat_to_name ids
    return _json_split(Path(root) / "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
                       classes, lambda k, p, i: f"image_{k:03d}{PARTS.index(p)}{i}.jpg", per_split)


def _write_food101(root, per_split):
    return _json_split(Path(root) / "food-101", "images", "split_zhou_Food101.json",
                       _sorted_folders(_bundled("food101")),
                       lambda f, p, i: f"{f}/{PARTS.index(p)}{i}0.jpg", per_split)


def _write_dtd(root, per_split):
    return _json_split(Path(root) / "dtd", "images", "split_zhou_DescribableTextures.json",
                       _sorted_folders(_bundled("dtd")),
                       lambda f, p, i: f"{f}/{f}_{PARTS.index(p)}{i}.jpg", per_split)


def _write_eurosat(root, per_split):
    classes = [(label, EUROSAT_FOLDERS[f], f) for label, f in enumerate(sorted(EUROSAT_FOLDERS))]
    return _json_split(Path(root) / "eurosat", "2750", "split_zhou_EuroSAT.json", classes,
                       lambda f, p, i: f"{f}/{f}_{PARTS.index(p)}{i}.jpg", per_split)


def sun397_paths():
    """ClassName.txt's paths (/a/apartment_building/outdoor), rebuilt from CoOp's names."""
    return sorted(f"/{c.split(' ')[-1][0]}/" + "/".join(reversed(c.split(" ")))
                  for c in _bundled("sun397"))


def _write_sun397(root, per_split):
    # labels: ClassName.txt order; names: path after the letter, reversed, space-joined
    classes = [(label, " ".join(path.split("/")[2:][::-1]), path[1:])
               for label, path in enumerate(sun397_paths())]
    return _json_split(Path(root) / "sun397", "SUN397", "split_zhou_SUN397.json", classes,
                       lambda d, p, i: f"{d}/sun_{PARTS.index(p)}{i}.jpg", per_split)


def _write_ucf101(root, per_split):
    # classInd.txt: CamelCase actions, 1-based, alphabetical ignoring case; CoOp splits the
    # CamelCase into Words_Joined_By_Underscores, which also names the frame folders
    actions = sorted(("".join(c.split("_")) for c in _bundled("ucf101")), key=str.lower)
    classes = [(label, "_".join(re.findall("[A-Z][^A-Z]*", a)), a)
               for label, a in enumerate(actions)]
    renamed = {a: c for _, c, a in classes}
    return _json_split(Path(root) / "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json",
                       classes, lambda a, p, i: f"{renamed[a]}/v_{a}_g{PARTS.index(p)}{i}_c01.jpg",
                       per_split)


def _write_caltech101(root, per_split):
    write_caltech101(root, per_split)
    return [name for _, name in caltech101_classes()]


def _write_fgvc_aircraft(root, per_split):
    base = Path(root) / "fgvc_aircraft"
    variants = _bundled("fgvc_aircraft")
    _put(base / "variants.txt", ("\n".join(variants) + "\n").encode())
    for part, count in zip(PARTS, per_split):
        lines = []
        for k, v in enumerate(variants):
            for i in range(count):
                image_id = f"{k:03d}{PARTS.index(part)}{i:03d}"
                _put(base / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {v}")
        _put(base / f"images_variant_{part}.txt", ("\n".join(lines) + "\n").encode())
    return variants


def imagenet_wnids():
    """Made-up wnids, one per class, sorted in label order."""
    return [f"n{1000000 + 7 * k:08d}" for k in range(1000)]


def _write_imagenet(root, per_split, flat_val=False):
    """images/{train,val}/<wnid>/ and classnames.txt, its lines shuffled: labels must come
    from the sorted folders, not from the file's order. per_split: (train, -, val)."""
    base = Path(root) / "imagenet"
    names = _bundled("imagenet")
    pairs = list(zip(imagenet_wnids(), names))
    lines = [f"{w} {n}" for w, n in pairs]
    random.Random(0).shuffle(lines)
    _put(base / "classnames.txt", ("\n".join(lines) + "\n").encode())
    n = 0
    for w, _ in pairs:
        for i in range(per_split[0]):
            _put(base / "images" / "train" / w / f"{w}_{i}.JPEG")
        for i in range(per_split[2]):
            n += 1
            sub = "" if flat_val else f"{w}/"
            _put(base / "images" / "val" / f"{sub}ILSVRC2012_val_{n:08d}.JPEG")
    return names


def _imagenet_classnames_file(base):
    """ImageNet's classnames.txt (lines shuffled, as for the ImageNet fixture): the variants
    ship none, the CoOp family's instructions copy ImageNet's."""
    lines = [f"{w} {n}" for w, n in zip(imagenet_wnids(), _bundled("imagenet"))]
    random.Random(1).shuffle(lines)
    _put(base / "classnames.txt", ("\n".join(lines) + "\n").encode())


def imagenet_subset_labels(key):
    """ImageNet labels of a 200-class variant (imagenet_a, imagenet_r): its bundled names
    matched in order against ImageNet's list (ascending, so repeated names resolve)."""
    full, labels, i = _bundled("imagenet"), [], 0
    for name in _bundled(key):
        while full[i] != name:
            i += 1
        labels.append(i)
        i += 1
    return labels


def _write_imagenet_folders(root, dataset_dir, image_dir, labels, per_split, readme=False):
    base = Path(root) / dataset_dir
    _imagenet_classnames_file(base)
    wnids, names = imagenet_wnids(), _bundled("imagenet")
    for label in labels:
        for i in range(per_split[2]):
            _put(base / image_dir / wnids[label] / f"{wnids[label]}_{i}.jpg")
    if readme:  # ImageNet-A and -R ship a README.txt beside their class folders
        _put(base / image_dir / "README.txt", b"not a class\n")
    return [names[k] for k in labels]


def _write_imagenetv2(root, per_split):
    base = Path(root) / "imagenetv2"
    _imagenet_classnames_file(base)
    for label in range(1000):  # one folder per ImageNet label, named by the label
        for i in range(per_split[2]):
            _put(base / "imagenetv2-matched-frequency-format-val" / str(label) / f"{i:04x}.jpeg")
    return _bundled("imagenet")


def _write_imagenet_sketch(root, per_split):
    return _write_imagenet_folders(root, "imagenet-sketch", "images", range(1000), per_split)


def _write_imagenet_a(root, per_split):
    return _write_imagenet_folders(root, "imagenet-adversarial", "imagenet-a",
                                   imagenet_subset_labels("imagenet_a"), per_split, readme=True)


def _write_imagenet_r(root, per_split):
    return _write_imagenet_folders(root, "imagenet-rendition", "imagenet-r",
                                   imagenet_subset_labels("imagenet_r"), per_split, readme=True)


WRITERS = {
    "imagenet": _write_imagenet, "caltech101": _write_caltech101,
    "oxford_pets": _write_oxford_pets, "stanford_cars": _write_stanford_cars,
    "oxford_flowers": _write_oxford_flowers, "food101": _write_food101,
    "fgvc_aircraft": _write_fgvc_aircraft, "sun397": _write_sun397, "dtd": _write_dtd,
    "eurosat": _write_eurosat, "ucf101": _write_ucf101,
    # ImageNet's test-only variants (domain generalisation)
    "imagenetv2": _write_imagenetv2, "imagenet_sketch": _write_imagenet_sketch,
    "imagenet_a": _write_imagenet_a, "imagenet_r": _write_imagenet_r,
}


def write_dataset(key, root, per_split=(2, 1, 1), **kw):
    """Write dataset `key` under root; the class names in label order, as CoOp derives them."""
    return WRITERS[key](Path(root), per_split, **kw)
