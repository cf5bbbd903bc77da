"""Inputs checked before anything is spawned or built, results refused when they are not
what their run folder says, JSON with duplicate keys refused, and the file-system faults
of writing tables: each says what is wrong (file, key, value) and how to fix it, exit 2."""
import errno
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import REPO
from sar_prompt import results
from sar_prompt.orchestration import bench
from sar_prompt.orchestration import preflight
from sar_prompt.errors import ConfigError, DataError, NovelClassesError, SarPromptError
from sar_prompt.io import DuplicateKeyError, read_json
from sar_prompt.runs.protocols import Benchmark, run_dir
from sar_prompt.runs.result_file import read_run

DEMO_CONFIG = REPO / "configs" / "trainers" / "demo.yaml"


# --- results only from runs that are what they claim ------------------------------------------

def write_result(root, seed=1, trainer="CoOpSAR", dataset="caltech101", shots=16,
                 phase="train_base", claims=None, **fields):
    """A results.json in its run folder; `claims` overrides what the file says it is."""
    folder = run_dir(root, phase, dataset, shots, trainer, "cfg", seed)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"accuracy": 70.0, "seed": seed, "trainer": trainer, "dataset": "Caltech101",
               "num_shots": shots, "subsample_classes": "base", **fields, **(claims or {})}
    (folder / "results.json").write_text(json.dumps(payload))
    return folder


@pytest.mark.parametrize("field,value", [("trainer", "CoOp"), ("dataset", "EuroSAT"),
                                         ("num_shots", 4), ("seed", 2),
                                         ("subsample_classes", "new")])
def test_a_result_that_disagrees_with_its_folder_is_broken(tmp_path, field, value):
    folder = write_result(tmp_path, claims={field: value})
    state = read_run(folder)
    assert state.status == "broken"
    assert f"says {field} {value!r}" in state.detail and str(folder / "results.json") in state.detail
    assert "another run's result" in state.detail


def test_a_result_that_agrees_with_its_folder_is_finished(tmp_path):
    assert read_run(write_result(tmp_path)).finished
    # transfer targets use all their images: their shots are not checked
    target = write_result(tmp_path, phase="test_all", num_shots=-1, subsample_classes="all")
    assert read_run(target).finished


def test_the_table_refuses_another_runs_result(tmp_path, capsys):
    for seed in (1, 2, 3):
        write_result(tmp_path, seed=seed)
        write_result(tmp_path, seed=seed, phase="test_new", subsample_classes="new")
    moved = run_dir(tmp_path, "test_new", "caltech101", 16, "CoOpSAR", "cfg", 2)
    data = json.loads((moved / "results.json").read_text())
    (moved / "results.json").write_text(json.dumps({**data, "trainer": "CoOp"}))
    code = results.main([str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg",
                         "--datasets", "caltech101"])
    err = capsys.readouterr().err
    assert code == 1 and "broken" in err and "says trainer 'CoOp'" in err and str(moved) in err


# --- JSON files with a key given twice -----------------------------------------------------

def test_the_strict_reader_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1, "b": {"c": 1, "c": 2}}')
    with pytest.raises(DuplicateKeyError) as err:
        read_json(path)
    assert str(path) in str(err.value) and "'c' appears twice" in str(err.value)
    path.write_text('{"a": 1, "b": {"c": 1}}')
    assert read_json(path) == {"a": 1, "b": {"c": 1}}


def test_results_json_with_a_duplicate_key_is_broken(tmp_path):
    folder = write_result(tmp_path)
    (folder / "results.json").write_text('{"accuracy": 70.0, "seed": 1, "accuracy": 90.0}')
    state = read_run(folder)
    assert state.status == "broken" and "'accuracy' appears twice" in state.detail
    assert str(folder / "results.json") in state.detail


def test_fingerprint_with_a_duplicate_key_is_refused(tmp_path):
    from sar_prompt.runs import fingerprint

    (tmp_path / fingerprint.FILE).write_text('{"schema": "x", "schema": "y"}')
    with pytest.raises(SarPromptError, match="'schema' appears twice"):
        fingerprint.read(tmp_path)


def test_split_file_with_a_duplicate_key_is_refused(fresh_caltech_root):
    from sar_prompt.data.layouts import files_for

    split = fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json"
    data = json.loads(split.read_text())
    text = json.dumps(data)[:-1] + ', "test": []}'
    split.write_text(text)
    with pytest.raises(DataError) as err:
        files_for("caltech101")(fresh_caltech_root).load_records()
    assert str(split) in str(err.value) and "'test' appears twice" in str(err.value)


