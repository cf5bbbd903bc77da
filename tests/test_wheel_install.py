"""The package as users install it: the wheel, installed into a virtual environment where
neither the checkout nor its editable install is importable, works on its own. Every module
imports first in a fresh process, the `sar-prompt` command and each subcommand run, the demo
and its table run from an empty folder, and the scripts run from the checkout's root with
the installed copy. Nothing is written into the installed package."""
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# what the wheel puts where: repository folder -> package folder (setup.py's MAPPED)
MAPPED = {"trainers": "sar_prompt/trainers", "datasets": "sar_prompt/datasets",
          "novel_classes": "sar_prompt/novel_classes", "configs": "sar_prompt/configs",
          "sar_prompt": "sar_prompt"}
SUBCOMMANDS = ("run", "base2new", "demo", "train", "results", "diagnose", "data", "novel")


def source_files():
    """The files a clean clone has (tracked, plus new files git does not ignore)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the sources (so the build leaves nothing here)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in source_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(root / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = (root / "dist").glob("sar_prompt-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A new virtual environment holding the wheel. Its dependencies (torch, clip, Dassl, ...)
    come from this interpreter's site-packages as a plain path entry: the .pth files there,
    the editable install's among them, are not processed, so the checkout stays invisible."""
    env_dir = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=120)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return env_dir


def installed_env():
    """The environment a user's shell has: no PYTHONPATH into the checkout (only Dassl's
    test double, when that is what stands in for Dassl)."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and ("dassl_double" in p or not Path(p).resolve().is_relative_to(REPO))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PROGRESS="0")


def run(venv, cwd, *args, timeout=600):
    return subprocess.run([str(venv / "bin" / "python"), *args], cwd=cwd, env=installed_env(),
                          capture_output=True, text=True, timeout=timeout)


def sar_prompt_command(venv, cwd, *args, timeout=600):
    return subprocess.run([str(venv / "bin" / "sar-prompt"), *args], cwd=cwd,
                          env=installed_env(), capture_output=True, text=True, timeout=timeout)


def files_under(folder):
    return {p.relative_to(folder) for p in Path(folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_carries_every_package_file_a_clean_clone_has(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for name in source_files():
        top = name.split("/")[0]
        if top in MAPPED and not name.endswith((".pyc", ".novel-progress")):
            expected.add(f"{MAPPED[top]}/{name.split('/', 1)[1]}")
    assert "sar_prompt/configs/trainers/CoOp/vit_b16_ctxv1.yaml" in expected
    assert "sar_prompt/dassl_glue/compat.py" in expected
    assert expected - names == set()
    assert not [n for n in names if n.split("/")[0] in ("configs", "trainers", "datasets",
                                                        "novel_classes", "tests")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "sar-prompt = sar_prompt.cli:main" in zipfile.ZipFile(wheel).read(
        entry_points).decode()


# Imports each module of the installed package first, in a child forked from a process that
# has imported only third-party libraries (cheap, and sar_prompt's import order is untouched).
FIRST_IMPORTS = r"""
import importlib, json, os, sys, traceback
for heavy in ("torch", "torchvision", "numpy", "PIL", "yacs", "clip", "tabulate", "tqdm",
              "scipy", "sklearn", "matplotlib", "tensorboard", "wilds", "gdown"):
    try:
        importlib.import_module(heavy)
    except Exception:
        pass
import pathlib
root = pathlib.Path(sys.prefix).glob("lib/python*/site-packages/sar_prompt").__next__()
# listed from the files: pkgutil.walk_packages would import every package in this process
names = sorted(".".join(p.relative_to(root.parent).with_suffix("").parts).replace(
    ".__init__", "") for p in root.rglob("*.py") if p.stem != "__main__")
assert "sar_prompt" not in sys.modules
failures = {}
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            message = ""
        except BaseException:
            message = traceback.format_exc(limit=-3)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        failures[name] = message
