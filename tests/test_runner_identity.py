"""The runner and bench.py keep every result with the config that made it, with
tests/stub_train.py standing in for train.py: overrides get their own folders, a folder of
another config is a conflict (not run, not marked failed), a folder another process writes
is busy, and a sweep runs and tabulates every point."""
import functools
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from sar_prompt import results
from sar_prompt.orchestration import bench
from sar_prompt.orchestration import runner
from sar_prompt.runs.protocols import Benchmark
from stub_train import accuracy
from test_runner import STUB, settings

CONFIG = REPO / "configs" / "trainers" / "demo.yaml"


@pytest.fixture
def stub_bench(monkeypatch):
    """bench.main with the stub as train.py."""
    monkeypatch.setattr(runner, "Settings", functools.partial(
        runner.Settings, python=sys.executable, train=str(STUB), progress=False))

    def main(tmp_path, *args, config=CONFIG):
        (tmp_path / "data").mkdir(exist_ok=True)  # the stub reads no data, but DATA must exist
        return bench.main(["base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds", "1",
                           "--config", str(config), "--data", str(tmp_path / "data"),
                           "--output", str(tmp_path / "out"), *args])

    return main


def seed_rows(text):
    return [line.split() for line in text.splitlines() if line.startswith("1 ")]


def test_overrides_run_in_their_own_folders_with_their_own_table(tmp_path, stub_bench, capsys):
    assert stub_bench(tmp_path, "--table", "seeds") == 0
    first = capsys.readouterr().out
    # the scenario: the same OUTPUT, TRAINER.SAR.WEIGHT 5.0
    assert stub_bench(tmp_path, "TRAINER.SAR.WEIGHT", "5.0", "--table", "seeds") == 0
    second = capsys.readouterr().out
    assert "2 runs: 2 done, 0 skipped" in second and "finished earlier" not in second
    base = tmp_path / "out/base2new/train_base/eurosat/shots_16/CoOpSAR"
    assert sorted(p.name for p in base.iterdir()) == ["demo", "demo__SAR.WEIGHT=5"]
    assert "/ demo__SAR.WEIGHT=5 /" in second
    expected = [f"{accuracy('eurosat', 1, half, 5.0):.2f}" for half in ("base", "new")]
    assert seed_rows(second)[0][1:3] == expected
    assert seed_rows(first)[0][1:3] != expected
    assert stub_bench(tmp_path, "TRAINER.SAR.WEIGHT", "5", "--table", "seeds") == 0  # 5 is 5.0
    assert "2 skipped" in capsys.readouterr().out


def edited_config(tmp_path, epochs=2):
    config = tmp_path / "mine.yaml"
    config.write_text(CONFIG.read_text().replace("MAX_EPOCH: 2", f"MAX_EPOCH: {epochs}"))
    return config


def test_a_folder_of_another_config_is_a_conflict_not_run_nor_failed(tmp_path, stub_bench,
                                                                    capsys):
    config = edited_config(tmp_path)
    assert stub_bench(tmp_path, config=config) == 0
    capsys.readouterr()
    train = tmp_path / "out/base2new/train_base/eurosat/shots_16/CoOpSAR/mine/seed1"
    before = {p.name: p.read_bytes() for p in train.iterdir() if p.is_file()}
    edited_config(tmp_path, epochs=7)  # the same name, other content
    assert stub_bench(tmp_path, "--dry-run", config=config) == 0
    assert "ANOTHER CONFIG'S FOLDER (OPTIM.MAX_EPOCH: 2 -> 7)" in capsys.readouterr().out
    assert stub_bench(tmp_path, config=config) == 1
    out = capsys.readouterr().out
    assert "base: CONFLICT:" in out and "OPTIM.MAX_EPOCH: 2 -> 7" in out
    assert "seed 1 new: skipped, its training belongs to another config" in out
    assert "2 runs: 0 done, 0 skipped (already finished), 0 failed, 1 not run" in out
    assert "1 in a folder of another config (conflict)" in out and "--move-aside" in out
    after = {p.name: p.read_bytes() for p in train.iterdir() if p.is_file()}
    assert after == before and "failed.json" not in after  # not run, not marked failed
    assert stub_bench(tmp_path, "--move-aside", config=config) == 0
    out = capsys.readouterr().out
    assert "moved" in out and "2 runs: 2 done" in out
    moved = list(train.parent.glob("seed1.moved-*"))
    assert len(moved) == 1 and (moved[0] / "results.json").read_bytes() == before["results.json"]
    fp = json.loads((train / "fingerprint.json").read_text())
    assert fp["config"]["OPTIM"]["MAX_EPOCH"] == 7


