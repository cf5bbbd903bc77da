"""Matching a saved prompt-learner state dict to the learner a run builds: ours, or one
saved by the reference CoOp, KgCoOp or CoCoOp code (their checkpoints of `prompt_learner`),
or by the reference MaPLe or PromptSRC code (checkpoints of the whole model).

Only the learner's own state-dict keys (its learnable tensors) are taken; everything else
is listed as ignored with the reason: the reference code also saves the class-dependent
token embeddings (`token_prefix`, `token_suffix`, rebuilt here for the current classes,
which is what lets a base-class checkpoint evaluate on new classes) and tensors its method
never uses (KgCoOp saves `bias_vectors` and `meta_net.*`); MaPLe's and PromptSRC's also
hold all of CLIP's frozen weights (and PromptSRC's a second copy of its image encoder).
A tensor the learner needs
that is missing, or has another shape, stops with a message naming the file and the key.

This works on a state dict already loaded (however it was unpickled), so it composes with
any checkpoint loader. A learner whose keys a reference names differently lists them in a
`reference_keys` attribute: {our key: (reference key, ...)}, and the key prefixes under
which a reference saves frozen CLIP weights in `reference_frozen_prefixes`.
"""
from dataclasses import dataclass, field

import torch

from sar_prompt.errors import CheckpointError

# Token embeddings of the class names the checkpoint was trained on; never loaded.
CLASS_DEPENDENT_KEYS = ("token_prefix", "token_suffix", "token_midfix")


@dataclass
class MatchedState:
    state: dict  # our key -> tensor, ready for `load_state_dict` (strict)
    ignored: list = field(default_factory=list)  # (saved key, why)

    def describe_ignored(self):
        by_reason = {}
        for key, why in self.ignored:
            by_reason.setdefault(why, []).append(key)
        return "; ".join(f"{_summarise(keys)} ({why})" for why, keys in by_reason.items())


def _summarise(keys, most=6):
    """Keys as a short list: beyond `most`, those sharing a first component as `prefix.*`."""
    if len(keys) <= most:
        return ", ".join(keys)
    groups = {}
    for key in keys:
        groups.setdefault(key.split(".")[0], []).append(key)
    return ", ".join(group[0] if len(group) == 1 else f"{prefix}.* ({len(group)} keys)"
                     for prefix, group in groups.items())


def _strip_module(key):
    return key[len("module."):] if key.startswith("module.") else key


def match_state_dict(saved, module, source, method="this method"):
    """Select from `saved` (a state dict) the tensors `module` holds, converted to its dtypes.

    Raises CheckpointError, naming `source` (the file), when one is missing or has another
    shape; the rest of `saved` is returned as `ignored`, each key with the reason."""
    saved = {_strip_module(k): v for k, v in saved.items()}
    aliases = getattr(module, "reference_keys", {})
    frozen = tuple(getattr(module, "reference_frozen_prefixes", ()))
    expected = module.state_dict()
    state, used, missing, wrong = {}, set(), [], []
    for key, ours in expected.items():
        found = next((k for k in (key, *aliases.get(key, ())) if k in saved), None)
        if found is None:
            missing.append(key)
            continue
        value = saved[found]
        used.add(found)
        if not torch.is_tensor(value) or value.shape != ours.shape:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            wrong.append(f"{found}: {shape} in the checkpoint, {tuple(ours.shape)} here")
            continue
        state[key] = value.to(dtype=ours.dtype)
    if missing:
        present = ", ".join(sorted(saved)) or "nothing"
        raise CheckpointError(
            f"{source} lacks {', '.join(missing)}, which {method} needs (the checkpoint holds: "
            f"{present}). It was probably trained with another method; evaluate it with the "
            "trainer that wrote it.")
    if wrong:
        raise CheckpointError(
            f"{source} does not fit {method} as configured: {'; '.join(wrong)}. Use the "
            "trainer settings it was trained with (e.g. the number of context tokens, "
            "N_CTX / CTX_INIT, or a class-specific context, CSC).")
    ignored = []
    for key in saved:
        if key in used:
            continue
        if key.split(".")[-1] in CLASS_DEPENDENT_KEYS:
            why = "token embeddings of the classes it was trained on; rebuilt for this run's classes"
        elif key.startswith(frozen):
            why = "frozen CLIP weights (saved with the whole model); CLIP comes from MODEL.BACKBONE"
        else:
            why = f"not used by {method}"
        ignored.append((key, why))
    return MatchedState(state, ignored)
