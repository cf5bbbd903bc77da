"""Diagnosing a dataset folder that is not where, or not shaped as, a loader expects it:
the root points inside the dataset, the dataset folder has another name, or a folder sits
one level too deep (as archives often leave it). Each finding names the path and the fix."""
import difflib
import os
from pathlib import Path

from sar_prompt.data.report import error

SEARCH_DEPTH = 3


def _norm(name):
    return "".join(ch for ch in name.lower() if ch.isalnum())


def similar_folder(parent, name):
    """A folder in `parent` that is probably `name` under another spelling
    (Caltech101 for caltech-101, DTD for dtd, food-101 for food101), or None."""
    try:
        folders = [e.name for e in os.scandir(parent) if e.is_dir()]
    except OSError:
        return None
    same = [f for f in folders if _norm(f) == _norm(name)]
    if same:
        return Path(parent) / same[0]
    close = difflib.get_close_matches(name.lower(), [f.lower() for f in folders], n=1, cutoff=0.8)
    if close:
        return Path(parent) / next(f for f in folders if f.lower() == close[0])
    return None


def find_nested(top, relpath, kind, depth=SEARCH_DEPTH):
    """Somewhere below `top` (at most `depth` levels) where `relpath` exists as a `kind`
    ("dir" or "file"), e.g. food-101/food-101/images for food-101/images; or None."""
    relpath = Path(relpath)
    frontier = [Path(top)]
    for _ in range(depth):
        nxt = []
        for folder in frontier:
            try:
                subdirs = sorted(e.path for e in os.scandir(folder)
                                 if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
            for sub in map(Path, subdirs):
                cand = sub / relpath
                if cand.is_dir() if kind == "dir" else cand.is_file():
                    return cand
                nxt.append(sub)
        frontier = nxt[:200]  # a big image tree is no place to search further
    return None


def missing_entry(path, kind, dataset_path, fix):
    """The error for a layout entry that is absent: with the place it was found instead
    (when an archive left it a level deeper), else with `fix`."""
    rel = Path(path).relative_to(dataset_path) if Path(path) != Path(dataset_path) else Path(".")
    found = find_nested(dataset_path, rel, kind) or find_nested(dataset_path, rel.name, kind)
    what = "folder" if kind == "dir" else "file"
    if found:
        return error(f"{what} {path} is missing, but {found} looks like it: move it to {path} "
                     "(the dataset folder must have the layout in docs/datasets.md).")
    return error(f"{what} {path} is missing. {fix}")


def root_problems(root, dataset_path, expected_relpaths, how_to_get):
    """Errors when DATASET.ROOT or the dataset's own folder is wrong: [] when both exist."""
    root, dataset_path = Path(root), Path(dataset_path)
    if not root.is_dir():
        return [error(f"DATASET.ROOT ({root}) is not a folder. Pass --data (or set "
                      f"SAR_PROMPT_DATA) to the folder that holds {dataset_path.name}/.")]
    if dataset_path.is_dir():
        return []
    inside = root.name == dataset_path.name or any((root / r).exists() for r in expected_relpaths)
    if inside:
        return [error(f"DATASET.ROOT ({root}) points inside the dataset folder: "
                      f"use its parent, --data {root.parent}, whose {dataset_path.name}/ "
                      f"holds the data.")]
    other = similar_folder(root, dataset_path.name)
    if other:
        return [error(f"{dataset_path} is missing, but {other} looks like it: rename it to "
                      f"{dataset_path.name} (mv '{other}' '{dataset_path}').")]
    return [error(f"{dataset_path} is missing. {how_to_get} Or fix DATASET.ROOT ({root}).")]
