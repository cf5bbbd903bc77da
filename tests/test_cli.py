"""train.py's command line: CoOp's flags, and clear errors (exit 2, no traceback) on bad input."""
import subprocess
import sys

import pytest

from conftest import REPO, TINY_TRAINER_OPTS
from sar_prompt.train import build_parser, main


def args(caltech_root, tmp_path, *extra, trainer="CoOpSAR", dataset_cfg=None):
    return ["--root", str(caltech_root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(dataset_cfg or REPO / "configs/datasets/caltech101.yaml"),
            "--output-dir", str(tmp_path / "out"), *extra]


def test_coop_command_line_is_accepted():
    ns = build_parser().parse_args(
        ["--root", "d", "--seed", "2", "--trainer", "CoOp", "--dataset-config-file", "a.yaml",
         "--config-file", "b.yaml", "--output-dir", "o", "--eval-only", "--model-dir", "m",
         "--load-epoch", "50", "DATASET.NUM_SHOTS", "16"])
    assert (ns.load_epoch, ns.eval_only, ns.opts) == (50, True, ["DATASET.NUM_SHOTS", "16"])


def run_main(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_unknown_trainer(caltech_root, tmp_path, capsys):
    code, err = run_main(args(caltech_root, tmp_path, trainer="CoOpSar"), capsys)
    assert code == 2 and "unknown trainer 'CoOpSar'" in err and "Did you mean 'CoOpSAR'" in err


def test_unknown_dataset(caltech_root, tmp_path, capsys):
    cfg = tmp_path / "ds.yaml"
    cfg.write_text('DATASET:\n  NAME: "Caltech102"\n')
    code, err = run_main(args(caltech_root, tmp_path, dataset_cfg=cfg), capsys)
    assert code == 2 and "unknown dataset 'Caltech102'" in err and "Caltech101" in err


def test_unknown_config_key_suggests_the_right_one(caltech_root, tmp_path, capsys):
    code, err = run_main(args(caltech_root, tmp_path, "TRAINER.SAR.WIEGHT", "2"), capsys)
    assert code == 2 and "TRAINER.SAR.WIEGHT" in err and "TRAINER.SAR.WEIGHT" in err


def test_unknown_key_in_config_file_names_the_file(caltech_root, tmp_path, capsys):
    bad = tmp_path / "method.yaml"
    bad.write_text("TRAINER:\n  SAR:\n    TEMPRATURE: 0.1\n")
    code, err = run_main(args(caltech_root, tmp_path, "--config-file", str(bad)), capsys)
    assert code == 2 and str(bad) in err and "TRAINER.SAR.TEMPERATURE" in err


def test_missing_config_file_and_odd_options(caltech_root, tmp_path, capsys):
    code, err = run_main(args(caltech_root, tmp_path, "--config-file", "nope.yaml"), capsys)
    assert code == 2 and "nope.yaml" in err
    code, err = run_main(args(caltech_root, tmp_path, "OPTIM.LR"), capsys)
    assert code == 2 and "KEY VALUE" in err


def run_train(argv):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *argv],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["missing split", "absent weights"])
def test_errors_after_logging_starts_are_clear(fresh_caltech_root, tiny_clip_path, tmp_path, case):
    weights = str(tiny_clip_path)
    if case == "missing split":
        (fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json").unlink()
        expected = "split_zhou_Caltech101.json"
    else:
        weights = str(tmp_path / "no-weights.pt")
        expected = "MODEL.BACKBONE.PATH"
    proc = run_train(args(fresh_caltech_root, tmp_path, *TINY_TRAINER_OPTS,
                          "MODEL.BACKBONE.PATH", weights))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
