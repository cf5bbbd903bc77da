"""`sar-prompt results`' command line (sar_prompt/results/tables_cli.py): how its spellings
fold into one meaning, and which folder and protocol a given path resolves to."""
import shutil
from pathlib import Path

import pytest

from sar_prompt.results.tables_cli import parse_args, resolve_root


@pytest.fixture
def no_output_setting(monkeypatch):
    for name in ("SAR_PROMPT_OUTPUT", "OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_results_folder_comes_from_root_output_or_the_setting(no_output_setting,
                                                                   monkeypatch, capsys):
    assert parse_args([]).root == "output"
    assert parse_args(["runs"]).root == "runs" == parse_args(["--output", "runs"]).root
    assert parse_args(["runs", "--output", "./runs"]).root == "runs"  # the same folder twice
    assert refused(["runs", "--output", "other"], capsys).endswith(
        "error: two results folders given: ROOT runs and --output other; give one.")
    monkeypatch.setenv("SAR_PROMPT_OUTPUT", "from_env")
    assert parse_args([]).root == "from_env" and parse_args(["runs"]).root == "runs"


def test_trainers_folds_into_trainer_or_compare(no_output_setting, capsys):
    one = parse_args(["--trainers", "CoOp"])
    assert (one.trainer, one.compare) == ("CoOp", None)
    several = parse_args(["--trainers", "CoOp", "CoOpSAR"])
    assert (several.trainer, several.compare) == (None, ["CoOp", "CoOpSAR"])
    for other in (["--trainer", "CoOp"], ["--compare", "CoOp", "KgCoOp"]):
        assert refused(["--trainers", "CoOpSAR", *other], capsys).endswith(
            "error: --trainers replaces --trainer and --compare; give one of them.")


def test_per_seed_is_the_name_and_dataset_its_old_spelling(no_output_setting, capsys):
    assert parse_args(["--per-seed", "dtd"]).dataset == "dtd"
    assert capsys.readouterr().err == ""
    assert parse_args(["--dataset", "dtd"]).dataset == "dtd"
    assert capsys.readouterr().err == (
        "warning: --dataset is deprecated; use --per-seed (same meaning).\n")


@pytest.mark.parametrize("layout, protocol, expected", [
    # OUTPUT itself: the protocol folder it holds
    (["base2new/train_base"], None, ("base2new", "base2new")),
    (["fewshot/train_all"], None, ("fewshot", "fewshot")),
    (["base2new/train_base", "fewshot/train_all"], "fewshot", ("fewshot", "fewshot")),
    (["transfer/from_imagenet/test_all/dtd"], "xd", ("transfer/from_imagenet", "xd")),
    # a folder of runs under another name: its phases say the protocol
    (["train_base", "base2new"], None, (".", "base2new")),
    (["train_all"], None, (".", "fewshot")),
    (["train_base", "train_all"], None, (".", "base2new")),
    ([], None, (".", "base2new")),
])
def test_a_results_path_resolves_to_its_protocol_folder(tmp_path, layout, protocol, expected):
    root = tmp_path / "runs"
    for folder in layout:
        (root / folder).mkdir(parents=True)
    root.mkdir(exist_ok=True)
    folder, found = resolve_root(root, protocol)
    assert (folder, found) == (root / expected[0], expected[1])  # root / "." is root


@pytest.mark.parametrize("target, protocol", [("dtd", "xd"), ("imagenet_a", "dg")])
def test_a_transfer_folder_is_cross_dataset_or_domain_generalisation(tmp_path, target,
                                                                      protocol):
    root = tmp_path / "transfer" / "from_imagenet"
    (root / "test_all" / target).mkdir(parents=True)
    assert resolve_root(root, None) == (root, protocol)
    assert resolve_root(root, "dg") == (root, "dg")  # asked for: as asked
    fewshot = tmp_path / "fewshot"
    fewshot.mkdir()
    assert resolve_root(fewshot, None) == (fewshot, "fewshot")


def three_seeds_of_dtd(output, new_seeds=(1, 2)):
    """OUTPUT/base2new with CoOp on DTD: base for seeds 1-3, new for `new_seeds`, and seed
    3's new run stopped before any checkpoint."""
    from test_results import write

    root = output / "base2new"
    for seed in (1, 2, 3):
        write(root, "train_base", seed, 80.0 + seed, "dtd", "CoOp")
    for seed in new_seeds:
        write(root, "test_new", seed, 70.0 + seed, "dtd", "CoOp")
    stopped = root / "test_new" / "dtd" / "shots_16" / "CoOp" / "cfg" / "seed3"
    if 3 not in new_seeds:
        stopped.mkdir(parents=True)
        (stopped / "log.txt").write_text("epoch 1\n")
    return root, stopped


