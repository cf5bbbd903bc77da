"""CLIP's BPE tokenizer without torch.

OpenAI's `clip/__init__.py` imports torch (seconds), but its tokenizer,
`clip/simple_tokenizer.py`, and the vocabulary file beside it need only `ftfy` and `regex`.
This module loads that file from the installed OpenAI package's folder without running the
package's `__init__.py`, so counting tokens (what `sar-prompt novel validate`
does) stays light. It is the same code and vocabulary `clip.tokenize` uses, so the counts
are the same.
"""
import importlib.util
import sys
from pathlib import Path

from sar_prompt.errors import WeightsError

CONTEXT_LENGTH = 77  # CLIP's text context, start and end tokens included
OPENAI_DISTRIBUTIONS = ("openai-clip", "clip")  # PyPI's name; the name of a git install
PRIVATE_NAME = "sar_prompt._clip_simple_tokenizer"

_tokenizer = None


def openai_package_dir():
    """The folder of the installed OpenAI `clip` package, from its distribution's file list
    (a host suite's own `clip/` folder is not an installed distribution), or None."""
    from importlib import metadata

    for name in OPENAI_DISTRIBUTIONS:
        try:
            files = metadata.distribution(name).files or ()
        except metadata.PackageNotFoundError:
            continue
        for file in files:
            if file.as_posix() == "clip/__init__.py":
                folder = Path(file.locate()).resolve().parent
                if (folder / "model.py").is_file() and (folder / "simple_tokenizer.py").is_file():
                    return folder
    return None


def _tokenizer_file():
    """clip/simple_tokenizer.py of OpenAI's package, else of the `clip` first on the path
    (found without importing it: the BPE is the same in every copy)."""
    folder = openai_package_dir()
    if folder is None:
        try:
            spec = importlib.util.find_spec("clip")
        except ValueError:  # a `clip` in sys.modules without a spec
            spec = None
        locations = list(spec.submodule_search_locations or ()) if spec else []
        folder = Path(locations[0]) if locations else None
    if folder is None or not (folder / "simple_tokenizer.py").is_file():
        raise WeightsError("OpenAI's CLIP package is not installed, and its tokenizer is needed "
                           "to count tokens. Install it: pip install openai-clip")
    return folder / "simple_tokenizer.py"


def _tokenizer_module():
    module = sys.modules.get(PRIVATE_NAME)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(PRIVATE_NAME, _tokenizer_file())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its default_bpe() finds the vocabulary beside __file__
    sys.modules[PRIVATE_NAME] = module
    return module


def vocabulary_path() -> Path:
    """CLIP's BPE vocabulary file (bpe_simple_vocab_16e6.txt.gz)."""
    return Path(_tokenizer_module().default_bpe())


def bpe():
    """CLIP's SimpleTokenizer (loaded once)."""
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = _tokenizer_module().SimpleTokenizer()
    return _tokenizer


def class_prompt_text(name: str) -> str:
    """How a class name reads inside a prompt (CoOp's convention: underscores are spaces)."""
    return name.replace("_", " ")


def token_count(text: str) -> int:
    """BPE tokens of `text`, without the start/end tokens."""
    return len(bpe().encode(text))


def too_long(texts):
    """(text, total tokens) for each text that does not fit CLIP's context with start/end tokens."""
    out = []
    for text in texts:
        n = token_count(text) + 2
        if n > CONTEXT_LENGTH:
            out.append((text, n))
    return out
