import os
import sys
import json
import random
import warnings
import os.path as osp
from difflib import SequenceMatcher

import numpy as np
import PIL
import torch
from PIL import Image

__all__ = [
    "mkdir_if_missing", "check_isfile", "read_json", "write_json",
    "set_random_seed", "read_image", "collect_env_info", "listdir_nohidden",
    "get_most_similar_str_to_a_from_b", "check_availability", "tolist_if_not",
]


def mkdir_if_missing(dirname):
    os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath):
    # Upstream only warns (not raises) and lets the caller decide.
    ok = osp.isfile(fpath)
    if not ok:
        warnings.warn(f'No file found at "{fpath}"')
    return ok


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    mkdir_if_missing(osp.dirname(fpath) or ".")
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def set_random_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def read_image(path):
    return Image.open(path).convert("RGB")


def collect_env_info():
    # Upstream uses torch.utils.collect_env (slow, shells out); a short summary is enough here.
    return "\n".join([
        f"Python: {sys.version.split()[0]}",
        f"PyTorch: {torch.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
        f"Pillow: {PIL.__version__}",
        "Dassl: test double",
    ])


def listdir_nohidden(path, sort=False):
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def get_most_similar_str_to_a_from_b(a, b):
    best, best_sim = None, 0
    for cand in b:
        sim = SequenceMatcher(None, a, cand).ratio()
        if sim >= best_sim:  # ties go to the later candidate, as upstream
            best, best_sim = cand, sim
    return best


def check_availability(requested, available):
    if requested not in available:
        guess = get_most_similar_str_to_a_from_b(requested, available)
        raise ValueError(
            f"The requested one is expected to belong to {available}, "
            f"but got [{requested}] (do you mean [{guess}]?)"
        )


def tolist_if_not(x):
    return x if isinstance(x, list) else [x]