TABLE = ["seed                base             new              HM",
         "1                  81.00           71.00           75.67",
         "2                  82.00           72.00           76.68",
         "3                  83.00               -               -",
         "mean       81.50 +- 0.50   71.50 +- 0.50           76.17",
         "(2 of 3 seeds complete; per-seed HM mean 76.17 +- 0.50)"]


def test_one_dataset_seed_by_seed_says_which_runs_are_missing(tmp_path, capsys,
                                                              monkeypatch):
    from sar_prompt.results.tables_cli import main

    monkeypatch.chdir(tmp_path)
    _, stopped = three_seeds_of_dtd(tmp_path / "out")
    assert main(["out", "--per-seed", "dtd", "--trainer", "CoOp", "--config", "cfg"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["base-to-new: dtd / CoOp / cfg / 16 shots", *TABLE]
    assert err.splitlines() == [
        f"  interrupted: {stopped.relative_to(tmp_path)} (no checkpoint)",
        "missing results for seed(s) 3"]
    # a seed never started: both its runs are absent (nothing more to say about them)
    assert main(["out", "--per-seed", "dtd", "--trainer", "CoOp", "--config", "cfg",
                 "--seeds", "1", "2", "3", "4"]) == 1
    never = [Path("out", "base2new", phase, "dtd", "shots_16", "CoOp", "cfg", "seed4")
             for phase in ("train_base", "test_new")]
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"  absent: {never[0]}", f"  absent: {never[1]}", "missing results for seed(s) 3, 4"]


def test_a_folder_of_seed_runs_is_tabulated_with_its_new_classes_sibling(tmp_path, capsys):
    from sar_prompt.results.tables_cli import main

    root, _ = three_seeds_of_dtd(tmp_path, new_seeds=(1, 2))
    base = root / "train_base" / "dtd" / "shots_16" / "CoOp" / "cfg"
    new = root / "test_new" / "dtd" / "shots_16" / "CoOp" / "cfg"
    assert main([str(base)]) == 1  # seed 3 has no new result
    assert capsys.readouterr().out.splitlines() == [
        f"base-to-new: {base.resolve()} (new: {new.resolve()})", *TABLE]
    from test_results import write

    shutil.rmtree(new / "seed3")
    write(root, "test_new", 3, 73.0, "dtd", "CoOp")
    assert main([str(base)]) == 0


def test_a_folder_of_seed_runs_without_a_sibling_lists_its_accuracies(tmp_path, capsys):
    from test_results import write

    from sar_prompt.results.tables_cli import main

    for seed in (1, 2):
        write(tmp_path, "test_all", seed, 60.0 + seed, "dtd", "CoOp")
        write(tmp_path, "test_new", seed, 50.0, "dtd", "CoOp")  # not test_all's sibling
    folder = tmp_path / "test_all" / "dtd" / "shots_16" / "CoOp" / "cfg"
    assert main([str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(folder.resolve()), "seed            accuracy", "1                  61.00",
                   "2                  62.00", "mean       61.50 +- 0.50",
                   "(2 of 2 seed folders finished)"]
    stopped = folder / "seed3"
    stopped.mkdir()
    (stopped / "log.txt").write_text("epoch 1\n")
    (folder / "seed4").mkdir()  # made, nothing in it yet
    assert main([str(folder)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"  interrupted: {stopped.resolve()} (no checkpoint)",
        f"  absent: {(folder / 'seed4').resolve()}"]


def test_a_misspelt_trainer_is_named_with_the_closest_one_on_disk(tmp_path, capsys):
    from test_results import write

    from sar_prompt.results.tables_cli import main

    for trainer in ("CoOp", "CoOpSAR"):
        write(tmp_path / "base2new", "train_base", 1, 80.0, "dtd", trainer)
    root = tmp_path / "base2new"
    for trainers, message in (
            (["CoOP"], f"no runs of CoOP under {root}. Did you mean CoOp? Trainers with runs "
                       "there: CoOp, CoOpSAR."),
            (["CoOp", "Zebra"], f"no runs of Zebra under {root}. Trainers with runs there: "
                                "CoOp, CoOpSAR.")):
        assert main([str(root), "--trainers", *trainers]) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--trainers", "Zebra"]) == 2
    assert capsys.readouterr().err == (f"error: no runs of Zebra under {tmp_path / 'empty'}. "
                                       "Trainers with runs there: none.\n")


def test_trainers_not_misspelt_pass_the_name_check(tmp_path):
    """A trainer of one's own with runs on disk, and one of the project's with none yet."""
    from test_results import write

    from sar_prompt.results.tables_cli import check_trainer_names

    write(tmp_path, "train_base", 1, 80.0, "dtd", "MyPrompt")
    check_trainer_names(["MyPrompt", "KgCoOp"], tmp_path, "base2new", "imagenet")


def test_a_results_folder_that_holds_no_runs_is_refused(tmp_path, capsys):
    from sar_prompt.results.tables_cli import main

    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'} is not a folder of runs.\n"
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: no runs under {tmp_path}: it holds no <phase>/<dataset>/shots_<K>/<trainer>/"
        "<config>/seed<N> folder.\n")


def test_what_results_prints_for_each_kind_of_bad_request(tmp_path, capsys):
    from test_results import write, write_grid

    from sar_prompt.results.tables_cli import main

    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)}, datasets=("dtd",))
    root = str(tmp_path)

    def error(*argv):
        assert main([root, *argv]) == 2
        return capsys.readouterr().err

    assert error("--sweep") == (f"error: --sweep tabulates one trainer's points; {root} holds "
                                "CoOp, CoOpSAR: choose one with --trainer.\n")
    assert error("--sweep", "--compare", "CoOp", "CoOpSAR").startswith(
        "error: --sweep tabulates one trainer's points")
    for label in ("CoOpSAR", "CoOpSAR= "):
        assert error("--label", label) == (f"error: --label {label!r}: write TRAINER=TEXT, "
                                           "e.g. --label CoOpSAR='CoOp + SAR'.\n")
    assert error("--label", "KgCoOp=KgCoOp + x") == (
        "error: --label 'KgCoOp=KgCoOp + x': KgCoOp is not in the table (CoOp, CoOpSAR).\n")
    for partial in (["--trainer", "CoOp"], ["--config", "cfg"]):
        assert error("--per-seed", "dtd", *partial) == (
            "error: --per-seed shows one dataset seed by seed; give --trainer and --config "
            "too.\n")
    # text and LaTeX end with one newline
    assert main([root]) == 0
    assert capsys.readouterr().out.endswith("in points.\n")
    assert main([root, "--format", "latex"]) == 0
    assert capsys.readouterr().out.endswith("\\end{table*}\n")
    # incomplete seeds: refused, with what to do; a SAR variant alone: a note
    write(tmp_path, "train_base", 4, 80.0, "dtd", "CoOp")
    assert main([root, "--seeds", "1", "2", "3", "4"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "Refusing to average incomplete seed sets: run or repair the runs above, or pass "
        "--allow-partial.")
    assert main([root, "--trainers", "CoOpSAR"]) == 0
    assert capsys.readouterr().err == (
        "note: CoOpSAR has no CoOp beside it: add CoOp to see what SAR changed (CoOpSAR - "
        "CoOp).\n")


def test_sweep_and_published_requests_that_cannot_be_met(tmp_path, capsys):
    from test_results import write

    from sar_prompt.results.tables_cli import main

    for seed in (1, 2, 3):
        write(tmp_path / "fewshot", "train_all", seed, 60.0, "dtd", "CoOp", shots=4)
    root = str(tmp_path / "fewshot")
    assert main([root, "--published"]) == 2
    assert capsys.readouterr().err == ("error: --published: the shipped numbers are "
                                       "base-to-new ones; this table is fewshot.\n")
    main([root, "--sweep"])  # one trainer on disk: its sweep, whatever it holds
    assert "--sweep tabulates one trainer's points" not in capsys.readouterr().err


def test_save_says_what_it_wrote_or_why_it_could_not(tmp_path, capsys):
    from test_results import write_grid

    from sar_prompt.results.tables_cli import main

    write_grid(tmp_path / "runs", {"CoOp": (80.0, 60.0)}, datasets=("dtd",))
    assert main([str(tmp_path / "runs"), "--save", str(tmp_path / "tables"), "--no-plot"]) == 0
    wrote = capsys.readouterr().err.splitlines()
    assert wrote and all(line.startswith(f"wrote {tmp_path / 'tables'}") for line in wrote)
    assert {line[len("wrote "):] for line in wrote} == {
        str(p) for p in (tmp_path / "tables").iterdir()}
    (tmp_path / "a_file").write_text("")
    assert main([str(tmp_path / "runs"), "--save", str(tmp_path / "a_file"), "--no-plot"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
