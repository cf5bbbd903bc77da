"""Tiny datasets written in the exact on-disk layout of the CoOp family's loaders."""
import io
import json
import random
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
