"""Random-number state in a form checkpoints can hold (weights-only loadable: tensors,
numbers, strings, containers), so a resumed run draws exactly what an uninterrupted one
would: data order and augmentation (torch's global generator, and Python's and NumPy's for
samplers and transforms that use them), CUDA, and named torch.Generators (SAR's sampler,
a data sampler's own). Also the CUDA kernels' determinism (`configure_cuda`): random states
make a resume exact only where the kernels are deterministic."""
import os
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
    """Restore what `capture` saved. Returns what could not be restored, in words (empty:
    the resumed run draws exactly what an uninterrupted one would)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    problems = _restore_cuda(state["cuda"])
    for name, generator in (generators or {}).items():
        saved = state["generators"].get(name)
        if saved is None:
            problems.append(f"no state for {name}")
        else:
            generator.set_state(saved.cpu())
    return problems


def _restore_cuda(saved):
    """One state per GPU that was visible when saving, set on the GPUs visible now, in order.
    A run uses its first GPU (the runner gives each run one), so more GPUs saved than visible
    still restores the state that matters; only what has no GPU now is reported."""
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, cuda_state in enumerate(saved[:visible]):
        torch.cuda.set_rng_state(cuda_state.cpu(), device)
    if len(saved) and not visible:
        return [f"CUDA random states of {len(saved)} GPU(s) saved, but no GPU is visible now"]
    if len(saved) > visible:
        return [f"CUDA random states of {len(saved)} GPUs saved, {visible} visible now (the "
                f"first {visible} restored)"]
    return []


def _numpy_state():
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state):
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]))


DETERMINISTIC_ENV = "SAR_PROMPT_DETERMINISTIC"  # 1: deterministic CUDA kernels (slower)


def deterministic_requested():
    return os.environ.get(DETERMINISTIC_ENV, "") not in ("", "0")


def configure_cuda(use_cuda, deterministic):
    """cuDNN autotuning, as the reference implementations run (fastest, but the kernels it
    picks may differ between processes, so a resumed run agrees with an uninterrupted one
    only to GPU rounding), or deterministic kernels (bit-identical on the same GPU and
    software; a kernel without a deterministic version warns instead of stopping the run).
    Returns the mode: "autotuned", "deterministic" or "cpu"."""
    if not use_cuda:
        return "cpu"
    if not deterministic:
        torch.backends.cudnn.benchmark = True
        return "autotuned"
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    return "deterministic"
