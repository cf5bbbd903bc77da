"""Load OpenAI CLIP once, for every trainer: by name from the CLIP cache (downloading it
when online) or from a local file, in the precision the run asks for."""
import hashlib
import importlib.util
import inspect
import os
import pickle
import shutil
import sys
import types
import urllib.request
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch

from sar_prompt.errors import ConfigError, WeightsError
from sar_prompt.io import atomic_writer
from sar_prompt.modeling.bpe import openai_package_dir

WEIGHTS_ENV = "SAR_PROMPT_CLIP_WEIGHTS"  # a local weights file, for any backbone name
CACHE_ENV = "SAR_PROMPT_CLIP_CACHE"  # where named weights are cached (default ~/.cache/clip)


PRIVATE_NAME = "sar_prompt._openai_clip"  # where OpenAI's package lives when another shadows it

_openai_clip = None
_openai_package_dir = openai_package_dir


def _module_dir(module):
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent if file else None


def _is_openai_clip(module) -> bool:
    """OpenAI's `build_model(state_dict)` takes one argument; the copies MaPLe and PromptSRC
    ship take their prompt design as a second one."""
    try:
        params = inspect.signature(module.model.build_model).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return False
    required = [p for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


@contextmanager
def _pkg_resources_for_clip():
    """OpenAI's `clip` imports `pkg_resources` only for `packaging`, and setuptools 81+ no
    longer ships `pkg_resources`: lend it a stand-in for the import. Where setuptools still
    ships it, importing it warns that it is deprecated (and about namespace packages it
    scans); those warnings concern clip's import, not the user's run, so they are silenced
    for that import only."""
    lent = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        warnings.filterwarnings("ignore", message=r"Deprecated call to `pkg_resources\.",
                                category=DeprecationWarning)
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            import packaging.version

            shim = types.ModuleType("pkg_resources")
            shim.packaging = packaging
            sys.modules["pkg_resources"] = shim
            lent = True
        try:
            yield
        finally:
            if lent:
                del sys.modules["pkg_resources"]


def _load_private(folder: Path):
    """Import the package in `folder` as `PRIVATE_NAME` (its imports are relative), leaving
    `sys.modules["clip"]` to whoever owns it."""
    spec = importlib.util.spec_from_file_location(
        PRIVATE_NAME, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PRIVATE_NAME]
        raise
    return module


def import_clip():
    """OpenAI's `clip` package, whichever `clip` comes first on sys.path.

    MaPLe's and PromptSRC's repositories ship their own modified top-level `clip/`, which
    shadows OpenAI's when their train.py runs. Our backbone always builds from OpenAI's:
    the plain `import clip` when that is OpenAI's, else the installed OpenAI package loaded
    from its own folder under a private name (the host keeps its `clip`)."""
    global _openai_clip
    if _openai_clip is not None:
        return _openai_clip
    folder = _openai_package_dir()
    with _pkg_resources_for_clip():
        try:
            spec = importlib.util.find_spec("clip")
        except ValueError:  # a `clip` in sys.modules without a spec
            spec = None
        visible = Path(spec.origin).resolve().parent if spec and spec.origin else None
        if folder is not None and visible != folder:
            module = _load_private(folder)
        else:
            import clip as module
    if not _is_openai_clip(module):
        where = _module_dir(module) or "an unknown place"
        raise WeightsError(
            f"The `clip` package at {where} is not OpenAI's (its model.build_model takes extra "
            "arguments, as the modified copies in the MaPLe and PromptSRC repositories do), and "
            "OpenAI's is not installed. Install it: pip install openai-clip")
    _openai_clip = module
    return module


def available_models():
    return list(import_clip().clip._MODELS)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "clip").expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, timeout: float = 60.0):
    """Stream into a temporary file, then rename: an interrupted download never looks finished."""
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_writer(target) as out:
        shutil.copyfileobj(response, out, 1 << 20)