def test_novel_list_with_a_duplicate_key_is_refused(tmp_path):
    from sar_prompt.novel import default_path, load

    text = default_path("caltech101").read_text()
    bad = tmp_path / "caltech101.json"
    bad.write_text(text.replace('{', '{"dataset": "Caltech101", ', 1))
    with pytest.raises(NovelClassesError) as err:
        load(bad)
    assert str(bad) in str(err.value) and "'dataset' appears twice" in str(err.value)


# --- split entries outside the dataset folder -----------------------------------------------

@pytest.mark.parametrize("entry,why", [("/etc/passwd", "an absolute path"),
                                       ("../../secret.jpg", "a path through '..'"),
                                       ("Faces/../../../x.jpg", "a path through '..'")])
def test_split_entries_outside_the_dataset_are_refused(fresh_caltech_root, entry, why):
    from sar_prompt.data.doctor import check
    from sar_prompt.data.layouts import files_for

    split = fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json"
    data = json.loads(split.read_text())
    data["train"][1][0] = entry
    split.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        files_for("caltech101")(fresh_caltech_root).load_records()
    msg = str(err.value)
    assert "split_zhou_Caltech101.json" in msg and f"train entry 1 is {entry!r}" in msg
    assert why in msg and "outside the dataset folder" in msg
    report = check("caltech101", fresh_caltech_root)
    assert not report.ok and f"train entry 1 is {entry!r}" in report.render()


# --- bench: values checked before anything runs ---------------------------------------------

def bench_main(capsys, *argv, env=None, monkeypatch=None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = bench.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("env,flags,expected", [
    ({"SEEDS": "1 x"}, [], "SEEDS='1 x': 'x' is not a whole number"),
    ({"SEEDS": "1 -2"}, [], "SEEDS='1 -2': -2 is below 0"),
    ({"SEEDS": "1 2 1"}, [], "SEEDS='1 2 1': 1 is given twice"),
    ({}, ["--seeds", "1", "y"], "--seeds: 'y' is not a whole number"),
    ({"SHOTS": "0"}, [], "SHOTS='0': 0 is below 1"),
    ({"SHOTS": "-4"}, [], "SHOTS='-4': -4 is below 1"),
    ({"SHOTS": "16 16"}, [], "SHOTS='16 16': 16 is given twice"),
    ({"GPUS": "0,a"}, [], "GPUS='0,a': 'a' is not a whole number"),
    ({"GPUS": "-1"}, [], "GPUS='-1': -1 is below 0"),
    ({}, ["--gpus", "0,0"], "--gpus: 0 is given twice"),
])
def test_bad_seeds_shots_and_gpus_are_named_with_the_fix(tmp_path, capsys, monkeypatch, env,
                                                         flags, expected):
    for name in ("SEEDS", "SHOTS", "GPUS"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = bench_main(capsys, "base2new", "CoOpSAR", "--datasets", "eurosat",
                                "--output", str(tmp_path), *flags, "--dry-run", env=env,
                                monkeypatch=monkeypatch)
    assert code == 2 and expected in err and "e.g." in err and "Traceback" not in err
    assert not (tmp_path / "base2new").exists()


def test_good_values_from_the_environment_are_used(monkeypatch):
    monkeypatch.setenv("SEEDS", "3, 1")
    monkeypatch.setenv("SHOTS", "4 8")
    monkeypatch.setenv("GPUS", "1,0")
    args = bench.parse(["fewshot", "CoOp"])
    assert (args.seeds, args.shots, args.gpus) == ([3, 1], [4, 8], "1,0")
    assert bench.parse(["fewshot", "CoOp", "--seeds", "0"]).seeds == [0]  # flags win


@pytest.mark.parametrize("given,meant", [("CoOpSar", "CoOpSAR"), ("coop", "CoOp"),
                                         ("KgCoopSAR", "KgCoOpSAR"), ("PromptSCR", "PromptSRC")])
def test_unknown_trainer_suggests_one_of_the_projects(capsys, given, meant):
    code, _, err = bench_main(capsys, "base2new", given, "--dry-run")
    assert code == 2 and f"unknown trainer {given!r}" in err and f"Did you mean {meant!r}?" in err
    # the project's own trainers, not what else Dassl registers
    assert "CoOpSAR" in err and "Vanilla" not in err and "DAEL" not in err


def test_a_missing_data_folder_is_reported_once_before_any_run(tmp_path, capsys):
    code, out, err = bench_main(capsys, "base2new", "CoOpSAR", "--datasets", "eurosat", "dtd",
                                "--seeds", "1", "2", "--config", str(DEMO_CONFIG), "--data",
                                str(tmp_path / "nodata"), "--output", str(tmp_path / "out"))
    assert code == 2 and err.count("error:") == 1
    assert f"the datasets folder {tmp_path / 'nodata'} (DATA / --data) does not exist" in err
    assert "sar-prompt data download eurosat --data" in err
    assert not (tmp_path / "out").exists()  # nothing was started


def test_the_demo_generates_its_data_so_no_data_check(tmp_path):
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("demo",), seeds=(1,),
                  data=str(tmp_path / "nodata"), output=str(tmp_path / "out"))
    preflight.bench_data(b, b.jobs())  # no error
    other = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                      config=str(DEMO_CONFIG), data=str(tmp_path / "nodata"),
                      output=str(tmp_path / "out"))
    with pytest.raises(ConfigError):
        preflight.bench_data(other, other.jobs())


