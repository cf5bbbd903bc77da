"""scripts/base2new.sh end to end: train on base classes, evaluate on new ones, table."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "base2new.sh"

TINY_CONFIG = """\
DATALOADER:
  TRAIN_X: {BATCH_SIZE: 16}
  TEST: {BATCH_SIZE: 50}
  NUM_WORKERS: 0
INPUT:
  SIZE: (32, 32)
  TRANSFORMS: ["random_resized_crop", "random_flip", "normalize"]
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
OPTIM: {NAME: "sgd", LR: 0.002, MAX_EPOCH: 2, LR_SCHEDULER: "cosine", WARMUP_EPOCH: 1,
        WARMUP_TYPE: "constant", WARMUP_CONS_LR: 1e-5}
USE_CUDA: False
TRAIN: {PRINT_FREQ: 50}
TRAINER:
  COOP: {CTX_INIT: "a photo of a", PREC: "fp32"}
  SAR: {NUM_NOVEL: 16}
"""


def run_script(*args, cwd, **env):
    full_env = dict(os.environ, PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=900)


def table_rows(stdout):
    """{seed: (base, new, hm)} from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line.strip())
        if m:
            rows[int(m[1])] = tuple(float(x) for x in m.groups()[1:])
    return rows


def accuracy(run_dir):
    return json.loads((run_dir / "results.json").read_text())["accuracy"]


