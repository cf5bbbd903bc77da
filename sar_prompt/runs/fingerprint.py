"""A run's fingerprint: what produced its number, written as `fingerprint.json` in every run
folder when the trainer is built, so two results can be compared and a difference explained.

It holds the resolved config, the package versions, the git revision of sar-prompt, the
device and precision, and sha256 digests of the data the run read: the split file(s) (or
ImageNet's folder listing), the few-shot sample, the novel-class file and the CLIP weights.

`comparable(fp)` is the part that must agree between runs that are averaged together (seeds
of one dataset and trainer); `digest(fp)` names it in a few characters, and `differences`
says which entries two fingerprints disagree on. The config part of `comparable` is a run's
identity (identity.py) less the seed and the base/new half; package versions, the git
revision, the device and the weights' digest are compared here only: they are reported when
runs are averaged, but never stop a run from resuming or being skipped.
"""
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from sar_prompt.errors import SarPromptError
from sar_prompt.runs.identity import LOCATION_KEYS, config_dict, config_identity  # noqa: F401
from sar_prompt.runs.identity import flatten as _flatten
from sar_prompt.io import DuplicateKeyError, atomic_write_json, read_json

FILE = "fingerprint.json"
SCHEMA = "sar-prompt/fingerprint"
VERSION = 1
PACKAGES = ("torch", "torchvision", "numpy", "openai-clip", "sar-prompt", "yacs", "Pillow")
# Config entries that differ between runs that belong together: where files are (not part
# of a run's identity either, see identity.py), the seed and the base/new half.
PER_RUN_KEYS = ("SEED", "DATASET.SUBSAMPLE_CLASSES")
RUN_SPECIFIC_KEYS = LOCATION_KEYS + PER_RUN_KEYS


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_entry(path):
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        return {"file": str(path), "sha256": None}
    return {"file": str(path), "sha256": _sha256_file(path)}


def package_versions():
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    dassl = sys.modules.get("dassl")
    try:
        versions["dassl"] = importlib.metadata.version("dassl")
    except importlib.metadata.PackageNotFoundError:
        versions["dassl"] = None
    if dassl is not None and "dassl_double" in str(getattr(dassl, "__file__", "")):
        versions["dassl"] = "test double (tests/dassl_double)"
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["cuda"] = torch.version.cuda
        versions["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return versions


def git_revision(package_dir=Path(__file__).resolve().parent):
    """{"revision", "dirty"} of the sar-prompt checkout this package runs from, or None when
    it is not a git checkout (an installed wheel)."""
    repo = package_dir.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=20, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != repo:
            return None  # the package sits inside some other repository (a venv in it)
        return {"revision": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def device_info(device):
    import torch

    info = {"type": device.type, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info.update(name=torch.cuda.get_device_name(index), count=torch.cuda.device_count())
    else:
        info.update(name=platform.processor() or platform.machine(), count=os.cpu_count())
    return info


def clip_weights(cfg):
    """The CLIP weights file the run loaded and its sha256, or None for other backbones."""
    from sar_prompt.errors import SarPromptError
    from sar_prompt.modeling.backbone import resolve_weights

    try:
        return _file_entry(resolve_weights(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH))
    except (SarPromptError, OSError, AttributeError, KeyError):
        return None


def collect(trainer, eval_only=False):
    cfg, dataset = trainer.cfg, trainer.dm.dataset
    novel_file = getattr(trainer, "novel_file", None)
    precision = getattr(trainer, "precision", None)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": {"trainer": cfg.TRAINER.NAME, "dataset": cfg.DATASET.NAME, "seed": cfg.SEED,
                "num_shots": cfg.DATASET.NUM_SHOTS,
                "subsample_classes": cfg.DATASET.get("SUBSAMPLE_CLASSES"),
                "eval_only": bool(eval_only)},
        "config": config_dict(cfg),
        "packages": package_versions(),
        "git": git_revision(),
        "device": device_info(trainer.device),
        "precision": precision,
        "data": {
            "split_files": list(getattr(dataset, "source_names", []) or []),
            "split_sha256": getattr(dataset, "source_hash", None),
            "fewshot_file": str(dataset.fewshot_file) if getattr(dataset, "fewshot_file", None)
            else None,
            "fewshot_sha256": getattr(dataset, "fewshot_sha256", None),
        },
        "novel_classes": _file_entry(novel_file),
        "clip_weights": clip_weights(cfg),
    }


def write(trainer, eval_only=False):
    path = Path(trainer.cfg.OUTPUT_DIR) / FILE
    atomic_write_json(path, collect(trainer, eval_only))
    print(f"[sar_prompt] fingerprint written to {path}")
    return path


class FingerprintUnreadable(SarPromptError):
    """A run folder's fingerprint.json is there but cannot be read (truncated, not JSON, not
    a fingerprint): what made the run is unknown, as without one, but the file is not
    missing."""

    def __init__(self, path, why):
        super().__init__(f"{path} is unreadable: {why}")
        self.why = why


def read(run_dir, strict=False):
    """The fingerprint of a run folder, or None when absent (or, unless `strict`,
    unreadable). A file that names a key twice is refused (SarPromptError naming the file
    and the key): which value describes the run is unknown. `strict`: an unreadable file
    (truncated, not JSON, not a fingerprint) raises FingerprintUnreadable, naming it."""
    path = Path(run_dir) / FILE
    try:
        data = read_json(path)
    except DuplicateKeyError as exc:
        raise SarPromptError(f"{exc} A fingerprint must describe its run unambiguously.") \
            from None
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if strict and path.exists():
            why = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else \
                f"truncated or not JSON ({exc})"
            raise FingerprintUnreadable(path, why) from None
        return None
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        return data
    if strict:
        raise FingerprintUnreadable(path, f'not a sar-prompt fingerprint (no "schema": '
                                          f'"{SCHEMA}" in it)')
    return None


def comparable(fp):
    """{entry: value} of what must agree between runs averaged together (flat keys such as
    config.OPTIM.LR, packages.torch, git.revision, data.split_sha256)."""
    config = config_identity(fp.get("config"))  # a run's identity, less seed and half
    for key in PER_RUN_KEYS:
        config.pop(key, None)
    device = fp.get("device") or {}
    parts = {
        "config": config,
        "packages": fp.get("packages") or {},
        "git": fp.get("git") or {},
        "device": {"type": device.get("type"), "name": device.get("name")},
        "precision": fp.get("precision"),
        "data": {"split_sha256": (fp.get("data") or {}).get("split_sha256")},
        "novel_classes": {"sha256": (fp.get("novel_classes") or {}).get("sha256")},
        "clip_weights": {"sha256": (fp.get("clip_weights") or {}).get("sha256")},
    }
    return _flatten(parts)


def digest(fp):
    """A short name of `comparable(fp)`: equal digests, comparable runs."""
    text = json.dumps(comparable(fp), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def differences(a, b):
    """The comparable entries on which fingerprints `a` and `b` disagree, sorted."""
    ca, cb = comparable(a), comparable(b)
    return sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
