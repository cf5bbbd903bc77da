"""Loading checkpoints without running code from them.

A checkpoint is a pickle, and unpickling can call any Python function. Every checkpoint
sar_prompt loads (evaluation, resume, `MODEL.INIT_WEIGHTS`, and Dassl's `load_checkpoint`
for host trainers too) goes through `load`, which uses PyTorch's weights-only unpickler:
tensors, numbers, strings and containers, nothing that executes.

Checkpoints written by upstream Dassl (and so by the reference CoOp, CoCoOp and KgCoOp
code) pickle one Python object: the warm-up scheduler's successor, an LR scheduler holding
an optimizer. For those, and only those, each such object is rebuilt as an inert
`Placeholder` that keeps the pickled attributes as data; the real classes are never called.
A placeholder anywhere else refuses the file, as does anything the weights-only unpickler
blocks (a call to `os.system`, say).

A full unpickle runs only when the user trusts the file: `MODEL.TRUST_CHECKPOINT_CODE
True`, `train.py --trust-checkpoint-code`, or `SAR_PROMPT_TRUST_CHECKPOINT_CODE=1`.
"""
import os
import pickle
import re
import warnings
import zipfile
from contextlib import contextmanager

import torch

from sar_prompt.errors import CheckpointError, MissingCheckpointError

TRUST_ENV = "SAR_PROMPT_TRUST_CHECKPOINT_CODE"
TRUST_KEY = "MODEL.TRUST_CHECKPOINT_CODE"
# Where upstream Dassl checkpoints hold pickled objects (see module docstring).
LEGACY_OBJECT_PATHS = (("scheduler", "successor"),)
LEGACY_MODULE = "torch.optim.lr_scheduler."  # ... and only LR schedulers there
MAX_PICKLED_CLASSES = 32  # a scheduler pickles a few (itself, its optimizer, a defaultdict)

_trust = [False]


def trust_hint():
    return (f"Only if you trust where the file comes from (loading it can run arbitrary code), "
            f"set {TRUST_KEY} True (train.py --trust-checkpoint-code) or {TRUST_ENV}=1.")


@contextmanager
def trusting(enabled):
    """Within the block, checkpoints that need a full unpickle are loaded if `enabled`."""
    previous = _trust[0]
    _trust[0] = bool(enabled)
    try:
        yield
    finally:
        _trust[0] = previous


def trusted():
    return _trust[0] or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


class Placeholder:
    """An inert stand-in for a pickled object: it keeps the pickled state as data and has
    no behaviour (its constructor arguments are dropped: nothing reads them). Subclasses
    are made per pickled class name."""

    pickled_name: str  # set by each subclass (_placeholder_class)

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.pickled_state = state

    def attributes(self):
        """The pickled object's attributes (its `__dict__` when it was saved)."""
        state = getattr(self, "pickled_state", None)
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self):
        return f"<placeholder for {self.pickled_name}>"


def _placeholder_class(name):
    return type(f"Placeholder[{name}]", (Placeholder,), {"pickled_name": name})


def _placeholders(obj, path=()):
    """[(path, placeholder)] for every placeholder in nested dicts, lists and tuples, not
    looking inside placeholders."""
    if isinstance(obj, Placeholder) or isinstance(obj, type) and issubclass(obj, Placeholder):
        return [(path, obj)]  # an object, or a class itself (never called)
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    found = []
    for key, value in items:
        found += _placeholders(value, path + (key,))
    return found


def _where(path):
    return "".join(f"[{k!r}]" for k in path) or "the top level"


def _load_weights_only(path, map_location):
    # Upstream Dassl's pickled scheduler: the classes the weights-only unpickler names as
    # unsupported are rebuilt as placeholders, one load at a time (this works for the zip
    # format and for the legacy one alike), still inside that unpickler: it blocks modules
    # such as os outright. Where each placeholder sits is checked after.
    names = []
    for _ in range(MAX_PICKLED_CLASSES + 1):  # a load to learn each kind, then the last
        try:
            with torch.serialization.safe_globals([(_placeholder_class(n), n) for n in names]):
                obj = torch.load(path, map_location=map_location, weights_only=True)
            break
        except pickle.UnpicklingError as exc:
            new = [n for n in _named_globals(exc) if n not in names]
            if not new:
                raise _refused(path, _blocked_reason(exc, names)) from None
            names += new
    else:
        raise _refused(path, f"it pickles over {MAX_PICKLED_CLASSES} kinds of Python objects, "
                             "where only tensors and numbers belong")
    found = _placeholders(obj)
    unexpected = [(p, o) for p, o in found
                  if p not in LEGACY_OBJECT_PATHS or not o.pickled_name.startswith(LEGACY_MODULE)
                  or isinstance(o, type)]
    if unexpected:
        shown = "; ".join(f"{o.pickled_name} at {_where(p)}" for p, o in unexpected[:5])
        raise _refused(path, f"it pickles Python objects where only tensors and numbers belong "
                             f"({shown})")
    return obj


def _named_globals(exc):
    """The globals an UnpicklingError names, as module.name (torch names builtins bare)."""
    names = re.findall(r"GLOBAL\s+([\w.]+)", str(exc))
    return list(dict.fromkeys(n if "." in n else f"builtins.{n}" for n in names))


def _blocked_reason(exc, allowed=()):
    """What the weights-only loader refused, in our words: torch's own message goes on to
    advise `weights_only=False`, which would run the file's code unasked. `allowed`: the
    names rebuilt as placeholders, named when the unpickler refused to use one."""
    names = [n for n in _named_globals(exc) if n not in allowed]
    names += re.findall(r"[Pp]laceholder(?: for |\[)([\w.]+)", str(exc))
    names = list(dict.fromkeys(names)) or _named_globals(exc)  # blocked even as placeholders
    if names:
        return (f"it holds Python code or objects ({', '.join(names[:5])}) that loading would "
                "run, where only tensors and numbers belong")
    return "it holds Python code or objects that loading would run"


def _refused(path, reason):
    return CheckpointError(f"Refusing to load the checkpoint {path}: {reason}. "
                           f"{trust_hint()}")


def load(path, map_location="auto"):
    """Load a checkpoint file without running code from it (see the module docstring).

    Raises CheckpointError for a missing, truncated or unsafe file, naming it."""
    path = os.fspath(path)
    if map_location == "auto":
        map_location = None if torch.cuda.is_available() else "cpu"
    if not os.path.isfile(path):
        raise MissingCheckpointError(f"No checkpoint file at {path}.")
    try:
        if trusted():
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except pickle.UnpicklingError:
                warnings.warn(f"{path}: loading with a full unpickle because checkpoint code "
                              "is trusted; only do this for files you trust.", stacklevel=2)
                return torch.load(path, map_location=map_location, weights_only=False)
        return _load_weights_only(path, map_location)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError,
            OSError) as exc:
        raise CheckpointError(f"Cannot read the checkpoint {path}: it is truncated or not a "
                              f"PyTorch checkpoint ({type(exc).__name__}: {exc}).") from exc


def legacy_scheduler_state(successor):
    """The state dict of a pickled LR scheduler (a Placeholder), as `state_dict()` would
    have returned it: its attributes without the optimizer. Refuses non-plain values."""
    state = {k: v for k, v in successor.attributes().items() if k != "optimizer"}
    bad = [k for k, v in state.items() if _placeholders(v)]
    if bad:
        raise CheckpointError(f"the pickled scheduler {successor.pickled_name} holds Python "
                              f"objects in {', '.join(bad)}; it cannot be restored safely. "
                              f"{trust_hint()}")
    return state
