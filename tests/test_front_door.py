"""The `sar-prompt` command and its one vocabulary: every subcommand reaches its tool, the
shared flags land where each tool's older spelling did, the environment's long names win over
the short ones, and --help exits 0 everywhere, scripts included. Parse-level only."""
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from sar_prompt import cli, train, vocabulary  # noqa: F401  (loaded for SHARED)
from sar_prompt.orchestration import bench  # noqa: F401
from sar_prompt.results import diagnose  # noqa: F401
from sar_prompt.data import __main__ as data_cli
from sar_prompt.novel import lists_cli as novel_cli
from sar_prompt.results import tables_cli as results_cli

SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))
ENV_NAMES = [n for n, t in vocabulary.TERMS.items() if t.env]
ALL_ENV = [v for t in vocabulary.TERMS.values() for v in (t.env, t.short_env) if v]


@pytest.fixture
def clean_env(monkeypatch):
    """No shared setting comes from the test runner's own environment."""
    for variable in ALL_ENV:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


# -- the command itself ---------------------------------------------------------------------
def test_help_lists_every_subcommand_with_one_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, sub in cli.SUBCOMMANDS.items():
        assert f"  {name} " in out and sub.summary.split()[0] in out
    for term in vocabulary.TERMS.values():
        assert term.flag in out and (term.env is None or term.env in out)