print(json.dumps({"root": str(root), "modules": names, "failures": failures}))
"""


def test_every_module_of_the_installed_package_imports_first_on_its_own(venv, tmp_path):
    proc = run(venv, tmp_path, "-c", FIRST_IMPORTS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["root"]).resolve().is_relative_to(venv.resolve())
    modules = set(report["modules"])
    for expected in ("sar_prompt.trainers.base", "sar_prompt.datasets.benchmark",
                     "sar_prompt.dassl_glue.trainer_checkpoints", "sar_prompt.config.keys",
                     "sar_prompt.orchestration.runner", "sar_prompt.runs.lock",
                     "sar_prompt.results.formats", "sar_prompt.configs"):
        assert expected in modules
    assert report["failures"] == {}, "\n".join(report["failures"].values())


def test_the_installed_package_and_every_subpackage_resolve_inside_the_venv(venv, tmp_path):
    code = ("import importlib, json, pkgutil, sys, sar_prompt; "
            "subs = [m.name for m in pkgutil.iter_modules(sar_prompt.__path__, 'sar_prompt.') "
            "if m.ispkg]; "
            "print(json.dumps({'files': [importlib.import_module(n).__file__ for n in "
            "['sar_prompt', *subs]], 'subs': subs, 'path': sys.path, "
            "'finders': [type(f).__name__ for f in sys.meta_path]}))")
    proc = run(venv, tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert {"sar_prompt.trainers", "sar_prompt.datasets", "sar_prompt.configs",
            "sar_prompt.novel_classes", "sar_prompt.dassl_glue", "sar_prompt.runs",
            "sar_prompt.orchestration", "sar_prompt.config"} <= set(found["subs"])
    for file in found["files"]:
        assert Path(file).resolve().is_relative_to(venv.resolve()), file
    assert not [p for p in found["path"] if p and Path(p).resolve() == REPO]
    assert not [f for f in found["finders"] if "Editable" in f]


def test_the_sar_prompt_command_and_every_subcommand_answer_help(venv, tmp_path):
    overview = sar_prompt_command(venv, tmp_path, "--help")
    assert overview.returncode == 0, overview.stderr
    for sub in SUBCOMMANDS:
        assert sub in overview.stdout
        proc = sar_prompt_command(venv, tmp_path, sub, "--help")
        assert proc.returncode == 0, f"{sub}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        assert "usage" in proc.stdout.lower(), sub
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_the_installed_command_runs_the_demo_and_its_table_from_an_empty_folder(venv, tmp_path):
    before = files_under(venv)
    proc = sar_prompt_command(venv, tmp_path, "demo", "--seeds", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 runs: 2 done" in proc.stdout
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    for phase in ("train_base", "test_new"):  # under the working directory, by default
        run_dir = tmp_path / "output" / "base2new" / phase / "demo/shots_16/CoOpSAR/demo/seed1"
        assert (run_dir / "results.json").is_file() and not (run_dir / "console.txt").exists()
    proc = sar_prompt_command(venv, tmp_path, "results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CoOpSAR" in proc.stdout and "demo" in proc.stdout
    proc = sar_prompt_command(venv, tmp_path, "results", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    proc = sar_prompt_command(venv, tmp_path, "data", "check", "demo", "--data", "data")
    assert proc.returncode == 0 and "ready for training" in proc.stdout, proc.stdout
    trained = tmp_path / "output/base2new/train_base/demo/shots_16/CoOpSAR/demo/seed1"
    proc = sar_prompt_command(venv, tmp_path, "diagnose", str(trained))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (trained / "diagnose" / "diagnose.json").is_file()
    shipped = venv.glob("lib/python*/site-packages/sar_prompt/novel_classes/dtd.json")
    proc = sar_prompt_command(venv, tmp_path, "novel", "validate", str(next(shipped)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert files_under(venv) == before  # nothing written into the installed package


def test_the_installed_novel_tools_write_to_the_working_directory(venv, tmp_path):
    before = files_under(venv)
    proc = sar_prompt_command(venv, tmp_path, "novel", "vocab", "--dataset", "dtd",
                              "--num-names", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "novel_classes" / "dtd.json").is_file()
    assert files_under(venv) == before


def test_the_scripts_run_from_the_checkout_root_with_the_installed_copy(venv, tmp_path):
    """From the checkout's root the checkout's sar_prompt/ (no trainers/ or configs/ inside)
    must not shadow the installed package: the scripts and their workers leave the working
    directory off sys.path."""
    env = dict(installed_env(), PYTHON=str(venv / "bin" / "python"), OUTPUT=str(tmp_path))
    proc = subprocess.run(["bash", "scripts/base2new_all.sh", "CoOpSAR", "--datasets",
                           "caltech101", "--seeds", "1", "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = venv.resolve() / "lib"
    assert "caltech101 CoOpSAR seed 1" in proc.stdout
    assert str(config) in proc.stdout  # the installed configs, not the checkout's
    assert f"{REPO}/configs/" not in proc.stdout


def test_a_source_folder_shadowing_the_installed_copy_says_what_to_do(venv, tmp_path):
    """`python -c 'import sar_prompt'` in the checkout's root imports its sar_prompt/ before
    the installed copy: the error names the fix instead of failing later, obscurely."""
    proc = run(venv, REPO, "-c", "import sar_prompt")
    assert proc.returncode != 0
    assert "is not installed" in proc.stderr and "pip install -e" in proc.stderr
