"""User mistakes stop with exit status 2 and one message naming the key, file or value and
the fix, checked when the trainer starts; the same exit-status convention for every command."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_TRAINER_OPTS
from sar_prompt.errors import (EXIT_INTERRUPTED, EXIT_OK, EXIT_USER, ConfigError, NovelClassesError,
                               run_command)
from sar_prompt.novel import default_path
from sar_prompt.train import build_parser, check_names, main, setup_cfg

CALTECH_CFG = str(REPO / "configs/datasets/caltech101.yaml")


def config_error(build_trainer, *opts, trainer="CoOpSAR"):
    with pytest.raises(ConfigError) as err:
        build_trainer(trainer, *opts)
    return str(err.value)


# --- values checked when the trainer starts -------------------------------------------------

@pytest.mark.parametrize("value", ["0", "0.0", "-0.5", "-1", "1e999"])
def test_sar_temperature_must_be_positive(build_trainer, value):
    msg = config_error(build_trainer, "TRAINER.SAR.TEMPERATURE", value)
    assert f"TRAINER.SAR.TEMPERATURE is {float(value)!r}" in msg and "greater than 0" in msg
    assert "TRAINER.SAR.TEMPERATURE 0.01" in msg  # a value to use


def test_a_word_for_a_number_says_the_key_takes_a_number(make_cfg):
    with pytest.raises(ConfigError) as err:
        make_cfg("CoOpSAR", "TRAINER.SAR.TEMPERATURE", "nan")
    assert str(err.value).startswith("command-line options: TRAINER.SAR.TEMPERATURE takes a "
                                     "number (default 0.01), but got 'nan', a string.")


def test_whole_numbers_are_read_as_floats_for_float_keys(make_cfg):
    """yacs would call `-1` or `2` a type mismatch for a float key; they mean -1.0 and 2.0."""
    cfg = make_cfg("CoOpSAR", "TRAINER.SAR.TEMPERATURE", "-1", "TRAINER.SAR.WEIGHT", "2")
    assert cfg.TRAINER.SAR.TEMPERATURE == -1.0 and type(cfg.TRAINER.SAR.TEMPERATURE) is float
    assert cfg.TRAINER.SAR.WEIGHT == 2.0 and type(cfg.TRAINER.SAR.WEIGHT) is float


def test_whole_numbers_in_a_config_file_too(tmp_path):
    method = tmp_path / "method.yaml"
    method.write_text("TRAINER:\n  SAR:\n    WEIGHT: 3\n    TEMPERATURE: 1\n")
    argv = ["--root", str(tmp_path), "--trainer", "CoOpSAR", "--dataset-config-file",
            CALTECH_CFG, "--config-file", str(method)]
    cfg = setup_cfg(build_parser().parse_args(argv))
    assert (cfg.TRAINER.SAR.WEIGHT, cfg.TRAINER.SAR.TEMPERATURE) == (3.0, 1.0)


def test_other_type_mismatches_say_what_the_key_takes(make_cfg):
    with pytest.raises(ConfigError) as err:
        make_cfg("CoOp", "TRAINER.COOP.CSC", "1")
    msg = str(err.value)
    assert msg.startswith("command-line options: TRAINER.COOP.CSC takes True or False")
    assert "got 1" in msg and "Type mismatch" not in msg


@pytest.mark.parametrize("value", ["-1", "-0.1"])
def test_negative_sar_weight(build_trainer, value):
    msg = config_error(build_trainer, "TRAINER.SAR.WEIGHT", value)
    assert f"TRAINER.SAR.WEIGHT is {float(value)!r}" in msg and "0 or more" in msg


def test_zero_sar_weight_is_allowed(build_trainer):
    assert build_trainer("CoOpSAR", "TRAINER.SAR.WEIGHT", "0").cfg.TRAINER.SAR.WEIGHT == 0


def test_negative_num_novel_and_kgcoop_weight(build_trainer):
    assert "TRAINER.SAR.NUM_NOVEL is -3" in config_error(build_trainer, "TRAINER.SAR.NUM_NOVEL",
                                                         "-3")
    assert "TRAINER.COOP.W is -8.0" in config_error(build_trainer, "TRAINER.COOP.W", "-8",
                                                    trainer="KgCoOp")


def test_values_are_checked_before_data_or_model(build_trainer, monkeypatch):
    from sar_prompt.trainers.base import PromptTuningTrainer

    def never(self):
        raise AssertionError("built the data loader before checking the config")

    monkeypatch.setattr(PromptTuningTrainer, "build_data_loader", never, raising=False)
    assert "TEMPERATURE" in config_error(build_trainer, "TRAINER.SAR.TEMPERATURE", "0")


# --- a novel-class file made for another dataset --------------------------------------------

def test_novel_file_for_another_dataset_is_refused(build_trainer, tmp_path):
    pets = default_path("oxford_pets")
    with pytest.raises(NovelClassesError) as err:
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(pets))
    msg = str(err.value)
    assert str(pets) in msg and "'OxfordPets'" in msg and "'Caltech101'" in msg
    assert "TRAINER.SAR.NOVEL_FILE" in msg and "--dataset caltech101" in msg


def test_novel_validate_checks_the_dataset(tmp_path, capsys):
    from sar_prompt.novel.lists_cli import main as novel_main

    pets = default_path("oxford_pets")
    assert novel_main(["validate", str(pets)]) == EXIT_OK
    capsys.readouterr()
    assert novel_main(["validate", str(pets), "--dataset", "caltech101"]) == EXIT_USER
    out = capsys.readouterr().out
    assert f"{pets}: PROBLEMS" in out and "list for 'OxfordPets'" in out
    assert "--dataset caltech101" in out and ": OK:" not in out
    # a copy named after another dataset is not that dataset's list
    copy = tmp_path / "caltech101.json"
    copy.write_bytes(pets.read_bytes())
    assert novel_main(["validate", str(copy)]) == EXIT_USER
    out = capsys.readouterr().out
    assert "the file name caltech101.json says caltech101" in out and "'Caltech101'" in out


# --- where an unknown name came from ----------------------------------------------------------

def args_for(tmp_path, *extra, dataset_cfg=CALTECH_CFG):
    argv = ["--root", str(tmp_path), "--trainer", "CoOpSAR", "--output-dir", str(tmp_path)]
    if dataset_cfg:
        argv += ["--dataset-config-file", str(dataset_cfg)]
    return build_parser().parse_args(argv + list(extra))


def unknown_name_message(args):
    import sar_prompt  # noqa: F401  (registers the datasets)

    with pytest.raises(ConfigError) as err:
        check_names(setup_cfg(args), args)
    return str(err.value)


def test_unknown_dataset_from_a_trailing_option_says_so(tmp_path):
    msg = unknown_name_message(args_for(tmp_path, "DATASET.NAME", "Caltech102"))
    assert "unknown dataset 'Caltech102'" in msg and "Did you mean 'Caltech101'" in msg
    assert "set by the trailing option DATASET.NAME" in msg
    assert "--dataset-config-file" not in msg


def test_unknown_dataset_from_a_file_names_the_file(tmp_path):
    ds = tmp_path / "ds.yaml"
    ds.write_text('DATASET:\n  NAME: "Caltech102"\n')
    msg = unknown_name_message(args_for(tmp_path, dataset_cfg=ds))
    assert f"set by --dataset-config-file {ds}" in msg
    method = tmp_path / "method.yaml"
    method.write_text('DATASET:\n  NAME: "Caltech103"\n')
    msg = unknown_name_message(args_for(tmp_path, "--config-file", str(method)))
    assert "'Caltech103'" in msg and f"set by --config {method}" in msg


def test_no_dataset_at_all_says_which_flag_gives_one(tmp_path):
    msg = unknown_name_message(args_for(tmp_path, dataset_cfg=None))
    assert "no dataset given (DATASET.NAME is empty)" in msg
    assert "--dataset-config-file configs/datasets/<dataset>.yaml" in msg


# --- one exit-status convention for every command ---------------------------------------------

def run_cli(*argv):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_train_py_exit_2_on_a_bad_value(caltech_root, tiny_clip_path, tmp_path):
    code, out = run_cli(str(REPO / "train.py"), "--root", str(caltech_root), "--seed", "1",
                        "--trainer", "CoOpSAR", "--dataset-config-file", CALTECH_CFG,
                        "--output-dir", str(tmp_path / "out"), *TINY_TRAINER_OPTS,
                        "MODEL.BACKBONE.PATH", str(tiny_clip_path),
                        "TRAINER.SAR.TEMPERATURE", "-1")
    assert code == EXIT_USER, out[-3000:]
    assert "error: TRAINER.SAR.TEMPERATURE is -1.0; it must be a number greater than 0" in out
    assert "Traceback" not in out and "Type mismatch" not in out


def test_data_cli_exit_2_on_an_unknown_dataset(tmp_path):
    code, out = run_cli("-m", "sar_prompt.data", "check", "caltech102", "--root", str(tmp_path))
    assert code == EXIT_USER and "unknown dataset 'caltech102'" in out and "caltech101" in out
    assert "Traceback" not in out


def test_novel_cli_exit_2_on_a_list_for_another_dataset_and_on_a_bad_path(tmp_path):
    code, out = run_cli("-m", "sar_prompt.novel", "validate", str(default_path("dtd")),
                        "--dataset", "eurosat")
    assert code == EXIT_USER and "list for 'DescribableTextures'" in out
    names = tmp_path / "names.txt"
    names.write_text("tiger\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out = run_cli("-m", "sar_prompt.novel", "from-file", str(names), "--dataset", "dtd",
                        "--out", str(blocker / "dtd.json"))
    assert code == EXIT_USER and "Traceback" not in out
    assert f"error: cannot write or read {blocker}" in out and "not a folder" in out


def test_argparse_mistakes_are_2_as_well(tmp_path):
    for argv in ([str(REPO / "train.py"), "--seed", "x"],
                 ["-m", "sar_prompt.novel", "validate"], ["-m", "sar_prompt.data", "nope"]):
        code, out = run_cli(*argv)
        assert code == EXIT_USER and "usage:" in out, argv


def test_run_command_maps_outcomes_to_the_convention(capsys):
    def raises(exc):
        def command():
            raise exc
        return command

    assert run_command(lambda: None) == EXIT_OK
    assert run_command(lambda: 2) == 2
    assert run_command(raises(ConfigError("TRAINER.X is bad; set it to 1."))) == EXIT_USER
    assert capsys.readouterr().err == "error: TRAINER.X is bad; set it to 1.\n"
    assert run_command(raises(PermissionError(13, "Permission denied", "/out/x"))) == EXIT_USER
    assert "cannot write or read /out/x: Permission denied; check the folder's" in \
        capsys.readouterr().err
    assert run_command(raises(KeyboardInterrupt()), interrupted="stopped") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "stopped\n"
    with pytest.raises(ZeroDivisionError):  # a bug: the traceback, Python's exit status 1
        run_command(raises(ZeroDivisionError()))
    with pytest.raises(FileNotFoundError):  # not one of the user-fixable OS errors
        run_command(raises(FileNotFoundError(2, "No such file", "x")))


def test_train_main_is_2_for_every_config_mistake(caltech_root, tmp_path, capsys):
    argv = ["--root", str(caltech_root), "--trainer", "CoOpSAR", "--dataset-config-file",
            CALTECH_CFG, "--output-dir", str(tmp_path), "TRAINER.COOP.CSC", "yes please"]
    assert main(argv) == EXIT_USER
    assert "TRAINER.COOP.CSC takes True or False" in capsys.readouterr().err


def test_keys_and_types_are_checked_against_the_config_tree_not_yacs_wording(
        tmp_path, monkeypatch):
    """Config mistakes are found from the tree's own keys and value types, before yacs
    merges: with yacs' own type check switched off, every message is still ours."""
    import yacs.config

    monkeypatch.setattr(yacs.config, "_check_and_coerce_cfg_value_type",
                        lambda replacement, *args: replacement)
    method = tmp_path / "method.yaml"
    method.write_text("TRAINER:\n  COOP:\n    CSC: 1\n")
    base = ["--root", str(tmp_path), "--trainer", "CoOp", "--dataset-config-file", CALTECH_CFG]
    with pytest.raises(ConfigError) as err:
        setup_cfg(build_parser().parse_args(base + ["--config-file", str(method)]))
    assert str(err.value).startswith(f"{method}: TRAINER.COOP.CSC takes True or False")
    method.write_text("TRAINER:\n  COOP:\n    N_CXT: 4\n")
    with pytest.raises(ConfigError) as err:
        setup_cfg(build_parser().parse_args(base + ["--config-file", str(method)]))
    assert "unknown config key TRAINER.COOP.N_CXT" in str(err.value)
    assert "Did you mean TRAINER.COOP.N_CTX" in str(err.value)
    with pytest.raises(ConfigError) as err:
        setup_cfg(build_parser().parse_args(base + ["OPTIM.MAX_EPOCH", "'five'"]))
    assert str(err.value).startswith("command-line options: OPTIM.MAX_EPOCH takes a whole "
                                     "number (default")
    with pytest.raises(ConfigError) as err:
        setup_cfg(build_parser().parse_args(base + ["OPTIM.MAX_EPOCHS", "5"]))
    assert "unknown config key OPTIM.MAX_EPOCHS" in str(err.value)
    # a list for a tuple key, None for any key: yacs takes both, and so do we
    monkeypatch.undo()
    cfg = setup_cfg(build_parser().parse_args(base + ["INPUT.SIZE", "[32, 32]"]))
    assert tuple(cfg.INPUT.SIZE) == (32, 32)


