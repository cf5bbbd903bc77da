"""A dry run answers at once: it resolves every run's config (the epoch an evaluation loads,
whether a folder holds another config's run) without importing Dassl's engine or torch,
and says which dataset folders the runs still to do need and are missing."""
import io
import subprocess
import sys
from dataclasses import replace

from conftest import REPO
from sar_prompt.config import command_line
from sar_prompt.orchestration import bench
from sar_prompt.orchestration import runner
from sar_prompt.runs import identity
from test_import_cost import imported_modules
from test_runner import make_bench, settings

HEAVY = {"dassl", "torch", "torchvision", "clip", "sklearn"}


def dry_run(*args):
    return ["-m", "sar_prompt", "run", "base2new", *args, "--dry-run"]


def test_a_dry_run_imports_neither_dassl_nor_torch(tmp_path):
    names = imported_modules(*dry_run("CoOpSAR", "--seeds", "1", "--output",
                                      str(tmp_path / "out"), "--data", str(tmp_path / "data")))
    assert not HEAVY & names, sorted(HEAVY & names)


def test_a_dry_run_over_existing_runs_imports_neither(tmp_path):
    """Folders with runs in them: their configs are compared with the requested ones, still
    without Dassl's engine (an edited config file is found out)."""
    config = tmp_path / "mine.yaml"
    config.write_text((REPO / "configs/trainers/demo.yaml").read_text())
    b = replace(make_bench(tmp_path, datasets=("eurosat",), seeds=(1,)), config=str(config))
    outcomes = runner.run_local(b.jobs(), settings(), out=io.StringIO())
    assert [o.status for o in outcomes] == ["done", "done"]
    config.write_text(config.read_text().replace("MAX_EPOCH: 2", "MAX_EPOCH: 7"))
    args = dry_run("CoOpSAR", "--datasets", "eurosat", "--seeds", "1", "--config", str(config),
                   "--output", b.output, "--data", b.data)
    names = imported_modules(*args)
    assert not HEAVY & names, sorted(HEAVY & names)
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                         timeout=300).stdout
    assert "ANOTHER CONFIG'S FOLDER (OPTIM.MAX_EPOCH: 2 -> 7)" in out


def test_the_light_config_is_the_config(tmp_path):
    """Dassl's defaults read from its config file alone are the ones its package gives, so
    a config resolved without Dassl is the config train.py resolves."""
    from dassl.config import get_cfg_default

    assert command_line._dassl_defaults_file().clone() == get_cfg_default()
    argv = ["--data", str(tmp_path), "--seed", "1", "--trainer", "CoOpSAR",
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--config", str(REPO / "configs/trainers/CoOp/vit_b16_ctxv1.yaml"),
            "--output", str(tmp_path / "o"), "DATASET.NUM_SHOTS", "16"]
    assert identity.requested_from_argv(argv, sar=True, light=True) == \
        identity.requested_from_argv(argv)


def test_a_dry_run_names_the_missing_dataset_folders(tmp_path, capsys):
    (tmp_path / "data" / "dtd").mkdir(parents=True)  # there, but without its files
    assert bench.main(["base2new", "CoOp", "--datasets", "eurosat", "dtd", "--seeds", "1",
                       "--data", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
                       "--dry-run"]) == 0
    data_lines = [line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("data: ")]
    assert data_lines == [
        f"data: eurosat: {tmp_path / 'data' / 'eurosat'} is missing; sar-prompt data download "
        f"eurosat --data {tmp_path / 'data'}",
        f"data: dtd: {tmp_path / 'data' / 'dtd'} is incomplete; sar-prompt data check dtd "
        f"--data {tmp_path / 'data'} says what is missing"]
    assert not (tmp_path / "out").exists()
