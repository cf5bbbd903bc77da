"""Slips of the keyboard that used to get a misleading answer: a misspelt trainer in
`results --compare`, a negative value in `--sweep`."""
import io

import pytest

from sar_prompt.orchestration import bench
from sar_prompt.orchestration import runner
from sar_prompt.results.tables_cli import main as results_main
from test_runner import CONFIG, make_bench, settings


def test_a_misspelt_trainer_to_compare_gets_a_did_you_mean(tmp_path, capsys):
    b = make_bench(tmp_path, datasets=("eurosat",), seeds=(1,))
    outcomes = runner.run_local(b.jobs(), settings(), out=io.StringIO())
    assert [o.status for o in outcomes] == ["done", "done"]
    root = str(tmp_path / "out" / "base2new")
    for args in (["--compare", "CoOp", "CoOpSARR"], ["--trainer", "CoOpSARR"],
                 ["--trainers", "coopsar", "CoOp"]):
        assert results_main([root, *args]) == 2
        err = capsys.readouterr().err
        assert "Did you mean CoOpSAR?" in err and "give --config" not in err, err
        assert "Trainers with runs there: CoOpSAR." in err
    # a trainer of the project with no runs yet is not a typo: its runs are missing
    assert results_main([root, "--compare", "CoOp", "CoOpSAR", "--seeds", "1"]) == 1
    assert "Did you mean" not in capsys.readouterr().err


def test_negative_sweep_values(tmp_path, capsys):
    common = ["--datasets", "eurosat", "--seeds", "1", "--config", str(CONFIG), "--output",
              str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--dry-run"]
    assert bench.main(["base2new", "CoOpSAR", "--sweep", "TRAINER.SAR.WEIGHT", "-1,2",
                       "--sweep", "OPTIM.LR", "-0.5,1e-3", *common]) == 0
    out = capsys.readouterr().out
    assert "sweep: 4 points: OPTIM.LR=-0.5,SAR.WEIGHT=-1;" in out
    args = bench.parse(["base2new", "CoOpSAR", *common, "--sweep", "TRAINER.SAR.WEIGHT", "-5"])
    assert args.sweep == [["TRAINER.SAR.WEIGHT", "-5"]]
    with pytest.raises(SystemExit) as exit_:  # a value is missing: argparse says so
        bench.main(["base2new", "CoOpSAR", *common, "--sweep", "TRAINER.SAR.WEIGHT"])
    assert exit_.value.code == 2
    assert "--sweep: expected 2 arguments" in capsys.readouterr().err