def test_no_command_or_an_unknown_one_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "run" in capsys.readouterr().err
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_console_script_and_python_m_are_the_same_command():
    entry = re.search(r'"sar-prompt = ([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
    assert entry and getattr(importlib.import_module(entry[1]), entry[2]) is cli.main
    commands = [[sys.executable, "-m", "sar_prompt"]]
    installed = Path(sys.executable).parent / "sar-prompt"  # an install made before setup.py
    if installed.exists() and "sar_prompt.cli" in installed.read_text():  # declared it: none
        commands.append([str(installed)])
    for command in commands:
        proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "diagnose" in proc.stdout, command


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_every_subcommand_help_exits_0_under_its_new_name(name, capsys):
    assert cli.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    shown = "run" if cli.SUBCOMMANDS[name].module == "sar_prompt.orchestration.bench" else name
    assert f"sar-prompt {shown}" in out


def test_subcommands_of_subcommands_are_renamed_too(capsys):
    assert cli.main(["data", "check", "--help"]) == 0
    assert "usage: sar-prompt data check" in capsys.readouterr().out
    assert cli.main(["novel", "from-file", "--help"]) == 0
    assert "usage: sar-prompt novel from-file" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_help_exits_0(script, flag):
    proc = subprocess.run(["bash", str(script), flag], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stderr
    assert "Usage: bash scripts/" in proc.stdout and not proc.stderr


@pytest.mark.parametrize("script", ["bench.sh", "base2new.sh", "base2new_all.sh"])
def test_scripts_still_refuse_too_few_arguments(script):
    proc = subprocess.run(["bash", str(REPO / "scripts" / script)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Usage:" in proc.stderr


# -- every subcommand takes the shared flags, and they land where the old ones did ----------
def _namespace_of(module, argv):
    """What the tool's own parser makes of argv (results: with the shared names folded)."""
    if module is bench:
        return bench.parse(argv)
    if module is results_cli:
        return results_cli.parse_args(argv)
    return module.build_parser().parse_args(argv)


RUN_NEW = ["--data", "D", "--output", "O", "--config", "C", "--datasets", "dtd", "eurosat",
           "--seeds", "1", "2", "--shots", "4"]
RUN_OLD_ENV = {"DATA": "D", "OUTPUT": "O", "CFG": "C", "DATASETS": "dtd eurosat",
               "SEEDS": "1 2", "SHOTS": "4"}
RUN_FIELDS = ("data", "output", "config", "datasets", "seeds", "shots")

# subcommand: (argv through sar-prompt, argv of the older spelling (None: the same tool had
# none), the namespace fields to compare, {field: expected value})
SHARED = {
    "run": (["base2new", "CoOp", *RUN_NEW], None, RUN_FIELDS,
            {"data": "D", "output": "O", "config": "C", "datasets": ["dtd", "eurosat"],
             "seeds": [1, 2], "shots": [4], "protocol": "base2new", "trainer": "CoOp"}),
    "base2new": (["CoOp", *RUN_NEW], None, RUN_FIELDS,
                 {"protocol": "base2new", "trainer": "CoOp", "datasets": ["dtd", "eurosat"]}),
    "demo": (["--data", "D", "--output", "O", "--seeds", "1", "--shots", "4", "--config", "C"],
             None, RUN_FIELDS,
             {"protocol": "base2new", "trainer": "CoOpSAR", "datasets": ["demo"], "data": "D",
              "output": "O", "seeds": [1], "shots": [4], "config": "C"}),
    "world": (["study", "--data", "D", "--output", "O", "--seeds", "1", "2"], None,
              ("data", "output", "seeds"), {"data": "D", "output": "O", "seeds": ["1", "2"]}),
    "train": (["--data", "D", "--output", "O", "--config", "C.yaml", "--trainer", "CoOp"],
              ["--root", "D", "--output-dir", "O", "--config-file", "C.yaml", "--trainer",
               "CoOp"],
              ("root", "output_dir", "config_file", "trainer"),
              {"root": "D", "output_dir": "O", "config_file": "C.yaml"}),
    "results": (["--output", "O", "--trainers", "CoOp", "--datasets", "dtd", "--seeds", "1",
                 "--shots", "16", "--config", "C"],
                ["O", "--trainer", "CoOp", "--datasets", "dtd", "--seeds", "1", "--shots",
                 "16", "--config", "C"],
                ("root", "trainer", "compare", "datasets", "seeds", "shots", "config"),
                {"root": "O", "trainer": "CoOp", "datasets": ["dtd"]}),
    "diagnose": (["RUN", "--data", "D", "--output", "O"], None, ("data", "output"),
                 {"run_dir": "RUN", "data": "D", "output": "O"}),
    "data": (["check", "dtd", "--data", "D", "--shots", "4"],
             ["check", "dtd", "--root", "D", "--shots", "4"], ("root", "shots"),
             {"root": "D", "shots": 4}),
    "novel": (["vocab", "--datasets", "dtd", "eurosat", "--output", "O"],
              ["vocab", "--dataset", "dtd", "--dataset", "eurosat", "--out-dir", "O"],
              ("dataset", "out_dir"), {"dataset": ["dtd", "eurosat"], "out_dir": Path("O")}),
}


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_every_subcommand_takes_the_shared_flags(name, clean_env):
    argv, old_argv, fields, expected = SHARED[name]
    module = sys.modules[cli.SUBCOMMANDS[name].module]
    seen = []

    def fake_main(tool_argv):  # parses as the tool would, then stops
        seen.append(_namespace_of(module, tool_argv))
        return 0

    clean_env.setattr(module, "main", fake_main)
    assert cli.main([name, *argv]) == 0
    (got,) = seen
    for field, value in expected.items():
        assert getattr(got, field) == value, field
    if old_argv is not None:  # the older spelling, straight to the tool: the same values
        old = _namespace_of(module, old_argv)
        assert [getattr(old, f) for f in fields] == [getattr(got, f) for f in fields]


def test_run_flags_equal_the_short_environment_they_replace(clean_env):
    by_flags = bench.parse(["base2new", "CoOp", *RUN_NEW])
    for variable, value in RUN_OLD_ENV.items():
        clean_env.setenv(variable, value)
    by_env = bench.parse(["base2new", "CoOp"])
    assert [getattr(by_env, f) for f in RUN_FIELDS] == [getattr(by_flags, f) for f in RUN_FIELDS]


def test_run_with_several_trainers_runs_each_with_the_same_options(clean_env, capsys):
    calls = []
    clean_env.setattr(bench, "main", lambda argv: calls.append(argv) or 0)
    argv = ["fewshot", "--trainers", "CoOp", "CoOpSAR", "OPTIM.MAX_EPOCH", "2", "--seeds", "1"]
    assert cli.main(["run", *argv]) == 0
    # one table at the end, of both trainers (tests/test_paper_tables.py runs it)
    assert calls == [["fewshot", "CoOp", "OPTIM.MAX_EPOCH", "2", "--seeds", "1",
                      "--table", "none"],
                     ["fewshot", "CoOpSAR", "OPTIM.MAX_EPOCH", "2", "--seeds", "1",
                      "--compare-trainers=CoOp,CoOpSAR"]]
    assert "(2/2)" in capsys.readouterr().out
    calls.clear()
    assert cli.main(["demo", "--trainers=CoOp,KgCoOp"]) == 0
    assert [c[1] for c in calls] == ["CoOp", "KgCoOp"]
    assert all(c[c.index("--datasets") + 1] == "demo" for c in calls)


def test_run_stops_after_an_interrupted_trainer_and_reports_the_worst_status(clean_env):
    codes = iter([1, 0])
    clean_env.setattr(bench, "main", lambda argv: next(codes))
    assert cli.main(["run", "base2new", "--trainers", "A", "B"]) == 1
    calls = []
    clean_env.setattr(bench, "main", lambda argv: calls.append(argv) or 130)
    assert cli.main(["run", "base2new", "--trainers", "A", "B"]) == 130 and len(calls) == 1


# -- aliases and the environment ------------------------------------------------------------
@pytest.mark.parametrize("name", ENV_NAMES)
def test_the_long_environment_name_wins_over_the_short_one(name):
    term = vocabulary.TERMS[name]
    assert vocabulary.setting(name, environ={term.env: "long", term.short_env: "short"}) == "long"
    assert vocabulary.setting(name, environ={term.short_env: "short"}) == "short"
    assert vocabulary.setting(name, environ={term.env: "", term.short_env: "short"}) == "short"
    assert vocabulary.setting(name, "default", environ={}) == "default"


@pytest.mark.parametrize("name,field,value,parsed", [
    ("data", "data", "/d", "/d"), ("output", "output", "/o", "/o"), ("config", "config", "c", "c"),
    ("datasets", "datasets", "dtd,eurosat", ["dtd", "eurosat"]), ("seeds", "seeds", "4 5", [4, 5]),
    ("shots", "shots", "8", [8]), ("gpus", "gpus", "0,1", "0,1")])
def test_run_reads_both_environment_names_the_long_one_winning(name, field, value, parsed,
                                                               clean_env):
    term = vocabulary.TERMS[name]
    clean_env.setenv(term.short_env, value)
    assert getattr(bench.parse(["base2new", "CoOp"]), field) == parsed
    clean_env.setenv(term.env, value)
    clean_env.setenv(term.short_env, "0" if name in ("seeds", "shots") else "other")
    assert getattr(bench.parse(["base2new", "CoOp"]), field) == parsed


def test_data_and_results_read_their_folder_from_the_environment(clean_env, capsys):
    with pytest.raises(SystemExit):  # as before: the folder must be named somewhere
        data_cli.build_parser().parse_args(["check", "dtd"])
    capsys.readouterr()
    clean_env.setenv("DATA", "/short")
    clean_env.setenv("SAR_PROMPT_DATA", "/long")
    assert data_cli.build_parser().parse_args(["check", "dtd"]).root == "/long"
    assert results_cli.parse_args([]).root == "output"
    clean_env.setenv("OUTPUT", "/out")
    assert results_cli.parse_args([]).root == "/out"
    assert results_cli.parse_args(["/given"]).root == "/given"


def test_results_per_seed_and_its_deprecated_spelling(capsys):
    new = results_cli.parse_args(["O", "--per-seed", "dtd"])
    assert new.dataset == "dtd" and "deprecated" not in capsys.readouterr().err
    old = results_cli.parse_args(["O", "--dataset", "dtd"])
    assert old.dataset == "dtd" and "--dataset is deprecated; use --per-seed" in \
        capsys.readouterr().err


def test_results_per_seed_reads_the_output_root_as_run_writes_it(tmp_path, clean_env, capsys):
    runs = tmp_path / "base2new"
    for phase, accuracy in (("train_base", 80.0), ("test_new", 70.0)):
        folder = runs / phase / "dtd" / "shots_16" / "CoOp" / "cfg" / "seed1"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({"accuracy": accuracy}))
    clean_env.chdir(tmp_path)
    argv = ["--per-seed", "dtd", "--trainer", "CoOp", "--config", "cfg", "--seeds", "1"]
    assert cli.main(["results", "--output", str(tmp_path), *argv]) == 0
    assert "80.00" in capsys.readouterr().out
    clean_env.setenv("SAR_PROMPT_OUTPUT", str(tmp_path))
    assert cli.main(["results", *argv]) == 0
    assert results_cli.main([str(runs), *argv]) == 0  # the protocol folder, as before


def test_results_trainers_means_trainer_or_compare_and_refuses_conflicts(capsys):
    assert results_cli.parse_args(["O", "--trainers", "A", "B"]).compare == ["A", "B"]
    for argv in (["O", "--trainers", "A", "--trainer", "B"], ["O", "--output", "P"]):
        with pytest.raises(SystemExit) as exc:
            results_cli.parse_args(argv)
        assert exc.value.code == 2
    assert "give one" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["generate", "vocab", "wordnet"])
def test_novel_output_and_its_older_spellings(command):
    parse = novel_cli.build_parser().parse_args
    values = {parse([command, "--all", flag, "X"]).out_dir
              for flag in ("--output", "--out-dir", "--out")}
    assert values == {Path("X")}
    assert parse(["from-file", "n.txt", "--dataset", "dtd", "--output", "Y"]).out == \
        parse(["from-file", "n.txt", "--dataset", "dtd", "--out", "Y"]).out == Path("Y")


def test_demo_prepare_takes_data_and_root(monkeypatch, tmp_path, capsys):
    from sar_prompt.orchestration import demo

    given = []
    monkeypatch.setattr(demo, "prepare", lambda root: given.append(root) or tmp_path)
    assert demo.main(["prepare", "--data", "D"]) == 0 and demo.main(["prepare", "--root", "R"]) == 0
    assert given == ["D", "R"]


# -- the scripts ----------------------------------------------------------------------------
def run_script(name, *argv, **env):
    full = {k: v for k, v in os.environ.items() if k not in ALL_ENV}
    proc = subprocess.run(["bash", str(REPO / "scripts" / name), *argv], capture_output=True,
                          text=True, timeout=120, env=dict(full, PYTHON=sys.executable, **env))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("script,argv", [
    ("bench.sh", ["base2new", "CoOp", "--datasets", "dtd"]),
    ("base2new_all.sh", ["CoOp", "--datasets", "dtd"]),
    ("base2new.sh", ["dtd", "CoOp"])])
def test_scripts_take_the_shared_flags(script, argv, tmp_path):
    out = run_script(script, *argv, "--data", str(tmp_path / "d"), "--output",
                     str(tmp_path / "o"), "--config", "vit_b16_ctxv1", "--seeds", "3",
                     "--shots", "8", "--dry-run")
    assert f"data {tmp_path / 'd'}, results {tmp_path / 'o' / 'base2new'}" in out
    assert "(dtd), seeds 3, shots 8" in out and "/vit_b16_ctxv1/seed3" in out


def test_scripts_read_the_long_environment_names_first(tmp_path):
    out = run_script("base2new.sh", "dtd", "CoOp", "--dry-run", SAR_PROMPT_DATA="/long",
                     DATA="/short", SAR_PROMPT_SEEDS="7", SEEDS="1",
                     SAR_PROMPT_DATASETS="eurosat", SAR_PROMPT_OUTPUT=str(tmp_path))
    # the dataset named on the command line wins over SAR_PROMPT_DATASETS
    assert "(dtd), seeds 7," in out and "data /long," in out


# -- one module per name --------------------------------------------------------------------
def test_one_module_called_protocol():
    found = sorted(p.relative_to(REPO) for p in (REPO / "sar_prompt").rglob("protocol*.py"))
    assert found == [Path("sar_prompt/runs/protocols.py")]
    from sar_prompt.modeling.learner_interface import PromptLearner, TextPrompts  # noqa: F401


def test_docs_table_names_every_flag_and_variable():
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for term in vocabulary.TERMS.values():
        assert f"`{term.flag}`" in page
        for variable in (term.env, term.short_env):
            assert variable is None or f"`{variable}`" in page
    for name in cli.SUBCOMMANDS:
        assert f"`{name}`" in page
