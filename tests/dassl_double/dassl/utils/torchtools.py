import pickle
import shutil
import warnings
import os.path as osp
from functools import partial
from collections import OrderedDict

import torch

from .tools import mkdir_if_missing

__all__ = [
    "save_checkpoint", "load_checkpoint", "resume_from_checkpoint",
    "count_num_param", "load_pretrained_weights",
]


def _strip_module(key):
    # weights saved from nn.DataParallel carry a "module." prefix
    return key[7:] if key.startswith("module.") else key


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (_strip_module(k), v) for k, v in state["state_dict"].items()
        )
    fpath = osp.join(save_dir, model_name or f"model.pth.tar-{state['epoch']}")
    torch.save(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    # the "checkpoint" text file names the newest file; resume reads it
    with open(osp.join(save_dir, "checkpoint"), "w+") as f:
        f.write(osp.basename(fpath) + "\n")
    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), "model-best.pth.tar")
        shutil.copy(fpath, best_fpath)
        print(f'Best checkpoint saved to "{best_fpath}"')


def load_checkpoint(fpath):
    if fpath is None:
        raise ValueError("File path is None")
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        # Faithful to upstream: no weights_only argument, so torch>=2.6 uses
        # weights_only=True and pickled objects (e.g. schedulers) fail to load.
        return torch.load(fpath, map_location=map_location)
    except UnicodeDecodeError:
        # python2-era pickles
        pickle.load = partial(pickle.load, encoding="latin1")
        pickle.Unpickler = partial(pickle.Unpickler, encoding="latin1")
        return torch.load(fpath, pickle_module=pickle, map_location=map_location)
    except Exception:
        print(f'Unable to load checkpoint from "{fpath}"')
        raise


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    with open(osp.join(fdir, "checkpoint"), "r") as f:
        fpath = osp.join(fdir, f.readlines()[0].strip("\n"))
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)  # module global: patchable at call time
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def count_num_param(model=None, params=None):
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        return sum(p["params"].numel() if isinstance(p, dict) else p.numel() for p in params)
    raise ValueError("model and params must provide at least one.")


def load_pretrained_weights(model, weight_path):
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint)
    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for k, v in state_dict.items():
        k = _strip_module(k)
        # only keep entries whose name and shape both fit the model
        if k in model_dict and model_dict[k].size() == v.size():
            matched[k] = v
        else:
            discarded.append(k)
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f"Cannot load {weight_path} (check the key names manually)")
    else:
        print(f"Successfully loaded pretrained weights from {weight_path}")
        if discarded:
            print(f"Layers discarded due to unmatched keys or size: {discarded}")