def resolve_weights(backbone_name: str, path: str = "") -> Path:
    """The weights file to load: `path` (MODEL.BACKBONE.PATH), else $SAR_PROMPT_CLIP_WEIGHTS,
    else the cached OpenAI file for `backbone_name`, downloaded into the cache if missing."""
    if path:
        file = Path(path).expanduser()
        if file.is_dir():
            raise WeightsError(f"MODEL.BACKBONE.PATH is {path!r}, a folder. Point it at the "
                               "CLIP weights file itself (e.g. .../ViT-B-16.pt), or set it to "
                               f"\"\" to load {backbone_name!r} from the CLIP cache.")
        if not file.is_file():
            raise WeightsError(f"MODEL.BACKBONE.PATH is {path!r}, but no file is there. "
                               "Point it at a CLIP weights file, or set it to \"\" to load "
                               f"{backbone_name!r} from the CLIP cache.")
        return file
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        file = Path(env).expanduser()
        if file.is_dir():
            raise WeightsError(f"${WEIGHTS_ENV} is {env!r}, a folder. Point it at the CLIP "
                               "weights file itself, or unset it.")
        if not file.is_file():
            raise WeightsError(f"${WEIGHTS_ENV} is {env!r}, but no file is there. Point it at a "
                               "CLIP weights file or unset it.")
        return file

    models = import_clip().clip._MODELS
    if backbone_name not in models:
        raise ConfigError(f"MODEL.BACKBONE.NAME is {backbone_name!r}, not an OpenAI CLIP model. "
                          f"Choose one of {', '.join(models)}, or give a weights file in "
                          "MODEL.BACKBONE.PATH.")
    url = models[backbone_name]
    expected_sha = url.split("/")[-2]
    target = cache_dir() / os.path.basename(url)
    if target.is_file():
        if _sha256(target) == expected_sha:
            return target
        warnings.warn(f"{target} does not match its SHA256 checksum; downloading it again.")
    print(f"[sar_prompt] downloading CLIP {backbone_name} to {target}")
    try:
        _download(url, target)
    except OSError as exc:
        raise WeightsError(
            f"CLIP weights for {backbone_name!r} are not in the cache ({target}) and could not "
            f"be downloaded ({exc}). On a machine with internet, download {url} into "
            f"{target.parent} (or set ${CACHE_ENV} to the folder that holds it), or point "
            f"MODEL.BACKBONE.PATH or ${WEIGHTS_ENV} at a local weights file."
        ) from exc
    if _sha256(target) != expected_sha:
        raise WeightsError(f"Downloaded {target}, but its SHA256 checksum does not match "
                           f"{expected_sha}. Delete it and try again.")
    return target


def _is_torchscript(file: Path) -> bool:
    """TorchScript archives are zip files with a `code/` folder; torch.save files have none."""
    try:
        with zipfile.ZipFile(file) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_state_dict(file: Path) -> dict:
    """A CLIP state dict from an OpenAI JIT archive or from a plain (possibly wrapped) state dict."""
    if _is_torchscript(file):  # OpenAI's released files
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # jit.load is deprecated
            try:
                return torch.jit.load(str(file), map_location="cpu").state_dict()
            except RuntimeError as exc:
                raise WeightsError(f"Cannot read the CLIP archive {file}: {exc}. Re-download it.") \
                    from exc
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        obj = _load_trusted_or_refuse(file, exc)
    except Exception as exc:
        raise WeightsError(f"Cannot read CLIP weights from {file}: {exc}. The file is neither an "
                           "OpenAI CLIP archive nor a saved state dict; re-download it.") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or "token_embedding.weight" not in obj:
        raise WeightsError(f"{file} holds no CLIP state dict (no 'token_embedding.weight').")
    return obj


def _load_trusted_or_refuse(file, exc):
    """A weights file that needs a full unpickle loads only when the user trusts checkpoint
    code (the same switch as for checkpoints), else it is refused, saying why and how."""
    from sar_prompt.modeling.torch_load import _blocked_reason, trust_hint, trusted

    try:  # what it pickles besides tensors; a file torch cannot even list is not weights
        pickled = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:
        pickled = []
    if not pickled:
        raise WeightsError(f"Cannot read CLIP weights from {file}: the file is neither an "
                           "OpenAI CLIP archive nor a saved state dict; re-download it.") \
            from None
    if not trusted():
        raise WeightsError(f"Refusing to load the CLIP weights {file}: {_blocked_reason(exc)}. "
                           f"{trust_hint()}") from None
    warnings.warn(f"{file}: loading with a full unpickle because checkpoint code is trusted; "
                  "only do this for files you trust.", stacklevel=3)
    return torch.load(file, map_location="cpu", weights_only=False)


def load_clip(backbone_name: str, path: str = "", precision: str = "fp32"):
    """Build OpenAI's CLIP model on CPU. fp16 keeps CLIP's half-precision weights; fp32 and amp
    (which autocasts per step) convert them to fp32."""
    clip = import_clip()
    file = resolve_weights(backbone_name, path)
    try:
        model = clip.model.build_model(read_state_dict(file))
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"{file} is not a CLIP model clip.model.build_model can rebuild: {exc}") \
            from exc
    if precision != "fp16":
        model.float()
    return model.eval()
