"""Sweeps: a value equal to the default is the run without it (one folder, trained once, one
row), and `results --sweep` is a result table like any other (every format, --std, any
shots, incomplete seed sets refused), with X against XSAR at a chosen point."""
import csv
import io
import json

import pytest

from sar_prompt.results import main
from sar_prompt.runs.identity import config_folder, file_defaults
from sar_prompt.runs.protocols import Benchmark, dataset_config
from test_results import fp, write
from test_runner_identity import CONFIG, stub_bench  # noqa: F401  (a fixture)


def test_an_override_to_the_default_value_names_no_folder(tmp_path):
    defaults = file_defaults((dataset_config("eurosat"), CONFIG))
    assert defaults["TRAINER.SAR.WEIGHT"] == 1.0 and defaults["OPTIM.MAX_EPOCH"] == 2
    for same in ("1", "1.0", "1."):
        assert config_folder("demo", ("TRAINER.SAR.WEIGHT", same), defaults=defaults) == "demo"
    assert config_folder("demo", ("TRAINER.SAR.WEIGHT", "5", "OPTIM.MAX_EPOCH", "2.0"),
                         defaults=defaults) == "demo__SAR.WEIGHT=5"
    # a key only Dassl sets (not read without Dassl) always names its folder
    assert config_folder("demo", ("OPTIM.WEIGHT_DECAY", "5e-4"), defaults=defaults) == \
        "demo__OPTIM.WEIGHT_DECAY=0.0005"
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(CONFIG), opts=("TRAINER.SAR.WEIGHT", "1"))
    assert b.folder_for("eurosat", 16) == "demo"
    assert {r.config for j in b.jobs() for r in j.runs} == {"demo"}
    # the config file's own value counts as the default: an edited file, another default
    edited = tmp_path / "demo.yaml"
    edited.write_text(CONFIG.read_text().replace("NUM_NOVEL: 8", "NUM_NOVEL: 8\n    WEIGHT: 5.0"))
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(edited), opts=("TRAINER.SAR.WEIGHT", "5"))
    assert b.folder_for("eurosat", 16) == "demo"


