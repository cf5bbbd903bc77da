"""A normal (non-editable) install works: the wheel carries every file read at run time, and
the installed copy, imported from outside the checkout, runs a dry run, the demo and the
novel-class tools, writing only to the working directory or the paths it is given."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# what setup.py needs to build the wheel (copied, so the build leaves nothing in the checkout)
SOURCES = ("setup.py", "pyproject.toml", "README.md", "sar_prompt", "trainers", "datasets",
           "novel_classes", "configs")
# repository folder -> where the wheel puts its files (every file there is read at run time)
DATA_FOLDERS = {"configs": "sar_prompt/configs", "novel_classes": "sar_prompt/novel_classes",
                "sar_prompt/classnames": "sar_prompt/classnames",
                "sar_prompt/novel/prompts": "sar_prompt/novel/prompts"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", ".novel-progress"))
        else:
            shutil.copy2(path, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(root / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = (root / "dist").glob("sar_prompt-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return target


def installed(site, cwd, *args, timeout=600):
    """`python ARGS` in `cwd` with the installed copy first on the path (before the editable
    install of the checkout; Dassl, or its test double, after it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(site), os.environ.get("PYTHONPATH")) if p), PROGRESS="0")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def files_under(folder):
    return {p.relative_to(folder) for p in Path(folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_carries_every_file_read_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, packaged in DATA_FOLDERS.items():
        expected = {f"{packaged}/{p.as_posix()}" for p in files_under(REPO / folder)
                    if p.suffix != ".py" and p.name != ".novel-progress"}
        assert expected and expected <= names, sorted(expected - names)
    assert "sar_prompt/configs/trainers/CoOp/vit_b16_ctxv1.yaml" in names
    assert not [n for n in names if n.split("/")[0] in ("configs", "trainers", "datasets")]


def test_the_wheel_declares_the_sar_prompt_command(wheel, site, tmp_path):
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "sar-prompt = sar_prompt.cli:main" in archive.read(entry_points).decode()
    proc = installed(site, tmp_path, "-m", "sar_prompt", "run", "base2new", "CoOpSAR",
                     "--datasets", "caltech101", "--seeds", "1", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "caltech101 CoOpSAR seed 1" in proc.stdout


def test_the_installed_copy_runs_a_dry_run_from_another_directory(site, tmp_path):
    proc = installed(site, tmp_path, "-c", "import sar_prompt; print(sar_prompt.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(site.resolve())
    proc = installed(site, tmp_path, "-m", "sar_prompt.orchestration.bench", "base2new", "CoOpSAR",
                     "--datasets", "caltech101", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = site / "sar_prompt" / "configs" / "trainers" / "CoOp" / "vit_b16_ctxv1.yaml"
    assert str(config.resolve()) in proc.stdout
    assert "caltech101 CoOpSAR seed 3" in proc.stdout


def test_the_installed_copy_runs_the_demo(site, tmp_path):
    before = files_under(site)
    data, output = tmp_path / "data", tmp_path / "output"
    proc = installed(site, tmp_path, "-m", "sar_prompt.orchestration.bench", "base2new", "CoOpSAR",
                     "--datasets", "demo", "--seeds", "1", "--data", str(data),
                     "--output", str(output), "--table", "seeds")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 runs: 2 done" in proc.stdout
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    for phase in ("train_base", "test_new"):
        run = output / "base2new" / phase / "demo/shots_16/CoOpSAR/demo/seed1"
        assert (run / "results.json").is_file() and not (run / "console.txt").exists()
    assert files_under(site) == before  # nothing written into the installed package


def test_the_installed_novel_tools_write_to_the_working_directory(site, tmp_path):
    before = files_under(site)
    proc = installed(site, tmp_path, "-m", "sar_prompt.novel", "vocab", "--dataset", "dtd",
                     "--num-names", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "novel_classes" / "dtd.json").is_file()
    assert files_under(site) == before  # nothing written into the installed package