def test_slurm_without_slurm_says_so_and_offers_local(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code, _, err = bench_main(capsys, "base2new", "CoOpSAR", "--datasets", "eurosat",
                              "--seeds", "1", "--output", str(tmp_path / "out"), "--slurm")
    assert code == 2 and "--slurm: there is no Slurm here (no sbatch on PATH)" in err
    assert "--cluster local" in err
    assert not (tmp_path / "out").exists()


def dry_run_commands(out):
    """The command of each run line of a dry run's job list."""
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    return [line[line.index(sys.executable):] for line in lines]


def test_dry_run_prints_the_epoch_the_evaluation_loads_and_quotes_every_word(tmp_path, capsys):
    code, out, _ = bench_main(capsys, "base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds",
                              "1", "--config", str(DEMO_CONFIG), "--data", str(tmp_path / "d a"),
                              "--output", str(tmp_path / "o'ut"), "OPTIM.MAX_EPOCH", "7",
                              "TRAINER.COOP.CTX_INIT", "a photo's $HOME `x` of a", "--dry-run")
    assert code == 0 and "LAST" not in out
    train_line, eval_line = dry_run_commands(out)
    args = bench.parse(["base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds", "1",
                        "--config", str(DEMO_CONFIG), "--data", str(tmp_path / "d a"),
                        "--output", str(tmp_path / "o'ut"), "OPTIM.MAX_EPOCH", "7",
                        "TRAINER.COOP.CTX_INIT", "a photo's $HOME `x` of a"])
    job = bench.benchmark(args).jobs()[0]
    from sar_prompt.orchestration.runner import Settings

    settings = Settings()
    expected = [settings.command(job.runs[0]), settings.command(job.runs[1], 7)]
    for line, argv in zip((train_line, eval_line), expected):
        assert shlex.split(line) == argv
        # and bash reads the printed line as the same words
        echoed = subprocess.run(["bash", "-c", "printf '%s\\0' " + line.split(" ", 1)[1]],
                                capture_output=True, text=True, check=True).stdout
        assert echoed.split("\0")[:-1] == argv[1:]
    assert "--load-epoch 7" in eval_line


def test_planned_epoch_comes_from_the_resolved_config(tmp_path):
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(DEMO_CONFIG), data=str(tmp_path), output=str(tmp_path),
                  opts=("OPTIM.MAX_EPOCH", "5"))
    job = b.jobs()[0]
    assert preflight.planned_load_epoch(job, job.runs[1]) == 5
    plain = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                      config=str(DEMO_CONFIG), data=str(tmp_path), output=str(tmp_path))
    assert preflight.planned_load_epoch(plain.jobs()[0], plain.jobs()[0].runs[1]) == 2


def test_planned_epoch_without_dassl_reads_the_same_layers(tmp_path, monkeypatch):
    import sar_prompt.train as train

    def no_dassl(args):
        raise ModuleNotFoundError("No module named 'dassl'", name="dassl")

    monkeypatch.setattr(train, "setup_cfg", no_dassl)
    b = Benchmark(protocol="base2new", trainer="CoOp", datasets=("eurosat",), seeds=(1,),
                  data=str(tmp_path), output=str(tmp_path))
    job = b.jobs()[0]
    assert preflight.planned_load_epoch(job, job.runs[1]) == 200  # vit_b16_ctxv1.yaml
    b = Benchmark(protocol="base2new", trainer="CoOp", datasets=("eurosat",), seeds=(1,),
                  data=str(tmp_path), output=str(tmp_path), opts=("OPTIM.MAX_EPOCH", "3"))
    assert preflight.planned_load_epoch(b.jobs()[0], b.jobs()[0].runs[1]) == 3


# --- train.py: checked before CLIP and the data are built --------------------------------------