# --- train.py's command line: what the scripts refuse, train.py refuses too -----------------

@pytest.mark.parametrize("shots", ["-3", "0"])
def test_num_shots_below_one_is_refused_not_read_as_every_image(caltech_root, tmp_path, capsys,
                                                               build_trainer, shots):
    argv = ["--data", str(caltech_root), "--trainer", "CoOp", "--dataset-config-file",
            CALTECH_CFG, "--output", str(tmp_path / "out"), "DATASET.NUM_SHOTS", shots]
    assert main(argv) == EXIT_USER
    err = capsys.readouterr().err
    assert f"DATASET.NUM_SHOTS is {shots}" in err and "1 or more" in err and "-1" in err
    assert not (tmp_path / "out").exists()  # refused before the run folder is made
    # a host suite's train.py builds the dataset itself: refused there too
    with pytest.raises(ConfigError, match=f"DATASET.NUM_SHOTS is {shots}"):
        build_trainer("CoOp", shots=int(shots))


def test_num_shots_minus_one_is_dassls_every_image(make_cfg):
    from sar_prompt.config import check_num_shots

    check_num_shots(make_cfg("CoOp", shots=-1).DATASET.NUM_SHOTS)  # no error


@pytest.mark.parametrize("flags", [("--data", "a", "--root", "b"), ("--root", "a", "--data", "a"),
                                   ("--output", "a", "--output-dir", "b"),
                                   ("--config", "a.yaml", "--config-file", "b.yaml")])
