"""Where the torch-free token counter finds CLIP's tokenizer (the installed OpenAI package,
under either distribution name, else the `clip` on the path) and what it counts."""
from importlib import metadata
from pathlib import Path

import pytest

from sar_prompt.errors import WeightsError
from sar_prompt.modeling import bpe


def installed_clip_folder():
    import importlib.util

    return Path(importlib.util.find_spec("clip").submodule_search_locations[0]).resolve()


def only_distribution(monkeypatch, present):
    """importlib.metadata sees OpenAI's package only under the name `present` (or none)."""
    real = metadata.distribution("openai-clip")

    def distribution(name):
        if name == present:
            return real
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", distribution)


def test_the_openai_package_is_found_by_its_pypi_name_or_a_git_installs():
    assert bpe.openai_package_dir() == installed_clip_folder()


@pytest.mark.parametrize("name", ["openai-clip", "clip"])
def test_either_distribution_name_finds_the_package(monkeypatch, name):
    only_distribution(monkeypatch, name)
    assert bpe.openai_package_dir() == installed_clip_folder()


def test_without_a_distribution_the_clip_on_the_path_gives_the_tokenizer(monkeypatch):
    only_distribution(monkeypatch, None)
    assert bpe.openai_package_dir() is None
    assert bpe._tokenizer_file() == installed_clip_folder() / "simple_tokenizer.py"


def test_no_clip_anywhere_is_a_clear_error(monkeypatch):
    import importlib.util

    only_distribution(monkeypatch, None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError) as err:
        bpe._tokenizer_file()
    assert str(err.value) == ("OpenAI's CLIP package is not installed, and its tokenizer is "
                              "needed to count tokens. Install it: pip install openai-clip")


def test_counts_and_the_77_token_limit():
    assert bpe.vocabulary_path().name == "bpe_simple_vocab_16e6.txt.gz"
    assert bpe.bpe() is bpe.bpe()  # loaded once
    assert bpe.class_prompt_text("annual_crop_land") == "annual crop land"
    assert bpe.token_count("a photo of a dog.") == 6
    fits, over = " ".join(["dog"] * 75), " ".join(["dog"] * 76)  # + start and end tokens
    assert bpe.too_long(["dog", fits, over, over + " cat"]) == [(over, 78), (over + " cat", 79)]


class FakeFile:
    def __init__(self, path):
        self.path = path

    def as_posix(self):
        return "clip/__init__.py"

    def locate(self):
        return self.path


@pytest.mark.parametrize("has", [("model.py",), ("simple_tokenizer.py",),
                                 ("model.py", "simple_tokenizer.py")])
def test_a_clip_folder_without_openais_model_and_tokenizer_is_not_openais(tmp_path,
                                                                          monkeypatch, has):
    folder = tmp_path / "clip"
    folder.mkdir()
    for name in ("__init__.py", *has):
        (folder / name).write_text("")
    listed = type("Distribution", (), {"files": [FakeFile(folder / "__init__.py")]})
    monkeypatch.setattr(metadata, "distribution", lambda name: listed)
    expected = folder.resolve() if len(has) == 2 else None
    assert bpe.openai_package_dir() == expected


def test_the_tokenizer_module_is_loaded_once_under_a_private_name():
    import sys

    module = bpe._tokenizer_module()
    assert bpe._tokenizer_module() is module is sys.modules["sar_prompt._clip_simple_tokenizer"]


def test_the_installed_package_wins_over_a_host_suites_own_clip_folder(tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util

    installed = installed_clip_folder() / "simple_tokenizer.py"
    decoy = tmp_path / "clip"
    decoy.mkdir()
    for name in ("__init__.py", "simple_tokenizer.py"):
        (decoy / name).write_text("")
    spec = importlib.machinery.ModuleSpec("clip", None, is_package=True)
    spec.submodule_search_locations = [str(decoy)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert bpe._tokenizer_file() == installed
    only_distribution(monkeypatch, None)  # no installed package: the one on the path
    assert bpe._tokenizer_file() == decoy / "simple_tokenizer.py"