@pytest.mark.parametrize("trainer", ["CoOpSAR", pytest.param("KgCoOpSAR", marks=pytest.mark.slow)])
def test_base2new_on_a_fixture_dataset(trainer, caltech_root, tiny_clip_path, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "output"
    env = dict(DATA=str(caltech_root), OUTPUT=str(out), SEEDS="1 2", CFG=str(config))
    weights = ["MODEL.BACKBONE.PATH", str(tiny_clip_path)]
    common = f"caltech101/shots_16/{trainer}/tiny"
    train1 = out / "base2new" / "train_base" / common / "seed1"

    # an interrupted seed-1 run: the runner's own command, stopped after epoch 1 of 2 (its
    # epoch-2 checkpoint and result removed; a run of another config would be refused)
    partial = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--root", str(caltech_root), "--seed", "1",
         "--trainer", trainer, "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
         "--config-file", str(config), "--output-dir", str(train1),
         "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base",
         "TRAIN.CHECKPOINT_FREQ", "1", *weights],
        capture_output=True, text=True, timeout=300)
    assert partial.returncode == 0, partial.stderr
    (train1 / "results.json").unlink()
    (train1 / "prompt_learner" / "model.pth.tar-2").unlink()
    (train1 / "prompt_learner" / "checkpoint").write_text("model.pth.tar-1\n")

    verbose = trainer == "KgCoOpSAR"  # one trainer with VERBOSE=1: Dassl's whole output
    proc = run_script("caltech101", trainer, *weights, cwd=tmp_path,
                      **env, **({"VERBOSE": "1"} if verbose else {}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"caltech101 {trainer} seed 1 base: resuming training from epoch 1" in proc.stdout
    assert ("** Config **" in proc.stdout) == verbose
    if not verbose:  # quiet: a line per run start and end, Dassl's output in each log.txt
        assert len(proc.stdout.splitlines()) < 20 and "epoch [" not in proc.stdout
        logs = sorted(train1.glob("log.txt*"))
        assert len(logs) == 2 and all("** Config **" in p.read_text() for p in logs)
    assert (train1 / "prompt_learner" / "model.pth.tar-2").is_file()
    rows = table_rows(proc.stdout)
    assert sorted(rows) == [1, 2]
    for seed, (base, new, hm) in rows.items():
        assert base == pytest.approx(accuracy(out / "base2new/train_base" / common / f"seed{seed}"), abs=0.01)
        assert new == pytest.approx(accuracy(out / "base2new/test_new" / common / f"seed{seed}"), abs=0.01)
        assert hm == pytest.approx(2 * base * new / (base + new) if base + new else 0, abs=0.01)
    assert "mean" in proc.stdout and "2 of 2 seeds complete" in proc.stdout
    new_result = json.loads((out / "base2new/test_new" / common / "seed2/results.json").read_text())
    assert new_result["subsample_classes"] == "new" and new_result["checkpoint"]["epoch"] == 2

    # finished runs are skipped; a missing evaluation is redone alone
    (out / "base2new/test_new" / common / "seed2/results.json").unlink()
    again = run_script("caltech101", trainer, *weights, cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished earlier") == 3
    assert f"caltech101 {trainer} seed 2 new: evaluating epoch 2" in again.stdout
    assert table_rows(again.stdout) == rows


def test_demo_runs_offline_from_any_directory(tmp_path):
    proc = run_script("demo", "CoOpSAR", cwd=tmp_path, DATA=str(tmp_path / "data"),
                      OUTPUT=str(tmp_path / "out"), SEEDS="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "tiny RANDOM CLIP" in proc.stdout
    assert sorted(table_rows(proc.stdout)) == [1]
    assert (tmp_path / "data" / "sar_demo" / "tiny_clip.pt").is_file()
    assert_no_warnings(proc, tmp_path / "out")


def assert_no_warnings(proc, output):
    """The demo's data suits its own shots, and clip's import is silent: no warning on the
    terminal, no console.txt (output outside the log), no warning in any log."""
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    runs = sorted(output.glob("base2new/*/demo/shots_16/*/demo/seed*"))
    assert runs and not [r for r in runs if (r / "console.txt").exists()]
    for log in (log for r in runs for log in r.glob("log.txt*")):
        noisy = [line for line in log.read_text().splitlines() if "warn" in line.lower()]
        assert not noisy, f"{log}: {noisy}"


def sweep_rows(stdout):
    """{point: (base, new, hm)} from the printed sweep table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^\| (SAR\.WEIGHT=\S+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", line)
        if m:
            rows[m[1]] = tuple(float(x) for x in m.groups()[1:])
    return rows


@pytest.mark.slow  # the sweep's folders, rows and skips: test_runner_identity.py, faster
def test_demo_sweep_runs_each_point_in_its_own_folders_once(tmp_path):
    env = dict(DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path / "out"), SEEDS="1")
    sweep = ["--sweep", "TRAINER.SAR.WEIGHT", "0,50"]
    proc = run_script("demo", "CoOpSAR", *sweep, cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 runs: 4 done" in proc.stdout and "selection on the test split" in proc.stdout
    rows = sweep_rows(proc.stdout)
    assert sorted(rows) == ["SAR.WEIGHT=0", "SAR.WEIGHT=50"]
    assert rows["SAR.WEIGHT=0"] != rows["SAR.WEIGHT=50"]  # two settings, two results
    common = tmp_path / "out/base2new/train_base/demo/shots_16/CoOpSAR"
    for point, (base, _, _) in rows.items():
        assert base == pytest.approx(accuracy(common / f"demo__{point}" / "seed1"), abs=0.01)
    again = run_script("demo", "CoOpSAR", *sweep, cwd=tmp_path, **env)
    assert again.returncode == 0 and "4 runs: 0 done, 4 skipped" in again.stdout
    assert sweep_rows(again.stdout) == rows


def test_bad_arguments(tmp_path):
    proc = run_script("caltech1O1", "CoOpSAR", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown dataset 'caltech1O1'" in proc.stderr
    assert "caltech101" in proc.stderr
    proc = run_script("caltech101", "MyMethod", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown trainer 'MyMethod'" in proc.stderr
    proc = run_script("caltech101", "CoOpSAR", cwd=tmp_path, SEEDS="1 x")
    assert proc.returncode == 2 and "SEEDS='1 x': 'x' is not a whole number" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_script(cwd=tmp_path)
    assert proc.returncode == 2 and "Usage" in proc.stderr


TINY_RUN = ["INPUT.SIZE", "(32, 32)", "USE_CUDA", "False", "DATALOADER.NUM_WORKERS", "0"]


def test_base2new_zeroshot_clip_evaluates_base_and_new(caltech_root, tiny_clip_path, tmp_path):
    out = tmp_path / "output"
    args = ["caltech101", "ZeroshotCLIP", "MODEL.BACKBONE.PATH", str(tiny_clip_path), *TINY_RUN]
    env = dict(DATA=str(caltech_root), OUTPUT=str(out), SEEDS="1 2 3", TAG="tiny")
    proc = run_script(*args, cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "caltech101 ZeroshotCLIP zero-shot base: evaluating (no training)" in proc.stdout
    runs = {sub: out / "base2new" / folder / "caltech101/shots_16/ZeroshotCLIP/vit_b16__tiny/seed1"
            for sub, folder in (("base", "train_base"), ("new", "test_new"))}
    results = {sub: json.loads((d / "results.json").read_text()) for sub, d in runs.items()}
    assert {r["subsample_classes"] for r in results.values()} == {"base", "new"}
    assert all(r["epoch"] == 0 and r["checkpoint"] is None for r in results.values())
    assert not (runs["base"] / "prompt_learner").exists()  # nothing learnable, nothing saved
    # evaluated once per phase whatever the seeds: no seed2/seed3 copies of the same number
    assert not (runs["base"].parent / "seed2").exists()
    base, new, _ = table_rows(proc.stdout)[1]
    assert (base, new) == (pytest.approx(results["base"]["accuracy"], abs=0.01),
                           pytest.approx(results["new"]["accuracy"], abs=0.01))
    again = run_script(*args, cwd=tmp_path, **env)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 2


def test_base2new_cocoopsar_on_a_fixture_dataset(caltech_root, tiny_clip_path, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.replace("BATCH_SIZE: 16", "BATCH_SIZE: 8").replace(
        "MAX_EPOCH: 2", "MAX_EPOCH: 1") + '  COCOOP: {CTX_INIT: "a photo of a", PREC: "fp32"}\n')
    out = tmp_path / "output"
    proc = run_script("caltech101", "CoCoOpSAR", "MODEL.BACKBONE.PATH", str(tiny_clip_path),
                      cwd=tmp_path, DATA=str(caltech_root), OUTPUT=str(out), SEEDS="1",
                      SHOTS="1", CFG=str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    common = "caltech101/shots_1/CoCoOpSAR/tiny/seed1"
    train = out / "base2new/train_base" / common
    assert list(torch_load(train / "prompt_learner/model.pth.tar-1")["state_dict"]) == [
        "ctx", "meta_net.linear1.weight", "meta_net.linear1.bias", "meta_net.linear2.weight",
        "meta_net.linear2.bias"]
    base, new, _ = table_rows(proc.stdout)[1]
    assert base == pytest.approx(accuracy(train), abs=0.01)
    assert new == pytest.approx(accuracy(out / "base2new/test_new" / common), abs=0.01)


def torch_load(path):
    import torch

    return torch.load(path, weights_only=True)