def train_args(caltech_root, tmp_path, *extra):
    return ["--root", str(caltech_root), "--seed", "1", "--trainer", "CoOp",
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--output-dir", str(tmp_path / "out"), *extra]


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if train.py gets as far as building the trainer."""
    import dassl.engine

    def build_trainer(cfg):
        raise AssertionError("the trainer (CLIP, data) was built before the check")

    monkeypatch.setattr(dassl.engine, "build_trainer", build_trainer)


def saved_run(tmp_path, epochs=(1, 2)):
    run = tmp_path / "train"
    (run / "prompt_learner").mkdir(parents=True)
    for epoch in epochs:
        (run / "prompt_learner" / f"model.pth.tar-{epoch}").write_bytes(b"x")
    return run


@pytest.mark.parametrize("case", ["negative epoch", "epoch not saved", "missing folder",
                                  "a file", "no checkpoints"])
def test_model_dir_and_load_epoch_are_checked_first(caltech_root, tmp_path, capsys,
                                                    nothing_built, case):
    from sar_prompt.train import main

    run = saved_run(tmp_path)
    model_dir, epoch = str(run), "2"
    expected = {"negative epoch": "--load-epoch -1: epochs are 1 or more",
                "epoch not saved": "holds no checkpoint of epoch 9",
                "missing folder": f"--model-dir {tmp_path / 'nope'} does not exist",
                "a file": "is a file. Give the output folder of a training run",
                "no checkpoints": "holds no checkpoint (no <model>/model.pth.tar-N)"}[case]
    if case == "negative epoch":
        epoch = "-1"
    elif case == "epoch not saved":
        epoch = "9"
    elif case == "missing folder":
        model_dir = str(tmp_path / "nope")
    elif case == "a file":
        model_dir = str(run / "prompt_learner" / "model.pth.tar-2")
    else:
        for f in (run / "prompt_learner").iterdir():
            f.unlink()
    code = main(train_args(caltech_root, tmp_path, "--eval-only", "--model-dir", model_dir,
                           "--load-epoch", epoch))
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    if case == "epoch not saved":
        assert "The epochs saved there are 1, 2" in err
    if case == "a file":
        assert f"--model-dir {run} --load-epoch 2" in err


@pytest.mark.parametrize("value", ["(224,)", "(0, 224)", "(224, 224, 3)"])
def test_malformed_input_size_says_the_form(caltech_root, tmp_path, capsys, nothing_built, value):
    from sar_prompt.train import main

    code = main(train_args(caltech_root, tmp_path, "INPUT.SIZE", value))
    err = capsys.readouterr().err
    assert code == 2 and "INPUT.SIZE is (" in err and '"(224, 224)"' in err


def test_input_size_as_one_number_says_the_form(caltech_root, tmp_path, capsys):
    from sar_prompt.train import main

    code = main(train_args(caltech_root, tmp_path, "INPUT.SIZE", "224"))
    err = capsys.readouterr().err
    assert code == 2 and 'INPUT.SIZE "(224, 224)"' in err and "got 224" in err


@pytest.mark.parametrize("flag", ["--config", "--dataset-config-file"])
def test_a_folder_for_a_config_file(caltech_root, tmp_path, capsys, flag):
    from sar_prompt.train import main

    argv = train_args(caltech_root, tmp_path)
    if flag in argv:
        argv[argv.index(flag) + 1] = str(tmp_path)
    else:
        argv += [flag, str(tmp_path)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and f"{flag} {tmp_path} is a folder. Give the .yaml file itself" in err


def test_a_folder_for_the_clip_weights(tmp_path):
    from sar_prompt.errors import WeightsError
    from sar_prompt.modeling.backbone import resolve_weights

    with pytest.raises(WeightsError, match="MODEL.BACKBONE.PATH is .*, a folder. Point it at "
                                           "the CLIP weights file itself"):
        resolve_weights("ViT-B/16", str(tmp_path))


def test_a_folder_for_the_novel_file(build_trainer, tmp_path):
    with pytest.raises(NovelClassesError, match="is a folder, not a file"):
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(tmp_path))


# --- code in weights files -------------------------------------------------------------------

class RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_clip_weights_holding_code_are_refused_with_the_trust_switch(tiny_clip_path, tmp_path,
                                                                     monkeypatch):
    import torch

    from sar_prompt.modeling.torch_load import TRUST_ENV
    from sar_prompt.errors import WeightsError
    from sar_prompt.modeling.backbone import read_state_dict

    state = torch.load(tiny_clip_path, weights_only=True)
    bad = tmp_path / "clip_with_code.pt"
    torch.save({"state_dict": state, "extra": RunsCode()}, bad)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(WeightsError) as err:
        read_state_dict(bad)
    msg = str(err.value)
    assert f"Refusing to load the CLIP weights {bad}" in msg and "holds Python code" in msg
    assert f"{TRUST_ENV}=1" in msg and "weights_only" not in msg
    monkeypatch.setenv(TRUST_ENV, "1")
    with pytest.warns(UserWarning, match="full unpickle"):
        assert "token_embedding.weight" in read_state_dict(bad)


def test_checkpoint_refusal_does_not_repeat_torchs_advice(tmp_path):
    import torch

    from sar_prompt.modeling import torch_load as checkpoints
    from sar_prompt.errors import CheckpointError

    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {}, "x": RunsCode()}, path)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    msg = str(err.value)
    assert msg.startswith(f"Refusing to load the checkpoint {path}: it holds Python code or "
                          "objects (posix.getcwd) that loading would run, where only tensors "
                          "and numbers belong. Only if you trust")
    assert checkpoints.TRUST_ENV in msg and "weights_only" not in msg
    assert "add_safe_globals" not in msg


# --- writing tables: read-only, full disk, a path through a file ------------------------------

def finished_benchmark(root):
    for seed in (1, 2, 3):
        write_result(root, seed=seed)
        write_result(root, seed=seed, phase="test_new", subsample_classes="new")


def results_save(capsys, root, folder):
    code = results.main([str(root), "--trainer", "CoOpSAR", "--config", "cfg", "--datasets",
                         "caltech101", "--save", str(folder), "--no-plot"])
    return code, capsys.readouterr().err


def test_saving_a_table_through_a_file(tmp_path, capsys):
    finished_benchmark(tmp_path / "runs")
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, err = results_save(capsys, tmp_path / "runs", blocker / "tables")
    assert code == 2 and f"cannot write or read {blocker}" in err and "is a file" in err
    assert "Traceback" not in err and blocker.read_text() == "keep me"


@pytest.mark.parametrize("error,advice", [(errno.ENOSPC, "the disk is full"),
                                          (errno.EROFS, "read-only"),
                                          (errno.EACCES, "permissions")])
def test_a_full_disk_or_a_read_only_folder_names_the_file_and_leaves_no_part(
        tmp_path, capsys, monkeypatch, error, advice):
    import sar_prompt.io as sio

    finished_benchmark(tmp_path / "runs")
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "base2new_CoOpSAR.md").write_text("the old table\n")
    real_fsync = os.fsync

    def failing_fsync(fd):  # the write fails where the data reaches the disk
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(sio.os, "fsync", failing_fsync)
    code, err = results_save(capsys, tmp_path / "runs", tables)
    monkeypatch.setattr(sio.os, "fsync", real_fsync)
    assert code == 2 and "Traceback" not in err
    assert f"cannot write or read {tables / 'base2new_CoOpSAR.md'}" in err and advice in err
    assert sorted(p.name for p in tables.iterdir()) == ["base2new_CoOpSAR.md"]  # no temp file
    assert (tables / "base2new_CoOpSAR.md").read_text() == "the old table\n"


def test_bench_reports_a_table_it_cannot_save(tmp_path, capsys, monkeypatch):
    from sar_prompt.errors import OutputError

    def refuse(table, folder, **kw):
        raise OutputError(f"cannot save the table in {folder}: the disk is full")

    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(DEMO_CONFIG), data=str(tmp_path), output=str(tmp_path))
    monkeypatch.setattr(results, "save", refuse)
    args = bench.parse(["base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds", "1"])
    assert bench.report(b, args, []) == 2
    assert "error: cannot save the table in" in capsys.readouterr().err


def test_the_trust_key_lets_a_trainer_load_such_clip_weights(build_trainer, tiny_clip_path,
                                                             tmp_path, monkeypatch):
    import torch

    from sar_prompt.modeling.torch_load import TRUST_ENV
    from sar_prompt.errors import WeightsError

    monkeypatch.delenv(TRUST_ENV, raising=False)
    bad = tmp_path / "clip_with_code.pt"
    torch.save({"state_dict": torch.load(tiny_clip_path, weights_only=True),
                "extra": RunsCode()}, bad)
    with pytest.raises(WeightsError, match="MODEL.TRUST_CHECKPOINT_CODE True"):
        build_trainer("CoOp", "MODEL.BACKBONE.PATH", str(bad))
    with pytest.warns(UserWarning, match="full unpickle"):
        build_trainer("CoOp", "MODEL.BACKBONE.PATH", str(bad), "MODEL.TRUST_CHECKPOINT_CODE",
                      "True")
