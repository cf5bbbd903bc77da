"""Make upstream Dassl (0.6.x, last released for PyTorch 1.x) run on current PyTorch.

Applied once on `import sar_prompt`; every patch is idempotent and a no-op where the
running PyTorch does not need it. What breaks upstream, and what we do:

1. `torch.optim.lr_scheduler.LRScheduler.__init__` lost its `verbose` argument (torch 2.7),
   but Dassl's warmup schedulers still pass it: we give them an `__init__` without it.
2. `torch.load` defaults to `weights_only=True` (torch 2.6). Dassl's checkpoints store the
   warmup scheduler's successor as a pickled object, which that refuses. New checkpoints
   store the successor's state dict instead, and `load_checkpoint` goes through
   `sar_prompt.modeling.torch_load.load`, which never runs code from a checkpoint: older files'
   pickled successor comes back as inert data, anything else that needs a full unpickle is
   refused unless the user trusts the file.
3. `torch.cuda.amp` is deprecated: Dassl itself never uses it, and our trainers use
   `torch.amp` (autocast/GradScaler on the run's device, sar_prompt.modeling.precision).
4. Not a torch change, but a run killed while Dassl writes a checkpoint could leave a
   truncated file, or an empty `checkpoint` pointer that breaks resuming: checkpoints and
   the pointer are now written atomically.
"""
import inspect
import sys

import torch

from sar_prompt.modeling import torch_load

_applied = False


def apply():
    """Patch the imported `dassl` (real or test double). Safe to call more than once."""
    global _applied
    if _applied:
        return
    try:
        import dassl  # noqa: F401
        from dassl.optim import lr_scheduler
        from dassl.utils import torchtools
    except ImportError:
        return  # no Dassl: nothing to patch (sar_prompt's trainers will fail to import)
    _patch_warmup_scheduler(lr_scheduler._BaseWarmupScheduler)
    _patch_load_checkpoint(torchtools)
    _patch_save_checkpoint(torchtools)
    _applied = True


def _lr_scheduler_takes_verbose():
    return "verbose" in inspect.signature(torch.optim.lr_scheduler.LRScheduler.__init__).parameters


def _patch_warmup_scheduler(base):
    if getattr(base, "_sar_prompt_patched", False):
        return

    if not _lr_scheduler_takes_verbose():
        def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
            self.successor = successor
            self.warmup_epoch = warmup_epoch
            torch.optim.lr_scheduler.LRScheduler.__init__(self, optimizer, last_epoch)

        base._sar_prompt_original_init = base.__init__
        base.__init__ = __init__

    def state_dict(self):
        # The successor is stored as its own state dict, so checkpoints load with weights_only.
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor_state"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        successor = state.pop("successor", None)  # pre-patch checkpoints pickled the object
        successor_state = state.pop("successor_state", None)
        if successor_state is None and successor is not None:
            if isinstance(successor, torch_load.Placeholder):
                successor_state = torch_load.legacy_scheduler_state(successor)
            else:  # a real object: the file was trusted and fully unpickled
                successor_state = successor.state_dict()
        self.__dict__.update(state)
        if successor_state is not None:
            self.successor.load_state_dict(successor_state)

    base.state_dict = state_dict
    base.load_state_dict = load_state_dict
    base._sar_prompt_patched = True


def _patch_load_checkpoint(torchtools):
    original = torchtools.load_checkpoint
    if getattr(original, "_sar_prompt_patched", False):
        return

    def load_checkpoint(fpath):
        if fpath is None:
            raise ValueError("File path is None")
        return torch_load.load(fpath)

    _replace_everywhere("load_checkpoint", original, load_checkpoint)


def _patch_save_checkpoint(torchtools):
    original = torchtools.save_checkpoint
    if getattr(original, "_sar_prompt_patched", False):
        return

    def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True,
                        model_name=""):
        import io
        import os.path as osp

        from sar_prompt.io import atomic_write_bytes, atomic_write_text

        if remove_module_from_keys:  # as upstream: drop DataParallel's "module." prefix
            state["state_dict"] = type(state["state_dict"])(
                (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items())
        fpath = osp.join(save_dir, model_name or f"model.pth.tar-{state['epoch']}")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(fpath, buffer.getvalue())
        print(f"Checkpoint saved to {fpath}")
        atomic_write_text(osp.join(save_dir, "checkpoint"), f"{osp.basename(fpath)}\n")
        if is_best:
            best = osp.join(save_dir, "model-best.pth.tar")
            atomic_write_bytes(best, buffer.getvalue())
            print(f'Best checkpoint saved to "{best}"')

    _replace_everywhere("save_checkpoint", original, save_checkpoint)


def _replace_everywhere(name, original, replacement):
    """Rebind every alias already imported (dassl.utils, dassl.engine.trainer, host code)."""
    replacement._sar_prompt_patched = True
    replacement.__wrapped__ = original
    for module in list(sys.modules.values()):
        if getattr(module, name, None) is original:
            setattr(module, name, replacement)