def test_a_sweep_point_at_the_default_is_the_plain_run_trained_once(tmp_path, stub_bench,
                                                                    capsys):
    assert stub_bench(tmp_path) == 0  # the plain run: TRAINER.SAR.WEIGHT's default, 1
    capsys.readouterr()
    assert stub_bench(tmp_path, "--sweep", "TRAINER.SAR.WEIGHT", "1,5") == 0
    out = capsys.readouterr().out
    assert "4 runs: 2 done, 2 skipped" in out  # the point at 1 was run already
    base = tmp_path / "out/base2new/train_base/eurosat/shots_16/CoOpSAR"
    assert sorted(p.name for p in base.iterdir()) == ["demo", "demo__SAR.WEIGHT=5"]
    rows = [line for line in out.splitlines() if line.startswith("| SAR.WEIGHT=")]
    assert [r.split("|")[1].strip() for r in rows] == ["SAR.WEIGHT=1", "SAR.WEIGHT=5"]
    # from disk: the same two rows, the plain folder labelled by its runs' weight
    assert main([str(tmp_path / "out/base2new"), "--trainer", "CoOpSAR", "--seeds", "1",
                 "--format", "markdown"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("| SAR.WEIGHT=")]
    assert listed == rows


WEIGHTS = {"cfg": (1.0, 0.0), "cfg__SAR.WEIGHT=5": (5.0, 4.0), "cfg__SAR.WEIGHT=0": (0.0, -2.0)}


def write_sweep(root, shots=4, seeds=(1, 2, 3), datasets=("dtd", "eurosat"), skip=()):
    """CoOpSAR at three weights (the plain folder at the default, 1) and CoOp: new accuracy
    60 + the point's gain + the seed."""
    for i, dataset in enumerate(datasets):
        for folder, (weight, gain) in WEIGHTS.items():
            for seed in seeds:
                if (folder, dataset, seed) in skip:
                    continue
                f = fp()
                f["config"] = {"TRAINER": {"SAR": {"WEIGHT": weight}}, "SEED": seed}
                write(root, "train_base", seed, 80.0 + i, dataset, "CoOpSAR", folder, f, shots)
                write(root, "test_new", seed, 60.0 + gain + seed + i, dataset, "CoOpSAR",
                      folder, f, shots)
        for seed in seeds:
            write(root, "train_base", seed, 81.0 + i, dataset, "CoOp", "cfg", shots=shots)
            write(root, "test_new", seed, 60.0 + seed + i, dataset, "CoOp", "cfg", shots=shots)


def sweep_args(root, *extra):
    return [str(root), "--trainer", "CoOpSAR", "--sweep", *extra]


def test_results_sweep_in_every_format_with_std_at_any_shots(tmp_path, capsys):
    write_sweep(tmp_path, shots=4)  # not 16: found on disk
    assert main(sweep_args(tmp_path, "--format", "markdown", "--std")) == 0
    md = capsys.readouterr().out
    rows = [line for line in md.splitlines() if line.startswith("| SAR.WEIGHT=")]
    assert [r.split("|")[1].strip() for r in rows] == ["SAR.WEIGHT=0", "SAR.WEIGHT=1",
                                                       "SAR.WEIGHT=5"]
    assert rows[2].split("|")[3].strip() == "66.00 ± 0.82"  # DTD new at weight 5
    assert "**" not in md and "selection on the test split" in md  # no best point in bold
    assert main(sweep_args(tmp_path, "--format", "latex", "--std")) == 0
    tex = capsys.readouterr().out
    assert "SAR.WEIGHT=5 & 80.00\\textsubscript{$\\pm$0.00} & 66.00\\textsubscript{$\\pm$0.82}" \
        in tex and "\\label{tab:sweep-CoOpSAR}" in tex
    assert main(sweep_args(tmp_path, "--format", "csv")) == 0
    long = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    cell = next(r for r in long if (r["trainer"], r["dataset"], r["metric"]) ==
                ("SAR.WEIGHT=0", "eurosat", "new"))
    assert float(cell["mean"]) == 61.0 and cell["shots"] == "4" and cell["std"] != ""
    assert main(sweep_args(tmp_path, "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["point"] for r in data] == ["SAR.WEIGHT=0", "SAR.WEIGHT=1", "SAR.WEIGHT=5"]
    assert data[1]["folders"] == {"dtd": "cfg", "eurosat": "cfg"}
    assert data[2]["std"]["dtd"]["new"] == pytest.approx((2 / 3) ** 0.5)


def test_results_sweep_refuses_an_incomplete_point_unless_allowed(tmp_path, capsys):
    write_sweep(tmp_path, skip={("cfg__SAR.WEIGHT=5", "dtd", 2)})
    assert main(sweep_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "SAR.WEIGHT=5: dtd CoOpSAR seed 2 base" in err and "--allow-partial" in err
    assert main(sweep_args(tmp_path, "--allow-partial", "--format", "markdown")) == 0
    out = capsys.readouterr().out
    assert "(2/3)" in out and "Not finished (averaged over what there is): SAR.WEIGHT=5" in out
    # a sweep's points are not fingerprint groups: no "[fp ...]" rows or note
    assert "[fp" not in out


def test_x_against_xsar_at_a_chosen_point(tmp_path, capsys):
    write_sweep(tmp_path, shots=16)
    args = [str(tmp_path), "--compare", "CoOp", "CoOpSAR", "--format", "markdown"]
    assert main(args + ["--point", "SAR.WEIGHT=5"]) == 0
    out = capsys.readouterr().out
    delta = next(line for line in out.splitlines() if line.startswith("| *Δ CoOpSAR − CoOp*"))
    assert delta.split("|")[2:4] == [" -1.00 ", " +4.00 "]  # DTD: base, new at weight 5
    assert "CoOpSAR cfg__SAR.WEIGHT=5" in out
    assert main(args) == 0  # without --point: the default folder of each
    out = capsys.readouterr().out
    delta = next(line for line in out.splitlines() if line.startswith("| *Δ CoOpSAR − CoOp*"))
    assert delta.split("|")[3] == " +0.00 "
    assert main(args + ["--point", "SAR.WEIGHT=7"]) == 2
    assert "the points there: SAR.WEIGHT=0, SAR.WEIGHT=5" in capsys.readouterr().err


def test_every_points_averages_and_unfinished_runs_are_kept(tmp_path, capsys):
    from sar_prompt.results import sweep_table as sweep

    write_sweep(tmp_path, shots=16, skip={("cfg__SAR.WEIGHT=0", "dtd", 3),
                                          ("cfg__SAR.WEIGHT=5", "eurosat", 1)})
    found = sweep.points_on_disk(tmp_path, "base2new", "CoOpSAR", ["dtd", "eurosat"], [16])
    table = sweep.sweep_table(tmp_path, "base2new", "CoOpSAR", found)
    points = ["SAR.WEIGHT=0", "SAR.WEIGHT=1", "SAR.WEIGHT=5"]
    assert table.trainers == points
    assert sorted({a.trainer for a in table.averages}) == points
    assert sorted({p["run"].split(":")[0] for p in table.problems}) == ["SAR.WEIGHT=0",
                                                                       "SAR.WEIGHT=5"]
    one = sweep.sweep_table(tmp_path, "base2new", "CoOpSAR", found, datasets=["eurosat"])
    assert one.averages == [] and {e.dataset for e in one.entries} == {"eurosat"}
    assert main(sweep_args(tmp_path, "--allow-partial", "--format", "markdown")) == 0
    assert ("Picking the best point by these numbers is selection on the test split: tune on "
            "a validation split, or report every point.") in capsys.readouterr().out
