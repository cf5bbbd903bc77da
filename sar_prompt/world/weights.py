"""The world's CLIP weights: shipped compact with the package, written out whole for a run.

The compact file holds every tensor of the state dict in fp16 (as OpenAI ships CLIP, and as
`clip.model.build_model` casts them anyway) except the token embedding, of which it holds
only the rows of words the world writes: the others are zero (pretrain.build), so the
whole state dict is rebuilt exactly.
"""
import hashlib
import io
from importlib import resources
from pathlib import Path

import torch

from sar_prompt.errors import WeightsError
from sar_prompt.io import atomic_write_bytes

SHIPPED = "world_clip.pt"  # package data of sar_prompt.world
FORMAT = "sar-prompt/world-clip"
TOKENS = "token_embedding.weight"


def shipped_path() -> Path:
    return Path(str(resources.files("sar_prompt.world").joinpath(SHIPPED)))


def compact(state, settings):
    """The compact form of a pretrained state dict (fp16), with its pretraining settings."""
    table = state[TOKENS]
    rows = torch.nonzero(table.abs().sum(dim=1)).flatten()
    return {"format": FORMAT, "settings": dict(settings), "vocab_size": table.shape[0],
            "token_ids": rows, "token_rows": table[rows].clone(),
            "state_dict": {k: v for k, v in state.items() if k != TOKENS}}


def to_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def read_compact(path=None):
    path = Path(path) if path else shipped_path()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"the world's CLIP weights {path} are missing: make them with "
                           "`sar-prompt world pretrain`.") from None
    except Exception as exc:
        raise WeightsError(f"cannot read the world's CLIP weights {path}: {exc}. Make them "
                           "again with `sar-prompt world pretrain`.") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a world CLIP file ({FORMAT}); make it with "
                           "`sar-prompt world pretrain`.")
    return obj


def expand(obj):
    """The whole state dict `clip.model.build_model` reads."""
    rows = obj["token_rows"]
    table = torch.zeros(obj["vocab_size"], rows.shape[1], dtype=rows.dtype)
    table[obj["token_ids"]] = rows
    state = dict(obj["state_dict"])
    state[TOKENS] = table
    return state


def write_full(path, obj):
    """The whole state dict, for MODEL.BACKBONE.PATH; returns its sha256."""
    data = to_bytes(expand(obj))
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def digest(obj):
    return hashlib.sha256(to_bytes(obj)).hexdigest()