def test_two_spellings_of_one_option_are_refused(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--trainer", "CoOp", *flags])
    assert exit_.value.code == EXIT_USER
    err = capsys.readouterr().err
    assert f"given twice, as {flags[0]} {flags[1]} and as {flags[2]} {flags[3]}" in err
    assert "two spellings of one option" in err


def test_two_spellings_are_refused_by_every_tool():
    for argv in (["-m", "sar_prompt.data", "check", "dtd", "--data", "a", "--root", "b"],
                 ["-m", "sar_prompt", "novel", "vocab", "--dataset", "dtd", "--output", "a",
                  "--out-dir", "b"],
                 ["-m", "sar_prompt", "novel", "from-file", "n.txt", "--dataset", "dtd",
                  "--output", "a", "--out", "b"]):
        code, out = run_cli(*argv)
        assert code == EXIT_USER and "two spellings of one option" in out, (argv, out)


def test_train_takes_config_names_as_run_does(caltech_root, tiny_clip_path, tmp_path, capsys):
    """A wheel's user has no configs/ folder: the shipped configs go by name."""
    from sar_prompt.train import resolve_config_names

    args = build_parser().parse_args(["--trainer", "CoOpSAR", "--config", "vit_b16_ctxv1",
                                      "--dataset-config-file", "caltech101"])
    resolve_config_names(args)
    assert Path(args.config_file).resolve() == \
        (REPO / "configs/trainers/CoOp/vit_b16_ctxv1.yaml").resolve()
    assert Path(args.dataset_config_file).resolve() == Path(CALTECH_CFG).resolve()
    argv = ["--data", str(caltech_root), "--trainer", "CoOpSAR", "--output", str(tmp_path / "o"),
            "--dataset-config-file", "caltech101", "--config", "vit_b16_ctx"]
    assert main(argv) == EXIT_USER
    err = capsys.readouterr().err
    assert "--config vit_b16_ctx: no such file, nor a shipped config" in err
    assert "vit_b16_ctxv1" in err
    argv[argv.index("caltech101")] = "caltech10"
    assert main(argv) == EXIT_USER
    err = capsys.readouterr().err
    assert "--dataset-config-file caltech10: no such file" in err and "caltech101" in err
