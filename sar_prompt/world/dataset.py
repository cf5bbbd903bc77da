"""The world as a dataset on disk, in the CoOp family's layout (the SARWorld dataset):

    DATA/sar_world/images/<class>/{train,val,test}_NN.png
    DATA/sar_world/split_zhou_SARWorld.json    [relpath, label, classname] per split
    DATA/sar_world/world_clip.pt               the pretrained CLIP, whole (MODEL.BACKBONE.PATH)
    DATA/sar_world/world.json                  what was written, from what

Labels: the 35 base classes first, then the 35 new ones, so the CoOp family's base/new
halves are the world's. The folder is written beside its place and renamed into it when
complete, so a folder there is always whole. `prepare` with given weights replaces a folder
written from others; without, it keeps any whole world of this format (a run never undoes
`sar-prompt world prepare --weights FILE`).
"""
import json
from pathlib import Path

from sar_prompt.io import atomic_folder, atomic_write_json, write_unpublished
from sar_prompt.world import render, spec, weights

DATASET_DIR = "sar_world"
SPLIT_FILE = "split_zhou_SARWorld.json"
CLIP_FILE = "world_clip.pt"
MANIFEST = "world.json"
# Images per class: enough for the benchmark's 16 shots (and 4 validation images) to differ
# between seeds, and a test set whose accuracy moves in steps of 1/1750 per half.
PER_SPLIT = {"train": 40, "val": 8, "test": 50}
FORMAT_VERSION = 1


def class_names(world_seed=spec.WORLD_SEED):
    """The dataset's classes in label order: base, then new."""
    base, new, _ = spec.split(world_seed)
    return list(base) + list(new)


def folder_name(classname):
    return classname.replace(" ", "_")


def manifest(compact, world_seed=spec.WORLD_SEED):
    return {"format_version": FORMAT_VERSION, "world_seed": world_seed,
            "per_split": PER_SPLIT, "classes": class_names(world_seed),
            "clip_weights": {"file": CLIP_FILE, "compact_sha256": weights.digest(compact)}}


def read_manifest(base):
    """The manifest of a whole world folder, or None."""
    try:
        found = json.loads((Path(base) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    whole = (Path(base) / SPLIT_FILE).is_file() and (Path(base) / CLIP_FILE).is_file()
    return found if whole and isinstance(found, dict) else None


def _current(base, expected, any_weights):
    found = read_manifest(base)
    if found is None:
        return False
    if any_weights:
        found = {**found, "clip_weights": expected["clip_weights"]}
    return found == expected


def write_images(base, world_seed=spec.WORLD_SEED, per_split=None):
    """Render every image into base/images and return the split {part: [[rel, label, name]]}."""
    per_split = per_split or PER_SPLIT
    split = {part: [] for part in per_split}
    for label, name in enumerate(class_names(world_seed)):
        world_label = spec.ALL_CLASSES.index(name)  # an image's seed: its class, not its label
        for part, count in per_split.items():
            for i in range(count):
                rel = f"{folder_name(name)}/{part}_{i:02d}.png"
                image, _ = render.render(name, world_seed, part, world_label, i)
                write_unpublished(base / "images" / rel, render.png_bytes(image))
                split[part].append([rel, label, name])
    return split


def prepare(root, compact=None, world_seed=spec.WORLD_SEED):
    """Write the world dataset and its CLIP under root/sar_world, unless it is there already.
    `compact`: the world CLIP's compact weights; None: keep whichever weights a whole world
    there has, else write the shipped ones."""
    root = Path(root).expanduser().resolve()
    base = root / DATASET_DIR
    any_weights = compact is None
    compact = compact if compact is not None else weights.read_compact()
    expected = manifest(compact, world_seed)
    if _current(base, expected, any_weights):
        return base
    with atomic_folder(base) as work:
        split = write_images(work, world_seed)
        weights.write_full(work / CLIP_FILE, compact)
        atomic_write_json(work / SPLIT_FILE, split)
        atomic_write_json(work / MANIFEST, expected)
    return base


BACKBONE = "sar-world-clip"  # MODEL.BACKBONE.NAME of the world's runs (a name, not a download)


def run_options(data):
    """The KEY VALUE pairs every world run gets after its configs: the world CLIP, its
    32-pixel input, and no loader processes (the images are tiny)."""
    clip = Path(data).expanduser().resolve() / DATASET_DIR / CLIP_FILE
    return ("MODEL.BACKBONE.NAME", BACKBONE, "MODEL.BACKBONE.PATH", str(clip),
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0")


def prepare_with(data, weights_file=None):
    """`prepare` with the compact weights of `weights_file` (None: the shipped ones),
    replacing a world written from others (`sar-prompt world prepare`)."""
    return prepare(data, weights.read_compact(weights_file))
