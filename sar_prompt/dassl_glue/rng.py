"""Random-number state in a form checkpoints can hold (weights-only loadable: tensors,
numbers, strings, containers), so a resumed run draws exactly what an uninterrupted one
would: data order and augmentation (torch's global generator, and Python's and NumPy's for
samplers and transforms that use them), CUDA, and named torch.Generators (SAR's sampler,
a data sampler's own)."""
import random

import numpy as np
import torch


def capture(generators=None):
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore(state, generators=None):
    """Restore what `capture` saved. Returns the names of `generators` the state lacked."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    missing = []
    for name, generator in (generators or {}).items():
        saved = state["generators"].get(name)
        if saved is None:
            missing.append(name)
        else:
            generator.set_state(saved.cpu())
    return missing


def _numpy_state():
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state):
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]))