def test_an_evaluation_folder_is_checked_too(tmp_path):
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(CONFIG), data=str(tmp_path / "d"), output=str(tmp_path / "o"))
    train, new = b.jobs()[0].runs
    other_job = Benchmark(**{**b.__dict__, "opts": ("TRAINER.SAR.WEIGHT", "3")}).jobs()[0]
    other = other_job.runs[1]
    runner.run_local([other_job], settings(), out=io.StringIO())
    Path(new.output_dir).parent.mkdir(parents=True, exist_ok=True)  # another's result there
    Path(other.output_dir).rename(new.output_dir)
    outcomes = runner.run_local(b.jobs(), settings(), out=io.StringIO())
    assert [o.status for o in outcomes] == ["done", "conflict"]
    assert "TRAINER.SAR.WEIGHT: 3.0 -> 1.0" in outcomes[1].detail


HOLD = textwrap.dedent("""
    import sys
    from sar_prompt.runs import lock as run_lock
    run_lock.acquire(sys.argv[1], command=["someone", "else"])
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_a_folder_another_process_writes_is_busy(tmp_path):
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config=str(CONFIG), data=str(tmp_path / "d"), output=str(tmp_path / "o"))
    train = Path(b.jobs()[0].runs[0].output_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(train)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = io.StringIO()
        outcomes = runner.run_local(b.jobs(), settings(), out=out)
        assert [o.status for o in outcomes] == ["busy", "blocked"]
        assert f"pid {holder.pid}" in out.getvalue() and "someone else" in out.getvalue()
        assert sorted(p.name for p in train.iterdir()) == ["run.lock"]  # no failed.json
        assert "1 busy" in runner.summary(outcomes)[0]
    finally:
        holder.stdin.close()
        holder.wait()
    outcomes = runner.run_local(b.jobs(), settings(), out=io.StringIO())
    assert [o.status for o in outcomes] == ["done", "done"]  # the stub took the handed lock


def test_a_sweep_runs_every_point_and_prints_a_row_each(tmp_path, stub_bench, capsys,
                                                        monkeypatch):
    args = ("--sweep", "TRAINER.SAR.WEIGHT", "0,5", "--sweep", "OPTIM.MAX_EPOCH", "1,2")
    assert stub_bench(tmp_path, *args, "--dry-run") == 0
    assert "sweep: 4 points: OPTIM.MAX_EPOCH=1,SAR.WEIGHT=0;" in capsys.readouterr().out
    assert stub_bench(tmp_path, *args) == 0
    out = capsys.readouterr().out
    assert "8 runs: 8 done" in out and "selection on the test split" in out
    rows = [line for line in out.splitlines() if line.startswith("| OPTIM.MAX_EPOCH=")]
    assert len(rows) == 4
    by_weight = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        weight = cells[0].split("SAR.WEIGHT=")[1]
        assert cells[1:3] == [f"{accuracy('eurosat', 1, h, weight):.2f}" for h in ("base", "new")]
        by_weight.setdefault(weight, set()).add(tuple(cells[1:]))
    assert by_weight["0"] != by_weight["5"]
    tables = tmp_path / "out/base2new/tables"
    saved = json.loads((tables / "sweep_base2new_CoOpSAR.json").read_text())
    assert [r["point"] for r in saved] == [row.split("|")[1].strip() for row in rows]
    assert (tables / "sweep_base2new_CoOpSAR.md").read_text().count("| OPTIM.MAX_EPOCH=") == 4
    monkeypatch.setenv("SWEEP", "TRAINER.SAR.WEIGHT=0,5;OPTIM.MAX_EPOCH=1,2")
    assert stub_bench(tmp_path) == 0  # the same sweep from the environment: all finished
    assert "8 runs: 0 done, 8 skipped" in capsys.readouterr().out
    monkeypatch.delenv("SWEEP")
    # the results command finds the points on disk, by itself or with --sweep
    for extra in ([], ["--sweep"]):
        assert results.main([str(tmp_path / "out/base2new"), "--trainer", "CoOpSAR",
                             "--seeds", "1", "--format", "markdown", *extra]) == 0
        listed = capsys.readouterr().out
        assert sorted(line for line in listed.splitlines() if line.startswith("| OPTIM")) == \
            sorted(rows)  # ordered by folder name


def test_bad_sweeps_are_refused(tmp_path, stub_bench, capsys):
    for args, message in ((("--sweep", "TRAINER.SAR.WEIGHT", ","), "no values"),
                          (("TRAINER.SAR.WEIGHT", "1", "--sweep", "TRAINER.SAR.WEIGHT", "0,5"),
                           "both swept and set"),
                          (("--sweep", "TRAINER.SAR.WEIGHT", "5,5.0"), "repeated"),
                          (("--tag", "a/b"), "tag")):
        assert stub_bench(tmp_path, *args, "--dry-run") == 2
        assert message in capsys.readouterr().err
